//! Trace replay in virtual time: every function of a [`Trace`] runs against a keep-alive
//! policy (the same [`KeepAlivePolicy`] code the server runs), and the result counts cold
//! starts, idle instance memory-seconds (memory kept for instances that do nothing) and the
//! latency cold starts add.
//!
//! The model: each invocation occupies one instance for the function's average duration
//! (plus the cold-start time when it needs a new instance); an idle instance serves the next
//! arrival (a warm start); when a function has nothing running, the policy's windows decide
//! when its idle instances go (or that they go at once and one is pre-warmed later).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::keep_alive::KeepAlivePolicy;
use crate::trace::{Trace, TraceFunction};

#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    /// Latency a cold start adds (request arrival to the instance being ready).
    pub cold_start: Duration,
    /// Seed for the arrival times within each minute.
    pub seed: u64,
}

/// The outcome of one policy over the whole trace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimResult {
    pub invocations: u64,
    pub cold_starts: u64,
    /// Sum over idle instances of memory x idle time, in GB-seconds.
    pub idle_gb_seconds: f64,
    /// The 99th percentile of the latency cold starts add, in ms.
    pub p99_added_ms: f64,
}

impl SimResult {
    pub fn cold_start_rate(&self) -> f64 {
        if self.invocations == 0 { 0.0 } else { self.cold_starts as f64 / self.invocations as f64 }
    }
}

/// An idle (or pre-warmed) instance, available from `since` until `until`; `clock` is the
/// eviction policy's clock when it went idle (for the node replay, `node_replay.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Idle {
    pub since: f64,
    pub until: f64,
    pub clock: f64,
}

/// Seconds as a totally ordered key for the heap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct At(pub f64);
impl Eq for At {}
impl PartialOrd for At {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for At {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[derive(Debug, Default)]
pub(crate) struct FunctionSim {
    pub running: BinaryHeap<Reverse<At>>,
    pub idle: Vec<Idle>,
    /// When the function last had nothing running, until the next arrival.
    pub quiet_since: Option<f64>,
    pub idle_seconds: f64,
    pub invocations: u64,
    /// Invocations since the function last held no instance (greedy-dual's frequency, as
    /// the server counts it per version).
    pub frequency: u64,
    pub cold: u64,
}

impl FunctionSim {
    /// The invocation ending at `end` frees its instance.
    fn finish(&mut self, end: f64, policy: &dyn KeepAlivePolicy, clock: f64) {
        let w = policy.windows();
        let (prewarm, keep) = (w.prewarm.as_secs_f64(), w.keep_alive.as_secs_f64());
        if !self.running.is_empty() {
            self.idle.push(Idle { since: end, until: end + keep, clock });
            return;
        }
        self.quiet_since = Some(end);
        if prewarm > 0.0 {
            // Unload everything now; one instance comes back shortly before the next arrival.
            for i in self.idle.drain(..) {
                self.idle_seconds += (end.min(i.until) - i.since).max(0.0);
            }
            self.idle.push(Idle { since: end + prewarm, until: end + prewarm + keep, clock });
        } else {
            self.idle.push(Idle { since: end, until: end + keep, clock });
        }
    }

    /// Idle instances gone by `t` are accounted for and dropped.
    fn expire(&mut self, t: f64) {
        let mut kept = Vec::with_capacity(self.idle.len());
        for i in self.idle.drain(..) {
            if i.until <= t {
                self.idle_seconds += (i.until - i.since).max(0.0);
            } else {
                kept.push(i);
            }
        }
        self.idle = kept;
    }

    /// Invocations that ended by `t` free their instances; idle ones past their window go.
    pub fn advance(&mut self, t: f64, policy: &dyn KeepAlivePolicy, clock: f64) {
        while let Some(&Reverse(At(end))) = self.running.peek() {
            if end > t {
                break;
            }
            self.running.pop();
            self.finish(end, policy, clock);
        }
        self.expire(t);
    }

    /// An arrival at `t` (after [`Self::advance`]): the policy learns the quiet spell, and the
    /// most recently freed instance available now takes it (true), if there is one.
    pub fn begin(&mut self, t: f64, policy: &mut dyn KeepAlivePolicy) -> bool {
        if let Some(q) = self.quiet_since.take() {
            policy.observe_idle(Duration::from_secs_f64((t - q).max(0.0)));
            // A pre-warm still to come is superseded: the function is busy again.
            self.idle.retain(|i| i.since <= t);
        }
        self.invocations += 1;
        if self.running.is_empty() && self.idle.is_empty() {
            self.frequency = 0;
        }
        self.frequency += 1;
        let available =
            self.idle.iter().enumerate().filter(|(_, i)| i.since <= t).max_by(|a, b| a.1.since.total_cmp(&b.1.since));
        let Some(pos) = available.map(|(pos, _)| pos) else { return false };
        let i = self.idle.swap_remove(pos);
        self.idle_seconds += t - i.since;
        true
    }

    fn arrive(&mut self, t: f64, duration: f64, cold_start: f64, policy: &mut dyn KeepAlivePolicy) {
        self.advance(t, policy, 0.0);
        let end = if self.begin(t, policy) {
            t + duration
        } else {
            self.cold += 1;
            t + cold_start + duration
        };
        self.running.push(Reverse(At(end)));
    }

