//! How the gateway follows the control plane: triggers and `min_instances` at start-up, a
//! deploy or delete drains the function's old versions, a trigger change reloads the trigger
//! table; and the keep-alive reaper that runs every `reap_interval` (and samples the live
//! instances for the charts, `instance_history.rs`).

use std::sync::Arc;

use hearth_store::StoreError;
use hearth_types::{FunctionName, HttpTrigger, VersionSelector};

use crate::Gateway;
use crate::function_cache::Resolved;
use crate::version_pool::VersionKey;

impl Gateway {
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
                inner.routes.reap();
                Gateway { inner }.sample_instances();
            }
        })
    }

    /// After a function was created, deployed, configured or deleted: old versions drain,
    /// `$LATEST` gets its `min_instances`. A failure is logged (the next request re-reads).
    pub async fn function_changed(&self, name: &FunctionName) {
        if let Err(e) = self.refresh(name).await {
            tracing::warn!(function = %name, %e, "could not refresh the function after a change");
        }
        // Followers of its log check whether it still exists.
        self.inner.function_changes.send_modify(|n| *n += 1);
    }

    /// After an HTTP trigger was added or removed.
    pub async fn triggers_changed(&self) {
        if let Err(e) = self.inner.triggers.reload().await {
            tracing::warn!(%e, "could not reload HTTP triggers");
        }
    }

    /// The trigger whose path is the longest whole-segment prefix of `path`, and the rest of
    /// the path below it (no I/O).
    pub fn trigger_for(&self, path: &str) -> Option<(HttpTrigger, String)> {
        self.inner.triggers.lookup(path)
    }

    async fn refresh(&self, name: &FunctionName) -> Result<(), StoreError> {
        let inner = &self.inner;
        inner.functions.forget(name);
        let current = inner.functions.function(name).await?;
        // $LATEST and the versions aliases name keep their pools; the others drain.
        let mut keep: Vec<VersionKey> =
            current.as_ref().and_then(|f| f.latest_version.map(|n| (f.id, n))).into_iter().collect();
        if let Some(f) = &current {
            for a in inner.store.list_aliases(name).await? {
                keep.push((f.id, a.version));
                keep.extend(a.additional_version.map(|extra| (f.id, extra.version)));
            }
        }
        let stale = inner.routes.stale(name, &keep);
        if current.is_none() {
            // Deleted: what its keep-alive policy learned goes too.
            let gone: Vec<_> = stale.iter().map(|p| p.key.0).collect();
            inner.policies.forget(&gone);
        }
        for p in stale {
            p.drain();
        }
        // Read now, so the first invocation after a deploy does no store I/O on its way.
        let latest = match current.as_ref().is_some_and(|f| f.latest_version.is_some()) {
            true => Some(inner.functions.resolve(name, &VersionSelector::Latest).await?),
            false => None,
        };
        if current.is_some_and(|f| f.config.min_instances > 0)
            && let Some(Resolved::Found(v)) = latest
        {
            // Reaping also tops the pool up to min_instances.
            self.pool(&v).reap();
        }
        Ok(())
    }
}
