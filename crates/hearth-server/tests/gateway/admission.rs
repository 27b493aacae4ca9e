//! A function that could never start on this node is refused when it is deployed, through
//! every way of deploying, and nothing is written: not at its first invocation.

use base64::Engine;

use super::*;

const HANDLER: &str = "def handler(event, context):\n    return {'ok': True}\n";

/// Uploads `zip` and answers its sha256.
async fn upload(s: &Server, zip: Vec<u8>) -> String {
    let r = s
        .http
        .post(format!("{}/v1/packages", s.url))
        .bearer_auth(&s.token)
        .header("content-type", "application/zip")
        .body(zip)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    r.json::<Value>().await.unwrap()["sha256"].as_str().unwrap().to_owned()
}

async fn send(r: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = r.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_runtime_the_node_does_not_have_is_refused_at_deploy() {
    let s = start_without_node().await;
    let code = upload(&s, deflated_zip(&[("index.mjs", b"export const handler = async () => 1;".as_slice())])).await;
    let spec = json!({"runtime": "nodejs", "handler": "index.handler", "code_sha256": code});
    let (status, body) =
        send(s.http.put(format!("{}/v1/functions/web", s.url)).bearer_auth(&s.token).json(&spec)).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("RuntimeUnavailable")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("Node.js"), "names what to install: {body}");
}

