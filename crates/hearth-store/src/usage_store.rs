//! Usage aggregates: per function, version (or alias) and hour, the summed figures of every
//! invocation record stored ([`crate::MetadataStore::append_invocations`] adds them in the
//! transaction that stores the records, so they always equal the sums over the records) and
//! of instances kept by `min_instances` ([`UsageStore::add_provisioned`]). They outlive the
//! raw records' retention. Every backend passes [`crate::usage_conformance::run`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hearth_types::{FunctionName, UsageGroup, UsageKey, UsageRow};

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
}
