//! What every kind of trigger checks before it is stored: its target exists, and neither its
//! function nor the node has reached its limit of that kind.

use axum::http::StatusCode;
use hearth_api::ApiError;
use hearth_types::{FunctionName, FunctionTarget};

use crate::apps::ServerState;

/// How many triggers of one kind a function, and the node, may have.
pub(crate) struct TriggerLimit {
    /// As the message names them (`cron triggers`).
    pub kind: &'static str,
    /// The error code past the limit.
    pub code: &'static str,
    pub per_function: usize,
    pub per_node: usize,
}

impl TriggerLimit {
    /// Refuses one more trigger of `function` when it or the node is at the limit;
    /// `existing` names the function of every trigger of this kind.
    pub fn check<'a>(
        &self,
        function: &FunctionName,
        existing: impl Iterator<Item = &'a FunctionName>,
    ) -> Result<(), ApiError> {
        let (mut of_function, mut all) = (0, 0);
        for f in existing {
            all += 1;
            of_function += usize::from(f == function);
        }
        if of_function < self.per_function && all < self.per_node {
            return Ok(());
        }
        let (kind, per_function, per_node) = (self.kind, self.per_function, self.per_node);
        Err(ApiError::new(
            StatusCode::CONFLICT,
            self.code,
            format!(
                "at most {per_function} {kind} per function and {per_node} in all ({of_function} on {function}, {all} in all); delete some first"
            ),
        ))
    }
}

/// The function a trigger targets exists, and so does the alias it names (an alias may
/// move later; it must exist now).
pub(crate) async fn target_exists(state: &ServerState, target: &FunctionTarget) -> Result<(), ApiError> {
    if state.gateway.function(&target.function).await?.is_none() {
        return Err(ApiError::function_not_found(target.function.as_str()));
    }
    hearth_api::pinned(state.api.store().as_ref(), &target.function, target.selector.clone()).await?;
    Ok(())
}
