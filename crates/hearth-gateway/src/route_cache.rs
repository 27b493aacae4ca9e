//! The route cache: the version pools of every version this gateway has served, found by
//! function id and version number without I/O, each made on the first request that needs it
//! and dropped once drained and empty.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use hearth_types::{FunctionId, FunctionName};

use crate::version_pool::{VersionKey, VersionPool};

#[derive(Default)]
pub struct RouteCache {
    pools: Mutex<HashMap<VersionKey, Arc<VersionPool>>>,
}

impl RouteCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<VersionKey, Arc<VersionPool>>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The version's pool, made by `make` when there is none.
    pub fn pool(&self, key: VersionKey, make: impl FnOnce() -> VersionPool) -> Arc<VersionPool> {
        self.lock().entry(key).or_insert_with(|| Arc::new(make())).clone()
    }

    /// The pools of one function, all versions.
    pub fn of_function(&self, function: FunctionId) -> Vec<Arc<VersionPool>> {
        self.lock().values().filter(|p| p.key.0 == function).cloned().collect()
    }

    /// The pools of a function's versions other than those in `keep`.
    pub fn stale(&self, name: &FunctionName, keep: &[VersionKey]) -> Vec<Arc<VersionPool>> {
        self.lock().values().filter(|p| p.template.function == *name && !keep.contains(&p.key)).cloned().collect()
    }

    /// One keep-alive pass over every pool (stops idle instances past their keep-alive,
    /// tops pools up to `min_instances`), then forgets the pools that have finished draining.
    /// Every pool.
    pub fn all(&self) -> Vec<Arc<VersionPool>> {
        self.lock().values().cloned().collect()
    }

    pub fn reap(&self) {
        let pools: Vec<_> = self.lock().values().cloned().collect();
        for p in &pools {
            p.reap();
        }
        self.lock().retain(|_, p| !p.is_finished());
    }
}
