//! Usage aggregates: per function, version (or alias) and hour, the summed figures of every
//! invocation record stored ([`crate::MetadataStore::append_invocations`] adds them in the
//! transaction that stores the records, so they always equal the sums over the records) and
//! of instances kept by `min_instances` ([`UsageStore::add_provisioned`]). They outlive the
//! raw records' retention. Every backend passes [`crate::usage_conformance::run`].
//!
//! The same trait reads statistics of the raw records over time windows (the console's
//! charts): [`UsageStore::invocation_stats`] and [`UsageStore::function_activity`], by the
//! rules of [`hearth_types::stats_of`]; every backend passes
//! [`crate::stats_conformance::run`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hearth_types::{FunctionActivity, FunctionName, InvocationStats, StatsWindow, UsageGroup, UsageKey, UsageRow};

use crate::StoreError;

#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    /// Adds kept-instance time, in megabyte-milliseconds, to each hour's aggregates.
    async fn add_provisioned(&self, rows: &[(UsageKey, u64)]) -> Result<(), StoreError>;

    /// The aggregates of the hours in `[from, to)`, of `function` only when given, grouped
    /// by `group` (as [`hearth_types::group_usage`] groups them), ordered by period, then
    /// function, version and qualifier.
    async fn usage(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        function: Option<&FunctionName>,
        group: UsageGroup,
    ) -> Result<Vec<UsageRow>, StoreError>;

    /// `function`'s invocation records that started in `window`, counted per bucket, with
    /// nearest-rank percentiles of their durations read from at most `max_durations` of them
    /// for the buckets (an equal share each) and as many for the whole window: every k-th
    /// record in time order when there are more ([`hearth_types::stats_of`] is the rule).
    async fn invocation_stats(
        &self,
        function: &FunctionName,
        window: StatsWindow,
        max_durations: u64,
    ) -> Result<InvocationStats, StoreError>;

    /// Every function's records that started in `[from, to)`: counts and p99, by the same
    /// rules (an equal share of `max_durations` per function with records), ordered by name,
    /// functions without records included ([`hearth_types::activity_of`]).
    async fn function_activity(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        max_durations: u64,
    ) -> Result<Vec<FunctionActivity>, StoreError>;
}
