//! A NATS trigger on a JetStream stream: a durable pull consumer (made with explicit
//! acknowledgement if it does not exist), messages pulled only when the asynchronous budget
//! has a place for them, and the function invoked directly. A message is acknowledged only
//! after the function succeeded; on a failure it is handed back (`NAK`) with the retry rules'
//! wait, so the stream delivers it again; once its retries are used up it goes to the
//! on-failure function or the dead-letter list, then is terminated on the stream. A message
//! being delivered has its acknowledgement wait extended every `PROGRESS` while it runs, so a
//! long invocation is not delivered twice, and a node that dies has its messages delivered
//! again after `ACK_WAIT`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, AckKind};
use chrono::Utc;
use futures_util::StreamExt as _;
use hearth_store::{NewEvent, Settle};
use hearth_types::{EventError, EventSource, NatsTrigger, NatsTriggerStatus};

use crate::budget::{Slot, share};
use crate::destination::{self, MAX_CHAIN, Origin, Outcome};
use crate::dispatcher::{self, Target};
use crate::nats::{Context, Stats};
use crate::nats_core::bury_too_large;
use crate::nats_records::{self, JetStreamInfo, Message};
use crate::retry::{self, Attempt, Counts, Next};

/// A consumer this trigger makes waits this long for an acknowledgement before delivering a
/// message again; progress reports (every third of the consumer's wait, at most `PROGRESS`)
/// extend it while the function runs.
const ACK_WAIT: Duration = Duration::from_secs(30);
const PROGRESS: Duration = Duration::from_secs(10);
/// Deliveries of a message at most on a consumer this trigger makes: far more than the retry
/// rules ever ask for (they give up, and dead-letter, first), so only a message the client
/// cannot even read (see README) is dropped by the stream after it.
const MAX_DELIVER: i64 = 200;
/// A pull that waits for nothing still gets an answer within this, or is tried again.
const PULL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one pull waits for a message when the stream is idle.
const IDLE_PULL: Duration = Duration::from_secs(5);
/// Messages a consumer this trigger makes hands out unacknowledged at most.
const MAX_ACK_PENDING: i64 = 1000;
/// An invocation's payload at most: the synchronous limit (the message is not stored).
const EVENT_MAX_BYTES: usize = 6 * 1024 * 1024;

/// Platform failures (throttled, no instance) seen per stream sequence: they are not the
/// function's errors, so they do not count against its retries. Kept in memory: after a
/// restart every earlier delivery counts as a function error (earlier dead letters, never
/// lost ones).
#[derive(Default)]
struct PlatformFailures(Mutex<HashMap<u64, u32>>);

impl PlatformFailures {
    fn of(&self, seq: u64) -> u32 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&seq).copied().unwrap_or(0)
    }
    fn add(&self, seq: u64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.clear();
        }
        *map.entry(seq).or_default() += 1;
    }
    fn forget(&self, seq: u64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&seq);
    }
}

pub(crate) async fn run(
    context: &Context,
    trigger: &NatsTrigger,
    client: &async_nats::Client,
    stats: &Arc<Stats>,
) -> Result<(), String> {
    let (consumer, ack_wait) = consumer(trigger, client).await?;
    let progress = (ack_wait / 3).clamp(Duration::from_millis(100), PROGRESS);
    let puller = Puller { context, trigger, stats, failures: Arc::new(PlatformFailures::default()), progress };
    stats.set(NatsTriggerStatus::Consuming, None);
    let batch = trigger.batch.max(1) as usize;
    loop {
        // Wait for a message without holding a place (an idle trigger holds none) ...
        let first = pull(&consumer, 1, Some(IDLE_PULL)).await?;
        if first.is_empty() {
            continue;
        }
        let cap = cap(context, trigger).await;
        let slot = puller.take_keeping_alive(cap, &first.iter().collect::<Vec<_>>()).await;
        // ... then fill the batch with what is there, and go on while places are free.
        let more = if batch > 1 { pull(&consumer, batch - 1, None).await? } else { Vec::new() };
        puller.dispatch([first, more].concat(), slot).await;
        while let Some(slot) = context.budget.try_take(&trigger.function, cap) {
            let messages = pull(&consumer, batch, None).await?;
            if messages.is_empty() {
                break;
            }
            puller.dispatch(messages, slot).await;
        }
    }
}

/// What delivering one trigger's messages needs.
struct Puller<'a> {
    context: &'a Context,
    trigger: &'a NatsTrigger,
    stats: &'a Arc<Stats>,
    failures: Arc<PlatformFailures>,
    /// How often held messages' acknowledgement wait is extended.
    progress: Duration,
}

