//! Usage and cost: `GET /v1/usage` reads the aggregates the store keeps (per function,
//! version or alias, and hour) and prices them; [`spawn_provisioned_meter`] adds the time of
//! instances kept by `min_instances` to them.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use hearth_api::{ApiError, ApiErrorBody, Authorized, needs};
use hearth_store::{MetadataStore, UsageStore};
use hearth_types::api::{UsageLine, UsageReport};
use hearth_types::{FunctionName, Prices, UsageFigures, UsageGroup, UsageRow};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::apps::ServerState;

/// The longest range one request may sum.
const MAX_RANGE_DAYS: i64 = 400;

/// Where usage is read and what it costs.
#[derive(Clone)]
pub struct Usage {
    pub store: Arc<dyn UsageStore>,
    pub prices: Prices,
}

/// Adds, every `every`, the time each function's `min_instances` instances (of its latest
/// version) were kept since the last tick (or since the function was made). A tick whose
/// store write fails is counted by the next one. A change of `min_instances` counts from the
/// tick before it (at most one interval early).
pub fn spawn_provisioned_meter(
    functions: Arc<dyn MetadataStore>,
    usage: Arc<dyn UsageStore>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = Utc::now();
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = Utc::now();
            let list = match functions.list_functions().await {
                Ok(list) => list,
                Err(e) => {
                    tracing::warn!(%e, "cannot read functions to meter kept instances; counting them next time");
                    continue;
                }
            };
            let rows: Vec<_> = list
                .iter()
                .filter(|f| f.config.min_instances > 0)
                .filter_map(|f| {
                    let version = f.latest_version?;
                    // A function made since the last tick is billed from when it was made.
                    Some(hearth_types::provisioned_usage(
                        &f.name,
                        version,
                        f.config.min_instances,
                        f.config.memory_mb,
                        last.max(f.created_at),
                        now,
                    ))
                })
                .flatten()
                .collect();
            match usage.add_provisioned(&rows).await {
                Ok(()) => last = now,
                Err(e) => tracing::warn!(%e, "cannot store kept instances' usage; counting it next time"),
            }
        }
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Start (RFC 3339), down to its hour; default 24 hours before `to`, and at most 400
    /// days before it.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// End (RFC 3339), up to its hour; default now.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// Only this function.
    #[param(value_type = Option<FunctionName>)]
    pub function: Option<String>,
    /// `hour`, `day` (default), `function` or `version`.
    #[param(value_type = Option<UsageGroup>)]
    pub group_by: Option<String>,
}

pub(crate) fn instant(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value).map(|t| t.with_timezone(&Utc)).map_err(|_| {
        ApiError::bad_request(
            "InvalidQuery",
            format!("{name}={value:?}: expected an RFC 3339 time, e.g. 2026-12-01T10:00:00Z"),
        )
    })
}

fn line(row: UsageRow, prices: &Prices) -> UsageLine {
    let f = &row.figures;
    UsageLine {
        gb_seconds: f.gb_seconds(),
        provisioned_gb_seconds: f.provisioned_gb_seconds(),
        cost: prices.cost(f),
        row,
    }
}

/// What functions used and cost: requests, errors by type, cold starts, durations, billed
/// time, GB-seconds and provisioned GB-seconds, per hour, day, function or version, priced
/// by the server's price table. Sums of every invocation and kept instance; a function nobody
/// calls costs nothing.
#[utoipa::path(
    get, path = "/v1/usage", tag = "invoke",
    params(UsageQuery),
    responses(
        (status = 200, body = UsageReport),
        (status = 400, description = "Invalid time, function name (`InvalidQuery`, `InvalidFunctionName`) or grouping (`InvalidUsageGroup`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn usage(
    _: Authorized<needs::Read>,
    State(state): State<ServerState>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Json<UsageReport>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("InvalidQuery", e.body_text()))?;
    let to = q.to.as_deref().map(|t| instant("to", t)).transpose()?.unwrap_or_else(Utc::now);
    let from = q.from.as_deref().map(|t| instant("from", t)).transpose()?.unwrap_or(to - TimeDelta::hours(24));
    let hour = TimeDelta::hours(1);
    let from = from.duration_trunc(hour).unwrap_or(from);
    let to = match to.duration_trunc(hour) {
        Ok(t) if t == to => t,
        Ok(t) => t + hour,
        Err(_) => to,
    };
    // A longer range is cut to its last 400 days; an empty one sums nothing. The answer
    // says which hours it summed.
    let from = from.max(to - TimeDelta::days(MAX_RANGE_DAYS)).min(to);
    let function: Option<FunctionName> = q.function.as_deref().map(str::parse).transpose()?;
    let group: UsageGroup = q.group_by.as_deref().map(str::parse).transpose()?.unwrap_or_default();
    let prices = state.usage.prices;
    let rows = state.usage.store.usage(from, to, function.as_ref(), group).await?;
    let mut total = UsageFigures::default();
    for r in &rows {
        total.add(&r.figures);
    }
    let total =
        UsageRow { period_start: None, function: function.clone(), version: None, qualifier: None, figures: total };
    Ok(Json(UsageReport {
        from,
        to,
        group_by: group,
        prices,
        rows: rows.into_iter().map(|r| line(r, &prices)).collect(),
        total: line(total, &prices),
    }))
}
