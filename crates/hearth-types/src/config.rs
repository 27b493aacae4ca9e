use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{CodeDigest, Runtime, ValidationError, validate_environment};

/// An inclusive numeric range with a default: each configurable limit is defined once, here.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub field: &'static str,
    pub min: i64,
    pub max: i64,
    pub default: i64,
}

impl Limit {
    fn check(&self, value: Option<i64>) -> Result<u32, ValidationError> {
        let got = value.unwrap_or(self.default);
        if (self.min..=self.max).contains(&got) {
            // Ranges are all within u32.
            Ok(got as u32)
        } else {
            Err(ValidationError::OutOfRange { field: self.field, min: self.min, max: self.max, got })
        }
    }
}

/// The limits on a function's configuration.
pub mod limits {
    use super::Limit;

    pub const MEMORY_MB: Limit = Limit { field: "memory_mb", min: 64, max: 10_240, default: 128 };
    pub const TIMEOUT_S: Limit = Limit { field: "timeout_s", min: 1, max: 900, default: 3 };
    pub const CONCURRENCY: Limit = Limit { field: "concurrency", min: 1, max: 1_000, default: 1 };
    pub const MIN_INSTANCES: Limit = Limit { field: "min_instances", min: 0, max: 1_000, default: 0 };
    pub const MAX_INSTANCES: Limit = Limit { field: "max_instances", min: 1, max: 1_000, default: 10 };
    pub const KEEP_ALIVE_S: Limit = Limit { field: "keep_alive_s", min: 1, max: 86_400, default: 90 };
    /// Size of the writable `/tmp`, as Lambda's ephemeral storage.
    pub const EPHEMERAL_STORAGE_MB: Limit =
        Limit { field: "ephemeral_storage_mb", min: 512, max: 10_240, default: 512 };
    /// Retries of an asynchronous invocation after a function error, as on Lambda.
    pub const ASYNC_RETRIES: Limit = Limit { field: "async_retries", min: 0, max: 2, default: 2 };
    /// How long an asynchronous invocation may wait for a successful delivery, as on Lambda.
    pub const MAX_EVENT_AGE_S: Limit = Limit { field: "max_event_age_s", min: 60, max: 21_600, default: 21_600 };
    /// Asynchronous invocations queued (or running) for one function at once; past it, 429.
    pub const MAX_QUEUED_EVENTS: Limit = Limit { field: "max_queued_events", min: 1, max: 100_000, default: 10_000 };
    /// Lambda's handler limit.
    pub const HANDLER_MAX_LEN: usize = 128;
    pub const DESCRIPTION_MAX_LEN: usize = 256;
    /// Total size of environment keys and values, as on Lambda.
    pub const ENVIRONMENT_MAX_BYTES: usize = 4 * 1024;
}

/// A function's configuration as a caller sends it: every field but `runtime` optional.
/// Turned into a [`FunctionConfig`] by [`FunctionSpec::validate`]. The document states each
/// rule it applies (`crate::schema`) but two that JSON Schema cannot: `min_instances` at
/// most `max_instances`, and the environment's total size; the field descriptions say them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// `python3`, `nodejs`, `provided` or `wasm`.
    #[schema(value_type = Runtime, example = "python3")]
    pub runtime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::handler)]
    pub handler: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integer")]
    #[schema(schema_with = crate::schema::memory_mb)]
    pub memory_mb: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integer")]
    #[schema(schema_with = crate::schema::timeout_s)]
    pub timeout_s: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = crate::schema::environment)]
    pub environment: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integer")]
    #[schema(schema_with = crate::schema::concurrency)]
    pub concurrency: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integer")]
    #[schema(schema_with = crate::schema::min_instances)]
    pub min_instances: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integer")]
    #[schema(schema_with = crate::schema::max_instances)]
    pub max_instances: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integer")]
    #[schema(schema_with = crate::schema::keep_alive_s)]
    pub keep_alive_s: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integer")]
    #[schema(schema_with = crate::schema::ephemeral_storage_mb)]
    pub ephemeral_storage_mb: Option<i64>,
    /// `fixed` (idle instances kept for `keep_alive_s`) or `adaptive` (per-function
    /// histogram of idle times); default: the server's setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<KeepAlivePolicyKind>, example = "adaptive")]
    pub keep_alive_policy: Option<String>,
    /// `none` (default: only the instance's own loopback) or `egress` (outbound connections
    /// through NAT on the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Network>, example = "none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::description)]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integer")]
    #[schema(schema_with = crate::schema::async_retries)]
    pub async_retries: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integer")]
    #[schema(schema_with = crate::schema::max_event_age_s)]
    pub max_event_age_s: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integer")]
    #[schema(schema_with = crate::schema::max_queued_events)]
    pub max_queued_events: Option<i64>,
    /// A function (`NAME`, `NAME:VERSION` or `NAME:ALIAS`) that gets, as an asynchronous
    /// event, the record of each asynchronous invocation that succeeded (not the function
    /// itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::destination)]
    pub on_success: Option<String>,
    /// A function (`NAME`, `NAME:VERSION` or `NAME:ALIAS`) that gets the record of each
    /// asynchronous invocation that failed after its retries (not the function itself);
    /// without one, failures go to the function's dead-letter list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::destination)]
    pub on_failure: Option<String>,
    /// sha256 of a package uploaded with `POST /v1/packages`: sets code and configuration
    /// together, in one new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<CodeDigest>)]
    pub code_sha256: Option<String>,
}

