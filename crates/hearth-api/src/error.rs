//! The one error type of the HTTP API: status + stable `code` + human `message`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_blob::{CodeStoreError, ObjectSourceError, PackageError};
use hearth_store::StoreError;
use hearth_types::ValidationError;
pub use hearth_types::api::ApiErrorBody;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn function_not_found(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "FunctionNotFound",
            format!("function {name:?} does not exist; `hearth fn list` shows the functions there are"),
        )
    }

    /// A server-side failure: logged in full, reported without internals.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(%err, "{context}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", format!("{context}; the server log has details"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ApiErrorBody { code: self.code.to_owned(), message: self.message };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::bad_request(e.code(), e.to_string())
    }
}

impl From<PackageError> for ApiError {
    fn from(e: PackageError) -> Self {
        let status = match e {
            PackageError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, e.code(), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::new(
                StatusCode::CONFLICT,
                "ConcurrentModification",
                "the function was changed by another request at the same time; retry",
            ),
            other => Self::internal("metadata store failed", other),
        }
    }
}

impl From<CodeStoreError> for ApiError {
    fn from(e: CodeStoreError) -> Self {
        match e {
            CodeStoreError::Invalid(p) => p.into(),
            other => Self::internal("code store failed", other),
        }
    }
}

impl From<ObjectSourceError> for ApiError {
    fn from(e: ObjectSourceError) -> Self {
        let status = match &e {
            ObjectSourceError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ObjectSourceError::Failed { .. } => StatusCode::BAD_GATEWAY,
            // The server's policy refuses the URL: a bucket outside the allow-list, or (with
            // no S3 settings) any bucket. The request itself is well formed (not 400), and no
            // state of the function would change the answer (not 409).
            ObjectSourceError::BucketNotAllowed(_) | ObjectSourceError::NotConfigured => StatusCode::FORBIDDEN,
            ObjectSourceError::InvalidUrl(_) | ObjectSourceError::NotFound(_) | ObjectSourceError::AccessDenied(_) => {
                StatusCode::BAD_REQUEST
            }
        };
        Self::new(status, e.code(), e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonSyntaxError(e) => {
                Self::bad_request("InvalidJson", format!("the body is not valid JSON: {}", e.body_text()))
            }
            JsonRejection::JsonDataError(e) => Self::bad_request("InvalidRequestBody", e.body_text()),
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "send the body as JSON with Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(_) => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "RequestTooLarge", "the request body is too large")
            }
            other => Self::bad_request("InvalidRequestBody", other.body_text()),
        }
    }
}
