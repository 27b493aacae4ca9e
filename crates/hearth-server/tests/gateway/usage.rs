//! Usage and cost over a scripted workload of real invocations: cold and warm starts, errors,
//! a timeout, an asynchronous event retried twice, an alias, a `min_instances` function and
//! one nobody calls. The figures of `GET /v1/usage` equal the sums over the raw records
//! exactly, and the cost equals a hand computation at the price table.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Server, py, start_events};

const HANDLER: &str = r#"
import os, time

def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("flaky"):
        path = "/tmp/count"
        n = int(open(path).read()) if os.path.exists(path) else 0
        open(path, "w").write(str(n + 1))
        if n < 2:
            raise RuntimeError(f"failing attempt {n + 1}")
    return "ok"
"#;

/// A whole number of microseconds, the nearest to `ms` (as the server sums them).
fn micros(ms: &Value) -> u64 {
    ms.as_f64().filter(|m| *m > 0.0).map_or(0, |m| (m * 1000.0).round() as u64)
}

impl Server {
    async fn usage(&self, query: &str) -> Value {
        self.get_json(&format!("/v1/usage?{query}")).await
    }

    async fn records(&self, name: &str) -> Vec<Value> {
        self.get_json(&format!("/v1/functions/{name}/invocations?limit=1000")).await["invocations"]
            .as_array()
            .unwrap()
            .clone()
    }
}

/// The figures the server should report for `records`, summed here.
fn sums(records: &[&Value]) -> Value {
    let mut errors_by_type: BTreeMap<String, u64> = BTreeMap::new();
    for r in records.iter().filter(|r| r["outcome"] != "success") {
        *errors_by_type.entry(r["error_type"].as_str().unwrap_or("Unknown").to_owned()).or_default() += 1;
    }
    let sum = |f: &dyn Fn(&Value) -> u64| records.iter().map(|r| f(r)).sum::<u64>();
    json!({
        "requests": records.len(),
        "errors": errors_by_type.values().sum::<u64>(),
        "errors_by_type": errors_by_type,
        "cold_starts": sum(&|r| u64::from(r["cold_start"] == true)),
        "init_duration_us": sum(&|r| micros(&r["init_duration_ms"])),
        "duration_us": sum(&|r| micros(&r["duration_ms"])),
        "billed_ms": sum(&|r| r["billed_ms"].as_u64().unwrap()),
        "mb_ms": sum(&|r| r["billed_ms"].as_u64().unwrap() * r["memory_mb"].as_u64().unwrap()),
    })
}

