//! A NATS trigger on a plain subject: messages are queued as events in the durable queue
//! (batched by the trigger's `batch`), in arrival order, each batch acknowledged to nobody
//! (core NATS has no acknowledgement): once queued it has the queue's guarantees. A message
//! that arrives while the function's queue is full is dropped and counted; one too large for
//! an event is kept in the dead-letter list without its body.

use std::sync::Arc;

use chrono::Utc;
use futures_util::{FutureExt as _, StreamExt as _};
use hearth_store::{Enqueued, NewEvent, Settle};
use hearth_types::{EVENT_PAYLOAD_MAX_BYTES, EventError, EventSource, NatsTrigger, NatsTriggerStatus};
use tokio::sync::Semaphore;

use crate::nats::{Context, Stats};
use crate::nats_records::{self, Message};

/// Batches waiting for their commit at once, per trigger.
const IN_FLIGHT: usize = 1024;

pub(crate) async fn run(
    context: &Context,
    trigger: &NatsTrigger,
    client: &async_nats::Client,
    stats: &Arc<Stats>,
) -> Result<(), String> {
    let group = format!("hearth-{}", trigger.id);
    let mut subscription = client
        .queue_subscribe(trigger.subject.clone(), group)
        .await
        .map_err(|e| format!("cannot subscribe to {}: {e}", trigger.subject))?;
    // The subscription is the server's once it answered a ping sent after it: only then is
    // the trigger consuming (a message published before would not reach it).
    client.flush().await.map_err(|e| format!("cannot subscribe to {}: {e}", trigger.subject))?;
    stats.set(NatsTriggerStatus::Consuming, None);
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let batch = trigger.batch.max(1) as usize;
    while let Some(first) = subscription.next().await {
        let mut messages = vec![message(first)];
        while messages.len() < batch {
            match subscription.next().now_or_never() {
                Some(Some(m)) => messages.push(message(m)),
                _ => break,
            }
        }
        Stats::add(&stats.received, messages.len());
        let (groups, too_large) = nats_records::batches(messages, batch, EVENT_PAYLOAD_MAX_BYTES);
        for m in too_large {
            bury_too_large(context, trigger, &m, stats).await;
        }
        let max_queued = match context.gateway.function(&trigger.function).await {
            Ok(Some(f)) => f.config.events.max_queued_events,
            _ => hearth_types::EventConfig::default().max_queued_events,
        };
        for group in groups {
            let n = group.len();
            let event = NewEvent {
                request_id: request_id(trigger, &group),
                function: trigger.function.clone(),
                qualifier: trigger.qualifier.clone(),
                source: EventSource::Nats,
                payload: nats_records::event(group.iter().map(Message::record).collect()),
                enqueued_at: Utc::now(),
                max_queued,
                chain: 0,
            };
            let permit = in_flight.clone().acquire_owned().await.map_err(|e| e.to_string())?;
            let committed = context.acceptor.submit(event).await.map_err(|e| e.to_string())?;
            let (stats, function) = (stats.clone(), trigger.function.clone());
            tokio::spawn(async move {
                match committed.await {
                    Ok(Enqueued::Accepted | Enqueued::Duplicate) => Stats::add(&stats.handled, n),
                    Ok(Enqueued::QueueFull { queued }) => {
                        Stats::add(&stats.dropped, n);
                        tracing::warn!(%function, queued, messages = n, "NATS messages dropped: the function's event queue is full");
                    }
                    Err(e) => {
                        Stats::add(&stats.dropped, n);
                        tracing::error!(%e, %function, messages = n, "NATS messages dropped: they could not be stored");
                    }
                }
                drop(permit);
            });
        }
    }
    Ok(())
}

fn message(m: async_nats::Message) -> Message {
    let headers: Vec<(String, Vec<String>)> = m
        .headers
        .as_ref()
        .map(|h| h.iter().map(|(k, v)| (k.to_string(), v.iter().map(|v| v.as_str().to_owned()).collect())).collect())
        .unwrap_or_default();
    let message_id = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Nats-Msg-Id"))
        .and_then(|(_, v)| v.first().cloned())
        .unwrap_or_else(hearth_types::new_request_id);
    Message {
        subject: m.subject.to_string(),
        payload: m.payload,
        headers,
        message_id,
        jetstream: None,
        published: Utc::now(),
    }
}

/// A batch's event id: derived from the trigger and every message's id (the publisher's
/// `Nats-Msg-Id` when it gave one, else a fresh one), so the same batch published again is
/// queued once, and a replayed id cannot stand for other messages.
fn request_id(trigger: &NatsTrigger, group: &[Message]) -> String {
    let mut name = trigger.id.to_string();
    for m in group {
        name.push('/');
        name.push_str(&m.message_id);
    }
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

/// One message's event id: the trigger, the message's id and when it was published (a
/// stream's sequence numbers start again when it is made anew).
pub(crate) fn message_request_id(trigger: &NatsTrigger, m: &Message) -> String {
    let published = m.published.timestamp_nanos_opt().unwrap_or_default();
    let name = format!("{}/{}/{published}", trigger.id, m.message_id);
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

/// Keeps a message too large for an event in the dead-letter list, without its body; false
/// when it could not be stored.
pub(crate) async fn bury_too_large(context: &Context, trigger: &NatsTrigger, m: &Message, stats: &Stats) -> bool {
    let now = Utc::now();
    let event = NewEvent {
        request_id: message_request_id(trigger, m),
        function: trigger.function.clone(),
        qualifier: trigger.qualifier.clone(),
        source: EventSource::Nats,
        payload: nats_records::without_body(m, EVENT_PAYLOAD_MAX_BYTES),
        enqueued_at: m.published,
        max_queued: u32::MAX,
        chain: 0,
    };
    let error = EventError {
        error_type: "MessageTooLarge".into(),
        message: format!(
            "a {}-byte message on {} does not fit an event ({} bytes at most); its body was not kept",
            m.payload.len(),
            m.subject,
            EVENT_PAYLOAD_MAX_BYTES
        ),
        function_error: false,
    };
    let outcome = Settle::DeadLetter { executed_version: None, error };
    match context.queue.store_finished(&event, 0, 0, now, outcome, None).await {
        Ok(hearth_store::Enqueued::Duplicate) => true,
        Ok(_) => {
            Stats::add(&stats.dead_lettered, 1);
            true
        }
        Err(e) => {
            tracing::error!(%e, function = %trigger.function, "a NATS message too large to deliver could not be kept");
            false
        }
    }
}