    /// Everything runs to its end; idle instances count until they go or the trace ends.
    pub fn close(&mut self, trace_end: f64, policy: &dyn KeepAlivePolicy) {
        while let Some(Reverse(At(end))) = self.running.pop() {
            self.finish(end, policy, 0.0);
        }
        for i in self.idle.drain(..) {
            self.idle_seconds += (i.until.min(trace_end) - i.since).max(0.0);
        }
    }
}

/// Replays one function; returns (invocations, cold starts, idle MB-seconds).
pub fn replay_function(
    f: &TraceFunction,
    policy: &mut dyn KeepAlivePolicy,
    config: &SimConfig,
    trace_end: f64,
) -> (u64, u64, f64) {
    let mut sim = FunctionSim::default();
    let duration = f.duration_ms / 1000.0;
    let cold = config.cold_start.as_secs_f64();
    for t in f.arrivals(config.seed) {
        sim.arrive(t, duration, cold, policy);
    }
    sim.close(trace_end, policy);
    (sim.invocations, sim.cold, sim.idle_seconds * f.memory_mb)
}

/// Replays every function of `trace`, each with a fresh policy from `policy`.
pub fn replay(trace: &Trace, policy: impl Fn() -> Box<dyn KeepAlivePolicy>, config: &SimConfig) -> SimResult {
    let trace_end = trace.minutes() as f64 * 60.0;
    let mut result = SimResult::default();
    let mut idle_mb_seconds = 0.0;
    for f in &trace.functions {
        let mut p = policy();
        let (n, cold, idle) = replay_function(f, p.as_mut(), config, trace_end);
        result.invocations += n;
        result.cold_starts += cold;
        idle_mb_seconds += idle;
    }
    result.idle_gb_seconds = idle_mb_seconds / 1024.0;
    // Warm invocations add nothing and cold ones add the cold-start time, so the 99th
    // percentile is one or the other.
    result.p99_added_ms = if result.cold_start_rate() > 0.01 { config.cold_start.as_secs_f64() * 1000.0 } else { 0.0 };
    result
}

/// The cold-start rate a frontier of policies (points of idle memory, cold-start rate) reaches
/// at idle memory `x`: linear between its two neighbours, clamped at its ends, so that a
/// policy is judged against the frontier at equal idle memory.
pub fn frontier_at(points: &[(f64, f64)], x: f64) -> f64 {
    let mut p = points.to_vec();
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (Some(first), Some(last)) = (p.first(), p.last()) else { return 0.0 };
    if x <= first.0 {
        return first.1;
    }
    if x >= last.0 {
        return last.1;
    }
    let i = p.iter().position(|q| q.0 >= x).expect("x is below the last point");
    let ((x0, y0), (x1, y1)) = (p[i - 1], p[i]);
    if x1 == x0 { y1 } else { y0 + (y1 - y0) * (x - x0) / (x1 - x0) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keep_alive::{Fixed, Windows};

    fn function(per_minute: Vec<u32>) -> TraceFunction {
        TraceFunction { id: "f".into(), per_minute, duration_ms: 100.0, memory_mb: 1024.0 }
    }

    const CONFIG: SimConfig = SimConfig { cold_start: Duration::from_millis(50), seed: 7 };

    #[test]
    fn fixed_keep_alive_counts_gaps_longer_than_itself_as_cold() {
        // One call every 5 minutes for an hour.
        let f = function((0..60).map(|m| u32::from(m % 5 == 0)).collect());
        let (n, cold, idle) = replay_function(&f, &mut Fixed(Duration::from_secs(90)), &CONFIG, 3600.0);
        assert_eq!((n, cold), (12, 12), "every call finds its instance gone");
        assert!((idle - 12.0 * 90.0 * 1024.0).abs() < 1024.0 * 15.0, "each instance idles 90 s: {idle}");
        let (_, cold, idle) = replay_function(&f, &mut Fixed(Duration::from_secs(600)), &CONFIG, 3600.0);
        assert_eq!(cold, 1, "10 minutes cover every gap");
        assert!(idle > 3000.0 * 1024.0, "and the instance idles almost all hour: {idle}");
    }

    /// Pre-warms 4 minutes after each end and keeps for 2: a 5-minute timer is always warm.
    #[derive(Debug)]
    struct Prewarm;
    impl KeepAlivePolicy for Prewarm {
        fn kind(&self) -> crate::PolicyKind {
            crate::PolicyKind::Adaptive
        }
        fn observe_idle(&mut self, _: Duration) {}
        fn windows(&self) -> Windows {
            Windows { prewarm: Duration::from_secs(240), keep_alive: Duration::from_secs(120) }
        }
    }

    #[test]
    fn prewarming_serves_a_timer_warm_with_little_idle_memory() {
        let f = TraceFunction { per_minute: (0..60).map(|m| u32::from(m % 5 == 0)).collect(), ..function(vec![]) };
        let (n, cold, idle) = replay_function(&f, &mut Prewarm, &CONFIG, 3600.0);
        assert_eq!(n, 12);
        assert_eq!(cold, 1, "only the first call is cold");
        // Each pre-warmed instance waits at most ~120 s (arrivals fall anywhere in their minute).
        assert!(idle < 11.0 * 125.0 * 1024.0, "{idle}");
    }

    #[test]
    fn the_frontier_is_read_between_its_points_and_clamped() {
        let points = [(300.0, 2.0), (100.0, 10.0), (200.0, 4.0)];
        assert_eq!(frontier_at(&points, 150.0), 7.0);
        assert_eq!(frontier_at(&points, 250.0), 3.0);
        assert_eq!((frontier_at(&points, 50.0), frontier_at(&points, 900.0)), (10.0, 2.0));
        assert_eq!(frontier_at(&[], 1.0), 0.0);
    }

    #[test]
    fn concurrent_arrivals_need_their_own_instances() {
        let f = function(vec![50]);
        let (n, cold, _) = replay_function(
            &TraceFunction { duration_ms: 120_000.0, ..f },
            &mut Fixed(Duration::from_secs(90)),
            &CONFIG,
            600.0,
        );
        assert_eq!((n, cold), (50, 50), "each call still runs when the next arrives");
    }
}
