//! The behaviour every [`EventQueue`] backend must show. Backends call [`run`] from their
//! tests, on an empty queue; it panics with a message naming the broken rule.
//!
//! Each section uses functions of its own (and lease owners of its own where it releases
//! them) and times of its own year (`2000 + n`), so that what one leaves queued, running or
//! finished cannot change another's answers: the global calls (`due_functions`, `next_due`,
//! `prune_events`, `queue_depths`, `list_schedules`) are checked in sections whose year no
//! other event reaches, or on the section's own functions. Times are whole seconds (every backend keeps
//! at least milliseconds).

use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};
use hearth_types::{
    CronTrigger, EventError, EventRecord, EventSource, EventStatus, FunctionName, MissedRuns, ScheduleState, TriggerId,
};

use crate::{Enqueued, EventQueue, Fired, Lease, NewEvent, QueueDepth, QueuedEvent, Settle, StoreError};

pub(crate) fn name(s: &str) -> FunctionName {
    s.parse().expect("valid test name")
}

/// `secs` seconds into `year`.
pub(crate) fn at(year: i32, secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).single().expect("valid test time") + Duration::seconds(secs)
}

/// A caller's event for `function`, accepted at `enqueued_at`, its payload naming it.
pub(crate) fn event(id: &str, function: &str, enqueued_at: DateTime<Utc>, max_queued: u32) -> NewEvent {
    NewEvent {
        request_id: id.into(),
        function: name(function),
        qualifier: None,
        source: EventSource::Api,
        payload: Bytes::from(format!("payload of {id}")),
        enqueued_at,
        max_queued,
        chain: 0,
    }
}

fn lease(owner: &str, now: DateTime<Utc>, until: DateTime<Utc>, limit: usize) -> Lease {
    Lease { owner: owner.into(), now, until, limit }
}

pub(crate) fn error(error_type: &str, function_error: bool) -> EventError {
    EventError { error_type: error_type.into(), message: format!("{error_type} happened"), function_error }
}

fn succeeded(executed_version: u32, result: &str) -> Settle {
    Settle::Succeeded { executed_version, result: result.into(), result_truncated: false }
}

pub(crate) fn dead_letter() -> Settle {
    Settle::DeadLetter { executed_version: Some(1), error: error("Handled", true) }
}

fn ids(events: &[QueuedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.record.request_id.as_str()).collect()
}

/// The names `due_functions(now)` answers.
async fn due(q: &dyn EventQueue, now: DateTime<Utc>) -> Vec<String> {
    q.due_functions(now).await.unwrap().into_iter().map(|f| f.as_str().to_owned()).collect()
}

pub(crate) async fn get(q: &dyn EventQueue, id: &str) -> EventRecord {
    q.get_event(id).await.unwrap().unwrap_or_else(|| panic!("event {id} must be stored"))
}

async fn all_accepted(q: &dyn EventQueue, events: &[NewEvent]) {
    let results = q.enqueue(events).await.unwrap();
    assert_eq!(results, vec![Enqueued::Accepted; events.len()], "fresh events under their bound are accepted");
}

/// Leases every deliverable event of `function` at `now` for `w`, until an hour later.
async fn lease_all(q: &dyn EventQueue, function: &str, now: DateTime<Utc>) -> Vec<QueuedEvent> {
    q.lease(&name(function), &lease("w", now, now + Duration::hours(1), 100)).await.unwrap()
}

/// Runs every check against an empty queue.
pub async fn run(q: &dyn EventQueue) {
    due_and_retry(q).await;
    acceptance_and_order(q).await;
    bound(q).await;
    leases(q).await;
    forwards(q).await;
    release(q).await;
    dead_letters(q).await;
    pruning(q).await;
    depths(q).await;
    schedules(q).await;
    payloads_and_deletion(q).await;
    crate::queue_conformance_nats::run(q).await;
}

