//! The Lambda Runtime API (2018-06-01) served to one instance.
//!
//! Each instance gets its own listener; only that instance is told its address. The
//! platform side is [`RuntimeApi`]: [`RuntimeApi::invoke`] queues an event and waits for the
//! runtime's answer; [`RuntimeApi::init`] resolves when the runtime first asks for work or
//! reports an init error. Error bodies from the runtime are passed through verbatim.

use crate::error_document::{ErrorDocument, error_type};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::{InitOutcome, Invocation, MAX_PAYLOAD_BYTES, Outcome};

const ERROR_TYPE: &str = "lambda-runtime-function-error-type";
const ERROR_BODY_TRAILER: &str = "lambda-runtime-function-error-body";
const RESPONSE_MODE: &str = "lambda-runtime-function-response-mode";
const ERROR_CAUSE_CT: &str = "application/vnd.aws.lambda.error.cause+json";
const HTTP_INTEGRATION_CT: &str = "application/vnd.awslambda.http-integration-response";

type Reply = oneshot::Sender<Outcome>;

/// Connections an instance may hold open to its Runtime API beyond one per slot (responses,
/// errors and init errors on their own connections, clients that reconnect). Past the cap
/// its further connections wait unaccepted: a function that opens thousands from forked
/// children blocks only itself, never the server's descriptors.
pub const SPARE_CONNECTIONS: usize = 16;

struct Shared {
    init: Mutex<Option<oneshot::Sender<InitOutcome>>>,
    queue: tokio::sync::Mutex<mpsc::Receiver<(Invocation, Reply)>>,
    /// Invocations handed out and not yet answered, by request id.
    current: Mutex<HashMap<String, Reply>>,
    /// How many may be outstanding at once (the function's per-instance concurrency).
    slots: usize,
}

/// The platform's side of one instance's Runtime API.
pub struct RuntimeApi {
    addr: SocketAddr,
    sender: mpsc::Sender<(Invocation, Reply)>,
    init: Mutex<Option<oneshot::Receiver<InitOutcome>>>,
    server: JoinHandle<()>,
}

/// The Runtime API stopped (its instance is gone) before answering.
#[derive(Debug, thiserror::Error)]
#[error("the instance's runtime API is closed")]
pub struct Closed;

impl RuntimeApi {
    /// Serves the API on `listener` (bound by the caller, e.g. `127.0.0.1:0`), allowing
    /// `slots` outstanding invocations (1 = classic Lambda).
    pub fn serve(listener: tokio::net::TcpListener, slots: usize) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let slots = slots.max(1);
        let (sender, receiver) = mpsc::channel(slots);
        let (init_tx, init_rx) = oneshot::channel();
        let shared = Arc::new(Shared {
            init: Mutex::new(Some(init_tx)),
            queue: tokio::sync::Mutex::new(receiver),
            current: Mutex::new(HashMap::new()),
            slots,
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .route("/2018-06-01/ping", get(|| async { "pong" }))
            .with_state(shared);
        let server = tokio::spawn(async move {
            let listener = crate::connection_cap::CappedListener::new(listener, slots + SPARE_CONNECTIONS);
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(%e, "runtime API server stopped");
            }
        });
        Ok(Self { addr, sender, init: Mutex::new(Some(init_rx)), server })
    }

    /// `host:port` for `AWS_LAMBDA_RUNTIME_API` (no scheme, as clients expect).
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// Resolves when the runtime first calls `/next` (ready) or `/init/error`. Can be
    /// awaited once.
    pub async fn init(&self) -> Result<InitOutcome, Closed> {
        let rx = self.init.lock().unwrap_or_else(|p| p.into_inner()).take().ok_or(Closed)?;
        rx.await.map_err(|_| Closed)
    }

    /// Hands `invocation` to the runtime's next `/next` and waits for its answer.
    pub async fn invoke(&self, invocation: Invocation) -> Result<Outcome, Closed> {
        let (tx, rx) = oneshot::channel();
        self.sender.send((invocation, tx)).await.map_err(|_| Closed)?;
        rx.await.map_err(|_| Closed)
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = ErrorDocument::new(error_type, message).to_bytes();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], r#"{"status":"OK"}"#).into_response()
}

