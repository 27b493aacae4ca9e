//! The [`EventQueue`] behaviour NATS triggers rely on: events whose delivery ended outside
//! the queue (`store_finished`), and the triggers themselves. Part of
//! [`crate::queue_conformance::run`]; year 2012, functions `q-nats-*`.

use bytes::Bytes;
use chrono::DateTime;
use hearth_types::{EventSource, EventStatus, NatsTrigger};

use crate::queue_conformance::{at, dead_letter, error, event, get, name, trigger_id};
use crate::{Enqueued, EventQueue, NewEvent, Settle};

pub(crate) async fn run(q: &dyn EventQueue) {
    finished_elsewhere(q).await;
    nats_triggers(q).await;
}

/// A dead letter stored straight away keeps its payload, attempts and error, and shows in the
/// list (from where a redrive queues it); a failed one's forward is stored with it; the same
/// request id twice is a duplicate that changes nothing; a finished event is not due.
async fn finished_elsewhere(q: &dyn EventQueue) {
    let t = |s| at(2012, s);
    let f = name("q-nats-a");
    let mut dead = event("nats-dead", "q-nats-a", t(0), 10);
    dead.source = EventSource::Nats;
    let stored = q.store_finished(&dead, 3, 2, t(5), dead_letter(), None).await.unwrap();
    assert_eq!(stored, Enqueued::Accepted);
    let r = get(q, "nats-dead").await;
    assert_eq!((r.status, r.attempts, r.function_errors), (EventStatus::DeadLettered, 3, 3), "{r:?}");
    assert_eq!((r.source, r.finished_at, r.last_attempt_at), (EventSource::Nats, Some(t(5)), Some(t(5))));
    assert_eq!(r.error, Some(error("Handled", true)));
    let listed = q.list_dead_letters(&f, None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(&listed[0].payload[..], b"payload of nats-dead", "a dead letter keeps its payload");
    assert!(!q.due_functions(t(100)).await.unwrap().contains(&f), "a finished event is not due");
    let again = q.store_finished(&dead, 9, 0, t(9), dead_letter(), None).await.unwrap();
    assert_eq!(again, Enqueued::Duplicate);
    assert_eq!(get(q, "nats-dead").await.attempts, 3, "a duplicate changes nothing");

    let forward = NewEvent {
        request_id: "nats-forward".into(),
        function: name("q-nats-sink"),
        qualifier: None,
        source: EventSource::Destination,
        payload: Bytes::from_static(b"{\"condition\":\"RetriesExhausted\"}"),
        enqueued_at: t(6),
        max_queued: 0,
        chain: 1,
    };
    let failed = Settle::Failed { executed_version: Some(2), error: error("Unhandled", true) };
    let bad = event("nats-failed", "q-nats-a", t(1), 10);
    assert_eq!(q.store_finished(&bad, 1, 0, t(6), failed, Some(forward)).await.unwrap(), Enqueued::Accepted);
    let r = get(q, "nats-failed").await;
    assert_eq!((r.status, r.executed_version), (EventStatus::Failed, Some(2)));
    assert_eq!(r.destination, Some(name("q-nats-sink")), "the record names its destination");
    let sink = get(q, "nats-forward").await;
    assert_eq!(sink.status, EventStatus::Queued, "the forward is queued, not held to its bound of 0");
    assert_eq!(q.list_dead_letters(&f, None, 10).await.unwrap().len(), 1, "a failed event is no dead letter");

    assert_eq!(q.redrive(&f, None, t(20)).await.unwrap(), 1);
    let r = get(q, "nats-dead").await;
    assert_eq!((r.status, r.not_before), (EventStatus::Queued, t(20)), "a stored dead letter redrives");
    assert_eq!(q.delete_events_of(&f).await.unwrap(), 2);
    assert!(q.delete_events_of(&name("q-nats-sink")).await.unwrap() == 1);
}

fn nats(n: u32, function: &str, created_at: DateTime<chrono::Utc>) -> NatsTrigger {
    NatsTrigger {
        id: trigger_id(1000 + n),
        function: name(function),
        qualifier: n.is_multiple_of(2).then(|| "live".to_owned()),
        server: "nats://127.0.0.1:4222".into(),
        credentials: n.is_multiple_of(3).then(|| format!("user{n}:secret")),
        subject: format!("orders.{n}.>"),
        stream: (n > 1).then(|| "ORDERS".to_owned()),
        consumer: (n > 2).then(|| format!("c{n}")),
        batch: n,
        created_at,
    }
}

/// NATS triggers are listed oldest first with every field, credentials included; an id is
/// added once; deleting one, or a function's, removes only those.
async fn nats_triggers(q: &dyn EventQueue) {
    let t = |s| at(2012, s);
    let ours = |all: Vec<NatsTrigger>| -> Vec<NatsTrigger> {
        all.into_iter().filter(|n| n.function.as_str().starts_with("q-nats-")).collect()
    };
    assert!(ours(q.list_nats_triggers().await.unwrap()).is_empty(), "none before one is added");
    let (a, b, c, d) =
        (nats(3, "q-nats-x", t(10)), nats(1, "q-nats-x", t(5)), nats(2, "q-nats-y", t(10)), nats(4, "q-nats-y", t(20)));
    for n in [&a, &b, &c, &d] {
        q.add_nats_trigger(n).await.unwrap();
    }
    assert!(matches!(q.add_nats_trigger(&a).await, Err(crate::StoreError::Conflict)), "an id is added once");
    // Same created_at: the id decides (trigger 1002 before 1003).
    assert_eq!(ours(q.list_nats_triggers().await.unwrap()), vec![b.clone(), c.clone(), a.clone(), d.clone()]);
    assert_eq!(a.credentials.as_deref(), Some("user3:secret"), "the test stores credentials");
    assert!(q.delete_nats_trigger(c.id).await.unwrap());
    assert!(!q.delete_nats_trigger(c.id).await.unwrap(), "a deleted trigger is gone");
    assert_eq!(q.delete_nats_triggers_of(&name("q-nats-x")).await.unwrap(), 2);
    assert_eq!(ours(q.list_nats_triggers().await.unwrap()), vec![d.clone()]);
    assert_eq!(q.delete_nats_triggers_of(&name("q-nats-y")).await.unwrap(), 1);
}
