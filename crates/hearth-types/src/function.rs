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

/// Which version a caller means: `$LATEST` or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSelector {
    Latest,
    Number(u32),
}

impl std::str::FromStr for VersionSelector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "$LATEST" || s.eq_ignore_ascii_case("latest") {
            return Ok(Self::Latest);
        }
        match s.parse::<u32>() {
            Ok(n) if n > 0 => Ok(Self::Number(n)),
            _ => Err(format!("invalid version {s:?}: expected a positive number or $LATEST")),
        }
    }
}
