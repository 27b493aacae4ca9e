//! `GET /v1/functions/{name}/stats` and `GET /v1/stats`: the console's charts and function
//! list, from the stored invocation records (counts and percentiles computed by the store,
//! `UsageStore::invocation_stats` and `function_activity`) and this server's samples of
//! live instances.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, TimeDelta, Utc};
use hearth_api::{ApiError, ApiErrorBody, Authorized, needs};
use hearth_types::api::{FunctionStats, FunctionSummary, StatsBucket, StatsSummary, StatsTotal};
use hearth_types::{
    FunctionName, InvocationFigures, STATS_DEFAULT_BUCKETS, STATS_MAX_BUCKETS, STATS_MAX_WINDOW_S, STATS_MIN_STEP_S,
    StatsWindow,
};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::apps::ServerState;
use crate::invoke_route::name_of;
use crate::usage::instant;

/// The most durations one request reads for its buckets' percentiles, and as many for its
/// whole window's (beyond, every k-th invocation's: `sampled`).
const MAX_DURATIONS: u64 = 100_000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Start (RFC 3339); default an hour before `to`. At most 7 days before `to`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// End (RFC 3339, excluded); default now.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// Bucket length in seconds, at least 10; default the window cut into 60 buckets. At most
    /// 1,000 buckets.
    #[param(minimum = 10, maximum = 604800)]
    pub step_s: Option<i64>,
}

/// Statistics computed at once, at most: each reads a window of records, so more would only
/// queue on the store and slow everything else that needs it.
const STATS_AT_ONCE: usize = 2;
/// How long a request waits for its turn before it is refused.
const STATS_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A turn to compute statistics, or `503 ServerBusy` after [`STATS_WAIT`].
async fn stats_turn() -> Result<tokio::sync::SemaphorePermit<'static>, ApiError> {
    static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(STATS_AT_ONCE);
    match tokio::time::timeout(STATS_WAIT, TURNS.acquire()).await {
        Ok(Ok(turn)) => Ok(turn),
        _ => Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "ServerBusy",
            "statistics are being computed for other requests; retry in a few seconds",
        )),
    }
}

