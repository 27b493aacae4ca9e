//! Asynchronous invocations over HTTP: acceptance (shared by the invoke route and the Lambda
//! Invoke API), `GET /v1/invocations/{id}`, and a function's dead-letter list.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bytes::Bytes;
use chrono::Utc;
use hearth_api::{ApiError, ApiErrorBody, Authorized, needs};
use hearth_store::{Enqueued, NewEvent};
use hearth_types::api::{DeadLetter, DeadLetterPage, RedriveRequest, RedriveResult};
use hearth_types::{EVENT_PAYLOAD_MAX_BYTES, EventRecord, EventSource, FunctionName, VersionSelector};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::apps::ServerState;
use crate::invoke_route::name_of;
use crate::meter_routes::{PAGE_MAX, page_limit, page_limit_schema};

/// Payload bytes one page of dead letters holds at most (it holds at least one event).
const PAGE_BYTES: usize = 8 << 20;

/// A request id as the platform makes them (a UUID), or as a caller may quote one.
const REQUEST_ID_MAX_LEN: usize = 128;

fn request_id_schema() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(REQUEST_ID_MAX_LEN))
        .build()
        .into()
}

/// Stores an asynchronous invocation of `name` durably; returns its request id.
pub(crate) async fn accept(
    state: &ServerState,
    name: &FunctionName,
    selector: VersionSelector,
    payload: Bytes,
    source: EventSource,
) -> Result<String, ApiError> {
    if payload.len() > EVENT_PAYLOAD_MAX_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLarge",
            format!(
                "an asynchronous event is at most {EVENT_PAYLOAD_MAX_BYTES} bytes, this one is {}; invoke synchronously (6 MiB) or send a reference to the data",
                payload.len()
            ),
        ));
    }
    let function = state.gateway.function(name).await?.ok_or_else(|| ApiError::function_not_found(name.as_str()))?;
    let Some(latest) = function.latest_version else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "CodeNotFound",
            format!("function {:?} has no code yet; deploy some first", name.as_str()),
        ));
    };
    match &selector {
        VersionSelector::Number(n) if *n > latest => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "VersionNotFound",
                format!("function {:?} has no version {n}; `hearth fn versions {name}` lists them", name.as_str()),
            ));
        }
        VersionSelector::Alias(a) => {
            // An alias may move before delivery; it must exist when the event is accepted.
            hearth_api::pinned(state.api.store().as_ref(), name, VersionSelector::Alias(a.clone())).await?;
        }
        _ => {}
    }
    let qualifier = selector.qualifier();
    let request_id = hearth_types::new_request_id();
    let limit = function.config.events.max_queued_events;
    let event = NewEvent {
        request_id: request_id.clone(),
        function: name.clone(),
        qualifier,
        source,
        payload,
        enqueued_at: Utc::now(),
        max_queued: limit,
        chain: 0,
    };
    match state.events.accept(event).await? {
        Enqueued::Accepted => Ok(request_id),
        Enqueued::QueueFull { queued } => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "EventQueueFull",
            format!(
                "function {:?} has {queued} asynchronous invocations waiting (max_queued_events {limit}); retry later, or raise max_queued_events",
                name.as_str()
            ),
        )),
        Enqueued::Duplicate => Err(ApiError::internal("accepting an event", "a fresh request id was already taken")),
    }
}

/// What happened to an asynchronous invocation: status, attempts, timestamps, result or
/// error. Finished ones are kept for 7 days, dead letters for 14.
#[utoipa::path(
    get, path = "/v1/invocations/{id}", tag = "invoke",
    params(("id" = String, Path, description = "The request id the `202` answered with")),
    responses(
        (status = 200, body = EventRecord),
        (status = 404, description = "No asynchronous invocation with this id (`InvocationNotFound`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_invocation(
    _: Authorized<needs::Read>,
    State(state): State<ServerState>,
    Path(id): Path<String>,
) -> Result<Json<EventRecord>, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "InvocationNotFound",
            format!(
                "no asynchronous invocation {id:?}: ids come from a 202 answer, and finished ones are kept 7 days (synchronous ones: `hearth logs --request-id`)"
            ),
        )
    };
    if id.len() > REQUEST_ID_MAX_LEN {
        return Err(not_found());
    }
    state.events.queue().get_event(&id).await?.map(Json).ok_or_else(not_found)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// Only dead letters after this one (the `next` of the previous page).
    #[param(schema_with = request_id_schema)]
    pub after: Option<String>,
    /// At most this many (default 100).
    #[param(schema_with = page_limit_schema)]
    pub limit: Option<usize>,
}

