//! An HTTP trigger's event (API Gateway payload 2.0, as `hearth-server` builds it) turned
//! back into the HTTP request a `wasi:http` component serves, and its response into the
//! structured result the trigger answers with: so the component sees the request as
//! `wasmtime serve` would give it, and its status, headers, cookies and body go back
//! unchanged.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, Uri};
use serde_json::{Map, Value, json};

/// The request in an HTTP trigger's event, or why the event is not one.
pub(crate) fn request(event: &[u8]) -> Result<Request<Bytes>, String> {
    let not_http = || "the event is not an HTTP request (API Gateway payload 2.0)".to_owned();
    let event: Map<String, Value> = serde_json::from_slice(event).map_err(|_| not_http())?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let method = text(event.get("requestContext").and_then(|c| c.get("http")).and_then(|h| h.get("method")))
        .ok_or_else(not_http)?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| format!("invalid method {method:?}"))?;
    let path = text(event.get("rawPath")).ok_or_else(not_http)?;
    let query = text(event.get("rawQueryString")).unwrap_or_default();
    let headers = event.get("headers").and_then(Value::as_object);
    let host = headers
        .and_then(|h| h.get("host"))
        .and_then(Value::as_str)
        .or_else(|| event.get("requestContext").and_then(|c| c.get("domainName")).and_then(Value::as_str))
        .unwrap_or("localhost");
    let path_and_query = if query.is_empty() { path } else { format!("{path}?{query}") };
    let uri = Uri::builder()
        .scheme("http")
        .authority(host)
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| format!("invalid request target: {e}"))?;
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers.into_iter().flatten() {
        if let (Ok(n), Some(Ok(v))) = (HeaderName::try_from(name.as_str()), value.as_str().map(HeaderValue::from_str)) {
            builder = builder.header(n, v);
        }
    }
    if let Some(Value::Array(cookies)) = event.get("cookies") {
        let joined = cookies.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ");
        if let Ok(v) = HeaderValue::from_str(&joined) {
            builder = builder.header(http::header::COOKIE, v);
        }
    }
    let body = match (text(event.get("body")), event.get("isBase64Encoded").and_then(Value::as_bool)) {
        (None, _) => Bytes::new(),
        (Some(b), Some(true)) => B64.decode(b).map_err(|_| "the body is not valid base64".to_owned())?.into(),
        (Some(b), _) => Bytes::from(b),
    };
    builder.body(body).map_err(|e| format!("invalid request: {e}"))
}

/// The structured result (`statusCode`, `headers`, `multiValueHeaders`, `cookies`, `body`,
/// `isBase64Encoded`) for a component's response.
pub(crate) fn result(response: Response<Bytes>) -> Bytes {
    let (parts, body) = response.into_parts();
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    let mut cookies = vec![];
    for name in parts.headers.keys() {
        let values: Vec<String> =
            parts.headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
        if name == http::header::SET_COOKIE {
            cookies.extend(values);
        } else if values.len() == 1 {
            single.insert(name.as_str().to_owned(), json!(values[0]));
        } else {
            multi.insert(name.as_str().to_owned(), json!(values));
        }
    }
    let (body, base64) = match std::str::from_utf8(&body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (B64.encode(&body), true),
    };
    let mut out = json!({
        "statusCode": parts.status.as_u16(),
        "headers": single,
        "body": body,
        "isBase64Encoded": base64,
    });
    if !multi.is_empty() {
        out["multiValueHeaders"] = Value::Object(multi);
    }
    if !cookies.is_empty() {
        out["cookies"] = json!(cookies);
    }
    serde_json::to_vec(&out).expect("JSON").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_event_becomes_the_request_it_came_from() {
        let event = json!({
            "version": "2.0", "rawPath": "/web/a b", "rawQueryString": "x=1&y=2",
            "headers": {"host": "fn.example", "content-type": "application/octet-stream", "accept": "a,b"},
            "cookies": ["k=v", "s=t"],
            "requestContext": {"http": {"method": "PUT"}, "domainName": "ignored"},
            "body": B64.encode([0u8, 159, 255]), "isBase64Encoded": true,
        });
        let r = request(&serde_json::to_vec(&event).unwrap());
        assert!(r.is_err(), "a space is not a valid path: refused, not mangled");
        let event = json!({"rawPath": "/web/x", "rawQueryString": "x=1", "headers": {"host": "fn.example", "accept": "a,b"},
            "cookies": ["k=v", "s=t"], "requestContext": {"http": {"method": "PUT"}},
            "body": B64.encode([0u8, 159, 255]), "isBase64Encoded": true});
        let r = request(&serde_json::to_vec(&event).unwrap()).unwrap();
        assert_eq!(r.method(), Method::PUT);
        assert_eq!(r.uri().to_string(), "http://fn.example/web/x?x=1");
        assert_eq!(r.headers()["accept"], "a,b");
        assert_eq!(r.headers()["cookie"], "k=v; s=t");
        assert_eq!(r.body().as_ref(), [0u8, 159, 255]);
        assert!(request(br#"{"name": "not http"}"#).is_err());
        assert!(request(b"[1,2]").is_err());
    }

    #[test]
    fn a_response_becomes_the_structured_result_with_every_header() {
        let response = Response::builder()
            .status(418)
            .header("x-one", "1")
            .header("vary", "a")
            .header("vary", "b")
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .body(Bytes::from_static(&[0xff, 0x00]))
            .unwrap();
        let out: Value = serde_json::from_slice(&result(response)).unwrap();
        assert_eq!(out["statusCode"], 418);
        assert_eq!(out["headers"]["x-one"], "1");
        assert_eq!(out["multiValueHeaders"]["vary"], json!(["a", "b"]));
        assert_eq!(out["cookies"], json!(["a=1", "b=2"]));
        assert_eq!((out["body"].as_str().unwrap(), out["isBase64Encoded"].as_bool()), ("/wA=", Some(true)));
    }
}
