//! HTTP triggers in memory: a request path finds its trigger without store I/O.

use std::sync::{Arc, RwLock};

use hearth_store::{MetadataStore, StoreError};
use hearth_types::HttpTrigger;

pub struct TriggerTable {
    store: Arc<dyn MetadataStore>,
    triggers: RwLock<Vec<HttpTrigger>>,
}

impl TriggerTable {
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self { store, triggers: RwLock::default() }
    }

    pub async fn reload(&self) -> Result<(), StoreError> {
        let list = self.store.list_triggers().await?;
        *self.triggers.write().unwrap_or_else(|p| p.into_inner()) = list;
        Ok(())
    }

    /// The trigger whose path is the longest whole-segment prefix of `path`, and the rest
    /// of the path below it.
    pub fn lookup(&self, path: &str) -> Option<(HttpTrigger, String)> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let triggers = self.triggers.read().unwrap_or_else(|p| p.into_inner());
        triggers
            .iter()
            .filter_map(|t| {
                let prefix: Vec<&str> = t.path.segments().collect();
                segments.starts_with(&prefix).then_some((prefix.len(), t))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(len, t)| (t.clone(), segments[len..].join("/")))
    }
}
