//! Invoking: cold and warm starts, scaling, failures, versions, records and logs.

use super::*;

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
    assert_eq!(first.body["instance"], second.body["instance"]);
    assert_ne!(first.request_id, second.request_id);
    let list = s.instances("hello").await;
    assert_eq!(list.len(), 1);
    assert_eq!((list[0]["state"].as_str(), list[0]["requests_served"].as_u64()), (Some("ready"), Some(2)));

    // Idle past its 2 s keep-alive: reclaimed, and the next call is cold again.
    s.wait_instances("hello", Duration::from_secs(10), |l| l.is_empty()).await;
    let third = s.event("hello", json!({})).await;
    assert_eq!(third.cold, Some(true));
    assert_ne!(third.body["instance"], first.body["instance"]);
}

/// A live instance reports the memory its cgroup holds: a Python runtime's few MB, within
/// its function's memory size.
#[tokio::test]
async fn live_instances_report_their_memory() {
    if !require_root() {
        return;
    }
    let s = start().await;
    s.deploy("measured", FUNCTION, py(json!({"memory_mb": 256}))).await;
    assert_eq!(s.event("measured", json!({})).await.error, None);
    let list = s.instances("measured").await;
    assert_eq!(list.len(), 1);
    let used = list[0]["memory_used_mb"].as_u64();
    assert!(used.is_some_and(|mb| (1..=256).contains(&mb)), "{}", list[0]);
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
    let mut instances = std::collections::HashSet::new();
    let mut echoed = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!((r.status, r.error.as_deref()), (StatusCode::OK, None), "{:?}", r.body);
        ids.insert(r.request_id.unwrap());
        instances.insert(r.body["instance"].as_str().unwrap().to_owned());
        echoed.insert(r.body["echo"]["i"].as_u64().unwrap());
    }
    assert_eq!(ids.len(), 200, "every request has its own id");
    assert_eq!(echoed.len(), 200, "every event answered exactly once");
    assert!(instances.len() <= 4, "at most max_instances instances: {}", instances.len());
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

/// Holds each invocation with a "gate" until the test creates that file next to the code
/// (`open_gate`): a request stays in flight exactly as long as the test needs.
const GATED: &str = r#"
import os, time

VERSION = 1

def handler(event, context):
    if event.get("gate"):
        gate = os.path.join(os.environ["LAMBDA_TASK_ROOT"], event["gate"])
        deadline = time.time() + 20
        while not os.path.exists(gate):
            if time.time() > deadline:
                raise TimeoutError("the test never opened the gate")
            time.sleep(0.01)
    return {"version": VERSION}
"#;

/// Creates `gate` in every code folder (unpacked package or pre-warmed slot) of `s` whose
/// `main.py` contains `marker`: the instances running that code see it at `/var/task`.
fn open_gate(s: &Server, marker: &str, gate: &str) {
    use std::os::unix::fs::PermissionsExt;
    // First the package's bytecode (compiled in the background, then put in the unpacked
    // tree's place): a gate made before that would be in the tree replaced, which instances
    // started later do not see.
    let deadline = Instant::now() + Duration::from_secs(60);
    let compiled = |d: &Path| {
        !std::fs::read_to_string(d.join("main.py")).is_ok_and(|c| c.contains(marker)) || d.join("__pycache__").is_dir()
    };
    while !std::fs::read_dir(s.dir.path().join("cache"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().len() == 64)
        .all(|e| compiled(&e.path()))
    {
        assert!(Instant::now() < deadline, "the code holding {marker} was never compiled");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut opened = 0;
    let mut dirs = vec![s.dir.path().join("cache")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.file_name().is_some_and(|n| n == "main.py")
                && std::fs::read_to_string(&p).is_ok_and(|c| c.contains(marker))
            {
                // Code folders are read-only; root writes anyway, the owner must lift it.
                let mode = std::fs::metadata(&dir).unwrap().permissions();
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
                std::fs::write(dir.join(gate), "").unwrap();
                std::fs::set_permissions(&dir, mode).unwrap();
                opened += 1;
            }
        }
    }
    assert!(opened > 0, "no code folder holds {marker}");
}

#[tokio::test]
async fn a_new_version_drains_the_old_one() {
    let s = Arc::new(start().await);
    s.deploy("evolving", GATED, py(json!({"timeout_s": 30}))).await;
    // A request in flight on version 1, held at its gate, while version 2 is deployed.
    let held = {
        let s = s.clone();
        tokio::spawn(async move { s.event("evolving", json!({"gate": "open"})).await })
    };
    s.wait_instances("evolving", Duration::from_secs(10), |l| l.len() == 1 && l[0]["state"] == "busy").await;
    s.deploy("evolving", &GATED.replace("VERSION = 1", "VERSION = 2"), py(json!({"timeout_s": 30}))).await;
    let old = s.instances("evolving").await;
    assert_eq!((old[0]["version"].as_u64(), old[0]["state"].as_str()), (Some(1), Some("draining")), "{old:?}");
    let v2 = s.event("evolving", json!({})).await;
    assert_eq!((v2.body["version"].as_u64(), v2.cold), (Some(2), Some(true)), "{:?}", v2.body);
    assert!(!held.is_finished(), "the request on version 1 is still held");
    open_gate(&s, "VERSION = 1", "open");
    let v1 = held.await.unwrap();
    assert_eq!(
        (v1.status, v1.error.as_deref(), v1.body["version"].as_u64()),
        (StatusCode::OK, None, Some(1)),
        "the in-flight request finishes on version 1: {:?}",
        v1.body
    );
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

    // Query parameters outside what the document allows are refused, not clamped.
    let get = |path: &str| s.http.get(format!("{}{path}", s.url)).bearer_auth(&s.token).send();
    for path in ["/v1/functions/empty/logs?limit=1000", "/v1/functions/empty/invocations?limit=1"] {
        assert_eq!(get(path).await.unwrap().status(), StatusCode::OK, "{path}");
    }
    for path in [
        "/v1/functions/empty/logs?limit=0",
        "/v1/functions/empty/logs?limit=1001",
        "/v1/functions/empty/invocations?limit=0",
        "/v1/functions/empty/invocations?limit=-1",
    ] {
        let r = get(path).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "InvalidQuery", "{path}");
    }
    for version in ["0", "007", "%2B1", "1000000000"] {
        let r = s
            .http
            .post(format!("{}/v1/functions/empty/invoke?version={version}", s.url))
            .bearer_auth(&s.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "InvalidVersion", "{version}");
    }
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
    let lines = page["lines"].as_array().unwrap();
    // The log's first lines, whole entries (an invocation's END and REPORT, or its START,
    // END and REPORT when its output came after its END, share a `seq`): at most two
    // lines, unless the first entry alone has more.
    let everything = get(format!("{}/v1/functions/logged/logs", s.url)).await;
    let everything = everything["lines"].as_array().unwrap();
    assert!(!lines.is_empty() && lines[..] == everything[..lines.len()], "{lines:?}");
    let seq = |l: &Value| l["seq"].as_i64().unwrap();
    assert!(everything.get(lines.len()).is_none_or(|next| seq(next) > seq(lines.last().unwrap())), "an entry cut");
    assert!(lines.len() <= 2 || lines.iter().all(|l| seq(l) == seq(&lines[0])), "{lines:?}");
    let rest = get(format!("{}/v1/functions/logged/logs?after={}", s.url, page["next"])).await;
    assert!(rest["lines"][0]["seq"].as_i64().unwrap() > page["next"].as_i64().unwrap());
}

