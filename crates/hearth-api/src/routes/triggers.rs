use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use hearth_store::StoreError;
use hearth_types::api::{TriggerList, TriggerSpec, TriggerView};
use hearth_types::{HttpTrigger, TriggerAuth, TriggerId, TriggerPath, validate_methods};

use crate::auth::{Authorized, needs};
use crate::{ApiError, ApiErrorBody, AppState};

/// Create an HTTP trigger.
///
/// Requests whose path is the trigger's path or below it become API Gateway payload 2.0
/// events for the function; its result maps back to the HTTP response.
#[utoipa::path(
    post, path = "/v1/triggers", tag = "triggers", request_body = TriggerSpec,
    responses(
        (status = 201, body = TriggerView),
        (status = 400, description = "Invalid or reserved path (`InvalidTriggerPath`, `ReservedTriggerPath`), unknown type, method or auth (`InvalidTriggerType`, `InvalidMethod`, `InvalidTriggerAuth`), invalid function name, or a body that is not a `TriggerSpec` (`InvalidJson`, `InvalidRequestBody`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`)", body = ApiErrorBody),
        (status = 409, description = "Another trigger serves this path (`TriggerPathTaken`)", body = ApiErrorBody),
        (status = 413, description = "Body over 2 MiB (`RequestTooLarge`)", body = ApiErrorBody),
        (status = 415, description = "Body not sent as `application/json` (`UnsupportedMediaType`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_trigger(
    _: Authorized<needs::Deploy>,
    State(state): State<AppState>,
    spec: Result<Json<TriggerSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<TriggerView>), ApiError> {
    let Json(spec) = spec?;
    if let Some(kind) = spec.kind.as_deref().filter(|k| *k != "http") {
        return Err(ApiError::bad_request(
            "InvalidTriggerType",
            format!("unknown trigger type {kind:?}: only http exists"),
        ));
    }
    let target: hearth_types::FunctionTarget = spec.function.parse()?;
    let function = target.function.clone();
    let path = TriggerPath::try_from(spec.path.clone())?;
    let methods = validate_methods(&spec.methods)?;
    let auth = match spec.auth.as_deref() {
        None | Some("none") => TriggerAuth::None,
        Some("token") => TriggerAuth::Token,
        Some(other) => {
            return Err(ApiError::bad_request(
                "InvalidTriggerAuth",
                format!("unknown auth {other:?}: use none or token"),
            ));
        }
    };
    if state.store().get_function(&function).await?.is_none() {
        return Err(ApiError::function_not_found(function.as_str()));
    }
    // An alias may move later; it must exist now.
    super::aliases::pinned(state.store().as_ref(), &function, target.selector.clone()).await?;
    let qualifier = target.selector.qualifier();
    let trigger =
        HttpTrigger { id: TriggerId::new(), function, qualifier, path, methods, auth, created_at: Utc::now() };
    match state.store().insert_trigger(&trigger).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "TriggerPathTaken",
                format!("another trigger already serves {}; delete it first or choose another path", trigger.path),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    state.triggers_changed().await;
    Ok((StatusCode::CREATED, Json(view(&state, trigger))))
}

/// List triggers, ordered by path.
#[utoipa::path(
    get, path = "/v1/triggers", tag = "triggers",
    responses((status = 200, body = TriggerList)),
    security(("bearer" = []))
)]
pub async fn list_triggers(
    _: Authorized<needs::Read>,
    State(state): State<AppState>,
) -> Result<Json<TriggerList>, ApiError> {
    let triggers = state.store().list_triggers().await?.into_iter().map(|t| view(&state, t)).collect();
    Ok(Json(TriggerList { triggers }))
}

fn view(state: &AppState, trigger: HttpTrigger) -> TriggerView {
    TriggerView { url: state.trigger_url(trigger.path.as_str()), trigger }
}

/// Delete a trigger.
#[utoipa::path(
    delete, path = "/v1/triggers/{id}", tag = "triggers",
    params(("id" = TriggerId, Path, description = "Trigger id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No trigger with this id (`TriggerNotFound`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_trigger(
    _: Authorized<needs::Deploy>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "TriggerNotFound", format!("no trigger with id {id:?}"));
    let id: TriggerId = id.parse().map_err(|_| not_found())?;
    if !state.store().delete_trigger(id).await? {
        return Err(not_found());
    }
    state.triggers_changed().await;
    Ok(StatusCode::NO_CONTENT)
}
