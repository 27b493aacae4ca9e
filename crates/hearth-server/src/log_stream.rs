//! `GET /v1/functions/{name}/logs/stream`: a function's log as Server-Sent Events, each line
//! once it is stored (`id: <seq>` on the last line of each stored entry, `event: line`,
//! `data: <LogLine as JSON>`), for the console, which reads the body with `fetch` and its
//! bearer token (an `EventSource` cannot send one). Lines come from a gateway [`LogFollower`]: no polling; bounded to
//! [`LOG_FOLLOWERS_MAX`] streams per server (then 503 `TooManyLogStreams`), each at most an
//! hour, after which the client reconnects with `Last-Event-ID`. A stream ends with one
//! `end` event (`{"reason": "expired" | "deleted" | "revoked"}`) when its time is up, its
//! function is deleted, or its token no longer holds (checked every 30 s).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use hearth_api::{ApiError, ApiErrorBody, Authorized, needs};
use hearth_gateway::{FOLLOW_MAX, FOLLOW_READ_MAX, FollowEnd, FollowError, Followed, LOG_FOLLOWERS_MAX, LogFollower};
use hearth_types::api::{LogStreamEnd, LogStreamEndReason, LogStreamEvent};
use hearth_types::{FunctionName, LogLine};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::apps::ServerState;
use crate::invoke_route::name_of;

/// A comment line this often keeps proxies and browsers from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogStreamQuery {
    /// Only lines after this position (a line's `seq`, or the `next` of a page of
    /// `GET /v1/functions/{name}/logs`); default: the log's current end, so only new lines.
    /// A `Last-Event-ID` header wins.
    pub after: Option<i64>,
    /// Only this invocation's lines.
    pub request_id: Option<String>,
    /// When the stream starts at the log's end (neither `after` nor `Last-Event-ID`): first
    /// send its last this many lines, 0 to 1000 (default 0).
    #[param(minimum = 0, maximum = 1000)]
    pub tail: Option<usize>,
    /// End the stream after this many seconds, 0 to 3600 (the default and the most).
    #[param(minimum = 0, maximum = 3600)]
    pub timeout_s: Option<u64>,
}

/// Follow a function's log as Server-Sent Events: one `line` event per line (`data` the line
/// as JSON, as in `GET /v1/functions/{name}/logs`; `id` its `seq`, on the last line of an
/// entry only: an invocation's `START`, `END` and `REPORT` stored together share one), a
/// comment every 15 s, and one `end` event (`{"reason": "expired"}`, `{"reason": "deleted"}`, or
/// `{"reason": "revoked"}` once its token is deleted, checked every 30 s) before the stream
/// closes. At most 64 streams per server, each for at most an hour; reconnect with
/// `Last-Event-ID` to go on without repeats.
#[utoipa::path(
    get, path = "/v1/functions/{name}/logs/stream", tag = "invoke",
    params(
        ("name" = FunctionName, Path, description = "Function name"),
        LogStreamQuery,
        ("Last-Event-ID" = Option<i64>, Header, minimum = 0, nullable = false,
            description = "The `id` of the last event received: the stream goes on after it (wins over `after`)"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: `line` events, keep-alive comments, an `end` event", body = LogStreamEvent, content_type = "text/event-stream"),
        (status = 400, description = "Invalid function name (`InvalidFunctionName`), query or `Last-Event-ID` (`InvalidQuery`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`)", body = ApiErrorBody),
        (status = 503, description = "64 log streams are open on this server already (`TooManyLogStreams`): close other consoles", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn logs_stream(
    caller: Authorized<needs::Read>,
    State(state): State<ServerState>,
    Path(name): Path<String>,
    query: Result<Query<LogStreamQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = name_of(&name)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("InvalidQuery", e.body_text()))?;
    let timeout = match q.timeout_s {
        None => FOLLOW_MAX,
        Some(s) if s <= FOLLOW_MAX.as_secs() => Duration::from_secs(s),
        Some(s) => {
            let max = FOLLOW_MAX.as_secs();
            return Err(ApiError::bad_request("InvalidQuery", format!("timeout_s must be 0 to {max}, got {s}")));
        }
    };
    let after = last_event_id(&headers)?.or(q.after);
    let tail = match q.tail {
        None => 0,
        Some(n) if n <= FOLLOW_READ_MAX => n,
        Some(n) => {
            return Err(ApiError::bad_request("InvalidQuery", format!("tail must be 0 to {FOLLOW_READ_MAX}, got {n}")));
        }
    };
    let follower = state.gateway.follow_logs(&name, after, q.request_id, timeout).await.map_err(|e| match e {
        FollowError::NoFunction(_) => ApiError::function_not_found(name.as_str()),
        FollowError::TooManyFollowers => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "TooManyLogStreams",
            format!(
                "{LOG_FOLLOWERS_MAX} log streams are open on this server, the most it serves at once; \
                 close other consoles and retry"
            ),
        ),
        FollowError::Store(e) => e.into(),
    })?;
    // The recent past only for a reader starting at the end: a resumed one has it already.
    let follower = if after.is_none() { follower.with_tail(tail).await? } else { follower };
    let still = Authorization { store: state.api.store().clone(), secret_sha256: caller.caller.token.secret_sha256 };
    let sse = Sse::new(events(follower, still)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE));
    // nginx and its kind would hold the events back in a buffer.
    let no_buffering = (HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    Ok(([no_buffering], sse).into_response())
}

/// `Last-Event-ID`, when sent: a line's position.
fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else { return Ok(None) };
    value.to_str().ok().and_then(|v| v.trim().parse::<i64>().ok()).filter(|n| *n >= 0).map(Some).ok_or_else(|| {
        ApiError::bad_request("InvalidQuery", "Last-Event-ID must be the id of an event of this stream (a number)")
    })
}

