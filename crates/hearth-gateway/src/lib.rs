//! The gateway: turns requests into invocations on instances.
//!
//! A request resolves its function version from an in-memory [`function_cache`], takes an
//! idle instance from that version's [`pool`] (the route cache: no I/O on a hit) or waits in
//! the pool's bounded queue while the activator starts instances (cold start), and the
//! keep-alive reaper stops instances idle past their function's keep-alive.

mod function_cache;
mod http_event;
mod invoke;
mod lambda_api;
mod launcher;
mod log_budget;
mod meter;
mod routes;
mod serve;
mod settings;
mod trigger_table;
mod version_pool;
#[cfg(test)]
mod version_pool_tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hearth_agent::{CodeCache, InstanceFactory, InstanceState, Runtimes, SandboxDriver, StemCells};
use hearth_api::DeployHooks;
use hearth_blob::CodeStore;
use hearth_store::{MetadataStore, StoreError};
use hearth_types::{FunctionId, FunctionName, Version};

pub use invoke::{InvokeError, InvokeRequest, InvokeResponse};
pub use routes::{Apps, GatewayDoc, apps, openapi};
pub use serve::{BodyTimeout, ListenerLimits, TlsConfig, TlsError, TlsFiles, serve};
pub use settings::GatewaySettings;
pub use version_pool::AcquireError;

/// The request and response conversions and the trigger table on their own, for the fuzz
/// targets in `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::http_event::{event, response, strip_credentials};
    pub use crate::trigger_table::TriggerTable;
}

use function_cache::FunctionCache;
use launcher::{InstanceTemplate, Launcher};
use meter::Meter;
use trigger_table::TriggerTable;
use version_pool::{VersionKey, VersionPool};

/// What [`Gateway::node_status`] reports.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub memory_limit_mb: u64,
    pub memory_committed_mb: u64,
    pub prewarmed: Vec<(hearth_agent::CellKey, usize)>,
    pub prewarm_budget_mb: u32,
}

/// One live instance, for listings.
#[derive(Debug, Clone)]
pub struct InstanceInfo {
    pub id: String,
    pub version: u32,
    pub state: InstanceState,
    pub started_at: SystemTime,
    pub requests_served: u64,
    pub last_used: SystemTime,
}

