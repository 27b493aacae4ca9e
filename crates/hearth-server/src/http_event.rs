//! HTTP requests as API Gateway payload 2.0 events, and function results back as HTTP
//! responses (the Function URL contract).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::net::SocketAddr;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;
use serde_json::{Map, Value};

use hearth_gateway::InvokeResponse;

fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.ends_with("+json")
        || ct.ends_with("+xml")
        || matches!(
            ct.as_str(),
            "application/json" | "application/xml" | "application/javascript" | "application/x-www-form-urlencoded"
        )
}

/// Removes the credentials Hearth consumed from a request before it becomes an event: the
/// `Authorization` header when Hearth checked it (`consumed`), and any header value that
/// carries a Hearth token whatever the trigger's auth. A function never sees, logs or
/// stores a caller's Hearth token.
pub fn strip_credentials(headers: &mut HeaderMap, consumed: bool) {
    if consumed {
        headers.remove(header::AUTHORIZATION);
    }
    let carrying: Vec<HeaderName> =
        headers.iter().filter(|(_, v)| carries_token(v.as_bytes())).map(|(n, _)| n.clone()).collect();
    for name in carrying {
        headers.remove(name);
    }
}

/// Whether `value` holds a Hearth token secret (`hth_` + 64 hex digits) anywhere.
fn carries_token(value: &[u8]) -> bool {
    let prefix = hearth_api::TOKEN_PREFIX.as_bytes();
    (0..value.len()).any(|i| {
        value[i..].starts_with(prefix)
            && value.len() >= i + prefix.len() + 64
            && value[i + prefix.len()..i + prefix.len() + 64].iter().all(u8::is_ascii_hexdigit)
    })
}

/// Response headers a function may not set: hop-by-hop headers (they describe one
/// connection, which is the platform's) and the platform's own `x-hearth-*` and
/// `x-amz-*` headers (callers trust them to come from Hearth).
fn reserved_response_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    matches!(
        n,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
    ) || n.starts_with("x-hearth-")
        || n.starts_with("x-amz-")
}

/// An API Gateway payload 2.0 event, serialized straight from the request's parts.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    version: &'static str,
    route_key: &'static str,
    raw_path: &'a str,
    raw_query_string: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cookies: Vec<Cow<'a, str>>,
    headers: BTreeMap<&'a str, Cow<'a, str>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    query_string_parameters: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_parameters: Option<PathParameters<'a>>,
    request_context: RequestContext<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<Cow<'a, str>>,
    is_base64_encoded: bool,
}

#[derive(Serialize)]
struct PathParameters<'a> {
    proxy: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext<'a> {
    account_id: &'static str,
    api_id: &'static str,
    domain_name: &'a str,
    domain_prefix: &'a str,
    http: HttpContext<'a>,
    request_id: &'a str,
    route_key: &'static str,
    stage: &'static str,
    time: String,
    time_epoch: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpContext<'a> {
    method: &'a str,
    path: &'a str,
    protocol: &'static str,
    source_ip: String,
    user_agent: &'a str,
}

fn protocol(version: axum::http::Version) -> &'static str {
    use axum::http::Version;
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Appends `more` to a value seen before, as API Gateway joins repeated names (`a,b`).
fn join<'a>(seen: &mut Cow<'a, str>, more: &str) {
    let joined = seen.to_mut();
    joined.push(',');
    joined.push_str(more);
}

/// The event (JSON) for a request to `raw_path` (`proxy` = the part below the trigger).
pub fn event(parts: &Parts, body: &Bytes, request_id: &str, proxy: &str, peer: Option<SocketAddr>) -> Bytes {
    let mut headers: BTreeMap<&str, Cow<'_, str>> = BTreeMap::new();
    let mut cookies: Vec<Cow<'_, str>> = vec![];
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        if name == header::COOKIE {
            // In the order sent, whatever their bytes.
            match value {
                Cow::Borrowed(v) => {
                    cookies.extend(v.split(';').map(str::trim).filter(|c| !c.is_empty()).map(Cow::Borrowed))
                }
                Cow::Owned(v) => {
                    cookies.extend(v.split(';').map(str::trim).filter(|c| !c.is_empty()).map(|c| Cow::Owned(c.into())))
                }
            }
            continue;
        }
        match headers.entry(name.as_str()) {
            Entry::Occupied(mut e) => join(e.get_mut(), &value),
            Entry::Vacant(e) => {
                e.insert(value);
            }
        }
    }
    let raw_query = parts.uri.query().unwrap_or("");
    let mut query: BTreeMap<Cow<'_, str>, Cow<'_, str>> = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        match query.entry(k) {
            Entry::Occupied(mut e) => join(e.get_mut(), &v),
            Entry::Vacant(e) => {
                e.insert(v);
            }
        }
    }
    // Borrowed from the headers' values when they are (cloning a borrowed `Cow` copies a pointer).
    let host = headers.get("host").cloned().unwrap_or(Cow::Borrowed("localhost"));
    let user_agent = headers.get("user-agent").cloned().unwrap_or_default();
    let now = Utc::now();
    let content_type = headers.get("content-type").map(|c| c.as_ref());
    let (body, is_base64_encoded) = if body.is_empty() {
        (None, false)
    } else {
        match is_text(content_type).then(|| std::str::from_utf8(body).ok()).flatten() {
            Some(t) => (Some(Cow::Borrowed(t)), false),
            None => (Some(Cow::Owned(B64.encode(body))), true),
        }
    };
    let event = Event {
        version: "2.0",
        route_key: "$default",
        raw_path: parts.uri.path(),
        raw_query_string: raw_query,
        cookies,
        query_string_parameters: query,
        path_parameters: (!proxy.is_empty()).then_some(PathParameters { proxy }),
        request_context: RequestContext {
            account_id: "anonymous",
            api_id: "hearth",
            domain_name: &host,
            domain_prefix: host.split('.').next().unwrap_or(""),
            http: HttpContext {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                protocol: protocol(parts.version),
                source_ip: peer.map(|p| p.ip().to_string()).unwrap_or_default(),
                user_agent: &user_agent,
            },
            request_id,
            route_key: "$default",
            stage: "$default",
            time: now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            time_epoch: now.timestamp_millis(),
        },
        headers,
        body,
        is_base64_encoded,
    };
    let mut json = Vec::with_capacity(1024 + event.body.as_ref().map_or(0, |b| b.len()));
    serde_json::to_writer(&mut json, &event).expect("an event serializes");
    json.into()
}

