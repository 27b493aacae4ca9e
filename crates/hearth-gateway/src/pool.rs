//! One function version's instances: the route cache entry (the least-loaded instance with a
//! free slot, found without any I/O) and its activator (requests held in a bounded queue
//! while instances start).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hearth_agent::{Instance, InstanceState};
use hearth_types::FunctionId;
use tokio::sync::oneshot;

use crate::launcher::{InstanceTemplate, Launcher};

/// A function version: the unit instances serve.
pub type VersionKey = (FunctionId, u32);

/// Why no instance could be had.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AcquireError {
    #[error("{held} requests are already waiting for an instance of this function (limit {limit})")]
    Throttled { held: usize, limit: usize },
    #[error("no instance became available within {0:?}")]
    Timeout(Duration),
    /// Starting an instance failed; the error document for the caller.
    #[error("the instance failed to initialise")]
    Init(Bytes),
}

/// An instance in the pool.
pub struct Tracked {
    pub instance: Instance,
    /// How long the instance took to start (sandbox, runtime, init code).
    pub init_duration: Duration,
    last_used: Mutex<SystemTime>,
}

impl Tracked {
    pub fn last_used(&self) -> SystemTime {
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The pool's view of one instance's load.
struct Slots {
    tracked: Arc<Tracked>,
    in_flight: u32,
    /// When it last became fully idle (for keep-alive) or was last handed a request.
    since: Instant,
}

type Waiter = oneshot::Sender<Result<Lease, AcquireError>>;

#[derive(Default)]
struct PoolState {
    /// Every instance not yet stopped, by id.
    live: HashMap<String, Slots>,
    starting: usize,
    waiters: VecDeque<Waiter>,
    draining: bool,
}

pub struct VersionPool {
    pub key: VersionKey,
    pub template: InstanceTemplate,
    launcher: Arc<Launcher>,
    queue_length: usize,
    slots: u32,
    state: Mutex<PoolState>,
}

/// The right to send one request to one instance slot; returns the slot on drop.
pub struct Lease {
    pool: Arc<VersionPool>,
    tracked: Option<Arc<Tracked>>,
    /// Whether this request waited for the instance to be created.
    pub cold: bool,
}

impl Lease {
    pub fn instance(&self) -> &Instance {
        &self.tracked.as_ref().expect("a lease holds its instance until dropped").instance
    }

    /// The instance's start-up time when this request was its cold start.
    pub fn init_duration(&self) -> Option<Duration> {
        self.cold.then(|| self.tracked.as_ref().map(|t| t.init_duration)).flatten()
    }

    /// Takes the instance out without running the release logic (the caller does).
    fn defuse(mut self) -> Arc<Tracked> {
        self.tracked.take().expect("a lease holds its instance until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(t) = self.tracked.take() {
            self.pool.clone().release(t);
        }
    }
}

impl VersionPool {
    pub fn new(key: VersionKey, template: InstanceTemplate, launcher: Arc<Launcher>, queue_length: usize) -> Self {
        let slots = template.config.concurrency.max(1);
        Self { key, template, launcher, queue_length, slots, state: Mutex::new(PoolState::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A free slot at once (hot start) or, on a miss, after instances are started for the
    /// held requests (cold start), waiting at most `wait`.
    pub async fn acquire(self: &Arc<Self>, wait: Duration) -> Result<Lease, AcquireError> {
        let rx = {
            let mut st = self.lock();
            if let Some(t) = self.take_slot(&mut st) {
                return Ok(Lease { pool: self.clone(), tracked: Some(t), cold: false });
            }
            st.waiters.retain(|w| !w.is_closed());
            if st.waiters.len() >= self.queue_length {
                return Err(AcquireError::Throttled { held: st.waiters.len(), limit: self.queue_length });
            }
            let (tx, rx) = oneshot::channel();
            st.waiters.push_back(tx);
            self.activate_for_waiters(&mut st);
            rx
        };
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(result)) => result,
            // The pool dropped our waiter without an answer (cannot happen while it lives).
            Ok(Err(_)) => Err(AcquireError::Timeout(wait)),
            Err(_) => Err(AcquireError::Timeout(wait)),
        }
    }

    /// The least-loaded live instance with a free slot (most recently used on ties, so the
    /// others can age out); dead ones are retired on the way.
    fn take_slot(&self, st: &mut PoolState) -> Option<Arc<Tracked>> {
        let dead: Vec<String> =
            st.live.iter().filter(|(_, s)| s.tracked.instance.has_exited()).map(|(id, _)| id.clone()).collect();
        for id in dead {
            if let Some(s) = st.live.remove(&id) {
                s.tracked.instance.transition(InstanceState::Failed).ok();
                s.tracked.instance.stop();
            }
        }
        let best = st
            .live
            .values_mut()
            .filter(|s| s.in_flight < self.slots && s.tracked.instance.state() == InstanceState::Ready)
            .min_by_key(|s| (s.in_flight, std::cmp::Reverse(s.since)))?;
        best.in_flight += 1;
        best.since = Instant::now();
        Some(best.tracked.clone())
    }

    /// Starts enough instances for the held requests (each instance serves `slots`), within
    /// `max_instances`.
    fn activate_for_waiters(self: &Arc<Self>, st: &mut PoolState) {
        let needed = st.waiters.len().div_ceil(self.slots as usize);
        self.start(st, needed.saturating_sub(st.starting));
    }

    fn start(self: &Arc<Self>, st: &mut PoolState, wanted: usize) {
        let max = self.template.config.max_instances as usize;
        let room = max.saturating_sub(st.live.len() + st.starting);
        for _ in 0..wanted.min(room) {
            st.starting += 1;
            let pool = self.clone();
            tokio::spawn(async move { pool.activate().await });
        }
    }

    async fn activate(self: Arc<Self>) {
        let started = Instant::now();
        let result = self.launcher.launch(&self.template).await;
        let init_duration = started.elapsed();
        let mut st = self.lock();
        st.starting -= 1;
        match result {
            Ok(instance) => {
                let id = instance.id().to_owned();
                let t = Arc::new(Tracked { instance, init_duration, last_used: Mutex::new(SystemTime::now()) });
                st.live.insert(id.clone(), Slots { tracked: t, in_flight: 0, since: Instant::now() });
                self.serve_waiters(&mut st, &id, true);
            }
            Err(body) => {
                // Everyone held now would meet the same broken code: fail them all rather
                // than retry in a loop. The next request tries again.
                for w in st.waiters.drain(..) {
                    let _ = w.send(Err(AcquireError::Init(body.clone())));
                }
            }
        }
    }

    /// Gives the instance's free slots to held requests; an instance left without work on
    /// a draining version is stopped.
    fn serve_waiters(self: &Arc<Self>, st: &mut PoolState, id: &str, cold: bool) {
        loop {
            let Some(slot) = st.live.get_mut(id) else { return };
            if slot.in_flight >= self.slots {
                return;
            }
            let Some(w) = st.waiters.pop_front() else { break };
            slot.in_flight += 1;
            slot.since = Instant::now();
            let lease = Lease { pool: self.clone(), tracked: Some(slot.tracked.clone()), cold };
            if let Err(Ok(lease)) = w.send(Ok(lease)) {
                // That caller gave up: take the slot back without re-entering the pool.
                drop(lease.defuse());
                slot.in_flight -= 1;
            }
        }
        if st.draining && st.live.get(id).is_some_and(|s| s.in_flight == 0) {
            self.retire(st, id);
        }
    }

    fn release(self: Arc<Self>, t: Arc<Tracked>) {
        *t.last_used.lock().unwrap_or_else(|p| p.into_inner()) = SystemTime::now();
        let mut st = self.lock();
        let id = t.instance.id().to_owned();
        let Some(slot) = st.live.get_mut(&id) else { return };
        slot.in_flight -= 1;
        if slot.in_flight == 0 {
            slot.since = Instant::now();
        }
        match t.instance.state() {
            InstanceState::Failed | InstanceState::Stopped => {
                if slot.in_flight == 0 {
                    st.live.remove(&id);
                }
                // Requests held meanwhile get a replacement.
                self.activate_for_waiters(&mut st);
            }
            _ => self.serve_waiters(&mut st, &id, false),
        }
    }

    fn retire(&self, st: &mut PoolState, id: &str) {
        if let Some(s) = st.live.remove(id) {
            s.tracked.instance.stop();
        }
    }

    /// Stops instances idle for `keep_alive`, keeping `min_instances`; then starts instances
    /// up to `min_instances`.
    pub fn reap(self: &Arc<Self>, keep_alive: Duration) {
        let mut st = self.lock();
        let min = if st.draining { 0 } else { self.template.config.min_instances as usize };
        let mut expired: Vec<(String, Instant)> = st
            .live
            .iter()
            .filter(|(_, s)| s.in_flight == 0 && s.since.elapsed() >= keep_alive)
            .map(|(id, s)| (id.clone(), s.since))
            .collect();
        expired.sort_by_key(|(_, since)| *since);
        for (id, _) in expired {
            if st.live.len() <= min {
                break;
            }
            self.retire(&mut st, &id);
        }
        let missing = min.saturating_sub(st.live.len() + st.starting);
        if missing > 0 {
            self.start(&mut st, missing);
        }
    }

    /// The version is no longer `$LATEST`: idle instances stop now, busy ones after their
    /// last request.
    pub fn drain(&self) {
        let mut st = self.lock();
        st.draining = true;
        let idle: Vec<String> = st.live.iter().filter(|(_, s)| s.in_flight == 0).map(|(id, _)| id.clone()).collect();
        for id in idle {
            self.retire(&mut st, &id);
        }
        // The busy ones finish their requests as Draining (never handed new work), then stop.
        for s in st.live.values() {
            s.tracked.instance.transition(InstanceState::Draining).ok();
        }
    }

    /// Drained and empty: can be dropped from the route cache.
    pub fn is_finished(&self) -> bool {
        let st = self.lock();
        st.draining && st.live.is_empty() && st.starting == 0 && st.waiters.is_empty()
    }

    /// Instances for listings.
    pub fn instances(&self) -> Vec<Arc<Tracked>> {
        self.lock().live.values().map(|s| s.tracked.clone()).collect()
    }
}