/// The trigger's durable consumer, made if it does not exist.
async fn consumer(trigger: &NatsTrigger, client: &async_nats::Client) -> Result<(PullConsumer, Duration), String> {
    let stream_name = trigger.stream.clone().unwrap_or_default();
    let js = jetstream::new(client.clone());
    let stream = js.get_stream(&stream_name).await.map_err(|e| format!("stream {stream_name}: {e}"))?;
    let name = trigger.consumer_name();
    let config = pull::Config {
        durable_name: Some(name.clone()),
        description: Some(format!("Hearth NATS trigger {} of {}", trigger.id, trigger.function)),
        filter_subject: trigger.subject.clone(),
        ack_policy: AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_deliver: MAX_DELIVER,
        max_ack_pending: MAX_ACK_PENDING,
        ..Default::default()
    };
    let mut consumer: PullConsumer = stream
        .get_or_create_consumer(&name, config)
        .await
        .map_err(|e| format!("consumer {name} on stream {stream_name}: {e}"))?;
    let info = consumer.info().await.map_err(|e| format!("consumer {name}: {e}"))?;
    if info.config.ack_policy != AckPolicy::Explicit {
        return Err(format!(
            "consumer {name} on stream {stream_name} does not acknowledge each message (ack policy {:?}): use one with explicit acknowledgement, or let Hearth make one (no --consumer)",
            info.config.ack_policy
        ));
    }
    let filter = &info.config.filter_subject;
    if !filter.is_empty() && *filter != trigger.subject {
        return Err(format!(
            "consumer {name} on stream {stream_name} takes subject {filter:?}, not the trigger's {:?}: name another consumer, or let Hearth make one",
            trigger.subject
        ));
    }
    let ack_wait = if info.config.ack_wait.is_zero() { ACK_WAIT } else { info.config.ack_wait };
    Ok((consumer, ack_wait))
}

/// Up to `n` messages: waiting up to `wait` for the first, or only those there now.
async fn pull(consumer: &PullConsumer, n: usize, wait: Option<Duration>) -> Result<Vec<jetstream::Message>, String> {
    let mut out = Vec::with_capacity(n);
    let pulled = async {
        let mut messages = match wait {
            Some(wait) => consumer.batch().max_messages(n).expires(wait).messages().await,
            None => consumer.fetch().max_messages(n).messages().await,
        }
        .map_err(|e| format!("pulling from the consumer: {e}"))?;
        while let Some(m) = messages.next().await {
            match m {
                Ok(m) => out.push(m),
                // A message already received is delivered; a failed pull is tried again.
                Err(e) if out.is_empty() => return Err(format!("pulling from the consumer: {e}")),
                Err(_) => break,
            }
        }
        Ok(())
    };
    let limit = wait.unwrap_or_default() + PULL_TIMEOUT;
    match tokio::time::timeout(limit, pulled).await {
        Ok(Ok(())) => Ok(out),
        // Messages received before a pull went wrong are delivered; the stream sends the
        // others again after their acknowledgement wait.
        Ok(Err(_)) | Err(_) if !out.is_empty() => Ok(out),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("a pull from the consumer had no answer within {limit:?}")),
    }
}

async fn cap(context: &Context, trigger: &NatsTrigger) -> usize {
    match context.gateway.function(&trigger.function).await {
        Ok(Some(f)) => share(&f.config),
        _ => 1,
    }
}

fn message(trigger: &NatsTrigger, m: &jetstream::Message) -> Message {
    let headers: Vec<(String, Vec<String>)> = m
        .headers
        .as_ref()
        .map(|h| h.iter().map(|(k, v)| (k.to_string(), v.iter().map(|v| v.as_str().to_owned()).collect())).collect())
        .unwrap_or_default();
    let (stream, consumer, sequence, delivered, published) = match m.info() {
        Ok(i) => {
            (i.stream.to_owned(), i.consumer.to_owned(), i.stream_sequence, i.delivered.max(1) as u64, i.published)
        }
        Err(_) => (trigger.stream.clone().unwrap_or_default(), trigger.consumer_name(), 0, 1, Utc::now()),
    };
    Message {
        subject: m.subject.to_string(),
        payload: m.payload.clone(),
        headers,
        message_id: format!("{stream}:{sequence}"),
        jetstream: Some(JetStreamInfo { stream, consumer, sequence, delivered }),
        published,
    }
}

