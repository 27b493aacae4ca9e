//! WebAssembly functions through the real server: deployed as packages, invoked through the
//! API and an HTTP trigger, their cold starts reported by where they came from (a compile,
//! the disk cache, a program already loaded), their limits kept, and the server serving on
//! after every failure.

use std::time::{Duration, Instant};

use hearth_wasm::test_support::{hello_module, http_component};

use super::*;

/// An invocation's status, headers and JSON body.
async fn call(s: &Server, name: &str, event: Value) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let r = s
        .http
        .post(format!("{}/v1/functions/{name}/invoke", s.url))
        .bearer_auth(&s.token)
        .json(&event)
        .send()
        .await
        .unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

fn header(h: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    h.get(name).map(|v| v.to_str().unwrap().to_owned())
}

async fn deploy_module(s: &Server, name: &str, module: &[u8], spec: Value) {
    let mut spec = spec;
    spec["runtime"] = json!("wasm");
    s.deploy_zip(name, deflated_zip(&[("main.wasm", module)]), spec).await;
}

#[tokio::test]
async fn an_event_function_answers_and_its_cold_starts_say_compile_memory_then_disk() {
    let s = start().await;
    let module = hello_module();
    deploy_module(&s, "hello", &module, json!({})).await;
    let (status, h, body) = call(&s, "hello", json!({"name": "Ada"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "Hello, Ada!");
    assert_eq!(body["function"], "hello", "the function's own name is in its environment");
    assert_eq!(
        (header(&h, "x-hearth-cold-start"), header(&h, "x-hearth-start-source")),
        (Some("true".into()), Some("wasm_compile".into()))
    );
    let request_id = header(&h, "x-hearth-request-id").unwrap();
    let (_, h, _) = call(&s, "hello", json!({"name": "Bob"})).await;
    assert_eq!((header(&h, "x-hearth-cold-start"), header(&h, "x-hearth-start-source")), (Some("false".into()), None));
    // Its stderr is its log, attributed to the request that wrote it.
    let logs = s.get_json("/v1/functions/hello/logs").await;
    let line = logs["lines"].as_array().unwrap().iter().find(|l| l["message"] == "greeting Ada").cloned();
    assert_eq!(line.map(|l| l["request_id"].clone()), Some(json!(request_id)), "{logs}");
    let records = s.get_json("/v1/functions/hello/invocations").await;
    let cold =
        records["invocations"].as_array().unwrap().iter().find(|r| r["request_id"] == json!(request_id)).cloned();
    let cold = cold.unwrap_or_else(|| panic!("the cold invocation's record: {records}"));
    assert_eq!(cold["start_source"], "wasm_compile", "{cold}");
    // Its CPU time is measured for billing, and said in its REPORT line.
    let cpu = cold["cpu_time_ms"].as_f64().unwrap_or_else(|| panic!("no CPU time: {cold}"));
    assert!(cpu > 0.0 && cpu <= cold["duration_ms"].as_f64().unwrap(), "{cold}");
    let report = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["request_id"] == json!(request_id) && l["message"].as_str().unwrap().contains("\tCPU Time: "));
    assert!(report, "{logs}");

    // The same code in another function while the first is loaded: shared, not compiled.
    deploy_module(&s, "twin", &module, json!({})).await;
    let (_, h, _) = call(&s, "twin", json!({})).await;
    assert_eq!(header(&h, "x-hearth-start-source").as_deref(), Some("wasm_memory"));
    // Deleted, then deployed again once nothing holds it: mapped from the disk cache.
    for name in ["hello", "twin"] {
        let r = s.http.delete(format!("{}/v1/functions/{name}", s.url)).bearer_auth(&s.token).send().await.unwrap();
        assert!(r.status().is_success());
    }
    // The deleted functions' instances are gone (they held all the committed memory).
    s.wait_node(Duration::from_secs(10), |node| node["memory_committed_mb"] == json!(0)).await;
    deploy_module(&s, "again", &module, json!({})).await;
    let (status, h, body) = call(&s, "again", json!({"name": "Cy"})).await;
    assert_eq!((status, body["message"].as_str()), (StatusCode::OK, Some("Hello, Cy!")));
    assert_eq!(header(&h, "x-hearth-start-source").as_deref(), Some("wasm_disk_cache"));
}

#[tokio::test]
async fn a_wasi_http_component_serves_its_http_trigger_unmodified() {
    let s = start().await;
    deploy_module(&s, "web", &http_component(), json!({})).await;
    let (st, t) = s.add_trigger(json!({"function": "web", "path": "/web"})).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let r = s
        .http
        .get(format!("{}/web/items?x=1&y=2", s.trigger_url))
        .header("user-agent", "probe/2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-served-by"], "wasm-http");
    assert_eq!(r.headers()["set-cookie"], "seen=1; Path=/");
    assert_eq!(r.headers()["content-type"], "application/json");
    let seen: Value = r.json().await.unwrap();
    assert_eq!((seen["method"].as_str(), seen["path"].as_str()), (Some("GET"), Some("/web/items?x=1&y=2")));
    assert_eq!(seen["user_agent"], "probe/2");
    let binary: Vec<u8> = (0..=255u8).rev().cycle().take(200_000).collect();
    let r = s
        .http
        .post(format!("{}/web/upload", s.trigger_url))
        .header("content-type", "application/octet-stream")
        .body(binary.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert_eq!(r.bytes().await.unwrap().as_ref(), binary.as_slice(), "a binary body survives both ways");
    // Invoked directly with an event that is no HTTP request: a clear 400 answer.
    let (status, _, body) = call(&s, "web", json!({"name": "not a request"})).await;
    assert_eq!((status, body["statusCode"].as_u64()), (StatusCode::OK, Some(400)), "{body}");
    assert!(body["body"].as_str().unwrap().contains("HTTP trigger"), "{body}");
}

const LOOP: &str = r#"(module (func (export "_start") (loop $l (br $l))))"#;
const GROW: &str = r#"(module (memory 1) (func (export "_start") (drop (memory.grow (i32.const 4096)))))"#;
const TRAP: &str = r#"(module (func $deep unreachable) (func (export "_start") call $deep))"#;

#[tokio::test]
async fn loops_traps_and_memory_hogs_fail_clearly_and_the_server_serves_on() {
    let s = start().await;
    for (name, wat) in [("spin", LOOP), ("grow", GROW), ("trap", TRAP)] {
        deploy_module(&s, name, &wat::parse_str(wat).unwrap(), json!({"timeout_s": 1, "memory_mb": 128})).await;
    }
    deploy_module(&s, "hello", &hello_module(), json!({})).await;
    let started = Instant::now();
    let (status, h, body) = call(&s, "spin", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "x-hearth-function-error").as_deref(), Some("Sandbox.Timedout"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(10), "stopped at its timeout: {:?}", started.elapsed());
    let (_, h, body) = call(&s, "grow", json!({})).await;
    assert_eq!(header(&h, "x-hearth-function-error").as_deref(), Some("Runtime.OutOfMemory"), "{body}");
    assert!(body["errorMessage"].as_str().unwrap().contains("memory size of 128 MB"), "{body}");
    let (_, h, body) = call(&s, "trap", json!({})).await;
    assert_eq!(header(&h, "x-hearth-function-error").as_deref(), Some("Runtime.WasmTrap"), "{body}");
    assert!(body["errorMessage"].as_str().unwrap().contains("unreachable"), "{body}");
    // The same instance serves the next call (a trap harms only its run), and so does
    // every other function.
    let (_, h, _) = call(&s, "trap", json!({})).await;
    assert_eq!(header(&h, "x-hearth-cold-start").as_deref(), Some("false"));
    let (status, _, body) = call(&s, "hello", json!({"name": "after"})).await;
    assert_eq!((status, body["message"].as_str()), (StatusCode::OK, Some("Hello, after!")));
    // A module that does not compile never gets past its first cold start, with a reason.
    s.deploy_zip(
        "broken",
        deflated_zip(&[("main.wasm", b"\0asm\x01\0\0\0\xff".as_slice())]),
        json!({"runtime": "wasm"}),
    )
    .await;
    let (_, h, body) = call(&s, "broken", json!({})).await;
    assert_eq!(header(&h, "x-hearth-function-error").as_deref(), Some("Runtime.InvalidWasm"), "{body}");
}
