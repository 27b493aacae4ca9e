//! The node agent against real processes: the Runtime API as runtimes see it, Python and
//! `provided` instances, and the code cache.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use hearth_agent::{
    CodeCache, InitOutcome, InstanceSpec, InstanceState, Invocation, InvokeResult, Outcome, ProcessDriver, RuntimeApi,
    Runtimes, StartFailure, epoch_ms, start_instance,
};
use hearth_types::{FunctionConfig, FunctionSpec};
use serde_json::{Value, json};

fn invocation(id: &str, payload: &str) -> Invocation {
    Invocation {
        request_id: id.into(),
        payload: Bytes::from(payload.to_owned()),
        content_type: None,
        deadline_ms: epoch_ms() + 3000,
        invoked_function_arn: "arn:aws:lambda:us-east-1:000000000000:function:t".into(),
        trace_id: Some("Root=1-abc".into()),
        client_context: None,
    }
}

async fn api() -> (RuntimeApi, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = RuntimeApi::serve(listener, 1).unwrap();
    let base = format!("http://{}/2018-06-01/runtime", api.address());
    (api, base)
}

#[tokio::test]
async fn runtime_api_follows_the_spec() {
    let (api, base) = api().await;
    let http = reqwest::Client::new();
    let api = std::sync::Arc::new(api);
    let invoker = {
        let api = api.clone();
        tokio::spawn(async move { api.invoke(invocation("req-1", r#"{"a":1}"#)).await.unwrap() })
    };
    let next = http.get(format!("{base}/invocation/next")).send().await.unwrap();
    assert_eq!(next.status(), 200);
    let h = next.headers().clone();
    assert_eq!(h["lambda-runtime-aws-request-id"], "req-1");
    assert!(h["lambda-runtime-deadline-ms"].to_str().unwrap().parse::<u64>().unwrap() > epoch_ms());
    assert_eq!(h["lambda-runtime-invoked-function-arn"], "arn:aws:lambda:us-east-1:000000000000:function:t");
    assert_eq!(h["lambda-runtime-trace-id"], "Root=1-abc");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(next.text().await.unwrap(), r#"{"a":1}"#);

    // A second /next while an invocation is outstanding is a state error.
    let again = http.get(format!("{base}/invocation/next")).send().await.unwrap();
    assert_eq!(again.status(), 403);
    assert_eq!(again.json::<Value>().await.unwrap()["errorType"], "InvalidStateTransition");
    let wrong = http.post(format!("{base}/invocation/other/response")).body("x").send().await.unwrap();
    assert_eq!(wrong.status(), 400);
    assert_eq!(wrong.json::<Value>().await.unwrap()["errorType"], "InvalidRequestID");
    let bad_mode = http
        .post(format!("{base}/invocation/req-1/response"))
        .header("lambda-runtime-function-response-mode", "telepathy")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_mode.status(), 400);

    let ok = http
        .post(format!("{base}/invocation/req-1/response"))
        .header("content-type", "application/json")
        .body(r#"{"ok":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
    assert_eq!(ok.text().await.unwrap(), r#"{"status":"OK"}"#);
    assert_eq!(
        invoker.await.unwrap(),
        Outcome::Response {
            body: Bytes::from_static(br#"{"ok":true}"#),
            content_type: Some("application/json".into())
        }
    );
    let twice = http.post(format!("{base}/invocation/req-1/response")).body("x").send().await.unwrap();
    assert_eq!(twice.status(), 403, "a second result for the same id is refused");

    // Errors pass through verbatim, error-cause documents lose their X-Ray part.
    for (ct, body, expected) in [
        (
            "application/json",
            r#"{"errorType":"TypeError","errorMessage":"boom","trace":["x"]}"#,
            json!({"errorType":"TypeError","errorMessage":"boom","trace":["x"]}),
        ),
        (
            "application/vnd.aws.lambda.error.cause+json",
            r#"{"errorType":"E","errorMessage":"m","stackTrace":[],"errorCause":{"paths":[]}}"#,
            json!({"errorType":"E","errorMessage":"m","stackTrace":[]}),
        ),
    ] {
        let api2 = api.clone();
        let waiter = tokio::spawn(async move { api2.invoke(invocation("req-e", "{}")).await.unwrap() });
        http.get(format!("{base}/invocation/next")).send().await.unwrap();
        let r = http
            .post(format!("{base}/invocation/req-e/error"))
            .header("content-type", ct)
            .header("lambda-runtime-function-error-type", "Function.Custom")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let Outcome::FunctionError { body, error_type } = waiter.await.unwrap() else { panic!("expected an error") };
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), expected);
        if ct == "application/json" {
            assert_eq!(&body[..], br#"{"errorType":"TypeError","errorMessage":"boom","trace":["x"]}"#, "verbatim");
        }
        assert_eq!(error_type.as_deref(), Some("Function.Custom"));
    }

    // Over 6 MiB + 100 B: 413 to the runtime, ResponseTooLarge to the caller.
    let api3 = api.clone();
    let waiter = tokio::spawn(async move { api3.invoke(invocation("req-big", "{}")).await.unwrap() });
    http.get(format!("{base}/invocation/next")).send().await.unwrap();
    let big = vec![b'x'; hearth_agent::MAX_PAYLOAD_BYTES + 1];
    let r = http.post(format!("{base}/invocation/req-big/response")).body(big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["errorType"], "RequestEntityTooLarge");
    assert_eq!(waiter.await.unwrap(), Outcome::ResponseTooLarge);
    // Init already completed (first /next): a late init error is a state error.
    let late = http.post(format!("{base}/init/error")).body("{}").send().await.unwrap();
    assert_eq!(late.status(), 403);
}

#[tokio::test]
async fn init_error_is_reported_once() {
    let (api, base) = api().await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/init/error"))
        .header("lambda-runtime-function-error-type", "Runtime.ImportModuleError")
        .body(r#"{"errorMessage":"no module","errorType":"Runtime.ImportModuleError"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let InitOutcome::Failed { body, error_type } = api.init().await.unwrap() else { panic!("expected failure") };
    assert_eq!(error_type.as_deref(), Some("Runtime.ImportModuleError"));
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["errorMessage"], "no module");
}

// ---- real instances ----

fn config(runtime: &str, handler: &str) -> FunctionConfig {
    FunctionSpec { runtime: runtime.into(), handler: Some(handler.into()), memory_mb: Some(256), ..Default::default() }
        .validate()
        .unwrap()
}

fn spec(code: &Path, cfg: FunctionConfig) -> InstanceSpec {
    InstanceSpec {
        instance_id: format!("i{}", uuid_like()),
        function: "probe".parse().unwrap(),
        version: 3,
        config: cfg,
        code_dir: code.to_path_buf(),
        region: "us-east-1".into(),
    }
}

const PY_FUNCTION: &str = r#"
import os, time

def handler(event, context):
    if event.get("fail"):
        raise ValueError("boom: " + event["fail"])
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("exit"):
        os._exit(event["exit"])
    print("handling", context.aws_request_id)
    return {
        "echo": event,
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "log_group": context.log_group_name,
        "remaining": context.get_remaining_time_in_millis(),
        "env": {k: os.environ.get(k) for k in ["AWS_LAMBDA_RUNTIME_API", "_HANDLER", "LAMBDA_TASK_ROOT",
            "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_REGION", "AWS_LAMBDA_INITIALIZATION_TYPE",
            "GREETING", "CARGO_MANIFEST_DIR"]},
    }
"#;

fn runtimes(dir: &Path) -> Runtimes {
    Runtimes::install(&dir.join("runtimes")).unwrap()
}

fn answered(r: InvokeResult) -> (Value, bool) {
    match r {
        InvokeResult::Answered(Outcome::Response { body, .. }) => (serde_json::from_slice(&body).unwrap(), false),
        InvokeResult::Answered(Outcome::FunctionError { body, .. }) => (serde_json::from_slice(&body).unwrap(), true),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn python_instance_serves_events_with_a_lambda_context() {
    // cargo sets CARGO_MANIFEST_DIR for this process: the function must not see it.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some(), "precondition: the platform has the variable");
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("main.py"), PY_FUNCTION).unwrap();
    let mut cfg = config("python3", "main.handler");
    cfg.environment.insert("GREETING".into(), "hi".into());
    let rt = runtimes(dir.path());
    let inst = start_instance(&ProcessDriver::detect(), &rt, &spec(&code, cfg), Duration::from_secs(30)).await.unwrap();
    assert_eq!(inst.state(), InstanceState::Ready);

    let (v, err) = answered(inst.invoke(invocation("r-1", r#"{"n":1}"#), Duration::from_secs(10)).await.unwrap());
    assert!(!err, "{v}");
    assert_eq!(v["echo"], json!({"n": 1}));
    assert_eq!((v["request_id"].as_str(), v["function_name"].as_str()), (Some("r-1"), Some("probe")));
    assert_eq!((v["function_version"].as_str(), v["memory"].as_str()), (Some("3"), Some("256")));
    assert_eq!(v["log_group"], "/aws/lambda/probe");
    let remaining = v["remaining"].as_u64().unwrap();
    assert!(remaining > 0 && remaining <= 3000, "{remaining}");
    let env = &v["env"];
    for key in ["AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "AWS_LAMBDA_LOG_STREAM_NAME"] {
        assert!(env[key].as_str().is_some_and(|s| !s.is_empty()), "{key} set");
    }
    assert!(!env["AWS_LAMBDA_RUNTIME_API"].as_str().unwrap().contains("http"), "host:port, no scheme");
    assert_eq!((env["_HANDLER"].as_str(), env["AWS_REGION"].as_str()), (Some("main.handler"), Some("us-east-1")));
    assert_eq!(
        (env["GREETING"].as_str(), env["AWS_LAMBDA_INITIALIZATION_TYPE"].as_str()),
        (Some("hi"), Some("on-demand"))
    );
    assert!(env["CARGO_MANIFEST_DIR"].is_null(), "the platform's environment is not inherited");

    // The same (warm) instance serves the next event; a handler exception is a function error.
    let (v, err) = answered(inst.invoke(invocation("r-2", r#"{"fail":"x"}"#), Duration::from_secs(10)).await.unwrap());
    assert!(err);
    assert_eq!((v["errorType"].as_str(), v["errorMessage"].as_str()), (Some("ValueError"), Some("boom: x")));
    assert!(v["stackTrace"].as_array().is_some_and(|s| !s.is_empty()));
    assert_eq!(inst.state(), InstanceState::Ready);
    assert_eq!(inst.requests_served(), 2);
}

#[tokio::test]
async fn timeout_and_crash_end_the_instance_with_platform_errors() {
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("main.py"), PY_FUNCTION).unwrap();
    let rt = runtimes(dir.path());
    let s = spec(&code, config("python3", "main.handler"));
    let inst = start_instance(&ProcessDriver::detect(), &rt, &s, Duration::from_secs(30)).await.unwrap();
    let r = inst.invoke(invocation("slow", r#"{"sleep":30}"#), Duration::from_millis(500)).await.unwrap();
    let InvokeResult::Failed(e) = r else { panic!("expected a timeout, got {r:?}") };
    assert_eq!(e.error_type, "Sandbox.Timedout");
    assert!(e.message.contains("Task timed out after 0.50 seconds"), "{}", e.message);
    assert_eq!(inst.state(), InstanceState::Failed);

    let s = spec(&code, config("python3", "main.handler"));
    let inst = start_instance(&ProcessDriver::detect(), &rt, &s, Duration::from_secs(30)).await.unwrap();
    let r = inst.invoke(invocation("crash", r#"{"exit":3}"#), Duration::from_secs(10)).await.unwrap();
    let InvokeResult::Failed(e) = r else { panic!("expected an exit error, got {r:?}") };
    assert_eq!(e.error_type, "Runtime.ExitError");
    assert!(e.message.contains("exit status 3"), "{}", e.message);
    assert_eq!(inst.state(), InstanceState::Failed);
}

#[tokio::test]
async fn init_failures_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("main.py"), PY_FUNCTION).unwrap();
    std::fs::write(code.join("broken.py"), "def handler(:\n").unwrap();
    let rt = runtimes(dir.path());
    for (handler, error_type) in [
        ("nosuchmod.handler", "Runtime.ImportModuleError"),
        ("broken.handler", "Runtime.UserCodeSyntaxError"),
        ("main.nosuchfn", "Runtime.HandlerNotFound"),
    ] {
        let err = start_instance(
            &ProcessDriver::detect(),
            &rt,
            &spec(&code, config("python3", handler)),
            Duration::from_secs(30),
        )
        .await
        .err()
        .expect("init must fail");
        let StartFailure::Init { body, error_type: header } = &err else { panic!("{handler}: {err}") };
        assert_eq!(header.as_deref(), Some(error_type), "{handler}");
        let doc: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(doc["errorType"], error_type, "{handler}: {doc}");
    }
    let err =
        start_instance(&ProcessDriver::detect(), &rt, &spec(&code, config("provided", "x")), Duration::from_secs(5))
            .await
            .err()
            .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&err.error_body()).unwrap()["errorType"], "Runtime.InvalidEntrypoint");
}

#[tokio::test]
async fn provided_shell_bootstrap_speaks_the_runtime_api() {
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    // The AWS tutorial's custom runtime, in sh + curl.
    let bootstrap = r#"#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  HEADERS="$(mktemp)"
  EVENT=$(curl -sS -LD "$HEADERS" "$API/invocation/next")
  ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  curl -sS -X POST "$API/invocation/$ID/response" -d "{\"shell\":true,\"event\":$EVENT}" > /dev/null
done
"#;
    std::fs::write(code.join("bootstrap"), bootstrap).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(code.join("bootstrap"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let rt = runtimes(dir.path());
    let inst = start_instance(
        &ProcessDriver::detect(),
        &rt,
        &spec(&code, config("provided", "handler")),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    for i in 0..3 {
        let (v, err) = answered(
            inst.invoke(invocation(&format!("sh-{i}"), &format!(r#"{{"i":{i}}}"#)), Duration::from_secs(10))
                .await
                .unwrap(),
        );
        assert!(!err);
        assert_eq!(v, json!({"shell": true, "event": {"i": i}}));
    }
}

#[tokio::test]
async fn code_cache_unpacks_once_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = hearth_blob::CodeStore::local(&dir.path().join("store"), hearth_blob::PackageLimits::DEFAULT).unwrap();
    let code = store.put(Bytes::from(hearth_blob::fixtures::hello_python())).await.unwrap();
    let cache = std::sync::Arc::new(CodeCache::new(dir.path().join("cache"), store));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (cache, digest) = (cache.clone(), code.sha256.clone());
            tokio::spawn(async move { cache.materialize(&digest).await.unwrap() })
        })
        .collect();
    let mut dirs = vec![];
    for t in tasks {
        dirs.push(t.await.unwrap());
    }
    assert!(dirs.windows(2).all(|w| w[0] == w[1]), "one folder per digest");
    assert!(std::fs::read_to_string(dirs[0].join("main.py")).unwrap().contains("Hello FaaS"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dirs[0].join("main.py")).unwrap().permissions().mode();
    assert_eq!(mode & 0o222, 0, "read-only");
    let leftovers = std::fs::read_dir(dir.path().join("cache")).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary folders left");
}

#[tokio::test]
async fn node_instances_load_commonjs_and_esm_handlers() {
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("index.js"),
        r#"
exports.handler = async (event, context) => {
  if (event.fail) throw new TypeError("bad: " + event.fail);
  console.log("handling", context.awsRequestId);
  return { style: "cjs-async", echo: event, id: context.awsRequestId, fn: context.functionName,
           mem: context.memoryLimitInMB, remaining: context.getRemainingTimeInMillis() };
};
exports.callback = (event, context, callback) => {
  setTimeout(() => callback(null, { style: "cjs-callback", echo: event }), 5);
};
exports.cbError = (event, context, callback) => callback(new RangeError("via callback"));
"#,
    )
    .unwrap();
    std::fs::write(code.join("app.mjs"), "export const handler = async (event) => ({ style: 'esm', echo: event });\n")
        .unwrap();
    std::fs::write(code.join("broken.js"), "exports.handler = async (e) => {\n").unwrap();
    let rt = runtimes(dir.path());
    let run = |handler: &'static str| {
        let (rt, code) = (rt.clone(), code.clone());
        async move {
            let inst = start_instance(
                &ProcessDriver::detect(),
                &rt,
                &spec(&code, config("nodejs", handler)),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
            let a = answered(inst.invoke(invocation("n-1", r#"{"k":1}"#), Duration::from_secs(10)).await.unwrap());
            let b = answered(inst.invoke(invocation("n-2", r#"{"fail":"x"}"#), Duration::from_secs(10)).await.unwrap());
            (a, b)
        }
    };
    let ((v, err), (e, failed)) = run("index.handler").await;
    assert!(!err, "{v}");
    assert_eq!(
        (v["style"].as_str(), v["id"].as_str(), v["fn"].as_str(), v["mem"].as_str()),
        (Some("cjs-async"), Some("n-1"), Some("probe"), Some("256"))
    );
    assert!(v["remaining"].as_u64().is_some_and(|r| r > 0 && r <= 3000));
    assert!(failed);
    assert_eq!((e["errorType"].as_str(), e["errorMessage"].as_str()), (Some("TypeError"), Some("bad: x")));
    assert!(e["trace"].as_array().is_some_and(|t| !t.is_empty()));

    let ((v, _), _) = run("index.callback").await;
    assert_eq!((v["style"].as_str(), &v["echo"]), (Some("cjs-callback"), &json!({"k": 1})));
    let ((e, failed), _) = run("index.cbError").await;
    assert!(failed);
    assert_eq!(e["errorType"], "RangeError");
    let ((v, _), _) = run("app.handler").await;
    assert_eq!(v["style"], "esm");

    for (handler, error_type) in [
        ("missing.handler", "Runtime.ImportModuleError"),
        ("index.nothere", "Runtime.HandlerNotFound"),
        ("broken.handler", "Runtime.UserCodeSyntaxError"),
    ] {
        let err = start_instance(
            &ProcessDriver::detect(),
            &rt,
            &spec(&code, config("nodejs", handler)),
            Duration::from_secs(30),
        )
        .await
        .err()
        .expect("init must fail");
        let StartFailure::Init { body, .. } = &err else { panic!("{handler}: {err}") };
        assert_eq!(serde_json::from_slice::<Value>(body).unwrap()["errorType"], error_type, "{handler}");
    }
}

#[tokio::test]
async fn output_lines_are_attributed_to_the_request_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("main.py"), PY_FUNCTION).unwrap();
    let rt = runtimes(dir.path());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<hearth_agent::LogEvent>::new()));
    let sink: hearth_agent::LogSink = {
        let seen = seen.clone();
        std::sync::Arc::new(move |e| seen.lock().unwrap().push(e))
    };
    let s = spec(&code, config("python3", "main.handler"));
    let inst =
        hearth_agent::start_instance_logged(&ProcessDriver::detect(), &rt, &s, Duration::from_secs(30), Some(sink))
            .await
            .unwrap();
    for id in ["req-a", "req-b"] {
        inst.invoke(invocation(id, "{}"), Duration::from_secs(10)).await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let lines = seen.lock().unwrap().clone();
        let of = |id: &str| {
            lines
                .iter()
                .filter(|e| e.line == format!("handling {id}"))
                .map(|e| e.request_id.clone())
                .collect::<Vec<_>>()
        };
        if !of("req-a").is_empty() && !of("req-b").is_empty() {
            assert_eq!(of("req-a"), [Some("req-a".to_owned())]);
            assert_eq!(of("req-b"), [Some("req-b".to_owned())]);
            assert!(lines.iter().all(|e| e.stream == hearth_types::LogStream::Stdout));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "lines never arrived: {lines:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn runtime_api_serves_as_many_invocations_as_it_has_slots() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = std::sync::Arc::new(RuntimeApi::serve(listener, 2).unwrap());
    let base = format!("http://{}/2018-06-01/runtime", api.address());
    let http = reqwest::Client::new();
    let waiters: Vec<_> = ["c-1", "c-2"]
        .into_iter()
        .map(|id| {
            let api = api.clone();
            tokio::spawn(async move { api.invoke(invocation(id, "{}")).await.unwrap() })
        })
        .collect();
    let mut ids = vec![];
    for _ in 0..2 {
        let r = http.get(format!("{base}/invocation/next")).send().await.unwrap();
        ids.push(r.headers()["lambda-runtime-aws-request-id"].to_str().unwrap().to_owned());
    }
    ids.sort();
    assert_eq!(ids, ["c-1", "c-2"]);
    let third = http.get(format!("{base}/invocation/next")).send().await.unwrap();
    assert_eq!(third.status(), 403, "no more than the slots outstanding");
    // Answer out of order: each caller gets its own answer.
    for id in ["c-2", "c-1"] {
        let r = http.post(format!("{base}/invocation/{id}/response")).body(format!("\"{id}\"")).send().await.unwrap();
        assert_eq!(r.status(), 202);
    }
    for (w, id) in waiters.into_iter().zip(["c-1", "c-2"]) {
        let Outcome::Response { body, .. } = w.await.unwrap() else { panic!("expected a response") };
        assert_eq!(body, Bytes::from(format!("\"{id}\"")));
    }
}

#[tokio::test]
async fn code_is_mounted_read_only_at_var_task() {
    let driver = ProcessDriver::detect();
    let root = nix_is_root();
    assert_eq!(driver.mounts_task_root(), root, "as root the driver mounts /var/task");
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    let probe = r#"
import os

def handler(event, context):
    try:
        open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "written"), "w").write("x")
        write = "allowed"
    except OSError as e:
        write = e.strerror
    return {"cwd": os.getcwd(), "root": os.environ["LAMBDA_TASK_ROOT"],
            "files": sorted(os.listdir(os.environ["LAMBDA_TASK_ROOT"])), "write": write}
"#;
    std::fs::write(code.join("main.py"), probe).unwrap();
    // The cache keeps code read-only; do the same here.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(code.join("main.py"), std::fs::Permissions::from_mode(0o444)).unwrap();
    let rt = runtimes(dir.path());
    let inst = start_instance(&driver, &rt, &spec(&code, config("python3", "main.handler")), Duration::from_secs(30))
        .await
        .unwrap();
    let (v, err) = answered(inst.invoke(invocation("m-1", "{}"), Duration::from_secs(10)).await.unwrap());
    assert!(!err, "{v}");
    assert_eq!(v["files"], json!(["main.py"]));
    assert_ne!(v["write"], "allowed", "the code is read-only");
    if root {
        assert_eq!((v["root"].as_str(), v["cwd"].as_str()), (Some("/var/task"), Some("/var/task")));
        assert_eq!(v["write"], "Read-only file system");
        let host_view: Vec<_> =
            std::fs::read_dir("/var/task").map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
        assert!(!host_view.iter().any(|f| f == "main.py"), "the mount is private to the instance");
    } else {
        assert_eq!(v["root"].as_str(), code.to_str());
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap()
}

#[tokio::test]
async fn streamed_http_responses_and_error_trailers_are_understood() {
    let (api, base) = api().await;
    let api = std::sync::Arc::new(api);
    let http = reqwest::Client::new();
    // A streamed HTTP response: JSON prelude, 8 NUL bytes, body (as Node's HttpResponseStream sends).
    let a = api.clone();
    let waiter = tokio::spawn(async move { a.invoke(invocation("s-1", "{}")).await.unwrap() });
    http.get(format!("{base}/invocation/next")).send().await.unwrap();
    let mut body = br#"{"statusCode":201,"headers":{"x-a":"b"},"cookies":["c=d"]}"#.to_vec();
    body.extend_from_slice(&[0; 8]);
    body.extend_from_slice(b"streamed body");
    let r = http
        .post(format!("{base}/invocation/s-1/response"))
        .header("lambda-runtime-function-response-mode", "streaming")
        .header("content-type", "application/vnd.awslambda.http-integration-response")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let Outcome::Response { body, .. } = waiter.await.unwrap() else { panic!("expected a response") };
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (v["statusCode"].as_u64(), v["headers"]["x-a"].as_str(), v["cookies"][0].as_str()),
        (Some(201), Some("b"), Some("c=d"))
    );
    assert_eq!((v["body"].as_str(), v["isBase64Encoded"].as_bool()), (Some("c3RyZWFtZWQgYm9keQ=="), Some(true)));

    // A stream that fails midway reports the error in HTTP trailers (base64 error document).
    let a = api.clone();
    let waiter = tokio::spawn(async move { a.invoke(invocation("s-2", "{}")).await.unwrap() });
    http.get(format!("{base}/invocation/next")).send().await.unwrap();
    let doc = r#"{"errorType":"Error","errorMessage":"mid-stream failure"}"#;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(doc);
    let raw = format!(
        "POST /2018-06-01/runtime/invocation/s-2/response HTTP/1.1\r\nHost: runtime\r\n\
         Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n\
         Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n\
         5\r\npart1\r\n0\r\nLambda-Runtime-Function-Error-Type: Error\r\n\
         Lambda-Runtime-Function-Error-Body: {b64}\r\n\r\n"
    );
    let mut conn = tokio::net::TcpStream::connect(api.address()).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(raw.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 202");
    let Outcome::FunctionError { body, error_type } = waiter.await.unwrap() else {
        panic!("expected the trailer's error")
    };
    assert_eq!((error_type.as_deref(), &body[..]), (Some("Error"), doc.as_bytes()));
}

const LIMITS_PROBE: &str = r#"
import os, time

def handler(event, context):
    if event.get("bomb"):
        hog = []
        while True:
            hog.append(bytearray(8 << 20))
    if event.get("spin"):
        end = time.time() + event["spin"]
        while time.time() < end:
            pass
        return {"cpu_seconds": time.process_time()}
    if event.get("forks"):
        n = 0
        try:
            while n < 5000:
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                n += 1
        except OSError:
            pass
        return {"forked": n}
    return {"ok": True}
"#;

/// Destructive tests check from the host, before anything runs, that the instance's
/// processes sit in a group with the expected limit.
fn assert_limited(cg: &hearth_agent::Cgroups, instance_id: &str, controller: &str, file: &str, expected: &str) {
    let dir = match cg.version() {
        hearth_agent::CgroupVersion::V1 => {
            format!("/sys/fs/cgroup/{controller}/hearth/{}-{instance_id}", std::process::id())
        }
        hearth_agent::CgroupVersion::V2 => format!("/sys/fs/cgroup/hearth/{}-{instance_id}", std::process::id()),
    };
    let limit = std::fs::read_to_string(format!("{dir}/{file}")).expect("the instance's cgroup exists");
    assert_eq!(limit.trim(), expected, "{dir}/{file}");
    let procs = std::fs::read_to_string(format!("{dir}/cgroup.procs")).unwrap();
    assert!(!procs.trim().is_empty(), "the instance's processes are in {dir}");
}

#[tokio::test]
async fn cgroups_limit_memory_and_processes() {
    let driver = ProcessDriver::detect();
    if !nix_is_root() {
        assert!(driver.cgroups().is_none(), "without root there are no cgroups to manage");
        return;
    }
    let cg = driver.cgroups().expect("as root, cgroups (v1 or v2) are managed").clone();
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("main.py"), LIMITS_PROBE).unwrap();
    let rt = runtimes(dir.path());
    let spec_for = |memory_mb: u32| {
        let mut cfg = config("python3", "main.handler");
        cfg.memory_mb = memory_mb;
        InstanceSpec { instance_id: format!("t{}", uuid_like()), ..spec(&code, cfg) }
    };

    // The sandbox is in place before anything destructive runs.
    let s = spec_for(128);
    let inst = start_instance(&driver, &rt, &s, Duration::from_secs(30)).await.unwrap();
    let v1 = cg.version() == hearth_agent::CgroupVersion::V1;
    let memory_file = if v1 { "memory.limit_in_bytes" } else { "memory.max" };
    assert_limited(&cg, &s.instance_id, "memory", memory_file, &(128u64 << 20).to_string());
    assert_limited(&cg, &s.instance_id, "pids", "pids.max", &hearth_agent::PIDS_MAX.to_string());
    let (v, _) = answered(inst.invoke(invocation("p-1", "{}"), Duration::from_secs(10)).await.unwrap());
    assert_eq!(v["ok"], true);
    // CPU: a quota proportional to memory (128 MB ≈ 7% of a CPU), applied after init.
    let quota = hearth_agent::cpu_quota_us(128).to_string();
    if v1 {
        assert_limited(&cg, &s.instance_id, "cpu", "cpu.cfs_quota_us", &quota);
    } else {
        assert_limited(&cg, &s.instance_id, "cpu", "cpu.max", &format!("{quota} 100000"));
    }
    let (v, _) = answered(inst.invoke(invocation("p-spin", r#"{"spin":1}"#), Duration::from_secs(10)).await.unwrap());
    let cpu = v["cpu_seconds"].as_f64().unwrap();
    assert!(cpu < 0.5, "a 1 s spin at 128 MB gets only its CPU share, not a whole CPU: {cpu} s");
    assert!(inst.max_memory_used_mb().is_some_and(|mb| mb > 0 && mb <= 128), "peak memory is measured");

    // Memory bomb: killed by the kernel, reported as Runtime.OutOfMemory.
    let r = inst.invoke(invocation("p-2", r#"{"bomb":1}"#), Duration::from_secs(30)).await.unwrap();
    let InvokeResult::Failed(e) = r else { panic!("expected an OOM kill, got {r:?}") };
    assert_eq!(e.error_type, "Runtime.OutOfMemory", "{}", e.message);
    drop(inst);

    // Fork bomb (with memory to spare, so the pids limit is what stops it); the instance
    // still answers afterwards.
    let forker = spec_for(2048);
    let inst = start_instance(&driver, &rt, &forker, Duration::from_secs(30)).await.unwrap();
    assert_limited(&cg, &forker.instance_id, "pids", "pids.max", &hearth_agent::PIDS_MAX.to_string());
    let (v, err) = answered(inst.invoke(invocation("p-3", r#"{"forks":1}"#), Duration::from_secs(30)).await.unwrap());
    assert!(!err, "{v}");
    let forked = v["forked"].as_u64().unwrap();
    assert!(forked > 0 && forked < hearth_agent::PIDS_MAX, "forks stop at the pids limit: {forked}");
    let (v, err) = answered(inst.invoke(invocation("p-4", "{}"), Duration::from_secs(10)).await.unwrap());
    assert!(!err && v["ok"] == true);
    drop(inst);

    // Stopped instances leave no cgroup behind; leftovers of dead servers are swept.
    let base = match cg.version() {
        hearth_agent::CgroupVersion::V1 => std::path::PathBuf::from("/sys/fs/cgroup/memory/hearth"),
        hearth_agent::CgroupVersion::V2 => std::path::PathBuf::from("/sys/fs/cgroup/hearth"),
    };
    let ours = |id: &str| base.join(format!("{}-{id}", std::process::id()));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ours(&s.instance_id).exists() || ours(&forker.instance_id).exists() {
        assert!(std::time::Instant::now() < deadline, "an instance's cgroup was not removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stale = base.join("4000000-stale");
    std::fs::create_dir(&stale).unwrap();
    assert!(cg.sweep_leftovers() >= 1);
    assert!(!stale.exists(), "a dead server's group is swept");
}

/// A name unique within this test process.
fn uuid_like() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{}x{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

const HOSTILE: &str = r#"
import ctypes, os

libc = ctypes.CDLL(None, use_errno=True)

def attempt(fn, *args):
    ctypes.set_errno(0)
    rc = fn(*args)
    return "allowed" if rc == 0 else os.strerror(ctypes.get_errno())

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()

def try_open(path, mode):
    try:
        open(path, mode).close()
        return "allowed"
    except OSError as e:
        return e.strerror

def connect(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return "allowed"
    except OSError as e:
        return e.strerror or str(e)

def open_many(n):
    held = []
    try:
        for _ in range(n):
            held.append(open("/dev/null"))
        return "allowed"
    except OSError as e:
        return f"{len(held)}: {e.strerror}"
    finally:
        for f in held:
            f.close()

def handler(event, context):
    if event.get("fill_tmp"):
        written = 0
        chunk = b"x" * (1 << 20)
        try:
            with open("/tmp/fill", "wb") as f:
                while written < (2 << 30):
                    f.write(chunk)
                    f.flush()
                    written += len(chunk)
            return {"fill": "allowed", "mb": written >> 20}
        except OSError as e:
            return {"fill": e.strerror, "mb": written >> 20}
        finally:
            try:
                os.remove("/tmp/fill")
            except OSError:
                pass
    return {
        "pid": os.getpid(),
        "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "interfaces": sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]),
        "hostname": os.uname().nodename,
        "host_listener": connect(event["host_port"]),
        "runtime_api": os.environ["AWS_LAMBDA_RUNTIME_API"],
        "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
        "cap_eff": status("CapEff"), "cap_bnd": status("CapBnd"),
        "no_new_privs": status("NoNewPrivs"), "seccomp": status("Seccomp"),
        "mount": attempt(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None),
        "unshare_user": attempt(libc.unshare, 0x10000000),
        "unshare_net": attempt(libc.unshare, 0x40000000),
        "ptrace": attempt(libc.ptrace, 0, 0, None, None),
        "chroot": attempt(libc.chroot, b"/tmp"),
        "setuid_root": attempt(libc.setuid, 0),
        "shadow": try_open("/etc/shadow", "r"),
        "write_etc": try_open("/etc/hearth-was-here", "w"),
        "write_task": try_open(os.environ["LAMBDA_TASK_ROOT"] + "/x", "w"),
        "host_home": os.path.exists("/root") or os.path.exists("/home") or os.path.exists("/work"),
        "init_module": attempt(libc.init_module, None, 0, b""),
        "finit_module": attempt(libc.syscall, 313, 0, b"", 0),
        "pid1_environ": open("/proc/1/environ").read().count("CARGO_MANIFEST_DIR"),
        "open_files": open_many(10_000),
        "tmp": try_open("/tmp/scratch", "w"),
    }
"#;

#[tokio::test]
async fn instances_run_unprivileged_under_seccomp() {
    let driver = ProcessDriver::detect();
    if !nix_is_root() {
        assert!(!driver.drops_privileges(), "without root there is nothing to drop");
        return;
    }
    assert!(driver.drops_privileges(), "as root, instances drop privileges");
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("main.py"), HOSTILE).unwrap();
    let rt = runtimes(dir.path());
    let inst = start_instance(&driver, &rt, &spec(&code, config("python3", "main.handler")), Duration::from_secs(30))
        .await
        .unwrap();
    // A listener on this machine's loopback: the instance must not reach it.
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let event = json!({"host_port": host.local_addr().unwrap().port()}).to_string();
    let (v, err) = answered(inst.invoke(invocation("h-1", &event), Duration::from_secs(10)).await.unwrap());
    assert!(!err, "{v}");
    assert_eq!(v["pid"], 1, "the runtime is PID 1 of its own pid namespace");
    assert!(v["processes"].as_array().unwrap().len() <= 2, "no host processes visible: {}", v["processes"]);
    assert_eq!(v["interfaces"], json!(["lo"]), "only its own loopback");
    assert_eq!(v["hostname"], "hearth");
    assert_eq!(v["host_listener"], "Connection refused", "no way out to the host's loopback");
    let api = v["runtime_api"].as_str().unwrap().to_owned();
    let from_host = reqwest::get(format!("http://{api}/2018-06-01/ping")).await;
    assert!(
        from_host.is_err() || from_host.unwrap().text().await.unwrap() != "pong",
        "the Runtime API is unreachable from the host"
    );
    let uid = v["uid"].as_u64().unwrap();
    assert!(uid >= u64::from(hearth_agent::UID_BASE), "an unprivileged uid of its own: {v}");
    assert_eq!((v["euid"].as_u64(), v["gid"].as_u64()), (Some(uid), Some(uid)));
    assert_eq!(v["cap_eff"], "0000000000000000", "no capabilities");
    assert_eq!(v["cap_bnd"], "0000000000000000", "empty bounding set");
    assert_eq!(
        (v["no_new_privs"].as_str(), v["seccomp"].as_str()),
        (Some("1"), Some("2")),
        "no_new_privs and a seccomp filter"
    );
    for call in ["mount", "unshare_user", "unshare_net", "ptrace", "chroot", "setuid_root"] {
        assert_eq!(v[call], "Operation not permitted", "{call}: {v}");
    }
    assert_eq!(v["shadow"], "No such file or directory", "the host's /etc is out of view");
    assert_eq!(v["write_etc"], "Read-only file system");
    assert_eq!(v["host_home"], false, "the host's /root and /home are out of view");
    assert_eq!(v["tmp"], "allowed", "/tmp is writable");
    assert_eq!(
        (v["init_module"].as_str(), v["finit_module"].as_str()),
        (Some("Operation not permitted"), Some("Operation not permitted"))
    );
    assert_eq!(v["pid1_environ"], 0, "/proc/1 is the instance itself, not the host's init");
    let files = v["open_files"].as_str().unwrap();
    assert!(files.ends_with("Too many open files"), "10,000 open files stop at the limit: {files}");
    assert_ne!(v["write_task"], "allowed");
    assert!(!std::path::Path::new("/etc/hearth-was-here").exists());
    // Filling /tmp stops at its cap (memory to spare: tmpfs pages count against the memory
    // limit, so the cap must be what stops it).
    let mut big = config("python3", "main.handler");
    big.memory_mb = 1024;
    let filler = start_instance(&driver, &rt, &spec(&code, big), Duration::from_secs(30)).await.unwrap();
    let (f, err) =
        answered(filler.invoke(invocation("h-fill", r#"{"fill_tmp":1}"#), Duration::from_secs(60)).await.unwrap());
    assert!(!err, "{f}");
    assert_eq!(f["fill"], "No space left on device", "{f}");
    let mb = f["mb"].as_u64().unwrap();
    assert!((400..=512).contains(&mb), "/tmp is capped at 512 MB: {mb}");
    drop(filler);
    // The instance still serves after the attempts.
    let (again, err) = answered(inst.invoke(invocation("h-2", &event), Duration::from_secs(10)).await.unwrap());
    assert!(!err && again["uid"] == v["uid"]);
}

#[tokio::test]
async fn a_hostile_shell_function_is_contained_too() {
    let driver = ProcessDriver::detect();
    if !nix_is_root() {
        return; // Without root there is no sandbox; the unprivileged test above checks that.
    }
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    // A `provided` runtime in sh: it tries its attacks with ordinary tools, then reports.
    let bootstrap = r#"#!/bin/sh
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
r() { if "$@" >/dev/null 2>&1; then echo allowed; else echo refused; fi; }
while true; do
  H=$(mktemp)
  curl -sS -o /dev/null -D "$H" "$API/invocation/next"
  ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$H" | tr -d '[:space:]' | cut -d: -f2)
  # Destructive: only as PID 1 of its own pid namespace and not root.
  if [ "$$" = 1 ] && [ "$(id -u)" != 0 ]; then KILL=$(r kill -9 -1); else KILL=skipped; fi
  REPORT="{\"kill_all\":\"$KILL\",\"shadow\":\"$(r cat /etc/shadow)\",\"mount\":\"$(r mount -t tmpfs none /tmp)\",\
\"remount\":\"$(r mount -o remount,rw /)\",\"write_task\":\"$(r touch /var/task/x)\",\
\"write_usr\":\"$(r touch /usr/x)\",\"root_home\":\"$(r ls /root)\",\
\"procs\":$(ls /proc | grep -c '^[0-9]'),\"uid\":$(id -u)}"
  curl -sS -o /dev/null -X POST "$API/invocation/$ID/response" -d "$REPORT"
done
"#;
    std::fs::write(code.join("bootstrap"), bootstrap).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(code.join("bootstrap"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let rt = runtimes(dir.path());
    let inst =
        start_instance(&driver, &rt, &spec(&code, config("provided", "x")), Duration::from_secs(30)).await.unwrap();
    let (v, err) = answered(inst.invoke(invocation("sh-1", "{}"), Duration::from_secs(20)).await.unwrap());
    assert!(!err, "{v}");
    for attack in ["shadow", "mount", "remount", "write_task", "write_usr", "root_home"] {
        assert_eq!(v[attack], "refused", "{attack}: {v}");
    }
    assert!(v["uid"].as_u64().unwrap() >= u64::from(hearth_agent::UID_BASE));
    assert!(v["procs"].as_u64().unwrap() <= 8, "only its own processes are visible: {v}");
    // `kill -9 -1` ran (the sandbox was verified first) and reached only the instance's own
    // processes: this test process, its parent and the server are still here.
    assert_ne!(v["kill_all"], "skipped", "the sandbox was in place, so the attack ran: {v}");
}
