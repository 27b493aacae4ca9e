//! The durable queue of asynchronous invocations.
//!
//! [`EventQueue`] is the only way the platform stores events. It is a trait of its own (not
//! part of [`crate::MetadataStore`]) so that a backend can serve it from another engine;
//! the SQLite backend keeps it in the metadata database, [`crate::MemoryStore`] is its fake,
//! and [`crate::queue_conformance::run`] is the behaviour both show. A PostgreSQL backend
//! leases with `SELECT … FOR UPDATE SKIP LOCKED`.
//!
//! Delivery is at least once: [`EventQueue::lease`] hands an event to one worker until its
//! lease expires; a worker settles it ([`EventQueue::settle`]) with the attempt number it
//! leased, so a worker whose lease ran out (and whose event was leased again) cannot
//! overwrite the newer attempt's outcome. An event whose worker died is leased again once
//! its lease expires (or at once after [`EventQueue::release_leases`], which a node calls on
//! start for the leases its previous run held), and counted as a redelivery.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hearth_types::{
    CronTrigger, EventError, EventRecord, EventSource, FunctionName, NatsTrigger, ScheduleState, TriggerId,
};

use crate::StoreError;

/// An event to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Unique; the id the caller is answered with.
    pub request_id: String,
    pub function: FunctionName,
    /// A version number or alias; `None`: `$LATEST` at delivery.
    pub qualifier: Option<String>,
    pub source: EventSource,
    pub payload: Bytes,
    pub enqueued_at: DateTime<Utc>,
    /// The function's bound (`max_queued_events`): refused when this many of its events are
    /// already queued or running.
    pub max_queued: u32,
    /// Destination hops that led to this event (0 for a caller's event); bounds loops of
    /// functions that are each other's destinations.
    pub chain: u32,
}

/// What [`EventQueue::enqueue`] did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored durably (committed and synced to disk before the call returns).
    Accepted,
    /// The function already has `queued` events queued or running.
    QueueFull { queued: u64 },
    /// An event with this request id exists already (nothing changed).
    Duplicate,
}

/// A lease request: events of one function, for one worker, until `until`.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub owner: String,
    pub now: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub limit: usize,
}

/// A stored event with its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedEvent {
    pub record: EventRecord,
    pub payload: Bytes,
    pub chain: u32,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Settle {
    /// The function answered without error.
    Succeeded { executed_version: u32, result: String, result_truncated: bool },
    /// Deliver again at `not_before`.
    Retry { not_before: DateTime<Utc>, executed_version: Option<u32>, error: EventError },
    /// No more deliveries: kept in the dead-letter list.
    DeadLetter { executed_version: Option<u32>, error: EventError },
    /// No more deliveries: its record went to the on-failure function.
    Failed { executed_version: Option<u32>, error: EventError },
}

/// One function's backlog.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDepth {
    pub function: FunctionName,
    pub queued: u64,
    pub running: u64,
    pub dead_lettered: u64,
    /// When the oldest queued or running event was queued.
    pub oldest_queued_at: Option<DateTime<Utc>>,
}

/// What [`EventQueue::fire_schedule`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// The schedule is gone, or was not at the expected instant (another firing moved it):
    /// nothing changed.
    Stale,
    /// The schedule moved on; the occurrence's event, if one was given, was stored (or
    /// refused: then it counts as dropped).
    Advanced(Option<Enqueued>),
}

