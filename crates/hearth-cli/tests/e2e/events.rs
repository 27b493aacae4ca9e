//! Asynchronous invocations under SIGKILL: every event answered `202` is delivered.
//!
//! The functions record each delivery as a file in a host directory, so the test needs
//! instances that can write to host paths. As root, instances are sandboxed (a private mount
//! namespace shows them no host path), so when the test runs as root its server runs as
//! nobody (uid 65534) instead, where instances are plain processes (the server warns it).
//! That is deliberate: this test is about the event queue's durability, not the sandbox
//! (the isolation tests cover that).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use super::*;

/// The functions `c00`..`c19`.
const FUNCTIONS: usize = 20;
/// The uid and gid the server runs as when the test is root.
const NOBODY: u32 = 65534;

/// Records each delivery as a new file `<EFFECTS>/<request id>.<pid>.<time ns>`; a `flaky`
/// event fails the attempt that finds no earlier file of its own (so it is retried once),
/// then sleeps `ms` milliseconds.
const HANDLER: &str = r#"import os
import time


def handler(event, context):
    effects = os.environ["EFFECTS"]
    rid = context.aws_request_id
    earlier = any(name.startswith(rid + ".") for name in os.listdir(effects))
    with open(os.path.join(effects, f"{rid}.{os.getpid()}.{time.time_ns()}"), "x"):
        pass
    if event.get("flaky") and not earlier:
        raise RuntimeError("flaky: the first attempt fails")
    time.sleep(event.get("ms", 0) / 1000)
    return {"delivered": rid}
"#;

/// A home whose server runs unprivileged, 20 functions that record their deliveries in
/// `effects`, and an HTTP client for the API.
struct Rig {
    home: Home,
    effects: PathBuf,
    as_root: bool,
    http: reqwest::blocking::Client,
    token: String,
}

impl Rig {
    fn new() -> (Self, Server) {
        let home = Home::new();
        let effects = home.path().join("effects");
        std::fs::create_dir(&effects).unwrap();
        let data = home.path().join("data");
        std::fs::DirBuilder::new().mode(0o700).create(&data).unwrap();
        let as_root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        if as_root {
            for dir in [home.path(), &effects, &data] {
                std::os::unix::fs::chown(dir, Some(NOBODY), Some(NOBODY)).unwrap();
            }
        }
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let mut rig = Self { home, effects, as_root, http, token: String::new() };
        let server = rig.start();
        rig.token = admin_token(&rig.home);

        let code = rig.home.path().join("code");
        std::fs::create_dir(&code).unwrap();
        std::fs::write(code.join("main.py"), HANDLER).unwrap();
        let env = format!("EFFECTS={}", rig.effects.display());
        let deploys: Vec<_> =
            (0..FUNCTIONS)
                .map(|f| {
                    let mut c = rig.home.cmd();
                    c.args(["fn", "deploy", code.to_str().unwrap(), "--name", &name(f), "--runtime", "python3"])
                        .args(["--handler", "main.handler", "--max-instances", "2", "--timeout", "30", "--env", &env]);
                    (f, c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap())
                })
                .collect();
        for (f, deploy) in deploys {
            let out = deploy.wait_with_output().unwrap();
            assert!(out.status.success(), "deploying {}: {}", name(f), String::from_utf8_lossy(&out.stderr));
        }
        (rig, server)
    }

    /// `hearth up` on the rig's data directory, as nobody when the test is root, with short
    /// retry delays. No pre-warmed sandboxes: unprivileged, a pre-warmed Python runtime fails
    /// its initialisation (its task root is renamed under it once it is ready), which would
    /// add function errors that have nothing to do with the queue.
    fn start(&self) -> Server {
        let mut command = self.home.up_command();
        command.envs([
            ("HEARTH_EVENT_RETRY_DELAY_MS", "700"),
            ("HEARTH_EVENT_BACKOFF_MS", "100"),
            ("HEARTH_PREWARM_BUDGET_MB", "0"),
        ]);
        if self.as_root {
            command.uid(NOBODY).gid(NOBODY);
        }
        let server = self.home.spawn_up(&mut command);
        if self.as_root {
            let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
            let uids =
                status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap().split_whitespace().collect::<Vec<_>>();
            assert_eq!(
                uids,
                [NOBODY.to_string().as_str(); 4],
                "the server must run as nobody, so that instances can write to host paths"
            );
        }
        server
    }

