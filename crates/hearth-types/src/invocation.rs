use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{FunctionId, FunctionName, StartSource};

/// A fresh request id: a UUID (version 7), so ids given later sort later and the stores
/// that key on them append instead of inserting all over their index.
pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The metered facts of one invocation. Append-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InvocationRecord {
    pub request_id: String,
    /// Which delivery of the request this was: 1, or more for an asynchronous invocation's
    /// retries (they keep its request id, as on Lambda). Unique with `request_id`.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// The version number or alias the caller named; absent for `$LATEST`. `version` is the
    /// version that ran (an alias with two versions picks one per invocation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    pub function_id: FunctionId,
    pub function: FunctionName,
    pub version: u32,
    pub started_at: DateTime<Utc>,
    /// Time in the function, from handing over the event to its answer.
    pub duration_ms: f64,
    /// `duration_ms` rounded up to a whole millisecond.
    pub billed_ms: u64,
    pub memory_mb: u32,
    /// Peak memory of the instance so far, when the sandbox measures it.
    #[serde(default)]
    pub max_memory_used_mb: Option<u64>,
    pub cold_start: bool,
    /// For a cold start, where its instance came from (absent in records older than it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_source: Option<StartSource>,
    /// CPU time the invocation spent, where it is measured per invocation (WebAssembly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_time_ms: Option<f64>,
    /// Instance start-up time, for the request that waited for it.
    pub init_duration_ms: Option<f64>,
    /// `success` or `error`.
    pub outcome: String,
    /// The error type when `outcome` is `error`.
    pub error_type: Option<String>,
}

fn first_attempt() -> u32 {
    1
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// START / END / REPORT lines written by the platform.
    Platform,
}

/// One line of a function's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// Position in the function's log, assigned by the store: increasing from one stored entry
    /// to the next, and shared by the lines of one entry (an invocation's `START`, `END` and
    /// `REPORT` when it logged nothing in between).
    pub seq: i64,
    pub function: FunctionName,
    pub request_id: Option<String>,
    pub at: DateTime<Utc>,
    pub stream: LogStream,
    pub message: String,
}
