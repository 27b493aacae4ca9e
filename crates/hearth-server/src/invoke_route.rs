//! `POST /v1/functions/{name}/invoke`, and what every invoking route shares: reading the
//! event, and the function's answer as a response.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hearth_agent::MAX_PAYLOAD_BYTES;
use hearth_api::{ApiError, ApiErrorBody, Authorized, needs};
use hearth_gateway::{InvokeError, InvokeRequest, InvokeResponse};
use hearth_types::{FunctionName, VersionSelector};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::apps::ServerState;
use crate::invoke_error::api_error;

/// An event body, refused past 6 MiB.
pub(crate) async fn read_event(body: Body) -> Result<bytes::Bytes, ApiError> {
    match Limited::new(body, MAX_PAYLOAD_BYTES).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(api_error(InvokeError::PayloadTooLarge(MAX_PAYLOAD_BYTES + 1)))
        }
        Err(e) => Err(ApiError::bad_request("IncompleteBody", format!("could not read the request body: {e}"))),
    }
}

/// A function name from a path.
pub(crate) fn name_of(raw: &str) -> Result<FunctionName, ApiError> {
    Ok(raw.parse::<FunctionName>()?)
}

/// The function's result (or error document) as the body, in the content type its runtime
/// sent (JSON when it named none); each route adds its own headers.
pub(crate) fn answer(r: InvokeResponse) -> Response {
    let ct = r.content_type.as_deref().and_then(|ct| HeaderValue::from_str(ct).ok());
    let mut resp = r.body.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, ct.unwrap_or(HeaderValue::from_static("application/json")));
    resp
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvokeQuery {
    #[param(schema_with = hearth_types::schema::version)]
    pub version: Option<String>,
}

/// `X-Hearth-Invocation-Type`.
const INVOCATION_TYPES: [&str; 2] = ["RequestResponse", "Event"];

fn invocation_type_schema() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(INVOCATION_TYPES))
        .default(Some("RequestResponse".into()))
        .build()
        .into()
}

#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct InvokeHeaders {
    /// `RequestResponse` (default): run it and answer with its result. `Event`: store the
    /// event durably and answer `202` at once; it is delivered at least once, with retries
    /// (`GET /v1/invocations/{id}` follows it).
    #[param(rename = "X-Hearth-Invocation-Type", schema_with = invocation_type_schema)]
    pub invocation_type: Option<String>,
}

/// Whether the request asks for an asynchronous invocation.
fn is_event(headers: &axum::http::HeaderMap) -> Result<bool, ApiError> {
    match headers.get("x-hearth-invocation-type").map(|v| v.to_str()) {
        None => Ok(false),
        Some(Ok("RequestResponse")) => Ok(false),
        Some(Ok("Event")) => Ok(true),
        Some(_) => Err(ApiError::bad_request(
            "InvalidInvocationType",
            "X-Hearth-Invocation-Type is RequestResponse (the default) or Event",
        )),
    }
}

