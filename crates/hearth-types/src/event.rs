//! Asynchronous invocations ("events"): accepted durably, delivered at least once, with
//! retries, then a destination or the dead-letter list.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::FunctionName;

/// Where an event is in its life. `queued` → `running` → `succeeded`, or back to `queued`
/// for a retry, or on to `failed` (handed to the on-failure function) or `dead_lettered`
/// (kept in the function's dead-letter list, from where a redrive queues it again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    DeadLettered,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::DeadLettered => "dead_lettered",
        }
    }

    /// No further delivery will happen (unless a dead letter is redriven).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::DeadLettered)
    }
}

impl std::str::FromStr for EventStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "dead_lettered" => Self::DeadLettered,
            other => return Err(format!("unknown event status {other:?}")),
        })
    }
}

impl std::fmt::Display for EventStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an event arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    /// `POST /v1/functions/{name}/invoke` with `X-Hearth-Invocation-Type: Event`.
    Api,
    /// The Lambda Invoke API with `X-Amz-Invocation-Type: Event`.
    Lambda,
    /// Another function's outcome, sent to this one as its destination.
    Destination,
    /// An instant of a cron trigger.
    Schedule,
    /// Messages on a core NATS subject, from a NATS trigger.
    Nats,
}

/// Why an attempt, or the whole event, failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventError {
    /// The function's error type (`Runtime.ExitError`, `Handled`, ...) or the platform's
    /// (`TooManyRequests`, `EventAgeExceeded`, `FunctionNotFound`, ...).
    pub error_type: String,
    /// The error document or message, at most [`EVENT_TEXT_MAX_BYTES`].
    pub message: String,
    /// Whether the function itself failed (counts against `async_retries`) rather than the
    /// platform being unable to run it (retried with backoff up to `max_event_age_s`).
    pub function_error: bool,
}

/// The most bytes of an event's result or error kept with it (as Lambda destinations keep
/// 256 KB); longer ones are cut and `result_truncated` set.
pub const EVENT_TEXT_MAX_BYTES: usize = 256 * 1024;

/// The largest event payload an asynchronous invocation accepts, as on Lambda.
pub const EVENT_PAYLOAD_MAX_BYTES: usize = 1024 * 1024;

/// An asynchronous invocation as stored: what `GET /v1/invocations/{id}` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventRecord {
    /// The request id the 202 answered with; also the id of every attempt's invocation
    /// record and log lines.
    pub request_id: String,
    pub function: FunctionName,
    /// The version number or alias asked for; `None` is `$LATEST`, resolved at each attempt.
    pub qualifier: Option<String>,
    pub status: EventStatus,
    pub source: EventSource,
    /// Deliveries started (a delivery cut short by a server stop counts).
    pub attempts: u32,
    /// Deliveries that ended in a function error (at most `async_retries + 1`).
    pub function_errors: u32,
    /// Deliveries started again after one was cut short (by a server stop or a lost lease):
    /// the function may have seen the event that many extra times.
    pub redeliveries: u32,
    /// Times it was redriven from the dead-letter list.
    pub redrives: u32,
    pub enqueued_at: DateTime<Utc>,
    /// When it last entered the queue (acceptance or redrive): its age counts from here.
    pub queued_at: DateTime<Utc>,
    /// When the next delivery may start.
    pub not_before: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The version that ran the last delivery.
    pub executed_version: Option<u32>,
    /// The function's result, when it succeeded (UTF-8, lossy; cut at 256 KiB).
    pub result: Option<String>,
    #[serde(default)]
    pub result_truncated: bool,
    /// The last failure.
    pub error: Option<EventError>,
    /// The function the outcome was sent to (on-success or on-failure destination).
    pub destination: Option<FunctionName>,
}

/// Text kept with an event: lossy UTF-8 cut at [`EVENT_TEXT_MAX_BYTES`] on a character
/// boundary. Returns the text and whether it was cut.
pub fn event_text(bytes: &[u8]) -> (String, bool) {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= EVENT_TEXT_MAX_BYTES {
        return (text.into_owned(), false);
    }
    let mut end = EVENT_TEXT_MAX_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_owned(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_know_which_are_final() {
        for s in [
            EventStatus::Queued,
            EventStatus::Running,
            EventStatus::Succeeded,
            EventStatus::Failed,
            EventStatus::DeadLettered,
        ] {
            assert_eq!(s.as_str().parse::<EventStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!(EventStatus::DeadLettered.is_final() && !EventStatus::Running.is_final());
    }

    #[test]
    fn event_text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(EVENT_TEXT_MAX_BYTES);
        let (text, cut) = event_text(long.as_bytes());
        assert!(cut && text.len() <= EVENT_TEXT_MAX_BYTES && text.len() > EVENT_TEXT_MAX_BYTES - 2);
        assert_eq!(event_text(b"ok\xff"), ("ok\u{fffd}".to_owned(), false));
    }
}