/// How long a stream waits for a reader that does not read before it gives up (its place
/// among the followers, and the lines it holds).
const STALLED: Duration = Duration::from_secs(30);
/// Events waiting for the reader, at most (each at most a line: 256 KiB).
const QUEUED_EVENTS: usize = 16;

/// The follower's lines as events, then its `end` event. The follower runs in a task of its
/// own, so its deadline and the server's stop hold even while the reader does not read, and it
/// ends (giving its place back) as soon as the reader goes or stalls for [`STALLED`].
fn events(follower: LogFollower, still: Authorization) -> impl Stream<Item = Result<Event, Infallible>> {
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUED_EVENTS);
    tokio::spawn(feed(follower, still, tx));
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) })
}

/// Sends `event` unless the reader is gone or stalled.
async fn send(tx: &tokio::sync::mpsc::Sender<Event>, event: Event) -> bool {
    matches!(tokio::time::timeout(STALLED, tx.send(event)).await, Ok(Ok(())))
}

/// How often an open stream asks the store whether its token still holds (the token cache's
/// trust window: a revocation ends the stream as late as it would refuse a new request).
const TOKEN_RECHECK: Duration = Duration::from_secs(30);

/// The token a stream was opened with, to check again while it runs.
struct Authorization {
    store: std::sync::Arc<dyn hearth_store::MetadataStore>,
    secret_sha256: String,
}

impl Authorization {
    /// Whether the token still exists and grants `read` (a store error keeps the stream).
    async fn holds(&self) -> bool {
        match self.store.token_by_secret_hash(&self.secret_sha256).await {
            Ok(Some(token)) => token.grants(hearth_types::Scope::Read),
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(%e, "cannot check a log stream's token; keeping the stream");
                true
            }
        }
    }
}

async fn feed(mut follower: LogFollower, still: Authorization, tx: tokio::sync::mpsc::Sender<Event>) {
    let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + TOKEN_RECHECK, TOKEN_RECHECK);
    let reason = loop {
        let next = tokio::select! {
            next = follower.next() => next,
            () = tx.closed() => return,
            _ = recheck.tick() => {
                if still.holds().await {
                    continue;
                }
                break LogStreamEndReason::Revoked;
            }
        };
        match next {
            Ok(Followed::Lines(lines)) => {
                for (i, line) in lines.iter().enumerate() {
                    // The lines of one entry share its `seq` (an invocation's START, END and
                    // REPORT): the id goes on its last, so a client that reconnects in the
                    // middle of an entry gets all of it again rather than missing its end.
                    let ends_entry = lines.get(i + 1).is_none_or(|next| next.seq != line.seq);
                    if !send(&tx, line_event(line, ends_entry)).await {
                        return;
                    }
                }
            }
            Ok(Followed::Ended(FollowEnd::Expired)) => break LogStreamEndReason::Expired,
            Ok(Followed::Ended(FollowEnd::Deleted)) => break LogStreamEndReason::Deleted,
            Err(e) => {
                tracing::warn!(%e, "reading a followed log failed; ending its stream");
                break LogStreamEndReason::Expired;
            }
        }
    };
    let data = serde_json::to_string(&LogStreamEnd { reason }).unwrap_or_default();
    send(&tx, Event::default().event("end").data(data)).await;
}

fn line_event(line: &LogLine, with_id: bool) -> Event {
    let event = Event::default().event("line");
    let event = if with_id { event.id(line.seq.to_string()) } else { event };
    match serde_json::to_string(line) {
        Ok(json) => event.data(json),
        Err(e) => event.comment(format!("a line that is not JSON: {e}")),
    }
}
