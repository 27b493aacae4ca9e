//! The one place that turns configuration and code changes into functions and versions.
//!
//! Rule: a write that leaves a function with code and changes its configuration or code
//! appends a new immutable version; a write that changes nothing appends nothing. Writes
//! are optimistic (read, decide, save-if-unchanged) and retried on conflict.

use chrono::Utc;
use hearth_store::{Expect, MetadataStore, StoreError};
use hearth_types::{CodeRef, Function, FunctionConfig, FunctionId, FunctionName, Version};

use crate::ApiError;

const ATTEMPTS: usize = 8;

/// The result of a deploy write.
pub struct Deployed {
    pub function: Function,
    /// The version this write appended, if any.
    pub new_version: Option<Version>,
    pub created: bool,
}

enum Change {
    Config(FunctionConfig),
    Code(CodeRef),
}

pub async fn put_config(
    store: &dyn MetadataStore,
    name: &FunctionName,
    config: FunctionConfig,
) -> Result<Deployed, ApiError> {
    apply(store, name, Change::Config(config)).await
}

pub async fn put_code(
    store: &dyn MetadataStore,
    name: &FunctionName,
    code: CodeRef,
) -> Result<Deployed, ApiError> {
    apply(store, name, Change::Code(code)).await
}

async fn apply(
    store: &dyn MetadataStore,
    name: &FunctionName,
    change: Change,
) -> Result<Deployed, ApiError> {
    for _ in 0..ATTEMPTS {
        let current = store.get_function(name).await?;
        let now = Utc::now();
        let (mut next, expect, created) = match (current, &change) {
            (None, Change::Code(_)) => return Err(ApiError::function_not_found(name.as_str())),
            (None, Change::Config(config)) => {
                let f = Function {
                    id: FunctionId::new(),
                    name: name.clone(),
                    config: config.clone(),
                    code: None,
                    latest_version: None,
                    revision: 0,
                    created_at: now,
                    updated_at: now,
                };
                (f, Expect::Absent, true)
            }
            (Some(cur), change) => {
                let unchanged = match change {
                    Change::Config(c) => &cur.config == c,
                    Change::Code(c) => cur.code.as_ref() == Some(c),
                };
                if unchanged {
                    return Ok(Deployed {
                        function: cur,
                        new_version: None,
                        created: false,
                    });
                }
                let expect = Expect::Revision(cur.revision);
                let mut f = cur;
                match change {
                    Change::Config(c) => f.config = c.clone(),
                    Change::Code(c) => f.code = Some(c.clone()),
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
                return Ok(Deployed {
                    function: next,
                    new_version: version,
                    created,
                });
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}
