//! `GET /v1/functions/{name}/logs` and `GET /v1/functions/{name}/invocations`: what the meter
//! wrote, a page at a time.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use hearth_api::{ApiError, ApiErrorBody, Authorized, needs};
use hearth_types::FunctionName;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::apps::ServerState;
use crate::invoke_route::name_of;

/// Most lines or records one request returns.
pub(crate) const PAGE_MAX: usize = 1_000;

/// `limit`: 1 to [`PAGE_MAX`].
pub(crate) fn page_limit_schema() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .minimum(Some(1))
        .maximum(Some(PAGE_MAX as u64))
        .description(Some(format!("At most this many, 1..={PAGE_MAX}.")))
        .build()
        .into()
}

/// A `limit` query parameter: `default` when absent, refused outside 1..=[`PAGE_MAX`].
pub(crate) fn page_limit(limit: Option<usize>, default: usize) -> Result<usize, ApiError> {
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
    /// At most this many lines (default 1000); but the lines of one stored entry (an
    /// invocation's `START`, `END` and `REPORT`, one `seq`) are never split, and a page has
    /// at least one entry whole.
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
pub(crate) async fn logs(
    _: Authorized<needs::Read>,
    State(state): State<ServerState>,
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
    let lines = state.gateway.meter().logs(&name, after, q.request_id.as_deref(), limit).await?;
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
pub(crate) async fn invocations(
    _: Authorized<needs::Read>,
    State(state): State<ServerState>,
    Path(name): Path<String>,
    query: Result<Query<InvocationQuery>, QueryRejection>,
) -> Result<Json<hearth_types::api::InvocationList>, ApiError> {
    let name = name_of(&name)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("InvalidQuery", e.body_text()))?;
    let limit = page_limit(q.limit, 100)?;
    if state.gateway.function(&name).await?.is_none() {
        return Err(ApiError::function_not_found(name.as_str()));
    }
    Ok(Json(hearth_types::api::InvocationList { invocations: state.gateway.meter().invocations(&name, limit).await? }))
}
