//! The control-plane API over real HTTP on loopback, with SQLite and local-file storage.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hearth_api::{ApiDoc, AppState, ensure_admin_token, router};
use hearth_blob::fixtures::{S3TestServer, deflated_zip, hello_python, hostile_archives};
use hearth_blob::{CodeStore, ObjectSource, PackageLimits, S3Settings};
use hearth_store::SqliteStore;
use reqwest::StatusCode;
use serde_json::{Value, json};
use utoipa::OpenApi;

struct Server {
    url: String,
    admin: String,
    code_dir: PathBuf,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    start_with(ObjectSource::default()).await
}

async fn start_with(objects: ObjectSource) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("meta.db")).unwrap());
    let code_dir = dir.path().join("code");
    let code = CodeStore::local(&code_dir, PackageLimits::DEFAULT).unwrap();
    let admin = ensure_admin_token(store.as_ref()).await.unwrap().expect("first start mints a token");
    assert!(ensure_admin_token(store.as_ref()).await.unwrap().is_none(), "only on first start");
    let app = router(AppState::new(store, code, objects));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server { url, admin, code_dir, http: reqwest::Client::new(), _dir: dir }
}

impl Server {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url)).bearer_auth(&self.admin)
    }

    async fn put_config(&self, name: &str, spec: Value) -> (StatusCode, Value) {
        send(self.req(reqwest::Method::PUT, &format!("/v1/functions/{name}")).json(&spec)).await
    }

    async fn put_zip(&self, name: &str, zip: Vec<u8>) -> (StatusCode, Value) {
        let r = self
            .req(reqwest::Method::PUT, &format!("/v1/functions/{name}/code"))
            .header("content-type", "application/zip")
            .body(zip);
        send(r).await
    }

    async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        send(self.req(reqwest::Method::GET, path)).await
    }
}

async fn send(r: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = r.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn py() -> Value {
    json!({"runtime": "python3", "handler": "main.handler"})
}

fn count_files(dir: &Path) -> usize {
    if !dir.exists() {
        return 0;
    }
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| if e.file_type().unwrap().is_dir() { count_files(&e.path()) } else { 1 })
        .sum()
}

