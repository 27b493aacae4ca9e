//! The gateway: turns invocations into requests on instances.
//!
//! An invocation resolves its function version from an in-memory [`function_cache`], takes
//! an idle instance from that version's pool in the [`route_cache`] (no I/O on a hit) or
//! waits in the pool's bounded queue while the activator starts instances (cold start), and
//! the keep-alive reaper stops instances idle past their function's keep-alive. HTTP is not
//! here: `hearth-server` serves the gateway's methods.

mod admission;
mod changes;
mod completion;
mod eviction;
mod function_cache;
mod instance_history;
mod invoke;
mod keep_alive_policies;
mod launcher;
mod log_budget;
mod log_follow;
mod meter;
mod metrics;
mod platform_lines;
mod route_cache;
mod settings;
mod status;
mod trigger_table;
mod version_pool;
#[cfg(test)]
mod version_pool_tests;

use std::path::PathBuf;
use std::sync::Arc;

use hearth_agent::{CodeCache, InstanceFactory, Runtimes, SandboxDriver, StemCells};
use hearth_blob::CodeStore;
use hearth_store::{MetadataStore, StoreError};
use hearth_types::{Function, FunctionName, Version};

pub use admission::NotRunnable;
pub use hearth_scale::EvictionPolicy;
pub use instance_history::{KEEP as INSTANCE_HISTORY_KEEP, SAMPLE_EVERY as INSTANCE_SAMPLE_EVERY};
pub use invoke::{InvokeError, InvokeRequest, InvokeResponse};
pub use log_follow::{FOLLOW_MAX, FOLLOW_READ_MAX, FollowEnd, FollowError, Followed, LOG_FOLLOWERS_MAX, LogFollower};
pub use meter::Meter;
pub use metrics::{Levels, Metrics, OTHER as OTHER_FUNCTIONS, StartSource};
pub use settings::GatewaySettings;
pub use status::{InstanceInfo, NodeStatus};
pub use version_pool::AcquireError;

/// The trigger table on its own, for the fuzz targets in `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::trigger_table::TriggerTable;
}

use function_cache::FunctionCache;
use instance_history::InstanceHistory;
use keep_alive_policies::KeepAlivePolicies;
use launcher::{InstanceTemplate, Launcher};
use route_cache::RouteCache;
use trigger_table::TriggerTable;
use version_pool::VersionPool;

/// Cheap to clone; every clone is the same gateway.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn MetadataStore>,
    functions: FunctionCache,
    triggers: TriggerTable,
    meter: Meter,
    routes: Arc<RouteCache>,
    policies: KeepAlivePolicies,
    launcher: Arc<Launcher>,
    settings: GatewaySettings,
    metrics: Arc<Metrics>,
    /// Bumped after each change of a function made through this gateway's control plane.
    function_changes: tokio::sync::watch::Sender<u64>,
    /// Set once the server stops: followers of logs end.
    follows_end: tokio::sync::watch::Sender<bool>,
    history: InstanceHistory,
}

impl Gateway {
    /// `cache_dir` holds unpacked code; `runtimes` the installed language runtimes.
    pub fn new(
        store: Arc<dyn MetadataStore>,
        code: CodeStore,
        cache_dir: PathBuf,
        runtimes: Runtimes,
        driver: Arc<dyn SandboxDriver>,
        settings: GatewaySettings,
    ) -> Self {
        let metrics = Arc::new(Metrics::new(settings.metrics_max_functions, settings.metrics_series_ttl));
        let meter = Meter::start(store.clone(), settings.log_retention, settings.prune_interval, metrics.clone());
        let cache = CodeCache::new(cache_dir, code).compiling_python_with(runtimes.python().map(Into::into));
        let stem_cells = settings.stem_cells.clone().and_then(|s| {
            let cells_dir = cache.root().join(".cells");
            StemCells::start(driver.clone(), runtimes.clone(), cells_dir, s)
                .inspect_err(|e| tracing::error!(%e, "cannot start the stem-cell pool (pre-warmed sandboxes)"))
                .ok()
        });
        let wasm_dir = cache.root().join(".wasm");
        let routes = Arc::new(RouteCache::default());
        let evictions = eviction::Evictions::new(settings.eviction_policy, Arc::downgrade(&routes), metrics.clone());
        let launcher = Arc::new(Launcher {
            meter: meter.clone(),
            memory: launcher::NodeMemory::new(settings.node_memory_mb),
            evictions,
            cache,
            factory: InstanceFactory::new(driver, runtimes, stem_cells, wasm_dir, settings.init_timeout),
            region: settings.region.clone(),
            log_capture: settings.log_capture,
            log_budgets: log_budget::LogBudgets::new(settings.log_bytes_per_minute),
            metrics: metrics.clone(),
        });
        Self {
            inner: Arc::new(Inner {
                functions: FunctionCache::new(store.clone(), metrics.clone()),
                triggers: TriggerTable::new(store.clone()),
                store,
                meter,
                routes,
                policies: KeepAlivePolicies::default(),
                launcher,
                settings,
                metrics,
                function_changes: tokio::sync::watch::Sender::new(0),
                follows_end: tokio::sync::watch::Sender::new(false),
                history: InstanceHistory::new(chrono::Utc::now()),
            }),
        }
    }

    /// The version's pool in the route cache, made (with its function's keep-alive policy)
    /// on first use.
    fn pool(&self, v: &Version) -> Arc<VersionPool> {
        let key = (v.function_id, v.number);
        self.inner.routes.pool(key, || {
            let settings = &self.inner.settings;
            let kind = v.config.keep_alive_policy.unwrap_or(settings.keep_alive_policy);
            let policy = self.inner.policies.get(v.function_id, kind, v.config.keep_alive_s, settings.adaptive_bin);
            let template = InstanceTemplate {
                function: v.function.clone(),
                version: v.number,
                config: v.config.clone(),
                digest: v.code.sha256.clone(),
            };
            VersionPool::new(
                key,
                template,
                self.inner.launcher.clone(),
                settings.queue_length,
                policy,
                settings.autoscaler,
            )
        })
    }

    /// The function, from the function cache.
    pub async fn function(&self, name: &FunctionName) -> Result<Option<Function>, StoreError> {
        self.inner.functions.function(name).await
    }

    /// The meter, for reading what it wrote (`logs`, `invocations`).
    pub fn meter(&self) -> &Meter {
        &self.inner.meter
    }
}
