//! Bearer tokens with scopes. Secrets are `hth_` + 64 hex digits; only their sha256 is
//! stored. Verified tokens are cached briefly so authenticated hot paths do no store I/O.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::Utc;
use hearth_store::MetadataStore;
use hearth_types::{Scope, TokenId, TokenRecord};
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// What every token secret starts with.
pub const TOKEN_PREFIX: &str = "hth_";
/// How long a verified token is trusted without asking the store again. Bounds how late
/// another node notices a revocation; revocations on this node apply at once.
const CACHE_TTL: Duration = Duration::from_secs(30);

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Creates a token record and its secret (returned once, never stored).
pub fn mint_token(name: &str, scopes: Vec<Scope>) -> Result<(TokenRecord, String), ApiError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| ApiError::internal("no randomness for a token", e))?;
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(raw));
    let record = TokenRecord {
        id: TokenId::new(),
        name: name.to_owned(),
        scopes,
        secret_sha256: hash_secret(&secret),
        created_at: Utc::now(),
    };
    Ok((record, secret))
}

/// On first start (no tokens at all) creates an admin token and returns its secret.
pub async fn ensure_admin_token(store: &dyn MetadataStore) -> Result<Option<String>, ApiError> {
    if !store.list_tokens().await?.is_empty() {
        return Ok(None);
    }
    let (record, secret) = mint_token("admin", vec![Scope::Admin])?;
    store.insert_token(&record).await?;
    Ok(Some(secret))
}

#[derive(Default)]
pub(crate) struct TokenCache {
    entries: RwLock<HashMap<String, (TokenRecord, Instant)>>,
}

impl TokenCache {
    fn get(&self, hash: &str) -> Option<TokenRecord> {
        let map = self.entries.read().unwrap_or_else(|p| p.into_inner());
        map.get(hash).filter(|(_, at)| at.elapsed() < CACHE_TTL).map(|(t, _)| t.clone())
    }

    fn put(&self, record: TokenRecord) {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        map.insert(record.secret_sha256.clone(), (record, Instant::now()));
    }

    pub(crate) fn forget(&self, id: TokenId) {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (t, _)| t.id != id);
    }
}

/// The authenticated caller of a request.
pub struct Caller {
    pub token: TokenRecord,
}

impl Caller {
    /// Refuses with 403 unless the caller's token grants `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.token.grants(scope) {
            return Ok(());
        }
        let held: Vec<&str> = self.token.scopes.iter().map(|s| s.as_str()).collect();
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "InsufficientScope",
            format!(
                "this operation needs a token with the {scope} scope; token {:?} has [{}]. An admin can create one with `hearth token create --scope {scope}`",
                self.token.name,
                held.join(", "),
            ),
        ))
    }
}

/// The scope a route needs, as a type: `Authorized<needs::Deploy>` in a handler's
/// arguments admits only tokens granting it, so a route's scope is in its signature (and
/// `gateway/scopes.rs` checks every route against the OpenAPI document).
pub mod needs {
    use hearth_types::Scope;

    /// A scope as a type.
    pub trait Need: Send + Sync + 'static {
        const SCOPE: Scope;
    }
    macro_rules! need {
        ($($name:ident),*) => {$(
            #[doc = concat!("The `", stringify!($name), "` scope.")]
            pub struct $name;
            impl Need for $name {
                const SCOPE: Scope = Scope::$name;
            }
        )*};
    }
    need!(Read, Invoke, Deploy, Admin);
}

/// A caller whose token grants the scope `N`; any other is refused (401 without a valid
/// token, 403 `InsufficientScope` with one lacking the scope).
pub struct Authorized<N: needs::Need> {
    pub caller: Caller,
    _need: std::marker::PhantomData<N>,
}

impl<S, N> FromRequestParts<S> for Authorized<N>
where
    AppState: FromRef<S>,
    S: Send + Sync,
    N: needs::Need,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(N::SCOPE)?;
        Ok(Self { caller, _need: std::marker::PhantomData })
    }
}

impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        let Some(secret) = header.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "MissingToken",
                "no bearer token: send Authorization: Bearer <token> (the CLI reads it from its config or HEARTH_TOKEN)",
            ));
        };
        let invalid = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "InvalidToken",
                "the bearer token is not valid; it may have been deleted",
            )
        };
        if !secret.starts_with(TOKEN_PREFIX) {
            return Err(invalid());
        }
        let hash = hash_secret(secret);
        let cache = &state.inner.tokens;
        if let Some(token) = cache.get(&hash) {
            return Ok(Caller { token });
        }
        let token = state.inner.store.token_by_secret_hash(&hash).await?.ok_or_else(invalid)?;
        cache.put(token.clone());
        Ok(Caller { token })
    }
}
