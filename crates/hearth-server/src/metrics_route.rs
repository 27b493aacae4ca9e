//! `GET /metrics`: the gateway's Prometheus metrics, with the levels read now (functions,
//! instances, queues, memory, stem cells, the event queue). On the API's listener it needs a
//! token with the read scope; `hearth up --metrics-listen ADDR` also serves it, without one,
//! on a listener of its own (for a scraper on a private network).

use std::time::Instant;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use chrono::Utc;
use hearth_api::{ApiError, ApiErrorBody, Authorized, needs};

use crate::apps::ServerState;

/// The Prometheus text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus metrics: invocations by function and outcome, durations, cold starts by
/// source, instances by state, requests waiting for an instance, the event queue, stem
/// cells, node memory, store and code-cache operation latencies.
#[utoipa::path(
    get, path = "/metrics", tag = "system",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 503, description = "The store could not be read (`StoreUnavailable`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn metrics(
    _: Authorized<needs::Read>,
    state: State<ServerState>,
) -> Result<impl IntoResponse, ApiError> {
    open_metrics(state).await
}

/// The same, for the metrics listener (no token: the operator chose its address).
pub(crate) async fn open_metrics(State(state): State<ServerState>) -> Result<impl IntoResponse, ApiError> {
    let started = Instant::now();
    let functions = state.api.store().list_functions().await?;
    let metrics = state.gateway.metrics();
    metrics.operation("hearth_store_operation_seconds", "list_functions", started.elapsed());
    let started = Instant::now();
    let depths = state.events.queue().queue_depths().await?;
    metrics.operation("hearth_store_operation_seconds", "queue_depths", started.elapsed());
    let now = Utc::now();
    let mut levels = state.gateway.metric_levels();
    levels.functions = functions.into_iter().map(|f| f.name).collect();
    levels.events = depths
        .into_iter()
        .map(|d| {
            let age = d.oldest_queued_at.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
            (d.function, d.queued, d.running, d.dead_lettered, age)
        })
        .collect();
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render(&levels)))
}
