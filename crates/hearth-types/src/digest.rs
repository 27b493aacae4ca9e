use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// The sha256 of a code package, lower-case hex. Packages are stored under their digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[0-9a-f]{64}$")]
pub struct CodeDigest(String);

impl CodeDigest {
    pub fn of(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// First 12 hex digits, for humans.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

#[derive(Debug, thiserror::Error)]
#[error("not a sha256 digest: expected 64 lower-case hex digits")]
pub struct BadDigest;

impl FromStr for CodeDigest {
    type Err = BadDigest;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ok { Ok(Self(s.to_owned())) } else { Err(BadDigest) }
    }
}

impl TryFrom<String> for CodeDigest {
    type Error = BadDigest;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CodeDigest> for String {
    fn from(d: CodeDigest) -> Self {
        d.0
    }
}

impl fmt::Display for CodeDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
