//! The Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`), so AWS SDKs and
//! the AWS CLI can invoke Hearth functions with `--endpoint-url`.
//!
//! Authentication is a Hearth token, given either as a bearer token or as the AWS access key
//! id of a SigV4-signed request (`aws_access_key_id = hth_...`, any secret). Only token
//! hashes are stored, so the signature itself cannot be checked; the token in the
//! `Credential` is as good as a bearer token, and both travel in the header.

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hearth_api::{ApiError, Caller};
use hearth_types::{FunctionName, Scope, VersionSelector};

use crate::routes::{GatewayState, read_event};
use crate::{AcquireError, InvokeError, InvokeRequest};

/// An error in the shape AWS SDKs parse (`x-amzn-ErrorType` + `{"Type", "message"}`).
fn aws_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = serde_json::json!({"Type": "User", "message": message});
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    if let Ok(v) = HeaderValue::from_str(error_type) {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp
}

fn from_api(e: ApiError) -> Response {
    let error_type = match e.status {
        StatusCode::UNAUTHORIZED => "UnrecognizedClientException",
        StatusCode::FORBIDDEN => "AccessDeniedException",
        StatusCode::NOT_FOUND => "ResourceNotFoundException",
        StatusCode::PAYLOAD_TOO_LARGE => "RequestTooLargeException",
        StatusCode::TOO_MANY_REQUESTS => "TooManyRequestsException",
        StatusCode::CONFLICT => "ResourceConflictException",
        s if s.is_client_error() => "InvalidParameterValueException",
        _ => "ServiceException",
    };
    let status = if e.status == StatusCode::UNAUTHORIZED { StatusCode::FORBIDDEN } else { e.status };
    aws_error(status, error_type, &e.message)
}

