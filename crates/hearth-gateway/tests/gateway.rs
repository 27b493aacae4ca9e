//! The gateway end to end over real HTTP: deploy through the API, invoke real Python
//! instances, watch the route cache, the activator and the keep-alive reaper work.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_agent::{ProcessDriver, Runtimes};
use hearth_api::{AppState, ensure_admin_token};
use hearth_blob::fixtures::deflated_zip;
use hearth_blob::{CodeStore, ObjectSource, PackageLimits};
use hearth_gateway::{Gateway, GatewaySettings, app, openapi};
use hearth_store::SqliteStore;
use reqwest::StatusCode;
use serde_json::{Value, json};

const FUNCTION: &str = r#"
import os, time

def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("exit") is not None:
        os._exit(event["exit"])
    if event.get("big"):
        return "x" * event["big"]
    return {"pid": os.getpid(), "echo": event}
"#;

struct Server {
    url: String,
    token: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("meta.db")).unwrap());
    let code = CodeStore::local(&dir.path().join("code"), PackageLimits::DEFAULT).unwrap();
    let token = ensure_admin_token(store.as_ref()).await.unwrap().unwrap();
    let runtimes = Runtimes::install(&dir.path().join("runtimes")).unwrap();
    let settings = GatewaySettings { reap_interval: Duration::from_millis(100), ..Default::default() };
    let gateway = Gateway::new(
        store.clone(),
        code.clone(),
        dir.path().join("cache"),
        runtimes,
        Arc::new(ProcessDriver::detect()),
        settings,
    );
    gateway.spawn_reaper();
    gateway.prewarm().await.unwrap();
    let router = app(AppState::new(store, code, ObjectSource::default()), gateway);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    Server { url, token, http: reqwest::Client::new(), _dir: dir }
}

struct Reply {
    status: StatusCode,
    cold: Option<bool>,
    error: Option<String>,
    request_id: Option<String>,
    body: Value,
}

impl Server {
    /// Deploys `source` as the function's `main.py`.
    async fn deploy(&self, name: &str, source: &str, spec: Value) {
        self.deploy_zip(name, deflated_zip(&[("main.py", source.as_bytes())]), spec).await;
    }

    /// Uploads a package and points the function at it, code and configuration in one step.
    async fn deploy_zip(&self, name: &str, zip: Vec<u8>, spec: Value) {
        let r = self
            .http
            .post(format!("{}/v1/packages", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/zip")
            .body(zip)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "upload for {name}: {}", r.status());
        let pkg: Value = r.json().await.unwrap();
        let mut spec = spec;
        spec["code_sha256"] = pkg["sha256"].clone();
        let r = self
            .http
            .put(format!("{}/v1/functions/{name}", self.url))
            .bearer_auth(&self.token)
            .json(&spec)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "deploy {name}: {}", r.text().await.unwrap());
    }

    async fn invoke(&self, name: &str, event: Vec<u8>) -> Reply {
        let r = self
            .http
            .post(format!("{}/v1/functions/{name}/invoke", self.url))
            .bearer_auth(&self.token)
            .body(event)
            .send()
            .await
            .unwrap();
        let header = |k: &str| r.headers().get(k).map(|v| v.to_str().unwrap().to_owned());
        let (status, cold, error, request_id) = (
            r.status(),
            header("x-hearth-cold-start").map(|v| v == "true"),
            header("x-hearth-function-error"),
            header("x-hearth-request-id"),
        );
        let text = r.text().await.unwrap();
        Reply { status, cold, error, request_id, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }

    async fn event(&self, name: &str, event: Value) -> Reply {
        self.invoke(name, event.to_string().into_bytes()).await
    }

    async fn instances(&self, name: &str) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/v1/functions/{name}/instances", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["instances"].as_array().unwrap().clone()
    }