#[tokio::test]
async fn function_lifecycle_with_versions() {
    let s = start().await;
    let (st, body) = s.put_config("hello", py()).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["function"]["config"]["memory_mb"], 128);
    assert!(body["new_version"].is_null(), "no code yet, no version");
    let (st, _) = s.put_config("hello", py()).await;
    assert_eq!(st, StatusCode::OK, "idempotent re-put");

    let v1_zip = hello_python();
    let (st, body) = s.put_zip("hello", v1_zip.clone()).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["new_version"]["number"], 1);
    let (_, body) = s.put_zip("hello", v1_zip.clone()).await;
    assert!(body["new_version"].is_null(), "same code, no new version");

    let v2_zip = deflated_zip(&[("main.py", b"def handler(e, c):\n    return 2\n")]);
    let (_, body) = s.put_zip("hello", v2_zip.clone()).await;
    assert_eq!(body["new_version"]["number"], 2);
    let (_, body) =
        s.put_config("hello", json!({"runtime": "python3", "handler": "main.handler", "memory_mb": 256})).await;
    assert_eq!(body["new_version"]["number"], 3, "config change with code makes a version");
    assert_eq!(body["new_version"]["code"]["sha256"], body["function"]["code"]["sha256"]);

    let (_, versions) = s.get_json("/v1/functions/hello/versions").await;
    let numbers: Vec<_> =
        versions["versions"].as_array().unwrap().iter().map(|v| v["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(versions["versions"][0]["config"]["memory_mb"], 128, "old versions keep their config");

    for (query, expected) in
        [("", &v2_zip), ("?version=1", &v1_zip), ("?version=2", &v2_zip), ("?version=$LATEST", &v2_zip)]
    {
        let resp = s.req(reqwest::Method::GET, &format!("/v1/functions/hello/code{query}")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{query}");
        assert_eq!(resp.headers()["content-type"], "application/zip");
        assert_eq!(&resp.bytes().await.unwrap()[..], &expected[..], "{query}");
    }
    let (st, body) = s.get_json("/v1/functions/hello/code?version=9").await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("VersionNotFound")));
    let message = body["message"].as_str().unwrap();
    assert!(message.starts_with("function \"hello\" has no version 9"), "the name, not its type: {message}");
    let (st, body) = s.get_json("/v1/functions/hello/code?version=1abc").await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidVersion")));
    // A name that could be an alias is looked up as one.
    let (st, body) = s.get_json("/v1/functions/hello/code?version=abc").await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("AliasNotFound")));

    let (_, list) = s.get_json("/v1/functions").await;
    assert_eq!(list["functions"][0]["name"], "hello");
    assert_eq!(list["functions"][0]["latest_version"], 3);

    let st = s.req(reqwest::Method::DELETE, "/v1/functions/hello").send().await.unwrap().status();
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, body) = s.get_json("/v1/functions/hello").await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("FunctionNotFound")));
    let (st, _) = s.get_json("/v1/functions/hello/versions").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn hostile_archives_are_refused_and_nothing_is_stored() {
    let s = start().await;
    s.put_config("victim", py()).await;
    for (what, zip, code) in hostile_archives() {
        let (st, body) = s.put_zip("victim", zip).await;
        assert!(st.is_client_error(), "{what}: {st}");
        assert_eq!(body["code"], code, "{what}: {body}");
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    // Over 50 MiB: refused with 413 before being stored.
    let big = vec![0u8; 50 * 1024 * 1024 + 1];
    let (st, body) = s.put_zip("victim", big).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("ZipTooLarge")));

    assert_eq!(count_files(&s.code_dir), 0, "no package stored");
    let (_, f) = s.get_json("/v1/functions/victim").await;
    assert!(f["code"].is_null() && f["latest_version"].is_null(), "function untouched: {f}");
    let (_, v) = s.get_json("/v1/functions/victim/versions").await;
    assert_eq!(v["versions"], json!([]));
    // The server still serves.
    let (st, _) = s.put_zip("victim", hello_python()).await;
    assert_eq!(st, StatusCode::OK);
}

/// An oversized request body gets the one code for it, `RequestTooLarge` (413), whichever
/// route reads it, and the server serves on.
#[tokio::test]
async fn oversized_bodies_are_refused_with_one_code() {
    let s = start().await;
    s.put_config("big", py()).await;
    let big = format!("{{\"runtime\": \"python3\", \"handler\": \"{}\"}}", "x".repeat(3 << 20));
    let json = |method, path: &str| s.req(method, path).header("content-type", "application/json").body(big.clone());
    for (method, path) in [
        (reqwest::Method::PUT, "/v1/functions/big"),
        (reqwest::Method::POST, "/v1/tokens"),
        (reqwest::Method::POST, "/v1/triggers"),
        (reqwest::Method::PUT, "/v1/functions/big/code"),
    ] {
        let (st, body) = send(json(method.clone(), path)).await;
        assert_eq!(
            (st, body["code"].as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, Some("RequestTooLarge")),
            "{method} {path}: {body}"
        );
    }
    let (st, _) = s.put_config("big", py()).await;
    assert_eq!(st, StatusCode::OK, "the server serves on");
}