/// An optional integer as JSON Schema counts them: `215` or `215.0` (many JSON encoders
/// write whole numbers with a fraction), saturated to `i64` so that a huge value is refused
/// by its range check, with that field's code, rather than as a malformed body.
pub fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if n.as_u64().is_some() {
                Ok(Some(i64::MAX))
            } else {
                match n.as_f64() {
                    // `as` saturates: out-of-range values become i64::MIN/MAX.
                    Some(f) if f.fract() == 0.0 => Ok(Some(f as i64)),
                    _ => Err(D::Error::custom(format!("expected an integer, got {n}"))),
                }
            }
        }
    }
}

/// A validated function configuration. Part of every immutable [`crate::Version`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FunctionConfig {
    pub runtime: Runtime,
    pub handler: String,
    pub memory_mb: u32,
    pub timeout_s: u32,
    pub environment: BTreeMap<String, String>,
    pub concurrency: u32,
    pub min_instances: u32,
    pub max_instances: u32,
    pub keep_alive_s: u32,
    #[serde(default = "default_ephemeral_storage_mb")]
    pub ephemeral_storage_mb: u32,
    #[serde(default)]
    pub network: Network,
    /// `None`: the server's default policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive_policy: Option<KeepAlivePolicyKind>,
    pub description: String,
    /// How asynchronous invocations are delivered (defaults for versions stored before).
    #[serde(flatten)]
    pub events: EventConfig,
}

/// How a function's asynchronous invocations are delivered: part of its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventConfig {
    /// Deliveries after the first one that failed with a function error.
    #[serde(default = "default_async_retries")]
    pub async_retries: u32,
    /// An event not delivered successfully within this time of being queued fails.
    #[serde(default = "default_max_event_age_s")]
    pub max_event_age_s: u32,
    #[serde(default = "default_max_queued_events")]
    pub max_queued_events: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub on_success: Option<crate::FunctionTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub on_failure: Option<crate::FunctionTarget>,
}

impl Default for EventConfig {
    fn default() -> Self {
        Self {
            async_retries: default_async_retries(),
            max_event_age_s: default_max_event_age_s(),
            max_queued_events: default_max_queued_events(),
            on_success: None,
            on_failure: None,
        }
    }
}

fn default_async_retries() -> u32 {
    limits::ASYNC_RETRIES.default as u32
}

fn default_max_event_age_s() -> u32 {
    limits::MAX_EVENT_AGE_S.default as u32
}

fn default_max_queued_events() -> u32 {
    limits::MAX_QUEUED_EVENTS.default as u32
}

/// How idle instances are kept (see `hearth_scale::keep_alive`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeepAlivePolicyKind {
    /// Idle instances stay for the function's `keep_alive_s`.
    #[default]
    Fixed,
    /// A per-function histogram of idle times decides when to unload and when to pre-warm.
    Adaptive,
}

impl std::str::FromStr for KeepAlivePolicyKind {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fixed" => Ok(Self::Fixed),
            "adaptive" => Ok(Self::Adaptive),
            other => Err(ValidationError::InvalidKeepAlivePolicy(other.to_owned())),
        }
    }
}

impl std::fmt::Display for KeepAlivePolicyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Fixed => "fixed",
            Self::Adaptive => "adaptive",
        })
    }
}

fn default_ephemeral_storage_mb() -> u32 {
    limits::EPHEMERAL_STORAGE_MB.default as u32
}

/// What an instance may reach over the network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Only the instance's own loopback: no connection in or out.
    #[default]
    None,
    /// A virtual link to the host with NAT to its uplink: outbound connections succeed.
    Egress,
}

