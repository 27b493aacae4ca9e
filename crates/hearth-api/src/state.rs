use std::sync::{Arc, RwLock};

use hearth_blob::{CodeStore, ObjectSource};
use hearth_store::MetadataStore;
use hearth_types::FunctionName;

use crate::auth::TokenCache;

/// Everything a request handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Arc<dyn MetadataStore>,
    pub code: CodeStore,
    pub objects: ObjectSource,
    pub tokens: TokenCache,
    pub hooks: RwLock<Vec<Arc<dyn DeployHooks>>>,
    /// Packages known to hold an executable `bootstrap` (packages never change, so a yes
    /// stays true): admission reads each one once, not on every write.
    pub bootstrapped: std::sync::Mutex<std::collections::HashSet<(hearth_types::CodeDigest, String)>>,
    /// Where HTTP triggers are served (`http://host:port`), when known.
    pub trigger_base_url: RwLock<Option<String>>,
    /// Where this API is served (`http://host:port`), when known.
    pub api_base_url: RwLock<Option<String>>,
}

/// Told about every change to a function this node made (deploy or delete), so caches of
/// function metadata (the gateway's) stay true without asking the store per request.
/// Awaited before the API answers, so a caller's next request sees its own change.
#[async_trait::async_trait]
pub trait DeployHooks: Send + Sync + 'static {
    async fn function_changed(&self, name: &FunctionName);

    /// A trigger was added or removed.
    async fn triggers_changed(&self) {}

    /// Refuses, before it is written, a configuration this node could never run (see
    /// `admission.rs`).
    fn admit(&self, _config: &hearth_types::FunctionConfig) -> Result<(), crate::ApiError> {
        Ok(())
    }
}

impl AppState {
    pub fn new(store: Arc<dyn MetadataStore>, code: CodeStore, objects: ObjectSource) -> Self {
        let tokens = TokenCache::default();
        Self {
            inner: Arc::new(Inner {
                store,
                code,
                objects,
                tokens,
                hooks: RwLock::new(Vec::new()),
                trigger_base_url: RwLock::new(None),
                bootstrapped: Default::default(),
                api_base_url: RwLock::new(None),
            }),
        }
    }

    /// Tells the API where HTTP triggers are served, so trigger responses carry their URL.
    pub fn set_trigger_base_url(&self, url: impl Into<String>) {
        *self.inner.trigger_base_url.write().unwrap_or_else(|p| p.into_inner()) = Some(url.into());
    }

    /// Tells the API its own address, for URLs it hands out (the Lambda API's code location).
    pub fn set_api_base_url(&self, url: impl Into<String>) {
        *self.inner.api_base_url.write().unwrap_or_else(|p| p.into_inner()) = Some(url.into());
    }

    pub(crate) fn api_base_url(&self) -> Option<String> {
        let url = self.inner.api_base_url.read().unwrap_or_else(|p| p.into_inner()).clone()?;
        Some(url.trim_end_matches('/').to_owned())
    }

    pub(crate) fn trigger_url(&self, path: &str) -> Option<String> {
        let base = self.inner.trigger_base_url.read().unwrap_or_else(|p| p.into_inner()).clone()?;
        Some(format!("{}{path}", base.trim_end_matches('/')))
    }

    pub fn add_deploy_hooks(&self, hooks: Arc<dyn DeployHooks>) {
        self.inner.hooks.write().unwrap_or_else(|p| p.into_inner()).push(hooks);
    }

    pub(crate) fn hooks(&self) -> Vec<Arc<dyn DeployHooks>> {
        self.inner.hooks.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) async fn function_changed(&self, name: &FunctionName) {
        for h in self.hooks() {
            h.function_changed(name).await;
        }
    }

    pub(crate) async fn triggers_changed(&self) {
        for h in self.hooks() {
            h.triggers_changed().await;
        }
    }

    pub fn code(&self) -> &CodeStore {
        &self.inner.code
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.inner.store
    }
}
