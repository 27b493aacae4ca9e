//! HTTP triggers: payload 2.0 events, response mapping, methods, auth, examples.

use super::*;

const HTTP_FUNCTION: &str = r#"
import base64, json

def handler(event, context):
    path = event.get("rawPath", "")
    if path.endswith("/echo"):
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(event)}
    if path.endswith("/shaped"):
        return {"statusCode": 201, "headers": {"x-custom": "yes", "content-type": "text/plain"},
                "cookies": ["a=1; Max-Age=60", "b=2"], "body": "created"}
    if path.endswith("/binary"):
        return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                "isBase64Encoded": True, "body": base64.b64encode(bytes([0, 1, 2, 255])).decode()}
    if path.endswith("/bare"):
        return ["just", "a", "list"]
    if path.endswith("/fail"):
        raise RuntimeError("secret internals")
    return {"statusCode": 200, "body": "Hello FaaS"}
"#;

#[tokio::test]
async fn http_trigger_serves_the_seed_example() {
    let s = start().await;
    s.deploy("hello", HTTP_FUNCTION, py(json!({}))).await;
    let (st, t) = s.add_trigger(json!({"function": "hello", "path": "/hello"})).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let first = s.http.get(format!("{}/hello/faas", s.trigger_url)).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["x-hearth-cold-start"], "true");
    assert_eq!(first.text().await.unwrap(), "Hello FaaS");
    let second = s.http.get(format!("{}/hello/faas", s.trigger_url)).send().await.unwrap();
    assert_eq!(second.headers()["x-hearth-cold-start"], "false");
    assert_eq!(second.text().await.unwrap(), "Hello FaaS");
    assert_eq!(
        s.http.get(format!("{}/hello", s.trigger_url)).send().await.unwrap().text().await.unwrap(),
        "Hello FaaS"
    );
    let other = s.http.get(format!("{}/hellothere", s.trigger_url)).send().await.unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND, "only whole segments match");
}