impl std::str::FromStr for Network {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "egress" => Ok(Self::Egress),
            other => Err(ValidationError::InvalidNetwork(other.to_owned())),
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Egress => "egress",
        })
    }
}

impl FunctionSpec {
    /// Checks every field and fills in defaults. The first problem found is returned.
    pub fn validate(&self) -> Result<FunctionConfig, ValidationError> {
        let runtime: Runtime = self.runtime.parse()?;
        let handler = validate_handler(runtime, self.handler.as_deref())?;
        let memory_mb = limits::MEMORY_MB.check(self.memory_mb)?;
        let timeout_s = limits::TIMEOUT_S.check(self.timeout_s)?;
        validate_environment(&self.environment)?;
        let concurrency = limits::CONCURRENCY.check(self.concurrency)?;
        let min_instances = limits::MIN_INSTANCES.check(self.min_instances)?;
        let max_instances = limits::MAX_INSTANCES.check(self.max_instances)?;
        if min_instances > max_instances {
            return Err(ValidationError::MinAboveMax { min: min_instances.into(), max: max_instances.into() });
        }
        let keep_alive_s = limits::KEEP_ALIVE_S.check(self.keep_alive_s)?;
        let ephemeral_storage_mb = limits::EPHEMERAL_STORAGE_MB.check(self.ephemeral_storage_mb)?;
        let network = self.network.as_deref().map(str::parse).transpose()?.unwrap_or_default();
        let keep_alive_policy = self.keep_alive_policy.as_deref().map(str::parse).transpose()?;
        let description = self.description.clone().unwrap_or_default();
        let len = description.chars().count();
        if len > limits::DESCRIPTION_MAX_LEN {
            return Err(ValidationError::DescriptionTooLong { got: len, max: limits::DESCRIPTION_MAX_LEN });
        }
        let destination = |d: &Option<String>| d.as_deref().map(str::parse::<crate::FunctionTarget>).transpose();
        let events = EventConfig {
            async_retries: limits::ASYNC_RETRIES.check(self.async_retries)?,
            max_event_age_s: limits::MAX_EVENT_AGE_S.check(self.max_event_age_s)?,
            max_queued_events: limits::MAX_QUEUED_EVENTS.check(self.max_queued_events)?,
            on_success: destination(&self.on_success)?,
            on_failure: destination(&self.on_failure)?,
        };
        Ok(FunctionConfig {
            runtime,
            handler,
            memory_mb,
            timeout_s,
            environment: self.environment.clone(),
            concurrency,
            min_instances,
            max_instances,
            keep_alive_s,
            ephemeral_storage_mb,
            network,
            keep_alive_policy,
            description,
            events,
        })
    }
}