    /// Request id → number of effect files (deliveries) it has.
    fn effects(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for e in std::fs::read_dir(&self.effects).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.split('.').next().unwrap().to_owned();
            *out.entry(id).or_default() += 1;
        }
        out
    }

    /// Posts an asynchronous invocation of `function`.
    fn post(&self, url: &str, function: &str, event: &Value) -> reqwest::Result<reqwest::blocking::Response> {
        self.http
            .post(format!("{url}/v1/functions/{function}/invoke"))
            .bearer_auth(&self.token)
            .header("X-Hearth-Invocation-Type", "Event")
            .body(event.to_string())
            .send()
    }

    /// Waits (up to `limit`) until each of `ids` has an effect file and its record says it
    /// succeeded; returns the records. Fails at once on an event that ended otherwise.
    fn wait_delivered(&self, url: &str, ids: &[String], limit: Duration) -> HashMap<String, Value> {
        let deadline = Instant::now() + limit;
        let mut missing: Vec<&String> = ids.iter().collect();
        let effects_seen = poll(limit, Duration::from_millis(50), || {
            let effects = self.effects();
            missing.retain(|id| !effects.contains_key(*id));
            missing.is_empty()
        });
        assert!(
            effects_seen,
            "{} of {} accepted events were not delivered within {limit:?}, e.g. {:?}",
            missing.len(),
            ids.len(),
            missing.iter().take(3).map(|id| self.record(url, id)).collect::<Vec<_>>()
        );
        let mut records = HashMap::new();
        let mut pending: Vec<&String> = ids.iter().collect();
        let settled = poll(deadline.saturating_duration_since(Instant::now()), Duration::from_millis(100), || {
            pending.retain(|id| {
                let record = self.record(url, id);
                match record["status"].as_str() {
                    Some("succeeded") => {
                        records.insert((*id).clone(), record);
                        false
                    }
                    Some("queued" | "running") => true,
                    _ => panic!("accepted event {id} did not succeed: {record}"),
                }
            });
            pending.is_empty()
        });
        assert!(
            settled,
            "{} delivered events are still not succeeded after {limit:?}, e.g. {:?}",
            pending.len(),
            pending.iter().take(3).map(|id| self.record(url, id)).collect::<Vec<_>>()
        );
        records
    }

    fn record(&self, url: &str, id: &str) -> Value {
        let r = self.http.get(format!("{url}/v1/invocations/{id}")).bearer_auth(&self.token).send().unwrap();
        assert_eq!(r.status(), 200, "GET /v1/invocations/{id}");
        r.json().unwrap()
    }
}

fn name(f: usize) -> String {
    format!("c{f:02}")
}

/// Every delivery the function saw (`deliveries` effect files) is an attempt on the record:
/// an attempt is stored before it starts, so a kill cannot hide one.
fn check_accounted(id: &str, deliveries: usize, record: &Value) {
    let attempts = record["attempts"].as_u64().unwrap();
    assert!(
        deliveries as u64 <= attempts,
        "event {id} was delivered {deliveries} times but its record counts {attempts} attempts: {record}"
    );
}

