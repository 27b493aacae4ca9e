//! The Lambda error document (`{"errorMessage": ..., "errorType": ...}`) callers receive when
//! a function fails, and the error types the platform reports on a function's behalf: one
//! type and one set of names for every place that makes one.

use bytes::Bytes;

/// Error types the platform reports (a function's own error keeps the type it sent).
pub mod error_type {
    /// The function used more than its memory size; its instance was killed.
    pub const OUT_OF_MEMORY: &str = "Runtime.OutOfMemory";
    /// The runtime process ended during an invocation or its init.
    pub const EXIT_ERROR: &str = "Runtime.ExitError";
    /// The invocation or the init ran past its time.
    pub const TIMED_OUT: &str = "Sandbox.Timedout";
    /// The instance could not be started for another reason.
    pub const INIT_ERROR: &str = "Runtime.InitError";
    /// A `provided` package without an executable `bootstrap`.
    pub const INVALID_ENTRYPOINT: &str = "Runtime.InvalidEntrypoint";
    /// The runtime (interpreter, or support for it) is not on this node.
    pub const UNAVAILABLE: &str = "Runtime.Unavailable";
    /// The function's package could not be fetched or unpacked.
    pub const CODE_UNAVAILABLE: &str = "Runtime.CodeUnavailable";
    /// The runtime's error report could not be read.
    pub const UNKNOWN: &str = "Runtime.Unknown";
    /// The runtime's response ended before its declared length.
    pub const TRUNCATED_RESPONSE: &str = "Runtime.TruncatedResponse";
    /// A streamed HTTP response whose prelude is not a JSON object.
    pub const INVALID_RESPONSE: &str = "Runtime.InvalidResponse";
    /// The function's response is larger than the payload limit.
    pub const RESPONSE_TOO_LARGE: &str = "Function.ResponseSizeTooLarge";
    /// A function error whose document names no type.
    pub const UNHANDLED: &str = "Unhandled";
}

/// One error document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErrorDocument {
    #[serde(rename = "errorMessage")]
    pub message: String,
    #[serde(rename = "errorType")]
    pub error_type: String,
}

impl ErrorDocument {
    pub fn new(error_type: &str, message: impl Into<String>) -> Self {
        Self { message: message.into(), error_type: error_type.to_owned() }
    }

    /// The document as the JSON bytes callers receive.
    pub fn to_bytes(&self) -> Bytes {
        serde_json::to_vec(self).expect("two strings serialize").into()
    }

    /// The `errorType` a document (a function's own, which may hold more fields) names.
    pub fn type_in(body: &[u8]) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Typed {
            #[serde(rename = "errorType")]
            error_type: Option<String>,
        }
        serde_json::from_slice::<Typed>(body).ok().and_then(|t| t.error_type)
    }
}

/// An error document as callers receive it, with its type known, so no layer above parses
/// the bytes again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReport {
    pub error_type: String,
    pub body: Bytes,
}

impl From<ErrorDocument> for ErrorReport {
    fn from(doc: ErrorDocument) -> Self {
        Self { body: doc.to_bytes(), error_type: doc.error_type }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip_their_type() {
        let doc = ErrorDocument::new(error_type::TIMED_OUT, "Task timed out after 3.00 seconds");
        let bytes = doc.to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["errorType"], "Sandbox.Timedout");
        assert_eq!(value["errorMessage"], "Task timed out after 3.00 seconds");
        assert_eq!(ErrorDocument::type_in(&bytes).as_deref(), Some(error_type::TIMED_OUT));
        let own = br#"{"errorMessage":"boom","errorType":"ValueError","stackTrace":["a"]}"#;
        assert_eq!(ErrorDocument::type_in(own).as_deref(), Some("ValueError"));
        assert_eq!(ErrorDocument::type_in(b"not json"), None);
        assert_eq!(ErrorDocument::type_in(br#"{"errorMessage":"x"}"#), None);
    }
}
