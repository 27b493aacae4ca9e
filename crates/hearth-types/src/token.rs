use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{TokenId, ValidationError};

/// What a bearer token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Everything, including managing tokens.
    Admin,
    /// Create, update and delete functions and triggers; implies `read`.
    Deploy,
    /// Invoke functions.
    Invoke,
    /// Read functions, versions, code, logs.
    Read,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Self::Admin, Self::Deploy, Self::Invoke, Self::Read];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Deploy => "deploy",
            Self::Invoke => "invoke",
            Self::Read => "read",
        }
    }

    /// Whether holding `self` is enough for an operation that needs `required`.
    pub fn grants(self, required: Scope) -> bool {
        self == required || self == Self::Admin || (self == Self::Deploy && required == Self::Read)
    }
}

impl FromStr for Scope {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|x| x.as_str() == s).ok_or_else(|| ValidationError::InvalidScope(s.to_owned()))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored API token: only the sha256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: TokenId,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Lower-case hex sha256 of the secret.
    pub secret_sha256: String,
    pub created_at: DateTime<Utc>,
}

impl TokenRecord {
    pub fn grants(&self, required: Scope) -> bool {
        self.scopes.iter().any(|s| s.grants(required))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_lattice() {
        assert!(Scope::Admin.grants(Scope::Deploy));
        assert!(Scope::Deploy.grants(Scope::Read));
        assert!(!Scope::Deploy.grants(Scope::Admin));
        assert!(!Scope::Read.grants(Scope::Deploy));
        assert!(!Scope::Invoke.grants(Scope::Read));
        assert!(!Scope::Read.grants(Scope::Invoke));
    }
}
