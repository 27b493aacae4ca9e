//! What a deploy is checked against before it is written, beyond the configuration's own
//! rules: that this node can run it at all (asked of the deploy hooks: the gateway knows its
//! runtimes and memory), and that a `provided` package has the executable `bootstrap` it
//! starts. A function that could never start is refused at deploy, not at its first call.

use axum::http::StatusCode;
use hearth_types::{CodeDigest, CodeRef, FunctionConfig, Runtime};

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
            if self.known_bootstrapped(&code.sha256) {
                return Ok(());
            }
            let bytes = self.code().get(&code.sha256).await?;
            if hearth_blob::has_executable(&bytes, "bootstrap") {
                self.remember_bootstrapped(&code.sha256);
            } else {
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

/// Packages remembered at most; past it the set starts again (each is read once more).
const BOOTSTRAPPED_MAX: usize = 4096;

impl AppState {
    fn known_bootstrapped(&self, digest: &CodeDigest) -> bool {
        self.inner.bootstrapped.lock().unwrap_or_else(|p| p.into_inner()).contains(digest)
    }

    fn remember_bootstrapped(&self, digest: &CodeDigest) {
        let mut set = self.inner.bootstrapped.lock().unwrap_or_else(|p| p.into_inner());
        if set.len() >= BOOTSTRAPPED_MAX {
            set.clear();
        }
        set.insert(digest.clone());
    }
}

/// A configuration the node cannot run: a 409, since the same request succeeds on a node
/// that has the runtime or the memory.
pub fn not_runnable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}
