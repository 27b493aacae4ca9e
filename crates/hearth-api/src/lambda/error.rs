//! Errors in the shape AWS SDKs and the AWS CLI parse: a JSON body `{"Type", "message"}` and
//! the error's name in `X-Amzn-ErrorType`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiError;

/// The body of an error in the shape AWS SDKs parse; `X-Amzn-ErrorType` names the error.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LambdaErrorBody {
    /// Always `User`.
    #[serde(rename = "Type")]
    pub kind: String,
    pub message: String,
}

/// A refusal as Lambda words it: status, error type (e.g. `ResourceNotFoundException`) and
/// message.
#[derive(Debug)]
pub struct LambdaError {
    pub status: StatusCode,
    pub error_type: &'static str,
    pub message: String,
}

impl LambdaError {
    pub fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        Self { status, error_type, message: message.into() }
    }

    /// `InvalidParameterValueException` (400): a value Hearth cannot honour.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidParameterValueException", message)
    }

    /// `ResourceNotFoundException` (404).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
    }
}

impl IntoResponse for LambdaError {
    fn into_response(self) -> Response {
        let body = LambdaErrorBody { kind: "User".into(), message: self.message };
        let mut resp = (self.status, Json(body)).into_response();
        resp.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static(self.error_type));
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<ApiError> for LambdaError {
    /// No credentials at all is HTTP's 401 (an SDK always signs, so only other clients see
    /// it); credentials that are not a valid token are AWS's 403 `UnrecognizedClientException`.
    fn from(e: ApiError) -> Self {
        if e.code == "MissingToken" {
            return Self::new(StatusCode::UNAUTHORIZED, "MissingAuthenticationTokenException", e.message);
        }
        let error_type = match e.status {
            StatusCode::UNAUTHORIZED => "UnrecognizedClientException",
            StatusCode::FORBIDDEN => "AccessDeniedException",
            StatusCode::NOT_FOUND => "ResourceNotFoundException",
            StatusCode::PAYLOAD_TOO_LARGE => "RequestTooLargeException",
            StatusCode::TOO_MANY_REQUESTS => "TooManyRequestsException",
            StatusCode::CONFLICT => "ResourceConflictException",
            StatusCode::PRECONDITION_FAILED => "PreconditionFailedException",
            s if s.is_client_error() => "InvalidParameterValueException",
            _ => "ServiceException",
        };
        let status = if e.status == StatusCode::UNAUTHORIZED { StatusCode::FORBIDDEN } else { e.status };
        Self::new(status, error_type, e.message)
    }
}

/// Errors the API maps already: through its mapping.
macro_rules! through_api_error {
    ($($t:ty),*) => {$(
        impl From<$t> for LambdaError {
            fn from(e: $t) -> Self {
                ApiError::from(e).into()
            }
        }
    )*};
}
through_api_error!(hearth_store::StoreError, hearth_blob::CodeStoreError, hearth_blob::ObjectSourceError);

impl From<hearth_types::ValidationError> for LambdaError {
    fn from(e: hearth_types::ValidationError) -> Self {
        Self::invalid(e.to_string())
    }
}
