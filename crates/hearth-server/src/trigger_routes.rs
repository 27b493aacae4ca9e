//! The triggers' origin: requests no API route claims, the default URL `/fn/{name}/...`
//! (token with the invoke scope required) and HTTP triggers, as payload 2.0 events; anything
//! else is `RouteNotFound`.

use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_api::{ApiError, Caller};
use hearth_gateway::InvokeRequest;
use hearth_types::{Scope, TriggerAuth};

use crate::apps::ServerState;
use crate::http_event;
use crate::invoke_error::api_error;
use crate::invoke_route::read_event;

pub(crate) async fn dispatch(State(state): State<ServerState>, request: axum::extract::Request) -> Response {
    match route_http(state, request).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route_http(state: ServerState, request: axum::extract::Request) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let (function, proxy, auth, methods) = if let Some(rest) = path.strip_prefix("/fn/") {
        let (name, proxy) = rest.split_once('/').unwrap_or((rest, ""));
        (name.to_owned(), proxy.to_owned(), TriggerAuth::Token, None)
    } else if let Some((trigger, proxy)) = state.gateway.trigger_for(&path) {
        let target = match &trigger.qualifier {
            Some(q) => format!("{}:{q}", trigger.function),
            None => trigger.function.to_string(),
        };
        (target, proxy, trigger.auth, Some((trigger.path, trigger.methods)))
    } else {
        return Err(hearth_api::not_found().await);
    };
    // The token first: a caller without one learns nothing of the trigger, not even its
    // methods.
    if auth == TriggerAuth::Token {
        Caller::from_request_parts(&mut parts, &state).await?.require(Scope::Invoke)?;
    }
    if let Some((trigger_path, methods)) = methods
        && !methods.is_empty()
        && !methods.iter().any(|m| m == parts.method.as_str())
    {
        return Ok(method_not_allowed(trigger_path.as_str(), &methods));
    }
    http_event::strip_credentials(&mut parts.headers, auth == TriggerAuth::Token);
    // `NAME`, `NAME:VERSION` or `NAME:ALIAS` (also in `/fn/NAME:ALIAS/...`).
    let target: hearth_types::FunctionTarget = function.parse()?;
    let body = read_event(Body::new(body)).await?;
    let request_id = hearth_types::new_request_id();
    let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0);
    let event = http_event::event(&parts, &body, &request_id, &proxy, peer);
    let request = InvokeRequest {
        payload: event,
        content_type: Some("application/json".into()),
        request_id: Some(request_id),
        ..Default::default()
    };
    let r = state.gateway.invoke(&target.function, target.selector, request).await.map_err(api_error)?;
    Ok(http_event::response(&r))
}

/// 405 `MethodNotAllowed` for a trigger limited to `methods`, with the `Allow` header
/// (RFC 9110 15.5.6) listing exactly them.
fn method_not_allowed(path: &str, methods: &[String]) -> Response {
    let allow = methods.join(", ");
    let mut response =
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{path} accepts {allow}"))
            .into_response();
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}
