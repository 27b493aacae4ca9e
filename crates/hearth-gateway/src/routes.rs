//! HTTP: `POST /v1/functions/{name}/invoke`, `GET /v1/functions/{name}/instances`, and the
//! whole application (control plane + gateway) with its OpenAPI document.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hearth_agent::MAX_PAYLOAD_BYTES;
use hearth_api::{ApiError, ApiErrorBody, AppState, Authorized, Caller, needs};
use hearth_types::api::{InstanceList, InstanceView, NodeView, PrewarmedView};
use hearth_types::{FunctionName, Scope, TriggerAuth, VersionSelector};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};

use crate::{AcquireError, Gateway, InvokeError, InvokeRequest};

#[derive(Clone)]
pub struct GatewayState {
    pub api: AppState,
    pub gateway: Gateway,
}

impl FromRef<GatewayState> for AppState {
    fn from_ref(s: &GatewayState) -> AppState {
        s.api.clone()
    }
}

/// The two origins of `hearth up`, each served on its own listener: the API (control
/// plane, invoke and Lambda APIs, `/openapi.json`; where tokens and the console live) and
/// the HTTP triggers (`/fn/{name}/...` and trigger paths; where functions' own responses
/// are served). A function's HTML can never run script on the API's origin.
pub struct Apps {
    pub api: Router,
    pub triggers: Router,
}

/// Both routers, sharing one gateway.
pub fn apps(api: AppState, gateway: Gateway) -> Apps {
    api.add_deploy_hooks(std::sync::Arc::new(gateway.clone()));
    let state = GatewayState { api: api.clone(), gateway };
    let gateway_routes = Router::new()
        .route("/v1/functions/{name}/invoke", post(invoke))
        .route("/v1/functions/{name}/instances", get(instances))
        .route("/v1/functions/{name}/logs", get(logs))
        .route("/v1/functions/{name}/invocations", get(invocations))
        .route("/v1/node", get(node))
        .route("/2015-03-31/functions/{name}/invocations", post(crate::lambda_api::invocations))
        .with_state(state.clone());
    let api = hearth_api::control_plane(api)
        .merge(gateway_routes)
        .route("/openapi.json", get(openapi_json))
        .fallback(hearth_api::not_found)
        .method_not_allowed_fallback(hearth_api::method_not_allowed);
    let triggers = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .fallback_service(axum::routing::any(dispatch).with_state(state));
    Apps { api, triggers }
}

/// Requests no API route claims: the default URL `/fn/{name}/...` (token with the invoke
/// scope required) and HTTP triggers; anything else is `RouteNotFound`.
async fn dispatch(State(state): State<GatewayState>, request: axum::extract::Request) -> Response {
    match route_http(state, request).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route_http(state: GatewayState, request: axum::extract::Request) -> Result<Response, ApiError> {
    use axum::extract::FromRequestParts;
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let (function, proxy, auth) = if let Some(rest) = path.strip_prefix("/fn/") {
        let (name, proxy) = rest.split_once('/').unwrap_or((rest, ""));
        (name.to_owned(), proxy.to_owned(), TriggerAuth::Token)
    } else if let Some((trigger, proxy)) = state.gateway.inner.triggers.lookup(&path) {
        if !trigger.methods.is_empty() && !trigger.methods.iter().any(|m| m == parts.method.as_str()) {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{} accepts {}", trigger.path, trigger.methods.join(", ")),
            ));
        }
        (trigger.function.to_string(), proxy, trigger.auth)
    } else {
        return Err(hearth_api::not_found().await);
    };
    if auth == TriggerAuth::Token {
        Caller::from_request_parts(&mut parts, &state).await?.require(Scope::Invoke)?;
    }
    crate::http_event::strip_credentials(&mut parts.headers, auth == TriggerAuth::Token);
    let name = name_of(&function)?;
    let body = read_event(Body::new(body)).await?;
    let request_id = uuid::Uuid::new_v4().to_string();
    let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0);
    let event = crate::http_event::event(&parts, &body, &request_id, &proxy, peer);
    let request = InvokeRequest {
        payload: event.to_string().into(),
        content_type: Some("application/json".into()),
        request_id: Some(request_id),
        ..Default::default()
    };
    let r = state.gateway.invoke(&name, VersionSelector::Latest, request).await?;
    Ok(crate::http_event::response(&r))
}

/// An event body, refused past 6 MiB.
pub(crate) async fn read_event(body: Body) -> Result<bytes::Bytes, ApiError> {
    match Limited::new(body, MAX_PAYLOAD_BYTES).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(InvokeError::PayloadTooLarge(MAX_PAYLOAD_BYTES + 1).into())
        }
        Err(e) => Err(ApiError::bad_request("IncompleteBody", format!("could not read the request body: {e}"))),
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(invoke, instances, node, logs, invocations, openapi_json, crate::lambda_api::invocations),
    components(schemas(ApiErrorBody))
)]
pub struct GatewayDoc;

/// The complete OpenAPI document (checked in as `openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    hearth_api::document_with(GatewayDoc::openapi())
}

