//! Aliases: a name for a version of a function (`live` → 3), optionally sending a share of
//! invocations to a second version (weighted routing, as Lambda's `AdditionalVersionWeights`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{FunctionName, ValidationError};

/// An alias's name: 1-128 of `[A-Za-z0-9_-]`, starting with a letter, and not `latest` in
/// any case (that is `$LATEST`), so a qualifier is a version number or an alias, never both.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[A-Za-z][A-Za-z0-9_-]{0,127}$", example = "live")]
pub struct AliasName(String);

impl AliasName {
    pub const MAX_LEN: usize = 128;
    /// The rule as a regular expression (without anchors; `latest` aside).
    pub const PATTERN: &str = "[A-Za-z][A-Za-z0-9_-]{0,127}";

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AliasName {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut chars = s.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if first_ok && rest_ok && s.len() <= Self::MAX_LEN && !s.eq_ignore_ascii_case("latest") {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::InvalidAliasName(s.chars().take(140).collect()))
        }
    }
}

impl TryFrom<String> for AliasName {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<AliasName> for String {
    fn from(a: AliasName) -> Self {
        a.0
    }
}

impl fmt::Display for AliasName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a trigger or destination invokes: `NAME`, `NAME:3` or `NAME:alias` (`$LATEST`
/// when no qualifier is given). Written as that string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FunctionTarget {
    pub function: FunctionName,
    pub selector: crate::VersionSelector,
}

impl FunctionTarget {
    pub const PATTERN_HINT: &str = "NAME, NAME:VERSION or NAME:ALIAS";
}

impl FromStr for FunctionTarget {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, qualifier) = match s.split_once(':') {
            Some((name, q)) => (name, Some(q)),
            None => (s, None),
        };
        let function: FunctionName = name.parse()?;
        let selector = match qualifier {
            None => crate::VersionSelector::Latest,
            Some(q) => q.parse().map_err(|_| ValidationError::InvalidTarget(s.chars().take(200).collect()))?,
        };
        Ok(Self { function, selector })
    }
}

impl TryFrom<String> for FunctionTarget {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<FunctionTarget> for String {
    fn from(t: FunctionTarget) -> Self {
        t.to_string()
    }
}

impl fmt::Display for FunctionTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.selector.qualifier() {
            None => f.write_str(self.function.as_str()),
            Some(q) => write!(f, "{}:{q}", self.function),
        }
    }
}

/// A second version an alias sends a share of its invocations to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdditionalVersion {
    #[schema(minimum = 1, maximum = 999_999_999)]
    #[serde(deserialize_with = "whole_u32")]
    pub version: u32,
    /// The share of invocations it gets, strictly between 0 and 1.
    #[schema(exclusive_minimum = 0, exclusive_maximum = 1)]
    pub weight: f64,
}

/// An alias as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Alias {
    pub function: FunctionName,
    pub name: AliasName,
    /// The version it points to.
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_version: Option<AdditionalVersion>,
    #[serde(default)]
    pub description: String,
    /// Bumped on every change.
    pub revision: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Alias {
    /// The version an invocation goes to, given `draw` uniform in `[0, 1)`.
    pub fn route(&self, draw: f64) -> u32 {
        match self.additional_version {
            Some(a) if draw < a.weight => a.version,
            _ => self.version,
        }
    }
}

/// A `u32` as JSON Schema counts integers: `3` or `3.0` (many encoders write whole numbers
/// with a fraction).
pub fn whole_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    use serde::de::Error;
    let n = serde_json::Number::deserialize(d)?;
    let whole = n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64));
    whole
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| D::Error::custom(format!("expected a whole number from 0 to {}, got {n}", u32::MAX)))
}

/// An optional [`whole_u32`] (`null` or absent: `None`).
pub fn whole_u32_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_u32")] u32);
    Ok(Option::<Whole>::deserialize(d)?.map(|w| w.0))
}

/// Checks a routing weight: strictly between 0 and 1, as Lambda requires.
pub fn validate_weight(weight: f64) -> Result<f64, ValidationError> {
    if weight.is_finite() && weight > 0.0 && weight < 1.0 {
        Ok(weight)
    } else {
        Err(ValidationError::InvalidWeight(weight.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_names() {
        for ok in ["live", "prod-2", "Blue_Green", "a"] {
            assert_eq!(ok.parse::<AliasName>().unwrap().as_str(), ok);
        }
        for bad in ["", "3", "1abc", "latest", "LATEST", "$LATEST", "a:b", "a b", &"a".repeat(129)] {
            assert_eq!(bad.parse::<AliasName>().unwrap_err().code(), "InvalidAliasName", "{bad}");
        }
    }

    #[test]
    fn targets_name_a_function_and_maybe_a_version_or_alias() {
        let t: FunctionTarget = "orders:live".parse().unwrap();
        assert_eq!((t.function.as_str(), t.selector.qualifier().as_deref()), ("orders", Some("live")));
        assert_eq!(t.to_string(), "orders:live");
        assert_eq!("orders".parse::<FunctionTarget>().unwrap().selector, crate::VersionSelector::Latest);
        assert_eq!("orders:3".parse::<FunctionTarget>().unwrap().to_string(), "orders:3");
        assert_eq!("orders:$LATEST".parse::<FunctionTarget>().unwrap().to_string(), "orders");
        assert_eq!("Orders".parse::<FunctionTarget>().unwrap_err().code(), "InvalidFunctionName");
        for bad in ["orders:", "orders:1x", "orders:a:b"] {
            assert_eq!(bad.parse::<FunctionTarget>().unwrap_err().code(), "InvalidTarget", "{bad}");
        }
    }

    #[test]
    fn weighted_routing_sends_the_weight_to_the_additional_version() {
        let now = Utc::now();
        let alias = Alias {
            function: "f".parse().unwrap(),
            name: "live".parse().unwrap(),
            version: 3,
            additional_version: Some(AdditionalVersion { version: 4, weight: 0.1 }),
            description: String::new(),
            revision: 1,
            created_at: now,
            updated_at: now,
        };
        assert_eq!((alias.route(0.0), alias.route(0.099), alias.route(0.1), alias.route(0.999)), (4, 4, 3, 3));
        assert_eq!(Alias { additional_version: None, ..alias }.route(0.0), 3);
        for bad in [0.0, 1.0, -0.5, f64::NAN, f64::INFINITY] {
            assert_eq!(validate_weight(bad).unwrap_err().code(), "InvalidWeight");
        }
        assert_eq!(validate_weight(0.25).unwrap(), 0.25);
        // Whole numbers written with a fraction are versions too; others are refused.
        let extra: AdditionalVersion = serde_json::from_str(r#"{"version": 4.0, "weight": 0.5}"#).unwrap();
        assert_eq!(extra.version, 4);
        for bad in [
            r#"{"version": 4.5, "weight": 0.5}"#,
            r#"{"version": -1, "weight": 0.5}"#,
            r#"{"version": 5e9, "weight": 0.5}"#,
        ] {
            assert!(serde_json::from_str::<AdditionalVersion>(bad).is_err(), "{bad}");
        }
    }
}
