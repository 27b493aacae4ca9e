//! Asynchronous invocations: accepted only once stored durably, delivered at least once.
//!
//! The [`acceptor`] stores events through the [`EventQueue`] in synced group commits; the
//! [`dispatcher`] leases due events, runs them through the gateway like any invocation, and
//! settles each by the pure rules of [`retry`]: function errors are retried after 1 then 2
//! minutes (`async_retries`, 0 to 2), platform failures with exponential backoff and jitter
//! until the event is `max_event_age_s` old; then the outcome goes to the function's
//! on-failure destination (a record shaped as Lambda's, [`destination`]) or its dead-letter
//! list. The [`scheduler`] fires cron triggers into the same queue; NATS triggers (`nats.rs`)
//! queue core NATS messages there, or deliver JetStream messages straight from their stream
//! by the same retry rules, acknowledging each only once the function succeeded. HTTP is not here:
//! `hearth-server` serves these methods.

mod acceptor;
mod budget;
pub mod destination;
mod dispatcher;
mod nats;
mod nats_core;
mod nats_jetstream;
pub mod nats_records;
pub mod retry;
pub mod scheduler;
mod settings;
#[cfg(feature = "test-support")]
pub mod test_support;

use std::sync::Arc;
use std::time::Duration;

use hearth_gateway::Gateway;
use hearth_store::{Enqueued, EventQueue, NewEvent, StoreError};
use hearth_types::{NatsTrigger, NatsTriggerState};
use tokio::sync::Notify;

pub use acceptor::Acceptor;
pub use settings::EventSettings;

use dispatcher::Dispatcher;
use scheduler::Scheduler;

/// The running event service. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    acceptor: Acceptor,
    dispatcher: Arc<Dispatcher>,
    schedules_changed: Arc<Notify>,
    nats: Arc<nats::NatsTriggers>,
}

impl Events {
    /// Starts the acceptor, the dispatcher (which first takes back the leases this node's
    /// previous run held), the cron scheduler and the NATS triggers' consumers.
    pub fn start(queue: Arc<dyn EventQueue>, gateway: Gateway, settings: EventSettings) -> Self {
        let wake = Arc::new(Notify::new());
        let acceptor = Acceptor::start(queue.clone(), settings.accept_batch, wake.clone());
        let schedules_changed = Arc::new(Notify::new());
        let scheduler = Arc::new(Scheduler {
            queue: queue.clone(),
            gateway: gateway.clone(),
            settings: settings.clone(),
            queued: wake.clone(),
            changed: schedules_changed.clone(),
        });
        tokio::spawn(scheduler.run());
        let budget = budget::Budget::new(settings.max_in_flight);
        let nats = nats::NatsTriggers::start(nats::Context {
            queue: queue.clone(),
            gateway: gateway.clone(),
            acceptor: acceptor.clone(),
            budget: budget.clone(),
            settings: settings.clone(),
            wake: wake.clone(),
        });
        let dispatcher = Arc::new(Dispatcher::new(queue, gateway, settings, wake, budget));
        tokio::spawn(dispatcher.clone().run());
        Self { acceptor, dispatcher, schedules_changed, nats }
    }

    /// Stores `event`; `Accepted` means it is on disk and will be delivered.
    pub async fn accept(&self, event: NewEvent) -> Result<Enqueued, StoreError> {
        self.acceptor.accept(event).await
    }

    /// The queue, for reading events and dead letters.
    pub fn queue(&self) -> &Arc<dyn EventQueue> {
        &self.dispatcher.queue
    }

    /// Tells the dispatcher to look at the queue now (after a redrive).
    pub fn wake(&self) {
        self.dispatcher.wake.notify_one();
    }

    /// Tells the scheduler that cron triggers were added or removed.
    pub fn schedules_changed(&self) {
        self.schedules_changed.notify_one();
    }

    /// Tells the NATS consumers that NATS triggers were added or removed.
    pub fn nats_triggers_changed(&self) {
        self.nats.changed.notify_one();
    }

    /// Each of `triggers` (as stored) with what its consumer on this node is doing.
    pub fn nats_states(&self, triggers: Vec<NatsTrigger>) -> Vec<NatsTriggerState> {
        self.nats.states(triggers)
    }

    /// Deliveries running now.
    pub fn running(&self) -> usize {
        self.dispatcher.running()
    }

    /// Stops leasing events and pulling NATS messages, and waits up to `grace` for running
    /// deliveries to settle.
    pub async fn stop(&self, grace: Duration) {
        self.nats.stop();
        self.dispatcher.stop(grace).await;
    }
}
