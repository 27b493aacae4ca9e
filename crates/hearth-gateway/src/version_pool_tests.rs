//! Unit tests of the version pools (`version_pool.rs`) through the gateway, on the agent's
//! [`FakeDriver`]: runtimes are tasks speaking the real Runtime API, so the pool, the
//! instance state machine and the Runtime API run for real, with no process, sandbox or
//! interpreter, and each test decides when a held event is answered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hearth_agent::fake_driver::{FakeDriver, FakeInit};
use hearth_agent::{Invocation, InvokeResult, Outcome, Runtimes, epoch_ms};
use hearth_blob::{CodeStore, PackageLimits};
use hearth_store::MemoryStore;
use hearth_store::MetadataStore;
use hearth_types::{FunctionName, FunctionSpec, VersionSelector};
use serde_json::{Value, json};

use crate::function_cache::Resolved;
use crate::invoke::{InvokeError, InvokeRequest, InvokeResponse};
use crate::version_pool::AcquireError;
use crate::{Gateway, GatewaySettings};

struct Bed {
    gateway: Gateway,
    driver: Arc<FakeDriver>,
    store: Arc<MemoryStore>,
    code: CodeStore,
    _dir: tempfile::TempDir,
}

async fn bed(adjust: impl FnOnce(&mut GatewaySettings)) -> Bed {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::default());
    let code = CodeStore::local(&dir.path().join("code"), PackageLimits::DEFAULT).unwrap();
    let runtimes = Runtimes::install(&dir.path().join("runtimes")).unwrap();
    let driver = FakeDriver::new();
    let mut settings =
        GatewaySettings { reap_interval: Duration::from_millis(20), stem_cells: None, ..Default::default() };
    adjust(&mut settings);
    let gateway =
        Gateway::new(store.clone(), code.clone(), dir.path().join("cache"), runtimes, driver.clone(), settings);
    gateway.spawn_reaper();
    Bed { gateway, driver, store, code, _dir: dir }
}

fn name(n: &str) -> FunctionName {
    n.parse().unwrap()
}

impl Bed {
    /// Deploys `name` (a Python function, the fake runtime answers for it) with the settings
    /// in `spec`, and tells the gateway, as the API does.
    async fn deploy(&self, function: &str, spec: Value) {
        let mut full = json!({"runtime": "python3", "handler": "main.handler"});
        full.as_object_mut().unwrap().extend(spec.as_object().unwrap().clone());
        let config = serde_json::from_value::<FunctionSpec>(full).unwrap().validate().unwrap();
        let zip = hearth_blob::fixtures::deflated_zip(&[("main.py", b"def handler(e, c):\n    return e\n")]);
        let code = self.code.put(Bytes::from(zip)).await.unwrap();
        hearth_api::deploy::put_config(
            self.store.as_ref(),
            &hearth_api::deploy::AdmitAll,
            &name(function),
            config,
            Some(code),
        )
        .await
        .unwrap();
        self.gateway.function_changed(&name(function)).await;
    }

    async fn call(&self, function: &str, event: Value) -> Result<InvokeResponse, InvokeError> {
        let request = InvokeRequest { payload: event.to_string().into(), ..Default::default() };
        self.gateway.invoke(&name(function), VersionSelector::Latest, request).await
    }

    /// The event's answer: which instance served it.
    async fn served_by(&self, function: &str, event: Value) -> (String, bool) {
        let r = self.call(function, event).await.unwrap();
        assert_eq!(r.function_error, None, "{:?}", String::from_utf8_lossy(&r.body));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        (body["instance"].as_str().unwrap().to_owned(), r.cold_start)
    }

    fn spawn_call(&self, function: &str, event: Value) -> tokio::task::JoinHandle<Result<InvokeResponse, InvokeError>> {
        let (gateway, function) = (self.gateway.clone(), name(function));
        tokio::spawn(async move {
            let request = InvokeRequest { payload: event.to_string().into(), ..Default::default() };
            gateway.invoke(&function, VersionSelector::Latest, request).await
        })
    }

