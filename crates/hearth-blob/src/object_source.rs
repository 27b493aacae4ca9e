use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStoreExt, RetryConfig};

use crate::PackageError;

/// Where and how to reach an S3-compatible store for `s3://bucket/key` code URLs.
///
/// Nothing here comes from the environment by itself: `hearth up`'s configuration fills it in
/// (`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` included, when no keys are configured).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// e.g. `http://127.0.0.1:9000` for MinIO or another S3-compatible server.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Sent with the keys when they are temporary credentials.
    pub session_token: Option<String>,
    /// Allow plain-HTTP endpoints (local stores).
    pub allow_http: bool,
    /// With no keys configured, let the standard AWS credential chain run: web identity,
    /// container credentials and the instance metadata service (169.254.169.254). Off by
    /// default, so that a deploy token naming an `s3://` URL never makes the server call them.
    pub instance_metadata: bool,
    /// The buckets `s3://` URLs may name; `None` allows any bucket.
    pub buckets: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectSourceError {
    #[error("invalid object URL {0:?}: expected s3://bucket/key")]
    InvalidUrl(String),
    #[error(
        "this server has no S3 settings, so it does not fetch s3:// URLs: set an endpoint and/or \
         keys in the [s3] section of the server's config file or with HEARTH_S3_ENDPOINT, \
         HEARTH_S3_ACCESS_KEY_ID and HEARTH_S3_SECRET_ACCESS_KEY (or upload the zip itself)"
    )]
    NotConfigured,
    #[error("bucket {0:?} is not one this server fetches code from (see [s3] buckets / HEARTH_S3_BUCKETS)")]
    BucketNotAllowed(String),
    #[error("object {0} does not exist")]
    NotFound(String),
    #[error("access to object {0} was denied: check the S3 credentials in the server configuration")]
    AccessDenied(String),
    #[error(transparent)]
    TooLarge(PackageError),
    #[error("fetching {url} failed: {reason}")]
    Failed { url: String, reason: String },
}

impl ObjectSourceError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUrl(_) => "InvalidObjectUrl",
            Self::NotConfigured => "S3NotConfigured",
            Self::BucketNotAllowed(_) => "S3BucketNotAllowed",
            Self::NotFound(_) => "CodeObjectNotFound",
            Self::AccessDenied(_) => "CodeObjectAccessDenied",
            Self::TooLarge(e) => e.code(),
            Self::Failed { .. } => "CodeObjectFetchFailed",
        }
    }
}

/// How a fetch authenticates to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// The configured keys, and nothing else.
    Keys,
    /// Unsigned requests to the configured endpoint (e.g. a public bucket): no credential lookup.
    Unsigned,
    /// The standard AWS credential chain, instance metadata included: only when enabled.
    CredentialChain,
}

/// Decides, from the settings alone and before any client exists, whether `bucket` may be
/// fetched and how. Every refusal happens here, so a refused URL causes no network traffic.
fn access(s3: &S3Settings, bucket: &str) -> Result<Access, ObjectSourceError> {
    let access = if s3.access_key_id.is_some() || s3.secret_access_key.is_some() {
        Access::Keys
    } else if s3.instance_metadata {
        Access::CredentialChain
    } else if s3.endpoint.is_some() {
        Access::Unsigned
    } else {
        return Err(ObjectSourceError::NotConfigured);
    };
    if let Some(allowed) = &s3.buckets
        && !allowed.iter().any(|b| b == bucket)
    {
        return Err(ObjectSourceError::BucketNotAllowed(bucket.to_owned()));
    }
    Ok(access)
}

/// Fetches code packages named by object URLs.
#[derive(Debug, Clone, Default)]
pub struct ObjectSource {
    s3: S3Settings,
}

impl ObjectSource {
    pub fn new(s3: S3Settings) -> Self {
        Self { s3 }
    }

    /// Fetches the object at `url`, refusing objects over `max_bytes` before downloading.
    /// With S3 not configured, or a bucket outside the allow-list, it refuses before any I/O.
    pub async fn fetch(&self, url: &str, max_bytes: u64) -> Result<Bytes, ObjectSourceError> {
        let (bucket, key) = parse_s3_url(url)?;
        let access = access(&self.s3, bucket)?;
        let failed = |e: object_store::Error| match e {
            object_store::Error::NotFound { .. } => ObjectSourceError::NotFound(url.to_owned()),
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                ObjectSourceError::AccessDenied(url.to_owned())
            }
            other => ObjectSourceError::Failed { url: url.to_owned(), reason: other.to_string() },
        };
        let store = self.client(bucket, access).map_err(failed)?;
        let path = ObjectPath::from(key);
        let meta = store.head(&path).await.map_err(failed)?;
        let too_large = |got| ObjectSourceError::TooLarge(PackageError::TooLarge { got, max: max_bytes });
        if meta.size > max_bytes {
            return Err(too_large(meta.size));
        }
        let bytes = store.get(&path).await.map_err(failed)?.bytes().await.map_err(failed)?;
        if bytes.len() as u64 > max_bytes {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(bytes)
    }