    /// Polls until `cond` holds for the instance list, failing after `limit`.
    async fn wait_instances(&self, name: &str, limit: Duration, cond: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let list = self.instances(name).await;
            if cond(&list) {
                return list;
            }
            assert!(Instant::now() < deadline, "instances never reached the expected state: {list:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn py(extra: Value) -> Value {
    let mut spec = json!({"runtime": "python3", "handler": "main.handler"});
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    spec
}

#[tokio::test]
async fn cold_then_warm_then_scaled_to_zero() {
    let s = start().await;
    s.deploy("hello", FUNCTION, py(json!({"keep_alive_s": 2}))).await;
    let first = s.event("hello", json!({"n": 1})).await;
    assert_eq!(
        (first.status, first.cold, first.error.as_deref()),
        (StatusCode::OK, Some(true), None),
        "{:?}",
        first.body
    );
    assert_eq!(first.body["echo"], json!({"n": 1}));
    let second = s.event("hello", json!({"n": 2})).await;
    assert_eq!(second.cold, Some(false), "the warm instance is reused");
    assert_eq!(first.body["pid"], second.body["pid"]);
    assert_ne!(first.request_id, second.request_id);
    let list = s.instances("hello").await;
    assert_eq!(list.len(), 1);
    assert_eq!((list[0]["state"].as_str(), list[0]["requests_served"].as_u64()), (Some("ready"), Some(2)));

    // Idle past its 2 s keep-alive: reclaimed, and the next call is cold again.
    s.wait_instances("hello", Duration::from_secs(10), |l| l.is_empty()).await;
    let third = s.event("hello", json!({})).await;
    assert_eq!(third.cold, Some(true));
    assert_ne!(third.body["pid"], first.body["pid"]);
}

#[tokio::test]
async fn burst_from_zero_is_served_within_max_instances() {
    let s = Arc::new(start().await);
    s.deploy("burst", FUNCTION, py(json!({"max_instances": 4, "timeout_s": 30}))).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.event("burst", json!({"i": i})).await })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    let mut pids = std::collections::HashSet::new();
    let mut echoed = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!((r.status, r.error.as_deref()), (StatusCode::OK, None), "{:?}", r.body);
        ids.insert(r.request_id.unwrap());
        pids.insert(r.body["pid"].as_u64().unwrap());
        echoed.insert(r.body["echo"]["i"].as_u64().unwrap());
    }
    assert_eq!(ids.len(), 200, "every request has its own id");
    assert_eq!(echoed.len(), 200, "every event answered exactly once");
    assert!(pids.len() <= 4, "at most max_instances instances: {}", pids.len());
    assert!(s.instances("burst").await.len() <= 4);
}