    async fn live(&self, function: &str) -> usize {
        let f = self.store.get_function(&name(function)).await.unwrap().expect("deployed");
        self.gateway.instances(f.id).len()
    }

    async fn latest_pool(&self, function: &str) -> Arc<crate::version_pool::VersionPool> {
        let Resolved::Found(v) =
            self.gateway.inner.functions.resolve(&name(function), &VersionSelector::Latest).await.unwrap()
        else {
            panic!("{function} has a version");
        };
        self.gateway.pool(&v)
    }
}

/// Polls `done` every 5 ms until it holds, failing after 10 s.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn invocation(event: Value) -> Invocation {
    Invocation {
        request_id: uuid::Uuid::new_v4().to_string(),
        payload: event.to_string().into(),
        content_type: None,
        deadline_ms: epoch_ms() + 30_000,
        invoked_function_arn: String::new(),
        trace_id: None,
        client_context: None,
    }
}

#[tokio::test]
async fn a_cold_start_then_warm_calls_on_the_same_instance() {
    let b = bed(|_| {}).await;
    b.deploy("f", json!({})).await;
    let (first, cold) = b.served_by("f", json!({"n": 1})).await;
    assert!(cold, "the first call starts an instance");
    for n in 2..5 {
        let (again, cold) = b.served_by("f", json!({"n": n})).await;
        assert_eq!((again.as_str(), cold), (first.as_str(), false), "call {n} is warm, on the same instance");
    }
    assert_eq!(b.driver.launched(), 1);
}

#[tokio::test]
async fn a_full_queue_refuses_and_a_long_wait_gives_up() {
    let b = bed(|s| {
        s.queue_length = 1;
        s.queue_wait = Some(Duration::from_millis(300));
    })
    .await;
    b.deploy("f", json!({"max_instances": 1})).await;
    b.served_by("f", json!({})).await;
    // The one instance is busy with a held event; one request may wait, the next is refused.
    let busy = b.spawn_call("f", json!({"hold": true}));
    let pool = b.latest_pool("f").await;
    until("the held event runs", || pool.instances().iter().any(|t| t.instance.in_flight() == 1)).await;
    let waiting = b.spawn_call("f", json!({}));
    until("a request waits", || pool.waiting() == 1).await;
    let refused = b.call("f", json!({})).await;
    assert!(
        matches!(refused, Err(InvokeError::Unavailable(AcquireError::Throttled { held: 1, limit: 1 }))),
        "{refused:?}"
    );
    // The waiting request gives up after the queue wait, while the instance is still busy.
    let gave_up = waiting.await.unwrap();
    assert!(matches!(gave_up, Err(InvokeError::Unavailable(AcquireError::Timeout(_)))), "{gave_up:?}");
    b.driver.open();
    let served = busy.await.unwrap().unwrap();
    assert_eq!(served.function_error, None);
    // Nothing was lost meanwhile: the pool serves on.
    b.served_by("f", json!({})).await;
    assert_eq!(b.driver.launched(), 1);
}

#[tokio::test]
async fn an_init_failure_fails_every_held_request_with_its_type() {
    let b = bed(|_| {}).await;
    b.driver.set_init(FakeInit { delay: Duration::from_millis(200), error: Some("Runtime.ImportModuleError".into()) });
    b.deploy("f", json!({"max_instances": 1})).await;
    let calls: Vec<_> = (0..3).map(|n| b.spawn_call("f", json!({"n": n}))).collect();
    for call in calls {
        let r = call.await.unwrap().unwrap();
        assert_eq!(r.function_error.as_deref(), Some("Runtime.ImportModuleError"));
        let doc: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(doc["errorType"], "Runtime.ImportModuleError", "the error document reaches the caller");
    }
    assert_eq!(b.driver.launched(), 1, "one failed start for the three held requests, no retry loop");
    // The next request tries again, and a fixed runtime serves it.
    b.driver.set_init(FakeInit::default());
    let (_, cold) = b.served_by("f", json!({})).await;
    assert!(cold);
    assert_eq!(b.driver.launched(), 2);
}

