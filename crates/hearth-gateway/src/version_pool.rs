//! One function version's instances: the route cache entry (the least-loaded instance with a
//! free slot, found without any I/O) and its activator (requests held in a bounded queue
//! while instances start), scaled by its autoscaler and kept by its keep-alive policy
//! (`hearth_scale`), within the node's memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use hearth_agent::{ErrorReport, Instance, InstanceState};
use hearth_types::FunctionId;
use tokio::sync::oneshot;

use hearth_scale::{Autoscaler, AutoscalerConfig, Bounds, KeepAlivePolicy};

use crate::launcher::{InstanceTemplate, Launcher, Reservation};

/// A function version: the unit instances serve.
pub type VersionKey = (FunctionId, u32);

/// Why no instance could be had.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AcquireError {
    #[error("{held} requests are already waiting for an instance of this function (limit {limit})")]
    Throttled { held: usize, limit: usize },
    #[error("no instance became available within {0:?}")]
    Timeout(Duration),
    #[error("this node has no memory left for another instance ({committed_mb} of {limit_mb} MB committed)")]
    NodeFull { committed_mb: u64, limit_mb: u64 },
    /// Starting an instance failed; the error document for the caller.
    #[error("the instance failed to initialise")]
    Init(ErrorReport),
}

/// An instance in the pool.
pub struct Tracked {
    pub instance: Instance,
    /// How long the instance took to start (sandbox, runtime, init code).
    pub init_duration: Duration,
    last_used: Mutex<SystemTime>,
    /// The node memory it holds, given back when it goes.
    _memory: Reservation,
}

