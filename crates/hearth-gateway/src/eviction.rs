//! Memory pressure: when a held request needs an instance and the node's memory is full,
//! idle instances of other function versions are evicted by the node's eviction policy
//! (`hearth_scale::eviction`: greedy-dual-size-frequency or LRU) before the request is
//! refused with `NodeMemoryFull`. Idle instances kept as the autoscaler's headroom or by a
//! keep-alive window are a cache, and yield to demand; a version's `min_instances` are not
//! evicted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use hearth_scale::{EvictionCandidate, EvictionPolicy};

use crate::launcher::NodeMemory;
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

    /// Evicts idle instances of versions other than `asking` so that `instances` of
    /// `memory_mb` fit, or at least one; returns how many went. Nothing goes when not even
    /// one would fit afterwards.
    pub fn make_room(&self, asking: VersionKey, memory_mb: u64, instances: usize, memory: &NodeMemory) -> usize {
        if self.policy == EvictionPolicy::Off {
            return 0;
        }
        let _one = self.one_at_a_time.lock().unwrap_or_else(|p| p.into_inner());
        let free = memory.limit_mb.saturating_sub(memory.committed_mb());
        let at_least = memory_mb.saturating_sub(free);
        if at_least == 0 {
            // Room appeared meanwhile.
            return 0;
        }
        let need = (memory_mb * instances.max(1) as u64).saturating_sub(free);
        let Some(routes) = self.pools.upgrade() else { return 0 };
        let mut found = vec![];
        for pool in routes.all() {
            if pool.key != asking {
                pool.eviction_candidates(&mut found);
            }
        }
        let candidates: Vec<EvictionCandidate> = found.iter().map(|f| f.candidate).collect();
        let choice = self.policy.choose(self.clock(), &candidates, need, at_least);
        self.clock.store(choice.clock.to_bits(), Ordering::Relaxed);
        let mut evicted = 0;
        for i in choice.victims {
            let f = &found[i];
            // It may have been handed a request since it was listed: then it stays.
            if f.pool.evict(&f.instance_id) {
                evicted += 1;
                tracing::info!(
                    function = %f.pool.template.function,
                    version = f.pool.template.version,
                    instance = %f.instance_id,
                    policy = %self.policy,
                    "idle instance evicted: the node's memory is needed by another function"
                );
            }
        }
        self.metrics.evicted(evicted as u64);
        evicted
    }
}
