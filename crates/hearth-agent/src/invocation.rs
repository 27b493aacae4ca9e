//! One event handed to an instance, and what came back.

use bytes::Bytes;

/// Largest event or buffered response, as on Lambda (6 MiB + 100 B).
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024 + 100;

/// An event for the runtime, delivered by `GET /runtime/invocation/next`.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    /// Defaults to `application/json`.
    pub content_type: Option<String>,
    /// Absolute deadline, Unix epoch milliseconds.
    pub deadline_ms: u64,
    pub invoked_function_arn: String,
    pub trace_id: Option<String>,
    /// Raw JSON text (already base64-decoded if it came through the Invoke API).
    pub client_context: Option<String>,
}

/// What the runtime answered for one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `POST .../response`: the function's result, passed through as is.
    Response { body: Bytes, content_type: Option<String> },
    /// `POST .../error` (or a streamed response's error trailers): the error document,
    /// passed through verbatim.
    FunctionError { body: Bytes, error_type: Option<String> },
    /// The buffered response was over [`MAX_PAYLOAD_BYTES`].
    ResponseTooLarge,
}

/// How an instance's initialisation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum InitOutcome {
    /// The runtime asked for its first event.
    Ready,
    /// `POST /runtime/init/error`.
    Failed { body: Bytes, error_type: Option<String> },
}
