use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hearth_types::{
    Alias, AliasName, Function, FunctionName, HttpTrigger, InvocationRecord, LogLine, TokenId, TokenRecord, TriggerId,
    Version,
};

use crate::log_entries::{Keep, lines_of};
use crate::memory_queue::StoredEvent;
use crate::{Expect, MetadataStore, StoreError};

/// In-memory [`MetadataStore`] and [`crate::EventQueue`]: the fake for tests of the logic
/// above the traits.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
pub(crate) struct State {
    functions: BTreeMap<FunctionName, Function>,
    versions: BTreeMap<FunctionName, Vec<Version>>,
    tokens: Vec<TokenRecord>,
    triggers: Vec<HttpTrigger>,
    /// By function, then alias name.
    aliases: BTreeMap<FunctionName, BTreeMap<AliasName, Alias>>,
    invocations: Vec<InvocationRecord>,
    logs: Vec<LogLine>,
    next_seq: i64,
    /// Events by request id ([`crate::memory_queue`]).
    pub(crate) events: BTreeMap<String, StoredEvent>,
    /// The arrival number of the last event accepted: events are delivered in this order.
    pub(crate) next_event_seq: u64,
    /// Cron triggers with their state, oldest first.
    pub(crate) schedules: Vec<hearth_types::ScheduleState>,
    pub(crate) nats_triggers: Vec<hearth_types::NatsTrigger>,
    pub(crate) usage: BTreeMap<hearth_types::UsageKey, hearth_types::UsageFigures>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-written (every write
        // checks what it needs before it changes anything), so a poisoned lock is still
        // consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl MetadataStore for MemoryStore {
    async fn get_function(&self, name: &FunctionName) -> Result<Option<Function>, StoreError> {
        Ok(self.state().functions.get(name).cloned())
    }

    async fn list_functions(&self) -> Result<Vec<Function>, StoreError> {
        Ok(self.state().functions.values().cloned().collect())
    }

    async fn save_function(
        &self,
        function: &Function,
        expect: Expect,
        version: Option<&Version>,
    ) -> Result<(), StoreError> {
        let mut st = self.state();
        let current = st.functions.get(&function.name);
        let matches = match (expect, current) {
            (Expect::Absent, None) => true,
            (Expect::Revision(r), Some(f)) => f.revision == r && f.id == function.id,
            _ => false,
        };
        if !matches {
            return Err(StoreError::Conflict);
        }
        if let Some(v) = version {
            let list = st.versions.entry(function.name.clone()).or_default();
            if list.iter().any(|x| x.number == v.number) {
                return Err(StoreError::Conflict);
            }
            list.push(v.clone());
        }
        st.functions.insert(function.name.clone(), function.clone());
        Ok(())
    }

    async fn delete_function(&self, name: &FunctionName) -> Result<bool, StoreError> {
        let mut st = self.state();
        st.versions.remove(name);
        let existed = st.functions.remove(name).is_some();
        if existed {
            st.aliases.remove(name);
            st.triggers.retain(|t| &t.function != name);
            st.logs.retain(|l| &l.function != name);
        }
        Ok(existed)
    }

    async fn put_alias(&self, alias: &Alias) -> Result<(), StoreError> {
        let mut st = self.state();
        if !st.functions.contains_key(&alias.function) {
            return Err(StoreError::Conflict);
        }
        st.aliases.entry(alias.function.clone()).or_default().insert(alias.name.clone(), alias.clone());
        Ok(())
    }

    async fn get_alias(&self, function: &FunctionName, name: &AliasName) -> Result<Option<Alias>, StoreError> {
        Ok(self.state().aliases.get(function).and_then(|a| a.get(name)).cloned())
    }

    async fn list_aliases(&self, function: &FunctionName) -> Result<Vec<Alias>, StoreError> {
        Ok(self.state().aliases.get(function).map(|a| a.values().cloned().collect()).unwrap_or_default())
    }

    async fn delete_alias(&self, function: &FunctionName, name: &AliasName) -> Result<bool, StoreError> {
        Ok(self.state().aliases.get_mut(function).is_some_and(|a| a.remove(name).is_some()))
    }

    async fn list_versions(&self, name: &FunctionName) -> Result<Vec<Version>, StoreError> {
        Ok(self.state().versions.get(name).cloned().unwrap_or_default())
    }

    async fn get_version(&self, name: &FunctionName, number: u32) -> Result<Option<Version>, StoreError> {
        let st = self.state();
        Ok(st.versions.get(name).and_then(|l| l.iter().find(|v| v.number == number).cloned()))
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let mut st = self.state();
        if st.tokens.iter().any(|t| t.id == token.id || t.secret_sha256 == token.secret_sha256) {
            return Err(StoreError::Conflict);
        }
        st.tokens.push(token.clone());
        Ok(())
    }

    async fn token_by_secret_hash(&self, sha256: &str) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.state().tokens.iter().find(|t| t.secret_sha256 == sha256).cloned())
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(self.state().tokens.clone())
    }

    async fn delete_token(&self, id: TokenId) -> Result<bool, StoreError> {
        let mut st = self.state();
        let before = st.tokens.len();
        st.tokens.retain(|t| t.id != id);
        Ok(st.tokens.len() != before)
    }

    async fn insert_trigger(&self, trigger: &HttpTrigger) -> Result<(), StoreError> {
        let mut st = self.state();
        if st.triggers.iter().any(|t| t.path == trigger.path || t.id == trigger.id) {
            return Err(StoreError::Conflict);
        }
        st.triggers.push(trigger.clone());
        st.triggers.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
        Ok(())
    }

    async fn list_triggers(&self) -> Result<Vec<HttpTrigger>, StoreError> {
        Ok(self.state().triggers.clone())
    }

    async fn delete_trigger(&self, id: TriggerId) -> Result<bool, StoreError> {
        let mut st = self.state();
        let before = st.triggers.len();
        st.triggers.retain(|t| t.id != id);
        Ok(st.triggers.len() != before)
    }

    async fn append_invocations(&self, records: &[InvocationRecord]) -> Result<(), StoreError> {
        let mut st = self.state();
        for record in records {
            // Unique by (request id, attempt), as SQLite's primary key: a repeat is ignored.
            let stored =
                st.invocations.iter().any(|r| r.request_id == record.request_id && r.attempt == record.attempt);
            if !stored {
                st.invocations.push(record.clone());
                let (key, figures) = hearth_types::UsageFigures::of(record);
                st.usage.entry(key).or_default().add(&figures);
            }
        }
        Ok(())
    }

    async fn list_invocations(
        &self,
        function: &FunctionName,
        limit: usize,
    ) -> Result<Vec<InvocationRecord>, StoreError> {
        let st = self.state();
        let mut out: Vec<_> = st.invocations.iter().filter(|r| &r.function == function).cloned().collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.started_at));
        out.truncate(limit);
        Ok(out)
    }

    async fn append_logs(&self, lines: &[LogLine]) -> Result<(), StoreError> {
        let mut st = self.state();
        for line in lines {
            st.next_seq += 1;
            let seq = st.next_seq;
            st.logs.push(LogLine { seq, ..line.clone() });
        }
        Ok(())
    }

    async fn read_logs(
        &self,
        function: &FunctionName,
        after: i64,
        request_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogLine>, StoreError> {
        let st = self.state();
        let entries = st
            .logs
            .iter()
            .filter(|l| &l.function == function && l.seq > after)
            .filter(|l| request_id.is_none_or(|r| l.request_id.as_deref() == Some(r)))
            .take(limit)
            .cloned()
            .collect();
        Ok(lines_of(entries, limit, Keep::Oldest))
    }

    async fn read_log_tail(
        &self,
        function: &FunctionName,
        at_most: i64,
        request_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogLine>, StoreError> {
        let st = self.state();
        let mut lines: Vec<LogLine> = st
            .logs
            .iter()
            .rev()
            .filter(|l| &l.function == function && l.seq <= at_most)
            .filter(|l| request_id.is_none_or(|r| l.request_id.as_deref() == Some(r)))
            .take(limit)
            .cloned()
            .collect();
        lines.reverse();
        Ok(lines_of(lines, limit, Keep::Newest))
    }

    async fn log_end(&self) -> Result<i64, StoreError> {
        Ok(self.state().next_seq)
    }

    async fn prune_telemetry(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut st = self.state();
        let n = st.logs.len() + st.invocations.len();
        st.logs.retain(|l| l.at >= before);
        st.invocations.retain(|r| r.started_at >= before);
        Ok((n - st.logs.len() - st.invocations.len()) as u64)
    }
}

#[async_trait]
impl crate::UsageStore for MemoryStore {
    async fn add_provisioned(&self, rows: &[(hearth_types::UsageKey, u64)]) -> Result<(), StoreError> {
        let mut st = self.state();
        for (key, mb_ms) in rows {
            st.usage.entry(key.clone()).or_default().provisioned_mb_ms += mb_ms;
        }
        Ok(())
    }

    async fn usage(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        function: Option<&FunctionName>,
        group: hearth_types::UsageGroup,
    ) -> Result<Vec<hearth_types::UsageRow>, StoreError> {
        let st = self.state();
        let hours = st
            .usage
            .iter()
            .filter(|(k, _)| k.hour >= from && k.hour < to && function.is_none_or(|f| &k.function == f))
            .map(|(k, v)| (k.clone(), v.clone()));
        Ok(hearth_types::group_usage(hours, group))
    }

    async fn invocation_stats(
        &self,
        function: &FunctionName,
        window: hearth_types::StatsWindow,
        max_durations: u64,
    ) -> Result<hearth_types::InvocationStats, StoreError> {
        Ok(hearth_types::stats_of(&self.state().invocations, function, window, max_durations))
    }

    async fn function_activity(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        max_durations: u64,
    ) -> Result<Vec<hearth_types::FunctionActivity>, StoreError> {
        let st = self.state();
        let functions: Vec<FunctionName> = st.functions.keys().cloned().collect();
        let (from, to) = (from.timestamp_millis(), to.timestamp_millis());
        Ok(hearth_types::activity_of(&st.invocations, &functions, from, to, max_durations))
    }
}
