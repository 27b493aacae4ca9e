//! A [`MetadataStore`] that passes every call on to another and counts it, by method: for
//! tests that must show which paths reach the store (a route-cache hit reaches none).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hearth_types::{
    Alias, AliasName, Function, FunctionName, HttpTrigger, InvocationRecord, LogLine, TokenId, TokenRecord, TriggerId,
    Version,
};

use crate::{Expect, MetadataStore, StoreError};

/// Counts the calls made to `inner`, reads and writes alike.
pub struct CountingStore {
    inner: Arc<dyn MetadataStore>,
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn MetadataStore>) -> Self {
        Self { inner, calls: Mutex::default() }
    }

    /// The calls made so far, by method name.
    pub fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The calls made since `before` (an earlier [`Self::calls`]), by method name.
    pub fn calls_since(&self, before: &BTreeMap<&'static str, u64>) -> BTreeMap<&'static str, u64> {
        self.calls()
            .into_iter()
            .map(|(method, n)| (method, n - before.get(method).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    fn count(&self, method: &'static str) -> &dyn MetadataStore {
        *self.calls.lock().unwrap_or_else(|p| p.into_inner()).entry(method).or_default() += 1;
        self.inner.as_ref()
    }
}

#[async_trait]
impl MetadataStore for CountingStore {
    async fn get_function(&self, name: &FunctionName) -> Result<Option<Function>, StoreError> {
        self.count("get_function").get_function(name).await
    }

    async fn list_functions(&self) -> Result<Vec<Function>, StoreError> {
        self.count("list_functions").list_functions().await
    }

    async fn save_function(
        &self,
        function: &Function,
        expect: Expect,
        version: Option<&Version>,
    ) -> Result<(), StoreError> {
        self.count("save_function").save_function(function, expect, version).await
    }

    async fn delete_function(&self, name: &FunctionName) -> Result<bool, StoreError> {
        self.count("delete_function").delete_function(name).await
    }

    async fn list_versions(&self, name: &FunctionName) -> Result<Vec<Version>, StoreError> {
        self.count("list_versions").list_versions(name).await
    }

    async fn get_version(&self, name: &FunctionName, number: u32) -> Result<Option<Version>, StoreError> {
        self.count("get_version").get_version(name, number).await
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        self.count("insert_token").insert_token(token).await
    }

    async fn token_by_secret_hash(&self, sha256: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.count("token_by_secret_hash").token_by_secret_hash(sha256).await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.count("list_tokens").list_tokens().await
    }

    async fn delete_token(&self, id: TokenId) -> Result<bool, StoreError> {
        self.count("delete_token").delete_token(id).await
    }

    async fn insert_trigger(&self, trigger: &HttpTrigger) -> Result<(), StoreError> {
        self.count("insert_trigger").insert_trigger(trigger).await
    }

    async fn put_alias(&self, alias: &Alias) -> Result<(), StoreError> {
        self.count("put_alias").put_alias(alias).await
    }

    async fn get_alias(&self, function: &FunctionName, name: &AliasName) -> Result<Option<Alias>, StoreError> {
        self.count("get_alias").get_alias(function, name).await
    }

    async fn list_aliases(&self, function: &FunctionName) -> Result<Vec<Alias>, StoreError> {
        self.count("list_aliases").list_aliases(function).await
    }

    async fn delete_alias(&self, function: &FunctionName, name: &AliasName) -> Result<bool, StoreError> {
        self.count("delete_alias").delete_alias(function, name).await
    }

    async fn list_triggers(&self) -> Result<Vec<HttpTrigger>, StoreError> {
        self.count("list_triggers").list_triggers().await
    }

    async fn delete_trigger(&self, id: TriggerId) -> Result<bool, StoreError> {
        self.count("delete_trigger").delete_trigger(id).await
    }

    async fn append_invocations(&self, records: &[InvocationRecord]) -> Result<(), StoreError> {
        self.count("append_invocations").append_invocations(records).await
    }

    async fn list_invocations(
        &self,
        function: &FunctionName,
        limit: usize,
    ) -> Result<Vec<InvocationRecord>, StoreError> {
        self.count("list_invocations").list_invocations(function, limit).await
    }

    async fn append_logs(&self, lines: &[LogLine]) -> Result<(), StoreError> {
        self.count("append_logs").append_logs(lines).await
    }

    async fn append_telemetry(&self, records: &[InvocationRecord], lines: &[LogLine]) -> Result<(), StoreError> {
        self.count("append_telemetry").append_telemetry(records, lines).await
    }

    async fn read_logs(
        &self,
        function: &FunctionName,
        after: i64,
        request_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogLine>, StoreError> {
        self.count("read_logs").read_logs(function, after, request_id, limit).await
    }

    async fn read_log_tail(
        &self,
        function: &FunctionName,
        at_most: i64,
        request_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogLine>, StoreError> {
        self.count("read_log_tail").read_log_tail(function, at_most, request_id, limit).await
    }

    async fn log_end(&self) -> Result<i64, StoreError> {
        self.count("log_end").log_end().await
    }

    async fn prune_telemetry(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.count("prune_telemetry").prune_telemetry(before).await
    }
}
