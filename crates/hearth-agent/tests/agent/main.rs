//! The node agent against real processes: the Runtime API as runtimes see it, Python, Node
//! and `provided` instances, the code cache, and the sandbox. One test binary; the tests are
//! grouped by concept in the modules below.

mod guard;
mod instances;
mod runtime_api;
mod sandbox;
mod seccomp;

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

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap()
}

use hearth_agent::test_support::require_root;

/// A name unique within this test process.
fn uuid_like() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{}x{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}