fn validate_handler(runtime: Runtime, handler: Option<&str>) -> Result<String, ValidationError> {
    let handler = match (handler, runtime.default_handler()) {
        (Some(h), _) => h,
        (None, Some(default)) => default,
        (None, None) => {
            return Err(ValidationError::InvalidHandler(
                String::new(),
                "a handler is required for this runtime, e.g. main.handler",
            ));
        }
    };
    let bad = |why| Err(ValidationError::InvalidHandler(handler.to_owned(), why));
    if handler.is_empty() || handler.chars().count() > limits::HANDLER_MAX_LEN {
        return bad("must be 1-128 characters");
    }
    if handler.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain whitespace or control characters");
    }
    if matches!(runtime, Runtime::Python3 | Runtime::Nodejs) {
        match handler.rsplit_once('.') {
            Some((module, func)) if !module.is_empty() && !func.is_empty() => {}
            _ => return bad("use the form module.function, e.g. main.handler"),
        }
    }
    // A module's path in the package: segments that do not start with `.` (so no `..`, no
    // absolute path: it cannot leave the package), as `schema::handler_by_runtime` says.
    if runtime == Runtime::Wasm && handler.split('/').any(|part| part.is_empty() || part.starts_with('.')) {
        return bad("name the module's path in the package, e.g. main.wasm or bin/app.wasm");
    }
    Ok(handler.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(runtime: &str) -> FunctionSpec {
        FunctionSpec { runtime: runtime.into(), handler: Some("main.handler".into()), ..Default::default() }
    }

    #[test]
    fn defaults_are_applied() {
        let c = spec("python3").validate().unwrap();
        assert_eq!((c.memory_mb, c.timeout_s, c.concurrency, c.min_instances, c.keep_alive_s), (128, 3, 1, 0, 90));
    }

    #[test]
    fn each_refusal_has_its_code() {
        let cases: Vec<(FunctionSpec, &str)> = vec![
            (spec("cobol"), "InvalidRuntime"),
            (FunctionSpec { memory_mb: Some(63), ..spec("python3") }, "InvalidMemorySize"),
            (FunctionSpec { memory_mb: Some(10_241), ..spec("python3") }, "InvalidMemorySize"),
            (FunctionSpec { timeout_s: Some(0), ..spec("python3") }, "InvalidTimeout"),
            (FunctionSpec { timeout_s: Some(901), ..spec("python3") }, "InvalidTimeout"),
            (FunctionSpec { handler: None, ..spec("python3") }, "InvalidHandler"),
            (FunctionSpec { handler: Some("main".into()), ..spec("nodejs") }, "InvalidHandler"),
            (
                FunctionSpec { min_instances: Some(5), max_instances: Some(2), ..spec("python3") },
                "InvalidInstanceCount",
            ),
            (FunctionSpec { concurrency: Some(0), ..spec("python3") }, "InvalidConcurrency"),
            (FunctionSpec { ephemeral_storage_mb: Some(511), ..spec("python3") }, "InvalidEphemeralStorage"),
            (FunctionSpec { ephemeral_storage_mb: Some(10_241), ..spec("python3") }, "InvalidEphemeralStorage"),
            (FunctionSpec { network: Some("host".into()), ..spec("python3") }, "InvalidNetwork"),
            (FunctionSpec { keep_alive_policy: Some("lru".into()), ..spec("python3") }, "InvalidKeepAlivePolicy"),
        ];
        for (s, code) in cases {
            assert_eq!(s.validate().unwrap_err().code(), code, "{s:?}");
        }
    }

    #[test]
    fn network_and_storage_parse_and_default() {
        let c = spec("python3").validate().unwrap();
        assert_eq!((c.network, c.ephemeral_storage_mb), (Network::None, 512));
        let s = FunctionSpec { network: Some("egress".into()), ephemeral_storage_mb: Some(2048), ..spec("python3") };
        let c = s.validate().unwrap();
        assert_eq!((c.network, c.ephemeral_storage_mb), (Network::Egress, 2048));
        // Versions stored before these fields existed still load, with the defaults.
        let mut old = serde_json::to_value(&c).unwrap();
        old.as_object_mut().unwrap().retain(|k, _| k != "network" && k != "ephemeral_storage_mb");
        let back: FunctionConfig = serde_json::from_value(old).unwrap();
        assert_eq!((back.network, back.ephemeral_storage_mb), (Network::None, 512));
    }

    #[test]
    fn whole_numbers_with_a_fraction_are_integers() {
        let s: FunctionSpec =
            serde_json::from_str(r#"{"runtime": "python3", "memory_mb": 256.0, "timeout_s": 1e1}"#).unwrap();
        assert_eq!((s.memory_mb, s.timeout_s), (Some(256), Some(10)));
        let huge: FunctionSpec = serde_json::from_str(r#"{"runtime": "python3", "memory_mb": 1e300}"#).unwrap();
        assert_eq!(huge.memory_mb, Some(i64::MAX));
        assert_eq!(
            FunctionSpec { handler: Some("main.handler".into()), ..huge }.validate().unwrap_err().code(),
            "InvalidMemorySize"
        );
        for bad in [r#"{"runtime": "python3", "memory_mb": 256.5}"#, r#"{"runtime": "python3", "memory_mb": "256"}"#] {
            assert!(serde_json::from_str::<FunctionSpec>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wasm_handlers_are_paths_of_modules_in_the_package() {
        let wasm = |h: &str| FunctionSpec { handler: Some(h.into()), ..spec("wasm") }.validate();
        assert_eq!(FunctionSpec { handler: None, ..spec("wasm") }.validate().unwrap().handler, "main.wasm");
        assert_eq!(wasm("bin/app.wasm").unwrap().handler, "bin/app.wasm");
        assert_eq!(wasm("app").unwrap().handler, "app", "any file of the package may be the module");
        for bad in ["/etc/x.wasm", "../x.wasm", "a/../x.wasm", "a//x.wasm", "./x.wasm", ".wasm", "a/.h.wasm", "a/"] {
            assert_eq!(wasm(bad).unwrap_err().code(), "InvalidHandler", "{bad}");
        }
    }

    #[test]
    fn provided_gets_a_default_handler() {
        let c = FunctionSpec { runtime: "provided".into(), ..Default::default() }.validate().unwrap();
        assert_eq!(c.handler, "bootstrap");
    }
}
