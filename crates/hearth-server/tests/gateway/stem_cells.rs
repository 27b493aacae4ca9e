//! Cold starts from pre-warmed sandboxes: the function's code and environment arrive in a
//! runtime that was started before the request.

use super::*;

use hearth_agent::{CellKey, StemCellSettings};

const WHOAMI: &str = r#"
import os, sys

LOADED = "main.py" in os.listdir(os.environ["LAMBDA_TASK_ROOT"])

def handler(event, context):
    return {
        "function": context.function_name,
        "greeting": os.environ.get("GREETING"),
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
        "cwd": os.getcwd(),
        "loaded": LOADED,
        "prewarmed_flag": os.environ.get("HEARTH_PREWARMED"),
        "stream": context.log_stream_name,
    }
"#;

const NODE_WHOAMI: &str = r#"
export const handler = async (event, context) => ({
  function: context.functionName,
  greeting: process.env.GREETING ?? null,
  prewarmed_flag: process.env.HEARTH_PREWARMED ?? null,
});
"#;

/// The cells ready (or in use) on this server: their slot folders (`.starting-*` while the
/// runtime starts).
fn cells(s: &Server) -> Vec<String> {
    std::fs::read_dir(s.dir.path().join("cache/.cells"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// Waits for `n` cells not in use by `busy` instances.
async fn wait_cells(s: &Server, n: usize, busy: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c: Vec<String> = cells(s).into_iter().filter(|c| !busy.contains(&c.as_str())).collect();
        if c.len() >= n {
            return c;
        }
        assert!(Instant::now() < deadline, "the pool never had {n} cells: {c:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn keys(keys: &[&str]) -> impl FnOnce(&mut GatewaySettings) {
    let keys: Vec<CellKey> = keys.iter().map(|k| k.parse().unwrap()).collect();
    move |s| s.stem_cells = Some(StemCellSettings { keys, ..Default::default() })
}

#[tokio::test]
async fn cold_starts_take_a_prewarmed_sandbox_and_become_the_function() {
    let s = start_with(keys(&["python3:128", "nodejs:256"])).await;
    let ready = wait_cells(&s, 2, &[]).await;
    let node = s.node().await;
    let listed: Vec<(String, u64, u64)> = node["prewarmed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (p["runtime"].as_str().unwrap().to_owned(), p["memory_mb"].as_u64().unwrap(), p["ready"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(listed, [("nodejs".to_owned(), 256, 1), ("python3".to_owned(), 128, 1)], "{node}");
    s.deploy("first", WHOAMI, py(json!({"environment": {"GREETING": "hi"}}))).await;
    let r = s.event("first", json!({})).await;
    assert_eq!((r.status, r.cold), (StatusCode::OK, Some(true)), "{:?}", r.body);
    assert_eq!(r.body["function"], "first");
    assert_eq!(r.body["greeting"], "hi", "the function's own environment");
    assert_eq!(r.body["prewarmed_flag"], Value::Null, "no trace of the pool in its environment");
    assert_eq!(r.body["loaded"], true, "its code was in the task root at import");
    assert_eq!(r.body["cwd"], r.body["task_root"]);
    let id = s.instances("first").await[0]["id"].as_str().unwrap().to_owned();
    assert!(ready.contains(&id), "the instance is a pre-warmed cell ({id} in {ready:?})");
    assert!(r.body["stream"].as_str().unwrap().ends_with(&id));

    // The pool refills, and the next function of the same key gets a cell too.
    let refilled = wait_cells(&s, 2, &[&id]).await;
    s.deploy("second", WHOAMI, py(json!({}))).await;
    let r = s.event("second", json!({})).await;
    assert_eq!((r.body["function"].as_str(), r.body["greeting"].as_str()), (Some("second"), None), "{:?}", r.body);
    let id2 = s.instances("second").await[0]["id"].as_str().unwrap().to_owned();
    assert!(refilled.contains(&id2) && id2 != id);

    // Node, at its own memory size.
    let zip = deflated_zip(&[("index.mjs", NODE_WHOAMI.as_bytes())]);
    let spec =
        json!({"runtime": "nodejs", "handler": "index.handler", "memory_mb": 256, "environment": {"GREETING": "yo"}});
    s.deploy_zip("node", zip, spec).await;
    let r = s.event("node", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({"function": "node", "greeting": "yo", "prewarmed_flag": null}));
    let id3 = s.instances("node").await[0]["id"].as_str().unwrap().to_owned();
    assert!(ready.contains(&id3), "{id3} in {ready:?}");

    // A function that sets interpreter start-up variables starts its own instance, although
    // a python3:128 cell is ready when it is called (a cell's id becomes its instance's).
    s.deploy("own", WHOAMI, py(json!({"environment": {"PYTHONDONTWRITEBYTECODE": "1"}}))).await;
    wait_ready(&s, "python3", 128).await;
    let before = cells(&s);
    assert_eq!(s.event("own", json!({})).await.status, StatusCode::OK);
    let id4 = s.instances("own").await[0]["id"].as_str().unwrap().to_owned();
    assert!(!before.contains(&id4), "not from the pool: {id4} in {before:?}");
}

/// How many cells of `runtime:memory_mb` `GET /v1/node` lists as ready.
async fn ready_count(s: &Server, runtime: &str, memory_mb: u64) -> u64 {
    let node = s.node().await;
    let pools = node["prewarmed"].as_array().unwrap();
    let pool = pools.iter().find(|p| p["runtime"] == runtime && p["memory_mb"] == memory_mb);
    pool.map_or(0, |p| p["ready"].as_u64().unwrap())
}

/// Waits until the node lists a ready cell of `runtime:memory_mb`.
async fn wait_ready(s: &Server, runtime: &str, memory_mb: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready_count(s, runtime, memory_mb).await == 0 {
        assert!(Instant::now() < deadline, "no ready {runtime}:{memory_mb} cell: {}", s.node().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_prewarmed_start_still_reports_init_errors() {
    let s = start_with(keys(&["python3:128"])).await;
    wait_cells(&s, 1, &[]).await;
    s.deploy("broken", "raise RuntimeError('boom at import')\n", py(json!({}))).await;
    let r = s.event("broken", json!({})).await;
    assert_eq!(r.error.as_deref(), Some("Runtime.InitError"), "{:?}", r.body);
    assert_eq!(r.body["errorMessage"], "RuntimeError: boom at import", "{:?}", r.body);
    // The failed cell is gone with its slot; the pool still serves a good function.
    s.deploy("good", WHOAMI, py(json!({}))).await;
    let r = s.event("good", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}