/// A succeeded or failed event's payload is dropped (a dead letter keeps its own, for a
/// redrive); `delete_events_of` removes every event of that function only.
async fn payloads_and_deletion(q: &dyn EventQueue) {
    let t = |s| at(2011, s);
    all_accepted(q, &[event("pd-ok", "q-pd", t(0), 10), event("pd-bad", "q-pd", t(1), 10)]).await;
    all_accepted(q, &[event("pd-dead", "q-pd", t(2), 10), event("pd-other", "q-pd-other", t(3), 10)]).await;
    let leased = lease_all(q, "q-pd", t(5)).await;
    assert_eq!(ids(&leased), ["pd-ok", "pd-bad", "pd-dead"]);
    assert!(q.settle("pd-ok", 1, t(6), succeeded(1, "ok"), None).await.unwrap());
    let failed = Settle::Failed { executed_version: Some(1), error: error("Handled", true) };
    assert!(q.settle("pd-bad", 1, t(6), failed, None).await.unwrap());
    assert!(q.settle("pd-dead", 1, t(6), dead_letter(), None).await.unwrap());
    let dead = q.list_dead_letters(&name("q-pd"), None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(&dead[0].payload[..], b"payload of pd-dead", "a dead letter keeps its payload");
    // The finished ones no longer hold theirs: redriven (were they dead letters) they would
    // be empty, which the list cannot show; the queue's own answer is the record, kept.
    assert_eq!(get(q, "pd-ok").await.status, EventStatus::Succeeded);
    assert_eq!(q.delete_events_of(&name("q-pd")).await.unwrap(), 3, "every event of the function goes");
    assert!(q.get_event("pd-ok").await.unwrap().is_none() && q.get_event("pd-dead").await.unwrap().is_none());
    assert!(q.list_dead_letters(&name("q-pd"), None, 10).await.unwrap().is_empty());
    assert_eq!(get(q, "pd-other").await.status, EventStatus::Queued, "another function's events stay");
    assert_eq!(q.delete_events_of(&name("q-pd")).await.unwrap(), 0);
}

/// `due_functions` and `next_due` follow queued events' `not_before` and running events'
/// lease expiry; a retry is deliverable at its `not_before` and not before; function errors
/// are counted; `executed_version` is kept when an outcome has none; success clears the error.
async fn due_and_retry(q: &dyn EventQueue) {
    let t = |s| at(2001, s);
    let a = name("q-retry");
    assert_eq!(q.next_due().await.unwrap(), None, "an empty queue has nothing due");
    assert!(q.due_functions(t(10_000)).await.unwrap().is_empty(), "an empty queue has no due function");
    // q-retry-b's events arrive first and their request ids sort on both sides of q-retry's:
    // neither orders the answer, and q-retry-b is named once.
    let evs = [event("rt-1", "q-retry-b", t(20), 10), event("rt-3", "q-retry-b", t(20), 10)];
    all_accepted(q, &evs).await;
    all_accepted(q, &[event("rt-2", "q-retry", t(10), 10)]).await;
    assert_eq!(q.next_due().await.unwrap(), Some(t(10)), "next_due: the earliest queued not_before");
    assert!(q.due_functions(t(9)).await.unwrap().is_empty(), "nothing is due before its not_before");
    assert_eq!(due(q, t(10)).await, ["q-retry"], "due at its not_before exactly");
    assert_eq!(due(q, t(20)).await, ["q-retry", "q-retry-b"], "due functions, once each, by name");
    assert!(q.lease(&a, &lease("w1", t(9), t(40), 10)).await.unwrap().is_empty(), "no lease before not_before");

    let leased = q.lease(&a, &lease("w1", t(10), t(40), 10)).await.unwrap();
    assert_eq!(ids(&leased), ["rt-2"], "lease at not_before");
    let r = &leased[0].record;
    assert_eq!(
        (r.status, r.attempts, r.last_attempt_at, r.redeliveries),
        (EventStatus::Running, 1, Some(t(10)), 0),
        "a leased event runs its first attempt"
    );
    assert_eq!(q.next_due().await.unwrap(), Some(t(20)), "next_due: q-retry-b's event is queued before the lease ends");
    assert_eq!(due(q, t(39)).await, ["q-retry-b"], "a running event is not due before its lease ends");
    assert_eq!(due(q, t(40)).await, ["q-retry", "q-retry-b"], "due when its lease expires, once");
    let other = q.lease(&name("q-retry-b"), &lease("w1", t(20), t(25), 10)).await.unwrap();
    assert_eq!(ids(&other), ["rt-1", "rt-3"], "q-retry-b's events");
    assert_eq!(q.next_due().await.unwrap(), Some(t(25)), "next_due: the earliest lease expiry");
    assert!(q.settle("rt-1", 1, t(21), succeeded(1, "ok"), None).await.unwrap());
    assert!(q.settle("rt-3", 1, t(21), succeeded(1, "ok"), None).await.unwrap());
    assert_eq!(q.next_due().await.unwrap(), Some(t(40)), "a settled event is not due any more");

    let retry = Settle::Retry { not_before: t(100), executed_version: Some(3), error: error("Unhandled", true) };
    assert!(q.settle("rt-2", 1, t(12), retry, None).await.unwrap(), "settle of the running attempt applies");
    let after_retry = get(q, "rt-2").await;
    let expected = EventRecord {
        status: EventStatus::Queued,
        not_before: t(100),
        function_errors: 1,
        executed_version: Some(3),
        error: Some(error("Unhandled", true)),
        ..r.clone()
    };
    assert_eq!(after_retry, expected, "a retry queues the event again at not_before, counting the function error");
    assert_eq!(q.next_due().await.unwrap(), Some(t(100)), "next_due: the retry's not_before");
    assert!(q.due_functions(t(99)).await.unwrap().is_empty(), "a retry is not due before its not_before");
    assert!(q.lease(&a, &lease("w1", t(99), t(130), 10)).await.unwrap().is_empty(), "no lease before the retry");
    assert_eq!(due(q, t(100)).await, ["q-retry"], "the retry is due at its not_before");
    let again = q.lease(&a, &lease("w1", t(100), t(130), 10)).await.unwrap();
    assert_eq!(ids(&again), ["rt-2"], "the retry is leased at its not_before");
    let r = &again[0].record;
    assert_eq!((r.attempts, r.redeliveries), (2, 0), "a retry is a new attempt, not a redelivery");

    let platform = Settle::Retry { not_before: t(200), executed_version: None, error: error("TooManyRequests", false) };
    assert!(q.settle("rt-2", 2, t(101), platform, None).await.unwrap());
    let r = get(q, "rt-2").await;
    assert_eq!(r.function_errors, 1, "a platform error is not a function error");
    assert_eq!(r.error, Some(error("TooManyRequests", false)), "the last error is kept");
    assert_eq!(r.executed_version, Some(3), "an outcome without executed_version keeps the one stored");
    assert_eq!(ids(&lease_all(q, "q-retry", t(200)).await), ["rt-2"], "the second retry");
    assert!(q.settle("rt-2", 3, t(205), succeeded(4, "done"), None).await.unwrap());
    let done = get(q, "rt-2").await;
    let expected = EventRecord {
        status: EventStatus::Succeeded,
        attempts: 3,
        last_attempt_at: Some(t(200)),
        finished_at: Some(t(205)),
        executed_version: Some(4),
        result: Some("done".into()),
        error: None,
        ..r
    };
    assert_eq!(done, expected, "success: result, executed_version, finished_at, and no error");
    assert_eq!(q.next_due().await.unwrap(), None, "nothing is due once every event is final");
    assert!(q.due_functions(t(10_000)).await.unwrap().is_empty(), "final events are never due");
    assert!(!q.settle("rt-2", 3, t(206), dead_letter(), None).await.unwrap(), "a final event is not settled again");
    assert_eq!(get(q, "rt-2").await, done, "a refused settle changes nothing");
}

/// An accepted event's record; delivery in order of acceptance, up to the limit; a
/// duplicate request id changes nothing, within one call too.
async fn acceptance_and_order(q: &dyn EventQueue) {
    let t = |s| at(2002, s);
    let f = name("q-order");
    let special = NewEvent {
        qualifier: Some("2".into()),
        source: EventSource::Lambda,
        chain: 2,
        ..event("ord-a", "q-order", t(5), 10)
    };
    all_accepted(q, &[event("ord-c", "q-order", t(0), 10), special, event("ord-b", "q-order", t(1), 10)]).await;
    let expected = EventRecord {
        request_id: "ord-a".into(),
        function: f.clone(),
        qualifier: Some("2".into()),
        status: EventStatus::Queued,
        source: EventSource::Lambda,
        attempts: 0,
        function_errors: 0,
        redeliveries: 0,
        redrives: 0,
        enqueued_at: t(5),
        queued_at: t(5),
        not_before: t(5),
        last_attempt_at: None,
        finished_at: None,
        executed_version: None,
        result: None,
        result_truncated: false,
        error: None,
        destination: None,
    };
    assert_eq!(get(q, "ord-a").await, expected, "an accepted event's record");
    assert_eq!(q.get_event("ord-none").await.unwrap(), None, "an unknown request id has no event");

    let twin = NewEvent { payload: Bytes::from_static(b"other"), ..event("ord-a", "q-order-x", t(6), 10) };
    let results =
        q.enqueue(&[twin, event("ord-d", "q-order", t(7), 10), event("ord-d", "q-order", t(7), 10)]).await.unwrap();
    assert_eq!(
        results,
        [Enqueued::Duplicate, Enqueued::Accepted, Enqueued::Duplicate],
        "a request id is accepted once, within one call too"
    );
    assert_eq!(get(q, "ord-a").await, expected, "a duplicate changes nothing");
    assert!(lease_all(q, "q-order-x", t(100)).await.is_empty(), "a duplicate is not stored for its function");

    let first = q.lease(&f, &lease("w1", t(10), t(60), 2)).await.unwrap();
    assert_eq!(ids(&first), ["ord-c", "ord-a"], "leased oldest first, in order of acceptance, up to the limit");
    assert_eq!(first[1].payload, Bytes::from("payload of ord-a"), "the payload is the first one accepted");
    assert_eq!((first[0].chain, first[1].chain), (0, 2), "the chain is kept");
    for e in &first {
        assert_eq!(get(q, &e.record.request_id).await, e.record, "lease returns the record as it now is");
        assert_eq!((e.record.status, e.record.attempts), (EventStatus::Running, 1), "leased: running, attempt 1");
    }
    let rest = q.lease(&f, &lease("w2", t(10), t(60), 10)).await.unwrap();
    assert_eq!(ids(&rest), ["ord-b", "ord-d"], "a second lease gets only the events not leased");
    assert!(q.lease(&f, &lease("w3", t(11), t(60), 10)).await.unwrap().is_empty(), "every event is leased");
    assert!(q.lease(&f, &lease("w3", t(60), t(90), 0)).await.unwrap().is_empty(), "limit 0 leases nothing");
}

/// `max_queued` bounds the events queued or running, one at a time within a call; finished
/// events do not count, nor do other functions' events.
async fn bound(q: &dyn EventQueue) {
    let t = |s| at(2003, s);
    all_accepted(q, &[event("bd-1", "q-bound", t(0), 3), event("bd-2", "q-bound", t(0), 3)]).await;
    all_accepted(q, &[event("bd-3", "q-bound", t(0), 3)]).await;
    let full = q.enqueue(&[event("bd-4", "q-bound", t(0), 3)]).await.unwrap();
    assert_eq!(full, [Enqueued::QueueFull { queued: 3 }], "refused at the bound, saying how many are queued");
    assert_eq!(q.get_event("bd-4").await.unwrap(), None, "a refused event is not stored");
    all_accepted(q, &[event("bd-other", "q-bound-other", t(0), 1)]).await;
    let results = q.enqueue(&[event("bd-4", "q-bound", t(1), 4), event("bd-5", "q-bound", t(1), 4)]).await.unwrap();
    assert_eq!(
        results,
        [Enqueued::Accepted, Enqueued::QueueFull { queued: 4 }],
        "a refused id can come back; the events of one call count against the bound in turn"
    );
    let leased = q.lease(&name("q-bound"), &lease("w", t(2), t(100), 3)).await.unwrap();
    assert_eq!(ids(&leased), ["bd-1", "bd-2", "bd-3"]);
    let full = q.enqueue(&[event("bd-5", "q-bound", t(2), 4)]).await.unwrap();
    assert_eq!(full, [Enqueued::QueueFull { queued: 4 }], "running events count against the bound");
    assert!(q.settle("bd-1", 1, t(3), succeeded(1, "ok"), None).await.unwrap());
    assert!(q.settle("bd-2", 1, t(3), dead_letter(), None).await.unwrap());
    let failed = Settle::Failed { executed_version: None, error: error("Handled", true) };
    assert!(q.settle("bd-3", 1, t(3), failed, None).await.unwrap());
    let results = q.enqueue(&[event("bd-5", "q-bound", t(4), 2), event("bd-6", "q-bound", t(4), 2)]).await.unwrap();
    assert_eq!(
        results,
        [Enqueued::Accepted, Enqueued::QueueFull { queued: 2 }],
        "succeeded, dead-lettered and failed events do not count against the bound"
    );
    let zero = q.enqueue(&[event("bd-zero", "q-bound-zero", t(4), 0)]).await.unwrap();
    assert_eq!(zero, [Enqueued::QueueFull { queued: 0 }], "a bound of 0 refuses every event");
}

/// A leased event is not leased again before its lease expires; it is at expiry, as a
/// redelivery; the worker whose lease expired cannot settle it, nor store its forward.
async fn leases(q: &dyn EventQueue) {
    let t = |s| at(2004, s);
    let f = name("q-lease");
    all_accepted(q, &[event("ls-1", "q-lease", t(0), 10), event("ls-2", "q-lease", t(0), 10)]).await;
    let w1 = q.lease(&f, &lease("w1", t(0), t(30), 1)).await.unwrap();
    assert_eq!(ids(&w1), ["ls-1"]);
    let w2 = q.lease(&f, &lease("w2", t(29), t(60), 10)).await.unwrap();
    assert_eq!(ids(&w2), ["ls-2"], "a leased event is not leased again before its lease expires");
    let w2 = q.lease(&f, &lease("w2", t(30), t(60), 10)).await.unwrap();
    assert_eq!(ids(&w2), ["ls-1"], "an event whose lease expired is leased again");
    let r = w2[0].record.clone();
    assert_eq!(
        (r.status, r.attempts, r.redeliveries, r.last_attempt_at),
        (EventStatus::Running, 2, 1, Some(t(30))),
        "leased again after expiry: a new attempt, counted as a redelivery"
    );

    let forward = NewEvent { source: EventSource::Destination, chain: 1, ..event("ls-fwd", "q-lease-dest", t(31), 10) };
    let stale = q.settle("ls-1", 1, t(31), succeeded(1, "late"), Some(forward)).await.unwrap();
    assert!(!stale, "a settle of an attempt that was leased again is refused");
    assert_eq!(get(q, "ls-1").await, r, "a refused settle changes nothing");
    assert_eq!(q.get_event("ls-fwd").await.unwrap(), None, "a refused settle stores no forward");
    assert!(lease_all(q, "q-lease-dest", t(1000)).await.is_empty(), "no forward to deliver");
    assert!(!q.settle("ls-1", 3, t(31), dead_letter(), None).await.unwrap(), "an attempt not yet made is refused");
    assert!(!q.settle("ls-none", 1, t(31), dead_letter(), None).await.unwrap(), "an unknown event is refused");
    assert_eq!(get(q, "ls-1").await, r, "refused settles change nothing");
    assert!(!q.settle("ls-2", 2, t(31), dead_letter(), None).await.unwrap(), "the wrong attempt is refused");
    assert_eq!(get(q, "ls-2").await.status, EventStatus::Running, "refused: ls-2 still runs");

    assert!(q.settle("ls-1", 2, t(32), succeeded(1, "ok"), None).await.unwrap(), "the current attempt settles");
    let done = get(q, "ls-1").await;
    assert_eq!((done.status, done.redeliveries), (EventStatus::Succeeded, 1));
    assert!(!q.settle("ls-1", 2, t(33), dead_letter(), None).await.unwrap(), "an attempt settles once");
    assert_eq!(get(q, "ls-1").await, done, "a second settle changes nothing");
    assert!(lease_all(q, "q-lease", t(1000)).await.iter().all(|e| e.record.request_id != "ls-1"), "final: no lease");
}

/// A settle's forward is stored with it, beyond its function's bound; a forward whose id
/// exists is dropped and the settle still applies; the event names its destination.
async fn forwards(q: &dyn EventQueue) {
    let t = |s| at(2005, s);
    all_accepted(q, &[event("fw-busy", "q-fwd-dst", t(0), 1)]).await;
    let full = q.enqueue(&[event("fw-refused", "q-fwd-dst", t(0), 1)]).await.unwrap();
    assert_eq!(full, [Enqueued::QueueFull { queued: 1 }], "q-fwd-dst is at its bound");
    all_accepted(q, &[event("fw-1", "q-fwd-src", t(0), 10), event("fw-2", "q-fwd-src", t(0), 10)]).await;
    assert_eq!(ids(&lease_all(q, "q-fwd-src", t(1)).await), ["fw-1", "fw-2"]);

    let forward = NewEvent {
        source: EventSource::Destination,
        chain: 1,
        payload: Bytes::from_static(b"{\"requestContext\":{\"condition\":\"RetriesExhausted\"}}"),
        ..event("fw-out", "q-fwd-dst", t(5), 1)
    };
    let failed = Settle::Failed { executed_version: Some(7), error: error("Unhandled", true) };
    assert!(q.settle("fw-1", 1, t(5), failed, Some(forward.clone())).await.unwrap(), "settle with a forward");
    let src = get(q, "fw-1").await;
    assert_eq!(
        (src.status, src.finished_at, src.function_errors, src.executed_version, src.destination),
        (EventStatus::Failed, Some(t(5)), 1, Some(7), Some(name("q-fwd-dst"))),
        "failed: finished, the function error counted, its destination named"
    );
    assert_eq!(src.error, Some(error("Unhandled", true)), "failed: the error kept");
    let out = get(q, "fw-out").await;
    assert_eq!(
        (out.status, out.source, out.function, out.enqueued_at, out.not_before, out.attempts),
        (EventStatus::Queued, EventSource::Destination, name("q-fwd-dst"), t(5), t(5), 0),
        "the forward is stored as a new event, beyond its function's bound"
    );
    let delivered = lease_all(q, "q-fwd-dst", t(6)).await;
    assert_eq!(ids(&delivered), ["fw-busy", "fw-out"], "the forward is delivered after older events");
    assert_eq!((delivered[1].chain, &delivered[1].payload), (1, &forward.payload), "the forward's payload and chain");

    let twin = NewEvent { payload: Bytes::from_static(b"twin"), ..forward };
    let truncated = Settle::Succeeded { executed_version: 8, result: "x".repeat(10), result_truncated: true };
    assert!(q.settle("fw-2", 1, t(7), truncated, Some(twin)).await.unwrap(), "a duplicate forward is no error");
    assert_eq!(get(q, "fw-out").await, delivered[1].record, "a forward whose id exists changes nothing");
    let ok = get(q, "fw-2").await;
    assert_eq!(
        (ok.status, ok.result, ok.result_truncated, ok.finished_at, ok.executed_version),
        (EventStatus::Succeeded, Some("x".repeat(10)), true, Some(t(7)), Some(8)),
        "succeeded: the result and whether it was cut"
    );
}

/// `release_leases` makes one owner's running events deliverable at once, as redeliveries,
/// and leaves other owners' alone.
async fn release(q: &dyn EventQueue) {
    let t = |s| at(2006, s);
    let f = name("q-release");
    let evs = ["rl-1", "rl-2", "rl-3"].map(|id| event(id, "q-release", t(0), 10));
    all_accepted(q, &evs).await;
    assert_eq!(ids(&q.lease(&f, &lease("rl-w1", t(0), t(100), 2)).await.unwrap()), ["rl-1", "rl-2"]);
    assert_eq!(ids(&q.lease(&f, &lease("rl-w2", t(0), t(100), 2)).await.unwrap()), ["rl-3"]);
    let before = get(q, "rl-1").await;

    assert_eq!(q.release_leases("rl-w1", t(10)).await.unwrap(), 2, "w1's two leases are released");
    let released = get(q, "rl-1").await;
    let expected = EventRecord { status: EventStatus::Queued, not_before: t(10), redeliveries: 1, ..before };
    assert_eq!(released, expected, "released: queued, deliverable now, a redelivery counted");
    assert_eq!(get(q, "rl-3").await.status, EventStatus::Running, "another owner's lease is kept");
    assert_eq!(q.release_leases("rl-w1", t(11)).await.unwrap(), 0, "nothing left to release");
    assert!(q.due_functions(t(10)).await.unwrap().contains(&f), "released events are due at once");
    assert!(q.lease(&f, &lease("rl-w3", t(9), t(50), 10)).await.unwrap().is_empty(), "due from the release on");

    let again = q.lease(&f, &lease("rl-w3", t(10), t(50), 10)).await.unwrap();
    assert_eq!(ids(&again), ["rl-1", "rl-2"], "released events are leased again, in order");
    let r = &again[0].record;
    assert_eq!((r.attempts, r.redeliveries), (2, 1), "leased after a release: the redelivery is counted once");
    assert!(!q.settle("rl-1", 1, t(11), succeeded(1, "late"), None).await.unwrap(), "the released attempt is stale");
    assert!(q.settle("rl-1", 2, t(12), succeeded(1, "ok"), None).await.unwrap());
    assert_eq!(q.release_leases("rl-w3", t(13)).await.unwrap(), 1, "a settled event is not released");
    assert_eq!(get(q, "rl-1").await.status, EventStatus::Succeeded, "release leaves a settled event alone");
}

/// Dead letters are listed per function, oldest accepted first, by pages; a redrive queues
/// one, some or all of a function's again, and no one else's.
async fn dead_letters(q: &dyn EventQueue) {
    let t = |s| at(2007, s);
    let f = name("q-dead");
    // Accepted in this order; their request ids sort the other way.
    let mut evs: Vec<_> = ["dl-e", "dl-d", "dl-c", "dl-b", "dl-a"].map(|id| event(id, "q-dead", t(0), 10)).into();
    evs.insert(1, event("dl-other", "q-dead-other", t(0), 10));
    all_accepted(q, &evs).await;
    assert_eq!(lease_all(q, "q-dead", t(1)).await.len(), 5);
    assert_eq!(lease_all(q, "q-dead-other", t(1)).await.len(), 1);
    // Dead-lettered in an order of their own.
    for (i, id) in ["dl-a", "dl-d", "dl-e", "dl-b", "dl-other"].into_iter().enumerate() {
        assert!(q.settle(id, 1, t(10 + i as i64), dead_letter(), None).await.unwrap());
    }
    assert!(q.settle("dl-c", 1, t(20), succeeded(1, "ok"), None).await.unwrap());

    let all = q.list_dead_letters(&f, None, 10).await.unwrap();
    assert_eq!(ids(&all), ["dl-e", "dl-d", "dl-b", "dl-a"], "a function's dead letters, in order of acceptance");
    assert_eq!(all[3].payload, Bytes::from("payload of dl-a"), "dead letters carry their payload");
    let r = &all[0].record;
    assert_eq!(
        (r.status, r.finished_at, r.function_errors, r.executed_version),
        (EventStatus::DeadLettered, Some(t(12)), 1, Some(1)),
        "a dead letter's record"
    );
    let page = |after: Option<&'static str>, limit: usize| dead_page(q, "q-dead", after, limit);
    assert_eq!(page(None, 2).await, ["dl-e", "dl-d"], "first page");
    assert_eq!(page(Some("dl-d"), 2).await, ["dl-b", "dl-a"], "the next page starts strictly after `after`");
    assert!(page(Some("dl-a"), 2).await.is_empty(), "nothing after the last");
    assert_eq!(page(Some("dl-c"), 10).await, ["dl-b", "dl-a"], "after an event that is no dead letter: its place");
    let other = q.list_dead_letters(&name("q-dead-other"), None, 10).await.unwrap();
    assert_eq!(ids(&other), ["dl-other"], "each function's own dead letters");

    let named = ["dl-d", "dl-other", "dl-c"].map(String::from);
    assert_eq!(q.redrive(&f, Some(&named[..]), t(100)).await.unwrap(), 1, "only the function's dead letters named");
    let redriven = get(q, "dl-d").await;
    let dead = all[1].record.clone();
    let expected = EventRecord {
        status: EventStatus::Queued,
        not_before: t(100),
        queued_at: t(100),
        function_errors: 0,
        redrives: 1,
        finished_at: None,
        ..dead
    };
    assert_eq!(redriven, expected, "redriven: queued now, errors reset, the last error kept");
    assert_eq!(get(q, "dl-other").await.status, EventStatus::DeadLettered, "another function's dead letter stays");
    assert_eq!(get(q, "dl-c").await.status, EventStatus::Succeeded, "a succeeded event is not redriven");
    assert_eq!(page(None, 10).await, ["dl-e", "dl-b", "dl-a"], "a redriven event leaves the list");
    assert_eq!(page(Some("dl-d"), 10).await, ["dl-b", "dl-a"], "paging after an event redriven since");
    assert!(q.due_functions(t(100)).await.unwrap().contains(&f), "a redriven event is due at once");
    let leased = lease_all(q, "q-dead", t(100)).await;
    assert_eq!(ids(&leased), ["dl-d"], "the redriven event is delivered");
    assert_eq!((leased[0].record.attempts, leased[0].record.redeliveries), (2, 0), "a redrive is no redelivery");
    assert!(q.settle("dl-d", 2, t(110), dead_letter(), None).await.unwrap());
    assert_eq!(page(None, 10).await, ["dl-e", "dl-d", "dl-b", "dl-a"], "listed by acceptance, not by when it died");

    let none: &[String] = &[];
    assert_eq!(q.redrive(&f, Some(none), t(200)).await.unwrap(), 0, "an empty list of ids redrives none");
    assert_eq!(q.redrive(&f, None, t(200)).await.unwrap(), 4, "redrive of all the function's dead letters");
    assert!(page(None, 10).await.is_empty(), "no dead letter left");
    assert_eq!(get(q, "dl-d").await.redrives, 2, "redrives are counted");
    assert_eq!(get(q, "dl-a").await.queued_at, t(200));
    assert_eq!(ids(&q.list_dead_letters(&name("q-dead-other"), None, 10).await.unwrap()), ["dl-other"]);
    assert_eq!(q.redrive(&f, None, t(201)).await.unwrap(), 0, "nothing left to redrive");
    let leased = lease_all(q, "q-dead", t(200)).await;
    assert_eq!(ids(&leased), ["dl-e", "dl-d", "dl-b", "dl-a"], "redriven events are delivered in their order");
}

async fn dead_page(q: &dyn EventQueue, function: &str, after: Option<&str>, limit: usize) -> Vec<String> {
    let letters = q.list_dead_letters(&name(function), after, limit).await.unwrap();
    ids(&letters).into_iter().map(str::to_owned).collect()
}

/// `prune_events` drops succeeded and failed events finished before one cutoff and dead
/// letters finished before another; nothing else. Its year is before every other section's.
async fn pruning(q: &dyn EventQueue) {
    let t = |s| at(2000, s);
    let (finished_before, dead_before) = (t(100), t(50));
    // Request id, how it ends, and when.
    type Ending = (&'static str, fn() -> Settle, i64);
    let ends: [Ending; 7] = [
        ("pr-ok-old", || succeeded(1, "ok"), 99),
        ("pr-ok-at", || succeeded(1, "ok"), 100),
        ("pr-failed-old", || Settle::Failed { executed_version: None, error: error("Handled", true) }, 99),
        ("pr-failed-new", || Settle::Failed { executed_version: None, error: error("Handled", true) }, 101),
        ("pr-dead-old", dead_letter, 49),
        ("pr-dead-at", dead_letter, 50),
        ("pr-dead-mid", dead_letter, 80),
    ];
    let mut evs: Vec<_> = ends.iter().map(|(id, _, _)| event(id, "q-prune", t(0), 20)).collect();
    evs.extend([event("pr-running", "q-prune", t(0), 20), event("pr-queued", "q-prune", t(0), 20)]);
    all_accepted(q, &evs).await;
    assert_eq!(lease_all(q, "q-prune", t(0)).await.len(), 9);
    for (id, outcome, finished) in &ends {
        assert!(q.settle(id, 1, t(*finished), outcome(), None).await.unwrap());
    }
    let retry = Settle::Retry { not_before: t(10), executed_version: None, error: error("Unhandled", true) };
    assert!(q.settle("pr-queued", 1, t(1), retry, None).await.unwrap());

    assert_eq!(q.prune_events(finished_before, dead_before).await.unwrap(), 3, "three events are old enough");
    for (id, _, _) in &ends {
        let gone = ["pr-ok-old", "pr-failed-old", "pr-dead-old"].contains(id);
        let stored = q.get_event(id).await.unwrap().is_some();
        assert_eq!(stored, !gone, "{id}: pruned only if finished before its cutoff (dead letters have their own)");
    }
    assert!(q.get_event("pr-running").await.unwrap().is_some(), "a running event is never pruned");
    assert!(q.get_event("pr-queued").await.unwrap().is_some(), "a queued event is never pruned");
    assert_eq!(q.prune_events(finished_before, dead_before).await.unwrap(), 0, "pruning again finds nothing");
    let letters = q.list_dead_letters(&name("q-prune"), None, 10).await.unwrap();
    assert_eq!(ids(&letters), ["pr-dead-at", "pr-dead-mid"], "the dead letters kept");
}

/// `queue_depths`: per function with a queued, running or dead-lettered event, by name;
/// the oldest `queued_at` among queued and running events only.
async fn depths(q: &dyn EventQueue) {
    let t = |s| at(2009, s);
    all_accepted(
        q,
        &[
            event("dp-b1", "q-depth-b", t(10), 10),
            event("dp-b2", "q-depth-b", t(20), 10),
            event("dp-b3", "q-depth-b", t(30), 10),
            event("dp-a1", "q-depth-a", t(1), 10),
            event("dp-a2", "q-depth-a", t(2), 10),
            event("dp-a3", "q-depth-a", t(3), 10),
            event("dp-done", "q-depth-done", t(0), 10),
            event("dp-dead", "q-depth-dead", t(0), 10),
        ],
    )
    .await;
    assert_eq!(ids(&q.lease(&name("q-depth-b"), &lease("w", t(40), t(99), 1)).await.unwrap()), ["dp-b1"]);
    assert_eq!(ids(&q.lease(&name("q-depth-a"), &lease("w", t(40), t(99), 2)).await.unwrap()), ["dp-a1", "dp-a2"]);
    assert!(q.settle("dp-a1", 1, t(41), dead_letter(), None).await.unwrap());
    assert!(q.settle("dp-a2", 1, t(41), succeeded(1, "ok"), None).await.unwrap());
    assert_eq!(lease_all(q, "q-depth-done", t(40)).await.len(), 1);
    assert!(q.settle("dp-done", 1, t(41), succeeded(1, "ok"), None).await.unwrap());
    assert_eq!(lease_all(q, "q-depth-dead", t(40)).await.len(), 1);
    assert!(q.settle("dp-dead", 1, t(41), dead_letter(), None).await.unwrap());

    let all = q.queue_depths().await.unwrap();
    assert!(all.windows(2).all(|w| w[0].function < w[1].function), "one entry per function, by name: {all:?}");
    let ours: Vec<_> = all.into_iter().filter(|d| d.function.as_str().starts_with("q-depth-")).collect();
    let depth = |f: &str, queued, running, dead_lettered, oldest_queued_at| QueueDepth {
        function: name(f),
        queued,
        running,
        dead_lettered,
        oldest_queued_at,
    };
    assert_eq!(
        ours,
        [
            depth("q-depth-a", 1, 0, 1, Some(t(3))),
            depth("q-depth-b", 2, 1, 0, Some(t(10))),
            depth("q-depth-dead", 0, 0, 1, None),
        ],
        "depths count each status; the oldest is of queued and running events; a function with only \
         finished events is not listed"
    );
}

/// A trigger id that sorts by `n`.
pub(crate) fn trigger_id(n: u32) -> TriggerId {
    format!("00000000-0000-0000-0000-{n:012x}").parse().expect("valid test trigger id")
}

fn cron(n: u32, function: &str, created_at: DateTime<Utc>) -> CronTrigger {
    CronTrigger {
        id: trigger_id(n),
        function: name(function),
        qualifier: n.is_multiple_of(2).then(|| "live".to_owned()),
        schedule: "0 */5 * * * *".into(),
        time_zone: "Europe/Paris".into(),
        missed_runs: MissedRuns::Once,
        created_at,
    }
}

/// This section's schedules (of functions `q-cron-*`), as listed.
async fn our_schedules(q: &dyn EventQueue) -> Vec<ScheduleState> {
    let all = q.list_schedules().await.unwrap();
    let key = |s: &ScheduleState| (s.trigger.created_at, s.trigger.id.to_string());
    assert!(all.windows(2).all(|w| key(&w[0]) < key(&w[1])), "schedules are listed by created_at, then id: {all:?}");
    all.into_iter().filter(|s| s.trigger.function.as_str().starts_with("q-cron-")).collect()
}

async fn schedule(q: &dyn EventQueue, id: TriggerId) -> ScheduleState {
    let all = q.list_schedules().await.unwrap();
    all.into_iter().find(|s| s.trigger.id == id).unwrap_or_else(|| panic!("schedule {id} must be stored"))
}

/// Cron triggers: stored with their state, listed oldest first; each instant fires once (a
/// firing at an instant the schedule has left is stale and changes nothing); the occurrence's
/// event is stored with the move, held to its function's bound (refused: counted as dropped).
async fn schedules(q: &dyn EventQueue) {
    let t = |s| at(2010, s);
    // Added in this order; listed d, b, a, c (b and a were created at the same time).
    let (a, b, c) = (cron(0xb, "q-cron-a", t(10)), cron(0xa, "q-cron-b", t(10)), cron(1, "q-cron-a", t(20)));
    let d = CronTrigger {
        schedule: "0 0 12 * * * 2010".into(),
        time_zone: "UTC".into(),
        missed_runs: MissedRuns::Skip,
        ..cron(0xf, "q-cron-d", t(5))
    };
    assert!(our_schedules(q).await.is_empty(), "no schedule before one is added");
    q.add_schedule(&a, Some(t(300))).await.unwrap();
    q.add_schedule(&b, None).await.unwrap();
    q.add_schedule(&c, Some(t(700))).await.unwrap();
    q.add_schedule(&d, Some(t(400))).await.unwrap();
    let fresh = |trigger: &CronTrigger, next_fire_at| ScheduleState {
        trigger: trigger.clone(),
        next_fire_at,
        fired: 0,
        dropped: 0,
        last_fired_at: None,
    };
    let listed = [fresh(&d, Some(t(400))), fresh(&b, None), fresh(&a, Some(t(300))), fresh(&c, Some(t(700)))];
    assert_eq!(
        our_schedules(q).await,
        listed,
        "added: the trigger as given, next_fire_at (None allowed), nothing fired; listed by created_at, then id"
    );
    let twin = CronTrigger { function: name("q-cron-twin"), created_at: t(1), ..a.clone() };
    let again = q.add_schedule(&twin, Some(t(5))).await;
    assert!(matches!(again, Err(StoreError::Conflict)), "adding an existing id is a conflict: {again:?}");
    assert_eq!(our_schedules(q).await, listed, "a refused add changes nothing");

    // Each occurrence's event: request id, firing time, the function's bound.
    let occurrence = |id: &str, fired_at, max_queued| event(id, "q-cron-a", fired_at, max_queued);
    let fire = |expected, next, fired_at, ev: Option<NewEvent>| q.fire_schedule(a.id, expected, next, fired_at, ev);

    let fired = fire(t(300), Some(t(600)), t(301), Some(occurrence("cr-1", t(301), 2))).await.unwrap();
    assert_eq!(fired, Fired::Advanced(Some(Enqueued::Accepted)), "a firing at the expected instant stores its event");
    let r = get(q, "cr-1").await;
    assert_eq!(
        (r.status, r.function, r.enqueued_at, r.not_before, r.attempts),
        (EventStatus::Queued, name("q-cron-a"), t(301), t(301), 0),
        "the occurrence's event is stored, queued"
    );
    assert!(q.due_functions(t(301)).await.unwrap().contains(&name("q-cron-a")), "the occurrence is due at once");
    let delivered = lease_all(q, "q-cron-a", t(301)).await;
    assert_eq!(ids(&delivered), ["cr-1"], "the occurrence's event is delivered");
    assert_eq!(delivered[0].payload, Bytes::from("payload of cr-1"), "with its payload");
    let mut state =
        ScheduleState { next_fire_at: Some(t(600)), fired: 1, last_fired_at: Some(t(301)), ..listed[2].clone() };
    assert_eq!(schedule(q, a.id).await, state, "fired: next_fire_at moves to next, fired 1, last_fired_at = at");

    let raced = fire(t(300), Some(t(900)), t(302), Some(occurrence("cr-1b", t(302), 2))).await.unwrap();
    assert_eq!(raced, Fired::Stale, "a second firing of the same instant (a racing or restarted scheduler) is stale");
    assert_eq!(q.get_event("cr-1b").await.unwrap(), None, "a stale firing stores no event");
    assert_eq!(schedule(q, a.id).await, state, "a stale firing changes nothing");
    let early = fire(t(900), Some(t(1200)), t(302), Some(occurrence("cr-1c", t(302), 2))).await.unwrap();
    assert_eq!(early, Fired::Stale, "a firing of an instant the schedule is not at is stale");
    assert_eq!(q.get_event("cr-1c").await.unwrap(), None, "a stale firing stores no event");
    let unknown = q.fire_schedule(trigger_id(0xabc), t(300), None, t(302), Some(occurrence("cr-x", t(302), 2)));
    assert_eq!(unknown.await.unwrap(), Fired::Stale, "firing an unknown schedule is stale");
    assert_eq!(q.get_event("cr-x").await.unwrap(), None, "firing an unknown schedule stores no event");
    let idle = q.fire_schedule(b.id, t(300), Some(t(600)), t(302), Some(event("cr-idle", "q-cron-b", t(302), 2)));
    assert_eq!(idle.await.unwrap(), Fired::Stale, "a schedule with no next instant never fires");
    assert_eq!(schedule(q, b.id).await, listed[1], "a stale firing changes nothing");

    assert_eq!(fire(t(600), Some(t(900)), t(601), None).await.unwrap(), Fired::Advanced(None), "a skipped instant");
    state.next_fire_at = Some(t(900));
    assert_eq!(schedule(q, a.id).await, state, "skipped: next moves, counts and last_fired_at unchanged");

    all_accepted(q, &[occurrence("cr-fill", t(602), 2)]).await;
    let full = fire(t(900), Some(t(1200)), t(901), Some(occurrence("cr-3", t(901), 2))).await.unwrap();
    assert_eq!(
        full,
        Fired::Advanced(Some(Enqueued::QueueFull { queued: 2 })),
        "the occurrence is held to its function's bound"
    );
    assert_eq!(q.get_event("cr-3").await.unwrap(), None, "a refused occurrence is not stored");
    state = ScheduleState { next_fire_at: Some(t(1200)), dropped: 1, ..state };
    assert_eq!(schedule(q, a.id).await, state, "refused: dropped grows, fired unchanged, next still moves");

    let dup = fire(t(1200), Some(t(1500)), t(1201), Some(occurrence("cr-1", t(1201), 10))).await.unwrap();
    assert_eq!(dup, Fired::Advanced(Some(Enqueued::Duplicate)), "an occurrence whose request id exists");
    assert_eq!(get(q, "cr-1").await, delivered[0].record, "a duplicate occurrence changes the stored event in no way");
    state.next_fire_at = Some(t(1500));
    assert_eq!(schedule(q, a.id).await, state, "duplicate: counts unchanged, next moves");

    let last = fire(t(1500), None, t(1502), Some(occurrence("cr-5", t(1502), 10))).await.unwrap();
    assert_eq!(last, Fired::Advanced(Some(Enqueued::Accepted)), "the last instant fires");
    assert_eq!(get(q, "cr-5").await.status, EventStatus::Queued);
    state = ScheduleState { next_fire_at: None, fired: 2, last_fired_at: Some(t(1502)), ..state };
    assert_eq!(schedule(q, a.id).await, state, "fired again: fired 2, last_fired_at moves, no next instant");
    for expected in [t(1500), t(1800), t(0)] {
        let after = fire(expected, Some(t(2100)), t(1503), Some(occurrence("cr-6", t(1503), 10))).await.unwrap();
        assert_eq!(after, Fired::Stale, "without a next instant, firing at any instant is stale");
    }
    assert_eq!(q.get_event("cr-6").await.unwrap(), None, "a stale firing stores no event");
    assert_eq!(schedule(q, a.id).await, state, "stale firings change nothing");

    assert!(q.delete_schedule(d.id).await.unwrap(), "delete_schedule of a stored schedule");
    assert!(!q.delete_schedule(d.id).await.unwrap(), "a schedule is deleted once");
    let gone = q.fire_schedule(d.id, t(400), Some(t(500)), t(401), Some(event("cr-d", "q-cron-d", t(401), 10)));
    assert_eq!(gone.await.unwrap(), Fired::Stale, "firing a deleted schedule is stale");
    assert_eq!(q.get_event("cr-d").await.unwrap(), None, "firing a deleted schedule stores no event");
    assert_eq!(
        our_schedules(q).await,
        [listed[1].clone(), state, listed[3].clone()],
        "a deleted schedule is not listed; the others are unchanged"
    );
    assert_eq!(q.delete_schedules_of(&name("q-cron-a")).await.unwrap(), 2, "a function's schedules are deleted");
    assert_eq!(our_schedules(q).await, [listed[1].clone()], "another function's schedule stays");
    assert_eq!(q.delete_schedules_of(&name("q-cron-a")).await.unwrap(), 0, "none left to delete");
    assert_eq!(q.delete_schedules_of(&name("q-cron-none")).await.unwrap(), 0, "a function without schedules");
    assert!(q.delete_schedule(b.id).await.unwrap());
    assert!(our_schedules(q).await.is_empty(), "every schedule deleted");
}
