use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{CodeDigest, FunctionConfig, FunctionId, FunctionName};

/// A stored code package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CodeRef {
    pub sha256: CodeDigest,
    pub size_bytes: u64,
}

/// A function: its current configuration and code. Every change that leaves it with both
/// appends an immutable [`Version`]; `latest_version` is `$LATEST`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Function {
    pub id: FunctionId,
    pub name: FunctionName,
    pub config: FunctionConfig,
    /// `None` until code is uploaded.
    pub code: Option<CodeRef>,
    /// Number of the newest version, `None` while there is no code.
    pub latest_version: Option<u32>,
    /// Bumped on every write; used for optimistic concurrency.
    pub revision: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An immutable snapshot of configuration and code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Version {
    pub function_id: FunctionId,
    pub function: FunctionName,
    pub number: u32,
    pub config: FunctionConfig,
    pub code: CodeRef,
    pub created_at: DateTime<Utc>,
}

/// Which version a caller means: `$LATEST`, a number, or an alias (which names a version,
/// or two with weights).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VersionSelector {
    Latest,
    Number(u32),
    Alias(crate::AliasName),
}

impl VersionSelector {
    /// The qualifier as callers write it (`3`, `live`); `None` for `$LATEST`.
    pub fn qualifier(&self) -> Option<String> {
        match self {
            Self::Latest => None,
            Self::Number(n) => Some(n.to_string()),
            Self::Alias(a) => Some(a.to_string()),
        }
    }
}

impl std::fmt::Display for VersionSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Latest => f.write_str("$LATEST"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Alias(a) => f.write_str(a.as_str()),
        }
    }
}

/// Most digits a version number has: versions are numbered from 1 up to 999,999,999.
const VERSION_MAX_DIGITS: usize = 9;
/// A version number as the document states it (`crate::schema::version`).
pub(crate) const VERSION_NUMBER_PATTERN: &str = "[1-9][0-9]{0,8}";

impl std::str::FromStr for VersionSelector {
    type Err = String;

    /// `$LATEST`, `latest` in any case, a number from 1 to 999,999,999 written in plain
    /// digits (no sign, no leading zero), or an alias name (starting with a letter).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "$LATEST" || s.eq_ignore_ascii_case("latest") {
            return Ok(Self::Latest);
        }
        let digits = !s.is_empty() && s.len() <= VERSION_MAX_DIGITS && s.bytes().all(|b| b.is_ascii_digit());
        match s.parse::<u32>() {
            Ok(n) if digits && !s.starts_with('0') => Ok(Self::Number(n)),
            _ => match s.parse::<crate::AliasName>() {
                Ok(alias) => Ok(Self::Alias(alias)),
                Err(_) => Err(format!(
                    "invalid version {s:?}: expected a version number (1 to 999999999), $LATEST, or an alias name"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_selectors() {
        assert_eq!("$LATEST".parse(), Ok(VersionSelector::Latest));
        assert_eq!("Latest".parse(), Ok(VersionSelector::Latest));
        assert_eq!("7".parse(), Ok(VersionSelector::Number(7)));
        assert_eq!("999999999".parse(), Ok(VersionSelector::Number(999_999_999)));
        assert_eq!("live".parse(), Ok(VersionSelector::Alias("live".parse().unwrap())));
        assert_eq!("LATEST1".parse::<VersionSelector>().unwrap().qualifier().as_deref(), Some("LATEST1"));
        for bad in ["", "0", "007", "+7", "-1", "1000000000", "4294967296", "1.0", "1a", "a:b", "$live"] {
            assert!(bad.parse::<VersionSelector>().is_err(), "{bad}");
        }
    }
}