/// A function's invocations over a window, in buckets: counts, errors, cold starts, p50 and
/// p99 durations (nearest rank), and the most live instances this server saw in each.
#[utoipa::path(
    get, path = "/v1/functions/{name}/stats", tag = "invoke",
    params(("name" = FunctionName, Path, description = "Function name"), StatsQuery),
    responses(
        (status = 200, body = FunctionStats),
        (status = 400, description = "Invalid function name (`InvalidFunctionName`), or a time, step or window that is not allowed: `from` not before `to`, more than 7 days, more than 1,000 buckets (`InvalidQuery`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`)", body = ApiErrorBody),
        (status = 503, description = "Two statistics requests are being computed and this one waited 10 s for its turn (`ServerBusy`): retry", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn function_stats(
    _: Authorized<needs::Read>,
    State(state): State<ServerState>,
    Path(name): Path<String>,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<FunctionStats>, ApiError> {
    let name = name_of(&name)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("InvalidQuery", e.body_text()))?;
    let to = q.to.as_deref().map(|t| instant("to", t)).transpose()?.unwrap_or_else(Utc::now);
    let from = match q.from.as_deref() {
        Some(t) => instant("from", t)?,
        None => to.checked_sub_signed(TimeDelta::hours(1)).unwrap_or(DateTime::<Utc>::MIN_UTC),
    };
    let window = window(from, to, q.step_s)?;
    let f = state.gateway.function(&name).await?.ok_or_else(|| ApiError::function_not_found(name.as_str()))?;
    // What this node's meter still holds counts too (the caller's own invocations).
    let _turn = stats_turn().await?;
    state.gateway.meter().flush().await;
    let stats = state.usage.store.invocation_stats(&name, window, MAX_DURATIONS).await?;
    let spans: Vec<_> = (0..window.buckets()).map(|i| window.bucket_span(i)).collect();
    let instances = state.gateway.max_instances(f.id, &spans);
    let buckets = stats
        .buckets
        .iter()
        .zip(spans.iter().zip(instances))
        .map(|(b, ((start, _), max_instances))| StatsBucket {
            start: *start,
            invocations: b.invocations,
            errors: b.errors,
            cold_starts: b.cold_starts,
            p50_ms: b.p50_ms,
            p99_ms: b.p99_ms,
            max_instances,
        })
        .collect();
    let InvocationFigures { invocations, errors, cold_starts, p50_ms, p99_ms } = stats.total;
    Ok(Json(FunctionStats {
        from,
        to,
        step_s: (window.step_ms / 1000) as u64,
        buckets,
        total: StatsTotal { invocations, errors, cold_starts, p50_ms, p99_ms },
        sampled: stats.sampled,
    }))
}

/// The window asked for, refused when it is empty, longer than 7 days or more than 1,000
/// buckets; without a step, cut into 60 buckets of at least 10 s.
fn window(from: DateTime<Utc>, to: DateTime<Utc>, step_s: Option<i64>) -> Result<StatsWindow, ApiError> {
    let invalid = |message: String| ApiError::bad_request("InvalidQuery", message);
    if from >= to {
        return Err(invalid(format!("from ({from}) must be before to ({to})")));
    }
    let length = to - from;
    if length > TimeDelta::seconds(STATS_MAX_WINDOW_S) {
        let days = STATS_MAX_WINDOW_S / 86_400;
        return Err(invalid(format!("from and to are {} h apart; at most {days} days", length.num_hours())));
    }
    let step_s = match step_s {
        Some(s) if (STATS_MIN_STEP_S..=STATS_MAX_WINDOW_S).contains(&s) => s,
        Some(s) => {
            return Err(invalid(format!(
                "step_s must be between {STATS_MIN_STEP_S} and {STATS_MAX_WINDOW_S}, got {s}"
            )));
        }
        None => (length.num_milliseconds() as u64).div_ceil(STATS_DEFAULT_BUCKETS as u64 * 1000) as i64,
    }
    .max(STATS_MIN_STEP_S);
    let window = StatsWindow::new(from, to, step_s)
        .ok_or_else(|| invalid(format!("from ({from}) must be at least a millisecond before to ({to})")))?;
    if window.buckets() as i64 > STATS_MAX_BUCKETS {
        return Err(invalid(format!(
            "{} buckets of {step_s} s; at most {STATS_MAX_BUCKETS}: choose a larger step_s or a shorter window",
            window.buckets()
        )));
    }
    Ok(window)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// The window in seconds, ending now: 1 to 604800 (7 days); default 3600.
    #[param(minimum = 1, maximum = 604800)]
    pub window_s: Option<i64>,
}

/// Every function's invocations, errors and p99 duration over the last `window_s` seconds,
/// and its live instances now (the console's function list).
#[utoipa::path(
    get, path = "/v1/stats", tag = "invoke",
    params(SummaryQuery),
    responses(
        (status = 200, body = StatsSummary),
        (status = 400, description = "A window outside 1 s to 7 days (`InvalidQuery`)", body = ApiErrorBody),
        (status = 503, description = "Two statistics requests are being computed and this one waited 10 s for its turn (`ServerBusy`): retry", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn summary(
    _: Authorized<needs::Read>,
    State(state): State<ServerState>,
    query: Result<Query<SummaryQuery>, QueryRejection>,
) -> Result<Json<StatsSummary>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("InvalidQuery", e.body_text()))?;
    let window_s = q.window_s.unwrap_or(3600);
    if !(1..=STATS_MAX_WINDOW_S).contains(&window_s) {
        return Err(ApiError::bad_request(
            "InvalidQuery",
            format!("window_s must be between 1 and {STATS_MAX_WINDOW_S}, got {window_s}"),
        ));
    }
    let to = Utc::now();
    let from = to - TimeDelta::seconds(window_s);
    let _turn = stats_turn().await?;
    state.gateway.meter().flush().await;
    let activity = state.usage.store.function_activity(from, to, MAX_DURATIONS).await?;
    let live = state.gateway.live_instances();
    let functions = activity
        .into_iter()
        .map(|a| FunctionSummary {
            live_instances: live.get(&a.function).copied().unwrap_or(0),
            name: a.function,
            invocations: a.invocations,
            errors: a.errors,
            p99_ms: a.p99_ms,
        })
        .collect();
    Ok(Json(StatsSummary { from, to, functions }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000 + s, 0).unwrap()
    }

    #[test]
    fn windows_allowed_and_refused() {
        let w = window(t(0), t(3600), None).unwrap();
        assert_eq!((w.step_ms, w.buckets()), (60_000, 60), "an hour: 60 buckets of a minute");
        let w = window(t(0), t(60), None).unwrap();
        assert_eq!((w.step_ms, w.buckets()), (10_000, 6), "at least 10 s a bucket");
        let w = window(t(0), t(7 * 86_400), None).unwrap();
        assert_eq!(w.buckets(), 60);
        assert_eq!(window(t(0), t(10_000), Some(10)).unwrap().buckets(), 1_000);
        for (from, to, step) in [
            (t(0), t(0), None),
            (t(10), t(0), None),
            (t(0), t(7 * 86_400 + 1), None),
            (t(0), t(10_001), Some(10)),
            (t(0), t(3600), Some(9)),
            (t(0), t(3600), Some(7 * 86_400 + 1)),
        ] {
            let e = window(from, to, step).unwrap_err();
            assert_eq!(e.code, "InvalidQuery", "{from} {to} {step:?}");
        }
    }
}
