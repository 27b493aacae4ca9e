//! The harness both gateway test binaries share (`gateway`, run in parallel, and `serial`):
//! a real server on loopback ports with a temporary data directory, and typed calls of its
//! API.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_agent::{ProcessDriver, Runtimes};
use hearth_api::{AppState, ensure_admin_token};
use hearth_blob::fixtures::deflated_zip;
use hearth_blob::{CodeStore, ObjectSource, PackageLimits};
use hearth_gateway::{Gateway, GatewaySettings};
use hearth_server::apps;
use hearth_store::{MetadataStore, SqliteStore};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const FUNCTION: &str = r#"
import os, time, uuid

# Identifies this instance (every runtime is PID 1 of its own namespace, so pids cannot).
INSTANCE = uuid.uuid4().hex

def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("exit") is not None:
        os._exit(event["exit"])
    if event.get("big"):
        return "x" * event["big"]
    return {"instance": INSTANCE, "echo": event}
"#;

pub struct Server {
    /// The API's origin.
    pub url: String,
    /// The HTTP triggers' origin (`/fn/...` and trigger paths).
    pub trigger_url: String,
    pub token: String,
    pub http: reqwest::Client,
    /// The data directory (metadata, code, cache, runtimes).
    pub dir: tempfile::TempDir,
}

pub async fn start() -> Server {
    start_with(|_| {}).await
}

/// A server with its settings adjusted by `adjust`.
pub async fn start_with(adjust: impl FnOnce(&mut GatewaySettings)) -> Server {
    start_with_store(adjust, |sqlite| sqlite).await
}

/// A server whose asynchronous delivery settings (already scaled down by
/// [`events_settings`]) are adjusted by `adjust`.
pub async fn start_events(adjust: impl FnOnce(&mut hearth_events::EventSettings)) -> Server {
    start_with_all(|_| {}, |sqlite| sqlite, adjust).await
}

/// A server whose metadata store is what `wrap` makes of its SQLite store (a wrapper that
/// counts the calls reaching it, say).
pub async fn start_with_store(
    adjust: impl FnOnce(&mut GatewaySettings),
    wrap: impl FnOnce(Arc<SqliteStore>) -> Arc<dyn MetadataStore>,
) -> Server {
    start_with_all(adjust, wrap, |_| {}).await
}

/// A server on a node without Node.js.
pub async fn start_without_node() -> Server {
    start_with_runtimes(|_| {}, |sqlite| sqlite, |_| {}, Runtimes::without_node).await
}

async fn start_with_all(
    adjust: impl FnOnce(&mut GatewaySettings),
    wrap: impl FnOnce(Arc<SqliteStore>) -> Arc<dyn MetadataStore>,
    adjust_events: impl FnOnce(&mut hearth_events::EventSettings),
) -> Server {
    start_with_runtimes(adjust, wrap, adjust_events, |r| r).await
}

async fn start_with_runtimes(
    adjust: impl FnOnce(&mut GatewaySettings),
    wrap: impl FnOnce(Arc<SqliteStore>) -> Arc<dyn MetadataStore>,
    adjust_events: impl FnOnce(&mut hearth_events::EventSettings),
    runtimes: impl FnOnce(Runtimes) -> Runtimes,
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Arc::new(SqliteStore::open(&dir.path().join("meta.db")).unwrap());
    let queue: Arc<dyn hearth_store::EventQueue> = sqlite.clone();
    let usage_store: Arc<dyn hearth_store::UsageStore> = sqlite.clone();
    let functions_store: Arc<dyn MetadataStore> = sqlite.clone();
    let store = wrap(sqlite);
    let code = CodeStore::local(&dir.path().join("code"), PackageLimits::DEFAULT).unwrap();
    let token = ensure_admin_token(store.as_ref()).await.unwrap().unwrap();
    let runtimes = runtimes(Runtimes::install(&dir.path().join("runtimes")).unwrap());
    let mut settings = GatewaySettings { reap_interval: Duration::from_millis(100), ..Default::default() };
    adjust(&mut settings);
    let gateway = Gateway::new(
        store.clone(),
        code.clone(),
        dir.path().join("cache"),
        runtimes,
        Arc::new(ProcessDriver::detect()),
        settings,
    );
    gateway.spawn_reaper();
    gateway.start_up().await.unwrap();
    let state = AppState::new(store, code, ObjectSource::default());
    let mut event_settings = events_settings();
    adjust_events(&mut event_settings);
    let events = hearth_events::Events::start(queue, gateway.clone(), event_settings);
    // Kept instances are metered often, so a test sees their usage soon.
    hearth_server::spawn_provisioned_meter(functions_store, usage_store.clone(), Duration::from_millis(100));
    let usage = hearth_server::Usage { store: usage_store, prices: hearth_types::Prices::default() };
    let apps = apps(state.clone(), gateway, events, usage);
    let (url, trigger_url) = (serve(apps.api).await, serve(apps.triggers).await);
    state.set_trigger_base_url(&trigger_url);
    state.set_api_base_url(&url);
    Server { url, trigger_url, token, http: reqwest::Client::new(), dir }
}