#[tokio::test]
async fn http_events_and_responses_follow_payload_2_0() {
    let s = start().await;
    s.deploy("web", HTTP_FUNCTION, py(json!({}))).await;
    s.add_trigger(json!({"function": "web", "path": "/api"})).await;
    let r = s
        .http
        .post(format!("{}/api/items/echo?a=1&a=2&b=x%20y", s.trigger_url))
        .header("cookie", "c1=v1; c2=v2")
        .header("X-Mixed-Case", "kept")
        .header("content-type", "application/json")
        .body(r#"{"k":"v"}"#)
        .send()
        .await
        .unwrap();
    let request_id = r.headers()["x-hearth-request-id"].to_str().unwrap().to_owned();
    let ev: Value = r.json().await.unwrap();
    assert_eq!((ev["version"].as_str(), ev["routeKey"].as_str()), (Some("2.0"), Some("$default")));
    assert_eq!(ev["rawPath"], "/api/items/echo");
    assert_eq!(ev["rawQueryString"], "a=1&a=2&b=x%20y");
    assert_eq!(ev["queryStringParameters"], json!({"a": "1,2", "b": "x y"}));
    assert_eq!(ev["cookies"], json!(["c1=v1", "c2=v2"]));
    assert_eq!(ev["headers"]["x-mixed-case"], "kept");
    assert!(ev["headers"].get("cookie").is_none(), "cookies move out of the headers");
    assert_eq!((ev["body"].as_str(), ev["isBase64Encoded"].as_bool()), (Some(r#"{"k":"v"}"#), Some(false)));
    assert_eq!(ev["pathParameters"]["proxy"], "items/echo");
    assert_eq!(ev["requestContext"]["http"]["method"], "POST");
    assert_eq!(ev["requestContext"]["requestId"], request_id.as_str());

    let r = s
        .http
        .post(format!("{}/api/echo", s.trigger_url))
        .header("content-type", "image/png")
        .body(vec![0u8, 159, 146, 150])
        .send()
        .await
        .unwrap();
    let ev: Value = r.json().await.unwrap();
    assert_eq!(
        (ev["body"].as_str(), ev["isBase64Encoded"].as_bool()),
        (Some("AJ+Slg=="), Some(true)),
        "binary bodies are base64"
    );

    let r = s.http.get(format!("{}/api/shaped", s.trigger_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["x-custom"], "yes");
    let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert_eq!(cookies, ["a=1; Max-Age=60", "b=2"]);
    assert_eq!(r.text().await.unwrap(), "created");

    let r = s.http.get(format!("{}/api/binary", s.trigger_url)).send().await.unwrap();
    assert_eq!(&r.bytes().await.unwrap()[..], &[0, 1, 2, 255], "base64 bodies are decoded");
    let r = s.http.get(format!("{}/api/bare", s.trigger_url)).send().await.unwrap();
    assert_eq!((r.status(), r.headers()["content-type"].to_str().unwrap()), (StatusCode::OK, "application/json"));
    assert_eq!(r.json::<Value>().await.unwrap(), json!(["just", "a", "list"]));

    let r = s.http.get(format!("{}/api/fail", s.trigger_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(r.headers()["x-hearth-function-error"], "RuntimeError");
    assert!(!r.text().await.unwrap().contains("secret internals"), "error documents are not leaked to HTTP callers");
}

#[tokio::test]
async fn trigger_methods_auth_and_lifecycle() {
    let s = start().await;
    s.deploy("guarded", HTTP_FUNCTION, py(json!({}))).await;
    let (_, t) =
        s.add_trigger(json!({"function": "guarded", "path": "/private", "methods": ["post"], "auth": "token"})).await;
    assert_eq!(t["methods"], json!(["POST"]));
    let r = s.http.get(format!("{}/private", s.trigger_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the token is checked before the method");
    let r = s.http.get(format!("{}/private", s.trigger_url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = s.http.post(format!("{}/private", s.trigger_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = s.http.post(format!("{}/private", s.trigger_url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "Hello FaaS");
    // The default URL needs a token too.
    assert_eq!(
        s.http.get(format!("{}/fn/guarded/x", s.trigger_url)).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let r = s.http.get(format!("{}/fn/guarded/x", s.trigger_url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "Hello FaaS");

    for (spec, status, code) in [
        (json!({"function": "guarded", "path": "/v1/mine"}), StatusCode::BAD_REQUEST, "ReservedTriggerPath"),
        (json!({"function": "guarded", "path": "/fn"}), StatusCode::BAD_REQUEST, "ReservedTriggerPath"),
        (json!({"function": "guarded", "path": "no-slash"}), StatusCode::BAD_REQUEST, "InvalidTriggerPath"),
        (json!({"function": "guarded", "path": "/x", "methods": ["FETCH"]}), StatusCode::BAD_REQUEST, "InvalidMethod"),
        (json!({"function": "guarded", "path": "/x", "auth": "magic"}), StatusCode::BAD_REQUEST, "InvalidTriggerAuth"),
        (json!({"function": "ghost", "path": "/x"}), StatusCode::NOT_FOUND, "FunctionNotFound"),
        (json!({"function": "guarded", "path": "/private/"}), StatusCode::CONFLICT, "TriggerPathTaken"),
    ] {
        let (st, body) = s.add_trigger(spec.clone()).await;
        assert_eq!((st, body["code"].as_str()), (status, Some(code)), "{spec}");
    }
    let r = s
        .http
        .delete(format!("{}/v1/triggers/{}", s.url, t["id"].as_str().unwrap()))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = s.http.post(format!("{}/private", s.trigger_url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "a deleted trigger stops routing at once");
    s.add_trigger(json!({"function": "guarded", "path": "/again"})).await;
    let r = s.http.delete(format!("{}/v1/functions/guarded", s.url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let list: Value =
        s.http.get(format!("{}/v1/triggers", s.url)).bearer_auth(&s.token).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["triggers"], json!([]), "a deleted function's triggers are gone");
}

/// A method a trigger does not accept is 405 `MethodNotAllowed` with an `Allow` header
/// naming the methods it does accept; on a `token` trigger only once the token is good, so
/// an anonymous caller learns nothing of its methods.
#[tokio::test]
async fn disallowed_methods_get_405_with_allow_after_auth() {
    let s = start().await;
    s.deploy("methods", HTTP_FUNCTION, py(json!({}))).await;
    let (st, t) = s.add_trigger(json!({"function": "methods", "path": "/open", "methods": ["GET"]})).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let (st, t) = s
        .add_trigger(json!({"function": "methods", "path": "/locked", "methods": ["get", "post"], "auth": "token"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let (st, t) = s.add_trigger(json!({"function": "methods", "path": "/any"})).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");

    let r = s.http.delete(format!("{}/open/x", s.trigger_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers().get_all("allow").iter().collect::<Vec<_>>(), ["GET"]);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "MethodNotAllowed", "{body}");
    assert_eq!(body["message"], "/open accepts GET", "{body}");
    let r = s.http.head(format!("{}/open", s.trigger_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "a GET trigger does not take HEAD");
    assert_eq!(r.headers()["allow"], "GET");
    let r = s.http.get(format!("{}/open", s.trigger_url)).send().await.unwrap();
    assert_eq!((r.status(), r.headers().get("allow")), (StatusCode::OK, None));

    let r = s.http.delete(format!("{}/locked", s.trigger_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no token: 401, not 405");
    assert!(r.headers().get("allow").is_none(), "an anonymous caller does not learn the methods");
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "MissingToken");
    let r = s.http.delete(format!("{}/locked", s.trigger_url)).bearer_auth("hearth_bogus").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a bad token: 401, not 405");
    assert!(r.headers().get("allow").is_none());
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "InvalidToken");
    let r = s
        .http
        .post(format!("{}/v1/tokens", s.url))
        .bearer_auth(&s.token)
        .json(&json!({"scopes": ["read"], "name": "reader"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let reader = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let r = s.http.delete(format!("{}/locked", s.trigger_url)).bearer_auth(&reader).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no invoke scope: 403, not 405");
    assert!(r.headers().get("allow").is_none());
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "InsufficientScope");
    let r = s.http.delete(format!("{}/locked/x", s.trigger_url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers().get_all("allow").iter().collect::<Vec<_>>(), ["GET, POST"]);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "MethodNotAllowed");
    let r = s.http.post(format!("{}/locked", s.trigger_url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!((r.status(), r.headers().get("allow")), (StatusCode::OK, None));

    let r = s.http.delete(format!("{}/any", s.trigger_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "a trigger without methods takes any");
}

#[tokio::test]
async fn node_and_shell_examples_answer_http_triggers() {
    let s = start().await;
    s.deploy_example("node-hello", "node-hello", json!({"runtime": "nodejs", "handler": "index.handler"})).await;
    s.deploy_example("shell-hello", "shell-hello", json!({"runtime": "provided"})).await;
    for name in ["node-hello", "shell-hello"] {
        s.add_trigger(json!({"function": name, "path": format!("/{name}")})).await;
        for cold in ["true", "false"] {
            let r = s.http.get(format!("{}/{name}/faas", s.trigger_url)).send().await.unwrap();
            assert_eq!(r.headers()["x-hearth-cold-start"], cold, "{name}");
            assert_eq!(r.text().await.unwrap(), "Hello FaaS", "{name}");
        }
    }
}

/// A function that logs every event it gets and answers with it.
const SPY: &str = r#"
import json

def handler(event, context):
    print(json.dumps(event))
    return {"statusCode": 200, "headers": {"content-type": "application/json",
            "x-hearth-cold-start": "forged", "connection": "close", "x-spy": "1"}, "body": json.dumps(event)}
"#;

/// Hearth's own credentials never reach a function: not the token Hearth checked for a
/// `token` trigger or `/fn/`, nor a Hearth token sent to a public trigger, in any header;
/// so neither the function, nor its logs, nor its records hold them. The function cannot
/// set platform or hop-by-hop headers on its response either.
#[tokio::test]
async fn caller_credentials_never_reach_functions() {
    let s = start().await;
    s.deploy("spy", SPY, py(json!({}))).await;
    let (st, _) = s.add_trigger(json!({"function": "spy", "path": "/open"})).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = s.add_trigger(json!({"function": "spy", "path": "/guarded", "auth": "token"})).await;
    assert_eq!(st, StatusCode::CREATED);
    let mut seen = vec![];
    for path in ["/fn/spy/x", "/guarded/x", "/open/x"] {
        let r = s
            .http
            .post(format!("{}{path}", s.trigger_url))
            .bearer_auth(&s.token)
            .header("x-api-key", format!("key={}", s.token))
            .header("x-kept", "yes")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let cold = r.headers()["x-hearth-cold-start"].to_str().unwrap().to_owned();
        assert!(cold == "true" || cold == "false", "{path}: the function forged a platform header: {cold}");
        assert!(r.headers().get("x-spy").is_some() && r.headers().get("connection").is_none(), "{path}");
        let text = r.text().await.unwrap();
        assert!(!text.contains(&s.token), "{path}: the function saw the caller's token: {text}");
        let ev: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(ev["headers"]["x-kept"], "yes", "{path}: other headers still arrive: {ev}");
        assert!(ev["headers"].get("authorization").is_none(), "{path}: {ev}");
        seen.push(ev);
    }
    // A public trigger passes on an Authorization header that is not Hearth's: it is the
    // function's own business.
    let r = s.http.get(format!("{}/open/x", s.trigger_url)).basic_auth("user", Some("pass")).send().await.unwrap();
    let ev: Value = r.json().await.unwrap();
    assert_eq!(ev["headers"]["authorization"], "Basic dXNlcjpwYXNz", "{ev}");
    // Nothing stored holds the token: the logs (which printed every event) and the records.
    for what in ["logs", "invocations"] {
        let r = s.http.get(format!("{}/v1/functions/spy/{what}", s.url)).bearer_auth(&s.token).send().await.unwrap();
        let text = r.text().await.unwrap();
        assert!(text.contains("x-kept") || what == "invocations", "the events were logged: {text}");
        assert!(!text.contains(&s.token), "{what} hold the caller's token");
    }
}