/// The race a deploy used to lose: a request was handed an instance, then a deploy drained
/// the version before the request reached it. The request is served by that instance all
/// the same, with one slot or several, and the instance stops after its last request.
#[tokio::test]
async fn a_request_handed_an_instance_is_served_by_it_whatever_a_deploy_does() {
    for concurrency in [1u32, 2] {
        let b = bed(|_| {}).await;
        b.deploy("f", json!({"concurrency": concurrency})).await;
        b.served_by("f", json!({})).await;
        let pool = b.latest_pool("f").await;
        let mut leases = vec![];
        for _ in 0..concurrency {
            leases.push(pool.acquire(Duration::from_secs(5)).await.unwrap());
        }
        // The deploy lands between the hand-over and the invocation.
        b.deploy("f", json!({"concurrency": concurrency, "memory_mb": 256})).await;
        let mut answers = vec![];
        for lease in &leases {
            answers.push(lease.instance().invoke(invocation(json!({"late": true})), Duration::from_secs(10)));
        }
        let mut done = vec![];
        for answer in answers {
            done.push(answer.await);
        }
        for answer in done {
            let answered = answer.unwrap_or_else(|e| panic!("concurrency {concurrency}: {e}"));
            assert!(matches!(answered, InvokeResult::Answered(Outcome::Response { .. })), "{answered:?}");
        }
        drop(leases);
        until("the drained instance stops after its last request", || b.driver.killed() == 1).await;
        // The new version serves from an instance of its own.
        let (_, cold) = b.served_by("f", json!({})).await;
        assert!(cold, "concurrency {concurrency}: the new version starts its own instance");
    }
}

/// A deploy while requests run: they finish on the old version's instance, new requests go
/// to the new version, and the old instance stops once idle.
#[tokio::test]
async fn a_deploy_drains_the_old_version_without_failing_a_caller() {
    let b = bed(|_| {}).await;
    b.deploy("f", json!({})).await;
    let (old, _) = b.served_by("f", json!({})).await;
    let running = b.spawn_call("f", json!({"hold": true}));
    let pool = b.latest_pool("f").await;
    until("the held event runs", || pool.instances().iter().any(|t| t.instance.in_flight() == 1)).await;
    b.deploy("f", json!({"memory_mb": 256})).await;
    let (new, cold) = b.served_by("f", json!({})).await;
    assert!(cold && new != old, "the new version starts its own instance");
    assert_eq!(b.driver.killed(), 0, "the old instance still serves its request");
    b.driver.open();
    let r = running.await.unwrap().unwrap();
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["instance"], old.as_str(), "the running request finished where it started");
    until("the old instance stops once idle", || b.driver.killed() == 1).await;
    assert_eq!(b.live("f").await, 1);
}

#[tokio::test]
async fn idle_instances_go_after_their_keep_alive() {
    let b = bed(|_| {}).await;
    b.deploy("f", json!({"keep_alive_s": 1})).await;
    b.served_by("f", json!({})).await;
    assert_eq!(b.live("f").await, 1);
    let idle_since = Instant::now();
    until("the idle instance is reclaimed", || b.driver.killed() == 1).await;
    assert!(idle_since.elapsed() >= Duration::from_millis(900), "not before its keep-alive");
    assert_eq!(b.live("f").await, 0);
    let (_, cold) = b.served_by("f", json!({})).await;
    assert!(cold, "the next call starts a new one");
}