/// Calls `done` every `every` until it holds or `limit` passes; whether it held.
fn poll(limit: Duration, every: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// The issue's crash test. 1,000 events accepted (`202`) across 20 functions; SIGKILL of the
/// server while some events run, some are queued and some wait for a retry after a function
/// error; a restart on the same data directory: every accepted event is delivered (each
/// delivery leaves a file the function wrote outside the sandbox), and succeeds. Then SIGKILL
/// while 16 callers are being accepted (some requests wait for the synced commit): every event
/// answered `202` is delivered; one that got no answer may or may not be. Duplicate
/// deliveries are counted and printed.
#[test]
fn sigkill_mid_delivery_and_mid_acceptance_loses_no_accepted_event() {
    let _alone = heavy_or_timed();
    let started = Instant::now();
    let (rig, server) = Rig::new();

    // Phase 1: 1,000 events, 10% flaky (their first attempt fails), 20 to 200 ms each.
    let total = 1000;
    // 5 of each function's 50 events, spread over its queue.
    let flaky = |i: usize| (i / FUNCTIONS) % 10 == (i % FUNCTIONS) % 10;
    let event = |i: usize| json!({"i": i, "ms": 20 + (i * 37) % 181, "flaky": flaky(i)});
    let next = AtomicUsize::new(0);
    let answers: Vec<(usize, Result<String, String>)> = std::thread::scope(|s| {
        let acceptors: Vec<_> = (0..32)
            .map(|_| {
                s.spawn(|| {
                    let mut out = vec![];
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= total {
                            return out;
                        }
                        let answer = match rig.post(&server.url, &name(i % FUNCTIONS), &event(i)) {
                            Ok(r) if r.status() == 202 => {
                                let body: Value = r.json().unwrap();
                                Ok(body["request_id"].as_str().unwrap().to_owned())
                            }
                            Ok(r) => Err(format!("{}: {}", r.status(), r.text().unwrap_or_default())),
                            Err(e) => Err(e.to_string()),
                        };
                        out.push((i, answer));
                    }
                })
            })
            .collect();
        acceptors.into_iter().flat_map(|a| a.join().unwrap()).collect()
    });
    let refused: Vec<_> = answers.iter().filter(|(_, a)| a.is_err()).take(3).collect();
    assert!(refused.is_empty(), "every event is accepted with 202; not these: {refused:?}");
    let index: HashMap<String, usize> = answers.into_iter().map(|(i, a)| (a.unwrap(), i)).collect();
    assert_eq!(index.len(), total, "1000 distinct request ids");
    let ids: Vec<String> = index.keys().cloned().collect();
    let flaky_ids: Vec<&String> = ids.iter().filter(|id| flaky(index[*id])).collect();
    eprintln!("accepted {total} events in {:?}", started.elapsed());

    // The kill: deliveries well under way, not all done, a flaky event between its failed
    // first attempt and its retry.
    let mut seen = (0, 0, 0);
    let mid_flight = poll(Duration::from_secs(60), Duration::from_millis(5), || {
        let effects = rig.effects();
        let files: usize = effects.values().sum();
        let delivered = ids.iter().filter(|id| effects.contains_key(*id)).count();
        let retrying = flaky_ids.iter().filter(|id| effects.get(id.as_str()) == Some(&1)).count();
        seen = (files, delivered, retrying);
        files >= 150 && delivered < total && retrying > 0
    });
    assert!(
        mid_flight,
        "never saw deliveries mid-flight (effect files, events delivered, flaky events awaiting their retry): {seen:?}"
    );
    server.kill();
    let effects = rig.effects();
    let delivered = ids.iter().filter(|id| effects.contains_key(*id)).count();
    let waiting: Vec<&String> = flaky_ids.iter().copied().filter(|id| effects.get(id.as_str()) == Some(&1)).collect();
    let retrying = waiting.len();
    eprintln!(
        "SIGKILL at {:?}: {} effect files, {delivered} of {total} events delivered, {retrying} flaky events awaiting their retry",
        started.elapsed(),
        effects.values().sum::<usize>()
    );

    let server = rig.start();
    let records = rig.wait_delivered(&server.url, &ids, Duration::from_secs(120));
    let effects = rig.effects();
    let strangers: Vec<_> = effects.keys().filter(|id| !index.contains_key(*id)).collect();
    assert!(strangers.is_empty(), "effects of events nobody sent: {strangers:?}");
    for id in &ids {
        let r = &records[id];
        check_accounted(id, effects[id], r);
        if flaky(index[id]) {
            assert!(effects[id] >= 2, "flaky event {id} succeeded only after a failed attempt: {r}");
            assert!(r["function_errors"].as_u64() <= Some(1), "flaky event {id} fails once at most: {r}");
        } else {
            assert_eq!(r["function_errors"], 0, "event {id} never fails: {r}");
        }
    }
    // Failed before the kill, retried after it.
    let retried_across = waiting.iter().filter(|id| records[**id]["function_errors"] == 1).count();
    assert!(retried_across > 0, "no flaky event was waiting for its retry at the kill: {waiting:?}");
    let files: usize = effects.values().sum();
    let duplicates = files - ids.len() - flaky_ids.len();
    let redeliveries: u64 = records.values().map(|r| r["redeliveries"].as_u64().unwrap()).sum();
    eprintln!(
        "crash test: {total} accepted, {} delivered, {duplicates} duplicate deliveries ({redeliveries} redeliveries recorded)",
        ids.iter().filter(|id| effects.contains_key(*id)).count()
    );
    assert!(redeliveries > 0, "some events were running at the kill, so some were delivered again");

    // Phase 2: SIGKILL while 16 callers are being accepted; no event answered 202 is lost.
    let phase2 = Instant::now();
    let accepted = Mutex::new(Vec::<String>::new());
    let (unanswered, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
    let url = server.url.clone();
    std::thread::scope(|s| {
        for t in 0..16 {
            let (rig, url, accepted, unanswered, stop) = (&rig, &url, &accepted, &unanswered, &stop);
            s.spawn(move || {
                for k in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    match rig.post(url, &name((t + k) % FUNCTIONS), &json!({"ms": 0})) {
                        Ok(r) if r.status() == 202 => {
                            let id = match r.json::<Value>() {
                                Ok(body) => body["request_id"].as_str().unwrap().to_owned(),
                                // The answer was cut off: the caller cannot know the id.
                                Err(_) => {
                                    unanswered.fetch_add(1, Ordering::SeqCst);
                                    return;
                                }
                            };
                            accepted.lock().unwrap().push(id);
                        }
                        Ok(r) => panic!("an event was refused: {} {}", r.status(), r.text().unwrap_or_default()),
                        // The server was gone before the request was sent.
                        Err(e) if e.is_connect() => return,
                        Err(_) => {
                            unanswered.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            });
        }
        let reached = poll(Duration::from_secs(60), Duration::from_millis(1), || accepted.lock().unwrap().len() >= 300);
        server.kill();
        stop.store(true, Ordering::SeqCst);
        assert!(reached, "300 events were not accepted within 60 s");
    });
    let accepted = accepted.into_inner().unwrap();
    let unanswered = unanswered.into_inner();
    assert!(unanswered > 0, "the kill came while requests were in flight");

    let server = rig.start();
    let records = rig.wait_delivered(&server.url, &accepted, Duration::from_secs(120));
    assert_eq!(records.len(), accepted.len());
    // A function's queue is first in, first out, one delivery at a time (`--max-instances 2`
    // leaves events one): once an event sent now is delivered, so is whatever an unanswered
    // request left in that function's queue.
    let markers: Vec<String> = (0..FUNCTIONS)
        .map(|f| {
            let r = rig.post(&server.url, &name(f), &json!({"ms": 0})).unwrap();
            assert_eq!(r.status(), 202, "a marker event for {}", name(f));
            r.json::<Value>().unwrap()["request_id"].as_str().unwrap().to_owned()
        })
        .collect();
    rig.wait_delivered(&server.url, &markers, Duration::from_secs(60));
    let known: HashSet<&String> = index.keys().chain(&accepted).chain(&markers).collect();
    assert_eq!(known.len(), total + accepted.len() + FUNCTIONS, "every 202 names a request id of its own");
    let effects = rig.effects();
    let anyway: Vec<_> = effects.keys().filter(|id| !known.contains(id)).collect();
    assert!(
        anyway.len() <= unanswered,
        "{} events nobody was told about were delivered, but only {unanswered} requests went unanswered",
        anyway.len()
    );
    for id in &accepted {
        check_accounted(id, effects[id], &records[id]);
    }
    let duplicates: usize = accepted.iter().map(|id| effects[id] - 1).sum();
    eprintln!(
        "acceptance crash test: {} answered 202 and all delivered ({duplicates} duplicates), {unanswered} got no answer, {} of those delivered anyway ({:?})",
        accepted.len(),
        anyway.len(),
        phase2.elapsed()
    );
    server.terminate();
    eprintln!("events crash tests took {:?}", started.elapsed());
}
