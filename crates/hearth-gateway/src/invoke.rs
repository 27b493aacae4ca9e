//! One synchronous invocation, from resolved version to the function's answer.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use hearth_agent::{
    ErrorDocument, ErrorReport, Invocation, InvokeResult, MAX_PAYLOAD_BYTES, Outcome, epoch_ms, error_type,
};
use hearth_store::StoreError;
use hearth_types::{FunctionName, InvocationRecord, LogLine, LogStream, StartSource, VersionSelector};
use tracing::Instrument as _;

use crate::Gateway;
use crate::completion::Completion;
use crate::function_cache::Resolved;
use crate::version_pool::AcquireError;

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
    /// Which delivery of `request_id` this is (an asynchronous invocation's retries keep
    /// its id); `None` is the first.
    pub attempt: Option<u32>,
}

/// What the caller gets back. A function error is still a response (Lambda semantics):
/// `function_error` is set and `body` is the error document.
#[derive(Debug, Clone)]
pub struct InvokeResponse {
    pub request_id: String,
    pub version: u32,
    pub cold_start: bool,
    /// For a cold start, where its instance came from.
    pub start_source: Option<StartSource>,
    pub body: Bytes,
    pub content_type: Option<String>,
    /// The error type when the function (or the platform on its behalf) failed.
    pub function_error: Option<String>,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    // Names are quoted as strings (`"hello"`), never as the newtype's Debug form.
    #[error("function {name:?} does not exist; `hearth fn list` shows the functions there are", name = .0.as_str())]
    NotFound(FunctionName),
    #[error("function {name:?} has no code yet; deploy some first", name = .0.as_str())]
    NoCode(FunctionName),
    #[error("function {name:?} has no version {n}; `hearth fn versions {name}` lists them", name = .0.as_str(), n = .1)]
    NoVersion(FunctionName, u32),
    #[error(
        "function {name:?} has no alias {alias:?}; `hearth alias list {name}` lists them",
        name = .0.as_str(), alias = .1.as_str()
    )]
    NoAlias(FunctionName, hearth_types::AliasName),
    #[error("the request payload is {0} bytes, more than the {MAX_PAYLOAD_BYTES}-byte limit")]
    PayloadTooLarge(usize),
    #[error(transparent)]
    Unavailable(AcquireError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The type a failure reports: the one its document names, else the one sent beside it.
fn error_type_of(body: &[u8], fallback: Option<String>) -> String {
    ErrorDocument::type_in(body).or(fallback).unwrap_or_else(|| error_type::UNHANDLED.into())
}

impl Gateway {
    /// Runs one invocation. Every log line of the server while it runs carries its request
    /// id (the `invocation` span: `request_id`, `function`, `attempt`).
    pub async fn invoke(
        &self,
        name: &FunctionName,
        selector: VersionSelector,
        mut request: InvokeRequest,
    ) -> Result<InvokeResponse, InvokeError> {
        let request_id = request.request_id.get_or_insert_with(hearth_types::new_request_id).clone();
        let span = tracing::info_span!(
            "invocation",
            request_id = %request_id,
            function = %name,
            attempt = request.attempt.unwrap_or(1)
        );
        self.invoke_in_span(name, selector, request).instrument(span).await
    }

    async fn invoke_in_span(
        &self,
        name: &FunctionName,
        selector: VersionSelector,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, InvokeError> {
        if request.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(InvokeError::PayloadTooLarge(request.payload.len()));
        }
        let qualifier = selector.qualifier();
        let resolved = self.inner.functions.resolve(name, &selector).instrument(tracing::info_span!("route")).await?;
        let version = match resolved {
            Resolved::Found(v) => v,
            Resolved::NoFunction => return Err(InvokeError::NotFound(name.clone())),
            Resolved::NoCode => return Err(InvokeError::NoCode(name.clone())),
            Resolved::NoVersion(n) => return Err(InvokeError::NoVersion(name.clone(), n)),
            Resolved::NoAlias(a) => return Err(InvokeError::NoAlias(name.clone(), a)),
        };
        let started = Instant::now();
        let started_at_wall = Utc::now();
        let request_id = request.request_id.clone().unwrap_or_else(hearth_types::new_request_id);
        let attempt = request.attempt.unwrap_or(1);
        let timeout = Duration::from_secs(u64::from(version.config.timeout_s));
        let wait = self.inner.settings.queue_wait.unwrap_or(timeout);
        let pool = self.pool(&version);
        let respond =
            |body: Bytes, content_type: Option<String>, function_error: Option<String>, cold_start| InvokeResponse {
                request_id: request_id.clone(),
                version: version.number,
                cold_start,
                start_source: None,
                body,
                content_type,
                function_error,
                duration: started.elapsed(),
            };
        let meter = &self.inner.meter;
        let platform_line = |message: String| LogLine {
            seq: 0,
            function: name.clone(),
            request_id: Some(request_id.clone()),
            at: Utc::now(),
            stream: LogStream::Platform,
            message,
        };
        let record = |duration: Duration,
                      cold_start,
                      source: Option<StartSource>,
                      cpu: Option<Duration>,
                      init: Option<Duration>,
                      peak: Option<u64>,
                      error_type: Option<String>| {
            if !self.inner.settings.telemetry {
                return;
            }
            let ms = duration.as_secs_f64() * 1000.0;
            self.inner.metrics.invoked(name, error_type.is_some(), duration);
            meter.record(InvocationRecord {
                request_id: request_id.clone(),
                attempt,
                qualifier: qualifier.clone(),
                function_id: version.function_id,
                function: name.clone(),
                version: version.number,
                started_at: started_at_wall,
                duration_ms: ms,
                billed_ms: ms.ceil() as u64,
                memory_mb: version.config.memory_mb,
                max_memory_used_mb: peak,
                cold_start,
                start_source: if cold_start { source } else { None },
                cpu_time_ms: cpu.map(|d| d.as_secs_f64() * 1000.0),
                init_duration_ms: init.map(|d| d.as_secs_f64() * 1000.0),
                outcome: if error_type.is_some() { "error" } else { "success" }.into(),
                error_type,
            })
        };
        let lease = match pool.acquire(wait).instrument(tracing::info_span!("acquire")).await {
            Ok(lease) => lease,
            Err(AcquireError::Init(ErrorReport { error_type: kind, body })) => {
                // The error type is the function's own words: one line, of bounded length.
                let kind_text: String = kind.chars().take(256).map(|c| if c.is_control() { ' ' } else { c }).collect();
                meter.log(platform_line(format!(
                    "INIT_REPORT RequestId: {request_id}\tStatus: error\tError Type: {kind_text}"
                )));
                record(Duration::ZERO, true, None, None, None, None, Some(kind.clone()));
                return Ok(respond(body, Some("application/json".into()), Some(kind), true));
            }
            Err(e) => return Err(InvokeError::Unavailable(e)),
        };
        let init = lease.init_duration();
        if self.inner.settings.telemetry {
            self.inner.metrics.acquired(started.elapsed());
        }
        let source = lease.cold.then(|| lease.instance().start_source());
        if let (Some(took), Some(source)) = (init.filter(|_| self.inner.settings.telemetry), source) {
            self.inner.metrics.cold_start(name, source, took);
        }
        // START waits in the meter for END and REPORT, to be stored with them (`platform_lines.rs`).
        meter.log_start(platform_line(format!("START RequestId: {request_id} Version: {}", version.number)));
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
        // is never abandoned mid-request (in the caller's task while the caller waits).
        tracing::debug!(
            cold = lease.cold,
            instance = lease.instance().id(),
            version = version.number,
            "instance acquired"
        );
        let task = Completion::new(
            async move {
                let began = Instant::now();
                let result = lease.instance().invoke_metered(invocation, timeout).await;
                let took = began.elapsed();
                (result, lease.cold, took, lease.instance().max_memory_used_mb())
            }
            .instrument(tracing::info_span!("invoke")),
        );
        let (result, cold, took, peak) = task.await.map_err(InvokeError::Internal)?;
        let (result, cpu) = match result {
            Ok((result, cpu)) => (Ok(result), cpu),
            Err(e) => (Err(e), None),
        };
        let _response = tracing::info_span!("response").entered();
        let json = Some("application/json".to_owned());
        let response = match result.map_err(|e| InvokeError::Internal(e.to_string()))? {
            InvokeResult::Answered(Outcome::Response { body, content_type }) => respond(body, content_type, None, cold),
            InvokeResult::Answered(Outcome::FunctionError { body, error_type }) => {
                let kind = error_type_of(&body, error_type);
                respond(body, json, Some(kind), cold)
            }
            InvokeResult::Answered(Outcome::ResponseTooLarge) => {
                let message =
                    format!("Response payload size exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes).");
                let doc = ErrorDocument::new(error_type::RESPONSE_TOO_LARGE, message);
                respond(doc.to_bytes(), json, Some(doc.error_type), cold)
            }
            InvokeResult::Failed(e) => respond(e.body(), json, Some(e.error_type.to_owned()), cold),
        };
        let ms = took.as_secs_f64() * 1000.0;
        let init_text =
            init.map(|d| format!("\tInit Duration: {:.2} ms", d.as_secs_f64() * 1000.0)).unwrap_or_default();
        let peak_text = peak.map(|mb| format!("\tMax Memory Used: {mb} MB")).unwrap_or_default();
        let cpu_text = cpu.map(|d| format!("\tCPU Time: {:.3} ms", d.as_secs_f64() * 1000.0)).unwrap_or_default();
        meter.log_end_and_report(platform_line(format!(
            "END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {ms:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB{peak_text}{init_text}{cpu_text}",
            ms.ceil() as u64,
            version.config.memory_mb,
        )));
        record(took, cold, source, cpu, init, peak, response.function_error.clone());
        let response = InvokeResponse { start_source: source, ..response };
        tracing::debug!(duration_ms = ms, error = response.function_error.as_deref(), "invocation finished");
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_quote_the_name_not_its_type() {
        let name: FunctionName = "hello".parse().unwrap();
        assert_eq!(
            InvokeError::NoVersion(name.clone(), 9).to_string(),
            "function \"hello\" has no version 9; `hearth fn versions hello` lists them"
        );
        for e in [InvokeError::NotFound(name.clone()), InvokeError::NoCode(name)] {
            let text = e.to_string();
            assert!(text.starts_with("function \"hello\" ") && !text.contains("FunctionName"), "{text}");
        }
    }
}
