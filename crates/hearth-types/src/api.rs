//! Request and response bodies of the HTTP API, shared by the server and its clients.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Function, InstanceState, Scope, TokenId, TokenRecord, Version};

/// The JSON body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiErrorBody {
    /// Stable machine-readable code, e.g. `FunctionNotFound`, `ZipPathTraversal`.
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
}

// Only for the document: handlers read and write such bodies as bytes.
/// Bytes that are not JSON: a zip package, or a function's result in the content type its
/// runtime chose.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(pub Vec<u8>);

/// The body of `PATCH /v1/functions/{name}`: a JSON merge patch of a [`FunctionSpec`]
/// (see `FunctionSpec::patched`); only its document is a type, the server reads the JSON.
pub struct FunctionPatch;

impl utoipa::PartialSchema for FunctionPatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        match crate::FunctionSpec::schema() {
            utoipa::openapi::RefOr::T(spec) => crate::schema::function_patch(&spec).into(),
            other => other,
        }
    }
}

impl ToSchema for FunctionPatch {}

/// The outcome of a configuration or code write.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeployResponse {
    pub function: Function,
    /// The version this request created; absent when nothing changed or there is no code yet.
    pub new_version: Option<Version>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FunctionList {
    pub functions: Vec<Function>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionList {
    pub versions: Vec<Version>,
}

/// Code given by reference to an object store.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeFromObject {
    #[schema(schema_with = crate::schema::object_url)]
    pub object_url: String,
}

/// Longest token name, in characters.
pub const TOKEN_NAME_MAX_LEN: usize = 64;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    #[schema(schema_with = crate::schema::token_name)]
    pub name: Option<String>,
    /// Parsed by the server, so an unknown scope is refused with `InvalidScope`.
    #[schema(schema_with = crate::schema::token_scopes)]
    pub scopes: Vec<String>,
}

/// A token as listed (never with its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub id: TokenId,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
}

impl From<TokenRecord> for TokenInfo {
    fn from(t: TokenRecord) -> Self {
        Self { id: t.id, name: t.name, scopes: t.scopes, created_at: t.created_at }
    }
}

/// A newly created token: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The bearer secret. Store it now: it cannot be shown again.
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: String,
    pub version: String,
}

/// A trigger to create. Only `http` triggers exist today.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// `http` (the default).
    #[serde(default, rename = "type")]
    #[schema(value_type = Option<crate::TriggerType>)]
    pub kind: Option<String>,
    /// `NAME`, `NAME:VERSION` or `NAME:ALIAS`.
    #[schema(schema_with = crate::schema::target)]
    pub function: String,
    #[schema(schema_with = crate::schema::trigger_path)]
    pub path: String,
    #[serde(default)]
    #[schema(schema_with = crate::schema::trigger_methods)]
    pub methods: Vec<String>,
    /// `none` (default: anyone) or `token` (a bearer token with the `invoke` scope).
    #[serde(default)]
    #[schema(value_type = Option<crate::TriggerAuth>)]
    pub auth: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TriggerList {
    pub triggers: Vec<TriggerView>,
}

/// A trigger with the URL that reaches it (on the server's trigger listener, which is
/// another origin than the API's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TriggerView {
    #[serde(flatten)]
    pub trigger: crate::HttpTrigger,
    /// e.g. `http://127.0.0.1:8081/hello`; absent when the server does not know its
    /// public trigger address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogPage {
    pub lines: Vec<crate::LogLine>,
    /// Pass as `after` to get the lines that follow.
    pub next: i64,
}

/// Why a stream of `GET /v1/functions/{name}/logs/stream` ends: the data of its `end` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogStreamEnd {
    pub reason: LogStreamEndReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogStreamEndReason {
    /// Its time is up (`timeout_s`, at most an hour): reconnect with `Last-Event-ID`.
    Expired,
    /// Its function was deleted.
    Deleted,
    /// Its token was deleted or no longer holds the `read` scope: sign in again.
    Revoked,
}

// Only for the document: the server writes the events as `text/event-stream`.
/// One event of `GET /v1/functions/{name}/logs/stream`: a `line` (`id` its `seq`, on the
/// last line of a stored entry only; `data` a `LogLine` as JSON), or the last one, `end` (`data` a `LogStreamEnd` as JSON).
pub struct LogStreamEvent;

