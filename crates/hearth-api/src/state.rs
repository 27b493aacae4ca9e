use std::sync::Arc;

use hearth_blob::{CodeStore, ObjectSource};
use hearth_store::MetadataStore;

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
}

impl AppState {
    pub fn new(store: Arc<dyn MetadataStore>, code: CodeStore, objects: ObjectSource) -> Self {
        Self { inner: Arc::new(Inner { store, code, objects, tokens: TokenCache::default() }) }
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.inner.store
    }
}
