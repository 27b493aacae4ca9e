//! Asynchronous invocations at their limits (each test began as a hostile review's finding,
//! failing before its fix): leases that outlive a pinned version's run, fairness between
//! functions, bounded dead-letter pages, what a deleted function leaves, and disk use.
//! Delivery settings are scaled down as in `harness::events_settings` (and, where said, one
//! more setting), so the tests take seconds, not minutes.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{FUNCTION, Server, millis, py, start_events};

impl Server {
    /// Polls the event until its status is final, failing after `limit`.
    async fn finished(&self, id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let e = self.get_json(&format!("/v1/invocations/{id}")).await;
            if ["succeeded", "failed", "dead_lettered"].contains(&e["status"].as_str().unwrap_or_default()) {
                return e;
            }
            assert!(Instant::now() < deadline, "event {id} never finished in {limit:?}: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An event for `NAME:1` (or an alias naming version 1) runs version 1, whose timeout may be
/// longer than `$LATEST`'s: its lease must outlast that run, or the event is delivered again
/// while it runs and the first outcome is thrown away, every lease. `lease_margin` is scaled
/// down to 500 ms here.
#[tokio::test]
async fn a_pinned_version_with_a_longer_timeout_is_not_delivered_again_while_it_runs() {
    let s = start_events(|e| e.lease_margin = Duration::from_millis(500)).await;
    s.deploy("pinned", FUNCTION, py(json!({"timeout_s": 10, "max_instances": 4}))).await;
    // Version 2, now $LATEST: a 1 s timeout. Its lease: 2 × 1 s + 500 ms.
    s.deploy("pinned", FUNCTION, py(json!({"timeout_s": 1, "max_instances": 4}))).await;
    let id = s.queue_event("pinned", Some("1"), &json!({"sleep": 4})).await;
    let e = s.finished(&id, Duration::from_secs(20)).await;
    assert_eq!(
        (e["status"].as_str(), e["attempts"].as_u64(), e["redeliveries"].as_u64()),
        (Some("succeeded"), Some(1), Some(0)),
        "a 4 s run of version 1 (timeout 10 s) was delivered again while it ran: {e}"
    );
}

/// Functions are served round-robin: a function whose name sorts first and has a backlog
/// (and a share of capacity as big as the node's budget) does not keep every function named
/// after it waiting. `max_in_flight` is scaled down to 1 here.
#[tokio::test]
async fn one_functions_backlog_does_not_starve_another_function() {
    let s = start_events(|e| e.max_in_flight = 1).await;
    s.deploy("aaa-backlog", FUNCTION, py(json!({"max_instances": 2, "keep_alive_s": 600}))).await;
    s.deploy("zzz-other", FUNCTION, py(json!({"max_instances": 2, "keep_alive_s": 600}))).await;
    let mut backlog = Vec::new();
    for _ in 0..6 {
        backlog.push(s.queue_event("aaa-backlog", None, &json!({"sleep": 0.5})).await);
    }
    let other = s.queue_event("zzz-other", None, &json!({})).await;
    let other = s.finished(&other, Duration::from_secs(30)).await;
    let mut last_backlog_start = 0;
    for id in &backlog {
        let e = s.finished(id, Duration::from_secs(30)).await;
        last_backlog_start = last_backlog_start.max(millis(&e, "last_attempt_at"));
    }
    assert!(
        millis(&other, "last_attempt_at") < last_backlog_start,
        "zzz-other's one event waited until all six of aaa-backlog's had started: {other}"
    );
}

/// A page of dead letters counts their error messages (up to 256 KiB each) in its 8 MiB,
/// not only payloads and results.
#[tokio::test]
async fn a_page_of_dead_letters_is_bounded_in_bytes_with_its_error_messages() {
    const LOUD: &str = r#"
def handler(event, context):
    raise RuntimeError("e" * 300000)
"#;
    let s = start_events(|_| {}).await;
    s.deploy("loud", LOUD, py(json!({"async_retries": 0, "max_instances": 4}))).await;
    let mut ids = Vec::new();
    for _ in 0..48 {
        ids.push(s.queue_event("loud", None, &json!({})).await);
    }
    for id in &ids {
        let e = s.finished(id, Duration::from_secs(60)).await;
        assert_eq!(e["status"], "dead_lettered", "{e}");
    }
    let r = s
        .http
        .get(format!("{}/v1/functions/loud/dead-letters?limit=1000", s.url))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.bytes().await.unwrap();
    let page: Value = serde_json::from_slice(&body).unwrap();
    let n = page["dead_letters"].as_array().unwrap().len();
    assert!(body.len() <= 9 << 20, "a page of {n} dead letters is {} bytes, past the documented ~8 MiB", body.len());
}

/// A deleted function's events go with it: a function created later under the same name
/// does not list, redrive or get the old function's events.
#[tokio::test]
async fn a_function_created_again_does_not_inherit_the_dead_letters_of_the_deleted_one() {
    const FAILS: &str = r#"
def handler(event, context):
    raise RuntimeError("old function")
"#;
    let s = start_events(|_| {}).await;
    s.deploy("phoenix", FAILS, py(json!({"async_retries": 0}))).await;
    let id = s.queue_event("phoenix", None, &json!({"secret": "of the old function"})).await;
    let e = s.finished(&id, Duration::from_secs(30)).await;
    assert_eq!(e["status"], "dead_lettered", "{e}");
    let r = s.http.delete(format!("{}/v1/functions/phoenix", s.url)).bearer_auth(&s.token).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    s.deploy("phoenix", FUNCTION, py(json!({}))).await;
    let page = s.get_json("/v1/functions/phoenix/dead-letters").await;
    assert_eq!(
        page["dead_letters"].as_array().unwrap().len(),
        0,
        "the new phoenix lists the deleted phoenix's dead letters: {page}"
    );
}

/// `max_queued_events` bounds the events queued or running; a finished event drops its
/// payload (only dead letters keep theirs), so events that succeed do not grow the disk by
/// their size: after 12 events of 1 MiB, 24 more leave the database about as large.
#[tokio::test]
async fn finished_events_do_not_keep_their_payloads() {
    let s = start_events(|_| {}).await;
    // Answers a few bytes: its results (kept, cut at 256 KiB) do not count here.
    s.deploy("sink-ok", "def handler(event, context):\n    return 'ok'\n", py(json!({"max_queued_events": 1}))).await;
    let pad = "p".repeat(1_000_000);
    let size = |name: &str| std::fs::metadata(s.dir.path().join(name)).map_or(0, |m| m.len());
    let mut sizes = vec![];
    for round in [12, 24] {
        for _ in 0..round {
            let id = s.queue_event("sink-ok", None, &json!({"pad": pad})).await;
            let e = s.finished(&id, Duration::from_secs(30)).await;
            assert_eq!(e["status"], "succeeded", "{e}");
        }
        sizes.push((size("meta.db"), size("meta.db-wal")));
    }
    let grown = sizes[1].0.saturating_sub(sizes[0].0);
    assert!(grown < 4 << 20, "24 more finished events of 1 MiB grew the database by {grown} bytes ({sizes:?})");
    assert!(sizes[1].1 < 40 << 20, "the write-ahead log is held to its size limit: {sizes:?}");
}
