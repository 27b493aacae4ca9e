//! The one place that turns configuration and code changes into functions and versions.
//!
//! Rule: a write that leaves a function with code and changes its configuration or code
//! appends a new immutable version; a write that changes nothing appends nothing. Writes
//! are optimistic (read, decide, save-if-unchanged) and retried on conflict.

use chrono::Utc;
use hearth_store::{Expect, MetadataStore, StoreError};
use hearth_types::{CodeRef, Function, FunctionConfig, FunctionId, FunctionName, FunctionSpec, Version};

use crate::ApiError;

/// Each round of a write race has a winner, so N concurrent writers need at most N
/// attempts; the bound is generous and the backoff keeps losers from spinning.
const ATTEMPTS: u32 = 64;

/// The result of a deploy write.
pub struct Deployed {
    pub function: Function,
    /// The version this write appended, if any.
    pub new_version: Option<Version>,
    pub created: bool,
}

/// Creates a function or replaces its configuration, and its code too when `code` is given
/// (one version for both).
pub async fn put_config(
    store: &dyn MetadataStore,
    name: &FunctionName,
    config: FunctionConfig,
    code: Option<CodeRef>,
) -> Result<Deployed, ApiError> {
    apply(store, name, |_| Ok(Some(config.clone())), code).await
}

/// Replaces the code of an existing function.
pub async fn put_code(store: &dyn MetadataStore, name: &FunctionName, code: CodeRef) -> Result<Deployed, ApiError> {
    apply(store, name, |_| Ok(None), Some(code)).await
}

/// Changes an existing function's configuration by a JSON merge patch (see
/// [`FunctionSpec::patched`]), and its code too when `code` is given: one version for both.
/// The patch applies to the configuration the function has when the write is made, so two
/// concurrent patches of different fields both land.
pub async fn patch_config(
    store: &dyn MetadataStore,
    name: &FunctionName,
    patch: &serde_json::Value,
    code: Option<CodeRef>,
) -> Result<Deployed, ApiError> {
    let patched = |current: &FunctionConfig| -> Result<FunctionConfig, ApiError> {
        let spec = FunctionSpec::patched(current, patch)
            .map_err(|e| ApiError::bad_request("InvalidRequestBody", e.to_string()))?;
        Ok(spec.validate()?)
    };
    update_config(store, name, patched, code).await
}

/// Creates a function that must not exist yet (Lambda's `CreateFunction`), with its code.
pub async fn create(
    store: &dyn MetadataStore,
    name: &FunctionName,
    config: FunctionConfig,
    code: Option<CodeRef>,
) -> Result<Deployed, ApiError> {
    let new_only = |current: Option<&FunctionConfig>| match current {
        Some(_) => Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "FunctionExists",
            format!("Function already exist: {name}"),
        )),
        None => Ok(Some(config.clone())),
    };
    apply(store, name, new_only, code).await
}

/// Changes an existing function's configuration by `change`, applied to the configuration
/// it has when the write is made (so concurrent changes of different settings all land),
/// and its code too when `code` is given: one version for both.
pub async fn update_config(
    store: &dyn MetadataStore,
    name: &FunctionName,
    change: impl Fn(&FunctionConfig) -> Result<FunctionConfig, ApiError>,
    code: Option<CodeRef>,
) -> Result<Deployed, ApiError> {
    let changed = |current: Option<&FunctionConfig>| {
        let current = current.ok_or_else(|| ApiError::function_not_found(name.as_str()))?;
        change(current).map(Some)
    };
    apply(store, name, changed, code).await
}

/// One optimistic write: `config_of` gives the configuration to write from the current one
/// (`None` when the function does not exist yet), or `None` to keep it.
async fn apply(
    store: &dyn MetadataStore,
    name: &FunctionName,
    config_of: impl Fn(Option<&FunctionConfig>) -> Result<Option<FunctionConfig>, ApiError>,
    code: Option<CodeRef>,
) -> Result<Deployed, ApiError> {
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            // Lost the race: back off a little more each time (at most ~2 s in all).
            tokio::time::sleep(std::time::Duration::from_millis(u64::from(attempt))).await;
        }
        let now = Utc::now();
        let current = store.get_function(name).await?;
        let config = config_of(current.as_ref().map(|f| &f.config))?;
        let (mut next, expect, created) = match (current, &config) {
            (None, None) => return Err(ApiError::function_not_found(name.as_str())),
            (None, Some(config)) => {
                let f = Function {
                    id: FunctionId::new(),
                    name: name.clone(),
                    config: config.clone(),
                    code: code.clone(),
                    latest_version: None,
                    revision: 0,
                    created_at: now,
                    updated_at: now,
                };
                (f, Expect::Absent, true)
            }
            (Some(cur), _) => {
                let config_same = config.as_ref().is_none_or(|c| &cur.config == c);
                let code_same = code.is_none() || cur.code == code;
                if config_same && code_same {
                    return Ok(Deployed { function: cur, new_version: None, created: false });
                }
                let expect = Expect::Revision(cur.revision);
                let mut f = cur;
                if let Some(c) = &config {
                    f.config = c.clone();
                }
                if code.is_some() {
                    f.code = code.clone();
                }
                (f, expect, false)
            }
        };
        next.revision += 1;
        next.updated_at = now;
        let version = next.code.clone().map(|code| {
            let number = next.latest_version.unwrap_or(0) + 1;
            next.latest_version = Some(number);
            Version {
                function_id: next.id,
                function: next.name.clone(),
                number,
                config: next.config.clone(),
                code,
                created_at: now,
            }
        });
        match store.save_function(&next, expect, version.as_ref()).await {
            Ok(()) => {
                return Ok(Deployed { function: next, new_version: version, created });
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}
