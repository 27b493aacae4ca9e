//! NATS triggers: the supervisor that keeps one consumer task per stored trigger, sharing
//! one connection per server (and credentials) among them, and what each is doing.
//!
//! A trigger on a plain subject (`nats_core.rs`) subscribes in a queue group of its own (so
//! nodes of a cluster share the messages) and queues each batch of messages as an event in
//! the durable queue: from there on the event has the queue's guarantees and retries. A
//! trigger on a JetStream stream (`nats_jetstream.rs`) pulls from a durable consumer and
//! invokes the function directly, acknowledging a message only once the function succeeded;
//! a failure is delivered again by the stream after the retry rules' wait, and a message
//! that used up its retries goes to the on-failure function or the dead-letter list, then is
//! terminated on the stream. Both take their places in the asynchronous budget.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_gateway::Gateway;
use hearth_store::EventQueue;
use hearth_types::{NatsTrigger, NatsTriggerState, NatsTriggerStatus, TriggerId};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::budget::Budget;
use crate::{Acceptor, EventSettings};

/// How often the stored triggers are read again when nothing says they changed (another
/// node added one).
const RECONCILE_INTERVAL: Duration = Duration::from_secs(10);
/// Waits between attempts of a consumer that cannot start: doubled from the first to the last.
pub(crate) const RETRY_MIN: Duration = Duration::from_millis(500);
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(30);

/// What one trigger's consumer has done since this server started.
#[derive(Default)]
pub(crate) struct Stats {
    status: Mutex<Option<(NatsTriggerStatus, Option<String>)>>,
    pub received: AtomicU64,
    pub handled: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub dropped: AtomicU64,
}

impl Stats {
    pub fn set(&self, status: NatsTriggerStatus, error: Option<String>) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = Some((status, error));
    }

    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// What a consumer task needs.
#[derive(Clone)]
pub(crate) struct Context {
    pub queue: Arc<dyn EventQueue>,
    pub gateway: Gateway,
    pub acceptor: Acceptor,
    pub budget: Arc<Budget>,
    pub settings: EventSettings,
    pub wake: Arc<Notify>,
}

struct Running {
    trigger: NatsTrigger,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
    client: Option<Shared>,
}

/// A connection shared by the triggers on one server, with the last trouble it reported.
#[derive(Clone)]
struct Shared {
    client: async_nats::Client,
    trouble: Arc<Mutex<Option<String>>>,
}

pub(crate) struct NatsTriggers {
    context: Context,
    pub changed: Notify,
    running: Mutex<HashMap<TriggerId, Running>>,
    /// One client per address and credentials.
    clients: Mutex<HashMap<String, Shared>>,
    stopped: AtomicBool,
}

impl NatsTriggers {
    pub fn start(context: Context) -> Arc<Self> {
        let this = Arc::new(Self {
            context,
            changed: Notify::new(),
            running: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            stopped: AtomicBool::new(false),
        });
        tokio::spawn(this.clone().supervise());
        this
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<TriggerId, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn supervise(self: Arc<Self>) {
        while !self.stopped.load(Ordering::SeqCst) {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.context.queue.list_nats_triggers().await {
                Ok(triggers) => self.reconcile(triggers).await,
                Err(e) => tracing::warn!(%e, "cannot read the NATS triggers; trying again"),
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(RECONCILE_INTERVAL) => {}
            }
        }
    }

    /// Starts a consumer for each stored trigger without one, stops those of triggers gone,
    /// and lets go of connections no trigger uses.
    async fn reconcile(&self, triggers: Vec<NatsTrigger>) {
        let mut starting = Vec::new();
        {
            let mut running = self.running();
            running.retain(|id, r| {
                let keep = triggers.iter().any(|t| t.id == *id && *t == r.trigger);
                if !keep {
                    r.task.abort();
                    tracing::info!(trigger = %id, "NATS trigger stopped");
                }
                keep
            });
            for t in &triggers {
                if !running.contains_key(&t.id) {
                    starting.push(t.clone());
                }
            }
        }
        for trigger in starting {
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            let client = self.client(&trigger).await;
            let stats = Arc::new(Stats::default());
            stats.set(NatsTriggerStatus::Connecting, None);
            let connected = client.as_ref().ok().cloned();
            let client = client.map(|c| c.client);
            let task = tokio::spawn(consume(self.context.clone(), trigger.clone(), client, stats.clone()));
            tracing::info!(trigger = %trigger.id, function = %trigger.function, subject = %trigger.subject, "NATS trigger started");
            self.running().insert(trigger.id, Running { trigger, stats, task, client: connected });
        }
        let used: Vec<String> = self.running().values().map(|r| client_key(&r.trigger)).collect();
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).retain(|key, _| used.contains(key));
    }

