//! The metadata store: functions, their immutable versions, API tokens, triggers, telemetry,
//! and (behind traits of their own) the queue of asynchronous invocations ([`EventQueue`])
//! and usage aggregates ([`UsageStore`]).
//!
//! [`MetadataStore`] is the only way the platform reads or writes metadata. Backends:
//! [`SqliteStore`] (embedded default, WAL) and [`MemoryStore`] (the fake for tests). Every
//! backend passes [`conformance::run`]. A PostgreSQL backend implements the same trait.
//!
//! Writes to a function use optimistic concurrency: [`MetadataStore::save_function`] only
//! succeeds if the stored revision is the one the caller read, so the rule "a change makes
//! a new version" lives once, above the store, and two concurrent deploys cannot both
//! claim the same version number.

pub mod conformance;
mod counting;
mod event_queue;
mod event_transitions;
mod log_entries;
mod memory;
mod memory_queue;
pub mod queue_conformance;
mod queue_conformance_nats;
mod sqlite;
mod sqlite_queue;
mod sqlite_schema;
mod sqlite_stats;
mod sqlite_usage;
pub mod stats_conformance;
pub mod usage_conformance;
mod usage_store;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hearth_types::{
    Alias, AliasName, Function, FunctionName, HttpTrigger, InvocationRecord, LogLine, TokenId, TokenRecord, TriggerId,
    Version,
};

/// Test-only: a wrapper that counts the calls reaching a store.
#[doc(hidden)]
pub use counting::CountingStore;
pub use event_queue::{Enqueued, EventQueue, Fired, Lease, NewEvent, QueueDepth, QueuedEvent, Settle};
pub use log_entries::ENTRY_LINES_MAX;
pub use memory::MemoryStore;
pub use sqlite::SqliteStore;
pub use usage_store::UsageStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The function changed (or appeared, or vanished) since the caller read it.
    #[error("concurrent modification: the record changed since it was read")]
    Conflict,
    #[error("metadata backend failed: {0}")]
    Backend(String),
    #[error("stored metadata is unreadable: {0}")]
    Corrupt(String),
    /// The database was written by a newer Hearth: its schema has migrations this binary
    /// does not know, so it is refused before any statement reads or writes a table.
    #[error(
        "the metadata database has schema version {found}, but this binary knows versions up to {known}: \
         it was written by a newer Hearth; run that version (or a newer one) on it"
    )]
    SchemaTooNew { found: usize, known: usize },
}

/// What the caller expects to be stored before a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The function must not exist yet.
    Absent,
    /// The function must exist at this revision.
    Revision(u64),
}

#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    async fn get_function(&self, name: &FunctionName) -> Result<Option<Function>, StoreError>;

    /// All functions, ordered by name.
    async fn list_functions(&self) -> Result<Vec<Function>, StoreError>;

    /// Writes `function` if the stored state matches `expect`, and appends `version` (if any)
    /// in the same transaction. Fails with [`StoreError::Conflict`] otherwise, writing nothing.
    async fn save_function(
        &self,
        function: &Function,
        expect: Expect,
        version: Option<&Version>,
    ) -> Result<(), StoreError>;

    /// Deletes a function, all its versions, its aliases, its triggers and its log. Invocation records
    /// stay (they are the usage history). Returns whether it existed.
    async fn delete_function(&self, name: &FunctionName) -> Result<bool, StoreError>;

    /// Versions of the current incarnation of a function, oldest first.
    async fn list_versions(&self, name: &FunctionName) -> Result<Vec<Version>, StoreError>;

    async fn get_version(&self, name: &FunctionName, number: u32) -> Result<Option<Version>, StoreError>;

    /// Creates or replaces an alias of an existing function; [`StoreError::Conflict`] when
    /// the function does not exist (any more).
    async fn put_alias(&self, alias: &Alias) -> Result<(), StoreError>;

    async fn get_alias(&self, function: &FunctionName, name: &AliasName) -> Result<Option<Alias>, StoreError>;

    /// A function's aliases, ordered by name.
    async fn list_aliases(&self, function: &FunctionName) -> Result<Vec<Alias>, StoreError>;

    async fn delete_alias(&self, function: &FunctionName, name: &AliasName) -> Result<bool, StoreError>;

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError>;

    async fn token_by_secret_hash(&self, sha256: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// All tokens, oldest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    async fn delete_token(&self, id: TokenId) -> Result<bool, StoreError>;

    /// Adds a trigger; [`StoreError::Conflict`] if its path is taken.
    async fn insert_trigger(&self, trigger: &HttpTrigger) -> Result<(), StoreError>;

    /// All triggers, ordered by path.
    async fn list_triggers(&self) -> Result<Vec<HttpTrigger>, StoreError>;

    async fn delete_trigger(&self, id: TriggerId) -> Result<bool, StoreError>;

    /// Stores invocation records (a record whose request id and attempt are stored already is
    /// ignored) and, in the same transaction, adds the figures of those stored to their
    /// hours' usage aggregates ([`UsageStore`]).
    async fn append_invocations(&self, records: &[InvocationRecord]) -> Result<(), StoreError>;

    /// A function's newest invocation records, newest first.
    async fn list_invocations(
        &self,
        function: &FunctionName,
        limit: usize,
    ) -> Result<Vec<InvocationRecord>, StoreError>;

    /// Appends log entries; their `seq` is assigned here (the given one is ignored). A
    /// platform entry may hold several lines, separated by `\n` (see [`Self::read_logs`]).
    async fn append_logs(&self, lines: &[LogLine]) -> Result<(), StoreError>;

    /// A batch of telemetry: [`Self::append_invocations`] and [`Self::append_logs`] together,
    /// in one transaction where the backend has them (one commit for both: the meter's
    /// writer stores every batch this way). Either may be empty. A backend with
    /// transactions stores both or neither.
    async fn append_telemetry(&self, records: &[InvocationRecord], lines: &[LogLine]) -> Result<(), StoreError> {
        self.append_invocations(records).await?;
        self.append_logs(lines).await
    }

    /// A function's log lines with `seq > after`, oldest first, optionally one request's, at
    /// most `limit` of them. A stored platform entry of several lines (an invocation's
    /// `START`, `END` and `REPORT`) reads back one line each, all with its `seq`, and is never
    /// cut by the limit (but a read gives at least one entry whole).
    async fn read_logs(
        &self,
        function: &FunctionName,
        after: i64,
        request_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogLine>, StoreError>;

    /// A function's last `limit` log lines at or before position `at_most` (optionally one
    /// request's), oldest first: what a reader sees of the past before it follows new lines.
    /// Entries are kept whole as in [`Self::read_logs`] (at least the last one).
    async fn read_log_tail(
        &self,
        function: &FunctionName,
        at_most: i64,
        request_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogLine>, StoreError>;

    /// The end of the log: the highest `seq` ever assigned (0 before the first line). It
    /// never goes back, even when lines are deleted or pruned, so [`Self::read_logs`] after it
    /// returns only lines appended later.
    async fn log_end(&self) -> Result<i64, StoreError>;

    /// Drops log lines and invocation records older than `before`. Returns how many went.
    async fn prune_telemetry(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}