/// A node whose memory holds two 128 MB instances, both idle, and a third function called:
/// one idle instance is evicted, chosen by the policy, and the call is served. Function `a`
/// is called five times and then left idle longest; `b` once, more recently. LRU evicts `a`
/// (idle longest); greedy-dual evicts `b` (used less, at the same start cost and size).
#[tokio::test]
async fn a_full_node_evicts_an_idle_instance_by_its_policy_before_refusing() {
    use hearth_scale::EvictionPolicy;
    for (policy, evicted, kept) in [(EvictionPolicy::Lru, "a", "b"), (EvictionPolicy::GreedyDual, "b", "a")] {
        let b = bed(|s| {
            s.node_memory_mb = 256;
            s.eviction_policy = policy;
        })
        .await;
        for f in ["a", "b", "c"] {
            b.deploy(f, json!({"memory_mb": 128, "keep_alive_s": 600})).await;
        }
        // `a` called 20 times, `b` once: greedy-dual keeps `a` unless `b` took 20 times
        // as long to start; LRU evicts `a`, idle longer.
        for n in 0..20 {
            b.served_by("a", json!({"n": n})).await;
        }
        b.served_by("b", json!({})).await;
        assert_eq!(b.gateway.node_status().memory_committed_mb, 256, "{policy}: the node is full");
        let (_, cold) = b.served_by("c", json!({})).await;
        assert!(cold, "{policy}");
        assert_eq!(b.driver.killed(), 1, "{policy}: one instance made room");
        assert_eq!((b.live(evicted).await, b.live(kept).await, b.live("c").await), (0, 1, 1), "{policy}");
        assert_eq!(b.gateway.node_status().memory_committed_mb, 256, "{policy}");
        let text = b.gateway.metrics().render(&b.gateway.metric_levels());
        assert!(text.contains("hearth_instances_evicted_total 1"), "{policy}: {text}");
    }
}

/// A held request that found nothing to evict tries again when an instance elsewhere goes
/// idle, rather than waiting for its own function's busy instance.
#[tokio::test]
async fn a_held_request_evicts_what_goes_idle_later() {
    let b = bed(|s| s.node_memory_mb = 256).await;
    b.deploy("a", json!({"memory_mb": 128, "max_instances": 2, "timeout_s": 120})).await;
    b.deploy("other", json!({"memory_mb": 128, "keep_alive_s": 600})).await;
    // `a`'s one instance stays busy for a minute; `other`'s until the driver opens.
    let long = b.spawn_call("a", json!({"sleep_ms": 60_000}));
    let other = b.spawn_call("other", json!({"hold": true}));
    let (a_pool, other_pool) = (b.latest_pool("a").await, b.latest_pool("other").await);
    let busy = |p: &Arc<crate::version_pool::VersionPool>| p.instances().iter().any(|t| t.instance.in_flight() == 1);
    until("both instances are busy", || busy(&a_pool) && busy(&other_pool)).await;
    let second = b.spawn_call("a", json!({}));
    until("the second call is held", || a_pool.waiting() == 1).await;
    assert_eq!(b.driver.killed(), 0, "nothing idle to evict yet");
    // `other` goes idle: the held call evicts it and starts a second `a`, well before the
    // first call's minute is up.
    b.driver.open();
    other.await.unwrap().unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), second).await.expect("served before `a` frees").unwrap();
    assert!(r.unwrap().cold_start, "a second instance of `a`");
    assert_eq!((b.live("a").await, b.live("other").await, b.driver.killed()), (2, 0, 1));
    long.abort();
}