impl utoipa::PartialSchema for LogStreamEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let text = || ObjectBuilder::new().schema_type(Type::String);
        let kind = |name: &str| text().enum_values(Some([name]));
        let json = |what: &str| text().content_media_type("application/json").description(Some(what));
        let line = ObjectBuilder::new()
            .property("event", kind("line"))
            .property(
                "id",
                text().pattern(Some("^[0-9]+$")).description(Some(
                    "The line's `seq`, on the last line of a stored entry only (an invocation's `START`, \
                     `END` and `REPORT` stored together share one)",
                )),
            )
            .property("data", json("The line, a `LogLine`, as JSON"))
            .required("event")
            .required("data");
        let end = ObjectBuilder::new()
            .property("event", kind("end"))
            .property("data", json("Why the stream ends, a `LogStreamEnd`, as JSON"))
            .required("event")
            .required("data");
        OneOfBuilder::new()
            .item(line)
            .item(end)
            .description(Some("One server-sent event: a log line, or the end of the stream"))
            .into()
    }
}

impl ToSchema for LogStreamEvent {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        use utoipa::PartialSchema;
        schemas.push((crate::LogLine::name().into(), crate::LogLine::schema()));
        <crate::LogLine as ToSchema>::schemas(schemas);
        schemas.push((LogStreamEnd::name().into(), LogStreamEnd::schema()));
        <LogStreamEnd as ToSchema>::schemas(schemas);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvocationList {
    pub invocations: Vec<crate::InvocationRecord>,
}

/// The answer to an asynchronous invocation (`202 Accepted`): the event is stored and will
/// be delivered.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventAccepted {
    pub request_id: String,
    /// `queued`.
    pub status: crate::EventStatus,
}

/// One event in a function's dead-letter list, with its payload.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeadLetter {
    #[serde(flatten)]
    pub event: crate::EventRecord,
    /// The event as it was sent (JSON).
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterPage {
    pub dead_letters: Vec<DeadLetter>,
    /// Pass as `after` for the next page; absent on the last one.
    pub next: Option<String>,
}

/// The body of `POST /v1/functions/{name}/dead-letters/redrive`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// Only these dead letters (at most 1,000 request ids of at most 128 characters);
    /// absent: all of the function's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::request_ids)]
    pub request_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RedriveResult {
    /// Dead letters queued again.
    pub redriven: u64,
}

/// The body of `PUT /v1/functions/{name}/aliases/{alias}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasSpec {
    /// The version the alias names.
    #[schema(minimum = 1, maximum = 999_999_999)]
    #[serde(deserialize_with = "crate::alias::whole_u32")]
    pub version: u32,
    /// A second version and the share of invocations (strictly between 0 and 1) it gets.
    #[serde(default)]
    pub additional_version: Option<crate::AdditionalVersion>,
    #[serde(default)]
    #[schema(max_length = 256)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AliasList {
    pub aliases: Vec<crate::Alias>,
}

/// The body of `POST /v1/schedules`: a cron trigger.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// `NAME`, `NAME:VERSION` or `NAME:ALIAS`.
    #[schema(schema_with = crate::schema::target)]
    pub function: String,
    /// Six or seven fields, seconds first: `sec min hour day-of-month month day-of-week
    /// [year]`, e.g. `0 */5 * * * *` (every five minutes).
    #[schema(example = "0 */5 * * * *", min_length = 1, max_length = 256)]
    pub schedule: String,
    /// `UTC` (default) or an IANA time-zone name such as `Europe/Paris`.
    #[serde(default)]
    #[schema(example = "UTC", max_length = 64)]
    pub time_zone: Option<String>,
    /// After downtime: `skip` (default) fires none of the missed instants, `once` fires one.
    #[serde(default)]
    #[schema(value_type = Option<crate::MissedRuns>)]
    pub missed_runs: Option<String>,
}

/// One row of `GET /v1/usage`: its figures, what they come to, and their cost.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageLine {
    #[serde(flatten)]
    pub row: crate::UsageRow,
    /// GB-seconds of invocations (`mb_ms` / 1024 / 1000).
    pub gb_seconds: f64,
    /// GB-seconds of instances kept by `min_instances`.
    pub provisioned_gb_seconds: f64,
    pub cost: crate::Cost,
}

/// The answer of `GET /v1/usage`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageReport {
    /// The first hour counted (the `from` asked for, down to its hour).
    pub from: chrono::DateTime<chrono::Utc>,
    /// The end of the last hour counted (the `to` asked for, up to its hour).
    pub to: chrono::DateTime<chrono::Utc>,
    pub group_by: crate::UsageGroup,
    pub prices: crate::Prices,
    pub rows: Vec<UsageLine>,
    /// The rows added up.
    pub total: UsageLine,
}

