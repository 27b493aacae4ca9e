//! Cold starts from pre-warmed sandboxes: the function's code and environment arrive in a
//! runtime that was started before the request. And Python bytecode compiled once per
//! package, for the cold starts after the first.

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

/// A `provided` function in sh: what its `bootstrap` process was started with, and which
/// processes its sandbox holds.
const SH_WHOAMI: &str = r#"#!/bin/sh
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
STDIN=$(readlink /proc/$$/fd/0)
SIGIGN=$(grep SigIgn /proc/$$/status | cut -f2)
PROCS=$(cat /proc/[0-9]*/comm | sort -u | tr '\n' ' ')
while true; do
  H=$(mktemp)
  curl -sS -o /dev/null -D "$H" "$API/invocation/next"
  ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$H" | tr -d '[:space:]' | cut -d: -f2)
  curl -sS -o /dev/null -X POST "$API/invocation/$ID/response" \
    -d "{\"tz\":\"$TZ\",\"greeting\":\"$GREETING\",\"flag\":\"${HEARTH_PREWARMED:-}\",\"cwd\":\"$(pwd)\",\"stdin\":\"$STDIN\",\"procs\":\"$PROCS\",\"stream\":\"$AWS_LAMBDA_LOG_STREAM_NAME\",\"root\":\"$LAMBDA_TASK_ROOT\",\"sigign\":\"$SIGIGN\"}"
done
"#;

#[tokio::test]
async fn a_provided_cold_start_execs_its_bootstrap_in_a_prewarmed_sandbox() {
    let s = start_with(keys(&["provided:128"])).await;
    let ready = wait_cells(&s, 1, &[]).await;
    // TZ would keep a Python or Node function from a cell; the exec'd bootstrap gets it.
    let spec = json!({"runtime": "provided", "environment": {"TZ": "Europe/Paris", "GREETING": "hi"}});
    s.deploy_zip("custom", hearth_blob::fixtures::raw_zip(&[boot_entry()]), spec).await;
    let r = s.event("custom", json!({})).await;
    assert_eq!((r.status, r.cold), (StatusCode::OK, Some(true)), "{:?}", r.body);
    let id = s.instances("custom").await[0]["id"].as_str().unwrap().to_owned();
    assert!(ready.contains(&id), "the instance is a pre-warmed cell ({id} in {ready:?})");
    let b = &r.body;
    assert_eq!((&b["tz"], &b["greeting"]), (&json!("Europe/Paris"), &json!("hi")), "its own environment: {b}");
    assert_eq!(b["flag"], "", "nothing of the cell in its environment: {b}");
    assert_eq!((&b["cwd"], &b["stdin"]), (&b["root"], &json!("/dev/null")), "{b}");
    // Signals as a start without a cell leaves them: SIGPIPE and SIGXFSZ not ignored (the
    // shim's Python ignores them, and an exec keeps what is ignored).
    let ignored = u64::from_str_radix(b["sigign"].as_str().unwrap(), 16).unwrap();
    assert_eq!(ignored & (1 << 12 | 1 << 24), 0, "SigIgn {ignored:x}: {b}");
    assert!(b["stream"].as_str().unwrap().ends_with(&id), "{b}");
    // The shim became the bootstrap (exec, not a child): no Python left in the sandbox (whose
    // `/proc` shows only its own processes; without root there is no sandbox).
    if nix::unistd::geteuid().is_root() {
        let procs = b["procs"].as_str().unwrap();
        assert!(procs.contains("bootstrap") && !procs.contains("python"), "the sandbox's processes: {procs}");
    }
    // Warm again, then the next cold start of the key gets the refilled cell.
    assert_eq!(s.event("custom", json!({})).await.cold, Some(false));
    let refilled = wait_cells(&s, 1, &[&id]).await;
    s.deploy_zip("custom2", hearth_blob::fixtures::raw_zip(&[boot_entry()]), json!({"runtime": "provided"})).await;
    let r = s.event("custom2", json!({})).await;
    assert_eq!((r.status, &r.body["tz"]), (StatusCode::OK, &json!(":UTC")), "the default TZ: {:?}", r.body);
    let id2 = s.instances("custom2").await[0]["id"].as_str().unwrap().to_owned();
    assert!(refilled.contains(&id2) && id2 != id, "{id2} in {refilled:?}");
}

fn boot_entry() -> hearth_blob::fixtures::RawEntry {
    let mut boot = hearth_blob::fixtures::RawEntry::file("bootstrap", SH_WHOAMI.as_bytes());
    boot.unix_mode = 0o100755;
    boot
}

/// Imports `helper` counting the modules Python compiles from source on the way.
const USES_HELPER: &str = "import importlib.machinery as m\n\
compiled = []\n\
_to_code = m.SourceFileLoader.source_to_code\n\
def counting(self, data, path, *args, **kwargs):\n    \
    compiled.append(path)\n    \
    return _to_code(self, data, path, *args, **kwargs)\n\
m.SourceFileLoader.source_to_code = counting\n\
import helper\n\n\
def handler(event, context):\n    \
    return {'value': helper.VALUE, 'compiled_from_source': compiled}\n";

#[tokio::test]
async fn python_modules_are_compiled_once_per_package_for_the_next_cold_starts() {
    let s = start().await;
    let zip = || deflated_zip(&[("main.py", USES_HELPER.as_bytes()), ("helper.py", b"VALUE = 42\n")]);
    s.deploy_zip("compiled", zip(), py(json!({}))).await;
    let r = s.event("compiled", json!({})).await;
    assert_eq!((r.status, &r.body["value"]), (StatusCode::OK, &json!(42)), "{:?}", r.body);
    // The package's folder in the code cache gets its bytecode in the background.
    let cache = s.dir.path().join("cache");
    let deadline = Instant::now() + Duration::from_secs(60);
    let compiled = loop {
        let digests: Vec<std::path::PathBuf> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().len() == 64)
            .collect();
        if let [one] = &digests[..]
            && one.join("__pycache__").is_dir()
        {
            break one.join("__pycache__");
        }
        assert!(Instant::now() < deadline, "no bytecode in the code cache: {digests:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let names: Vec<String> =
        std::fs::read_dir(&compiled).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(
        names.iter().any(|n| n.starts_with("helper.")) && names.iter().any(|n| n.starts_with("main.")),
        "{names:?}"
    );
    // A new version of the same code cold-starts on the compiled tree: Python compiles
    // nothing of it again.
    s.deploy_zip("compiled", zip(), py(json!({"environment": {"V": "2"}}))).await;
    let r = s.event("compiled", json!({})).await;
    assert_eq!((r.cold, &r.body["value"]), (Some(true), &json!(42)), "{:?}", r.body);
    assert_eq!(r.body["compiled_from_source"], json!([]), "{:?}", r.body);
    // Once: the tree it replaced is aside, and no compile is left running.
    let aside = std::fs::read_dir(&cache).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned());
    let aside: Vec<String> = aside.filter(|n| n.starts_with(".replaced-") || n.starts_with(".compile-")).collect();
    assert!(aside.len() == 1 && aside[0].starts_with(".replaced-"), "one tree replaced, no compile left: {aside:?}");
}
