//! Every HTTP request runs in a `request` span (method, path, request id), so each line the
//! server logs while serving it carries its id (`hearth up --log-format json`). The id is the
//! caller's `X-Request-Id` when it sends a sane one, else a fresh UUID, and is answered in
//! `X-Request-Id`.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

/// Longest caller-given request id kept; longer or odd ones are replaced.
const MAX_ID: usize = 128;

pub(crate) async fn request_span(request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= MAX_ID)
        .filter(|id| id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)))
        .map(str::to_owned);
    let id = given.unwrap_or_else(hearth_types::new_request_id);
    let span =
        tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id);
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