#[tokio::test]
async fn invalid_configuration_is_refused_with_codes() {
    let s = start().await;
    let cases = [
        ("Bad_Name", py(), "InvalidFunctionName"),
        ("1abc", py(), "InvalidFunctionName"),
        ("ok", json!({"runtime": "cobol", "handler": "main.handler"}), "InvalidRuntime"),
        ("ok", json!({"runtime": "python3", "handler": "main.handler", "memory_mb": 32}), "InvalidMemorySize"),
        ("ok", json!({"runtime": "python3", "handler": "main.handler", "memory_mb": 20000}), "InvalidMemorySize"),
        ("ok", json!({"runtime": "python3", "handler": "main.handler", "timeout_s": 0}), "InvalidTimeout"),
        ("ok", json!({"runtime": "python3", "handler": "main.handler", "timeout_s": 901}), "InvalidTimeout"),
        (
            "ok",
            json!({"runtime": "python3", "handler": "main.handler", "environment": {"AWS_REGION": "x"}}),
            "ReservedEnvironmentVariable",
        ),
        (
            "ok",
            json!({"runtime": "python3", "handler": "main.handler", "environment": {"LAMBDA_TASK_ROOT": "/x"}}),
            "ReservedEnvironmentVariable",
        ),
        (
            "ok",
            json!({"runtime": "python3", "handler": "main.handler", "environment": {"bad-name": "x"}}),
            "InvalidEnvironmentVariable",
        ),
        ("ok", json!({"runtime": "python3"}), "InvalidHandler"),
        ("ok", json!({"runtime": "python3", "handler": "main.handler", "memory": 128}), "InvalidRequestBody"),
        ("ok", json!({"runtime": "python3", "handler": "main.handler", "memory_mb": "lots"}), "InvalidRequestBody"),
    ];
    for (name, spec, code) in cases {
        let (st, body) = s.put_config(name, spec.clone()).await;
        assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{name} {spec}: {body}");
    }
    let (st, body) = send(
        s.req(reqwest::Method::PUT, "/v1/functions/ok").header("content-type", "application/json").body("{not json"),
    )
    .await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidJson")));
    let (st, body) = send(s.req(reqwest::Method::PUT, "/v1/functions/ok").body("{}")).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("UnsupportedMediaType")));
    let (_, list) = s.get_json("/v1/functions").await;
    assert_eq!(list["functions"], json!([]), "nothing was created");

    s.put_config("ok", py()).await;
    let (st, body) =
        send(s.req(reqwest::Method::PUT, "/v1/functions/ok/code").header("content-type", "text/plain").body("x")).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("UnsupportedMediaType")));
    let (st, body) = s.put_zip("missing", hello_python()).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("FunctionNotFound")));
    let (st, body) = send(
        s.req(reqwest::Method::PUT, "/v1/functions/ok/code")
            .json(&json!({"object_url": "http://example.invalid/x.zip"})),
    )
    .await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidObjectUrl")));
    let (st, body) = s.get_json("/v1/nothing-here").await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("RouteNotFound")));
}