/// The body of `POST /v1/nats-triggers`: a NATS trigger.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsTriggerSpec {
    /// `NAME`, `NAME:VERSION` or `NAME:ALIAS`.
    #[schema(schema_with = crate::schema::target)]
    pub function: String,
    /// `nats://[user:password@|token@]host[:port]` or `tls://…`; credentials are stored and
    /// never shown.
    #[schema(
        example = "nats://127.0.0.1:4222",
        max_length = 512,
        pattern = r"^(nats|tls)://([^@/?#\s]+@)?[A-Za-z0-9.\-\[\]]+(:[1-9][0-9]{0,4})?$"
    )]
    pub server: String,
    /// The subject, with `*` and `>` wildcards (`orders.>`).
    #[schema(
        example = "orders.>",
        min_length = 1,
        max_length = 256,
        pattern = r"^((\*|[^\s.*>\x00-\x1f\x7f]+)\.)*(\*|>|[^\s.*>\x00-\x1f\x7f]+)$"
    )]
    pub subject: String,
    /// A JetStream stream holding the subject: messages are pulled through a durable
    /// consumer and acknowledged once the function succeeded. Absent: a core NATS
    /// subscription whose messages are queued as events.
    #[serde(default)]
    #[schema(example = "ORDERS", min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub stream: Option<String>,
    /// The durable consumer (with `stream`); made if it does not exist. Absent: one named
    /// after the trigger.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub consumer: Option<String>,
    /// Messages per invocation, at most (1 to 100; default 1).
    #[serde(default, deserialize_with = "crate::alias::whole_u32_opt")]
    #[schema(minimum = 1, maximum = 100)]
    pub batch: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NatsTriggerList {
    pub triggers: Vec<crate::NatsTriggerState>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleList {
    pub schedules: Vec<crate::ScheduleState>,
}

/// A live instance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InstanceView {
    pub id: String,
    pub version: u32,
    pub state: InstanceState,
    pub started_at: DateTime<Utc>,
    pub requests_served: u64,
    pub last_used: DateTime<Utc>,
    /// Memory the instance uses now (its cgroup's usage, page cache included), in MB;
    /// absent when the sandbox does not measure it (no cgroups).
    #[serde(default)]
    pub memory_used_mb: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InstanceList {
    pub instances: Vec<InstanceView>,
}

/// Pre-warmed sandboxes ready for one runtime and memory size.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PrewarmedView {
    pub runtime: String,
    pub memory_mb: u32,
    pub ready: usize,
}

/// This node's capacity: memory admitted for instances and the pre-warmed sandbox pool.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    /// Memory this node admits for instances (sum of their `memory_mb`).
    pub memory_limit_mb: u64,
    /// Memory held by live and starting instances.
    pub memory_committed_mb: u64,
    /// Memory the pre-warmed pool may hold (0: no pool).
    pub prewarm_budget_mb: u32,
    pub prewarmed: Vec<PrewarmedView>,
}

/// A function's invocations over a window, in buckets (`GET /v1/functions/{name}/stats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionStats {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Each bucket's length in seconds (the last bucket ends at `to`, so it may be shorter).
    pub step_s: u64,
    /// From `from` to `to`, every bucket, empty ones included.
    pub buckets: Vec<StatsBucket>,
    pub total: StatsTotal,
    /// Whether some percentile was computed from a deterministic sample of the durations
    /// (every k-th invocation in time order), as happens when a bucket holds more
    /// invocations than its share of the 100,000 durations one request reads.
    pub sampled: bool,
}

/// The invocations that started in one bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatsBucket {
    pub start: DateTime<Utc>,
    pub invocations: u64,
    /// Invocations that ended in an error (function or platform).
    pub errors: u64,
    pub cold_starts: u64,
    /// Median duration in milliseconds (nearest rank); absent without invocations.
    pub p50_ms: Option<f64>,
    /// 99th percentile of the durations in milliseconds (nearest rank).
    pub p99_ms: Option<f64>,
    /// The most live instances of the function this server saw during the bucket (sampled
    /// every 10 seconds, and now); absent for buckets before the server started, more than
    /// 24 hours ago, or in the future.
    pub max_instances: Option<u32>,
}

/// The whole window's invocations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatsTotal {
    pub invocations: u64,
    pub errors: u64,
    pub cold_starts: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Every function's recent activity (`GET /v1/stats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatsSummary {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Every function, by name.
    pub functions: Vec<FunctionSummary>,
}

/// One function's invocations over the window, and its instances now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionSummary {
    pub name: crate::FunctionName,
    pub invocations: u64,
    pub errors: u64,
    /// 99th percentile of the durations in milliseconds (nearest rank; from a deterministic
    /// sample when the function has more invocations than its share of the 100,000 durations
    /// one request reads); absent without invocations.
    pub p99_ms: Option<f64>,
    /// Live instances of the function on this server now.
    pub live_instances: u32,
}
