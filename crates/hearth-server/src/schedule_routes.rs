//! Cron triggers: `POST /v1/schedules`, `GET /v1/schedules`, `DELETE /v1/schedules/{id}`.
//! The scheduler (`hearth_events::scheduler`) fires them into the event queue.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use hearth_api::{ApiError, ApiErrorBody, Authorized, needs};
use hearth_store::StoreError;
use hearth_types::api::{ScheduleList, ScheduleSpec};
use hearth_types::{CronSchedule, CronTrigger, FunctionTarget, MissedRuns, ScheduleState, TriggerId};

use crate::apps::ServerState;
use crate::trigger_checks::TriggerLimit;

/// Cron triggers one function may have, and all functions together.
const LIMIT: TriggerLimit =
    TriggerLimit { kind: "cron triggers", code: "ScheduleLimitExceeded", per_function: 100, per_node: 10_000 };

/// Add a cron trigger: the function is invoked asynchronously, with an EventBridge scheduled
/// event, at each instant of the schedule; each instant fires once, across restarts.
#[utoipa::path(
    post, path = "/v1/schedules", tag = "triggers", request_body = ScheduleSpec,
    responses(
        (status = 201, body = ScheduleState),
        (status = 400, description = "Invalid schedule, time zone or missed-runs policy (`InvalidSchedule`, `InvalidTimeZone`, `InvalidMissedRuns`), invalid function name, or a body that is not a `ScheduleSpec` (`InvalidJson`, `InvalidRequestBody`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`) or alias (`AliasNotFound`)", body = ApiErrorBody),
        (status = 409, description = "100 cron triggers on the function, or 10,000 in all (`ScheduleLimitExceeded`)", body = ApiErrorBody),
        (status = 413, description = "Body over 2 MiB (`RequestTooLarge`)", body = ApiErrorBody),
        (status = 415, description = "Body not sent as `application/json` (`UnsupportedMediaType`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create(
    _: Authorized<needs::Deploy>,
    State(state): State<ServerState>,
    spec: Result<Json<ScheduleSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<ScheduleState>), ApiError> {
    let Json(spec) = spec?;
    let target: FunctionTarget = spec.function.parse()?;
    let function = target.function.clone();
    let time_zone = spec.time_zone.as_deref().unwrap_or("UTC");
    let schedule = CronSchedule::new(&spec.schedule, time_zone)?;
    let missed_runs: MissedRuns = spec.missed_runs.as_deref().map(str::parse).transpose()?.unwrap_or_default();
    crate::trigger_checks::target_exists(&state, &target).await?;
    // Bounded: the scheduler reads every cron trigger each time it looks.
    let existing = state.events.queue().list_schedules().await?;
    LIMIT.check(&function, existing.iter().map(|s| &s.trigger.function))?;
    let now = Utc::now();
    let trigger = CronTrigger {
        id: TriggerId::new(),
        function,
        qualifier: target.selector.qualifier(),
        schedule: schedule.expression().to_owned(),
        time_zone: schedule.time_zone().to_owned(),
        missed_runs,
        created_at: now,
    };
    let next_fire_at = schedule.next_after(now);
    match state.events.queue().add_schedule(&trigger, next_fire_at).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Err(ApiError::internal("adding a cron trigger", "a fresh id was taken")),
        Err(e) => return Err(e.into()),
    }
    state.events.schedules_changed();
    let created = ScheduleState { trigger, next_fire_at, fired: 0, dropped: 0, last_fired_at: None };
    Ok((StatusCode::CREATED, Json(created)))
}

/// List cron triggers, oldest first, with their next instant and what they fired.
#[utoipa::path(
    get, path = "/v1/schedules", tag = "triggers",
    responses((status = 200, body = ScheduleList)),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    _: Authorized<needs::Read>,
    State(state): State<ServerState>,
) -> Result<Json<ScheduleList>, ApiError> {
    Ok(Json(ScheduleList { schedules: state.events.queue().list_schedules().await? }))
}

/// Delete a cron trigger (its events already queued are still delivered).
#[utoipa::path(
    delete, path = "/v1/schedules/{id}", tag = "triggers",
    params(("id" = TriggerId, Path, description = "Cron trigger id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No cron trigger with this id (`TriggerNotFound`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn delete(
    _: Authorized<needs::Deploy>,
    State(state): State<ServerState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let not_found =
        || ApiError::new(StatusCode::NOT_FOUND, "TriggerNotFound", format!("no cron trigger with id {id:?}"));
    let parsed: TriggerId = id.parse().map_err(|_| not_found())?;
    if !state.events.queue().delete_schedule(parsed).await? {
        return Err(not_found());
    }
    state.events.schedules_changed();
    Ok(StatusCode::NO_CONTENT)
}