#[tokio::test]
async fn tokens_and_scopes() {
    let s = start().await;
    let anon = |path: &str| s.http.get(format!("{}{path}", s.url));
    let resp = anon("/v1/functions").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "MissingToken");
    for bad in ["hth_0000", "not-even-prefixed", ""] {
        let (st, body) = send(anon("/v1/functions").bearer_auth(bad)).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{bad}");
        assert!(matches!(body["code"].as_str(), Some("InvalidToken" | "MissingToken")), "{body}");
    }
    assert_eq!(anon("/healthz").send().await.unwrap().status(), StatusCode::OK, "health needs no token");

    let mint =
        |scopes: Value| send(s.req(reqwest::Method::POST, "/v1/tokens").json(&json!({"name": "t", "scopes": scopes})));
    let (st, reader) = mint(json!(["read"])).await;
    assert_eq!(st, StatusCode::CREATED);
    let reader_secret = reader["token"].as_str().unwrap().to_owned();
    let (_, invoker) = mint(json!(["invoke"])).await;
    let (_, deployer) = mint(json!(["deploy"])).await;
    let (st, body) = mint(json!(["root"])).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidScope")));

    let as_token = |m: reqwest::Method, path: &str, t: &Value| {
        s.http.request(m, format!("{}{path}", s.url)).bearer_auth(t["token"].as_str().unwrap())
    };
    // deploy may write and read; read may only read; invoke may do neither here.
    let (st, _) = send(as_token(reqwest::Method::PUT, "/v1/functions/f", &deployer).json(&py())).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = send(as_token(reqwest::Method::GET, "/v1/functions/f", &reader)).await;
    assert_eq!(st, StatusCode::OK);
    let (st, body) = send(as_token(reqwest::Method::PUT, "/v1/functions/g", &reader).json(&py())).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("InsufficientScope")), "{body}");
    let (st, _) = send(as_token(reqwest::Method::DELETE, "/v1/functions/f", &reader)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = send(as_token(reqwest::Method::GET, "/v1/functions", &invoker)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = send(as_token(reqwest::Method::GET, "/v1/tokens", &deployer)).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "only admin manages tokens");
    let (st, _) = send(as_token(reqwest::Method::GET, "/v1/functions/g", &reader)).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "the refused write created nothing");

    let (_, list) = s.get_json("/v1/tokens").await;
    assert_eq!(list["tokens"].as_array().unwrap().len(), 4);
    assert!(!list.to_string().contains(&reader_secret), "secrets are never listed");
    let admin_id =
        list["tokens"].as_array().unwrap().iter().find(|t| t["scopes"] == json!(["admin"])).unwrap()["id"].clone();
    let (st, body) = send(s.req(reqwest::Method::DELETE, &format!("/v1/tokens/{}", admin_id.as_str().unwrap()))).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::CONFLICT, Some("LastAdminToken")));

    let st = s
        .req(reqwest::Method::DELETE, &format!("/v1/tokens/{}", reader["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, body) = send(as_token(reqwest::Method::GET, "/v1/functions", &reader)).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("InvalidToken")),
        "revocation applies at once"
    );
}

/// `GET /v1/token` names the calling token, whatever its scopes, never with its secret.
#[tokio::test]
async fn whoami_names_the_calling_token() {
    let s = start().await;
    let who = |token: Option<&str>| {
        let mut r = s.http.get(format!("{}/v1/token", s.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        send(r)
    };
    let (st, body) = who(None).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("MissingToken")));
    let (st, body) = who(Some("hth_0000")).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("InvalidToken")));

    let (st, admin) = who(Some(&s.admin)).await;
    assert_eq!(st, StatusCode::OK, "{admin}");
    let (_, list) = s.get_json("/v1/tokens").await;
    assert_eq!(admin, list["tokens"][0], "the first-start admin token, as listed");
    assert_eq!((admin["name"].as_str(), &admin["scopes"]), (Some("admin"), &json!(["admin"])));

    let mut minted = vec![];
    for scope in ["read", "invoke", "deploy", "admin"] {
        let spec = json!({"name": format!("who-{scope}"), "scopes": [scope]});
        let (st, new) = send(s.req(reqwest::Method::POST, "/v1/tokens").json(&spec)).await;
        assert_eq!(st, StatusCode::CREATED);
        let (st, me) = who(new["token"].as_str()).await;
        assert_eq!(st, StatusCode::OK, "{scope}: {me}");
        let fields: Vec<&String> = me.as_object().unwrap().keys().collect();
        assert_eq!(fields, ["created_at", "id", "name", "scopes"], "{scope}: no secret");
        for field in ["id", "name", "scopes", "created_at"] {
            assert_eq!(me[field], new[field], "{scope}: {field}");
        }
        minted.push(new);
    }
    // A deleted token is no one.
    let id = minted[0]["id"].as_str().unwrap();
    assert_eq!(s.req(reqwest::Method::DELETE, &format!("/v1/tokens/{id}")).send().await.unwrap().status(), 204);
    let (st, body) = who(minted[0]["token"].as_str()).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("InvalidToken")));
}