#[tokio::test]
async fn failures_are_reported_and_the_next_call_succeeds() {
    let s = start().await;
    s.deploy("fragile", FUNCTION, py(json!({"timeout_s": 1}))).await;
    let ok = s.event("fragile", json!({})).await;
    assert_eq!(ok.error, None);

    let r = s.event("fragile", json!({"sleep": 5})).await;
    assert_eq!((r.status, r.error.as_deref()), (StatusCode::OK, Some("Sandbox.Timedout")));
    assert!(r.body["errorMessage"].as_str().unwrap().contains("Task timed out after 1.00 seconds"));
    let next = s.event("fragile", json!({})).await;
    assert_eq!((next.error.as_deref(), next.cold), (None, Some(true)), "a fresh instance replaces the killed one");

    let r = s.event("fragile", json!({"exit": 7})).await;
    assert_eq!(r.error.as_deref(), Some("Runtime.ExitError"));
    assert!(r.body["errorMessage"].as_str().unwrap().contains("exit status 7"), "{:?}", r.body);
    assert_eq!(s.event("fragile", json!({})).await.error, None);

    let r = s.event("fragile", json!({"big": 7 * 1024 * 1024})).await;
    assert_eq!(r.error.as_deref(), Some("Function.ResponseSizeTooLarge"));
    assert_eq!(s.event("fragile", json!({})).await.error, None);

    let r = s.invoke("fragile", vec![b' '; 6 * 1024 * 1024 + 101]).await;
    assert_eq!((r.status, r.body["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("RequestTooLarge")));
    assert_eq!(s.event("fragile", json!({})).await.error, None);

    s.deploy("broken", "import nosuchmodule\n", py(json!({}))).await;
    let r = s.event("broken", json!({})).await;
    assert_eq!((r.status, r.error.as_deref()), (StatusCode::OK, Some("Runtime.ImportModuleError")));
    assert!(r.body["errorMessage"].as_str().unwrap().contains("nosuchmodule"));
    assert!(s.instances("broken").await.is_empty(), "a failed init leaves no instance");
    s.deploy("broken", FUNCTION, py(json!({}))).await;
    assert_eq!(s.event("broken", json!({})).await.error, None, "fixed code serves on a fresh instance");
}

#[tokio::test]
async fn a_new_version_drains_the_old_one() {
    let s = start().await;
    s.deploy("evolving", FUNCTION, py(json!({}))).await;
    let v1 = s.event("evolving", json!({})).await;
    assert_eq!(v1.error, None);
    s.deploy("evolving", &FUNCTION.replace("\"echo\": event", "\"echo\": event, \"v\": 2"), py(json!({}))).await;
    let v2 = s.event("evolving", json!({})).await;
    assert_eq!((v2.body["v"].as_u64(), v2.cold), (Some(2), Some(true)));
    let list = s.wait_instances("evolving", Duration::from_secs(10), |l| l.iter().all(|i| i["version"] == 2)).await;
    assert_eq!(list.len(), 1, "only the new version's instance is left");
}

#[tokio::test]
async fn refusals_have_codes() {
    let s = start().await;
    let r = s.event("nope", json!({})).await;
    assert_eq!((r.status, r.body["code"].as_str()), (StatusCode::NOT_FOUND, Some("FunctionNotFound")));
    let put = s
        .http
        .put(format!("{}/v1/functions/empty", s.url))
        .bearer_auth(&s.token)
        .json(&py(json!({})))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let r = s.event("empty", json!({})).await;
    assert_eq!((r.status, r.body["code"].as_str()), (StatusCode::CONFLICT, Some("CodeNotFound")));
    let anon = s.http.post(format!("{}/v1/functions/empty/invoke", s.url)).body("{}").send().await.unwrap();
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);
    let reader: Value = s
        .http
        .post(format!("{}/v1/tokens", s.url))
        .bearer_auth(&s.token)
        .json(&json!({"scopes": ["read"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = s
        .http
        .post(format!("{}/v1/functions/empty/invoke", s.url))
        .bearer_auth(reader["token"].as_str().unwrap())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "invoking needs the invoke scope");
}

#[tokio::test]
async fn openapi_document_is_served_and_checked_in() {
    let s = start().await;
    let served: Value = s.http.get(format!("{}/openapi.json", s.url)).send().await.unwrap().json().await.unwrap();
    let generated = serde_json::to_value(openapi()).unwrap();
    assert_eq!(served, generated);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json");
    let pretty = openapi().to_pretty_json().unwrap() + "\n";
    if std::env::var_os("HEARTH_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &pretty).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == pretty,
        "openapi.json is out of date: regenerate it with `HEARTH_UPDATE_OPENAPI=1 cargo test -p hearth-gateway openapi` and commit it"
    );
    for p in ["/v1/functions/{name}", "/v1/functions/{name}/invoke", "/v1/functions/{name}/instances", "/openapi.json"]
    {
        assert!(generated["paths"][p].is_object(), "{p} documented");
    }
}

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

impl Server {
    async fn add_trigger(&self, spec: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}/v1/triggers", self.url))
            .bearer_auth(&self.token)
            .json(&spec)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn http_trigger_serves_the_seed_example() {
    let s = start().await;
    s.deploy("hello", HTTP_FUNCTION, py(json!({}))).await;
    let (st, t) = s.add_trigger(json!({"function": "hello", "path": "/hello"})).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let first = s.http.get(format!("{}/hello/faas", s.url)).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["x-hearth-cold-start"], "true");
    assert_eq!(first.text().await.unwrap(), "Hello FaaS");
    let second = s.http.get(format!("{}/hello/faas", s.url)).send().await.unwrap();
    assert_eq!(second.headers()["x-hearth-cold-start"], "false");
    assert_eq!(second.text().await.unwrap(), "Hello FaaS");
    assert_eq!(s.http.get(format!("{}/hello", s.url)).send().await.unwrap().text().await.unwrap(), "Hello FaaS");
    let other = s.http.get(format!("{}/hellothere", s.url)).send().await.unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND, "only whole segments match");
}

#[tokio::test]
async fn http_events_and_responses_follow_payload_2_0() {
    let s = start().await;
    s.deploy("web", HTTP_FUNCTION, py(json!({}))).await;
    s.add_trigger(json!({"function": "web", "path": "/api"})).await;
    let r = s
        .http
        .post(format!("{}/api/items/echo?a=1&a=2&b=x%20y", s.url))
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
        .post(format!("{}/api/echo", s.url))
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

    let r = s.http.get(format!("{}/api/shaped", s.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["x-custom"], "yes");
    let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert_eq!(cookies, ["a=1; Max-Age=60", "b=2"]);
    assert_eq!(r.text().await.unwrap(), "created");

    let r = s.http.get(format!("{}/api/binary", s.url)).send().await.unwrap();
    assert_eq!(&r.bytes().await.unwrap()[..], &[0, 1, 2, 255], "base64 bodies are decoded");
    let r = s.http.get(format!("{}/api/bare", s.url)).send().await.unwrap();
    assert_eq!((r.status(), r.headers()["content-type"].to_str().unwrap()), (StatusCode::OK, "application/json"));
    assert_eq!(r.json::<Value>().await.unwrap(), json!(["just", "a", "list"]));

    let r = s.http.get(format!("{}/api/fail", s.url)).send().await.unwrap();
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
    let r = s.http.get(format!("{}/private", s.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = s.http.post(format!("{}/private", s.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = s.http.post(format!("{}/private", s.url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "Hello FaaS");
    // The default URL needs a token too.
    assert_eq!(s.http.get(format!("{}/fn/guarded/x", s.url)).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let r = s.http.get(format!("{}/fn/guarded/x", s.url)).bearer_auth(&s.token).send().await.unwrap();
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
    let r = s.http.post(format!("{}/private", s.url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "a deleted trigger stops routing at once");
    s.add_trigger(json!({"function": "guarded", "path": "/again"})).await;
    let r = s.http.delete(format!("{}/v1/functions/guarded", s.url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let list: Value =
        s.http.get(format!("{}/v1/triggers", s.url)).bearer_auth(&s.token).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["triggers"], json!([]), "a deleted function's triggers are gone");
}

impl Server {
    /// Deploys a folder of `examples/`, keeping executable bits.
    async fn deploy_example(&self, name: &str, example: &str, spec: Value) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(example);
        self.deploy_zip(name, hearth_blob::fixtures::raw_zip(&entries_of(&dir, "")), spec).await;
    }
}

#[tokio::test]
async fn node_and_shell_examples_answer_http_triggers() {
    let s = start().await;
    s.deploy_example("node-hello", "node-hello", json!({"runtime": "nodejs", "handler": "index.handler"})).await;
    s.deploy_example("shell-hello", "shell-hello", json!({"runtime": "provided"})).await;
    for name in ["node-hello", "shell-hello"] {
        s.add_trigger(json!({"function": name, "path": format!("/{name}")})).await;
        for cold in ["true", "false"] {
            let r = s.http.get(format!("{}/{name}/faas", s.url)).send().await.unwrap();
            assert_eq!(r.headers()["x-hearth-cold-start"], cold, "{name}");
            assert_eq!(r.text().await.unwrap(), "Hello FaaS", "{name}");
        }
    }
}

/// Every file under `dir` as zip entries named relative to `prefix`, modes kept.
fn entries_of(dir: &Path, prefix: &str) -> Vec<hearth_blob::fixtures::RawEntry> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = format!("{prefix}{}", p.file_name().unwrap().to_str().unwrap());
        if p.is_dir() {
            out.extend(entries_of(&p, &format!("{name}/")));
        } else {
            let mut entry = hearth_blob::fixtures::RawEntry::file(&name, &std::fs::read(&p).unwrap());
            entry.unix_mode = 0o100000 | (std::fs::metadata(&p).unwrap().permissions().mode() & 0o777);
            out.push(entry);
        }
    }
    out
}

#[tokio::test]
async fn the_official_python_runtime_client_serves_invocations() {
    let ric = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/awslambdaric-pkg");
    assert!(ric.join("awslambdaric").exists(), "{} is missing: run scripts/test-deps.sh", ric.display());
    let mut entries = entries_of(&ric, "");
    entries.push(hearth_blob::fixtures::RawEntry::file(
        "main.py",
        b"def handler(event, context):\n    return {'ric': True, 'echo': event, 'id': context.aws_request_id}\n",
    ));
    let mut boot = hearth_blob::fixtures::RawEntry::file(
        "bootstrap",
        b"#!/bin/sh\ncd \"$LAMBDA_TASK_ROOT\"\nexec /usr/bin/python3 -m awslambdaric main.handler\n",
    );
    boot.unix_mode = 0o100755;
    entries.push(boot);
    let s = start().await;
    s.deploy_zip("ric", hearth_blob::fixtures::raw_zip(&entries), json!({"runtime": "provided", "timeout_s": 30}))
        .await;
    for i in 0..2 {
        let r = s.event("ric", json!({"i": i})).await;
        assert_eq!(r.error, None, "{:?}", r.body);
        assert_eq!((r.body["ric"].as_bool(), &r.body["echo"]), (Some(true), &json!({"i": i})));
        assert_eq!(r.body["id"].as_str(), r.request_id.as_deref(), "context.aws_request_id is the request id");
    }
}

const BOTO3_CLIENT: &str = r#"
import base64, json, sys
import boto3, botocore
from botocore.config import Config

url, token = sys.argv[1], sys.argv[2]
client = boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                      aws_access_key_id="unused", aws_secret_access_key="unused",
                      config=Config(signature_version=botocore.UNSIGNED, retries={"max_attempts": 1}, read_timeout=60))

def bearer(request, **kwargs):
    request.headers["Authorization"] = "Bearer " + token

client.meta.events.register("before-send.lambda.*", bearer)
out = {}
r = client.invoke(FunctionName="sdk", Payload=b'{"a": 1}', LogType="Tail")
out["ok"] = {"status": r["StatusCode"], "error": r.get("FunctionError"), "version": r.get("ExecutedVersion"),
             "payload": json.loads(r["Payload"].read())}
out["tail"] = base64.b64decode(r["LogResult"]).decode()
ctx = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
r = client.invoke(FunctionName="arn:aws:lambda:us-east-1:123456789012:function:sdk", Qualifier="1",
                  Payload=b'{"fail": "x"}', ClientContext=ctx)
out["failed"] = {"status": r["StatusCode"], "error": r.get("FunctionError"), "payload": json.loads(r["Payload"].read())}
try:
    client.invoke(FunctionName="missing")
    out["missing"] = "no error"
except client.exceptions.ResourceNotFoundException as e:
    out["missing"] = e.response["Error"]["Code"]
out["dry_run"] = client.invoke(FunctionName="sdk", InvocationType="DryRun")["StatusCode"]
# Unmodified SDK use: SigV4-signed, the token as the access key id.
signed = boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                      aws_access_key_id=token, aws_secret_access_key="any",
                      config=Config(retries={"max_attempts": 1}))
out["signed"] = json.loads(signed.invoke(FunctionName="sdk", Payload=b'{"s": 1}')["Payload"].read())
print(json.dumps(out))
"#;

#[tokio::test]
async fn aws_sdk_invokes_through_the_lambda_invoke_api() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/test-deps.sh", python.display());
    let s = start().await;
    let function = "def handler(event, context):\n    if event.get('fail'):\n        raise ValueError(event['fail'])\n    return {'got': event}\n";
    s.deploy("sdk", function, py(json!({}))).await;
    let (url, token) = (s.url.clone(), s.token.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python).args(["-c", BOTO3_CLIENT, &url, &token]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "boto3 script failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], json!({"status": 200, "error": null, "version": "1", "payload": {"got": {"a": 1}}}));
    let tail = v["tail"].as_str().unwrap();
    assert!(tail.contains("START RequestId") && tail.contains("REPORT RequestId"), "Tail returns the log: {tail}");
    assert_eq!((v["failed"]["status"].as_u64(), v["failed"]["error"].as_str()), (Some(200), Some("Unhandled")));
    assert_eq!(v["failed"]["payload"]["errorType"], "ValueError");
    assert_eq!(v["missing"], "ResourceNotFoundException");
    assert_eq!(v["dry_run"], 204);
    assert_eq!(v["signed"], json!({"got": {"s": 1}}));

    // The AWS CLI v1, unmodified, with the token as its access key id.
    let aws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/aws");
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let (url, token, out_path) = (s.url.clone(), s.token.clone(), out_file.path().to_owned());
    let cli = tokio::task::spawn_blocking(move || {
        std::process::Command::new(aws)
            .args([
                "lambda",
                "invoke",
                "--endpoint-url",
                &url,
                "--function-name",
                "sdk",
                "--payload",
                r#"{"cli": true}"#,
            ])
            .arg(&out_path)
            .env("AWS_ACCESS_KEY_ID", &token)
            .env("AWS_SECRET_ACCESS_KEY", "any")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("HOME", std::env::temp_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(cli.status.success(), "aws lambda invoke failed: {}", String::from_utf8_lossy(&cli.stderr));
    let meta: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!((meta["StatusCode"].as_u64(), meta["ExecutedVersion"].as_str()), (Some(200), Some("1")));
    let result: Value = serde_json::from_slice(&std::fs::read(out_file.path()).unwrap()).unwrap();
    assert_eq!(result, json!({"got": {"cli": true}}));

    // Without a token the API refuses, in the SDK's error shape.
    let r = s.http.post(format!("{}/2015-03-31/functions/sdk/invocations", s.url)).body("{}").send().await.unwrap();
    assert_eq!(
        (r.status(), r.headers()["x-amzn-errortype"].to_str().unwrap()),
        (StatusCode::FORBIDDEN, "UnrecognizedClientException")
    );
    let r = s
        .http
        .post(format!("{}/2015-03-31/functions/sdk/invocations", s.url))
        .bearer_auth(&s.token)
        .header("x-amz-invocation-type", "Event")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "asynchronous invocations are refused until they can be made durable"
    );
    let r = s
        .http
        .post(format!("{}/2015-03-31/functions/sdk/invocations", s.url))
        .bearer_auth(&s.token)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-amzn-errortype"], "InvalidRequestContentException");
}

#[tokio::test]
async fn invocations_leave_records_and_logs() {
    let s = start().await;
    let function = "import sys\n\ndef handler(event, context):\n    print('handling', context.aws_request_id)\n    print('to stderr', file=sys.stderr)\n    if event.get('fail'):\n        raise ValueError('nope')\n    return {'ok': True}\n";
    s.deploy("logged", function, py(json!({"memory_mb": 256}))).await;
    let cold = s.event("logged", json!({})).await;
    let warm = s.event("logged", json!({})).await;
    let failed = s.event("logged", json!({"fail": true})).await;
    let get = |path: String| {
        let (http, token) = (s.http.clone(), s.token.clone());
        async move { http.get(path).bearer_auth(token).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let logs_of = |id: String| get(format!("{}/v1/functions/logged/logs?request_id={id}", s.url));

    let id = cold.request_id.clone().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let page = logs_of(id.clone()).await;
        let lines: Vec<String> =
            page["lines"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap().to_owned()).collect();
        if lines.iter().any(|l| l == &format!("handling {id}")) && lines.iter().any(|l| l == "to stderr") {
            break lines;
        }
        assert!(Instant::now() < deadline, "function output never reached the log: {lines:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(lines[0], format!("START RequestId: {id} Version: 1"));
    let report = lines.iter().find(|l| l.starts_with("REPORT")).expect("a REPORT line");
    for part in ["Duration: ", "Billed Duration: ", "Memory Size: 256 MB", "Init Duration: "] {
        assert!(report.contains(part), "{report}");
    }
    assert!(lines.contains(&format!("END RequestId: {id}")));
    let warm_lines = logs_of(warm.request_id.clone().unwrap()).await;
    let warm_report = warm_lines["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .find(|l| l.starts_with("REPORT"))
        .unwrap()
        .to_owned();
    assert!(!warm_report.contains("Init Duration"), "only cold starts report init: {warm_report}");

    let records = get(format!("{}/v1/functions/logged/invocations", s.url)).await;
    let records = records["invocations"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    let by_id =
        |id: &Option<String>| records.iter().find(|r| r["request_id"].as_str() == id.as_deref()).unwrap().clone();
    let (c, w, f) = (by_id(&cold.request_id), by_id(&warm.request_id), by_id(&failed.request_id));
    assert_eq!((c["cold_start"].as_bool(), w["cold_start"].as_bool()), (Some(true), Some(false)));
    assert!(c["init_duration_ms"].as_f64().unwrap() > 0.0 && w["init_duration_ms"].is_null());
    assert_eq!(
        (c["memory_mb"].as_u64(), c["version"].as_u64(), c["outcome"].as_str()),
        (Some(256), Some(1), Some("success"))
    );
    let (duration, billed) = (c["duration_ms"].as_f64().unwrap(), c["billed_ms"].as_u64().unwrap());
    assert!(duration > 0.0 && billed as f64 >= duration && (billed as f64) < duration + 1.0, "{duration} -> {billed}");
    assert_eq!((f["outcome"].as_str(), f["error_type"].as_str()), (Some("error"), Some("ValueError")));

    // Paging: `next` continues after the last line returned.
    let page = get(format!("{}/v1/functions/logged/logs?limit=2", s.url)).await;
    assert_eq!(page["lines"].as_array().unwrap().len(), 2);
    let rest = get(format!("{}/v1/functions/logged/logs?after={}", s.url, page["next"])).await;
    assert!(rest["lines"][0]["seq"].as_i64().unwrap() > page["next"].as_i64().unwrap());
}

#[tokio::test]
async fn one_instance_serves_its_concurrency_at_once() {
    let s = Arc::new(start().await);
    let python = "import os, time\n\ndef handler(event, context):\n    start = time.time()\n    time.sleep(0.3)\n    return {'pid': os.getpid(), 'start': start, 'end': time.time()}\n";
    let node = "export const handler = async () => { const start = Date.now() / 1000; await new Promise(r => setTimeout(r, 300)); return { pid: process.pid, start, end: Date.now() / 1000 }; };\n";
    s.deploy("conc-py", python, py(json!({"concurrency": 4, "max_instances": 1, "timeout_s": 10}))).await;
    let spec =
        json!({"runtime": "nodejs", "handler": "index.handler", "concurrency": 4, "max_instances": 1, "timeout_s": 10});
    s.deploy_zip("conc-node", deflated_zip(&[("index.mjs", node.as_bytes())]), spec).await;

    for name in ["conc-py", "conc-node"] {
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.event(name, json!({})).await })
            })
            .collect();
        let mut answers = vec![];
        for c in calls {
            let r = c.await.unwrap();
            assert_eq!((r.status, r.error.as_deref()), (StatusCode::OK, None), "{name}: {:?}", r.body);
            answers.push(r.body);
        }
        let pids: std::collections::HashSet<_> = answers.iter().map(|a| a["pid"].as_u64().unwrap()).collect();
        assert_eq!(pids.len(), 1, "{name}: one instance (max_instances 1)");
        let latest_start = answers.iter().map(|a| a["start"].as_f64().unwrap()).fold(f64::MIN, f64::max);
        let earliest_end = answers.iter().map(|a| a["end"].as_f64().unwrap()).fold(f64::MAX, f64::min);
        assert!(latest_start < earliest_end, "{name}: the four invocations ran at the same time");
        assert_eq!(s.instances(name).await.len(), 1);
    }
}

#[tokio::test]
async fn min_instances_are_started_at_deploy_and_versions_can_be_pinned() {
    let s = start().await;
    s.deploy("ready", FUNCTION, py(json!({"min_instances": 1, "keep_alive_s": 1}))).await;
    let list = s.wait_instances("ready", Duration::from_secs(10), |l| l.len() == 1 && l[0]["state"] == "ready").await;
    assert_eq!(list[0]["requests_served"], 0, "started without any request");
    let first = s.event("ready", json!({})).await;
    assert_eq!(first.cold, Some(false), "the pre-started instance serves the first request warm");
    // Past its keep-alive the minimum is still kept.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        assert_eq!(s.instances("ready").await.len(), 1, "min_instances are kept through idle time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // ?version=N invokes an older version while $LATEST moves on.
    s.deploy("ready", &FUNCTION.replace("\"echo\": event", "\"echo\": event, \"v\": 2"), py(json!({}))).await;
    let r = s
        .http
        .post(format!("{}/v1/functions/ready/invoke?version=1", s.url))
        .bearer_auth(&s.token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-hearth-version"], "1");
    assert!(r.json::<Value>().await.unwrap()["v"].is_null(), "version 1 has no v");
    let latest = s.event("ready", json!({})).await;
    assert_eq!(latest.body["v"], 2);
    let r = s
        .http
        .post(format!("{}/v1/functions/ready/invoke?version=9", s.url))
        .bearer_auth(&s.token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
