use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ValidationError;

/// A function's name: `[a-z][a-z0-9-]{0,62}`. Constructed only through validation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[a-z][a-z0-9-]{0,62}$", example = "hello")]
pub struct FunctionName(String);

impl FunctionName {
    pub const MAX_LEN: usize = 63;
    /// The rule as a regular expression (without anchors).
    pub const PATTERN: &str = "[a-z][a-z0-9-]{0,62}";

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for FunctionName {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut chars = s.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if first_ok && rest_ok && s.len() <= Self::MAX_LEN {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::InvalidName(s.to_owned()))
        }
    }
}

impl TryFrom<String> for FunctionName {
    type Error = ValidationError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<FunctionName> for String {
    fn from(n: FunctionName) -> Self {
        n.0
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for ok in ["a", "hello", "hello-world-2", &format!("a{}", "b".repeat(62))] {
            assert!(ok.parse::<FunctionName>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_invalid_names() {
        let long = format!("a{}", "b".repeat(63));
        for bad in ["", "1abc", "-a", "Hello", "a_b", "a.b", "a/b", "é", long.as_str()] {
            let err = bad.parse::<FunctionName>().unwrap_err();
            assert_eq!(err.code(), "InvalidFunctionName", "{bad}");
        }
    }
}
