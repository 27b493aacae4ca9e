//! The delivery loop: leases due events from the queue, runs each through the gateway as any
//! invocation, and settles it by the retry rules (`retry.rs`): succeeded, retried later,
//! handed to a destination, or dead-lettered.
//!
//! Asynchronous work has a concurrency budget of its own (`budget.rs`, shared with the NATS
//! consumers): at most `max_in_flight` deliveries on the node, and per function at most half
//! its capacity (`max_instances × concurrency`, at least one), so synchronous callers always
//! have the other half. The activator's queue is first come, first served, so a synchronous
//! caller never waits behind more than one delivery per instance slot.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use hearth_gateway::{AcquireError, Gateway, InvokeError, InvokeRequest};
use hearth_store::{EventQueue, Lease, NewEvent, QueuedEvent, Settle, StoreError};
use hearth_types::{EventError, EventSource, FunctionName, VersionSelector, event_text, limits};
use tokio::sync::Notify;

use crate::EventSettings;
use crate::budget::{Budget, Slot, share};
use crate::destination::{self, MAX_CHAIN, Origin, Outcome};
use crate::retry::{self, Attempt, Counts, Next};

pub(crate) struct Dispatcher {
    pub queue: Arc<dyn EventQueue>,
    pub gateway: Gateway,
    pub settings: EventSettings,
    pub wake: Arc<Notify>,
    pub budget: Arc<Budget>,
    stopping: AtomicBool,
    /// The function served last: the next pass starts after it.
    cursor: Mutex<Option<FunctionName>>,
}

/// What one delivery came to.
pub(crate) struct Delivered {
    pub attempt: Attempt,
    pub executed_version: Option<u32>,
    /// The result, or the error document.
    pub response: bytes::Bytes,
    pub error: Option<EventError>,
}

impl Dispatcher {
    pub fn new(
        queue: Arc<dyn EventQueue>,
        gateway: Gateway,
        settings: EventSettings,
        wake: Arc<Notify>,
        budget: Arc<Budget>,
    ) -> Self {
        Self { budget, queue, gateway, settings, wake, stopping: AtomicBool::new(false), cursor: Mutex::new(None) }
    }

    /// Deliveries running now, all functions (the NATS consumers' included).
    pub fn running(&self) -> usize {
        self.budget.running()
    }

    /// Stops leasing; returns once running deliveries have settled or `grace` has passed
    /// (those still running are delivered again by the next start).
    pub async fn stop(&self, grace: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(grace, self.budget.idle()).await;
    }