/// Invoke a function, synchronously or (with `X-Hearth-Invocation-Type: Event`) not.
///
/// The body is the event. The response body is the function's result; when the function
/// failed it is the error document and `X-Hearth-Function-Error` names the error type. An
/// asynchronous invocation is answered `202` once the event is stored on disk.
#[utoipa::path(
    post, path = "/v1/functions/{name}/invoke", tag = "invoke",
    params(("name" = FunctionName, Path, description = "Function name"), InvokeQuery, InvokeHeaders),
    request_body(content = Option<serde_json::Value>, content_type = "application/json",
                 description = "The event: any JSON value (read as JSON whatever the `Content-Type`); no body is the event `{}`"),
    responses(
        (status = 200, description = "The function's result (or error document), in the content type its runtime sent (JSON for Python and Node.js)",
         content((serde_json::Value = "application/json"), (hearth_types::api::Binary = "*/*")),
         headers(("X-Hearth-Request-Id" = String), ("X-Hearth-Cold-Start" = bool), ("X-Hearth-Version" = u32),
                 ("X-Hearth-Start-Source" = String, description = "On a cold start, where its instance came from: `full`, `stem_cell`, `wasm_compile`, `wasm_disk_cache` or `wasm_memory`"),
                 ("X-Hearth-Function-Error" = String, description = "Set when the function failed"))),
        (status = 202, description = "Asynchronous: the event is stored and will be delivered", body = hearth_types::api::EventAccepted,
         headers(("X-Hearth-Request-Id" = String), ("Location" = String, description = "`/v1/invocations/{id}`"))),
        (status = 400, description = "The event is not JSON (`InvalidRequestContent`), an invalid function name or version (`InvalidFunctionName`, `InvalidVersion`), or invocation type (`InvalidInvocationType`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`) or version (`VersionNotFound`)", body = ApiErrorBody),
        (status = 409, description = "The function has no code yet (`CodeNotFound`)", body = ApiErrorBody),
        (status = 413, description = "Event over 6 MiB, or over 1 MiB when asynchronous (`RequestTooLarge`)", body = ApiErrorBody),
        (status = 429, description = "Too many requests held for instances (`TooManyRequests`), no memory left on the node for an instance (`NodeMemoryFull`), or the function's asynchronous queue is full (`EventQueueFull`)", body = ApiErrorBody),
        (status = 503, description = "No instance within the wait limit (`InstanceUnavailable`), or too many bodies being received (`ServerBusy`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn invoke(
    _: Authorized<needs::Invoke>,
    State(state): State<ServerState>,
    Path(name): Path<String>,
    query: Result<Query<InvokeQuery>, QueryRejection>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let name = name_of(&name)?;
    let event = is_event(&headers)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request("InvalidQuery", e.body_text()))?;
    let selector = match query.version.as_deref() {
        None => VersionSelector::Latest,
        Some(v) => v.parse().map_err(|e: String| ApiError::bad_request("InvalidVersion", e))?,
    };
    let mut payload = read_event(body).await?;
    // The body is the JSON event whatever its Content-Type (`curl -d` sends a form type), as
    // on Lambda; no body is the empty event, as the Lambda Invoke API and the CLI send it.
    if payload.is_empty() {
        payload = bytes::Bytes::from_static(b"{}");
    } else if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&payload) {
        return Err(ApiError::bad_request(
            "InvalidRequestContent",
            format!("the event must be JSON: could not parse the request body ({e})"),
        ));
    }
    if event {
        let request_id =
            crate::event_routes::accept(&state, &name, selector, payload, hearth_types::EventSource::Api).await?;
        let location = format!("/v1/invocations/{request_id}");
        let body = hearth_types::api::EventAccepted {
            request_id: request_id.clone(),
            status: hearth_types::EventStatus::Queued,
        };
        let mut resp = (axum::http::StatusCode::ACCEPTED, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert("x-hearth-request-id", HeaderValue::from_str(&request_id).expect("a UUID is a header value"));
        h.insert(header::LOCATION, HeaderValue::from_str(&location).expect("a path is a header value"));
        return Ok(resp);
    }
    let request = InvokeRequest { payload, content_type: Some("application/json".into()), ..Default::default() };
    let r = state.gateway.invoke(&name, selector, request).await.map_err(api_error)?;
    let (request_id, cold_start, version) = (r.request_id.clone(), r.cold_start, r.version);
    let (function_error, source) = (r.function_error.clone(), r.start_source);
    let mut resp = answer(r);
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-hearth-request-id", v);
    }
    h.insert("x-hearth-cold-start", HeaderValue::from_static(if cold_start { "true" } else { "false" }));
    if let Some(source) = source {
        h.insert("x-hearth-start-source", HeaderValue::from_static(source.as_str()));
    }
    h.insert("x-hearth-version", HeaderValue::from(version));
    if let Some(v) = function_error.and_then(|kind| HeaderValue::from_str(&kind).ok()) {
        h.insert("x-hearth-function-error", v);
    }
    Ok(resp)
}
