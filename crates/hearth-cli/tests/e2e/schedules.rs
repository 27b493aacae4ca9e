//! Cron triggers on the real binary: an every-second schedule fires once a second, and across
//! a SIGKILL and a restart each instant fires at most once and each missed-runs policy is
//! honoured (`skip` fires none of the missed instants, `once` the latest of them).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use chrono::{DateTime, Utc};
use hearth_events::scheduler::occurrence_id;

use super::*;

/// `HEARTH_EVENT_SCHEDULE_GRACE_MS` of the test's server: instants older than this when the
/// scheduler sees them were missed.
const GRACE: Duration = Duration::from_millis(1000);

/// The functions answer the instant their event is for.
const HANDLER: &str = "def handler(event, context):\n    return event[\"time\"]\n";

/// The API of one running server.
struct Api {
    http: reqwest::blocking::Client,
    url: String,
    token: String,
}

impl Api {
    fn new(server: &Server, token: &str) -> Self {
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        Self { http, url: server.url.clone(), token: token.to_owned() }
    }

    /// GET `path`: its status and JSON body (`Null` when the body is not JSON).
    fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(format!("{}{path}", self.url)).bearer_auth(&self.token).send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// `GET /v1/schedules`, by function name.
    fn schedules(&self) -> HashMap<String, Schedule> {
        let list = self.get_ok("/v1/schedules");
        list["schedules"]
            .as_array()
            .unwrap_or_else(|| panic!("GET /v1/schedules lists `schedules`: {list}"))
            .iter()
            .map(|s| {
                let schedule = Schedule {
                    id: s["id"].as_str().unwrap().to_owned(),
                    fired: s["fired"].as_u64().unwrap_or_else(|| panic!("a schedule counts `fired`: {s}")),
                    dropped: s["dropped"].as_u64().unwrap(),
                    next_fire_at: time(&s["next_fire_at"]),
                };
                (s["function"].as_str().unwrap().to_owned(), schedule)
            })
            .collect()
    }

    /// `fired` of each of `functions`' schedules now.
    fn fired(&self, functions: &[&str]) -> Vec<u64> {
        let all = self.schedules();
        functions.iter().map(|f| all.get(*f).unwrap_or_else(|| panic!("no schedule of {f} listed")).fired).collect()
    }
}

/// A schedule as `GET /v1/schedules` lists it.
struct Schedule {
    id: String,
    fired: u64,
    dropped: u64,
    next_fire_at: DateTime<Utc>,
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).unwrap_or_else(|| panic!("not a time: {v}")).to_utc()
}