fn bad_gateway(why: &str) -> Response {
    tracing::warn!("HTTP trigger: {why}");
    (StatusCode::BAD_GATEWAY, [(header::CONTENT_TYPE, "application/json")], r#"{"message":"Internal Server Error"}"#)
        .into_response()
}

/// Maps a function's result to the HTTP response: `{"statusCode", "headers", "cookies",
/// "body", "isBase64Encoded"}`, or any other JSON value as a 200 JSON body. A function error
/// answers 502 without leaking the error document.
pub fn response(r: &InvokeResponse) -> Response {
    let mut resp = if r.function_error.is_some() {
        bad_gateway("the function failed")
    } else {
        match serde_json::from_slice::<Value>(&r.body) {
            Ok(Value::Object(o)) if o.contains_key("statusCode") => structured(&o),
            Ok(_) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], r.body.clone()).into_response(),
            Err(_) => {
                let ct = r.content_type.clone().unwrap_or_else(|| "application/octet-stream".into());
                (StatusCode::OK, [(header::CONTENT_TYPE, ct)], r.body.clone()).into_response()
            }
        }
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&r.request_id) {
        h.insert("x-hearth-request-id", v);
    }
    h.insert("x-hearth-cold-start", HeaderValue::from_static(if r.cold_start { "true" } else { "false" }));
    if let Some(source) = r.start_source {
        h.insert("x-hearth-start-source", HeaderValue::from_static(source.as_str()));
    }
    if let Some(kind) = r.function_error.as_deref().and_then(|k| HeaderValue::from_str(k).ok()) {
        h.insert("x-hearth-function-error", kind);
    }
    resp
}

fn structured(o: &Map<String, Value>) -> Response {
    let Some(status) =
        o["statusCode"].as_u64().and_then(|s| u16::try_from(s).ok()).and_then(|s| StatusCode::from_u16(s).ok())
    else {
        return bad_gateway("statusCode is not a valid HTTP status");
    };
    let body = match o.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) if o.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) => {
            match B64.decode(s) {
                Ok(b) => b.into(),
                Err(_) => return bad_gateway("body is not valid base64"),
            }
        }
        Some(Value::String(s)) => Bytes::from(s.clone()),
        Some(other) => Bytes::from(other.to_string()),
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut put = |name: &str, value: String, append: bool| {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::from_str(&value)) {
            if reserved_response_header(&n) {
                return;
            }
            if append {
                h.append(n, v)
            } else {
                h.insert(n, v).is_some()
            };
        }
    };
    if let Some(Value::Object(headers)) = o.get("headers") {
        for (k, v) in headers {
            put(k, text(v), false);
        }
    }
    if let Some(Value::Object(multi)) = o.get("multiValueHeaders") {
        for (k, vs) in multi {
            for v in vs.as_array().into_iter().flatten() {
                put(k, text(v), true);
            }
        }
    }
    if let Some(Value::Array(cookies)) = o.get("cookies") {
        for c in cookies {
            put("set-cookie", text(c), true);
        }
    }
    if !resp.headers().contains_key(header::CONTENT_TYPE) {
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn credentials_are_stripped() {
        let token = format!("{}{}", hearth_api::TOKEN_PREFIX, "ab12".repeat(16));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        h.insert("x-forwarded-token", HeaderValue::from_str(&format!("t={token}")).unwrap());
        h.insert("x-eighth_note", HeaderValue::from_static("hth_short"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        let mut public = h.clone();
        strip_credentials(&mut public, false);
        assert!(!public.contains_key(header::AUTHORIZATION) && !public.contains_key("x-forwarded-token"));
        assert!(public.contains_key("x-eighth_note") && public.contains_key("accept"));
        // A public trigger keeps an Authorization header that is not a Hearth token.
        let mut other = HeaderMap::new();
        other.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwYXNz"));
        strip_credentials(&mut other, false);
        assert!(other.contains_key(header::AUTHORIZATION));
        strip_credentials(&mut other, true);
        assert!(!other.contains_key(header::AUTHORIZATION));
    }

    #[test]
    fn platform_and_hop_by_hop_response_headers_are_dropped() {
        let o = json!({"statusCode": 200, "headers": {"x-hearth-cold-start": "false", "connection": "close",
            "transfer-encoding": "chunked", "x-amz-function-error": "x", "x-custom": "kept"}});
        let r = structured(o.as_object().unwrap());
        assert_eq!(r.headers().get("x-custom").unwrap(), "kept");
        for h in ["x-hearth-cold-start", "connection", "transfer-encoding", "x-amz-function-error"] {
            assert!(!r.headers().contains_key(h), "{h}");
        }
    }
}