impl Puller<'_> {
    /// Waits for a place in the budget, extending the held messages' acknowledgement wait.
    async fn take_keeping_alive(&self, cap: usize, held: &[&jetstream::Message]) -> Slot {
        let take = self.context.budget.take(&self.trigger.function, cap);
        tokio::pin!(take);
        loop {
            tokio::select! {
                slot = &mut take => return slot,
                () = tokio::time::sleep(self.progress) => {
                    for m in held {
                        let _ = m.ack_with(AckKind::Progress).await;
                    }
                }
            }
        }
    }

    /// Splits what was pulled into invocations (by `batch` and bytes) and starts each; the
    /// first has `slot`, the others wait for theirs (keeping every message not yet started
    /// alive meanwhile).
    async fn dispatch(&self, pulled: Vec<jetstream::Message>, slot: Slot) {
        let (context, trigger, stats) = (self.context, self.trigger, self.stats);
        Stats::add(&stats.received, pulled.len());
        let mut by_id: HashMap<String, jetstream::Message> = HashMap::new();
        let mut records = Vec::with_capacity(pulled.len());
        for m in pulled {
            let r = message(trigger, &m);
            by_id.insert(r.message_id.clone(), m);
            records.push(r);
        }
        let (groups, too_large) = nats_records::batches(records, trigger.batch.max(1) as usize, EVENT_MAX_BYTES);
        for m in too_large {
            let Some(js) = by_id.remove(&m.message_id) else { continue };
            let kind = match bury_too_large(context, trigger, &m, stats).await {
                true => AckKind::Term,
                // Not kept: the stream delivers it again later.
                false => AckKind::Nak(Some(Duration::from_secs(5))),
            };
            let _ = js.ack_with(kind).await;
        }
        let mut slot = Some(slot);
        for group in groups {
            let held: Vec<jetstream::Message> = group.iter().filter_map(|m| by_id.remove(&m.message_id)).collect();
            let slot = match slot.take() {
                Some(s) => s,
                None => {
                    let waiting: Vec<&jetstream::Message> = held.iter().chain(by_id.values()).collect();
                    self.take_keeping_alive(cap(context, trigger).await, &waiting).await
                }
            };
            let (context, trigger, stats, failures) =
                (context.clone(), trigger.clone(), stats.clone(), self.failures.clone());
            let progress = self.progress;
            tokio::spawn(
                async move { deliver(&context, &trigger, &stats, &failures, progress, group, held, slot).await },
            );
        }
    }
}