/// Calls `done` every 20 ms until it holds or `limit` passes; whether it held.
fn poll(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sleeps until `at`: only for conditions that are wall-clock time itself.
fn sleep_until(at: Instant) {
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
}

/// One occurrence a trigger queued, delivered.
struct Delivered {
    /// The instant, as the function answered it (`event["time"]`).
    time: DateTime<Utc>,
    /// When the scheduler queued it.
    enqueued_at: DateTime<Utc>,
    /// Deliveries started again after one was cut short (by the kill).
    redeliveries: u64,
}

/// Every occurrence trigger `schedule` of `function` queued, by request id, once each has
/// succeeded; the trigger is deleted, `schedule` is how `GET /v1/schedules` last listed it.
/// The set is complete: `schedule.fired` instants before its `next_fire_at` (its counter
/// counts those), plus whichever instants from `next_fire_at` on it fired before the delete
/// (found by their derived request ids).
fn collect(api: &Api, function: &str, schedule: &Schedule, limit: Duration) -> BTreeMap<String, Delivered> {
    let deadline = Instant::now() + limit;
    // Occurrences from `next_fire_at` on, fired between that listing and the delete.
    let mut late = vec![];
    for k in 0.. {
        let at = schedule.next_fire_at + chrono::Duration::seconds(k);
        let id = occurrence_id(&schedule.id, at);
        match api.get(&format!("/v1/invocations/{id}")) {
            (200, _) => late.push(id),
            (404, _) => break,
            (status, body) => panic!("GET /v1/invocations/{id} answered {status}: {body}"),
        }
    }
    let mut done: BTreeMap<String, Delivered> = BTreeMap::new();
    let mut pending: Vec<Value> = vec![];
    let complete = poll(deadline.saturating_duration_since(Instant::now()), || {
        let list = api.get_ok(&format!("/v1/functions/{function}/invocations?limit=1000"));
        // Request ids, deduplicated (an event has a record per attempt).
        let mut ids: Vec<String> = list["invocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["request_id"].as_str().unwrap().to_owned())
            .collect();
        ids.extend(late.iter().cloned());
        ids.sort();
        ids.dedup();
        pending.clear();
        for id in ids {
            if done.contains_key(&id) {
                continue;
            }
            let record = api.get_ok(&format!("/v1/invocations/{id}"));
            match record["status"].as_str() {
                Some("succeeded") => {
                    let answer = record["result"].as_str().unwrap_or_else(|| panic!("{function}: no result: {record}"));
                    let text: String = serde_json::from_str(answer)
                        .unwrap_or_else(|_| panic!("{function}: the result is not a JSON string: {record}"));
                    // Whole seconds: `YYYY-MM-DDTHH:MM:SSZ`, no fraction.
                    assert!(
                        text.len() == 20 && text.ends_with('Z') && !text.contains('.'),
                        "{function}: event time {text:?} is not a whole second in UTC: {record}"
                    );
                    let at = time(&Value::from(text.as_str()));
                    assert_eq!(at.timestamp_subsec_nanos(), 0, "{function}: event time {text:?} is not a whole second");
                    assert_eq!(
                        id,
                        occurrence_id(&schedule.id, at),
                        "{function}: the request id of the occurrence at {text} is not the one derived from (trigger, instant)"
                    );
                    assert_eq!(record["source"], "schedule", "{function}: {record}");
                    assert_eq!(record["function_errors"], 0, "{function}: the function never fails: {record}");
                    let redeliveries = record["redeliveries"].as_u64().unwrap();
                    done.insert(id, Delivered { time: at, enqueued_at: time(&record["enqueued_at"]), redeliveries });
                }
                Some("queued" | "running") => pending.push(record),
                _ => panic!("{function}: a scheduled occurrence did not succeed: {record}"),
            }
        }
        let counted = done.values().filter(|d| d.time < schedule.next_fire_at).count() as u64;
        assert!(
            counted <= schedule.fired,
            "{function}: {counted} occurrences before {} were delivered, but the trigger counted {} fired",
            schedule.next_fire_at,
            schedule.fired
        );
        pending.is_empty() && counted == schedule.fired && late.iter().all(|id| done.contains_key(id))
    });
    let counted = done.values().filter(|d| d.time < schedule.next_fire_at).count();
    assert!(
        complete,
        "{function}: within {limit:?}, {counted} of the {} occurrences the trigger fired before {} were delivered and \
         succeeded ({} late ones); still pending: {pending:?}",
        schedule.fired,
        schedule.next_fire_at,
        late.len(),
    );
    done
}

/// The instants of `function`'s occurrences, sorted, split at their one gap: the run before
/// the kill and the run after the restart. Every other step is exactly one second.
fn split_at_gap(function: &str, delivered: &BTreeMap<String, Delivered>) -> (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) {
    let mut times: Vec<DateTime<Utc>> = delivered.values().map(|d| d.time).collect();
    times.sort();
    let mut distinct = times.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), times.len(), "{function}: an instant fired twice (under two request ids): {times:?}");
    let one = chrono::Duration::seconds(1);
    let gaps: Vec<usize> = (1..times.len()).filter(|&i| times[i] - times[i - 1] != one).collect();
    let show = |i: usize| format!("{} -> {}", times[i - 1].format("%T"), times[i].format("%T"));
    assert_eq!(
        gaps.len(),
        1,
        "{function}: the instants are one second apart except for one gap around the downtime; steps other than 1 s: {:?}",
        gaps.iter().map(|&i| show(i)).collect::<Vec<_>>()
    );
    let after = times.split_off(gaps[0]);
    (times, after)
}