#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn MetadataStore>,
    functions: FunctionCache,
    triggers: TriggerTable,
    meter: Meter,
    pools: Mutex<HashMap<VersionKey, Arc<VersionPool>>>,
    /// Keep-alive policies per function (and policy settings), shared by its versions.
    policies:
        Mutex<HashMap<(hearth_types::FunctionId, hearth_types::KeepAlivePolicyKind, u32), version_pool::SharedPolicy>>,
    launcher: Arc<Launcher>,
    settings: GatewaySettings,
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
        let meter = Meter::start(store.clone(), settings.log_retention, settings.prune_interval);
        let cache = CodeCache::new(cache_dir, code);
        let stem_cells = settings.stem_cells.clone().and_then(|s| {
            let cells_dir = cache.root().join(".cells");
            StemCells::start(driver.clone(), runtimes.clone(), cells_dir, s)
                .inspect_err(|e| tracing::error!(%e, "cannot start the stem-cell pool (pre-warmed sandboxes)"))
                .ok()
        });
        let launcher = Arc::new(Launcher {
            meter: meter.clone(),
            memory: launcher::NodeMemory::new(settings.node_memory_mb),
            cache,
            factory: InstanceFactory::new(driver, runtimes, stem_cells, settings.init_timeout),
            region: settings.region.clone(),
            log_capture: settings.log_capture,
            log_budgets: log_budget::LogBudgets::new(settings.log_bytes_per_minute),
        });
        let functions = FunctionCache::new(store.clone());
        let triggers = TriggerTable::new(store.clone());
        Self {
            inner: Arc::new(Inner {
                store,
                functions,
                triggers,
                meter,
                pools: Mutex::default(),
                policies: Mutex::default(),
                launcher,
                settings,
            }),
        }
    }

    fn pools(&self) -> std::sync::MutexGuard<'_, HashMap<VersionKey, Arc<VersionPool>>> {
        self.inner.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pool(&self, v: &Version) -> Arc<VersionPool> {
        let key = (v.function_id, v.number);
        self.pools()
            .entry(key)
            .or_insert_with(|| {
                let template = InstanceTemplate {
                    function: v.function.clone(),
                    version: v.number,
                    config: v.config.clone(),
                    digest: v.code.sha256.clone(),
                };
                let settings = &self.inner.settings;
                let kind = v.config.keep_alive_policy.unwrap_or(settings.keep_alive_policy);
                let keep_alive = Duration::from_secs(v.config.keep_alive_s.into());
                let policy = self
                    .inner
                    .policies
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry((v.function_id, kind, v.config.keep_alive_s))
                    .or_insert_with(|| {
                        Arc::new(Mutex::new(hearth_scale::keep_alive_policy(kind, keep_alive, settings.adaptive_bin)))
                    })
                    .clone();
                Arc::new(VersionPool::new(
                    key,
                    template,
                    self.inner.launcher.clone(),
                    settings.queue_length,
                    policy,
                    settings.autoscaler,
                ))
            })
            .clone()
    }

    /// Stops idle instances past their keep-alive and keeps `min_instances` ready, every
    /// `reap_interval`, until the gateway is dropped.
    pub fn spawn_reaper(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.settings.reap_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let gw = Gateway { inner };
                let pools: Vec<_> = gw.pools().values().cloned().collect();
                for p in &pools {
                    p.reap();
                }
                gw.pools().retain(|_, p| !p.is_finished());
            }
        })
    }

    /// Loads the HTTP triggers and starts `min_instances` for every function's `$LATEST`
    /// (at server start).
    pub async fn start_up(&self) -> Result<(), StoreError> {
        self.inner.triggers.reload().await?;
        for f in self.inner.store.list_functions().await? {
            if f.config.min_instances > 0 {
                self.refresh(&f.name).await?;
            }
        }
        Ok(())
    }

    /// Re-reads a function after a change: old versions drain, `$LATEST` gets its
    /// `min_instances`.
    async fn refresh(&self, name: &FunctionName) -> Result<(), StoreError> {
        self.inner.functions.forget(name);
        let current = self.inner.functions.function(name).await?;
        let latest: Option<VersionKey> = current.as_ref().and_then(|f| f.latest_version.map(|n| (f.id, n)));
        let stale: Vec<_> =
            self.pools().values().filter(|p| p.template.function == *name && Some(p.key) != latest).cloned().collect();
        if current.is_none() {
            // Deleted: what its keep-alive policy learned goes too.
            let gone: Vec<_> = stale.iter().map(|p| p.key.0).collect();
            self.inner.policies.lock().unwrap_or_else(|p| p.into_inner()).retain(|(id, ..), _| !gone.contains(id));
        }
        for p in stale {
            p.drain();
        }
        if current.is_some_and(|f| f.config.min_instances > 0)
            && let function_cache::Resolved::Found(v) =
                self.inner.functions.resolve(name, hearth_types::VersionSelector::Latest).await?
        {
            // Reaping also tops the pool up to min_instances.
            self.pool(&v).reap();
        }
        Ok(())
    }

    /// The node's memory for instances (limit, committed) and its pre-warmed sandboxes
    /// (ready per key, budget).
    pub fn node_status(&self) -> NodeStatus {
        let memory = &self.inner.launcher.memory;
        let (prewarmed, prewarm_budget_mb) = self.inner.launcher.factory.stem_cells();
        NodeStatus {
            memory_limit_mb: memory.limit_mb,
            memory_committed_mb: memory.committed_mb(),
            prewarmed,
            prewarm_budget_mb,
        }
    }

    /// Live instances of a function, all versions.
    pub fn instances(&self, function: FunctionId) -> Vec<InstanceInfo> {
        let pools: Vec<_> = self.pools().values().filter(|p| p.key.0 == function).cloned().collect();
        let mut out: Vec<InstanceInfo> = pools
            .iter()
            .flat_map(|p| {
                p.instances().into_iter().map(|t| InstanceInfo {
                    id: t.instance.id().to_owned(),
                    version: p.key.1,
                    state: t.instance.state(),
                    started_at: t.instance.started_at(),
                    requests_served: t.instance.requests_served(),
                    last_used: t.last_used(),
                })
            })
            .collect();
        out.sort_by_key(|i| i.started_at);
        out
    }

    /// A function's log lines after `after`, everything metered so far included.
    pub async fn logs(
        &self,
        name: &FunctionName,
        after: i64,
        request_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<hearth_types::LogLine>, StoreError> {
        self.inner.meter.flush().await;
        self.inner.store.read_logs(name, after, request_id, limit).await
    }

    /// A function's newest invocation records.
    pub async fn invocations(
        &self,
        name: &FunctionName,
        limit: usize,
    ) -> Result<Vec<hearth_types::InvocationRecord>, StoreError> {
        self.inner.meter.flush().await;
        self.inner.store.list_invocations(name, limit).await
    }

    pub(crate) async fn function(&self, name: &FunctionName) -> Result<Option<hearth_types::Function>, StoreError> {
        self.inner.functions.function(name).await
    }
}

#[async_trait::async_trait]
impl DeployHooks for Gateway {
    async fn triggers_changed(&self) {
        if let Err(e) = self.inner.triggers.reload().await {
            tracing::warn!(%e, "could not reload HTTP triggers");
        }
    }

    async fn function_changed(&self, name: &FunctionName) {
        if let Err(e) = self.refresh(name).await {
            tracing::warn!(function = %name, %e, "could not refresh the function after a change");
        }
    }
}
