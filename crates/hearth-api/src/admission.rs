//! What a deploy is checked against before it is written, beyond the configuration's own
//! rules: that this node can run it at all (asked of the deploy hooks: the gateway knows its
//! runtimes and memory), and that a `provided` package has the executable `bootstrap` it
//! starts. A function that could never start is refused at deploy, not at its first call.

use axum::http::StatusCode;
use hearth_types::{CodeRef, FunctionConfig, FunctionName, Runtime};

use crate::{ApiError, AppState};

/// Refuses `config` for function `name` when it could never run here. `code` is the code
/// the write gives it; without one, the code it has.
pub async fn admit(
    state: &AppState,
    name: &FunctionName,
    config: &FunctionConfig,
    code: Option<&CodeRef>,
) -> Result<(), ApiError> {
    for hooks in state.hooks() {
        hooks.admit(config)?;
    }
    if config.runtime != Runtime::Provided {
        return Ok(());
    }
    let current = match code {
        Some(_) => None,
        None => state.store().get_function(name).await?.and_then(|f| f.code),
    };
    if let Some(code) = code.or(current.as_ref()) {
        let bytes = state.code().get(&code.sha256).await?;
        if !hearth_blob::has_executable(&bytes, "bootstrap") {
            // A conflict between the runtime and the code, whichever of the two the write
            // changes: the same configuration fits other code, the same code another runtime.
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "BootstrapMissing",
                "a provided function's package needs an executable `bootstrap` at its root (chmod +x bootstrap before zipping)",
            ));
        }
    }
    Ok(())
}

/// A configuration the node cannot run: a 409, since the same request succeeds on a node
/// that has the runtime or the memory.
pub fn not_runnable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}