impl Tracked {
    pub fn last_used(&self) -> SystemTime {
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The pool's view of one instance's load.
struct Load {
    tracked: Arc<Tracked>,
    in_flight: u32,
    /// When it last became fully idle (for keep-alive) or was last handed a request.
    since: Instant,
    /// The eviction policy's clock when it last went idle (greedy-dual priority).
    clock_at_use: f64,
}

/// A request held for an instance, and since when.
struct Waiter {
    tx: oneshot::Sender<Result<Lease, AcquireError>>,
    since: Instant,
    /// When its caller gives up.
    deadline: Instant,
}

impl Waiter {
    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    fn send(self, answer: Result<Lease, AcquireError>) -> Result<(), Result<Lease, AcquireError>> {
        self.tx.send(answer)
    }
}

struct PoolState {
    /// Every instance not yet stopped, by id.
    live: HashMap<String, Load>,
    starting: usize,
    waiters: VecDeque<Waiter>,
    draining: bool,
    scaling: Scaling,
    /// Requests this version has been asked for (the eviction policy's frequency).
    invocations: u64,
    /// Instances of other versions are being evicted to make room for this one's.
    making_room: bool,
    /// Held requests wait for this version's busy instances until then, before evicting.
    recheck_at: Option<Instant>,
}

/// A function's keep-alive policy, shared by its versions so that what it learned survives
/// a deploy.
pub type SharedPolicy = Arc<Mutex<Box<dyn KeepAlivePolicy>>>;

/// The version's keep-alive policy and autoscaler, and what they observe.
struct Scaling {
    policy: SharedPolicy,
    /// Since when nothing has been in flight (until the next arrival).
    quiet_since: Option<Instant>,
    /// How long idle instances are kept now (the policy's last window).
    keep_alive: Duration,
    /// A pre-warm the policy asked for: one instance at this time.
    prewarm_at: Option<Instant>,
    autoscaler: Autoscaler,
    epoch: Instant,
    /// Concurrency (in flight + held) integrated over time since the last tick.
    area: f64,
    level: f64,
    changed: Instant,
    last_tick: Instant,
}

impl Scaling {
    /// Accounts the concurrency held since the last change (call before changing it).
    fn touch(&mut self, level: usize, now: Instant) {
        self.area += self.level * now.duration_since(self.changed).as_secs_f64();
        self.level = level as f64;
        self.changed = now;
    }
}

impl PoolState {
    fn concurrency(&self) -> usize {
        self.live.values().map(|s| s.in_flight as usize).sum::<usize>() + self.waiters.len()
    }

    /// Records the current concurrency for the autoscaler; call after each change.
    fn touch(&mut self) {
        let level = self.concurrency();
        self.scaling.touch(level, Instant::now());
    }
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
    pub fn new(
        key: VersionKey,
        template: InstanceTemplate,
        launcher: Arc<Launcher>,
        queue_length: usize,
        policy: SharedPolicy,
        autoscaler: AutoscalerConfig,
    ) -> Self {
        let slots = template.config.concurrency.max(1);
        let now = Instant::now();
        let keep_alive = policy.lock().unwrap_or_else(|p| p.into_inner()).windows().keep_alive;
        let scaling = Scaling {
            policy,
            quiet_since: None,
            keep_alive,
            prewarm_at: None,
            autoscaler: Autoscaler::new(autoscaler),
            epoch: now,
            area: 0.0,
            level: 0.0,
            changed: now,
            last_tick: now,
        };
        let state = PoolState {
            live: HashMap::new(),
            starting: 0,
            waiters: VecDeque::new(),
            draining: false,
            scaling,
            invocations: 0,
            making_room: false,
            recheck_at: None,
        };
        Self { key, template, launcher, queue_length, slots, state: Mutex::new(state) }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Requests waiting for an instance.
    pub fn waiting(&self) -> usize {
        self.lock().waiters.len()
    }

    /// A free slot at once (hot start) or, on a miss, after instances are started for the
    /// held requests (cold start), waiting at most `wait`.
    pub async fn acquire(self: &Arc<Self>, wait: Duration) -> Result<Lease, AcquireError> {
        let rx = {
            let mut st = self.lock();
            st.invocations += 1;
            // An arrival after a quiet spell: the keep-alive policy learns the idle time.
            if st.concurrency() == 0
                && let Some(quiet) = st.scaling.quiet_since.take()
            {
                st.scaling.policy.lock().unwrap_or_else(|p| p.into_inner()).observe_idle(quiet.elapsed());
                st.scaling.prewarm_at = None;
            }
            if let Some(t) = self.take_slot(&mut st) {
                st.touch();
                return Ok(Lease { pool: self.clone(), tracked: Some(t), cold: false });
            }
            st.waiters.retain(|w| !w.is_closed());
            if st.waiters.len() >= self.queue_length {
                return Err(AcquireError::Throttled { held: st.waiters.len(), limit: self.queue_length });
            }
            let (tx, rx) = oneshot::channel();
            let now = Instant::now();
            st.waiters.push_back(Waiter { tx, since: now, deadline: now + wait });
            st.touch();
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
    /// `max_instances`. When the node's memory is full, held requests first wait for this
    /// version's busy instances while that is cheaper than a start ([`Self::patience`]), then
    /// idle instances of other versions are evicted (in a task: never under this pool's
    /// lock); held requests are refused only when that cannot make room either.
    fn activate_for_waiters(self: &Arc<Self>, st: &mut PoolState) {
        // Callers that gave up are no demand: they evict nothing.
        st.waiters.retain(|w| !w.is_closed());
        let short = self.start(st, self.wanted_for_waiters(st));
        if short == 0 || st.making_room {
            return;
        }
        if self.launcher.evictions.policy == hearth_scale::EvictionPolicy::Off {
            return self.refuse_if_stuck(st);
        }
        if let Some(until) = self.patience(st) {
            return self.recheck(st, until);
        }
        st.making_room = true;
        let pool = self.clone();
        // Blocking (it locks other pools one after another): off the runtime's workers.
        tokio::task::spawn_blocking(move || pool.make_room(short));
    }

    /// Until when the oldest held request should wait for one of this version's busy
    /// instances rather than evict: while it has waited less than starting one costs here
    /// (the mean start time of those live), and no longer than leaves it the time to start
    /// one before its caller gives up. None: evict now.
    fn patience(&self, st: &PoolState) -> Option<Instant> {
        let Waiter { since: oldest, deadline, .. } = *st.waiters.front()?;
        let (running, total) = st
            .live
            .values()
            .filter(|s| matches!(s.tracked.instance.state(), InstanceState::Ready | InstanceState::Busy))
            .fold((0, Duration::ZERO), |(n, sum), s| (n + 1, sum + s.tracked.init_duration));
        let cost = total.checked_div(running).unwrap_or_default();
        let until = (oldest + cost).min(deadline.checked_sub(cost)?);
        hearth_scale::worth_waiting(running > 0, oldest.elapsed(), until - oldest).then_some(until)
    }

    /// Looks at the held requests again at `until` (once; an earlier look stands).
    fn recheck(self: &Arc<Self>, st: &mut PoolState, until: Instant) {
        if st.recheck_at.is_some_and(|at| at <= until) {
            return;
        }
        st.recheck_at = Some(until);
        let pool = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(until.into()).await;
            let mut st = pool.lock();
            if st.recheck_at == Some(until) {
                st.recheck_at = None;
            }
            if !st.waiters.is_empty() && !st.making_room && !st.draining {
                pool.activate_for_waiters(&mut st);
            }
        });
    }

    /// Instances to start for the held requests (each instance serves `slots`), beyond those
    /// starting, within `max_instances`.
    fn wanted_for_waiters(&self, st: &PoolState) -> usize {
        let needed = st.waiters.len().div_ceil(self.slots as usize).saturating_sub(st.starting);
        let max = self.template.config.max_instances as usize;
        needed.min(max.saturating_sub(st.live.len() + st.starting))
    }

    /// Evicts idle instances of other versions for `instances` of this one, and starts
    /// them with the memory reserved while evicting (so that no one else takes it).
    fn make_room(self: Arc<Self>, instances: usize) {
        // However this ends, the flag is cleared and stuck waiters are answered.
        struct Done(Arc<VersionPool>);
        impl Drop for Done {
            fn drop(&mut self) {
                let mut st = self.0.lock();
                st.making_room = false;
                self.0.refuse_if_stuck(&mut st);
            }
        }
        let done = Done(self.clone());
        let mb = u64::from(self.template.config.memory_mb);
        let reserved = self.launcher.evictions.make_room(self.key, mb, instances, &self.launcher.memory);
        let mut st = self.lock();
        let wanted = self.wanted_for_waiters(&st);
        for reservation in reserved.into_iter().take(wanted) {
            self.start_reserved(&mut st, reservation);
        }
        drop(st);
        drop(done);
    }

    /// The node is full. With nothing running or starting, held requests would wait for
    /// nothing: refuse them now.
    fn refuse_if_stuck(&self, st: &mut PoolState) {
        if st.live.is_empty() && st.starting == 0 && !st.making_room && !st.waiters.is_empty() {
            let memory = &self.launcher.memory;
            let e = AcquireError::NodeFull { committed_mb: memory.committed_mb(), limit_mb: memory.limit_mb };
            for w in st.waiters.drain(..) {
                let _ = w.send(Err(e.clone()));
            }
            st.touch();
        }
    }

    /// Starts up to `wanted` instances within `max_instances`; returns how many of those
    /// did not fit in the node's memory.
    fn start(self: &Arc<Self>, st: &mut PoolState, wanted: usize) -> usize {
        let max = self.template.config.max_instances as usize;
        let room = max.saturating_sub(st.live.len() + st.starting);
        let wanted = wanted.min(room);
        let memory = &self.launcher.memory;
        for started in 0..wanted {
            let Some(reservation) = memory.reserve(u64::from(self.template.config.memory_mb)) else {
                return wanted - started;
            };
            self.start_reserved(st, reservation);
        }
        0
    }

    fn start_reserved(self: &Arc<Self>, st: &mut PoolState, reservation: Reservation) {
        st.starting += 1;
        let pool = self.clone();
        // A child of the request that asked for it (its `acquire` span), if any.
        tokio::spawn(tracing::Instrument::in_current_span(async move { pool.activate(reservation).await }));
    }

    /// Lists this version's idle instances that may be evicted: ready, nothing in flight,
    /// beyond its `min_instances` (the longest idle first).
    pub(crate) fn eviction_candidates(self: &Arc<Self>, out: &mut Vec<crate::eviction::Found>) {
        let st = self.lock();
        let keep = if st.draining { 0 } else { self.template.config.min_instances as usize };
        let mut idle: Vec<(&String, &Load)> = st
            .live
            .iter()
            .filter(|(_, s)| s.in_flight == 0 && s.tracked.instance.state() == InstanceState::Ready)
            .collect();
        idle.sort_by_key(|(_, s)| s.since);
        let evictable = st.live.len().saturating_sub(keep).min(idle.len());
        for (id, s) in idle.into_iter().take(evictable) {
            out.push(crate::eviction::Found {
                pool: self.clone(),
                instance_id: id.clone(),
                candidate: hearth_scale::EvictionCandidate {
                    memory_mb: u64::from(self.template.config.memory_mb),
                    idle_for: s.since.elapsed(),
                    frequency: st.invocations,
                    cost: s.tracked.init_duration,
                    clock_at_use: s.clock_at_use,
                },
            });
        }
    }

    /// Stops the instance if it is still idle; whether it did.
    pub(crate) fn evict(&self, id: &str) -> bool {
        let mut st = self.lock();
        if st.live.get(id).is_none_or(|s| s.in_flight != 0) {
            return false;
        }
        self.retire(&mut st, id);
        true
    }

    async fn activate(self: Arc<Self>, reservation: Reservation) {
        let started = Instant::now();
        let result = self.launcher.launch(&self.template).await;
        let init_duration = started.elapsed();
        let mut st = self.lock();
        st.starting -= 1;
        match result {
            Ok(instance) => {
                let id = instance.id().to_owned();
                let t = Arc::new(Tracked {
                    instance,
                    init_duration,
                    last_used: Mutex::new(SystemTime::now()),
                    _memory: reservation,
                });
                let clock_at_use = self.launcher.evictions.clock();
                st.live.insert(id.clone(), Load { tracked: t, in_flight: 0, since: Instant::now(), clock_at_use });
                self.serve_waiters(&mut st, &id, true);
            }
            Err(report) => {
                // Everyone held now would meet the same broken code: fail them all rather
                // than retry in a loop. The next request tries again.
                for w in st.waiters.drain(..) {
                    let _ = w.send(Err(AcquireError::Init(report.clone())));
                }
                st.touch();
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
        let idle = slot.in_flight == 0;
        if idle {
            slot.since = Instant::now();
            slot.clock_at_use = self.launcher.evictions.clock();
        }
        st.touch();
        if st.concurrency() == 0 {
            self.went_quiet(&mut st);
        }
        match t.instance.state() {
            InstanceState::Failed | InstanceState::Stopped => {
                if idle {
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
        // A version that holds no instance any more starts counting its frequency anew
        // (greedy-dual-size-frequency forgets what left the cache).
        if st.live.is_empty() && st.starting == 0 {
            st.invocations = 0;
        }
    }

    /// Stops instances idle for at least `idle_for`, longest idle first, while more than
    /// `keep` are live.
    fn retire_idle(&self, st: &mut PoolState, idle_for: Duration, keep: usize) {
        let mut idle: Vec<(String, Instant)> = st
            .live
            .iter()
            .filter(|(_, s)| s.in_flight == 0 && s.since.elapsed() >= idle_for)
            .map(|(id, s)| (id.clone(), s.since))
            .collect();
        idle.sort_by_key(|(_, since)| *since);
        for (id, _) in idle {
            if st.live.len() <= keep {
                break;
            }
            self.retire(st, &id);
        }
    }

    /// Nothing is in flight any more: the keep-alive policy sets the windows. With a
    /// pre-warm window, idle instances go now and one comes back shortly before the next
    /// arrival is expected.
    fn went_quiet(&self, st: &mut PoolState) {
        let now = Instant::now();
        st.scaling.quiet_since = Some(now);
        let w = st.scaling.policy.lock().unwrap_or_else(|p| p.into_inner()).windows();
        st.scaling.keep_alive = w.keep_alive;
        if !w.prewarm.is_zero() && !st.draining {
            self.retire_idle(st, Duration::ZERO, self.template.config.min_instances as usize);
            st.scaling.prewarm_at = Some(now + w.prewarm);
        }
    }

    /// Every tick of the reaper: the autoscaler scales up ahead of demand (and down while
    /// busy); idle instances past the keep-alive window stop, keeping `min_instances`; a
    /// pre-warm that is due starts one instance; `min_instances` are topped up.
    pub fn reap(self: &Arc<Self>) {
        let mut st = self.lock();
        let now = Instant::now();
        st.touch();
        self.autoscale(&mut st, now);
        if let Some(at) = st.scaling.prewarm_at
            && at <= now
        {
            st.scaling.prewarm_at = None;
            if !st.draining && st.live.is_empty() && st.starting == 0 && self.start(&mut st, 1) > 0 {
                self.refuse_if_stuck(&mut st);
            }
        }
        // Held requests short of memory try again: instances elsewhere may have gone idle.
        if !st.waiters.is_empty() && !st.making_room && !st.draining {
            self.activate_for_waiters(&mut st);
        }
        let min = if st.draining { 0 } else { self.template.config.min_instances as usize };
        let keep_alive = st.scaling.keep_alive;
        self.retire_idle(&mut st, keep_alive, min);
        let missing = min.saturating_sub(st.live.len() + st.starting);
        if missing > 0 && self.start(&mut st, missing) > 0 {
            self.refuse_if_stuck(&mut st);
        }
    }

    /// One autoscaler step: observe the concurrency averaged since the last tick, then, while
    /// requests are in flight or held, start instances up to the decision (ahead of the
    /// queue), or, when over-provisioned and not panicking, let instances idle for a panic
    /// window go.
    fn autoscale(self: &Arc<Self>, st: &mut PoolState, now: Instant) {
        let sc = &mut st.scaling;
        let span = now.duration_since(sc.last_tick).as_secs_f64();
        if span <= 0.0 {
            return;
        }
        let observed = sc.area / span;
        sc.area = 0.0;
        sc.last_tick = now;
        let t = now.duration_since(sc.epoch);
        sc.autoscaler.observe(t, observed);
        if st.draining {
            return;
        }
        let config = &self.template.config;
        let current = st.live.len() + st.starting;
        let bounds = Bounds {
            min_instances: config.min_instances,
            max_instances: config.max_instances,
            per_instance: self.slots,
            current: current as u32,
            room: self.launcher.memory.room(u64::from(config.memory_mb)),
        };
        let decision = st.scaling.autoscaler.decide(t, bounds);
        let desired = decision.desired as usize;
        // Ahead of the load, but only while there is load: once nothing is in flight or
        // held, the keep-alive policy decides (the windows' averages would otherwise bring
        // back the instances it reclaims).
        if desired > current && st.concurrency() > 0 {
            if self.start(st, desired - current) > 0 {
                self.refuse_if_stuck(st);
            }
        } else if !decision.panicking && desired > 0 && desired < st.live.len() {
            let panic_window = st.scaling.autoscaler.config().panic_window;
            self.retire_idle(st, panic_window, desired.max(config.min_instances as usize));
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
