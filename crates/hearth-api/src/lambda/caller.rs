//! Who calls the Lambda API: a Hearth token, given either as a bearer token or as the AWS
//! access key id of a SigV4-signed request (`aws_access_key_id = hth_...`, any secret). Only
//! token hashes are stored, so the signature itself cannot be checked; the token in the
//! `Credential` is as good as a bearer token, and both travel in the header.

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use hearth_types::Scope;

use super::LambdaError;
use crate::{AppState, Caller};

/// The region ARNs name when the request says none (an unsigned bearer-token request).
const DEFAULT_REGION: &str = "us-east-1";

/// An authenticated Lambda API caller: the region it signed for (its ARNs name it).
pub struct LambdaCaller {
    pub region: String,
}

impl LambdaCaller {
    /// Authenticates `parts` (a SigV4 access key that is a Hearth token counts as a bearer
    /// token) and checks `scope`.
    pub async fn authorize(parts: &mut Parts, state: &AppState, scope: Scope) -> Result<Self, LambdaError> {
        let credential = sigv4_credential(&parts.headers);
        if let Some((key, _)) = &credential {
            if !key.starts_with(crate::TOKEN_PREFIX) {
                return Err(LambdaError::new(
                    StatusCode::FORBIDDEN,
                    "UnrecognizedClientException",
                    "the access key id is not a Hearth token: use one (hth_...) as aws_access_key_id, with any secret",
                ));
            }
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {key}")) {
                parts.headers.insert(header::AUTHORIZATION, v);
            }
        }
        Caller::from_request_parts(parts, state).await?.require(scope)?;
        let region = credential.and_then(|(_, r)| r).unwrap_or_else(|| DEFAULT_REGION.to_owned());
        Ok(Self { region })
    }
}

/// The access key id and region of `Authorization: AWS4-HMAC-SHA256
/// Credential=KEY/date/region/service/aws4_request, ...`.
fn sigv4_credential(h: &HeaderMap) -> Option<(String, Option<String>)> {
    let auth = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let credential = rest.split(',').map(str::trim).find_map(|p| p.strip_prefix("Credential="))?;
    let mut parts = credential.split('/');
    let key = parts.next()?.to_owned();
    // A region as AWS names them (`eu-west-1`): it goes into ARNs.
    let region = parts
        .nth(1)
        .filter(|r| {
            !r.is_empty()
                && r.len() <= 32
                && r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        .map(str::to_owned);
    Some((key, region))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_key_and_region_of_a_sigv4_header() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=hth_abc/20261202/eu-west-1/lambda/aws4_request, SignedHeaders=host, Signature=00"
                .parse()
                .unwrap(),
        );
        assert_eq!(sigv4_credential(&h), Some(("hth_abc".into(), Some("eu-west-1".into()))));
        h.insert(
            header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=hth_abc/20261202/b:c:d/lambda/aws4_request, Signature=00".parse().unwrap(),
        );
        assert_eq!(sigv4_credential(&h), Some(("hth_abc".into(), None)), "a region that is not one is not used");
        h.insert(header::AUTHORIZATION, "Bearer hth_abc".parse().unwrap());
        assert_eq!(sigv4_credential(&h), None);
    }
}
