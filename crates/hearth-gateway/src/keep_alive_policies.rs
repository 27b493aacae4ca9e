//! The keep-alive policies of the functions this gateway has served, one per function and
//! policy setting, shared by the function's versions so that what a policy learned survives
//! a deploy; forgotten when the function is deleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hearth_types::{FunctionId, KeepAlivePolicyKind};

use crate::version_pool::SharedPolicy;

/// A policy's identity: the function, its kind and its fixed keep-alive.
type PolicyKey = (FunctionId, KeepAlivePolicyKind, u32);

#[derive(Default)]
pub struct KeepAlivePolicies {
    policies: Mutex<HashMap<PolicyKey, SharedPolicy>>,
}

impl KeepAlivePolicies {
    fn lock(&self) -> MutexGuard<'_, HashMap<PolicyKey, SharedPolicy>> {
        self.policies.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The function's policy of this kind, made on first use (`adaptive_bin` is the adaptive
    /// policy's histogram bin).
    pub fn get(
        &self,
        function: FunctionId,
        kind: KeepAlivePolicyKind,
        keep_alive_s: u32,
        adaptive_bin: Duration,
    ) -> SharedPolicy {
        self.lock()
            .entry((function, kind, keep_alive_s))
            .or_insert_with(|| {
                let keep_alive = Duration::from_secs(keep_alive_s.into());
                Arc::new(Mutex::new(hearth_scale::keep_alive_policy(kind, keep_alive, adaptive_bin)))
            })
            .clone()
    }

    /// Drops what the policies of deleted functions learned.
    pub fn forget(&self, functions: &[FunctionId]) {
        self.lock().retain(|(id, ..), _| !functions.contains(id));
    }
}