/// Two every-second cron triggers, `tick` (`missed_runs once`) and `tock` (`skip`), on a
/// server whose grace is 1 s. They fire 10 ± 1 times in a 10-second window. Then SIGKILL,
/// 3 s down (longer than the grace), a restart on the same data directory: every occurrence
/// each trigger counted is delivered once and succeeds, its request id derived from the
/// trigger and the instant, no instant twice; the instants are one second apart but for one
/// gap, over the downtime. `tock` fired none of the instants it missed; `tick` fired exactly
/// one, the latest it missed, and then ran on.
#[test]
fn cron_triggers_fire_every_second_and_honour_missed_runs_across_a_sigkill() {
    let _alone = heavy_or_timed();
    let started = Instant::now();
    let home = Home::new();
    let env = [("HEARTH_EVENT_SCHEDULE_GRACE_MS", "1000"), ("HEARTH_EVENT_RETRY_DELAY_MS", "200")];
    let server = home.up_with(&env);
    let token = admin_token(&home);
    let code = home.path().join("clock");
    std::fs::create_dir(&code).unwrap();
    std::fs::write(code.join("main.py"), HANDLER).unwrap();
    let functions = ["tick", "tock"];
    for f in functions {
        home.ok(&[
            "fn",
            "deploy",
            code.to_str().unwrap(),
            "--name",
            f,
            "--runtime",
            "python3",
            "--handler",
            "main.handler",
        ]);
    }
    let every_second = "* * * * * *";
    let tick = home.json(&["trigger", "add", "cron", "tick", "--schedule", every_second, "--missed-runs", "once"]);
    let tock = home.json(&[
        "trigger",
        "add",
        "cron",
        "tock",
        "--schedule",
        every_second,
        "--time-zone",
        "UTC",
        "--missed-runs",
        "skip",
    ]);
    for (t, policy) in [(&tick, "once"), (&tock, "skip")] {
        assert_eq!(t["schedule"], every_second, "{t}");
        assert_eq!(t["time_zone"], "UTC", "{t}");
        assert_eq!(t["missed_runs"], policy, "{t}");
        assert_eq!(t["fired"], 0, "{t}");
    }
    let api = Api::new(&server, &token);
    let listed = api.schedules();
    assert_eq!(listed.len(), 2, "GET /v1/schedules lists both triggers");
    assert_eq!(listed["tick"].id, tick["id"].as_str().unwrap());
    assert_eq!(listed["tock"].id, tock["id"].as_str().unwrap());

    // Part 1: the rate.
    assert!(
        poll(Duration::from_secs(10), || api.fired(&functions).iter().all(|&n| n >= 1)),
        "both every-second triggers fire within 10 s: fired {:?}",
        api.fired(&functions)
    );
    let window = Instant::now();
    let before = api.fired(&functions);
    // Wall-clock: the rate is measured over 10 s of it.
    sleep_until(window + Duration::from_secs(10));
    let measured = window.elapsed();
    let after = api.fired(&functions);
    for (i, f) in functions.iter().enumerate() {
        let grown = after[i] - before[i];
        eprintln!("{f}: fired {} -> {} over {measured:?}: {grown}", before[i], after[i]);
        assert!(
            (9..=11).contains(&grown),
            "{f}: an every-second trigger fired {grown} times in {measured:?}, not 10 ± 1"
        );
    }

    // Part 2: SIGKILL, down for longer than the grace, restart.
    let fired_at_kill = api.fired(&functions);
    server.kill();
    let killed_at = Utc::now();
    let down = Instant::now();
    // Wall-clock: the downtime must outlast the grace by 2 s, so that instants are missed.
    sleep_until(down + Duration::from_secs(3));
    let restarted_at = Utc::now();
    let server = home.up_with(&env);
    let api = Api::new(&server, &token);
    let first = api.fired(&functions);
    let fired_by_then =
        poll(Duration::from_secs(15), || api.fired(&functions).iter().zip(&first).all(|(now, then)| *now >= then + 3));
    assert!(
        fired_by_then,
        "both triggers fire 3 more times within 15 s of the restart: {:?} at the restart, {:?} now",
        first,
        api.fired(&functions)
    );

    // Stop them, and collect every occurrence they fired.
    let last = api.schedules();
    let mut delivered = HashMap::new();
    for f in functions {
        let s = &last[f];
        assert_eq!(s.dropped, 0, "{f}: no occurrence was dropped");
        let r = api.http.delete(format!("{}/v1/schedules/{}", api.url, s.id)).bearer_auth(&token).send().unwrap();
        assert_eq!(r.status(), 204, "DELETE /v1/schedules/{}", s.id);
    }
    let remaining = api.get_ok("/v1/schedules");
    assert_eq!(remaining["schedules"], json!([]), "both triggers deleted");
    for f in functions {
        delivered.insert(f, collect(&api, f, &last[f], Duration::from_secs(20)));
    }

    let one = chrono::Duration::seconds(1);
    let grace = chrono::Duration::from_std(GRACE).unwrap();
    let hms = |t: &DateTime<Utc>| t.format("%T%.3f").to_string();
    let mut split = HashMap::new();
    for f in functions {
        let (pre, post) = split_at_gap(f, &delivered[f]);
        let (last_pre, first_post) = (*pre.last().unwrap(), post[0]);
        // Fired before the kill means at or after its instant, and before the kill.
        assert!(
            last_pre < killed_at,
            "{f}: the run before the gap ends at {} (not before the kill at {})",
            hms(&last_pre),
            hms(&killed_at)
        );
        assert!(
            last_pre > killed_at - one * 2,
            "{f}: the run before the gap ends at {}, long before the kill at {}: instants were missed while the \
             server ran",
            hms(&last_pre),
            hms(&killed_at)
        );
        // Nothing fired after the restart is for an instant before the kill, or the one just
        // after it: the restarted scheduler's now is past `restarted_at`, at least 3 s after
        // the kill, so every instant up to the kill + 1 s was older than the grace.
        assert!(
            first_post > killed_at + one,
            "{f}: the first instant after the gap, {}, is not more than 1 s after the kill at {}",
            hms(&first_post),
            hms(&killed_at)
        );
        let redelivered = delivered[f].values().filter(|d| d.redeliveries > 0).count();
        let at_kill = fired_at_kill[functions.iter().position(|g| *g == f).unwrap()];
        // Every occurrence counted before the kill was delivered; one more instant may have
        // fired between that read and the kill.
        assert!(
            (at_kill..=at_kill + 1).contains(&(pre.len() as u64)),
            "{f}: {} occurrences before the gap, but the trigger counted {at_kill} fired just before the kill",
            pre.len()
        );
        eprintln!(
            "{f}: {} fired before the kill (counter read just before: {}), {} after the restart (counter read just \
             after: {}); gap {} -> {} ({} instants not fired); {redelivered} events delivered again \
             (cut short by the kill)",
            pre.len(),
            at_kill,
            post.len(),
            first[functions.iter().position(|g| *g == f).unwrap()],
            hms(&last_pre),
            hms(&first_post),
            (first_post - last_pre).num_seconds() - 1,
        );
        split.insert(f, (pre, post));
    }

    // `tock` skips: none of its missed instants fired. The restarted scheduler's now is at or
    // after `restarted_at`, so every instant before `restarted_at - grace` was missed; as the
    // kill came at least 3 s before, that span holds at least one instant (the gap is 2 s or
    // more), and `tock` fired none of them.
    let (tock_pre, tock_post) = &split["tock"];
    let tock_first = tock_post[0];
    assert!(
        tock_first >= restarted_at - grace,
        "tock (missed_runs skip) fired {}, missed (before the restart at {} less the {GRACE:?} grace)",
        hms(&tock_first),
        hms(&restarted_at)
    );
    assert!(tock_first - *tock_pre.last().unwrap() >= one * 2, "tock skipped at least one instant");

    // `tick` fires once: the first instant after its gap is a missed one (queued at least the
    // grace after it), and it is the only one: the rest of the run follows it second by
    // second, and it lies inside the span `tock` skipped, so it is the latest missed instant
    // (both triggers are planned with one `now` when the scheduler first runs, so it is the
    // instant just before `tock`'s first, but the assertion only needs it inside the span).
    // The latest missed instant is adjacent to the first one within the grace: `once` leaves
    // no second gap.
    let (tick_pre, tick_post) = &split["tick"];
    let missed = tick_post[0];
    let record = delivered["tick"].values().find(|d| d.time == missed).unwrap();
    let lag = record.enqueued_at - missed;
    assert!(
        lag >= grace,
        "tick (missed_runs once): the instant after the gap, {}, was queued {} ms after it: not a missed instant",
        hms(&missed),
        lag.num_milliseconds()
    );
    assert!(
        missed > *tock_pre.last().unwrap() && missed < tock_first,
        "tick's missed instant {} lies inside the span tock skipped ({} -> {})",
        hms(&missed),
        hms(tock_pre.last().unwrap()),
        hms(&tock_first)
    );
    assert!(tick_post.len() >= 4, "tick fired its missed instant and 3 more: {tick_post:?}");
    eprintln!(
        "tick: missed instant fired {} (queued {} ms after it; last before the kill {}, kill {}, restart {}), then \
         {} -> {}; tock resumed at {} (the next second: {})",
        hms(&missed),
        lag.num_milliseconds(),
        hms(tick_pre.last().unwrap()),
        hms(&killed_at),
        hms(&restarted_at),
        hms(&tick_post[1]),
        hms(tick_post.last().unwrap()),
        hms(&tock_first),
        missed + one == tock_first,
    );

    server.terminate();
    eprintln!("cron trigger test took {:?}", started.elapsed());
}