/// This API's OpenAPI document (no token needed).
#[utoipa::path(
    get, path = "/openapi.json", tag = "system",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object, content_type = "application/json"))
)]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvokeQuery {
    #[param(schema_with = hearth_types::schema::version)]
    pub version: Option<String>,
}

fn name_of(raw: &str) -> Result<FunctionName, ApiError> {
    Ok(raw.parse::<FunctionName>()?)
}

impl From<InvokeError> for ApiError {
    fn from(e: InvokeError) -> Self {
        let msg = e.to_string();
        match e {
            InvokeError::NotFound(n) => ApiError::function_not_found(n.as_str()),
            InvokeError::NoCode(_) => ApiError::new(StatusCode::CONFLICT, "CodeNotFound", msg),
            InvokeError::NoVersion(..) => ApiError::new(StatusCode::NOT_FOUND, "VersionNotFound", msg),
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
}

/// Invoke a function synchronously.
///
/// The body is the event. The response body is the function's result; when the function
/// failed it is the error document and `X-Hearth-Function-Error` names the error type.
#[utoipa::path(
    post, path = "/v1/functions/{name}/invoke", tag = "invoke",
    params(("name" = FunctionName, Path, description = "Function name"), InvokeQuery),
    request_body(content = Option<serde_json::Value>, content_type = "application/json",
                 description = "The event: any JSON value (read as JSON whatever the `Content-Type`); no body is the event `{}`"),
    responses(
        (status = 200, description = "The function's result (or error document), in the content type its runtime sent (JSON for Python and Node.js)",
         content((serde_json::Value = "application/json"), (hearth_types::api::Binary = "*/*")),
         headers(("X-Hearth-Request-Id" = String), ("X-Hearth-Cold-Start" = bool), ("X-Hearth-Version" = u32),
                 ("X-Hearth-Function-Error" = String, description = "Set when the function failed"))),
        (status = 400, description = "The event is not JSON (`InvalidRequestContent`), or an invalid function name or version (`InvalidFunctionName`, `InvalidVersion`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`) or version (`VersionNotFound`)", body = ApiErrorBody),
        (status = 409, description = "The function has no code yet (`CodeNotFound`)", body = ApiErrorBody),
        (status = 413, description = "Event over 6 MiB (`RequestTooLarge`)", body = ApiErrorBody),
        (status = 429, description = "Too many requests held for instances (`TooManyRequests`), or no memory left on the node for an instance (`NodeMemoryFull`)", body = ApiErrorBody),
        (status = 503, description = "No instance within the wait limit (`InstanceUnavailable`), or too many bodies being received (`ServerBusy`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
async fn invoke(
    _: Authorized<needs::Invoke>,
    State(state): State<GatewayState>,
    Path(name): Path<String>,
    query: Result<Query<InvokeQuery>, QueryRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let name = name_of(&name)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request("InvalidQuery", e.body_text()))?;
    let selector = match query.version.as_deref() {
        None => VersionSelector::Latest,
        Some(v) => v.parse().map_err(|e: String| ApiError::bad_request("InvalidVersion", e))?,
    };
    let payload = read_event(body).await?;
    // The body is the JSON event whatever its Content-Type (`curl -d` sends a form type), as
    // on Lambda; no body is the empty event, as the Lambda Invoke API and the CLI send it.
    if payload.is_empty() {
        return invoke_event(state, name, selector, bytes::Bytes::from_static(b"{}")).await;
    }
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&payload) {
        return Err(ApiError::bad_request(
            "InvalidRequestContent",
            format!("the event must be JSON: could not parse the request body ({e})"),
        ));
    }
    invoke_event(state, name, selector, payload).await
}

async fn invoke_event(
    state: GatewayState,
    name: FunctionName,
    selector: VersionSelector,
    payload: bytes::Bytes,
) -> Result<Response, ApiError> {
    let request = InvokeRequest { payload, content_type: Some("application/json".into()), ..Default::default() };
    let r = state.gateway.invoke(&name, selector, request).await?;
    let mut resp = r.body.into_response();
    let h = resp.headers_mut();
    let ct = r.content_type.as_deref().unwrap_or("application/json");
    h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap_or(HeaderValue::from_static("application/json")));
    if let Ok(v) = HeaderValue::from_str(&r.request_id) {
        h.insert("x-hearth-request-id", v);
    }
    h.insert("x-hearth-cold-start", HeaderValue::from_static(if r.cold_start { "true" } else { "false" }));
    h.insert("x-hearth-version", HeaderValue::from(r.version));
    if let Some(kind) = &r.function_error
        && let Ok(v) = HeaderValue::from_str(kind)
    {
        h.insert("x-hearth-function-error", v);
    }
    Ok(resp)
}

/// List a function's live instances.
#[utoipa::path(
    get, path = "/v1/functions/{name}/instances", tag = "invoke",
    params(("name" = FunctionName, Path, description = "Function name")),
    responses(
        (status = 200, body = InstanceList),
        (status = 400, description = "Invalid function name (`InvalidFunctionName`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
async fn instances(
    _: Authorized<needs::Read>,
    State(state): State<GatewayState>,
    Path(name): Path<String>,
) -> Result<Json<InstanceList>, ApiError> {
    let name = name_of(&name)?;
    let f = state.gateway.function(&name).await?.ok_or_else(|| ApiError::function_not_found(name.as_str()))?;
    let instances = state
        .gateway
        .instances(f.id)
        .into_iter()
        .map(|i| InstanceView {
            id: i.id,
            version: i.version,
            state: i.state,
            started_at: i.started_at.into(),
            requests_served: i.requests_served,
            last_used: i.last_used.into(),
        })
        .collect();
    Ok(Json(InstanceList { instances }))
}

/// This node's memory and pre-warmed sandboxes.
#[utoipa::path(
    get, path = "/v1/node", tag = "invoke",
    responses((status = 200, body = NodeView)),
    security(("bearer" = []))
)]
async fn node(_: Authorized<needs::Read>, State(state): State<GatewayState>) -> Result<Json<NodeView>, ApiError> {
    let s = state.gateway.node_status();
    Ok(Json(NodeView {
        memory_limit_mb: s.memory_limit_mb,
        memory_committed_mb: s.memory_committed_mb,
        prewarm_budget_mb: s.prewarm_budget_mb,
        prewarmed: s
            .prewarmed
            .into_iter()
            .map(|(k, ready)| PrewarmedView { runtime: k.runtime.to_string(), memory_mb: k.memory_mb, ready })
            .collect(),
    }))
}

/// Most lines or records one request returns.
const PAGE_MAX: usize = 1_000;

/// `limit`: 1 to [`PAGE_MAX`].
fn page_limit_schema() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .minimum(Some(1))
        .maximum(Some(PAGE_MAX as u64))
        .description(Some(format!("At most this many, 1..={PAGE_MAX}.")))
        .build()
        .into()
}

