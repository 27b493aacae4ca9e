//! API Gateway payload 2.0 both ways (`hearth-gateway`'s `http_event.rs`): an arbitrary
//! request becomes an event, and an arbitrary function result becomes a response.
//!
//! Input: fields separated by NUL bytes: method, request target, headers (`name: value`
//! lines), body, proxy, request id, the function's result body, its content type, its error
//! type, and flags (`c` cold start, `t` content type set, `e` function error, `a` the
//! trigger checked the caller's token, `1`/`2` HTTP/1.0 / HTTP/2, `6` an IPv6 peer).
//!
//! - the event is JSON with `version: "2.0"`, the request's path and method, its body
//!   (base64 when not text) and no Hearth token in its headers or cookies;
//! - the response never carries a hop-by-hop, `x-amz-*` or `x-hearth-*` header the function
//!   set: only the platform's own, once each, with the platform's values; a function error
//!   is a 502 that does not show the function's error document.
#![no_main]

use std::sync::LazyLock;

use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version};
use base64::Engine;
use bytes::Bytes;
use hearth_gateway::InvokeResponse;
use hearth_server::fuzzing::{event, response, strip_credentials};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

static RT: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"));

const PLATFORM: [&str; 3] = ["x-hearth-request-id", "x-hearth-cold-start", "x-hearth-function-error"];
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// Whether `s` holds a Hearth token secret (`hth_` + 64 hex digits).
fn holds_token(s: &str) -> bool {
    s.match_indices("hth_").any(|(i, _)| {
        let rest = &s.as_bytes()[i + 4..];
        rest.len() >= 64 && rest[..64].iter().all(u8::is_ascii_hexdigit)
    })
}

fn decode(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).expect("the event's base64 body decodes")
}

fn check_event(fields: &[&[u8]], flags: &str) {
    let field = |i: usize| fields.get(i).copied().unwrap_or_default();
    let method = Method::from_bytes(field(0)).unwrap_or(Method::GET);
    let uri = Uri::try_from(field(1)).unwrap_or_else(|_| Uri::from_static("/"));
    let version = match () {
        _ if flags.contains('1') => Version::HTTP_10,
        _ if flags.contains('2') => Version::HTTP_2,
        _ => Version::HTTP_11,
    };
    let (mut parts, ()) =
        Request::builder().method(method).uri(uri).version(version).body(()).expect("request").into_parts();
    for line in field(2).split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            parts.headers.append(n, v);
        }
    }
    let consumed = flags.contains('a');
    strip_credentials(&mut parts.headers, consumed);
    let body = Bytes::copy_from_slice(field(3));
    let proxy = String::from_utf8_lossy(field(4));
    let peer = if flags.contains('6') { "[2001:db8::7]:443" } else { "203.0.113.7:50000" };
    let ev = event(&parts, &body, "req-1", &proxy, Some(peer.parse().expect("peer")));
    let ev: Value = serde_json::from_slice(&ev).expect("the event is valid JSON");
    assert_eq!(ev["version"], "2.0");
    assert_eq!(ev["rawPath"], parts.uri.path());
    assert_eq!(ev["requestContext"]["http"]["method"], parts.method.as_str());
    assert_eq!(ev["requestContext"]["requestId"], "req-1");
    let headers = ev["headers"].as_object().expect("headers");
    for (name, value) in headers {
        let value = value.as_str().expect("header values are strings");
        assert!(!holds_token(value), "a Hearth token reached the event in {name}");
    }
    if consumed {
        assert!(!headers.contains_key("authorization"), "the Authorization Hearth checked reached the event");
    }
    for cookie in ev["cookies"].as_array().into_iter().flatten() {
        assert!(!holds_token(cookie.as_str().expect("cookies are strings")), "a Hearth token in a cookie");
    }
    match (&ev["body"], ev["isBase64Encoded"].as_bool()) {
        (Value::Null, Some(false)) => assert!(body.is_empty()),
        (Value::String(b), Some(true)) => assert_eq!(decode(b), body),
        (Value::String(b), Some(false)) => assert_eq!(b.as_bytes(), body),
        other => panic!("body and isBase64Encoded: {other:?}"),
    }
}

fn check_response(fields: &[&[u8]], flags: &str) {
    let field = |i: usize| fields.get(i).copied().unwrap_or_default();
    let text = |i: usize| String::from_utf8_lossy(field(i)).into_owned();
    let r = InvokeResponse {
        request_id: text(5),
        version: 1,
        cold_start: flags.contains('c'),
        start_source: None,
        body: Bytes::copy_from_slice(field(6)),
        content_type: flags.contains('t').then(|| text(7)),
        function_error: flags.contains('e').then(|| text(8)),
        duration: std::time::Duration::ZERO,
    };
    let resp = response(&r);
    let h = resp.headers();
    for (name, _) in h {
        let n = name.as_str();
        assert!(!HOP_BY_HOP.contains(&n), "the response carries {n}");
        assert!(!n.starts_with("x-amz-"), "the response carries {n}");
        assert!(!n.starts_with("x-hearth-") || PLATFORM.contains(&n), "the response carries {n}");
    }
    let all = |n: &str| h.get_all(n).iter().map(|v| v.as_bytes().to_vec()).collect::<Vec<_>>();
    assert_eq!(all("x-hearth-cold-start"), [if r.cold_start { &b"true"[..] } else { b"false" }]);
    let request_id: Vec<Vec<u8>> =
        HeaderValue::from_str(&r.request_id).map(|v| v.as_bytes().to_vec()).into_iter().collect();
    assert_eq!(all("x-hearth-request-id"), request_id);
    let error: Vec<Vec<u8>> =
        r.function_error.iter().filter_map(|e| HeaderValue::from_str(e).ok()).map(|v| v.as_bytes().to_vec()).collect();
    assert_eq!(all("x-hearth-function-error"), error);
    assert!(h.contains_key("content-type"));
    if r.function_error.is_some() {
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        let body = RT.block_on(axum::body::to_bytes(resp.into_body(), usize::MAX)).expect("body");
        assert_eq!(&body[..], br#"{"message":"Internal Server Error"}"#);
    }
}

fuzz_target!(|data: &[u8]| {
    let fields: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    let flags = fields.get(9).map(|f| String::from_utf8_lossy(f).into_owned()).unwrap_or_default();
    check_event(&fields, &flags);
    check_response(&fields, &flags);
});