/// Requests the OpenAPI document calls valid are accepted, and what it calls invalid is
/// refused, where the two used to disagree (found by `scripts/api-fuzz`).
#[tokio::test]
async fn the_server_applies_the_rules_the_document_states() {
    let s = start().await;
    // JSON Schema counts 256.0 as an integer, as many JSON encoders write it.
    let spec = json!({"runtime": "python3", "handler": "main.handler", "memory_mb": 256.0, "max_instances": 2e1});
    let (st, body) = s.put_config("floats", spec).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(
        (body["function"]["config"]["memory_mb"].as_u64(), body["function"]["config"]["max_instances"].as_u64()),
        (Some(256), Some(20))
    );
    for (spec, code) in [
        (json!({"runtime": "python3", "handler": "main.handler", "memory_mb": 256.5}), "InvalidRequestBody"),
        (json!({"runtime": "python3", "handler": "main.handler", "memory_mb": 1e300}), "InvalidMemorySize"),
    ] {
        let (st, body) = s.put_config("floats", spec.clone()).await;
        assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{spec}");
    }
    // Lengths are in characters, as JSON Schema's maxLength counts them.
    let (st, body) = s.put_config("long", json!({"runtime": "provided", "handler": "é".repeat(128)})).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, body) = s.put_config("long", json!({"runtime": "provided", "handler": "é".repeat(129)})).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidHandler")));
    let mint = |name: String| {
        send(s.req(reqwest::Method::POST, "/v1/tokens").json(&json!({"name": name, "scopes": ["read"]})))
    };
    assert_eq!(mint("é".repeat(64)).await.0, StatusCode::CREATED);
    for bad in ["é".repeat(65), String::new(), "tab\there".into()] {
        let (st, body) = mint(bad.clone()).await;
        assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidParameterValue")), "{bad:?}");
    }
    // Versions are plain numbers from 1 to 999999999, or $LATEST. (Python code for a python
    // function: a provided one would need a bootstrap.)
    s.put_config("long", json!({"runtime": "python3", "handler": "main.handler"})).await;
    s.put_zip("long", hello_python()).await;
    for ok in ["1", "$LATEST", "latest"] {
        let resp = s
            .req(reqwest::Method::GET, &format!("/v1/functions/long/code?version={}", urlencode(ok)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{ok}");
    }
    let (st, body) = s.get_json("/v1/functions/long/code?version=999999999").await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("VersionNotFound")));
    for bad in ["0", "01", "%2B1", "1000000000", "4294967296", "1.0", ""] {
        let (st, body) = s.get_json(&format!("/v1/functions/long/code?version={bad}")).await;
        assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidVersion")), "{bad}");
    }
}

fn urlencode(s: &str) -> String {
    s.replace('$', "%24")
}

#[tokio::test]
async fn concurrent_deploys_get_distinct_versions() {
    let s = Arc::new(start().await);
    s.put_config("busy", py()).await;
    let mut tasks = vec![];
    for i in 0..12 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let zip = deflated_zip(&[("main.py", format!("def handler(e, c):\n    return {i}\n").as_bytes())]);
            s.put_zip("busy", zip).await
        }));
    }
    for t in tasks {
        let (st, body) = t.await.unwrap();
        assert_eq!(st, StatusCode::OK, "{body}");
    }
    let (_, v) = s.get_json("/v1/functions/busy/versions").await;
    let mut numbers: Vec<u64> =
        v["versions"].as_array().unwrap().iter().map(|v| v["number"].as_u64().unwrap()).collect();
    numbers.sort();
    assert_eq!(numbers, (1..=12).collect::<Vec<_>>());
}

