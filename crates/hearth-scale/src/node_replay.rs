//! The trace replayed on one node with a memory budget: every function's arrivals in one
//! timeline, instances (running and idle) holding their function's memory, and a cold start
//! that does not fit evicting idle instances of other functions by an [`EvictionPolicy`]
//! (the same code the server runs); when that cannot make room (or with
//! [`EvictionPolicy::Off`]) the call waits for its function's first instance to free, as
//! the server holds it, or, with none running, is refused (it does not run). Before
//! evicting, a call whose function has an instance running waits for it when that is
//! cheaper than a start ([`worth_waiting`]; the server judges by the wait so far, the
//! replay, knowing when the instance frees, by the whole wait).
//!
//! The model is [`crate::simulate`]'s, plus: memory is held from a cold start until the
//! instance is reclaimed; a pre-warmed instance holds memory from when it is ready (it is not
//! refused when the node is full, so the committed memory may pass the budget by pre-warms
//! until they are used or go); every start costs the same `cold_start`, so greedy-dual ranks
//! by frequency and size.

use std::cmp::Reverse;
use std::time::Duration;

use crate::eviction::{Candidate, EvictionPolicy, worth_waiting};
use crate::keep_alive::KeepAlivePolicy;
use crate::simulate::{At, FunctionSim, SimConfig, SimResult};
use crate::trace::Trace;

