//! What a deploy is checked against before it is written, beyond the configuration's own
//! rules: that this node can run it at all (asked of the deploy hooks: the gateway knows its
//! runtimes and memory), and that a `provided` package has the executable `bootstrap` it
//! starts. A function that could never start is refused at deploy, not at its first call.

use axum::http::StatusCode;
use hearth_types::{CodeRef, FunctionConfig, Runtime};

use crate::deploy::Admit;
use crate::{ApiError, AppState};

/// A write is admitted when this node could run what it saves: the deploy hooks' rules,
/// and a `provided` function's code has its executable `bootstrap`.
#[async_trait::async_trait]
impl Admit for AppState {
    async fn admit(&self, config: &FunctionConfig, code: Option<&CodeRef>) -> Result<(), ApiError> {
        for hooks in self.hooks() {
            hooks.admit(config)?;
        }
        if let (Runtime::Provided, Some(code)) = (config.runtime, code) {
            let bytes = self.code().get(&code.sha256).await?;
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
}

/// A configuration the node cannot run: a 409, since the same request succeeds on a node
/// that has the runtime or the memory.
pub fn not_runnable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}