#[test]
fn openapi_document_lists_the_control_plane() {
    let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
    for p in [
        "/v1/functions/{name}",
        "/v1/functions/{name}/code",
        "/v1/functions/{name}/versions",
        "/v1/packages",
        "/healthz",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} documented");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn package_upload_then_config_makes_one_version() {
    let s = start().await;
    let upload = |zip: Vec<u8>| {
        send(s.req(reqwest::Method::POST, "/v1/packages").header("content-type", "application/zip").body(zip))
    };
    let (st, pkg) = upload(hello_python()).await;
    assert_eq!(st, StatusCode::CREATED, "{pkg}");
    let sha = pkg["sha256"].as_str().unwrap().to_owned();
    let (st, body) =
        s.put_config("atomic", json!({"runtime": "python3", "handler": "main.handler", "code_sha256": sha})).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["new_version"]["number"], 1, "created with code in one step");

    let new_zip = deflated_zip(&[("app.py", b"def main(e, c):\n    return 1\n")]);
    let (_, pkg2) = upload(new_zip).await;
    let spec = json!({"runtime": "python3", "handler": "app.main", "memory_mb": 512, "code_sha256": pkg2["sha256"]});
    let (_, body) = s.put_config("atomic", spec).await;
    assert_eq!(body["new_version"]["number"], 2, "code and config change together");
    assert_eq!(body["new_version"]["config"]["handler"], "app.main");
    assert_eq!(body["new_version"]["code"]["sha256"], pkg2["sha256"]);
    let (_, v) = s.get_json("/v1/functions/atomic/versions").await;
    assert_eq!(v["versions"].as_array().unwrap().len(), 2, "no intermediate version");

    // A digest that names nothing stored is a conflict with the server's state (the same
    // request succeeds once the package is uploaded); one that is not a digest is malformed.
    let unknown = "0".repeat(64);
    for (bad, status, code) in [
        (unknown.as_str(), StatusCode::CONFLICT, "CodePackageNotFound"),
        ("nothex", StatusCode::BAD_REQUEST, "InvalidParameterValue"),
    ] {
        let (st, body) =
            s.put_config("atomic", json!({"runtime": "python3", "handler": "main.handler", "code_sha256": bad})).await;
        assert_eq!((st, body["code"].as_str()), (status, Some(code)), "{bad}");
    }
    for (what, zip, code) in hostile_archives() {
        let (st, body) = upload(zip).await;
        assert_eq!((st.is_client_error(), body["code"].as_str()), (true, Some(code)), "{what}");
    }
}

