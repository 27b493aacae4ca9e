//! Whether this node can run a configuration at all, asked before a deploy is written: a
//! function that could never start is refused then, not at its first invocation.

use hearth_agent::RuntimeError;
use hearth_types::FunctionConfig;

use crate::Gateway;

/// Why a configuration can never run here.
#[derive(Debug, thiserror::Error)]
pub enum NotRunnable {
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
    #[error("memory_mb {wanted} is more than this node admits for all its instances ({limit} MB)")]
    Memory { wanted: u32, limit: u64 },
}

impl Gateway {
    /// Refuses a configuration this node could never start: its runtime is not installed
    /// (or not supported yet), or one instance needs more memory than the node admits.
    pub fn admit(&self, config: &FunctionConfig) -> Result<(), NotRunnable> {
        self.inner.launcher.factory.runtimes().check(config.runtime)?;
        let limit = self.inner.launcher.memory.limit_mb;
        if u64::from(config.memory_mb) > limit {
            return Err(NotRunnable::Memory { wanted: config.memory_mb, limit });
        }
        Ok(())
    }
}
