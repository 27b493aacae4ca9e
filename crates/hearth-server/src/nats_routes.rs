//! NATS triggers: `POST /v1/nats-triggers`, `GET /v1/nats-triggers`,
//! `DELETE /v1/nats-triggers/{id}`. The consumers are `hearth_events`' (`nats.rs`).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use hearth_api::{ApiError, ApiErrorBody, Authorized, needs};
use hearth_store::StoreError;
use hearth_types::api::{NatsTriggerList, NatsTriggerSpec};
use hearth_types::{FunctionTarget, NatsServer, NatsTrigger, NatsTriggerState, TriggerId};

use crate::apps::ServerState;
use crate::trigger_checks::TriggerLimit;

/// NATS triggers one function may have, and all functions together (each is a consumer task,
/// and each distinct server a connection).
const LIMIT: TriggerLimit =
    TriggerLimit { kind: "NATS triggers", code: "NatsTriggerLimitExceeded", per_function: 100, per_node: 1_000 };

/// Add a NATS trigger: the function is invoked for the messages on a subject, from a
/// JetStream stream through a durable consumer (acknowledged once the function succeeded,
/// retried and dead-lettered by the function's async settings) or, without a stream, from a
/// core NATS subscription whose messages are queued as asynchronous events.
#[utoipa::path(
    post, path = "/v1/nats-triggers", tag = "triggers", request_body = NatsTriggerSpec,
    responses(
        (status = 201, body = NatsTriggerState),
        (status = 400, description = "Invalid server address, subject, stream or consumer name, or batch size (`InvalidNatsServer`, `InvalidSubject`, `InvalidNatsName`, `InvalidBatchSize`), a consumer without a stream (`InvalidNatsTrigger`), invalid function name, or a body that is not a `NatsTriggerSpec` (`InvalidJson`, `InvalidRequestBody`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`) or alias (`AliasNotFound`)", body = ApiErrorBody),
        (status = 409, description = "100 NATS triggers on the function, or 1,000 in all (`NatsTriggerLimitExceeded`)", body = ApiErrorBody),
        (status = 413, description = "Body over 2 MiB (`RequestTooLarge`)", body = ApiErrorBody),
        (status = 415, description = "Body not sent as `application/json` (`UnsupportedMediaType`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create(
    _: Authorized<needs::Deploy>,
    State(state): State<ServerState>,
    spec: Result<Json<NatsTriggerSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<NatsTriggerState>), ApiError> {
    let Json(spec) = spec?;
    let target: FunctionTarget = spec.function.parse()?;
    let function = target.function.clone();
    let server: NatsServer = spec.server.parse()?;
    hearth_types::validate_subject(&spec.subject)?;
    for name in spec.stream.iter().chain(&spec.consumer) {
        hearth_types::validate_nats_name(name)?;
    }
    if spec.consumer.is_some() && spec.stream.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidNatsTrigger",
            "a consumer belongs to a JetStream stream: name the stream too, or leave the consumer out",
        ));
    }
    let batch = spec.batch.unwrap_or(1);
    hearth_types::validate_batch(batch)?;
    crate::trigger_checks::target_exists(&state, &target).await?;
    let existing = state.events.queue().list_nats_triggers().await?;
    LIMIT.check(&function, existing.iter().map(|t| &t.function))?;
    let trigger = NatsTrigger {
        id: TriggerId::new(),
        function,
        qualifier: target.selector.qualifier(),
        server: server.server,
        credentials: server.credentials,
        subject: spec.subject,
        stream: spec.stream,
        consumer: spec.consumer,
        batch,
        created_at: Utc::now(),
    };
    match state.events.queue().add_nats_trigger(&trigger).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Err(ApiError::internal("adding a NATS trigger", "a fresh id was taken")),
        Err(e) => return Err(e.into()),
    }
    state.events.nats_triggers_changed();
    let created = state.events.nats_states(vec![trigger]).remove(0);
    Ok((StatusCode::CREATED, Json(created)))
}

/// List NATS triggers, oldest first, with what each consumer on this node is doing.
#[utoipa::path(
    get, path = "/v1/nats-triggers", tag = "triggers",
    responses((status = 200, body = NatsTriggerList)),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    _: Authorized<needs::Read>,
    State(state): State<ServerState>,
) -> Result<Json<NatsTriggerList>, ApiError> {
    let triggers = state.events.queue().list_nats_triggers().await?;
    Ok(Json(NatsTriggerList { triggers: state.events.nats_states(triggers) }))
}

/// Delete a NATS trigger: its consumer stops (a durable consumer Hearth made stays on the
/// stream, with its position; events already queued are still delivered).
#[utoipa::path(
    delete, path = "/v1/nats-triggers/{id}", tag = "triggers",
    params(("id" = TriggerId, Path, description = "NATS trigger id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No NATS trigger with this id (`TriggerNotFound`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn delete(
    _: Authorized<needs::Deploy>,
    State(state): State<ServerState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let not_found =
        || ApiError::new(StatusCode::NOT_FOUND, "TriggerNotFound", format!("no NATS trigger with id {id:?}"));
    let parsed: TriggerId = id.parse().map_err(|_| not_found())?;
    if !state.events.queue().delete_nats_trigger(parsed).await? {
        return Err(not_found());
    }
    state.events.nats_triggers_changed();
    Ok(StatusCode::NO_CONTENT)
}