#[tokio::test]
async fn code_from_an_s3_object_url() {
    let s3 = S3TestServer::start();
    let http = reqwest::Client::new();
    let put = |path: &str, body: Vec<u8>| {
        http.put(format!("{}{path}", s3.endpoint)).header("content-type", "application/zip").body(body).send()
    };
    assert!(put("/fn-code", vec![]).await.unwrap().status().is_success(), "bucket created");
    let pkg = hello_python();
    assert!(put("/fn-code/hello/v1.zip", pkg.clone()).await.unwrap().status().is_success());
    let (_, evil, _) = hostile_archives().into_iter().next().unwrap();
    put("/fn-code/evil.zip", evil).await.unwrap();
    put("/fn-code/notzip.zip", b"plain text".to_vec()).await.unwrap();

    let s = start_with(ObjectSource::new(s3.settings())).await;
    s.put_config("from-s3", py()).await;
    let by_url =
        |url: &str| send(s.req(reqwest::Method::PUT, "/v1/functions/from-s3/code").json(&json!({"object_url": url})));
    for (url, status, code) in [
        ("s3://fn-code/missing.zip", StatusCode::BAD_REQUEST, "CodeObjectNotFound"),
        ("s3://no-such-bucket/x.zip", StatusCode::BAD_REQUEST, "CodeObjectNotFound"),
        ("s3://fn-code/evil.zip", StatusCode::BAD_REQUEST, "ZipPathTraversal"),
        ("s3://fn-code/notzip.zip", StatusCode::BAD_REQUEST, "ZipNotAnArchive"),
        ("s3:/fn-code", StatusCode::BAD_REQUEST, "InvalidObjectUrl"),
    ] {
        let (st, body) = by_url(url).await;
        assert_eq!((st, body["code"].as_str()), (status, Some(code)), "{url}: {body}");
    }
    assert_eq!(count_files(&s.code_dir), 0, "nothing stored from refused objects");

    let (st, body) = by_url("s3://fn-code/hello/v1.zip").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["new_version"]["number"], 1);
    let got = s.req(reqwest::Method::GET, "/v1/functions/from-s3/code").send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&got[..], &pkg[..], "the stored package is the object's bytes");

    // An allow-list refuses other buckets and still serves its own.
    let listed = S3Settings { buckets: Some(vec!["fn-code".into()]), ..s3.settings() };
    let s = start_with(ObjectSource::new(listed)).await;
    s.put_config("from-s3", py()).await;
    let by_url =
        |url: &str| send(s.req(reqwest::Method::PUT, "/v1/functions/from-s3/code").json(&json!({"object_url": url})));
    let (st, body) = by_url("s3://no-such-bucket/x.zip").await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("S3BucketNotAllowed")), "{body}");
    let (st, body) = by_url("s3://fn-code/hello/v1.zip").await;
    assert_eq!(st, StatusCode::OK, "{body}");

    // An endpoint without keys sends unsigned requests (a public bucket) instead of looking
    // for credentials.
    let public = http.put(format!("{}/fn-code/public.zip", s3.endpoint)).header("x-amz-acl", "public-read");
    assert!(public.body(pkg.clone()).send().await.unwrap().status().is_success());
    let unsigned = S3Settings { access_key_id: None, secret_access_key: None, ..s3.settings() };
    let s = start_with(ObjectSource::new(unsigned)).await;
    let fetch = |url: &str| send(s.req(reqwest::Method::POST, "/v1/packages").json(&json!({"object_url": url})));
    let (st, body) = fetch("s3://fn-code/public.zip").await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, body) = fetch("s3://fn-code/hello/v1.zip").await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("CodeObjectAccessDenied")), "private");
}

#[tokio::test]
async fn s3_urls_are_refused_without_s3_settings() {
    let s = start().await;
    s.put_config("from-s3", py()).await;
    let object = json!({"object_url": "s3://fn-code/hello.zip"});
    for r in [
        s.req(reqwest::Method::PUT, "/v1/functions/from-s3/code").json(&object),
        s.req(reqwest::Method::POST, "/v1/packages").json(&object),
    ] {
        let (st, body) = send(r).await;
        assert_eq!((st, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("S3NotConfigured")), "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("[s3]") && message.contains("HEARTH_S3_"), "says what to set: {message}");
    }
    assert_eq!(count_files(&s.code_dir), 0);
}

#[tokio::test]
async fn a_bucket_outside_the_allow_list_is_refused_without_a_connection() {
    // A loopback listener stands in for the store and counts the connections it gets.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });
    let settings = S3Settings {
        endpoint: Some(endpoint),
        allow_http: true,
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        buckets: Some(vec!["code".into()]),
        ..Default::default()
    };
    let s = start_with(ObjectSource::new(settings)).await;
    let fetch = |url: &str| send(s.req(reqwest::Method::POST, "/v1/packages").json(&json!({"object_url": url})));
    let (st, body) = fetch("s3://other/x.zip").await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("S3BucketNotAllowed")), "{body}");
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0, "refused before any connection");
    // The listed bucket does reach the (stand-in) store, so the count above means something.
    let (st, body) = fetch("s3://code/x.zip").await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_GATEWAY, Some("CodeObjectFetchFailed")), "{body}");
    assert!(connections.load(std::sync::atomic::Ordering::SeqCst) > 0);
}

