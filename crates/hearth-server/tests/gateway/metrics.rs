//! `GET /metrics` over a real workload: the text passes `promtool check metrics` (Debian's
//! `prometheus` package), the counters match the invocations made, the cold-start histogram
//! counts the cold starts the records show, levels (instances, queues, memory) are there, a
//! token with the read scope is needed, and a deleted function's series go.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use super::{Server, py, start_events, start_with};

const HANDLER: &str =
    "def handler(event, context):\n    if event.get('fail'):\n        raise ValueError('no')\n    return 'ok'\n";

impl Server {
    async fn metrics(&self) -> String {
        let r = self.http.get(format!("{}/metrics", self.url)).bearer_auth(&self.token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        r.text().await.unwrap()
    }
}

/// `promtool check metrics` on `text`: its complaints, if any.
pub fn promtool(text: &str) -> Result<(), String> {
    let bin = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| panic!("promtool is not installed: run scripts/test-deps.sh (as root) first"));
    let mut child = Command::new(bin)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    match out.status.success() {
        true => Ok(()),
        false => Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))),
    }
}

/// The value of the sample `series` (name and labels exactly as rendered), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The sum of every sample of `name` (any labels).
fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_pass_promtool_and_match_the_workload() {
    let s = start_events(|_| {}).await;
    s.deploy("met", HANDLER, py(json!({"max_instances": 3}))).await;
    s.deploy("slow", HANDLER, py(json!({}))).await;
    // Three at once: up to three cold starts; then warm ones and errors.
    let calls = (0..3).map(|_| s.event("met", json!({})));
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(r.status, StatusCode::OK);
    }
    for _ in 0..4 {
        s.event("met", json!({})).await;
    }
    for _ in 0..2 {
        assert_eq!(s.event("met", json!({"fail": true})).await.error.as_deref(), Some("ValueError"));
    }
    s.event("slow", json!({})).await;
    let queued = s.queue_event("slow", None, &json!({})).await;
    s.wait_event(&queued, "succeeded").await;

    let text = s.metrics().await;
    promtool(&text).unwrap_or_else(|e| panic!("promtool check metrics: {e}\n{text}"));
    assert_eq!(sample(&text, r#"hearth_invocations_total{function="met",outcome="success"}"#), Some(7.0), "{text}");
    assert_eq!(sample(&text, r#"hearth_invocations_total{function="met",outcome="error"}"#), Some(2.0), "{text}");
    assert_eq!(sample(&text, r#"hearth_invocation_duration_seconds_count{function="met"}"#), Some(9.0), "{text}");
    // The cold starts the records show, and the histogram by source counts the same.
    let deadline = Instant::now() + Duration::from_secs(10);
    let cold = loop {
        let list = s.get_json("/v1/functions/met/invocations?limit=100").await;
        let records = list["invocations"].as_array().unwrap();
        if records.len() == 9 {
            break records.iter().filter(|r| r["cold_start"] == true).count();
        }
        assert!(Instant::now() < deadline, "records: {}", records.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!((1..=3).contains(&cold), "{cold}");
    let text = s.metrics().await;
    let by_function: f64 = ["stem_cell", "full"]
        .iter()
        .filter_map(|src| sample(&text, &format!(r#"hearth_cold_starts_total{{function="met",source="{src}"}}"#)))
        .sum();
    assert_eq!(by_function, cold as f64, "cold starts of met by source: {text}");
    // Per source, the histogram counts what the counters of every function add up to.
    for source in ["stem_cell", "full"] {
        let counted: f64 = text
            .lines()
            .filter(|l| l.starts_with("hearth_cold_starts_total{") && l.contains(&format!(r#"source="{source}""#)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        let timed = sample(&text, &format!(r#"hearth_cold_start_duration_seconds_count{{source="{source}"}}"#));
        assert_eq!(timed.unwrap_or(0.0), counted, "{source}: {text}");
    }
    // The asynchronous event is done: its function's queue levels say so.
    assert_eq!(sample(&text, r#"hearth_event_queue_depth{function="slow",status="queued"}"#), Some(0.0), "{text}");
    assert_eq!(sample(&text, r#"hearth_event_queue_depth{function="slow",status="running"}"#), Some(0.0), "{text}");
    assert!(sample(&text, r#"hearth_instances{function="met",state="ready"}"#).unwrap_or(0.0) >= 1.0, "{text}");
    assert!(sum(&text, "hearth_node_memory_committed_bytes") >= 128.0 * 1024.0 * 1024.0, "{text}");
    assert!(text.contains(r#"hearth_store_operation_seconds_count{operation="append_telemetry"}"#), "{text}");
    assert!(text.contains(r#"hearth_code_cache_operation_seconds_count{operation="materialize"}"#), "{text}");
    assert!(sum(&text, "hearth_activator_wait_seconds_count") >= 10.0, "{text}");

    let r = s.http.get(format!("{}/metrics", s.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a token is needed on the API's listener");
}

#[tokio::test]
async fn a_deleted_functions_series_go_and_the_cap_holds() {
    let s = start_with(|g| {
        g.metrics_series_ttl = Duration::from_millis(300);
        g.metrics_max_functions = 1;
    })
    .await;
    s.deploy("first", HANDLER, py(json!({}))).await;
    s.deploy("second", HANDLER, py(json!({}))).await;
    s.event("first", json!({})).await;
    s.event("second", json!({})).await;
    let text = s.metrics().await;
    promtool(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(sample(&text, r#"hearth_invocations_total{function="first",outcome="success"}"#), Some(1.0), "{text}");
    assert_eq!(sample(&text, r#"hearth_invocations_total{function="_other",outcome="success"}"#), Some(1.0), "{text}");
    assert!(!text.contains(r#"function="second""#), "past the cap: {text}");
    let r = s.http.delete(format!("{}/v1/functions/first", s.url)).bearer_auth(&s.token).send().await.unwrap();
    assert!(r.status().is_success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = s.metrics().await;
        if !text.contains(r#"function="first""#) {
            break;
        }
        assert!(Instant::now() < deadline, "a deleted function's series go: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its place is free: second gets a label of its own.
    s.event("second", json!({})).await;
    let text = s.metrics().await;
    assert!(text.contains(r#"hearth_invocations_total{function="second",outcome="success"} 1"#), "{text}");
}