fn invalid_state() -> Response {
    runtime_error(StatusCode::FORBIDDEN, "InvalidStateTransition", "State transition is not allowed")
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    if shared.current.lock().unwrap_or_else(|p| p.into_inner()).len() >= shared.slots {
        return invalid_state();
    }
    if let Some(init) = shared.init.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = init.send(InitOutcome::Ready);
    }
    // Long poll: one waiter at a time; cancellation-safe if the runtime hangs up.
    let mut queue = shared.queue.lock().await;
    let Some((inv, reply)) = queue.recv().await else {
        return runtime_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "Internal Server Error");
    };
    drop(queue);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set("lambda-runtime-aws-request-id", &inv.request_id);
    set("lambda-runtime-deadline-ms", &inv.deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &inv.invoked_function_arn);
    if let Some(t) = &inv.trace_id {
        set("lambda-runtime-trace-id", t);
    }
    if let Some(c) = &inv.client_context {
        set("lambda-runtime-client-context", c);
    }
    set("content-type", inv.content_type.as_deref().unwrap_or("application/json"));
    shared.current.lock().unwrap_or_else(|p| p.into_inner()).insert(inv.request_id.clone(), reply);
    (StatusCode::OK, headers, inv.payload).into_response()
}

/// Why a runtime's call about an invocation was refused.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// No invocation is outstanding (e.g. a second result for the same id).
    InvalidState,
    InvalidRequestId,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::InvalidState => invalid_state(),
            Refusal::InvalidRequestId => {
                runtime_error(StatusCode::BAD_REQUEST, "InvalidRequestID", "Invalid request ID")
            }
        }
    }
}

fn check(current: &HashMap<String, Reply>, id: &str) -> Result<(), Refusal> {
    if current.contains_key(id) {
        Ok(())
    } else if current.is_empty() {
        Err(Refusal::InvalidState)
    } else {
        Err(Refusal::InvalidRequestId)
    }
}

fn is_current(shared: &Shared, id: &str) -> Result<(), Refusal> {
    check(&shared.current.lock().unwrap_or_else(|p| p.into_inner()), id)
}

/// Takes the current invocation's reply if `id` names it.
fn take_current(shared: &Shared, id: &str) -> Result<Reply, Refusal> {
    let mut current = shared.current.lock().unwrap_or_else(|p| p.into_inner());
    check(&current, id)?;
    current.remove(id).ok_or(Refusal::InvalidState)
}

enum Read {
    Done { data: Bytes, trailers: Option<HeaderMap> },
    TooLarge,
    Truncated,
}

/// Bytes read and thrown away after a body passes the limit, so the runtime can finish
/// sending and read its 413 instead of dying on a broken pipe. Past this, hang up.
const DISCARD_LIMIT: usize = 64 * 1024 * 1024;

async fn read_body(mut body: Body) -> Read {
    let mut data = BytesMut::new();
    let mut total = 0usize;
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return Read::Truncated };
        match frame.into_data() {
            Ok(chunk) => {
                total += chunk.len();
                if total <= MAX_PAYLOAD_BYTES {
                    data.extend_from_slice(&chunk);
                } else if total > DISCARD_LIMIT {
                    return Read::TooLarge;
                }
            }
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    if total > MAX_PAYLOAD_BYTES { Read::TooLarge } else { Read::Done { data: data.freeze(), trailers } }
}

fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = is_current(&shared, &id) {
        return r.into_response();
    }
    if let Some(mode) = header_str(&headers, RESPONSE_MODE)
        && !matches!(mode.as_str(), "streaming" | "buffered")
    {
        return runtime_error(StatusCode::BAD_REQUEST, "InvalidFunctionResponseMode", "Invalid function response mode");
    }
    let read = read_body(body).await;
    let Ok(reply) = take_current(&shared, &id) else {
        return invalid_state();
    };
    match read {
        Read::TooLarge => {
            let _ = reply.send(Outcome::ResponseTooLarge);
            runtime_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!("Exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes)."),
            )
        }
        Read::Truncated => {
            let doc = ErrorDocument::new(error_type::TRUNCATED_RESPONSE, "the runtime's response was cut short");
            let _ = reply.send(Outcome::FunctionError { body: doc.to_bytes(), error_type: Some(doc.error_type) });
            runtime_error(StatusCode::BAD_REQUEST, "TruncatedHTTPRequest", "Received a truncated HTTP request")
        }
        Read::Done { data, trailers } => {
            // A streamed response that failed midway reports the error in trailers.
            let failed = trailers.as_ref().and_then(|t| header_str(t, ERROR_TYPE));
            let outcome = match failed {
                Some(error_type) => {
                    let body = trailers
                        .as_ref()
                        .and_then(|t| header_str(t, ERROR_BODY_TRAILER))
                        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                        .unwrap_or_default();
                    Outcome::FunctionError { body: body.into(), error_type: Some(error_type) }
                }
                None => match header_str(&headers, "content-type").as_deref() {
                    Some(HTTP_INTEGRATION_CT) => http_integration(&data),
                    ct => Outcome::Response { body: data, content_type: ct.map(str::to_owned) },
                },
            };
            let _ = reply.send(outcome);
            accepted()
        }
    }
}

async fn error(State(shared): State<Arc<Shared>>, Path(id): Path<String>, headers: HeaderMap, body: Body) -> Response {
    if let Err(r) = is_current(&shared, &id) {
        return r.into_response();
    }
    let read = read_body(body).await;
    let Ok(reply) = take_current(&shared, &id) else {
        return invalid_state();
    };
    let Read::Done { data, .. } = read else {
        let doc = ErrorDocument::new(error_type::UNKNOWN, "the runtime's error report was unreadable or too large");
        let _ = reply.send(Outcome::FunctionError { body: doc.to_bytes(), error_type: None });
        return runtime_error(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", "error body too large");
    };
    let body = strip_error_cause(&headers, data);
    let _ = reply.send(Outcome::FunctionError { body, error_type: header_str(&headers, ERROR_TYPE) });
    accepted()
}

/// A streamed HTTP response (Node's `awslambda.HttpResponseStream`, Rust's `lambda_http`):
/// a JSON prelude with status, headers and cookies, 8 NUL bytes, then the body. Turned into
/// the structured result HTTP triggers understand, with the body in base64.
fn http_integration(data: &Bytes) -> Outcome {
    let split = data.windows(8).position(|w| w == [0u8; 8]);
    let (prelude, body) = match split {
        Some(i) => (&data[..i], &data[i + 8..]),
        None => (&data[..], &[][..]),
    };
    let mut doc = match serde_json::from_slice::<serde_json::Value>(prelude) {
        Ok(serde_json::Value::Object(o)) => o,
        _ => {
            let doc = ErrorDocument::new(
                error_type::INVALID_RESPONSE,
                "the streamed response's prelude is not a JSON object",
            );
            return Outcome::FunctionError { body: doc.to_bytes(), error_type: Some(doc.error_type) };
        }
    };
    doc.entry("statusCode").or_insert(200.into());
    doc.insert("body".into(), base64::engine::general_purpose::STANDARD.encode(body).into());
    doc.insert("isBase64Encoded".into(), true.into());
    Outcome::Response {
        body: serde_json::Value::Object(doc).to_string().into(),
        content_type: Some("application/json".into()),
    }
}

/// The error-cause content type carries X-Ray data the caller never sees.
fn strip_error_cause(headers: &HeaderMap, data: Bytes) -> Bytes {
    if header_str(headers, "content-type").as_deref() != Some(ERROR_CAUSE_CT) {
        return data;
    }
    match serde_json::from_slice::<serde_json::Value>(&data) {
        Ok(serde_json::Value::Object(mut doc)) => {
            doc.remove("errorCause");
            serde_json::Value::Object(doc).to_string().into()
        }
        _ => data,
    }
}

async fn init_error(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let Some(init) = shared.init.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return invalid_state();
    };
    let data = match read_body(body).await {
        Read::Done { data, .. } => data,
        _ => ErrorDocument::new(error_type::UNKNOWN, "init error report unreadable").to_bytes(),
    };
    let _ = init.send(InitOutcome::Failed { body: data, error_type: header_str(&headers, ERROR_TYPE) });
    accepted()
}
