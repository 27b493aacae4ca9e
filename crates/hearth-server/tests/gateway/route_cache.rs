//! The server's metadata-store traffic, counted by a `CountingStore` around its SQLite store:
//! a route-cache hit makes no store call at all, reads included, beyond the meter's writes
//! of its record and log lines (counted apart); and the meter prunes telemetry older than
//! the retention, on its interval.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hearth_gateway::GatewaySettings;
use hearth_store::{CountingStore, MetadataStore, SqliteStore};
use hearth_types::{FunctionName, InvocationRecord, LogLine, LogStream};
use serde_json::json;

use super::*;

/// The meter's writes: the only store calls an invocation may cause once its route is cached.
const METER_WRITES: [&str; 1] = ["append_telemetry"];

/// A harness server whose store counts every call made to it.
struct Counted {
    server: Server,
    /// What the server uses.
    counted: Arc<CountingStore>,
    /// The same database, for the test's own reads (not counted).
    sqlite: Arc<SqliteStore>,
}

async fn start_counted(adjust: impl FnOnce(&mut GatewaySettings)) -> Counted {
    let mut stores = None;
    let server = start_with_store(adjust, |sqlite| {
        let counted = Arc::new(CountingStore::new(sqlite.clone()));
        stores = Some((counted.clone(), sqlite));
        counted as Arc<dyn MetadataStore>
    })
    .await;
    let (counted, sqlite) = stores.unwrap();
    Counted { server, counted, sqlite }
}

impl Counted {
    /// Invokes `url` (the invoke API or a trigger) and returns whether it was a cold start,
    /// the request id and the instance that answered.
    async fn call(&self, url: &str) -> (bool, String, String) {
        let s = &self.server;
        let r = s.http.post(url).bearer_auth(&s.token).body("{}").send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        let header = |k: &str| r.headers().get(k).map(|v| v.to_str().unwrap().to_owned());
        let cold = header("x-hearth-cold-start").as_deref() == Some("true");
        let request_id = header("x-hearth-request-id").unwrap_or_default();
        let body: Value = r.json().await.unwrap();
        (cold, request_id, body["instance"].as_str().unwrap_or_default().to_owned())
    }

