use thiserror::Error;

/// Why a piece of user input was refused. Each variant has a stable [`code`](Self::code)
/// that the API returns and clients may match on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    #[error(
        "invalid function name {0:?}: use 1-63 characters, lower-case letters, digits and '-', starting with a letter"
    )]
    InvalidName(String),
    #[error("unknown runtime {0:?}: expected one of python3, nodejs, provided, wasm")]
    InvalidRuntime(String),
    #[error("invalid handler {0:?}: {1}")]
    InvalidHandler(String, &'static str),
    #[error("{field} must be between {min} and {max}, got {got}")]
    OutOfRange { field: &'static str, min: i64, max: i64, got: i64 },
    #[error("invalid environment variable name {0:?}: use letters, digits and '_', starting with a letter")]
    InvalidEnvName(String),
    #[error("environment variable {0:?} is reserved by the platform and cannot be set")]
    ReservedEnvName(String),
    #[error("environment variables take {got} bytes, more than the limit of {max} bytes")]
    EnvironmentTooLarge { got: usize, max: usize },
    #[error("min_instances ({min}) must not exceed max_instances ({max})")]
    MinAboveMax { min: i64, max: i64 },
    #[error("description is {got} characters long, more than the limit of {max}")]
    DescriptionTooLong { got: usize, max: usize },
    #[error("unknown scope {0:?}: expected one of admin, deploy, invoke, read")]
    InvalidScope(String),
    #[error("invalid trigger path {0:?}: {1}")]
    InvalidTriggerPath(String, &'static str),
    #[error(
        "the path {0:?} is reserved by the platform (/v1, /2015-03-31, /fn, /metrics, /healthz, /console); choose another"
    )]
    ReservedTriggerPath(String),
    #[error("unknown network mode {0:?}: expected none or egress")]
    InvalidNetwork(String),
    #[error("unknown keep-alive policy {0:?}: expected fixed or adaptive")]
    InvalidKeepAlivePolicy(String),
    #[error("unknown HTTP method {0:?}: use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS")]
    InvalidMethod(String),
    #[error("invalid schedule {0:?}: {1}")]
    InvalidSchedule(String, String),
    #[error("unknown time zone {0:?}: use UTC or an IANA name such as Europe/Paris")]
    InvalidTimeZone(String),
    #[error("unknown missed-runs policy {0:?}: expected skip or once")]
    InvalidMissedRuns(String),
    #[error("invalid group_by {0:?}: expected hour, day, function or version")]
    InvalidUsageGroup(String),
    #[error("invalid NATS server {0:?}: {1}")]
    InvalidNatsServer(String, String),
    #[error("invalid NATS subject {0:?}: {1}")]
    InvalidSubject(String, String),
    #[error("invalid stream or consumer name {0:?}: use 1-64 letters, digits, '_' and '-'")]
    InvalidNatsName(String),
    #[error("invalid batch size {0}: from 1 to 100 messages")]
    InvalidBatchSize(u32),
    #[error("invalid alias name {0:?}: use 1-128 letters, digits, '_' and '-', starting with a letter (not latest)")]
    InvalidAliasName(String),
    #[error("invalid routing weight {0}: a share strictly between 0 and 1, e.g. 0.1")]
    InvalidWeight(String),
    #[error("invalid target {0:?}: use NAME, NAME:VERSION or NAME:ALIAS")]
    InvalidTarget(String),
}

impl ValidationError {
    /// Stable machine-readable code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidName(_) => "InvalidFunctionName",
            Self::InvalidRuntime(_) => "InvalidRuntime",
            Self::InvalidHandler(..) => "InvalidHandler",
            Self::OutOfRange { field, .. } => match *field {
                "memory_mb" => "InvalidMemorySize",
                "timeout_s" => "InvalidTimeout",
                "concurrency" => "InvalidConcurrency",
                "min_instances" | "max_instances" => "InvalidInstanceCount",
                "keep_alive_s" => "InvalidKeepAlive",
                "ephemeral_storage_mb" => "InvalidEphemeralStorage",
                _ => "InvalidParameterValue",
            },
            Self::MinAboveMax { .. } => "InvalidInstanceCount",
            Self::InvalidEnvName(_) => "InvalidEnvironmentVariable",
            Self::ReservedEnvName(_) => "ReservedEnvironmentVariable",
            Self::EnvironmentTooLarge { .. } => "EnvironmentTooLarge",
            Self::DescriptionTooLong { .. } => "InvalidParameterValue",
            Self::InvalidScope(_) => "InvalidScope",
            Self::InvalidTriggerPath(..) => "InvalidTriggerPath",
            Self::ReservedTriggerPath(_) => "ReservedTriggerPath",
            Self::InvalidMethod(_) => "InvalidMethod",
            Self::InvalidNetwork(_) => "InvalidNetwork",
            Self::InvalidKeepAlivePolicy(_) => "InvalidKeepAlivePolicy",
            Self::InvalidSchedule(..) => "InvalidSchedule",
            Self::InvalidTimeZone(_) => "InvalidTimeZone",
            Self::InvalidMissedRuns(_) => "InvalidMissedRuns",
            Self::InvalidUsageGroup(_) => "InvalidUsageGroup",
            Self::InvalidNatsServer(..) => "InvalidNatsServer",
            Self::InvalidSubject(..) => "InvalidSubject",
            Self::InvalidNatsName(_) => "InvalidNatsName",
            Self::InvalidBatchSize(_) => "InvalidBatchSize",
            Self::InvalidAliasName(_) => "InvalidAliasName",
            Self::InvalidWeight(_) => "InvalidWeight",
            Self::InvalidTarget(_) => "InvalidTarget",
        }
    }
}
