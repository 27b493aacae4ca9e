//! One function version's instances: the route cache entry (idle instances, taken without
//! any I/O) and its activator (requests held in a bounded queue while instances start).

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

/// An instance and when it was last used.
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

type Waiter = oneshot::Sender<Result<Lease, AcquireError>>;

#[derive(Default)]
struct PoolState {
    /// Ready instances, most recently used last (taken first, so the others age out).
    idle: Vec<(Arc<Tracked>, Instant)>,
    /// Every instance not yet stopped, by id.
    live: HashMap<String, Arc<Tracked>>,
    starting: usize,
    waiters: VecDeque<Waiter>,
    draining: bool,
}

pub struct VersionPool {
    pub key: VersionKey,
    pub template: InstanceTemplate,
    launcher: Arc<Launcher>,
    queue_length: usize,
    state: Mutex<PoolState>,
}

/// The right to send one request to one instance; returns the instance on drop.
pub struct Lease {
    pool: Arc<VersionPool>,
    tracked: Option<Arc<Tracked>>,
    /// Whether this request waited for the instance to be created.
    pub cold: bool,
}

impl Lease {
    /// The instance's start-up time when this request was its cold start.
    pub fn init_duration(&self) -> Option<Duration> {
        self.cold.then(|| self.tracked.as_ref().map(|t| t.init_duration)).flatten()
    }
}

impl Lease {
    pub fn instance(&self) -> &Instance {
        &self.tracked.as_ref().expect("a lease holds its instance until dropped").instance
    }

    /// Takes the instance out without returning it to the pool.
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
        Self { key, template, launcher, queue_length, state: Mutex::new(PoolState::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ready instance at once (hot start) or, on a miss, after one is started for this
    /// request (cold start), waiting at most `wait`.
    pub async fn acquire(self: &Arc<Self>, wait: Duration) -> Result<Lease, AcquireError> {
        let rx = {
            let mut st = self.lock();
            while let Some((t, _)) = st.idle.pop() {
                if t.instance.has_exited() {
                    // Died while idle: never hand a dead instance to a caller.
                    t.instance.transition(InstanceState::Failed).ok();
                    self.retire(&mut st, &t);
                    continue;
                }
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

    /// Starts enough instances for the held requests, within `max_instances`.
    fn activate_for_waiters(self: &Arc<Self>, st: &mut PoolState) {
        let wanted = st.waiters.len().saturating_sub(st.starting);
        self.start(st, wanted);
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
                st.live.insert(id, t.clone());
                self.hand_over(&mut st, t, true);
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

    /// Gives an instance to the first live waiter, else parks it idle (or stops it when
    /// the version is draining).
    fn hand_over(self: &Arc<Self>, st: &mut PoolState, t: Arc<Tracked>, cold: bool) {
        while let Some(w) = st.waiters.pop_front() {
            match w.send(Ok(Lease { pool: self.clone(), tracked: Some(t.clone()), cold })) {
                Ok(()) => return,
                // That caller gave up; defuse so the lease does not re-enter the pool.
                Err(Ok(lease)) => drop(lease.defuse()),
                Err(Err(_)) => {}
            }
        }
        if st.draining {
            self.retire(st, &t);
        } else {
            st.idle.push((t, Instant::now()));
        }
    }

    fn release(self: Arc<Self>, t: Arc<Tracked>) {
        *t.last_used.lock().unwrap_or_else(|p| p.into_inner()) = SystemTime::now();
        let mut st = self.lock();
        match t.instance.state() {
            InstanceState::Failed | InstanceState::Stopped => {
                st.live.remove(t.instance.id());
                // Requests held meanwhile get a replacement.
                self.activate_for_waiters(&mut st);
            }
            _ => self.hand_over(&mut st, t, false),
        }
    }

    fn retire(&self, st: &mut PoolState, t: &Tracked) {
        t.instance.stop();
        st.live.remove(t.instance.id());
    }

    /// Stops idle instances unused for `keep_alive`, keeping `min_instances`; then starts
    /// instances up to `min_instances`.
    pub fn reap(self: &Arc<Self>, keep_alive: Duration) {
        let mut st = self.lock();
        let min = if st.draining { 0 } else { self.template.config.min_instances as usize };
        let mut expired = vec![];
        st.idle.retain(|(t, since)| {
            if since.elapsed() >= keep_alive {
                expired.push(t.clone());
                false
            } else {
                true
            }
        });
        for t in expired {
            if st.live.len() > min {
                self.retire(&mut st, &t);
            } else {
                st.idle.push((t, Instant::now()));
            }
        }
        let missing = min.saturating_sub(st.live.len() + st.starting);
        if missing > 0 {
            self.start(&mut st, missing);
        }
    }

    /// The version is no longer `$LATEST`: idle instances stop now, busy ones after their
    /// request.
    pub fn drain(&self) {
        let mut st = self.lock();
        st.draining = true;
        for (t, _) in std::mem::take(&mut st.idle) {
            self.retire(&mut st, &t);
        }
    }

    /// Drained and empty: can be dropped from the route cache.
    pub fn is_finished(&self) -> bool {
        let st = self.lock();
        st.draining && st.live.is_empty() && st.starting == 0 && st.waiters.is_empty()
    }

    /// Instances for listings.
    pub fn instances(&self) -> Vec<Arc<Tracked>> {
        self.lock().live.values().cloned().collect()
    }
}