#[tokio::test]
async fn what_could_never_run_here_is_refused_at_deploy() {
    let s = start_with(|g| g.node_memory_mb = 512).await;
    let python = upload(&s, deflated_zip(&[("main.py", HANDLER.as_bytes())])).await;
    let put = |name: &str, spec: Value| {
        s.http.put(format!("{}/v1/functions/{name}", s.url)).bearer_auth(&s.token).json(&spec)
    };

    // More memory than the node admits for all its instances.
    let (status, body) = send(put("big", py(json!({"memory_mb": 1024, "code_sha256": python})))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("MemoryOverNodeLimit")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("512"), "names the node's limit: {body}");
    // A wasm package without the module its handler names.
    let (status, body) = send(put("wasm", json!({"runtime": "wasm", "code_sha256": python}))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("WasmModuleMissing")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("main.wasm"), "{body}");
    let module = upload(&s, deflated_zip(&[("bin/app.wasm", b"\0asm\x01\0\0\0".as_slice())])).await;
    let (_, body) = send(put("wasm", json!({"runtime": "wasm", "code_sha256": module}))).await;
    assert_eq!(body["code"], "WasmModuleMissing", "the module is not at the default path: {body}");
    let (status, body) =
        send(put("wasm", json!({"runtime": "wasm", "handler": "bin/app.wasm", "code_sha256": module}))).await;
    assert!(status.is_success(), "{status} {body}");
    let (status, _) = send(s.http.delete(format!("{}/v1/functions/wasm", s.url)).bearer_auth(&s.token)).await;
    assert!(status.is_success(), "{status}");
    // A provided package without an executable bootstrap: not executable, then absent.
    let plain = upload(&s, deflated_zip(&[("bootstrap", b"#!/bin/sh\n".as_slice())])).await;
    let (status, body) = send(put("custom", json!({"runtime": "provided", "code_sha256": plain}))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("BootstrapMissing")), "{body}");
    let (status, body) = send(put("custom", json!({"runtime": "provided", "code_sha256": python}))).await;
    assert_eq!(body["code"], "BootstrapMissing", "{status} {body}");
    let listed: Value = s.get_json("/v1/functions").await;
    assert_eq!(listed["functions"], json!([]), "nothing was written: {listed}");

    // An existing python function: a patch to provided (its code has no bootstrap) or to
    // too much memory is refused; so is new code without a bootstrap for a provided one.
    s.deploy("fine", HANDLER, py(json!({}))).await;
    let patch = |spec: Value| s.http.patch(format!("{}/v1/functions/fine", s.url)).bearer_auth(&s.token).json(&spec);
    let (_, body) = send(patch(json!({"runtime": "provided", "handler": null}))).await;
    assert_eq!(body["code"], "BootstrapMissing", "{body}");
    let (_, body) = send(patch(json!({"memory_mb": 1024}))).await;
    assert_eq!(body["code"], "MemoryOverNodeLimit", "{body}");
    let mut boot = hearth_blob::fixtures::RawEntry::file("bootstrap", b"#!/bin/sh\nexit 1\n");
    boot.unix_mode = 0o100755;
    s.deploy_zip("shell", hearth_blob::fixtures::raw_zip(&[boot]), json!({"runtime": "provided"})).await;
    let (status, body) = send(
        s.http
            .put(format!("{}/v1/functions/shell/code", s.url))
            .bearer_auth(&s.token)
            .header("content-type", "application/zip")
            .body(deflated_zip(&[("main.py", HANDLER.as_bytes())])),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("BootstrapMissing")), "{body}");
    for name in ["fine", "shell"] {
        let versions = s.get_json(&format!("/v1/functions/{name}/versions")).await;
        assert_eq!(versions["versions"].as_array().unwrap().len(), 1, "{name}: no refused change made a version");
    }

    // The Lambda API is refused the same way, in its own shape.
    let zip = base64::engine::general_purpose::STANDARD.encode(deflated_zip(&[("main.py", HANDLER.as_bytes())]));
    let (status, body) =
        send(s.http.post(format!("{}/2015-03-31/functions", s.url)).bearer_auth(&s.token).json(&json!({
            "FunctionName": "lambda-custom", "Runtime": "provided.al2023", "Role": "r", "Handler": "bootstrap",
            "Code": {"ZipFile": zip},
        })))
        .await;
    assert_eq!((status, body["Type"].as_str()), (StatusCode::CONFLICT, Some("User")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("bootstrap"), "{body}");
    let (status, _) = send(
        s.http
            .put(format!("{}/2015-03-31/functions/fine/configuration", s.url))
            .bearer_auth(&s.token)
            .json(&json!({"MemorySize": 4096})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

/// A runtime change and a code change racing each other cannot together leave a function
/// that could never start: admission runs inside the write, on what is saved.
#[tokio::test]
async fn racing_changes_cannot_combine_into_a_function_that_cannot_start() {
    let s = start().await;
    let mut boot = hearth_blob::fixtures::RawEntry::file("bootstrap", b"#!/bin/sh\nexit 1\n");
    boot.unix_mode = 0o100755;
    let with_bootstrap =
        hearth_blob::fixtures::raw_zip(&[boot, hearth_blob::fixtures::RawEntry::file("main.py", HANDLER.as_bytes())]);
    let without = deflated_zip(&[("main.py", HANDLER.as_bytes())]);
    for round in 0..10 {
        let name = format!("race{round}");
        s.deploy_zip(&name, with_bootstrap.clone(), py(json!({}))).await;
        let to_provided = s
            .http
            .patch(format!("{}/v1/functions/{name}", s.url))
            .bearer_auth(&s.token)
            .json(&json!({"runtime": "provided", "handler": null}));
        let new_code = s
            .http
            .put(format!("{}/v1/functions/{name}/code", s.url))
            .bearer_auth(&s.token)
            .header("content-type", "application/zip")
            .body(without.clone());
        let (a, b) = tokio::join!(send(to_provided), send(new_code));
        let f = s.get_json(&format!("/v1/functions/{name}")).await;
        let provided = f["config"]["runtime"] == "provided";
        let bare = f["code"]["sha256"].as_str() == Some(&hearth_types::CodeDigest::of(&without).to_string());
        assert!(!(provided && bare), "round {round}: both landed ({} {}, {} {}): {f}", a.0, a.1, b.0, b.1);
        assert!(a.0.is_success() || a.1["code"] == "BootstrapMissing", "{a:?}");
        assert!(b.0.is_success() || b.1["code"] == "BootstrapMissing", "{b:?}");
    }
}
