//! The one mapping from the gateway's errors to the API's: status and stable code.

use axum::http::StatusCode;
use hearth_api::ApiError;
use hearth_gateway::{AcquireError, InvokeError};

/// The API error an invocation failure answers.
pub(crate) fn api_error(e: InvokeError) -> ApiError {
    let msg = e.to_string();
    match e {
        InvokeError::NotFound(n) => ApiError::function_not_found(n.as_str()),
        InvokeError::NoCode(_) => ApiError::new(StatusCode::CONFLICT, "CodeNotFound", msg),
        InvokeError::NoVersion(..) => ApiError::new(StatusCode::NOT_FOUND, "VersionNotFound", msg),
        InvokeError::NoAlias(..) => ApiError::new(StatusCode::NOT_FOUND, "AliasNotFound", msg),
        InvokeError::PayloadTooLarge(_) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "RequestTooLarge", msg),
        InvokeError::Unavailable(AcquireError::Throttled { .. }) => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", format!("{msg}; retry later"))
        }
        InvokeError::Unavailable(AcquireError::NodeFull { .. }) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "NodeMemoryFull",
            format!("{msg}; retry later, or lower the function's memory_mb"),
        ),
        InvokeError::Unavailable(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "InstanceUnavailable",
            format!("{msg}; the function's instances are all busy or slow to start, retry later"),
        ),
        InvokeError::Store(s) => s.into(),
        InvokeError::Internal(m) => ApiError::internal("invocation failed", m),
    }
}
