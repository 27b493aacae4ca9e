use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{FunctionName, TriggerId, ValidationError};

/// URL prefixes the platform owns; triggers cannot take them.
pub const RESERVED_PATH_PREFIXES: &[&str] =
    &["/v1", "/2015-03-31", "/metrics", "/healthz", "/console", "/fn", "/openapi.json"];

/// Longest trigger path, in bytes (paths are ASCII).
pub const TRIGGER_PATH_MAX_LEN: usize = 256;
/// The HTTP methods a trigger may be limited to.
pub const KNOWN_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The kinds of trigger. Only HTTP triggers exist today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TriggerType {
    /// Requests to a path prefix on the trigger listener.
    #[default]
    Http,
}

/// Who may call an HTTP trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TriggerAuth {
    /// Anyone who can reach the server.
    #[default]
    None,
    /// Callers with a bearer token holding the `invoke` scope.
    Token,
}

/// A validated HTTP path prefix: `/seg/seg`, segments of `[A-Za-z0-9._~-]`, no trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "/hello")]
pub struct TriggerPath(String);

impl TriggerPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }
}

impl TryFrom<String> for TriggerPath {
    type Error = ValidationError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        let bad = |why: &'static str| Err(ValidationError::InvalidTriggerPath(raw.clone(), why));
        if !raw.starts_with('/') || raw.len() > TRIGGER_PATH_MAX_LEN {
            return bad("start with '/' and use at most 256 characters");
        }
        let trimmed = raw.trim_end_matches('/');
        if trimmed.is_empty() {
            return bad("the root path cannot be a trigger; use a prefix such as /hello");
        }
        for seg in trimmed[1..].split('/') {
            let ok = !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'));
            if !ok {
                return bad("use segments of letters, digits, '-', '_', '.' and '~'");
            }
        }
        let lower = trimmed.to_ascii_lowercase();
        if RESERVED_PATH_PREFIXES.iter().any(|p| lower == *p || lower.starts_with(&format!("{p}/"))) {
            return Err(ValidationError::ReservedTriggerPath(trimmed.to_owned()));
        }
        Ok(Self(trimmed.to_owned()))
    }
}

impl From<TriggerPath> for String {
    fn from(p: TriggerPath) -> Self {
        p.0
    }
}

impl fmt::Display for TriggerPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An HTTP trigger: requests to `path` or below it become invocations of `function`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HttpTrigger {
    pub id: TriggerId,
    pub function: FunctionName,
    /// The version number or alias it invokes; absent: `$LATEST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    pub path: TriggerPath,
    /// Upper-case HTTP methods; empty means any.
    pub methods: Vec<String>,
    pub auth: TriggerAuth,
    pub created_at: DateTime<Utc>,
}

/// Validates a method list (`GET`, `POST`, ...), upper-casing it.
pub fn validate_methods(methods: &[String]) -> Result<Vec<String>, ValidationError> {
    let mut out: Vec<String> = Vec::new();
    for m in methods {
        let up = m.trim().to_ascii_uppercase();
        if !KNOWN_METHODS.contains(&up.as_str()) {
            return Err(ValidationError::InvalidMethod(m.clone()));
        }
        if !out.contains(&up) {
            out.push(up);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> Result<TriggerPath, ValidationError> {
        TriggerPath::try_from(s.to_owned())
    }

    #[test]
    fn paths() {
        assert_eq!(path("/hello/").unwrap().as_str(), "/hello");
        assert_eq!(path("/api/v2/users").unwrap().segments().collect::<Vec<_>>(), ["api", "v2", "users"]);
        for reserved in ["/v1", "/v1/functions", "/healthz", "/fn/x", "/console", "/metrics", "/2015-03-31/x", "/V1"] {
            assert_eq!(path(reserved).unwrap_err().code(), "ReservedTriggerPath", "{reserved}");
        }
        for bad in ["hello", "/", "/a//b", "/a/../b", "/a b", "/a?b"] {
            assert_eq!(path(bad).unwrap_err().code(), "InvalidTriggerPath", "{bad}");
        }
        assert!(path("/v1x").is_ok(), "only whole segments are reserved");
    }

    #[test]
    fn methods() {
        assert_eq!(validate_methods(&["get".into(), "POST".into(), "GET".into()]).unwrap(), ["GET", "POST"]);
        assert_eq!(validate_methods(&["FETCH".into()]).unwrap_err().code(), "InvalidMethod");
    }
}