#[tokio::test]
async fn one_instance_serves_its_concurrency_at_once() {
    let s = Arc::new(start().await);
    // Each invocation waits until all four are in the handler at once (20 s at most), so only
    // an instance serving four at a time answers them all.
    let python = "import threading, uuid\n\nINSTANCE = uuid.uuid4().hex\nALL_IN = threading.Barrier(4, timeout=20)\n\ndef handler(event, context):\n    ALL_IN.wait()\n    return {'instance': INSTANCE}\n";
    let node = "const INSTANCE = Math.random().toString(36); let arrived = 0, allIn; const ready = new Promise((r) => (allIn = r)); export const handler = async () => { if (++arrived === 4) allIn(); let timer; const late = new Promise((_, no) => { timer = setTimeout(() => no(new Error('the four never ran at once')), 20000); }); await Promise.race([ready, late]); clearTimeout(timer); return { instance: INSTANCE }; };\n";
    s.deploy("conc-py", python, py(json!({"concurrency": 4, "max_instances": 1, "timeout_s": 30}))).await;
    let spec =
        json!({"runtime": "nodejs", "handler": "index.handler", "concurrency": 4, "max_instances": 1, "timeout_s": 30});
    s.deploy_zip("conc-node", deflated_zip(&[("index.mjs", node.as_bytes())]), spec).await;

    for name in ["conc-py", "conc-node"] {
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.event(name, json!({})).await })
            })
            .collect();
        let mut instances = std::collections::HashSet::new();
        for c in calls {
            let r = c.await.unwrap();
            assert_eq!((r.status, r.error.as_deref()), (StatusCode::OK, None), "{name}: {:?}", r.body);
            instances.insert(r.body["instance"].as_str().unwrap().to_owned());
        }
        assert_eq!(instances.len(), 1, "{name}: one instance (max_instances 1)");
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
    let kept_id = list[0]["id"].clone();
    // Past its keep-alive the minimum is still kept. A control function with the same
    // keep-alive and no minimum, used after `ready`, shows when the reaper has passed that
    // point: once its instance is gone, `ready`'s idle instance was due too.
    s.deploy("control", FUNCTION, py(json!({"keep_alive_s": 1}))).await;
    assert_eq!(s.event("control", json!({})).await.error, None);
    s.wait_instances("control", Duration::from_secs(10), |l| l.is_empty()).await;
    let kept = s.instances("ready").await;
    assert_eq!(kept.len(), 1, "min_instances are kept through idle time");
    assert_eq!(kept[0]["id"], kept_id, "the same instance, not a replacement");

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

/// The invoke body is the JSON event whatever its Content-Type (as `curl -d` sends a form
/// type); a body that is not JSON is refused before any instance starts.
#[tokio::test]
async fn invoke_bodies_are_json_events() {
    let s = start().await;
    s.deploy("typed", "def handler(event, context):\n    return type(event).__name__\n", py(json!({}))).await;
    let call = |ct: &'static str, body: &'static str| {
        s.http
            .post(format!("{}/v1/functions/typed/invoke", s.url))
            .bearer_auth(&s.token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = call("application/x-www-form-urlencoded", r#"{"k":1}"#).await.unwrap();
    assert_eq!(r.text().await.unwrap(), r#""dict""#, "a form-typed JSON body is still the event");
    let r = call("text/plain", "[1, 2]").await.unwrap();
    assert_eq!(r.text().await.unwrap(), r#""list""#);
    // No body is the empty event, as the CLI and the Lambda Invoke API send it.
    let r = call("application/json", "").await.unwrap();
    assert_eq!((r.status(), r.headers().get("x-hearth-function-error").is_none()), (StatusCode::OK, true));
    assert_eq!(r.text().await.unwrap(), r#""dict""#);
    let r = call("application/json", "k=1").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "InvalidRequestContent", "{body}");
    assert!(s.instances("typed").await.len() <= 1, "a refused event starts nothing");
}
