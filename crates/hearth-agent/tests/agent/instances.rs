//! Real instances: Python, Node and `provided` runtimes, init failures, timeouts, crashes, logs,
//! and the code cache.

use super::*;

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

/// A slot handed out just before the version is drained (a deploy while requests are on
/// their way) is still served: the invocation answers and the instance stays `Draining`.
/// Found by the soak: such requests failed with "cannot go from Draining to Busy".
#[tokio::test]
async fn a_draining_instance_serves_the_slots_already_handed_out() {
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("main.py"), PY_FUNCTION).unwrap();
    let rt = runtimes(dir.path());
    let cfg = config("python3", "main.handler");
    let inst = start_instance(&ProcessDriver::detect(), &rt, &spec(&code, cfg), Duration::from_secs(30)).await.unwrap();
    inst.transition(InstanceState::Draining).unwrap();
    let (v, err) = answered(inst.invoke(invocation("r-drain", r#"{"n":2}"#), Duration::from_secs(10)).await.unwrap());
    assert!(!err, "{v}");
    assert_eq!(v["echo"], json!({"n": 2}));
    assert_eq!(inst.state(), InstanceState::Draining, "still never handed new work");
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
    let report = err.report();
    assert_eq!(report.error_type, "Runtime.InvalidEntrypoint");
    assert_eq!(serde_json::from_slice::<Value>(&report.body).unwrap()["errorType"], "Runtime.InvalidEntrypoint");
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
            tokio::spawn(async move { cache.materialize(&digest, hearth_types::Runtime::Python3).await.unwrap() })
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