/// A `limit` query parameter: `default` when absent, refused outside 1..=[`PAGE_MAX`].
fn page_limit(limit: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=PAGE_MAX).contains(&n) => Ok(n),
        Some(n) => {
            Err(ApiError::bad_request("InvalidQuery", format!("limit must be between 1 and {PAGE_MAX}, got {n}")))
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only lines after this position (the `next` of the previous page); default 0.
    pub after: Option<i64>,
    /// Only this invocation's lines.
    pub request_id: Option<String>,
    /// At most this many lines (default 1000).
    #[param(schema_with = page_limit_schema)]
    pub limit: Option<usize>,
}

/// Read a function's log: its output lines and the platform's START/END/REPORT lines.
#[utoipa::path(
    get, path = "/v1/functions/{name}/logs", tag = "invoke",
    params(("name" = FunctionName, Path, description = "Function name"), LogQuery),
    responses(
        (status = 200, body = hearth_types::api::LogPage),
        (status = 400, description = "Invalid function name (`InvalidFunctionName`) or query (`InvalidQuery`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
async fn logs(
    _: Authorized<needs::Read>,
    State(state): State<GatewayState>,
    Path(name): Path<String>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Json<hearth_types::api::LogPage>, ApiError> {
    let name = name_of(&name)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("InvalidQuery", e.body_text()))?;
    let limit = page_limit(q.limit, PAGE_MAX)?;
    if state.gateway.function(&name).await?.is_none() {
        return Err(ApiError::function_not_found(name.as_str()));
    }
    let after = q.after.unwrap_or(0);
    let lines = state.gateway.logs(&name, after, q.request_id.as_deref(), limit).await?;
    let next = lines.last().map_or(after, |l| l.seq);
    Ok(Json(hearth_types::api::LogPage { lines, next }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvocationQuery {
    /// At most this many records, newest first (default 100).
    #[param(schema_with = page_limit_schema)]
    pub limit: Option<usize>,
}

/// A function's invocation records (duration, billed ms, memory, cold start, outcome).
#[utoipa::path(
    get, path = "/v1/functions/{name}/invocations", tag = "invoke",
    params(("name" = FunctionName, Path, description = "Function name"), InvocationQuery),
    responses(
        (status = 200, body = hearth_types::api::InvocationList),
        (status = 400, description = "Invalid function name (`InvalidFunctionName`) or query (`InvalidQuery`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
async fn invocations(
    _: Authorized<needs::Read>,
    State(state): State<GatewayState>,
    Path(name): Path<String>,
    query: Result<Query<InvocationQuery>, QueryRejection>,
) -> Result<Json<hearth_types::api::InvocationList>, ApiError> {
    let name = name_of(&name)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("InvalidQuery", e.body_text()))?;
    let limit = page_limit(q.limit, 100)?;
    if state.gateway.function(&name).await?.is_none() {
        return Err(ApiError::function_not_found(name.as_str()));
    }
    Ok(Json(hearth_types::api::InvocationList { invocations: state.gateway.invocations(&name, limit).await? }))
}