/// `name`, `name:qualifier`, `123456789012:function:name[:q]` or a full ARN, percent-decoded.
/// On failure, what was not found.
fn parse_function(raw: &str, qualifier: Option<String>) -> Result<(FunctionName, VersionSelector), String> {
    let not_found = |what: &str| format!("Function not found: {what}");
    let decoded = url::form_urlencoded::parse(format!("n={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let parts: Vec<&str> = decoded.split(':').collect();
    let (name, q) = match parts.as_slice() {
        [name] => (*name, None),
        [name, q] => (*name, Some(*q)),
        ["arn", "aws", "lambda", _, _, "function", name] | [_, "function", name] => (*name, None),
        ["arn", "aws", "lambda", _, _, "function", name, q] | [_, "function", name, q] => (*name, Some(*q)),
        _ => return Err(not_found(&decoded)),
    };
    let name: FunctionName = name.parse().map_err(|_| not_found(&decoded))?;
    let selector = match qualifier.as_deref().or(q) {
        None => VersionSelector::Latest,
        Some(q) => {
            q.parse().map_err(|_| not_found(&format!("{decoded} (qualifier {q}: aliases are not supported)")))?
        }
    };
    Ok((name, selector))
}

/// The access key id of `Authorization: AWS4-HMAC-SHA256 Credential=KEY/date/region/...`.
fn sigv4_access_key(h: &HeaderMap) -> Option<String> {
    let auth = header_text(h, "authorization")?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let credential = rest.split(',').map(str::trim).find_map(|p| p.strip_prefix("Credential="))?;
    credential.split('/').next().map(str::to_owned)
}

fn header_text(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Lambda Invoke API (AWS SDKs and CLI with `--endpoint-url`).
///
/// `X-Amz-Invocation-Type`: `RequestResponse` (default) or `DryRun`; `X-Amz-Client-Context`
/// (base64 JSON); `Qualifier` query. Function errors answer 200 with
/// `X-Amz-Function-Error: Unhandled`. Needs a bearer token with the `invoke` scope.
#[utoipa::path(
    post, path = "/2015-03-31/functions/{name}/invocations", tag = "invoke",
    params(("name" = String, Path, description = "Name, name:qualifier, or function ARN"),
           ("Qualifier" = Option<String>, Query, description = "Version number or $LATEST")),
    request_body(content = Vec<u8>, content_type = "application/json", description = "The event"),
    responses(
        (status = 200, description = "The result (or error document with X-Amz-Function-Error)"),
        (status = 204, description = "DryRun: the function exists"),
        (status = 404, description = "ResourceNotFoundException"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn invocations(
    State(state): State<GatewayState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, body): (Parts, Body) = request.into_parts();
    if let Some(token) = sigv4_access_key(&parts.headers).filter(|k| k.starts_with("hth_"))
        && let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        parts.headers.insert(header::AUTHORIZATION, v);
    }
    match Caller::from_request_parts(&mut parts, &state).await.and_then(|c| c.require(Scope::Invoke).map(|_| c)) {
        Ok(_) => {}
        Err(e) => return from_api(e),
    }
    let qualifier = query.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "Qualifier").map(|(_, v)| v.into_owned())
    });
    let (name, selector) = match parse_function(&raw, qualifier) {
        Ok(x) => x,
        Err(message) => return aws_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", &message),
    };
    let h = &parts.headers;
    let client_context = match header_text(h, "x-amz-client-context") {
        None => None,
        Some(b64) => {
            match base64::engine::general_purpose::STANDARD.decode(b64).ok().and_then(|b| String::from_utf8(b).ok()) {
                Some(json) => Some(json),
                None => {
                    return aws_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidRequestContentException",
                        "X-Amz-Client-Context must be base64 JSON",
                    );
                }
            }
        }
    };
    let payload = match read_event(body).await {
        Ok(p) => p,
        Err(e) => return from_api(e),
    };
    if !payload.is_empty() && serde_json::from_slice::<serde_json::Value>(&payload).is_err() {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "Could not parse request body into json",
        );
    }
    match header_text(h, "x-amz-invocation-type").as_deref() {
        None | Some("RequestResponse") => {}
        Some("DryRun") => {
            return match state.gateway.function(&name).await {
                Ok(Some(_)) => StatusCode::NO_CONTENT.into_response(),
                Ok(None) => from_api(ApiError::function_not_found(name.as_str())),
                Err(e) => from_api(e.into()),
            };
        }
        Some("Event") => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                "Event (asynchronous) invocations are not supported by this server yet; use RequestResponse",
            );
        }
        Some(other) => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                &format!("unknown invocation type {other}"),
            );
        }
    }
    let payload = if payload.is_empty() { bytes::Bytes::from_static(b"{}") } else { payload };
    let request = InvokeRequest {
        payload,
        content_type: Some("application/json".into()),
        client_context,
        trace_id: header_text(h, "x-amzn-trace-id"),
        request_id: None,
    };
    let r = match state.gateway.invoke(&name, selector, request).await {
        Ok(r) => r,
        Err(InvokeError::Unavailable(AcquireError::Throttled { .. } | AcquireError::NodeFull { .. })) => {
            return aws_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException", "Rate Exceeded.");
        }
        Err(e) => return from_api(e.into()),
    };
    // Tail: the last 4 KB of this invocation's log, base64.
    let tail = if header_text(h, "x-amz-log-type").as_deref() == Some("Tail") {
        let lines = state.gateway.logs(&name, 0, Some(&r.request_id), 10_000).await.unwrap_or_default();
        let text: String = lines.iter().map(|l| format!("{}\n", l.message)).collect();
        let start = text.len().saturating_sub(4096);
        let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        Some(base64::engine::general_purpose::STANDARD.encode(&text[start..]))
    } else {
        None
    };
    let mut resp = r.body.clone().into_response();
    let out = resp.headers_mut();
    if let Some(v) = tail.and_then(|t| HeaderValue::from_str(&t).ok()) {
        out.insert("x-amz-log-result", v);
    }
    let ct = r.content_type.as_deref().unwrap_or("application/json");
    out.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap_or(HeaderValue::from_static("application/json")));
    out.insert("x-amz-executed-version", HeaderValue::from(r.version));
    if let Ok(v) = HeaderValue::from_str(&r.request_id) {
        out.insert("x-amzn-requestid", v);
    }
    if r.function_error.is_some() {
        out.insert("x-amz-function-error", HeaderValue::from_static("Unhandled"));
    }
    resp
}