/// A timestamp field of a JSON record, in milliseconds since the epoch.
pub fn millis(e: &Value, field: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(e[field].as_str().unwrap()).unwrap().timestamp_millis()
}

/// Asynchronous delivery scaled down for tests: retries after 200 ms and 400 ms, backoff
/// from 50 ms.
pub fn events_settings() -> hearth_events::EventSettings {
    hearth_events::EventSettings {
        retry_delay: Duration::from_millis(200),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_secs(1),
        poll_interval: Duration::from_millis(100),
        ..Default::default()
    }
}

/// Serves `router` on a loopback port of its own with the limits `hearth up` uses.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let limits = hearth_server::ListenerLimits::default();
    tokio::spawn(hearth_server::serve(listener, router, limits, None, std::future::pending()));
    url
}

pub struct Reply {
    pub status: StatusCode,
    pub cold: Option<bool>,
    pub error: Option<String>,
    pub request_id: Option<String>,
    pub body: Value,
}

impl Server {
    /// Deploys `source` as the function's `main.py`.
    pub async fn deploy(&self, name: &str, source: &str, spec: Value) {
        self.deploy_zip(name, deflated_zip(&[("main.py", source.as_bytes())]), spec).await;
    }

    /// Uploads a package and points the function at it, code and configuration in one step.
    pub async fn deploy_zip(&self, name: &str, zip: Vec<u8>, spec: Value) {
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

    pub async fn invoke(&self, name: &str, event: Vec<u8>) -> Reply {
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

    pub async fn event(&self, name: &str, event: Value) -> Reply {
        self.invoke(name, event.to_string().into_bytes()).await
    }

    /// `GET path` with the admin token: its JSON body, asserting 200.
    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.http.get(format!("{}{path}", self.url)).bearer_auth(&self.token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.unwrap()
    }

    /// Queues `event` for `name` (`?version=` when `qualifier`), asserting 202 with the
    /// request id and its `Location`; returns the request id.
    pub async fn queue_event(&self, name: &str, qualifier: Option<&str>, event: &Value) -> String {
        let query = qualifier.map(|q| format!("?version={q}")).unwrap_or_default();
        let r = self
            .http
            .post(format!("{}/v1/functions/{name}/invoke{query}", self.url))
            .bearer_auth(&self.token)
            .header("x-hearth-invocation-type", "Event")
            .body(event.to_string())
            .send()
            .await
            .unwrap();
        let (status, location) = (r.status(), r.headers().get("location").map(|v| v.to_str().unwrap().to_owned()));
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "queued");
        let id = body["request_id"].as_str().unwrap().to_owned();
        assert_eq!(location.as_deref(), Some(format!("/v1/invocations/{id}").as_str()));
        id
    }

    /// Polls the event until its status is `status`, failing after 30 s.
    pub async fn wait_event(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let e = self.get_json(&format!("/v1/invocations/{id}")).await;
            if e["status"] == status {
                return e;
            }
            assert!(Instant::now() < deadline, "event {id} never became {status}: {e}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `GET /v1/node`.
    pub async fn node(&self) -> Value {
        self.get_json("/v1/node").await
    }

    pub async fn instances(&self, name: &str) -> Vec<Value> {
        let v = self.get_json(&format!("/v1/functions/{name}/instances")).await;
        v["instances"].as_array().unwrap().clone()
    }

    /// Polls until `cond` holds for the instance list, failing after `limit`.
    pub async fn wait_instances(&self, name: &str, limit: Duration, cond: impl Fn(&[Value]) -> bool) -> Vec<Value> {
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

impl Server {
    /// Polls `GET /v1/node` until `cond` holds, failing after `limit`.
    pub async fn wait_node(&self, limit: Duration, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let node = self.node().await;
            if cond(&node) {
                return node;
            }
            assert!(Instant::now() < deadline, "the node never reached the expected state: {node}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn py(extra: Value) -> Value {
    let mut spec = json!({"runtime": "python3", "handler": "main.handler"});
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    spec
}

impl Server {
    pub async fn add_trigger(&self, spec: Value) -> (StatusCode, Value) {
        self.post_json("/v1/triggers", &spec).await
    }

    /// `POST path` with `body` and the admin token: the status and the JSON answer (`Null`
    /// when it is not JSON).
    pub async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self.http.post(format!("{}{path}", self.url)).bearer_auth(&self.token).json(body).send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }
}

impl Server {
    /// Deploys a folder of `examples/`, keeping executable bits.
    pub async fn deploy_example(&self, name: &str, example: &str, spec: Value) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(example);
        self.deploy_zip(name, hearth_blob::fixtures::raw_zip(&entries_of(&dir, "")), spec).await;
    }
}

/// Every file under `dir` as zip entries named relative to `prefix`, modes kept.
pub fn entries_of(dir: &Path, prefix: &str) -> Vec<hearth_blob::fixtures::RawEntry> {
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

pub use hearth_agent::test_support::require_root;
