//! What a deploy is checked against before it is written, beyond the configuration's own
//! rules: that this node can run it at all (asked of the deploy hooks: the gateway knows its
//! runtimes and memory), that a `provided` package has the executable `bootstrap` it
//! starts, and that a `wasm` package has the module its handler names. A function that
//! could never start is refused at deploy, not at its first call.

use axum::http::StatusCode;
use hearth_types::{CodeDigest, CodeRef, FunctionConfig, Runtime};

use crate::deploy::Admit;
use crate::{ApiError, AppState};

/// A write is admitted when this node could run what it saves: the deploy hooks' rules,
/// a `provided` function's code has its executable `bootstrap`, and a `wasm` function's
/// code the module its handler names.
#[async_trait::async_trait]
impl Admit for AppState {
    async fn admit(&self, config: &FunctionConfig, code: Option<&CodeRef>) -> Result<(), ApiError> {
        for hooks in self.hooks() {
            hooks.admit(config)?;
        }
        let Some(code) = code else { return Ok(()) };
        // A conflict between the runtime and the code, whichever of the two the write
        // changes: the same configuration fits other code, the same code another runtime.
        let (entry, executable, refusal) = match config.runtime {
            Runtime::Provided => (
                "bootstrap",
                true,
                ApiError::new(
                    StatusCode::CONFLICT,
                    "BootstrapMissing",
                    "a provided function's package needs an executable `bootstrap` at its root (chmod +x bootstrap before zipping)",
                ),
            ),
            Runtime::Wasm => (
                config.handler.as_str(),
                false,
                ApiError::new(
                    StatusCode::CONFLICT,
                    "WasmModuleMissing",
                    format!(
                        "a wasm function's package needs its module at `{}` (deploy the .wasm file itself, or set the handler to the module's path in the package)",
                        config.handler
                    ),
                ),
            ),
            Runtime::Python3 | Runtime::Nodejs => return Ok(()),
        };
        if self.known_entry(&code.sha256, entry) {
            return Ok(());
        }
        let bytes = self.code().get(&code.sha256).await?;
        let found = match executable {
            true => hearth_blob::has_executable(&bytes, entry),
            false => hearth_blob::has_file(&bytes, entry),
        };
        if !found {
            return Err(refusal);
        }
        self.remember_entry(&code.sha256, entry);
        Ok(())
    }
}

/// Packages remembered at most; past it the set starts again (each is read once more).
const BOOTSTRAPPED_MAX: usize = 4096;

impl AppState {
    fn known_entry(&self, digest: &CodeDigest, entry: &str) -> bool {
        self.inner.bootstrapped.lock().unwrap_or_else(|p| p.into_inner()).contains(&(digest.clone(), entry.to_owned()))
    }

    fn remember_entry(&self, digest: &CodeDigest, entry: &str) {
        let mut set = self.inner.bootstrapped.lock().unwrap_or_else(|p| p.into_inner());
        if set.len() >= BOOTSTRAPPED_MAX {
            set.clear();
        }
        set.insert((digest.clone(), entry.to_owned()));
    }
}

/// A configuration the node cannot run: a 409, since the same request succeeds on a node
/// that has the runtime or the memory.
pub fn not_runnable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}