    pub async fn run(self: Arc<Self>) {
        match self.queue.release_leases(&self.settings.owner, Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "delivering again the events a stopped server was running"),
            Err(e) => tracing::error!(%e, "cannot take back the leases of a stopped server"),
        }
        let mut prune = tokio::time::interval(self.settings.prune_interval);
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let leased = match self.pass().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(%e, "cannot read the event queue; trying again");
                    0
                }
            };
            if leased > 0 {
                tokio::task::yield_now().await;
                continue;
            }
            let now = Utc::now();
            let wait = match self.queue.next_due().await {
                Ok(Some(at)) if at > now => (at - now).to_std().unwrap_or_default().min(self.settings.poll_interval),
                _ => self.settings.poll_interval,
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                _ = prune.tick() => self.prune().await,
            }
        }
    }

    async fn prune(&self) {
        let now = Utc::now();
        let age = |d: Duration| now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        match self.queue.prune_events(age(self.settings.retention), age(self.settings.dead_letter_retention)).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(events = n, "pruned finished events"),
            Err(e) => tracing::warn!(%e, "cannot prune finished events"),
        }
    }

    /// One look at the queue: leases what the budgets allow, taking functions round-robin
    /// (from the one after the last served), so one function's backlog cannot keep the
    /// node's budget from the others. Returns how many it leased.
    async fn pass(self: &Arc<Self>) -> Result<usize, StoreError> {
        let now = Utc::now();
        let mut leased = 0;
        let mut due = self.queue.due_functions(now).await?;
        let last = self.cursor.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(last) = last {
            let first_after = due.partition_point(|f| *f <= last);
            due.rotate_left(first_after);
        }
        for function in due {
            let available = self.budget.available();
            if available == 0 {
                break;
            }
            let config = match self.gateway.function(&function).await {
                Ok(f) => f.map(|f| f.config),
                Err(e) => {
                    tracing::warn!(%e, %function, "cannot read a function with due events; trying it later");
                    continue;
                }
            };
            let cap = config.as_ref().map_or(1, share);
            let busy = self.budget.running_of(&function);
            if busy >= cap {
                continue;
            }
            // Events may name a version or alias whose timeout is longer than $LATEST's: a
            // lease outlasts any function's wait and run (a node takes its own leases back
            // at start, so a long lease does not delay redelivery after a restart).
            let longest = Duration::from_secs(limits::TIMEOUT_S.max as u64);
            let until = now + chrono::Duration::from_std(longest * 2 + self.settings.lease_margin).unwrap_or_default();
            let lease = Lease { owner: self.settings.owner.clone(), now, until, limit: (cap - busy).min(available) };
            *self.cursor.lock().unwrap_or_else(|p| p.into_inner()) = Some(function.clone());
            for event in self.queue.lease(&function, &lease).await? {
                leased += 1;
                let this = self.clone();
                // A NATS consumer may have taken the place seen free: then the event waits
                // for one (briefly; its lease is long).
                let slot = self.budget.try_take(&function, cap);
                tokio::spawn(async move {
                    let slot = match slot {
                        Some(slot) => slot,
                        None => this.budget.take(&event.record.function, cap).await,
                    };
                    this.deliver(event, slot).await
                });
            }
        }
        Ok(leased)
    }

    async fn deliver(self: Arc<Self>, event: QueuedEvent, slot: Slot) {
        // Cut short again and again (its runs outlive their node): stop, and keep it.
        let delivered = match retry::cut_short(event.record.attempts, event.record.redeliveries) {
            Some(error) => Delivered {
                attempt: Attempt::Impossible,
                executed_version: None,
                response: Default::default(),
                error: Some(error),
            },
            None => {
                let r = &event.record;
                let target = Target { function: &r.function, qualifier: r.qualifier.as_deref() };
                attempt(&self.gateway, target, &event.payload, &r.request_id, r.attempts).await
            }
        };
        self.settle(&event, delivered).await;
        drop(slot);
        self.wake.notify_one();
    }

    /// Decides what follows the delivery and stores it; a store that fails is asked again
    /// (the lease keeps the event meanwhile; if it runs out, the event is delivered again).
    async fn settle(&self, event: &QueuedEvent, d: Delivered) {
        let r = &event.record;
        let config = match self.gateway.function(&r.function).await {
            Ok(Some(f)) => f.config.events,
            _ => hearth_types::EventConfig::default(),
        };
        let now = Utc::now();
        let counts = Counts {
            attempts: r.attempts,
            function_errors: r.function_errors + u32::from(d.attempt == Attempt::FunctionError),
            queued_at: r.queued_at,
        };
        let next = retry::next(d.attempt, counts, now, &config, &self.settings, retry::jitter());
        let forward_to = |to: &Option<hearth_types::FunctionTarget>, condition: &str| {
            let to = to.as_ref().filter(|_| event.chain < MAX_CHAIN)?;
            let outcome = Outcome {
                condition,
                executed_version: d.executed_version,
                function_error: d.error.as_ref().map(|e| e.error_type.as_str()),
                response: &d.response,
            };
            let origin = Origin {
                request_id: &r.request_id,
                function: &r.function,
                qualifier: r.qualifier.as_deref(),
                attempts: counts.attempts,
            };
            Some(NewEvent {
                request_id: hearth_types::new_request_id(),
                function: to.function.clone(),
                qualifier: to.selector.qualifier(),
                source: EventSource::Destination,
                payload: destination::record(&self.settings.region, &origin, &event.payload, outcome, now),
                enqueued_at: now,
                max_queued: u32::MAX,
                chain: event.chain + 1,
            })
        };
        let (outcome, forward) = match next {
            Next::Done => {
                let (result, result_truncated) = event_text(&d.response);
                let executed_version = d.executed_version.unwrap_or_default();
                (
                    Settle::Succeeded { executed_version, result, result_truncated },
                    forward_to(&config.on_success, "Success"),
                )
            }
            Next::RetryAt(not_before) => {
                let error = d.error.clone().expect("only a failure is retried");
                (Settle::Retry { not_before, executed_version: d.executed_version, error }, None)
            }
            Next::GiveUp(condition) => {
                let mut error = d.error.clone().expect("only a failure gives up");
                if condition == retry::Condition::EventAgeExceeded {
                    error.message = format!(
                        "gave up: the event would be older than max_event_age_s ({} s) before its next attempt; last error: {}",
                        config.max_event_age_s, error.message
                    );
                }
                let executed_version = d.executed_version;
                match forward_to(&config.on_failure, condition.as_str()) {
                    Some(forward) => (Settle::Failed { executed_version, error }, Some(forward)),
                    None => (Settle::DeadLetter { executed_version, error }, None),
                }
            }
        };
        let mut wait = Duration::from_millis(100);
        for _ in 0..20 {
            match self.queue.settle(&r.request_id, r.attempts, Utc::now(), outcome.clone(), forward.clone()).await {
                Ok(true) => return,
                Ok(false) => {
                    tracing::warn!(request_id = %r.request_id, "an event's outcome was not recorded: it was delivered again meanwhile, or deleted with its function");
                    return;
                }
                Err(e) => {
                    tracing::warn!(%e, request_id = %r.request_id, "cannot record an event's outcome; trying again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::error!(request_id = %r.request_id, "gave up recording an event's outcome: it will be delivered again");
    }
}

/// What a delivery invokes.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub function: &'a FunctionName,
    /// A version number or alias; `None`: `$LATEST`.
    pub qualifier: Option<&'a str>,
}

/// One delivery through the gateway, as any invocation (its record and log lines carry the
/// event's request id and this attempt's number).
pub(crate) async fn attempt(
    gateway: &Gateway,
    target: Target<'_>,
    payload: &bytes::Bytes,
    request_id: &str,
    attempt_number: u32,
) -> Delivered {
    let selector = match target.qualifier.map(str::parse::<VersionSelector>) {
        None => VersionSelector::Latest,
        Some(Ok(s)) => s,
        // Checked when accepted; a record that no longer parses cannot run.
        Some(Err(e)) => {
            let error = EventError { error_type: "InvalidVersion".into(), message: e, function_error: false };
            return Delivered {
                attempt: Attempt::Impossible,
                executed_version: None,
                response: Default::default(),
                error: Some(error),
            };
        }
    };
    let request = InvokeRequest {
        payload: payload.clone(),
        content_type: Some("application/json".into()),
        request_id: Some(request_id.to_owned()),
        attempt: Some(attempt_number),
        ..Default::default()
    };
    match gateway.invoke(target.function, selector, request).await {
        Ok(resp) => match resp.function_error {
            None => Delivered {
                attempt: Attempt::Succeeded,
                executed_version: Some(resp.version),
                response: resp.body,
                error: None,
            },
            Some(kind) => Delivered {
                attempt: Attempt::FunctionError,
                executed_version: Some(resp.version),
                error: Some(EventError { error_type: kind, message: error_message(&resp.body), function_error: true }),
                response: resp.body,
            },
        },
        Err(e) => {
            let (attempt, code) = match &e {
                InvokeError::NotFound(_) => (Attempt::Impossible, "FunctionNotFound"),
                InvokeError::NoVersion(..) => (Attempt::Impossible, "VersionNotFound"),
                InvokeError::NoAlias(..) => (Attempt::Impossible, "AliasNotFound"),
                InvokeError::PayloadTooLarge(_) => (Attempt::Impossible, "RequestTooLarge"),
                InvokeError::NoCode(_) => (Attempt::Unavailable, "CodeNotFound"),
                InvokeError::Unavailable(AcquireError::Throttled { .. }) => (Attempt::Unavailable, "TooManyRequests"),
                InvokeError::Unavailable(AcquireError::NodeFull { .. }) => (Attempt::Unavailable, "NodeMemoryFull"),
                InvokeError::Unavailable(_) => (Attempt::Unavailable, "InstanceUnavailable"),
                InvokeError::Store(_) => (Attempt::Unavailable, "StoreUnavailable"),
                InvokeError::Internal(_) => (Attempt::Unavailable, "InternalError"),
            };
            let message = e.to_string();
            Delivered {
                attempt,
                executed_version: None,
                response: bytes::Bytes::from(
                    serde_json::json!({"errorType": code, "errorMessage": message}).to_string(),
                ),
                error: Some(EventError { error_type: code.into(), message, function_error: false }),
            }
        }
    }
}

/// An error document's `errorMessage`, else the whole answer (cut at 256 KiB).
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|doc| doc.get("errorMessage")?.as_str().map(|m| event_text(m.as_bytes()).0))
        .unwrap_or_else(|| event_text(body).0)
}