    /// A client of `bucket`. Only [`Access::CredentialChain`] reads the `AWS_*` environment;
    /// otherwise the builder starts empty, so no credential provider is ever consulted.
    fn client(&self, bucket: &str, access: Access) -> object_store::Result<AmazonS3> {
        // Bounded retries and timeouts: a misconfigured endpoint fails the upload in seconds
        // instead of holding the request for minutes.
        let retry = RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(20), ..Default::default() };
        let client =
            ClientOptions::new().with_connect_timeout(Duration::from_secs(5)).with_timeout(Duration::from_secs(60));
        let builder = match access {
            Access::CredentialChain => AmazonS3Builder::from_env(),
            Access::Keys | Access::Unsigned => AmazonS3Builder::new(),
        };
        let mut builder = builder.with_bucket_name(bucket).with_retry(retry).with_client_options(client);
        let s3 = &self.s3;
        if let Some(v) = &s3.endpoint {
            builder = builder.with_endpoint(v);
        }
        if let Some(v) = &s3.region {
            builder = builder.with_region(v);
        }
        if s3.allow_http {
            builder = builder.with_allow_http(true);
        }
        match access {
            Access::Keys => {
                if let Some(v) = &s3.access_key_id {
                    builder = builder.with_access_key_id(v);
                }
                if let Some(v) = &s3.secret_access_key {
                    builder = builder.with_secret_access_key(v);
                }
                if let Some(v) = &s3.session_token {
                    builder = builder.with_token(v);
                }
            }
            Access::Unsigned => builder = builder.with_skip_signature(true),
            Access::CredentialChain => {}
        }
        builder.build()
    }
}

fn parse_s3_url(url: &str) -> Result<(&str, &str), ObjectSourceError> {
    let invalid = || ObjectSourceError::InvalidUrl(url.to_owned());
    let rest = url.strip_prefix("s3://").ok_or_else(invalid)?;
    let (bucket, key) = rest.split_once('/').ok_or_else(invalid)?;
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !bucket_ok || key.is_empty() || key.ends_with('/') {
        return Err(invalid());
    }
    Ok((bucket, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_urls() {
        assert_eq!(parse_s3_url("s3://my-bucket/a/b.zip").unwrap(), ("my-bucket", "a/b.zip"));
        for bad in ["http://x/y", "s3://bucket", "s3://bucket/", "s3://B/x", "s3:///x"] {
            assert!(parse_s3_url(bad).is_err(), "{bad}");
        }
    }

    fn keys() -> S3Settings {
        S3Settings { access_key_id: Some("id".into()), secret_access_key: Some("secret".into()), ..Default::default() }
    }

    #[test]
    fn access_is_decided_from_the_settings_alone() {
        let endpoint = S3Settings { endpoint: Some("http://127.0.0.1:1".into()), ..Default::default() };
        let chain = S3Settings { instance_metadata: true, ..Default::default() };
        let cases = [
            ("nothing configured", S3Settings::default(), Err("S3NotConfigured")),
            (
                "region alone",
                S3Settings { region: Some("eu-west-1".into()), ..Default::default() },
                Err("S3NotConfigured"),
            ),
            ("keys", keys(), Ok(Access::Keys)),
            ("endpoint without keys", endpoint.clone(), Ok(Access::Unsigned)),
            ("instance metadata enabled", chain.clone(), Ok(Access::CredentialChain)),
            ("keys win over the chain", S3Settings { instance_metadata: true, ..keys() }, Ok(Access::Keys)),
            (
                "chain with an endpoint",
                S3Settings { instance_metadata: true, ..endpoint.clone() },
                Ok(Access::CredentialChain),
            ),
        ];
        for (what, settings, want) in cases {
            assert_eq!(access(&settings, "code").map_err(|e| e.code()), want, "{what}");
        }
    }

    #[test]
    fn the_bucket_allow_list_is_checked_before_any_client_exists() {
        let only = |s: S3Settings| S3Settings { buckets: Some(vec!["code".into(), "more-code".into()]), ..s };
        assert_eq!(access(&only(keys()), "code").unwrap(), Access::Keys);
        assert_eq!(access(&only(keys()), "more-code").unwrap(), Access::Keys);
        let err = access(&only(keys()), "other").unwrap_err();
        assert_eq!((err.code(), err.to_string().contains("\"other\"")), ("S3BucketNotAllowed", true));
        let none = S3Settings { buckets: Some(vec![]), ..keys() };
        assert_eq!(access(&none, "code").unwrap_err().code(), "S3BucketNotAllowed", "an empty list allows none");
        let err = access(&only(S3Settings::default()), "code").unwrap_err();
        assert_eq!(err.code(), "S3NotConfigured", "a list alone does not configure S3");
    }

    #[tokio::test]
    async fn fetch_refuses_before_building_a_client() {
        // Both refusals come from `access`, which `fetch` consults before `client`: no client
        // is built, so no request is sent (the one endpoint named here is a closed loopback port).
        let err = ObjectSource::default().fetch("s3://code/a.zip", 1024).await.unwrap_err();
        assert_eq!(err.code(), "S3NotConfigured");
        assert!(err.to_string().contains("[s3]") && err.to_string().contains("HEARTH_S3_ENDPOINT"), "{err}");
        let only = S3Settings {
            endpoint: Some("http://127.0.0.1:1".into()),
            allow_http: true,
            buckets: Some(vec!["code".into()]),
            ..keys()
        };
        let err = ObjectSource::new(only).fetch("s3://other/a.zip", 1024).await.unwrap_err();
        assert_eq!(err.code(), "S3BucketNotAllowed");
    }
}