#[tokio::test]
async fn patch_changes_only_what_it_names_in_one_version() {
    let s = start().await;
    let patch =
        |name: &str, body: Value| send(s.req(reqwest::Method::PATCH, &format!("/v1/functions/{name}")).json(&body));
    let (st, body) = patch("absent", json!({"memory_mb": 256})).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("FunctionNotFound")), "PATCH does not create");

    let spec = json!({"runtime": "python3", "handler": "main.handler", "memory_mb": 256, "max_instances": 5,
        "environment": {"KEEP": "1", "DROP": "2"}});
    s.put_config("tuned", spec).await;
    s.put_zip("tuned", hello_python()).await;

    let (st, body) = patch("tuned", json!({"timeout_s": 10})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["new_version"]["number"], 2, "one setting, one version");
    let config = &body["function"]["config"];
    assert_eq!((config["timeout_s"].as_u64(), config["memory_mb"].as_u64()), (Some(10), Some(256)));
    assert_eq!(config["environment"], json!({"KEEP": "1", "DROP": "2"}), "the environment is kept");
    assert_eq!(body["new_version"]["code"]["sha256"], body["function"]["code"]["sha256"], "the code is kept");

    let (_, body) = patch("tuned", json!({"environment": {"NEW": "3", "DROP": null}, "max_instances": null})).await;
    let config = &body["function"]["config"];
    assert_eq!(config["environment"], json!({"KEEP": "1", "NEW": "3"}), "merged variable by variable");
    assert_eq!(config["max_instances"], 10, "null resets to the default");
    assert_eq!(body["new_version"]["number"], 3);

    let (st, body) = patch("tuned", json!({"timeout_s": 10})).await;
    assert_eq!((st, body["new_version"].is_null()), (StatusCode::OK, true), "no change, no version: {body}");

    // Code and a setting together: one version.
    let (_, pkg) = send(
        s.req(reqwest::Method::POST, "/v1/packages")
            .header("content-type", "application/zip")
            .body(deflated_zip(&[("main.py", b"def handler(e, c):\n    return 2\n")])),
    )
    .await;
    let (_, body) = patch("tuned", json!({"code_sha256": pkg["sha256"], "memory_mb": 512})).await;
    assert_eq!(body["new_version"]["number"], 4, "{body}");
    assert_eq!(body["new_version"]["code"]["sha256"], pkg["sha256"]);
    assert_eq!(body["new_version"]["config"]["memory_mb"], 512);

    for (bad, code) in [
        (json!([1]), "InvalidRequestBody"),
        (json!({"memroy_mb": 1}), "InvalidRequestBody"),
        (json!({"runtime": null}), "InvalidRequestBody"),
        (json!({"memory_mb": 1}), "InvalidMemorySize"),
        (json!({"min_instances": 20}), "InvalidInstanceCount"),
        (json!({"code_sha256": 5}), "InvalidRequestBody"),
    ] {
        let (st, body) = patch("tuned", bad.clone()).await;
        assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{bad}");
    }
    let (st, body) = patch("tuned", json!({"code_sha256": "0".repeat(64)})).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::CONFLICT, Some("CodePackageNotFound")));
    let (_, v) = s.get_json("/v1/functions/tuned/versions").await;
    assert_eq!(v["versions"].as_array().unwrap().len(), 4, "refused patches made no version");

    // Concurrent patches of different settings all land: each applies to the configuration
    // as it is when written.
    let s = Arc::new(s);
    let tasks: Vec<_> = [json!({"timeout_s": 30}), json!({"description": "d"}), json!({"environment": {"C": "1"}})]
        .into_iter()
        .map(|p| {
            let s = s.clone();
            tokio::spawn(async move { send(s.req(reqwest::Method::PATCH, "/v1/functions/tuned").json(&p)).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().0, StatusCode::OK);
    }
    let (_, f) = s.get_json("/v1/functions/tuned").await;
    let c = &f["config"];
    assert_eq!(
        (c["timeout_s"].as_u64(), c["description"].as_str(), c["environment"]["C"].as_str()),
        (Some(30), Some("d"), Some("1"))
    );
    assert_eq!(f["latest_version"], 7);
}
