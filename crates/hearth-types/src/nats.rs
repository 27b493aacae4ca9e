//! NATS triggers: a function invoked for the messages on a NATS subject, either as they are
//! published (core NATS, through the durable event queue) or from a JetStream stream through
//! a durable consumer (acknowledged only once the function succeeded).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{FunctionName, TriggerId, ValidationError};

/// Longest server address, subject, and stream or consumer name, in bytes.
pub const NATS_SERVER_MAX_LEN: usize = 512;
pub const NATS_SUBJECT_MAX_LEN: usize = 256;
pub const NATS_NAME_MAX_LEN: usize = 64;
/// Messages handed to one invocation at most (`--batch`).
pub const NATS_BATCH_MAX: u32 = 100;

/// A NATS trigger as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NatsTrigger {
    pub id: TriggerId,
    pub function: FunctionName,
    /// The version number or alias it invokes; absent: `$LATEST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    /// `nats://host:port` or `tls://host:port`, without its credentials.
    #[schema(example = "nats://127.0.0.1:4222")]
    pub server: String,
    /// `user:password` or a token, from the address given; stored, never shown.
    #[serde(skip)]
    #[schema(ignore)]
    pub credentials: Option<String>,
    #[schema(example = "orders.>")]
    pub subject: String,
    /// The JetStream stream; absent: a core NATS subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The durable consumer (made if it does not exist); with a stream only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    /// Messages per invocation, at most.
    pub batch: u32,
    pub created_at: DateTime<Utc>,
}

impl NatsTrigger {
    /// The durable consumer's name: the one given, else one of the trigger's own.
    pub fn consumer_name(&self) -> String {
        self.consumer.clone().unwrap_or_else(|| format!("hearth-{}", self.id))
    }

    /// The address to connect to, credentials included.
    pub fn connect_url(&self) -> String {
        match (&self.credentials, self.server.split_once("://")) {
            (Some(c), Some((scheme, rest))) => format!("{scheme}://{c}@{rest}"),
            _ => self.server.clone(),
        }
    }
}

/// A server address split into what is shown and the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsServer {
    pub server: String,
    pub credentials: Option<String>,
}

impl std::str::FromStr for NatsServer {
    type Err = ValidationError;

    /// `nats://[user:password@|token@]host[:port]` (or `tls://`); the port defaults to 4222.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // The address as the error shows it: never its credentials.
        let shown = match (s.split_once("://"), s.rfind('@')) {
            (Some((scheme, _)), Some(at)) => format!("{scheme}://***{}", &s[at..]),
            (None, Some(at)) => format!("***{}", &s[at..]),
            _ => s.to_owned(),
        };
        let bad = |why: &str| ValidationError::InvalidNatsServer(crate::event_text(shown.as_bytes()).0, why.to_owned());
        if s.len() > NATS_SERVER_MAX_LEN {
            return Err(bad("longer than 512 bytes"));
        }
        let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("expected nats://host:port"))?;
        if scheme != "nats" && scheme != "tls" {
            return Err(bad("the scheme must be nats:// or tls://"));
        }
        let (credentials, host_port) = match rest.rsplit_once('@') {
            Some((c, h)) if !c.is_empty() => (Some(c.to_owned()), h),
            Some(_) => return Err(bad("empty credentials before '@'")),
            None => (None, rest),
        };
        if host_port.is_empty() || !host_port.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)) {
            return Err(bad("expected a host and an optional port, no path or query"));
        }
        let (host, port) = match host_port.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && !p.contains(']') => {
                let port: u16 = p.parse().map_err(|_| bad("the port must be a number from 1 to 65535"))?;
                if port == 0 {
                    return Err(bad("the port must be a number from 1 to 65535"));
                }
                (h, port)
            }
            _ => (host_port, 4222),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Self { server: format!("{scheme}://{host}:{port}"), credentials })
    }
}

/// Checks a subject: dot-separated tokens, `*` a whole token, `>` the last token only.
pub fn validate_subject(subject: &str) -> Result<(), ValidationError> {
    let bad = |why: &str| ValidationError::InvalidSubject(crate::event_text(subject.as_bytes()).0, why.to_owned());
    if subject.is_empty() || subject.len() > NATS_SUBJECT_MAX_LEN {
        return Err(bad("1 to 256 bytes"));
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return Err(bad("empty token (two dots, or a dot at an end)"));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("no spaces or control characters"));
        }
        if token.contains('>') && (*token != ">" || i + 1 != tokens.len()) {
            return Err(bad("'>' only as the whole last token"));
        }
        if token.contains('*') && *token != "*" {
            return Err(bad("'*' only as a whole token"));
        }
    }
    Ok(())
}

