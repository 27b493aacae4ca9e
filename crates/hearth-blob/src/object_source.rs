use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStoreExt, RetryConfig};

use crate::PackageError;

/// Where and how to reach an S3-compatible store for `s3://bucket/key` code URLs. Unset
/// fields fall back to the standard `AWS_*` environment variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// e.g. `http://127.0.0.1:9000` for MinIO or another S3-compatible server.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow plain-HTTP endpoints (local stores).
    pub allow_http: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectSourceError {
    #[error("invalid object URL {0:?}: expected s3://bucket/key")]
    InvalidUrl(String),
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
            Self::NotFound(_) => "CodeObjectNotFound",
            Self::AccessDenied(_) => "CodeObjectAccessDenied",
            Self::TooLarge(e) => e.code(),
            Self::Failed { .. } => "CodeObjectFetchFailed",
        }
    }
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
    pub async fn fetch(&self, url: &str, max_bytes: u64) -> Result<Bytes, ObjectSourceError> {
        let (bucket, key) = parse_s3_url(url)?;
        // Bounded retries and timeouts: a misconfigured endpoint fails the upload in seconds
        // instead of holding the request for minutes.
        let retry = RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(20), ..Default::default() };
        let client =
            ClientOptions::new().with_connect_timeout(Duration::from_secs(5)).with_timeout(Duration::from_secs(60));
        let mut builder =
            AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(retry).with_client_options(client);
        let s3 = &self.s3;
        if let Some(v) = &s3.endpoint {
            builder = builder.with_endpoint(v);
        }
        if let Some(v) = &s3.region {
            builder = builder.with_region(v);
        }
        if let Some(v) = &s3.access_key_id {
            builder = builder.with_access_key_id(v);
        }
        if let Some(v) = &s3.secret_access_key {
            builder = builder.with_secret_access_key(v);
        }
        if s3.allow_http {
            builder = builder.with_allow_http(true);
        }
        let failed = |e: object_store::Error| match e {
            object_store::Error::NotFound { .. } => ObjectSourceError::NotFound(url.to_owned()),
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                ObjectSourceError::AccessDenied(url.to_owned())
            }
            other => ObjectSourceError::Failed { url: url.to_owned(), reason: other.to_string() },
        };
        let store = builder.build().map_err(failed)?;
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
}