#[async_trait]
pub trait EventQueue: Send + Sync + 'static {
    /// Stores each event, in order, in one transaction that is synced to disk before this
    /// returns (a `202` may follow). One result per event.
    async fn enqueue(&self, events: &[NewEvent]) -> Result<Vec<Enqueued>, StoreError>;

    /// Functions with an event deliverable at `now`: queued with `not_before <= now`, or
    /// running with an expired lease. Ordered by name.
    async fn due_functions(&self, now: DateTime<Utc>) -> Result<Vec<FunctionName>, StoreError>;

    /// The earliest time an event becomes deliverable (a queued event's `not_before` or a
    /// running event's lease expiry), if any event is queued or running.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Leases up to `lease.limit` deliverable events of `function`, oldest first (by order
    /// of acceptance): each becomes `running` until `lease.until`, its `attempts` grows by
    /// one and `last_attempt_at` is `lease.now`; one whose previous lease expired counts a
    /// redelivery.
    async fn lease(&self, function: &FunctionName, lease: &Lease) -> Result<Vec<QueuedEvent>, StoreError>;

    /// Records how attempt `attempt` (the event's `attempts` when it was leased) ended, at
    /// `at`; a succeeded or failed event's payload is dropped (only dead letters keep theirs,
    /// for a redrive). With `forward`, also stores that event (the outcome's record for a destination
    /// function; not held to its function's bound) in the same transaction. Returns false,
    /// changing nothing, when the event is not running that attempt any more (its lease
    /// expired and it was leased again, or it is gone).
    async fn settle(
        &self,
        request_id: &str,
        attempt: u32,
        at: DateTime<Utc>,
        outcome: Settle,
        forward: Option<NewEvent>,
    ) -> Result<bool, StoreError>;

    /// Makes every running event leased by `owner` deliverable again now (counted as a
    /// redelivery). Returns how many.
    async fn release_leases(&self, owner: &str, now: DateTime<Utc>) -> Result<u64, StoreError>;

    async fn get_event(&self, request_id: &str) -> Result<Option<EventRecord>, StoreError>;

    /// A function's dead letters, oldest first, after `after` (a request id from a previous
    /// page).
    async fn list_dead_letters(
        &self,
        function: &FunctionName,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<QueuedEvent>, StoreError>;

    /// Queues dead letters of `function` again (those named in `ids`, or all): status
    /// `queued`, deliverable at `now`, `queued_at = now`, `function_errors` 0, `redrives` + 1,
    /// error kept until the next attempt. Returns how many.
    async fn redrive(
        &self,
        function: &FunctionName,
        ids: Option<&[String]>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Drops succeeded and failed events finished before `finished_before`, and dead letters
    /// finished before `dead_before`. Returns how many went.
    async fn prune_events(&self, finished_before: DateTime<Utc>, dead_before: DateTime<Utc>)
    -> Result<u64, StoreError>;

    /// Deletes every event of `function`, whatever its status (the function was deleted: a
    /// function created later under its name starts with none). Returns how many.
    async fn delete_events_of(&self, function: &FunctionName) -> Result<u64, StoreError>;

    /// Per function with any queued, running or dead-lettered event; ordered by name.
    async fn queue_depths(&self) -> Result<Vec<QueueDepth>, StoreError>;

    /// Adds a cron trigger that next fires at `next_fire_at`, with nothing fired yet.
    /// [`StoreError::Conflict`] if its id exists.
    async fn add_schedule(&self, trigger: &CronTrigger, next_fire_at: Option<DateTime<Utc>>) -> Result<(), StoreError>;

    /// Every cron trigger with its state, oldest first.
    async fn list_schedules(&self) -> Result<Vec<ScheduleState>, StoreError>;

    async fn delete_schedule(&self, id: TriggerId) -> Result<bool, StoreError>;

    /// Deletes a function's cron triggers (when the function is deleted). Returns how many.
    async fn delete_schedules_of(&self, function: &FunctionName) -> Result<u64, StoreError>;

    /// Moves schedule `id` from the instant `expected` to `next` and, in the same
    /// transaction, stores `event` (the occurrence at `expected` or a missed one, held to its
    /// function's bound): `fired` grows by one and `last_fired_at` becomes `at` when it is
    /// accepted, `dropped` when the queue is full. [`Fired::Stale`], changing nothing, when
    /// the schedule is gone or is not at `expected`: so each instant fires at most once,
    /// however many schedulers race and wherever one is killed.
    async fn fire_schedule(
        &self,
        id: TriggerId,
        expected: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
        event: Option<NewEvent>,
    ) -> Result<Fired, StoreError>;

    /// Stores an event whose delivery already ended elsewhere (a JetStream message handled
    /// straight from its stream): the record of `event` after `attempts` attempts, of which
    /// `function_errors` before the last were the function's, ended at `at` with `outcome`;
    /// with `forward`, also that event (the on-failure function's record), in the same
    /// transaction, synced to disk before this returns (the message is acknowledged after).
    /// As [`EventQueue::settle`], only a dead letter keeps its payload.
    /// [`Enqueued::Duplicate`], changing nothing, when the request id exists.
    async fn store_finished(
        &self,
        event: &NewEvent,
        attempts: u32,
        function_errors: u32,
        at: DateTime<Utc>,
        outcome: Settle,
        forward: Option<NewEvent>,
    ) -> Result<Enqueued, StoreError>;

    /// Adds a NATS trigger, its credentials included. [`StoreError::Conflict`] if its id
    /// exists.
    async fn add_nats_trigger(&self, trigger: &NatsTrigger) -> Result<(), StoreError>;

    /// Every NATS trigger, with its credentials, oldest first (by `created_at`, then id).
    async fn list_nats_triggers(&self) -> Result<Vec<NatsTrigger>, StoreError>;

    async fn delete_nats_trigger(&self, id: TriggerId) -> Result<bool, StoreError>;

    /// Deletes a function's NATS triggers (when the function is deleted). Returns how many.
    async fn delete_nats_triggers_of(&self, function: &FunctionName) -> Result<u64, StoreError>;
}