/// On a full node, a call that finds its function's instance busy waits for it while that
/// costs less than a start (the instance's own start time); only then does it evict
/// another function's idle instance to start a second one.
#[tokio::test]
async fn a_held_request_waits_for_its_own_busy_instance_before_evicting() {
    let b = bed(|s| s.node_memory_mb = 256).await;
    // A caller waits up to the timeout, 10 s: time enough to wait, then start.
    b.deploy("a", json!({"memory_mb": 128, "max_instances": 2, "timeout_s": 10})).await;
    b.deploy("other", json!({"memory_mb": 128, "keep_alive_s": 600})).await;
    b.served_by("other", json!({})).await;
    // `a` takes 1.5 s to start: that is what waiting for its busy instance is weighed against.
    let start = Duration::from_millis(1500);
    b.driver.set_init(FakeInit { delay: start, error: None });
    let first = b.spawn_call("a", json!({"hold": true}));
    let pool = b.latest_pool("a").await;
    let busy = || pool.instances().iter().any(|t| t.instance.in_flight() == 1);
    until("`a` is busy", busy).await;
    // Its instance frees before a start would have finished: the held call takes it.
    let second = b.spawn_call("a", json!({}));
    until("the second call is held", || pool.waiting() == 1).await;
    b.driver.open();
    assert!(first.await.unwrap().unwrap().cold_start);
    assert!(!second.await.unwrap().unwrap().cold_start, "served by the instance it waited for");
    assert_eq!((b.live("a").await, b.live("other").await, b.driver.killed()), (1, 1, 0), "nothing evicted");
    // Busy past the cost of a start: the held call evicts `other` and starts a second `a`.
    b.driver.close();
    let long = b.spawn_call("a", json!({"hold": true}));
    until("`a` is busy again", busy).await;
    let asked = Instant::now();
    let third = b.spawn_call("a", json!({}));
    let r = tokio::time::timeout(Duration::from_secs(20), third).await.expect("served while `a` is busy").unwrap();
    assert!(r.unwrap().cold_start, "a second instance of `a`");
    assert!(asked.elapsed() >= start * 2, "waited as long as a start costs, then started one: {:?}", asked.elapsed());
    assert_eq!((b.live("a").await, b.live("other").await, b.driver.killed()), (2, 0, 1));
    b.driver.open();
    long.await.unwrap().unwrap();
}

/// `NodeMemoryFull` only when nothing idle is left to evict: busy instances and a version's
/// `min_instances` stay, and with the policy `off` idle instances stay too.
#[tokio::test]
async fn a_full_node_refuses_only_when_nothing_idle_can_go() {
    let b = bed(|s| s.node_memory_mb = 256).await;
    b.deploy("busy", json!({"memory_mb": 128})).await;
    b.deploy("kept", json!({"memory_mb": 128, "min_instances": 1})).await;
    b.deploy("new", json!({"memory_mb": 128})).await;
    until_live(&b, "kept", 1).await;
    let held = b.spawn_call("busy", json!({"hold": true}));
    let pool = b.latest_pool("busy").await;
    until("the held event runs", || pool.instances().iter().any(|t| t.instance.in_flight() == 1)).await;
    let refused = b.call("new", json!({})).await;
    assert!(
        matches!(refused, Err(InvokeError::Unavailable(AcquireError::NodeFull { committed_mb: 256, limit_mb: 256 }))),
        "{refused:?}"
    );
    assert_eq!(b.driver.killed(), 0, "neither the busy instance nor the minimum went");
    b.driver.open();
    held.await.unwrap().unwrap();
    // Once idle, the busy function's instance makes room.
    b.served_by("new", json!({})).await;
    assert_eq!((b.live("busy").await, b.live("kept").await, b.driver.killed()), (0, 1, 1));

    let off = bed(|s| {
        s.node_memory_mb = 128;
        s.eviction_policy = hearth_scale::EvictionPolicy::Off;
    })
    .await;
    off.deploy("a", json!({"memory_mb": 128, "keep_alive_s": 600})).await;
    off.deploy("b", json!({"memory_mb": 128})).await;
    off.served_by("a", json!({})).await;
    let refused = off.call("b", json!({})).await;
    assert!(matches!(refused, Err(InvokeError::Unavailable(AcquireError::NodeFull { .. }))), "{refused:?}");
    assert_eq!(off.driver.killed(), 0);
}

async fn until_live(b: &Bed, function: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.live(function).await != n {
        assert!(Instant::now() < deadline, "timed out waiting for {n} instances of {function}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