/// Checks a stream or consumer name: 1-64 letters, digits, `_` and `-`.
pub fn validate_nats_name(name: &str) -> Result<(), ValidationError> {
    if name.is_empty()
        || name.len() > NATS_NAME_MAX_LEN
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ValidationError::InvalidNatsName(crate::event_text(name.as_bytes()).0));
    }
    Ok(())
}

/// Checks a batch size: 1 to [`NATS_BATCH_MAX`].
pub fn validate_batch(batch: u32) -> Result<(), ValidationError> {
    if batch == 0 || batch > NATS_BATCH_MAX {
        return Err(ValidationError::InvalidBatchSize(batch));
    }
    Ok(())
}

/// How a NATS trigger's consumer is doing on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NatsTriggerStatus {
    /// Connecting, or waiting to connect again.
    Connecting,
    /// Subscribed, or pulling from its consumer.
    Consuming,
    /// Its stream or consumer cannot be used (see `error`); tried again periodically.
    Failing,
}

/// A NATS trigger with how it is doing (what `GET /v1/nats-triggers` lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NatsTriggerState {
    #[serde(flatten)]
    pub trigger: NatsTrigger,
    /// Credentials were given with the address (they are never shown).
    pub authenticated: bool,
    pub status: NatsTriggerStatus,
    /// The last connection or consumer error, if the trigger is not consuming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Messages received since this server started.
    pub received: u64,
    /// Messages whose processing ended: succeeded (acknowledged, or queued as an event for a
    /// core subject).
    pub handled: u64,
    /// Messages that went to the dead-letter list or the on-failure function.
    pub dead_lettered: u64,
    /// Core NATS messages dropped because the function's event queue was full.
    pub dropped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_keep_credentials_apart() {
        let s: NatsServer = "nats://alice:s3cret@127.0.0.1:4223".parse().unwrap();
        assert_eq!(s.server, "nats://127.0.0.1:4223");
        assert_eq!(s.credentials.as_deref(), Some("alice:s3cret"));
        let s: NatsServer = "tls://nats.example".parse().unwrap();
        assert_eq!((s.server.as_str(), s.credentials), ("tls://nats.example:4222", None));
        let s: NatsServer = "nats://[::1]:4222".parse().unwrap();
        assert_eq!(s.server, "nats://[::1]:4222");
        for bad in [
            "127.0.0.1:4222",
            "http://h:1",
            "nats://",
            "nats://h:0",
            "nats://h:99999",
            "nats://h/x",
            "nats://h?x=1",
            "nats://@h",
            "nats://h :1",
        ] {
            assert_eq!(bad.parse::<NatsServer>().unwrap_err().code(), "InvalidNatsServer", "{bad}");
        }
        let e = "nats://alice:pa55-SECRET@127.0.0.1:4222/path".parse::<NatsServer>().unwrap_err();
        assert!(!e.to_string().contains("SECRET") && e.to_string().contains("***@127.0.0.1"), "{e}");
        let long = format!("nats://{}", "a".repeat(600));
        assert!(long.parse::<NatsServer>().is_err());
        let t = NatsTrigger {
            id: TriggerId::new(),
            function: "f".parse().unwrap(),
            qualifier: None,
            server: "nats://127.0.0.1:4223".into(),
            credentials: Some("alice:s3cret".into()),
            subject: "a".into(),
            stream: None,
            consumer: None,
            batch: 1,
            created_at: Utc::now(),
        };
        assert_eq!(t.connect_url(), "nats://alice:s3cret@127.0.0.1:4223");
        assert!(!serde_json::to_string(&t).unwrap().contains("s3cret"));
    }

    #[test]
    fn subjects_names_and_batches_are_checked() {
        for ok in ["orders", "orders.>", "orders.*.eu", "*", ">", "a-b_c.D9"] {
            validate_subject(ok).unwrap();
        }
        for bad in ["", "a..b", ".a", "a.", "a b", "a.>.b", "a>", "a*.b", "a.\n"] {
            assert_eq!(validate_subject(bad).unwrap_err().code(), "InvalidSubject", "{bad:?}");
        }
        assert!(validate_subject(&"a".repeat(257)).is_err());
        validate_nats_name("ORDERS_1-x").unwrap();
        for bad in ["", "a.b", "a b", "a*", "a>", "a/b", &"x".repeat(65)] {
            assert_eq!(validate_nats_name(bad).unwrap_err().code(), "InvalidNatsName", "{bad:?}");
        }
        validate_batch(1).unwrap();
        validate_batch(100).unwrap();
        assert_eq!(validate_batch(0).unwrap_err().code(), "InvalidBatchSize");
        assert_eq!(validate_batch(101).unwrap_err().code(), "InvalidBatchSize");
    }
}
