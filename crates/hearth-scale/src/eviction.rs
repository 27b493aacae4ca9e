//! Which idle instances go when the node's memory is full and a held request needs a new
//! instance: warm instances are a cache of started functions, and a full cache evicts by a
//! policy rather than refusing the request.
//!
//! - [`EvictionPolicy::GreedyDual`]: greedy-dual-size-frequency, as FaasCache (Fuerst and
//!   Sharma, ASPLOS 2021) applies it to functions. An instance's priority is
//!   `clock + frequency x cost / size`, with `clock` the policy's clock when the instance was
//!   last used, `frequency` the invocations of its function version, `cost` what starting it
//!   again costs (its start time) and `size` its memory. The lowest priority goes first, and
//!   the clock rises to the priority of the last instance evicted, so that instances not
//!   used for a long time age out however often their function once ran.
//! - [`EvictionPolicy::Lru`]: the instance idle the longest goes first.
//! - [`EvictionPolicy::Off`]: nothing is evicted (a full node refuses, as before eviction).
//!
//! Pure: the caller passes the candidates and the clock in and applies the choice.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvictionPolicy {
    #[default]
    GreedyDual,
    Lru,
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown eviction policy {0:?}: use greedy-dual, lru or off")]
pub struct UnknownEvictionPolicy(pub String);

impl std::str::FromStr for EvictionPolicy {
    type Err = UnknownEvictionPolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "greedy-dual" => Ok(Self::GreedyDual),
            "lru" => Ok(Self::Lru),
            "off" => Ok(Self::Off),
            other => Err(UnknownEvictionPolicy(other.to_owned())),
        }
    }
}

impl std::fmt::Display for EvictionPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::GreedyDual => "greedy-dual",
            Self::Lru => "lru",
            Self::Off => "off",
        })
    }
}

/// An idle instance that may be evicted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub memory_mb: u64,
    /// How long it has been idle.
    pub idle_for: Duration,
    /// Invocations of its function version so far.
    pub frequency: u64,
    /// What starting it again costs: its start time.
    pub cost: Duration,
    /// The greedy-dual clock when it was last used.
    pub clock_at_use: f64,
}

/// The instances to evict (indices into the candidates, first to go first) and the clock
/// after evicting them.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub victims: Vec<usize>,
    pub clock: f64,
}

impl EvictionPolicy {
    /// The candidate's priority under this policy: the lowest goes first.
    pub fn priority(self, c: &Candidate) -> f64 {
        match self {
            // A start that took no measurable time still costs something (1 ms), so that
            // frequency and size still order such instances.
            Self::GreedyDual => {
                let cost_ms = (c.cost.as_secs_f64() * 1000.0).max(1.0);
                c.clock_at_use + c.frequency.max(1) as f64 * cost_ms / c.memory_mb.max(1) as f64
            }
            Self::Lru => -c.idle_for.as_secs_f64(),
            Self::Off => f64::INFINITY,
        }
    }

    /// The fewest lowest-priority candidates that free `need_mb`, or, when all of them
    /// together free less, as many as free at least `at_least_mb` (the memory one instance
    /// needs). None when not even that can be freed: instances are not evicted for nothing.
    pub fn choose(self, clock: f64, candidates: &[Candidate], need_mb: u64, at_least_mb: u64) -> Choice {
        let none = Choice { victims: vec![], clock };
        if self == Self::Off || need_mb == 0 {
            return none;
        }
        let mut order: Vec<(f64, usize)> = candidates.iter().map(|c| self.priority(c)).zip(0..).collect();
        // Ties: the one idle longer goes first.
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| candidates[b.1].idle_for.cmp(&candidates[a.1].idle_for)));
        let mut freed = 0;
        let mut victims = vec![];
        let mut last = clock;
        for (priority, i) in order {
            if freed >= need_mb {
                break;
            }
            freed += candidates[i].memory_mb;
            victims.push(i);
            last = priority;
        }
        if freed < at_least_mb.min(need_mb) {
            return none;
        }
        let clock = if self == Self::GreedyDual { clock.max(last) } else { clock };
        Choice { victims, clock }
    }
}

