//! One synchronous invocation, from resolved version to the function's answer.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hearth_agent::{Invocation, InvokeResult, MAX_PAYLOAD_BYTES, Outcome, epoch_ms};
use hearth_store::StoreError;
use hearth_types::{FunctionName, VersionSelector};

use crate::Gateway;
use crate::function_cache::Resolved;
use crate::pool::AcquireError;

/// What the caller sends.
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    pub payload: Bytes,
    pub content_type: Option<String>,
    /// Raw JSON (already decoded from the Invoke API's base64).
    pub client_context: Option<String>,
    pub trace_id: Option<String>,
    /// Use this id instead of a fresh one (when the event already names it).
    pub request_id: Option<String>,
}

/// What the caller gets back. A function error is still a response (Lambda semantics):
/// `function_error` is set and `body` is the error document.
#[derive(Debug, Clone)]
pub struct InvokeResponse {
    pub request_id: String,
    pub version: u32,
    pub cold_start: bool,
    pub body: Bytes,
    pub content_type: Option<String>,
    /// The error type when the function (or the platform on its behalf) failed.
    pub function_error: Option<String>,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("function {0:?} does not exist")]
    NotFound(FunctionName),
    #[error("function {0:?} has no code yet; deploy some first")]
    NoCode(FunctionName),
    #[error("function {0:?} has no version {1}")]
    NoVersion(FunctionName, u32),
    #[error("the request payload is {0} bytes, more than the {MAX_PAYLOAD_BYTES}-byte limit")]
    PayloadTooLarge(usize),
    #[error(transparent)]
    Unavailable(AcquireError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

fn error_doc(error_type: &str, message: &str) -> Bytes {
    serde_json::json!({"errorMessage": message, "errorType": error_type}).to_string().into()
}

fn error_type_of(body: &[u8], fallback: Option<String>) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errorType").and_then(|t| t.as_str()).map(str::to_owned))
        .or(fallback)
        .unwrap_or_else(|| "Unhandled".into())
}

impl Gateway {
    pub async fn invoke(
        &self,
        name: &FunctionName,
        selector: VersionSelector,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, InvokeError> {
        if request.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(InvokeError::PayloadTooLarge(request.payload.len()));
        }
        let version = match self.inner.functions.resolve(name, selector).await? {
            Resolved::Found(v) => v,
            Resolved::NoFunction => return Err(InvokeError::NotFound(name.clone())),
            Resolved::NoCode => return Err(InvokeError::NoCode(name.clone())),
            Resolved::NoVersion(n) => return Err(InvokeError::NoVersion(name.clone(), n)),
        };
        let started = Instant::now();
        let request_id = request.request_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let timeout = Duration::from_secs(u64::from(version.config.timeout_s));
        let wait = self.inner.settings.queue_wait.unwrap_or(timeout);
        let pool = self.pool(&version);
        let respond =
            |body: Bytes, content_type: Option<String>, function_error: Option<String>, cold_start| InvokeResponse {
                request_id: request_id.clone(),
                version: version.number,
                cold_start,
                body,
                content_type,
                function_error,
                duration: started.elapsed(),
            };
        let lease = match pool.acquire(wait).await {
            Ok(lease) => lease,
            Err(AcquireError::Init(body)) => {
                let kind = error_type_of(&body, None);
                return Ok(respond(body, Some("application/json".into()), Some(kind), true));
            }
            Err(e) => return Err(InvokeError::Unavailable(e)),
        };
        let invocation = Invocation {
            request_id: request_id.clone(),
            payload: request.payload,
            content_type: request.content_type,
            deadline_ms: epoch_ms() + timeout.as_millis() as u64,
            invoked_function_arn: format!(
                "arn:aws:lambda:{}:000000000000:function:{}:{}",
                self.inner.settings.region, name, version.number
            ),
            trace_id: request.trace_id,
            client_context: request.client_context,
        };
        // The invocation runs to completion even if the caller goes away, so the instance
        // is never abandoned mid-request.
        let task = tokio::spawn(async move {
            let result = lease.instance().invoke(invocation, timeout).await;
            (result, lease.cold)
        });
        let (result, cold) = task.await.map_err(|e| InvokeError::Internal(e.to_string()))?;
        let json = Some("application/json".to_owned());
        Ok(match result.map_err(|e| InvokeError::Internal(e.to_string()))? {
            InvokeResult::Answered(Outcome::Response { body, content_type }) => respond(body, content_type, None, cold),
            InvokeResult::Answered(Outcome::FunctionError { body, error_type }) => {
                let kind = error_type_of(&body, error_type);
                respond(body, json, Some(kind), cold)
            }
            InvokeResult::Answered(Outcome::ResponseTooLarge) => {
                let message =
                    format!("Response payload size exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes).");
                let body = error_doc("Function.ResponseSizeTooLarge", &message);
                respond(body, json, Some("Function.ResponseSizeTooLarge".into()), cold)
            }
            InvokeResult::Failed(e) => respond(e.body(), json, Some(e.error_type.to_owned()), cold),
        })
    }
}