/// The node's memory and what happens when it is full.
#[derive(Debug, Clone, Copy)]
pub struct NodeBudget {
    pub memory_mb: f64,
    pub eviction: EvictionPolicy,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeResult {
    pub sim: SimResult,
    /// Invocations refused for want of memory (their function had nothing running).
    pub refused: u64,
    /// Invocations that waited for one of their function's running instances, for want
    /// of memory for another.
    pub held: u64,
    /// Idle instances evicted to make room.
    pub evictions: u64,
    /// The most memory committed at once (running and idle instances), in MB.
    pub peak_mb: f64,
}

impl NodeResult {
    pub fn refused_rate(&self) -> f64 {
        if self.sim.invocations == 0 { 0.0 } else { self.refused as f64 / self.sim.invocations as f64 }
    }
}

/// Replays every function of `trace` on one node, each with a fresh policy from `policy`,
/// within `budget` (`None`: unbounded, to measure the peak).
pub fn replay_node(
    trace: &Trace,
    policy: impl Fn() -> Box<dyn KeepAlivePolicy>,
    config: &SimConfig,
    budget: Option<NodeBudget>,
) -> NodeResult {
    let functions = &trace.functions;
    let mut sims: Vec<FunctionSim> = functions.iter().map(|_| FunctionSim::default()).collect();
    let mut policies: Vec<Box<dyn KeepAlivePolicy>> = functions.iter().map(|_| policy()).collect();
    let mut arrivals: Vec<(f64, usize)> = functions
        .iter()
        .enumerate()
        .flat_map(|(i, f)| f.arrivals(config.seed).into_iter().map(move |t| (t, i)))
        .collect();
    arrivals.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let cold_start = config.cold_start.as_secs_f64();
    let mut result = NodeResult::default();
    let mut clock = 0.0;
    for (t, i) in arrivals {
        sims[i].advance(t, policies[i].as_ref(), clock);
        let duration = functions[i].duration_ms / 1000.0;
        if sims[i].begin(t, policies[i].as_mut()) {
            sims[i].running.push(Reverse(At(t + duration)));
            continue;
        }
        // A cold start: what does the node hold now?
        for (sim, p) in sims.iter_mut().zip(&policies) {
            sim.advance(t, p.as_ref(), clock);
        }
        let held = |sim: &FunctionSim| (sim.running.len() + sim.idle.iter().filter(|x| x.since <= t).count()) as f64;
        let committed: f64 = sims.iter().zip(functions).map(|(s, f)| held(s) * f.memory_mb).sum();
        let mb = functions[i].memory_mb;
        if let Some(b) = budget
            && committed + mb > b.memory_mb
        {
            if let Some(&Reverse(At(end))) = sims[i].running.peek()
                && b.eviction != EvictionPolicy::Off
                && worth_waiting(true, Duration::from_secs_f64((end - t).max(0.0)), config.cold_start)
            {
                sims[i].running.pop();
                result.held += 1;
                sims[i].running.push(Reverse(At(end + duration)));
                continue;
            }
            let need = (committed + mb - b.memory_mb).ceil() as u64;
            match evict(&mut sims, trace, i, t, need, b.eviction, clock, config.cold_start) {
                Some((evicted, new_clock)) => {
                    result.evictions += evicted;
                    clock = new_clock;
                }
                None => {
                    // As the server does: with an instance of its own running, the call
                    // waits for it; with none, it is refused.
                    // The instance that frees first serves it next.
                    if let Some(Reverse(At(end))) = sims[i].running.pop() {
                        result.held += 1;
                        sims[i].running.push(Reverse(At(end + duration)));
                    } else {
                        result.refused += 1;
                        sims[i].quiet_since = Some(t);
                    }
                    continue;
                }
            }
        }
        result.peak_mb = result.peak_mb.max((committed + mb).min(budget.map_or(f64::INFINITY, |b| b.memory_mb)));
        sims[i].cold += 1;
        sims[i].running.push(Reverse(At(t + cold_start + duration)));
    }
    let trace_end = trace.minutes() as f64 * 60.0;
    let mut idle_mb_seconds = 0.0;
    for ((sim, p), f) in sims.iter_mut().zip(&policies).zip(functions) {
        sim.close(trace_end, p.as_ref());
        result.sim.invocations += sim.invocations;
        result.sim.cold_starts += sim.cold;
        idle_mb_seconds += sim.idle_seconds * f.memory_mb;
    }
    result.sim.idle_gb_seconds = idle_mb_seconds / 1024.0;
    result.sim.p99_added_ms =
        if result.sim.cold_start_rate() > 0.01 { config.cold_start.as_secs_f64() * 1000.0 } else { 0.0 };
    result
}

/// Evicts idle instances of functions other than `asking` (available at `t`) to free `need`
/// MB; the number evicted and the new clock, or `None` when they cannot free that much.
#[allow(clippy::too_many_arguments)]
fn evict(
    sims: &mut [FunctionSim],
    trace: &Trace,
    asking: usize,
    t: f64,
    need: u64,
    policy: EvictionPolicy,
    clock: f64,
    cost: Duration,
) -> Option<(u64, f64)> {
    let mut candidates = vec![];
    let mut at = vec![];
    for (j, sim) in sims.iter().enumerate() {
        if j == asking {
            continue;
        }
        for (k, idle) in sim.idle.iter().enumerate().filter(|(_, x)| x.since <= t) {
            candidates.push(Candidate {
                memory_mb: trace.functions[j].memory_mb.ceil() as u64,
                idle_for: Duration::from_secs_f64(t - idle.since),
                frequency: sim.frequency,
                cost,
                clock_at_use: idle.clock,
            });
            at.push((j, k));
        }
    }
    let choice = policy.choose(clock, &candidates, need, need);
    if choice.victims.is_empty() {
        return None;
    }
    let mut victims: Vec<(usize, usize)> = choice.victims.iter().map(|&v| at[v]).collect();
    // Highest index first within a function, so removals do not shift the others.
    victims.sort_by(|a, b| b.cmp(a));
    for &(j, k) in &victims {
        let idle = sims[j].idle.swap_remove(k);
        sims[j].idle_seconds += t - idle.since;
    }
    Some((victims.len() as u64, choice.clock))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keep_alive::Fixed;
    use crate::simulate::replay;
    use crate::trace::TraceFunction;

    const CONFIG: SimConfig = SimConfig { cold_start: Duration::from_millis(50), seed: 7 };

    fn function(id: &str, per_minute: Vec<u32>, memory_mb: f64) -> TraceFunction {
        TraceFunction { id: id.into(), per_minute, duration_ms: 100.0, memory_mb }
    }

    fn fixed(s: u64) -> impl Fn() -> Box<dyn KeepAlivePolicy> {
        move || Box::new(Fixed(Duration::from_secs(s)))
    }

    fn trace(functions: Vec<TraceFunction>) -> Trace {
        Trace { first_minute: 0, functions }
    }

    #[test]
    fn unbounded_it_is_the_per_function_replay() {
        let t = trace(vec![
            function("a", (0..60).map(|m| m % 3).collect(), 256.0),
            function("b", (0..60).map(|m| u32::from(m % 7 == 0) * 5).collect(), 128.0),
        ]);
        let alone = replay(&t, fixed(120), &CONFIG);
        let node = replay_node(&t, fixed(120), &CONFIG, None);
        assert_eq!((node.sim.invocations, node.sim.cold_starts), (alone.invocations, alone.cold_starts));
        assert!((node.sim.idle_gb_seconds - alone.idle_gb_seconds).abs() < 1e-6, "{node:?} {alone:?}");
        assert_eq!((node.refused, node.evictions), (0, 0));
        assert!(node.peak_mb >= 256.0, "{node:?}");
    }

    #[test]
    fn a_full_node_evicts_or_refuses() {
        // Two functions of 128 MB each called once a minute, alternately, with a 10-minute
        // keep-alive: both stay warm in 256 MB, not in 128.
        let t = trace(vec![
            function("a", (0..60).map(|m| u32::from(m % 2 == 0)).collect(), 128.0),
            function("b", (0..60).map(|m| u32::from(m % 2 == 1)).collect(), 128.0),
        ]);
        let roomy =
            replay_node(&t, fixed(600), &CONFIG, Some(NodeBudget { memory_mb: 256.0, eviction: EvictionPolicy::Off }));
        assert_eq!((roomy.sim.cold_starts, roomy.refused), (2, 0));
        let refuse =
            replay_node(&t, fixed(600), &CONFIG, Some(NodeBudget { memory_mb: 128.0, eviction: EvictionPolicy::Off }));
        assert_eq!((refuse.sim.cold_starts, refuse.refused, refuse.evictions), (1, 30, 0), "b never fits: {refuse:?}");
        for eviction in [EvictionPolicy::Lru, EvictionPolicy::GreedyDual] {
            let r = replay_node(&t, fixed(600), &CONFIG, Some(NodeBudget { memory_mb: 128.0, eviction }));
            assert_eq!(
                (r.sim.cold_starts, r.refused, r.evictions),
                (60, 0, 59),
                "{eviction}: each call evicts the other"
            );
            assert!(r.peak_mb <= 128.0, "{r:?}");
        }
    }

    #[test]
    fn a_call_waits_for_its_own_running_instance_rather_than_being_refused() {
        // Ten calls of 100 ms within each minute on a node with room for one instance: one
        // cold start, then calls that overlap a running one wait for it.
        let t = trace(vec![function("a", vec![10; 30], 128.0)]);
        for eviction in [EvictionPolicy::Off, EvictionPolicy::GreedyDual] {
            let r = replay_node(&t, fixed(600), &CONFIG, Some(NodeBudget { memory_mb: 128.0, eviction }));
            assert_eq!((r.sim.cold_starts, r.refused), (1, 0), "{eviction}: {r:?}");
            // Unbounded, the overlaps start a second instance: bounded, they wait.
            let unbounded = replay_node(&t, fixed(600), &CONFIG, None);
            assert!(unbounded.sim.cold_starts > 1, "{unbounded:?}");
            assert!(r.held >= unbounded.sim.cold_starts - 1, "{eviction}: {r:?}");
        }
    }

    #[test]
    fn a_call_waits_for_its_own_instance_when_that_is_cheaper_than_a_start() {
        // `a`: ten calls of 100 ms in each minute, some overlapping; `other` called once and
        // kept; room for one instance of each.
        let t = trace(vec![
            function("a", vec![10; 30], 128.0),
            function("other", (0..30).map(|m| u32::from(m == 0)).collect(), 128.0),
        ]);
        let budget = Some(NodeBudget { memory_mb: 256.0, eviction: EvictionPolicy::GreedyDual });
        // A start of 1 s: an overlapping call waits at most 100 ms for `a`'s instance.
        let slow = replay_node(&t, fixed(600), &SimConfig { cold_start: Duration::from_secs(1), ..CONFIG }, budget);
        assert_eq!((slow.evictions, slow.refused), (0, 0), "{slow:?}");
        assert!(slow.held > 0, "{slow:?}");
        // A start of 1 ms: waiting costs more, `other` makes room for a second `a`.
        let fast = replay_node(&t, fixed(600), &SimConfig { cold_start: Duration::from_millis(1), ..CONFIG }, budget);
        assert_eq!((fast.evictions, fast.refused), (1, 0), "{fast:?}");
        assert!(fast.held < slow.held, "{fast:?}");
    }

    #[test]
    fn greedy_dual_keeps_the_frequent_function_lru_the_recent_one() {
        // `busy` runs 30 times in every third minute; `rare` and `rarer` once in each of the
        // minutes between, and only two of the three fit. When `rarer` comes, LRU evicts
        // `busy` (idle longest), greedy-dual evicts `rare` (used once).
        let t = trace(vec![
            // Short calls: one instance serves them all.
            TraceFunction {
                duration_ms: 1.0,
                ..function("busy", (0..60).map(|m| u32::from(m % 3 == 0) * 30).collect(), 128.0)
            },
            function("rare", (0..60).map(|m| u32::from(m % 3 == 1)).collect(), 128.0),
            function("rarer", (0..60).map(|m| u32::from(m % 3 == 2)).collect(), 128.0),
        ]);
        let run = |eviction| replay_node(&t, fixed(600), &CONFIG, Some(NodeBudget { memory_mb: 256.0, eviction }));
        let (lru, gd) = (run(EvictionPolicy::Lru), run(EvictionPolicy::GreedyDual));
        assert_eq!((lru.refused, gd.refused), (0, 0));
        assert!(gd.sim.cold_starts + 15 < lru.sim.cold_starts, "greedy-dual {gd:?}, LRU {lru:?}");
    }
}