#[tokio::test]
async fn usage_equals_the_sums_over_the_records_and_costs_what_the_prices_say() {
    let s = start_events(|_| {}).await;
    s.deploy("small", HANDLER, py(json!({"memory_mb": 128, "timeout_s": 2}))).await;
    s.deploy("big", HANDLER, py(json!({"memory_mb": 512, "max_instances": 1, "keep_alive_s": 600}))).await;
    s.deploy("warm", HANDLER, py(json!({"memory_mb": 256, "min_instances": 1}))).await;
    s.deploy("idle", HANDLER, py(json!({}))).await;
    let r = s
        .http
        .put(format!("{}/v1/functions/small/aliases/live", s.url))
        .bearer_auth(&s.token)
        .json(&json!({"version": 1}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    for _ in 0..5 {
        assert_eq!(s.event("small", json!({})).await.status, StatusCode::OK);
    }
    let timed_out = s.event("small", json!({"sleep": 4})).await;
    assert_eq!(timed_out.error.as_deref(), Some("Sandbox.Timedout"));
    let r = s
        .http
        .post(format!("{}/v1/functions/small/invoke?version=live", s.url))
        .bearer_auth(&s.token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for _ in 0..3 {
        assert_eq!(s.event("big", json!({"fail": true})).await.error.as_deref(), Some("ValueError"));
    }
    let id = s.queue_event("big", None, &json!({"flaky": true})).await;
    let e = s.wait_event(&id, "succeeded").await;
    assert_eq!(e["attempts"], 3, "the event was retried twice: {e}");

    // Every record stored (the meter writes them off the request path).
    let deadline = Instant::now() + Duration::from_secs(20);
    let (small, big) = loop {
        let (small, big) = (s.records("small").await, s.records("big").await);
        if small.len() == 7 && big.len() == 6 {
            break (small, big);
        }
        assert!(Instant::now() < deadline, "records: small {}, big {}", small.len(), big.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let all: Vec<&Value> = small.iter().chain(&big).collect();
    // Billed time is each run rounded up to the millisecond (a timeout bills the timeout).
    for r in &all {
        let ms = r["duration_ms"].as_f64().unwrap();
        assert_eq!(r["billed_ms"].as_u64().unwrap(), ms.ceil() as u64, "{r}");
    }
    assert!(small.iter().any(|r| r["error_type"] == "Sandbox.Timedout" && r["billed_ms"].as_u64() >= Some(2000)));
    assert!(all.iter().any(|r| r["cold_start"] == true) && all.iter().any(|r| r["cold_start"] == false));

    let report = s.usage("group_by=function").await;
    let rows = report["rows"].as_array().unwrap();
    let row = |name: &str| rows.iter().find(|r| r["function"] == name).cloned().unwrap_or(Value::Null);
    for (name, records) in [("small", &small), ("big", &big)] {
        let got = row(name);
        let expected = sums(&records.iter().collect::<Vec<_>>());
        for (field, value) in expected.as_object().unwrap() {
            assert_eq!(&got[field], value, "{name}.{field}: {got}");
        }
    }
    assert_eq!(row("big")["errors_by_type"]["ValueError"], 3, "{}", row("big"));
    assert_eq!(row("big")["errors_by_type"]["RuntimeError"], 2, "the event's two failed attempts: {}", row("big"));
    assert_eq!(row("small")["errors_by_type"]["Sandbox.Timedout"], 1);
    // Memory × time with each function's own memory size, not the records' say-so alone.
    for (name, memory) in [("small", 128), ("big", 512)] {
        let r = row(name);
        assert_eq!(r["mb_ms"].as_u64().unwrap(), memory * r["billed_ms"].as_u64().unwrap(), "{name}: {r}");
    }

    // By version: the alias has a row of its own.
    let versions = s.usage("group_by=version&function=small").await;
    let qualifiers: Vec<(Value, u64)> = versions["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["qualifier"].clone(), r["requests"].as_u64().unwrap()))
        .collect();
    assert_eq!(qualifiers, [(Value::Null, 6), (json!("live"), 1)]);

    // The kept instance of `warm` is billed as provisioned time: 256 MB for about as long as
    // the test has run, and nothing else.
    let deadline = Instant::now() + Duration::from_secs(10);
    let warm = loop {
        let warm = row_of(&s.usage("group_by=function&function=warm").await);
        if warm["provisioned_mb_ms"].as_u64().unwrap_or(0) > 256 * 500 {
            break warm;
        }
        assert!(Instant::now() < deadline, "kept instances are metered: {warm}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let kept = warm["provisioned_mb_ms"].as_u64().unwrap();
    assert_eq!(kept % 256, 0, "whole milliseconds of 256 MB");
    // From the function's creation to the last tick: at most its age, at least its age less
    // a tick (100 ms) and this test's own pace.
    let created = s.get_json("/v1/functions/warm").await["created_at"].as_str().unwrap().to_owned();
    let created = chrono::DateTime::parse_from_rfc3339(&created).unwrap();
    let age_ms = (chrono::Utc::now() - created.with_timezone(&chrono::Utc)).num_milliseconds() as u64;
    assert!(kept <= 256 * age_ms, "no more than the time it existed ({age_ms} ms): {warm}");
    assert!(kept + 256 * 1000 >= 256 * age_ms, "about the time it existed ({age_ms} ms): {warm}");
    assert_eq!(warm["requests"], 0);

    // The cost, by hand, at the default prices.
    let report = s.usage("group_by=day").await;
    let total = &report["total"];
    let p = &report["prices"];
    let (per_million, per_gbs, per_prov) = (
        p["per_million_requests"].as_f64().unwrap(),
        p["per_gb_second"].as_f64().unwrap(),
        p["per_provisioned_gb_second"].as_f64().unwrap(),
    );
    assert_eq!(per_million, 0.2, "the documented default");
    let requests = total["requests"].as_u64().unwrap() as f64;
    let mb_ms = total["mb_ms"].as_u64().unwrap() as f64;
    let prov = total["provisioned_mb_ms"].as_u64().unwrap() as f64;
    assert_eq!(total["requests"], 13);
    let by_hand = requests / 1e6 * per_million + mb_ms / 1024.0 / 1000.0 * per_gbs + prov / 1024.0 / 1000.0 * per_prov;
    let cost = total["cost"]["total"].as_f64().unwrap();
    assert!((cost - by_hand).abs() <= 1e-12 * by_hand.max(1e-9), "cost {cost} by hand {by_hand}");
    assert_eq!(total["gb_seconds"].as_f64().unwrap(), mb_ms / 1024.0 / 1000.0);

    // A range backwards sums nothing; one over 400 days is cut to its last 400.
    let backwards = s.usage("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z").await;
    assert_eq!(
        (backwards["rows"].as_array().unwrap().len(), backwards["from"].as_str()),
        (0, Some("2026-01-01T00:00:00Z"))
    );
    let long = s.usage("from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z").await;
    assert_eq!(long["from"], "2024-11-27T00:00:00Z", "2026-01-01 less 400 days (2024 a leap year): {long}");
    // A function nobody calls costs nothing.
    let idle = s.usage("function=idle").await;
    assert_eq!(idle["rows"].as_array().unwrap().len(), 0, "{idle}");
    assert_eq!((idle["total"]["requests"].as_u64(), idle["total"]["cost"]["total"].as_f64()), (Some(0), Some(0.0)));

    for (query, code) in [
        ("group_by=week", "InvalidUsageGroup"),
        ("from=yesterday", "InvalidQuery"),
        ("to=", "InvalidQuery"),
        ("group_by=", "InvalidUsageGroup"),
        ("function=", "InvalidFunctionName"),
        ("from=2026-01-01", "InvalidQuery"),
        ("function=Not%20A%20Name", "InvalidFunctionName"),
    ] {
        let r = s.http.get(format!("{}/v1/usage?{query}", s.url)).bearer_auth(&s.token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], code, "{query}: {body}");
    }
}

fn row_of(report: &Value) -> Value {
    report["rows"].as_array().unwrap().first().cloned().unwrap_or(Value::Null)
}
