//! Function metadata for routing, kept in memory so a hot request does no store I/O.
//! Versions are immutable and cached for good; `$LATEST` and aliases are dropped whenever
//! this node changes the function (or an alias of it), and re-read after a bounded age (for
//! changes made elsewhere).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hearth_store::{MetadataStore, StoreError};
use hearth_types::{Alias, AliasName, Function, FunctionId, FunctionName, Version, VersionSelector};

const LATEST_MAX_AGE: Duration = Duration::from_secs(30);

pub struct FunctionCache {
    store: Arc<dyn MetadataStore>,
    latest: RwLock<HashMap<FunctionName, (Function, Instant)>>,
    versions: RwLock<HashMap<(FunctionId, u32), Version>>,
    /// Aliases as last read (`None`: there was none), with when.
    aliases: RwLock<HashMap<(FunctionName, AliasName), CachedAlias>>,
    metrics: Arc<crate::Metrics>,
}

/// An alias as last read (`None`: there was none), and when.
type CachedAlias = (Option<Alias>, Instant);

/// The version a request resolved to.
pub enum Resolved {
    Found(Box<Version>),
    NoFunction,
    NoCode,
    NoVersion(u32),
    NoAlias(AliasName),
}

impl FunctionCache {
    pub fn new(store: Arc<dyn MetadataStore>, metrics: Arc<crate::Metrics>) -> Self {
        Self { store, latest: RwLock::default(), versions: RwLock::default(), aliases: RwLock::default(), metrics }
    }

    /// Times a store read.
    async fn timed<T>(&self, operation: &'static str, read: impl std::future::Future<Output = T>) -> T {
        let started = Instant::now();
        let out = read.await;
        self.metrics.operation("hearth_store_operation_seconds", operation, started.elapsed());
        out
    }

    pub fn forget(&self, name: &FunctionName) {
        self.latest.write().unwrap_or_else(|p| p.into_inner()).remove(name);
        self.aliases.write().unwrap_or_else(|p| p.into_inner()).retain(|(f, _), _| f != name);
    }

    async fn alias(&self, name: &FunctionName, alias: &AliasName) -> Result<Option<Alias>, StoreError> {
        let key = (name.clone(), alias.clone());
        if let Some((a, at)) = self.aliases.read().unwrap_or_else(|p| p.into_inner()).get(&key)
            && at.elapsed() < LATEST_MAX_AGE
        {
            return Ok(a.clone());
        }
        let a = self.timed("get_alias", self.store.get_alias(name, alias)).await?;
        self.aliases.write().unwrap_or_else(|p| p.into_inner()).insert(key, (a.clone(), Instant::now()));
        Ok(a)
    }

    pub async fn function(&self, name: &FunctionName) -> Result<Option<Function>, StoreError> {
        if let Some((f, at)) = self.latest.read().unwrap_or_else(|p| p.into_inner()).get(name)
            && at.elapsed() < LATEST_MAX_AGE
        {
            return Ok(Some(f.clone()));
        }
        let f = self.timed("get_function", self.store.get_function(name)).await?;
        let mut map = self.latest.write().unwrap_or_else(|p| p.into_inner());
        match &f {
            Some(f) => map.insert(name.clone(), (f.clone(), Instant::now())),
            None => map.remove(name),
        };
        Ok(f)
    }

    /// The version `selector` means now; an alias with a second version picks one by its
    /// weight.
    pub async fn resolve(&self, name: &FunctionName, selector: &VersionSelector) -> Result<Resolved, StoreError> {
        let Some(f) = self.function(name).await? else {
            return Ok(Resolved::NoFunction);
        };
        let number = match (selector, f.latest_version) {
            (VersionSelector::Number(n), _) => *n,
            (VersionSelector::Latest, Some(n)) => n,
            (VersionSelector::Latest, None) => return Ok(Resolved::NoCode),
            (VersionSelector::Alias(a), _) => match self.alias(name, a).await? {
                Some(alias) => alias.route(draw()),
                None => return Ok(Resolved::NoAlias(a.clone())),
            },
        };
        if let Some(v) = self.versions.read().unwrap_or_else(|p| p.into_inner()).get(&(f.id, number)) {
            return Ok(Resolved::Found(Box::new(v.clone())));
        }
        let read = self.timed("get_version", self.store.get_version(name, number)).await?;
        let Some(v) = read.filter(|v| v.function_id == f.id) else {
            return Ok(Resolved::NoVersion(number));
        };
        self.versions.write().unwrap_or_else(|p| p.into_inner()).insert((f.id, number), v.clone());
        Ok(Resolved::Found(Box::new(v)))
    }
}

/// A uniform value in `[0, 1)` (from the same generator as request ids).
fn draw() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}