/// Whether a call that finds its own function's instances all busy, on a node with no
/// memory for another, should keep waiting for one of them rather than evict another
/// function's idle instance to start a new one: while it has waited less than a start
/// costs (ski rental: waiting that long, then evicting, costs at most twice the better of
/// the two in hindsight). A function with nothing running has nothing to wait for.
pub fn worth_waiting(own_running: bool, waited: Duration, start_cost: Duration) -> bool {
    own_running && waited < start_cost
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(memory_mb: u64, idle_s: u64, frequency: u64, cost_ms: u64) -> Candidate {
        Candidate {
            memory_mb,
            idle_for: Duration::from_secs(idle_s),
            frequency,
            cost: Duration::from_millis(cost_ms),
            clock_at_use: 0.0,
        }
    }

    #[test]
    fn lru_evicts_the_longest_idle_first_and_only_what_is_needed() {
        let c = [idle(128, 10, 1, 5), idle(128, 300, 1000, 5), idle(128, 60, 1, 5)];
        let choice = EvictionPolicy::Lru.choose(0.0, &c, 200, 128);
        assert_eq!(choice.victims, vec![1, 2], "the two idle longest free 256 MB >= 200");
        assert_eq!(EvictionPolicy::Lru.choose(0.0, &c, 128, 128).victims, vec![1]);
    }

    #[test]
    fn greedy_dual_keeps_what_is_used_often_and_costly_to_start() {
        // A function called 1000 times whose start takes 500 ms, idle the longest, against
        // one called twice that starts in 5 ms.
        let c = [idle(128, 300, 1000, 500), idle(128, 10, 2, 5)];
        assert_eq!(EvictionPolicy::GreedyDual.choose(0.0, &c, 128, 128).victims, vec![1]);
        assert_eq!(EvictionPolicy::Lru.choose(0.0, &c, 128, 128).victims, vec![0], "LRU would evict the costly one");
        // Size: at equal use and cost, the big one frees more per lost start.
        let c = [idle(128, 10, 5, 50), idle(1024, 10, 5, 50)];
        assert_eq!(EvictionPolicy::GreedyDual.choose(0.0, &c, 128, 128).victims, vec![1]);
    }

    #[test]
    fn the_clock_ages_out_what_was_once_popular() {
        let popular = Candidate { clock_at_use: 0.0, ..idle(128, 600, 100, 100) };
        let policy = EvictionPolicy::GreedyDual;
        // 100 x 100 / 128 ~ 78: evicting something of priority 80 raises the clock to 80.
        let choice = policy.choose(0.0, &[Candidate { clock_at_use: 79.0, ..idle(128, 1, 1, 128) }], 128, 128);
        assert_eq!(choice.clock, 80.0);
        // An instance used after that carries the new clock and outranks the old favourite.
        let fresh = Candidate { clock_at_use: choice.clock, ..idle(128, 1, 1, 5) };
        assert_eq!(policy.choose(choice.clock, &[popular, fresh], 128, 128).victims, vec![0]);
    }

    #[test]
    fn nothing_is_evicted_when_it_cannot_make_room() {
        let c = [idle(128, 10, 1, 5), idle(64, 10, 1, 5)];
        let choice = EvictionPolicy::Lru.choose(3.0, &c, 512, 256);
        assert_eq!(choice, Choice { victims: vec![], clock: 3.0 }, "192 MB idle cannot hold a 256 MB instance");
        // Room for one instance of the several wanted is worth evicting for.
        assert_eq!(EvictionPolicy::Lru.choose(0.0, &c, 512, 128).victims.len(), 2);
        assert!(EvictionPolicy::Off.choose(0.0, &c, 128, 128).victims.is_empty());
        assert!(EvictionPolicy::GreedyDual.choose(0.0, &[], 128, 128).victims.is_empty());
    }

    #[test]
    fn a_call_waits_for_its_own_instance_no_longer_than_a_start_costs() {
        let cost = Duration::from_millis(200);
        assert!(worth_waiting(true, Duration::from_millis(199), cost));
        assert!(!worth_waiting(true, cost, cost), "past the cost of a start, evicting is better");
        assert!(!worth_waiting(false, Duration::ZERO, cost), "nothing of its own to wait for");
    }

    #[test]
    fn names_round_trip() {
        for p in [EvictionPolicy::GreedyDual, EvictionPolicy::Lru, EvictionPolicy::Off] {
            assert_eq!(p.to_string().parse::<EvictionPolicy>(), Ok(p));
        }
        assert!("gdsf".parse::<EvictionPolicy>().unwrap_err().to_string().contains("greedy-dual, lru or off"));
    }
}
