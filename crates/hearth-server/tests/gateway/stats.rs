//! `GET /v1/functions/{name}/stats` and `GET /v1/stats`: the console's charts and function
//! list, checked against the invocation records of the invocations the tests make.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::*;

/// The `percent`th percentile of `values` by nearest rank.
fn nearest_rank(values: &[f64], percent: usize) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (sorted.len() * percent).div_ceil(100);
    (!sorted.is_empty()).then(|| sorted[rank.max(1) - 1])
}

fn close(got: &Value, expected: Option<f64>) -> bool {
    match (got.as_f64(), expected) {
        (None, None) => got.is_null(),
        (Some(g), Some(e)) => (g - e).abs() <= 1e-9 * e.abs().max(1.0),
        _ => false,
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn buckets_count_what_the_invocations_did() {
    let s = start().await;
    s.deploy("charted", FUNCTION, py(json!({}))).await;
    // Two cold starts (the first call, and the one after a crash), one error, six calls.
    let mut replies = vec![s.event("charted", json!({})).await];
    for i in 0..3 {
        replies.push(s.event("charted", json!({"i": i})).await);
    }
    replies.push(s.event("charted", json!({"exit": 3})).await);
    replies.push(s.event("charted", json!({"last": true})).await);
    let colds: Vec<bool> = replies.iter().map(|r| r.cold.unwrap()).collect();
    assert_eq!(colds, [true, false, false, false, false, true]);
    assert_eq!(replies[4].error.as_deref(), Some("Runtime.ExitError"));

    // Whole minutes from 10 before now to 2 after: 12 buckets of 60 s; the first ones before
    // the server started, the last one after now.
    let now = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap();
    let (from, to) = (now - TimeDelta::minutes(10), now + TimeDelta::minutes(2));
    let query = format!("from={}&to={}&step_s=60", from.to_rfc3339(), to.to_rfc3339()).replace('+', "%2B");
    let stats = s.get_json(&format!("/v1/functions/charted/stats?{query}")).await;
    let records = s.get_json("/v1/functions/charted/invocations").await["invocations"].as_array().unwrap().clone();
    assert_eq!(records.len(), 6);

    assert_eq!((time(&stats["from"]), time(&stats["to"]), stats["step_s"].as_u64()), (from, to, Some(60)));
    assert_eq!(stats["sampled"], false);
    let buckets = stats["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 12);
    for (i, b) in buckets.iter().enumerate() {
        let start = from + TimeDelta::minutes(i as i64);
        assert_eq!(time(&b["start"]), start);
        let mine: Vec<&Value> = records
            .iter()
            .filter(|r| (start..start + TimeDelta::minutes(1)).contains(&time(&r["started_at"])))
            .collect();
        let durations: Vec<f64> = mine.iter().map(|r| r["duration_ms"].as_f64().unwrap()).collect();
        let count = |f: &dyn Fn(&Value) -> bool| mine.iter().filter(|r| f(r)).count() as u64;
        assert_eq!(b["invocations"].as_u64(), Some(mine.len() as u64), "bucket {i}: {b}");
        assert_eq!(b["errors"].as_u64(), Some(count(&|r| r["outcome"] != "success")), "bucket {i}");
        assert_eq!(b["cold_starts"].as_u64(), Some(count(&|r| r["cold_start"] == true)), "bucket {i}");
        assert!(close(&b["p50_ms"], nearest_rank(&durations, 50)), "bucket {i}: {b} {durations:?}");
        assert!(close(&b["p99_ms"], nearest_rank(&durations, 99)), "bucket {i}: {b} {durations:?}");
    }
    let sum = |field: &str| buckets.iter().map(|b| b[field].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum("invocations"), sum("errors"), sum("cold_starts")), (6, 1, 2));
    let total = &stats["total"];
    assert_eq!(
        (total["invocations"].as_u64(), total["errors"].as_u64(), total["cold_starts"].as_u64()),
        (Some(6), Some(1), Some(2))
    );
    let durations: Vec<f64> = records.iter().map(|r| r["duration_ms"].as_f64().unwrap()).collect();
    assert!(close(&total["p50_ms"], nearest_rank(&durations, 50)), "{total} {durations:?}");
    assert!(close(&total["p99_ms"], nearest_rank(&durations, 99)), "{total} {durations:?}");

    // Instances: unknown before the server started and in the future; the live one now.
    assert!(buckets[0]["max_instances"].is_null(), "before the server started: {}", buckets[0]);
    assert!(buckets[11]["max_instances"].is_null(), "after now: {}", buckets[11]);
    let live = s.instances("charted").await.len() as u64;
    assert!(live >= 1);
    let current = &buckets[10];
    assert!(current["max_instances"].as_u64().is_some_and(|n| n >= 1), "now: {current}");

    // The defaults: the last hour, in 60 buckets of a minute, ending now.
    let stats = s.get_json("/v1/functions/charted/stats").await;
    let (from, to) = (time(&stats["from"]), time(&stats["to"]));
    assert_eq!((to - from, stats["step_s"].as_u64()), (TimeDelta::hours(1), Some(60)));
    assert_eq!(stats["buckets"].as_array().unwrap().len(), 60);
    assert_eq!(stats["total"]["invocations"], 6);
    // The window ends when the request came, a moment before the count: its last bucket
    // still holds the live instance (the console's charts ask for exactly this).
    let last = &stats["buckets"][59];
    assert!(last["max_instances"].as_u64().is_some_and(|n| n >= 1), "now, default window: {last}");
    assert!(to <= Utc::now() && Utc::now() - to < TimeDelta::minutes(1));
}

#[tokio::test]
async fn windows_beyond_the_limits_are_refused() {
    let s = start().await;
    s.deploy("bounded", FUNCTION, py(json!({}))).await;
    let get = |path: String| {
        let (http, token) = (s.http.clone(), s.token.clone());
        async move {
            let r = http.get(path).bearer_auth(token).send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let stats = |query: &str| get(format!("{}/v1/functions/bounded/stats?{query}", s.url));
    for query in [
        "from=2030-01-01T00:00:00Z&to=2030-01-01T00:00:00Z",
        "from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z",
        "from=2030-01-01T00:00:00Z&to=2030-01-08T00:00:01Z",
        "from=2030-01-01T00:00:00Z&to=2030-01-01T02:47:00Z&step_s=10",
        "step_s=9",
        "step_s=604801",
        "step_s=ten",
        "from=yesterday",
        "to=2030-13-01T00:00:00Z",
    ] {
        let (status, body) = stats(query).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidQuery")), "{query}: {body}");
    }
    // At the limits: 7 days; 1,000 buckets.
    for query in [
        "from=2030-01-01T00:00:00Z&to=2030-01-08T00:00:00Z",
        "from=2030-01-01T00:00:00Z&to=2030-01-01T02:46:40Z&step_s=10",
    ] {
        let (status, body) = stats(query).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert!(body["buckets"].as_array().unwrap().iter().all(|b| b["max_instances"].is_null()), "the future");
    }
    let (status, body) = get(format!("{}/v1/functions/absent/stats", s.url)).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("FunctionNotFound")));
    for query in ["window_s=0", "window_s=604801", "window_s=-5", "window_s=x"] {
        let (status, body) = get(format!("{}/v1/stats?{query}", s.url)).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidQuery")), "{query}");
    }
}

#[tokio::test]
async fn the_summary_lists_every_function() {
    let s = start().await;
    s.deploy("busy", FUNCTION, py(json!({}))).await;
    s.deploy("idle", FUNCTION, py(json!({}))).await;
    for event in [json!({}), json!({"exit": 1}), json!({})] {
        s.event("busy", event).await;
    }
    let records = s.get_json("/v1/functions/busy/invocations").await["invocations"].as_array().unwrap().clone();
    let durations: Vec<f64> = records.iter().map(|r| r["duration_ms"].as_f64().unwrap()).collect();
    let summary = s.get_json("/v1/stats?window_s=600").await;
    assert_eq!(time(&summary["to"]) - time(&summary["from"]), TimeDelta::minutes(10));
    let functions = summary["functions"].as_array().unwrap();
    let names: Vec<&str> = functions.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["busy", "idle"]);
    let (busy, idle) = (&functions[0], &functions[1]);
    assert_eq!((busy["invocations"].as_u64(), busy["errors"].as_u64()), (Some(3), Some(1)), "{busy}");
    assert!(close(&busy["p99_ms"], nearest_rank(&durations, 99)), "{busy} {durations:?}");
    assert_eq!(busy["live_instances"].as_u64(), Some(s.instances("busy").await.len() as u64));
    assert!(busy["live_instances"].as_u64().unwrap() >= 1);
    assert_eq!(idle, &json!({"name": "idle", "invocations": 0, "errors": 0, "p99_ms": null, "live_instances": 0}));
    // The default window is the last hour.
    let summary = s.get_json("/v1/stats").await;
    assert_eq!(time(&summary["to"]) - time(&summary["from"]), TimeDelta::hours(1));
    assert_eq!(summary["functions"][0]["invocations"], 3);
}