    /// The shared client for a trigger's server: made on first use, connecting (and
    /// reconnecting) in the background.
    async fn client(&self, trigger: &NatsTrigger) -> Result<Shared, String> {
        let key = client_key(trigger);
        if let Some(c) = self.clients.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(c.clone());
        }
        let trouble: Arc<Mutex<Option<String>>> = Arc::default();
        let server = trigger.server.clone();
        let seen = trouble.clone();
        let mut options = async_nats::ConnectOptions::new()
            .event_callback(move |event| {
                let (seen, server) = (seen.clone(), server.clone());
                async move {
                    let note = match &event {
                        async_nats::Event::Connected => None,
                        async_nats::Event::SlowConsumer(_) => {
                            tracing::warn!(%server, "NATS messages dropped: this server reads them too slowly");
                            return;
                        }
                        other => Some(format!("{server}: {other}")),
                    };
                    *seen.lock().unwrap_or_else(|p| p.into_inner()) = note;
                }
            })
            .name("hearth")
            // Only the address the trigger names: credentials go nowhere else.
            .ignore_discovered_servers()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .subscription_capacity(65_536);
        match trigger.credentials.as_deref().map(|c| c.split_once(':')) {
            Some(Some((user, password))) => options = options.user_and_password(user.into(), password.into()),
            Some(None) => options = options.token(trigger.credentials.clone().unwrap_or_default()),
            None => {}
        }
        let client = options.connect(trigger.server.as_str()).await.map_err(|e| e.to_string())?;
        let shared = Shared { client, trouble };
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).insert(key, shared.clone());
        Ok(shared)
    }

    /// Each trigger with what its consumer on this node is doing.
    pub fn states(&self, triggers: Vec<NatsTrigger>) -> Vec<NatsTriggerState> {
        let running = self.running();
        triggers
            .into_iter()
            .map(|trigger| {
                let r = running.get(&trigger.id);
                let stats = r.map(|r| r.stats.clone()).unwrap_or_default();
                let (mut status, mut error) = stats
                    .status
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .unwrap_or((NatsTriggerStatus::Connecting, None));
                // The client resubscribes by itself once it is back.
                if let Some(shared) = r.and_then(|r| r.client.as_ref()) {
                    let connected = shared.client.connection_state() == async_nats::connection::State::Connected;
                    let trouble = shared.trouble.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    if status == NatsTriggerStatus::Consuming && !connected {
                        status = NatsTriggerStatus::Connecting;
                        error = Some(format!("disconnected from {}; reconnecting", trigger.server));
                    }
                    if status != NatsTriggerStatus::Consuming && error.is_none() {
                        error = trouble;
                    }
                }
                let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
                NatsTriggerState {
                    authenticated: trigger.credentials.is_some(),
                    status,
                    error,
                    received: n(&stats.received),
                    handled: n(&stats.handled),
                    dead_lettered: n(&stats.dead_lettered),
                    dropped: n(&stats.dropped),
                    trigger,
                }
            })
            .collect()
    }

    /// Stops every consumer (messages being delivered are finished by their tasks, within
    /// the dispatcher's grace; those not acknowledged are delivered again by the stream).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.changed.notify_one();
        for (_, r) in self.running().drain() {
            r.task.abort();
        }
    }
}

/// Which client a trigger uses: one per server and credentials, but a JetStream trigger has
/// one of its own (a message the client cannot read drops its connection, async-nats, and
/// that must not reach other triggers).
fn client_key(trigger: &NatsTrigger) -> String {
    match &trigger.stream {
        Some(_) => format!("{}#{}", trigger.connect_url(), trigger.id),
        None => trigger.connect_url(),
    }
}

/// One trigger's consumer: runs until stopped, starting again after a wait when its
/// connection, stream or consumer fails.
async fn consume(
    context: Context,
    trigger: NatsTrigger,
    client: Result<async_nats::Client, String>,
    stats: Arc<Stats>,
) {
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            stats.set(NatsTriggerStatus::Failing, Some(format!("cannot connect to {}: {e}", trigger.server)));
            return;
        }
    };
    let mut wait = RETRY_MIN;
    loop {
        let result = if trigger.stream.is_some() {
            crate::nats_jetstream::run(&context, &trigger, &client, &stats).await
        } else {
            crate::nats_core::run(&context, &trigger, &client, &stats).await
        };
        let error = match result {
            Ok(()) => "the subscription ended".to_owned(),
            Err(e) => e,
        };
        let status = match client.connection_state() {
            async_nats::connection::State::Connected => NatsTriggerStatus::Failing,
            _ => NatsTriggerStatus::Connecting,
        };
        tracing::warn!(trigger = %trigger.id, %error, "NATS trigger cannot consume; trying again in {wait:?}");
        stats.set(status, Some(error));
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_MAX);
    }
}
