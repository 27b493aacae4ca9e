//! Memory pressure: when a held request needs an instance and the node's memory is full,
//! idle instances of other function versions are evicted by the node's eviction policy
//! (`hearth_scale::eviction`: greedy-dual-size-frequency or LRU) before the request is
//! refused with `NodeMemoryFull`. Idle instances kept as the autoscaler's headroom or by a
//! keep-alive window are a cache, and yield to demand; a version's `min_instances` are not
//! evicted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use hearth_scale::{EvictionCandidate, EvictionPolicy};

use crate::launcher::{NodeMemory, Reservation};
use crate::route_cache::RouteCache;
use crate::version_pool::{VersionKey, VersionPool};

pub struct Evictions {
    pub policy: EvictionPolicy,
    /// The greedy-dual clock (`f64` bits), read whenever an instance goes idle.
    clock: AtomicU64,
    /// One eviction at a time, so that two pools short of memory at once do not both evict
    /// for the same room.
    one_at_a_time: Mutex<()>,
    /// Every version pool on the node (weak: the pools hold the launcher that holds this).
    pools: Weak<RouteCache>,
    metrics: Arc<crate::Metrics>,
}

/// An idle instance that may go, and its pool.
pub struct Found {
    pub pool: Arc<VersionPool>,
    pub instance_id: String,
    pub candidate: EvictionCandidate,
}

impl Evictions {
    pub fn new(policy: EvictionPolicy, pools: Weak<RouteCache>, metrics: Arc<crate::Metrics>) -> Self {
        Self { policy, clock: AtomicU64::new(0f64.to_bits()), one_at_a_time: Mutex::new(()), pools, metrics }
    }

    pub fn clock(&self) -> f64 {
        f64::from_bits(self.clock.load(Ordering::Relaxed))
    }

    /// Reserves memory for up to `instances` of `memory_mb` for `asking`, evicting idle
    /// instances of other versions for what is not free. Only whole instances are made room
    /// for: nothing goes when not even one would fit afterwards. The reservations are made
    /// under the same lock as the evictions, so the room made is the asker's.
    pub fn make_room(
        &self,
        asking: VersionKey,
        memory_mb: u64,
        instances: usize,
        memory: &Arc<NodeMemory>,
    ) -> Vec<Reservation> {
        let _one = self.one_at_a_time.lock().unwrap_or_else(|p| p.into_inner());
        let reserve = |got: &mut Vec<Reservation>| {
            while got.len() < instances {
                match memory.reserve(memory_mb) {
                    Some(r) => got.push(r),
                    None => break,
                }
            }
        };
        let mut got = vec![];
        // Room that appeared meanwhile first.
        reserve(&mut got);
        if got.len() == instances || self.policy == EvictionPolicy::Off {
            return got;
        }
        let Some(routes) = self.pools.upgrade() else { return got };
        let mut found = vec![];
        for pool in routes.all() {
            if pool.key != asking {
                pool.eviction_candidates(&mut found);
            }
        }
        let candidates: Vec<EvictionCandidate> = found.iter().map(|f| f.candidate).collect();
        let free = memory.limit_mb.saturating_sub(memory.committed_mb());
        let evictable: u64 = candidates.iter().map(|c| c.memory_mb).sum();
        // Whole instances only: evicting what cannot hold one more is waste.
        let fit = (((free + evictable) / memory_mb.max(1)) as usize).min(instances - got.len());
        if fit == 0 {
            return got;
        }
        let need = (fit as u64 * memory_mb).saturating_sub(free);
        let at_least = memory_mb.saturating_sub(free);
        let choice = self.policy.choose(self.clock(), &candidates, need, at_least);
        let mut evicted = 0;
        let mut clock = self.clock();
        for i in choice.victims {
            let f = &found[i];
            // It may have been handed a request since it was listed: then it stays.
            if f.pool.evict(&f.instance_id) {
                evicted += 1;
                // The clock rises to what was really evicted.
                if self.policy == EvictionPolicy::GreedyDual {
                    clock = clock.max(self.policy.priority(&f.candidate));
                }
                tracing::info!(
                    function = %f.pool.template.function,
                    version = f.pool.template.version,
                    instance = %f.instance_id,
                    policy = %self.policy,
                    "idle instance evicted: the node's memory is needed by another function"
                );
            }
        }
        self.clock.store(clock.to_bits(), Ordering::Relaxed);
        reserve(&mut got);
        self.metrics.evicted(evicted as u64);
        got
    }
}
