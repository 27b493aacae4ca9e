//! Hearth's domain model: the nouns every other crate speaks.
//!
//! Everything that arrives from outside (API bodies, CLI flags) is validated here, in one
//! place, and turned into typed values ([`FunctionName`], [`FunctionConfig`], [`Runtime`]).
//! Validation failures carry a stable error code ([`ValidationError::code`]).

pub(crate) mod alias;
pub mod api;
mod config;
mod config_patch;
mod digest;
mod environment;
mod event;
mod function;
mod ids;
mod instance;
mod invocation;
mod name;
mod nats;
mod runtime;
mod schedule;
pub mod schema;
mod stats;
mod token;
mod trigger;
mod usage;
mod validation;

pub use alias::{AdditionalVersion, Alias, AliasName, FunctionTarget, validate_weight};
pub use config::{
    EventConfig, FunctionConfig, FunctionSpec, KeepAlivePolicyKind, Limit, Network, integer as json_integer, limits,
};
pub use config_patch::{PatchError, merge_patch};
pub use digest::CodeDigest;
pub use environment::{RESERVED_ENV_NAMES, validate_environment};
pub use event::{
    EVENT_PAYLOAD_MAX_BYTES, EVENT_TEXT_MAX_BYTES, EventError, EventRecord, EventSource, EventStatus, event_text,
};
pub use function::{CodeRef, Function, Version, VersionSelector};
pub use ids::{FunctionId, TokenId, TriggerId};
pub use instance::{InstanceState, StartSource};
pub use invocation::{InvocationRecord, LogLine, LogStream, new_request_id};
pub use name::FunctionName;
pub use nats::{
    NATS_BATCH_MAX, NATS_NAME_MAX_LEN, NATS_SERVER_MAX_LEN, NATS_SUBJECT_MAX_LEN, NatsServer, NatsTrigger,
    NatsTriggerState, NatsTriggerStatus, validate_batch, validate_nats_name, validate_subject,
};
pub use runtime::Runtime;
pub use schedule::{CronSchedule, CronTrigger, MissedRuns, SCHEDULE_MAX_LEN, ScheduleState, TIME_ZONE_MAX_LEN};
pub use stats::{
    FunctionActivity, InvocationFigures, InvocationStats, STATS_DEFAULT_BUCKETS, STATS_MAX_BUCKETS, STATS_MAX_WINDOW_S,
    STATS_MIN_STEP_S, StatsWindow, activity_of, bucket_share, nearest_rank, stats_of, stride,
};
pub use token::{Scope, TokenRecord};
pub use trigger::{
    HttpTrigger, KNOWN_METHODS, RESERVED_PATH_PREFIXES, TRIGGER_PATH_MAX_LEN, TriggerAuth, TriggerPath, TriggerType,
    validate_methods,
};
pub use usage::{
    Cost, Prices, UsageFigures, UsageGroup, UsageKey, UsageRow, aggregate as aggregate_usage, group as group_usage,
    hour_of, provisioned as provisioned_usage,
};
pub use validation::ValidationError;