/// A batch's event id: the trigger and each message's stream position and publication time
/// (a stream made anew numbers its messages from 1 again), so a batch delivered again after a
/// crash is stored once, and no other batch shares its id.
fn request_id(trigger: &NatsTrigger, group: &[Message]) -> String {
    let mut name = trigger.id.to_string();
    for m in group {
        name.push_str(&format!("/{}/{}", m.message_id, m.published.timestamp_nanos_opt().unwrap_or_default()));
    }
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

/// Invokes the function with one batch and acknowledges, hands back or buries each message.
#[allow(clippy::too_many_arguments)]
async fn deliver(
    context: &Context,
    trigger: &NatsTrigger,
    stats: &Stats,
    failures: &PlatformFailures,
    progress: Duration,
    group: Vec<Message>,
    held: Vec<jetstream::Message>,
    slot: Slot,
) {
    let seq = |m: &Message| m.jetstream.as_ref().map_or(0, |j| j.sequence);
    let attempts = group.iter().filter_map(|m| m.jetstream.as_ref()).map(|j| j.delivered).max().unwrap_or(1);
    let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
    let request_id = request_id(trigger, &group);
    let payload = nats_records::event(group.iter().map(Message::record).collect());
    let target = Target { function: &trigger.function, qualifier: trigger.qualifier.as_deref() };
    let progress = {
        let held = held.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(progress).await;
                for m in &held {
                    let _ = m.ack_with(AckKind::Progress).await;
                }
            }
        })
    };
    let mut d = dispatcher::attempt(&context.gateway, target, &payload, &request_id, attempts).await;
    progress.abort();
    // A partial batch response fails only the messages it names.
    let failed_ids: Option<Vec<String>> = match d.attempt {
        Attempt::Succeeded => {
            let ids: Vec<&str> = group.iter().map(|m| m.message_id.as_str()).collect();
            nats_records::failed_items(&d.response, &ids).filter(|ids| !ids.is_empty())
        }
        _ => None,
    };
    if let Some(ids) = &failed_ids {
        d.attempt = Attempt::FunctionError;
        d.error = Some(EventError {
            error_type: "BatchItemFailures".into(),
            message: format!("the function reported {} of the batch's {} messages as failed", ids.len(), group.len()),
            function_error: true,
        });
    }
    let config = match context.gateway.function(&trigger.function).await {
        Ok(Some(f)) => f.config.events,
        _ => hearth_types::EventConfig::default(),
    };
    let mut failed: Vec<(Message, jetstream::Message)> = Vec::new();
    for (m, js) in group.into_iter().zip(held) {
        let fails = match (&failed_ids, d.attempt) {
            (Some(ids), _) => ids.contains(&m.message_id),
            (None, Attempt::Succeeded) => false,
            (None, _) => true,
        };
        if fails {
            failed.push((m, js));
        } else {
            let _ = js.ack().await;
            failures.forget(seq(&m));
            Stats::add(&stats.handled, 1);
        }
    }
    if failed.is_empty() {
        drop(slot);
        return;
    }
    let first_seq = seq(&failed[0].0);
    if d.attempt == Attempt::Unavailable {
        for (m, _) in &failed {
            failures.add(seq(m));
        }
    }
    let platform = failures.of(first_seq);
    let counts = Counts {
        attempts,
        // Earlier deliveries that were not platform failures were the function's errors.
        function_errors: attempts.saturating_sub(platform)
            - u32::from(d.attempt != Attempt::FunctionError && attempts > platform),
        queued_at: failed.iter().map(|(m, _)| m.published).min().unwrap_or_else(Utc::now),
    };
    let now = Utc::now();
    match retry::next(d.attempt, counts, now, &config, &context.settings, retry::jitter()) {
        Next::Done => {
            for (m, js) in &failed {
                let _ = js.ack().await;
                failures.forget(seq(m));
            }
        }
        Next::RetryAt(at) => {
            let delay = (at - now).to_std().unwrap_or_default();
            for (_, js) in &failed {
                let _ = js.ack_with(AckKind::Nak(Some(delay))).await;
            }
        }
        Next::GiveUp(condition) => {
            let records: Vec<serde_json::Value> = failed.iter().map(|(m, _)| m.record()).collect();
            let payload = nats_records::event(records);
            let mut error = d.error.clone().unwrap_or_else(|| EventError {
                error_type: "Unknown".into(),
                message: "the delivery failed".into(),
                function_error: false,
            });
            if condition == retry::Condition::EventAgeExceeded {
                error.message = format!(
                    "gave up: the message would be older than max_event_age_s ({} s) before its next attempt; last error: {}",
                    config.max_event_age_s, error.message
                );
            }
            let event = NewEvent {
                request_id: request_id.clone(),
                function: trigger.function.clone(),
                qualifier: trigger.qualifier.clone(),
                source: EventSource::Nats,
                payload,
                enqueued_at: counts.queued_at,
                max_queued: u32::MAX,
                chain: 0,
            };
            let forward = config.on_failure.as_ref().filter(|_| MAX_CHAIN > 0).map(|to| {
                let origin = Origin {
                    request_id: &request_id,
                    function: &trigger.function,
                    qualifier: trigger.qualifier.as_deref(),
                    attempts,
                };
                let outcome = Outcome {
                    condition: condition.as_str(),
                    executed_version: d.executed_version,
                    function_error: d.error.as_ref().map(|e| e.error_type.as_str()),
                    response: &d.response,
                };
                NewEvent {
                    request_id: hearth_types::new_request_id(),
                    function: to.function.clone(),
                    qualifier: to.selector.qualifier(),
                    source: EventSource::Destination,
                    payload: destination::record(&context.settings.region, &origin, &event.payload, outcome, now),
                    enqueued_at: now,
                    max_queued: u32::MAX,
                    chain: 1,
                }
            });
            let executed_version = d.executed_version;
            let outcome = match forward {
                Some(_) => Settle::Failed { executed_version, error },
                None => Settle::DeadLetter { executed_version, error },
            };
            let function_errors_before = counts.function_errors - u32::from(d.attempt == Attempt::FunctionError);
            let stored = context
                .queue
                .store_finished(&event, attempts, function_errors_before, now, outcome, forward.clone())
                .await;
            match stored {
                // Stored by an earlier delivery of the same messages (a crash before the
                // stream heard of it): only the stream has to be told.
                Ok(hearth_store::Enqueued::Duplicate) => {
                    for (m, js) in &failed {
                        let _ = js.ack_with(AckKind::Term).await;
                        failures.forget(seq(m));
                    }
                }
                Ok(_) => {
                    if forward.is_some() {
                        context.wake.notify_one();
                    }
                    for (m, js) in &failed {
                        let _ = js.ack_with(AckKind::Term).await;
                        failures.forget(seq(m));
                    }
                    Stats::add(&stats.dead_lettered, failed.len());
                }
                Err(e) => {
                    // Not kept: the stream delivers it again (and it is given up again).
                    tracing::error!(%e, function = %trigger.function, "a NATS message that used up its retries could not be kept; it will be delivered again");
                    for (_, js) in &failed {
                        let _ = js.ack_with(AckKind::Nak(Some(Duration::from_secs(5)))).await;
                    }
                }
            }
        }
    }
    drop(slot);
}
