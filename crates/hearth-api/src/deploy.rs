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

/// What a write is checked against, inside the write, with the configuration and code it
/// is about to save (so no concurrent change can slip a combination past it): see
/// `admission.rs`. Every attempt of the optimistic loop asks again.
#[async_trait::async_trait]
pub trait Admit: Send + Sync {
    async fn admit(&self, config: &FunctionConfig, code: Option<&CodeRef>) -> Result<(), ApiError>;
}

/// Admits everything: for tests and tools that write fixtures.
pub struct AdmitAll;

#[async_trait::async_trait]
impl Admit for AdmitAll {
    async fn admit(&self, _: &FunctionConfig, _: Option<&CodeRef>) -> Result<(), ApiError> {
        Ok(())
    }
}

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
    admit: &dyn Admit,
    name: &FunctionName,
    config: FunctionConfig,
    code: Option<CodeRef>,
) -> Result<Deployed, ApiError> {
    apply(store, admit, name, |_| Ok(Some(config.clone())), code).await
}

/// A `RevisionId`-style precondition: the function must be at `wanted` (412
/// `RevisionMismatch` otherwise). Checked inside the write by [`update_config`]'s callers.
pub fn revision_matches(f: &Function, wanted: Option<&str>) -> Result<(), ApiError> {
    match wanted {
        Some(r) if r != f.revision.to_string() => Err(ApiError::new(
            axum::http::StatusCode::PRECONDITION_FAILED,
            "RevisionMismatch",
            format!(
                "The Revision Id provided does not match the latest Revision Id ({}). Call GetFunction to get the latest Revision Id",
                f.revision
            ),
        )),
        _ => Ok(()),
    }
}

/// Replaces the code of an existing function.
pub async fn put_code(
    store: &dyn MetadataStore,
    admit: &dyn Admit,
    name: &FunctionName,
    code: CodeRef,
) -> Result<Deployed, ApiError> {
    apply(store, admit, name, |_| Ok(None), Some(code)).await
}

/// Changes an existing function's configuration by a JSON merge patch (see
/// [`FunctionSpec::patched`]), and its code too when `code` is given: one version for both.
/// The patch applies to the configuration the function has when the write is made, so two
/// concurrent patches of different fields both land.
pub async fn patch_config(
    store: &dyn MetadataStore,
    admit: &dyn Admit,
    name: &FunctionName,
    patch: &serde_json::Value,
    code: Option<CodeRef>,
) -> Result<Deployed, ApiError> {
    let patched = |current: &Function| -> Result<FunctionConfig, ApiError> {
        let spec = FunctionSpec::patched(&current.config, patch)
            .map_err(|e| ApiError::bad_request("InvalidRequestBody", e.to_string()))?;
        Ok(spec.validate()?)
    };
    update_config(store, admit, name, patched, code).await
}

/// Creates a function that must not exist yet (Lambda's `CreateFunction`), with its code.
pub async fn create(
    store: &dyn MetadataStore,
    admit: &dyn Admit,
    name: &FunctionName,
    config: FunctionConfig,
    code: Option<CodeRef>,
) -> Result<Deployed, ApiError> {
    let new_only = |current: Option<&Function>| match current {
        Some(_) => Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "FunctionExists",
            format!("Function already exist: {name}"),
        )),
        None => Ok(Some(config.clone())),
    };
    apply(store, admit, name, new_only, code).await
}

/// Changes an existing function's configuration by `change`, applied to the function as it
/// is when the write is made (so concurrent changes of different settings all land, and a
/// precondition on its revision holds at the write itself), and its code too when `code` is
/// given: one version for both.
pub async fn update_config(
    store: &dyn MetadataStore,
    admit: &dyn Admit,
    name: &FunctionName,
    change: impl Fn(&Function) -> Result<FunctionConfig, ApiError>,
    code: Option<CodeRef>,
) -> Result<Deployed, ApiError> {
    let changed = |current: Option<&Function>| {
        let current = current.ok_or_else(|| ApiError::function_not_found(name.as_str()))?;
        change(current).map(Some)
    };
    apply(store, admit, name, changed, code).await
}

/// A function cannot be its own destination: every failure would queue another event for it.
fn refuse_self_destination(name: &FunctionName, config: &FunctionConfig) -> Result<(), ApiError> {
    for (field, to) in [("on_success", &config.events.on_success), ("on_failure", &config.events.on_failure)] {
        if to.as_ref().is_some_and(|t| &t.function == name) {
            return Err(ApiError::bad_request(
                "InvalidParameterValue",
                format!("{field} names the function itself; choose another function (or none)"),
            ));
        }
    }
    Ok(())
}

/// One optimistic write: `config_of` gives the configuration to write from the current
/// function (`None` when it does not exist yet), or `None` to keep it.
async fn apply(
    store: &dyn MetadataStore,
    admit: &dyn Admit,
    name: &FunctionName,
    config_of: impl Fn(Option<&Function>) -> Result<Option<FunctionConfig>, ApiError>,
    code: Option<CodeRef>,
) -> Result<Deployed, ApiError> {
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            // Lost the race: back off a little more each time (at most ~2 s in all).
            tokio::time::sleep(std::time::Duration::from_millis(u64::from(attempt))).await;
        }
        let now = Utc::now();
        let current = store.get_function(name).await?;
        let config = config_of(current.as_ref())?;
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
        refuse_self_destination(name, &next.config)?;
        admit.admit(&next.config, next.code.as_ref()).await?;
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

#[cfg(test)]
mod tests {
    use hearth_store::MemoryStore;
    use hearth_types::{CodeDigest, FunctionSpec};

    use super::*;

    fn config(memory_mb: i64) -> FunctionConfig {
        let spec = FunctionSpec {
            runtime: "python3".into(),
            handler: Some("main.handler".into()),
            memory_mb: Some(memory_mb),
            ..Default::default()
        };
        spec.validate().unwrap()
    }

    #[tokio::test]
    async fn a_revision_precondition_holds_at_the_write_itself() {
        let store = MemoryStore::new();
        let name: FunctionName = "f".parse().unwrap();
        let code = CodeRef { sha256: CodeDigest::of(b"zip"), size_bytes: 3 };
        let d = put_config(&store, &AdmitAll, &name, config(128), Some(code)).await.unwrap();
        let seen = d.function.revision.to_string();
        // Another write lands between the caller's read and its write.
        put_config(&store, &AdmitAll, &name, config(256), None).await.unwrap();
        let stale = |current: &Function| {
            revision_matches(current, Some(&seen))?;
            Ok(config(512))
        };
        let e = update_config(&store, &AdmitAll, &name, stale, None).await.err().expect("a stale revision is refused");
        assert_eq!((e.status.as_u16(), e.code), (412, "RevisionMismatch"));
        let now = store.get_function(&name).await.unwrap().unwrap();
        assert_eq!((now.config.memory_mb, now.latest_version), (256, Some(2)), "nothing was written");
        let fresh = now.revision.to_string();
        let current = |f: &Function| {
            revision_matches(f, Some(&fresh))?;
            Ok(config(512))
        };
        let d = update_config(&store, &AdmitAll, &name, current, None).await.unwrap();
        assert_eq!((d.function.config.memory_mb, d.new_version.map(|v| v.number)), (512, Some(3)));
    }
}