/// A function's dead letters, oldest first: events that failed after their retries (or grew
/// too old) and had no on-failure function, with their last error and attempt count. A page
/// holds at most `limit` events and about 8 MiB of payloads; `next` continues it.
#[utoipa::path(
    get, path = "/v1/functions/{name}/dead-letters", tag = "invoke",
    params(("name" = FunctionName, Path, description = "Function name"), DeadLetterQuery),
    responses(
        (status = 200, body = DeadLetterPage),
        (status = 400, description = "Invalid function name (`InvalidFunctionName`) or query (`InvalidQuery`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn dead_letters(
    _: Authorized<needs::Read>,
    State(state): State<ServerState>,
    Path(name): Path<String>,
    query: Result<Query<DeadLetterQuery>, QueryRejection>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let name = name_of(&name)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("InvalidQuery", e.body_text()))?;
    let limit = page_limit(q.limit, 100)?;
    if q.after.as_ref().is_some_and(|a| a.is_empty() || a.len() > REQUEST_ID_MAX_LEN) {
        return Err(ApiError::bad_request("InvalidQuery", "after is a request id from a previous page"));
    }
    if state.gateway.function(&name).await?.is_none() {
        return Err(ApiError::function_not_found(name.as_str()));
    }
    let mut events = state.events.queue().list_dead_letters(&name, q.after.as_deref(), limit).await?;
    // A page holds at most PAGE_BYTES of payloads (but always one event): 1,000 events of
    // 1 MiB would otherwise make a gigabyte answer.
    let mut bytes = 0;
    let keep = events
        .iter()
        .position(|e| {
            let error = e.record.error.as_ref().map_or(0, |e| e.message.len() + e.error_type.len());
            bytes += e.payload.len() + e.record.result.as_ref().map_or(0, String::len) + error;
            bytes > PAGE_BYTES
        })
        .map_or(events.len(), |i| i.max(1));
    let cut = keep < events.len();
    events.truncate(keep);
    let next = (cut || events.len() == limit).then(|| events.last().map(|e| e.record.request_id.clone())).flatten();
    let dead_letters = events
        .into_iter()
        .map(|e| DeadLetter {
            payload: serde_json::from_slice(&e.payload)
                .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&e.payload).into_owned())),
            event: e.record,
        })
        .collect();
    Ok(Json(DeadLetterPage { dead_letters, next }))
}

/// Queue a function's dead letters again (those named, or all): each is delivered anew with
/// a fresh retry budget and age.
#[utoipa::path(
    post, path = "/v1/functions/{name}/dead-letters/redrive", tag = "invoke",
    params(("name" = FunctionName, Path, description = "Function name")),
    request_body(content = Option<RedriveRequest>, content_type = "application/json",
                 description = "Which dead letters; no body (or `null`): all of them"),
    responses(
        (status = 200, body = RedriveResult),
        (status = 400, description = "Invalid function name (`InvalidFunctionName`) or body (`InvalidRequestContent`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn redrive(
    _: Authorized<needs::Invoke>,
    State(state): State<ServerState>,
    Path(name): Path<String>,
    body: Result<Option<Json<Option<RedriveRequest>>>, JsonRejection>,
) -> Result<Json<RedriveResult>, ApiError> {
    let name = name_of(&name)?;
    let request = body.map_err(|e| ApiError::bad_request("InvalidRequestContent", e.body_text()))?;
    let ids = request.and_then(|Json(r)| r).and_then(|r| r.request_ids);
    if let Some(ids) = &ids
        && (ids.len() > PAGE_MAX || ids.iter().any(|id| id.is_empty() || id.len() > REQUEST_ID_MAX_LEN))
    {
        return Err(ApiError::bad_request(
            "InvalidRequestContent",
            format!("request_ids names at most {PAGE_MAX} request ids of 1 to {REQUEST_ID_MAX_LEN} characters"),
        ));
    }
    if state.gateway.function(&name).await?.is_none() {
        return Err(ApiError::function_not_found(name.as_str()));
    }
    let redriven = state.events.queue().redrive(&name, ids.as_deref(), Utc::now()).await?;
    if redriven > 0 {
        state.events.wake();
    }
    Ok(Json(RedriveResult { redriven }))
}