    /// Waits (reading the database directly) until `function` has `n` invocation records.
    async fn wait_records(&self, function: &str, n: usize) -> Vec<InvocationRecord> {
        let name: FunctionName = function.parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let records = self.sqlite.list_invocations(&name, 1000).await.unwrap();
            if records.len() >= n {
                return records;
            }
            assert!(Instant::now() < deadline, "{} of {n} records of {function} stored", records.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn a_route_cache_hit_makes_no_store_call() {
    const WARM: usize = 30;
    let s = start_counted(|_| {}).await;
    s.server.deploy("hit", FUNCTION, py(json!({}))).await;
    let (api, triggers) = (&s.server.url, &s.server.trigger_url);
    let urls = [
        format!("{api}/v1/functions/hit/invoke"),
        format!("{api}/v1/functions/hit/invoke?version=1"),
        format!("{triggers}/fn/hit/x"),
    ];
    // Cold: the function, its version and the token are read once and cached.
    let (cold, _, instance) = s.call(&urls[0]).await;
    assert!(cold, "the first call starts an instance");
    for url in &urls[1..] {
        let (cold, _, again) = s.call(url).await;
        assert_eq!((cold, &again), (false, &instance), "{url} resolves to the same instance");
    }
    s.wait_records("hit", urls.len()).await;

    let before = s.counted.calls();
    let started = Instant::now();
    for n in 0..WARM {
        let url = &urls[n % urls.len()];
        let (cold, _, again) = s.call(url).await;
        assert_eq!((cold, &again), (false, &instance), "call {n} ({url}) is a hit");
    }
    // The API's token cache (30 s) and `$LATEST`'s (30 s) must not expire in between: a
    // re-read then would be right, and not a hit's.
    assert!(started.elapsed() < Duration::from_secs(25), "the hits took {:?}", started.elapsed());
    // Their records arrive through the meter, off the request path.
    s.wait_records("hit", urls.len() + WARM).await;
    let during = s.counted.calls_since(&before);
    let (meter, other): (Vec<_>, Vec<_>) = during.iter().partition(|(method, _)| METER_WRITES.contains(method));
    assert!(other.is_empty(), "{WARM} route-cache hits called the store: {other:?} (besides the meter's {meter:?})");
    eprintln!("{WARM} route-cache hits: no store call but the meter's writes, {meter:?}");
    assert!(during.contains_key("append_telemetry"), "the meter stored the hits' records: {during:?}");
}

fn old_telemetry(function: &FunctionName, days_ago: i64) -> (LogLine, InvocationRecord) {
    let at = Utc::now() - chrono::Duration::days(days_ago);
    let line = LogLine {
        seq: 0,
        function: function.clone(),
        request_id: Some("old-request".into()),
        at,
        stream: LogStream::Stdout,
        message: "an old line".into(),
    };
    let record = InvocationRecord {
        request_id: "old-request".into(),
        attempt: 1,
        qualifier: None,
        function_id: hearth_types::FunctionId::new(),
        function: function.clone(),
        version: 1,
        started_at: at,
        duration_ms: 1.0,
        billed_ms: 1,
        memory_mb: 128,
        max_memory_used_mb: None,
        cold_start: false,
        init_duration_ms: None,
        start_source: None,
        cpu_time_ms: None,
        outcome: "success".into(),
        error_type: None,
    };
    (line, record)
}

#[tokio::test]
async fn the_server_prunes_telemetry_older_than_its_retention() {
    let retention = Duration::from_secs(8);
    let s = start_counted(|g| {
        g.log_retention = retention;
        g.prune_interval = Duration::from_millis(100);
    })
    .await;
    let name: FunctionName = "pruned".parse().unwrap();
    s.server.deploy("pruned", FUNCTION, py(json!({}))).await;
    // As a server that ran two days ago left them (the first prune, at start, is over).
    let (line, record) = old_telemetry(&name, 2);
    s.sqlite.append_logs(&[line]).await.unwrap();
    s.sqlite.append_invocations(&[record]).await.unwrap();
    let invoked = Instant::now();
    let (_, request_id, _) = s.call(&format!("{}/v1/functions/pruned/invoke", s.server.url)).await;

    // The old telemetry goes on a later tick; the new invocation's record and lines stay.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records = s.sqlite.list_invocations(&name, 100).await.unwrap();
        let records: Vec<_> = records.into_iter().map(|r| r.request_id).collect();
        let lines = s.sqlite.read_logs(&name, 0, None, 100).await.unwrap();
        let old_gone = !records.contains(&"old-request".to_owned()) && lines.iter().all(|l| l.message != "an old line");
        let new_stored = records.contains(&request_id) && lines.iter().any(|l| l.message.starts_with("REPORT"));
        if old_gone && new_stored {
            assert_eq!(records, std::slice::from_ref(&request_id), "only the old record went");
            break;
        }
        assert!(Instant::now() < deadline, "after 10 s: old gone {old_gone}, new stored {new_stored}: {records:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The new invocation's own telemetry goes once it is older than the retention, not before.
    let deadline = Instant::now() + retention + Duration::from_secs(20);
    loop {
        let records = s.sqlite.list_invocations(&name, 100).await.unwrap();
        let lines = s.sqlite.read_logs(&name, 0, None, 100).await.unwrap();
        if records.is_empty() && lines.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "telemetry older than the retention was kept: {records:?} {lines:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let age = invoked.elapsed();
    assert!(
        age >= retention - Duration::from_millis(500),
        "pruned after {age:?}, before the retention of {retention:?}"
    );
    let prunes = s.counted.calls()["prune_telemetry"];
    let expected = (age.as_millis() / 100 / 4) as u64;
    assert!(prunes >= expected, "{prunes} prunes in {age:?}: the server prunes every 100 ms");
}
