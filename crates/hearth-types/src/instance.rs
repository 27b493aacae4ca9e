//! Where an instance is in its life: the states and the one table of allowed transitions
//! (the agent's `Instance` applies it; the API shows the state).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The state of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// Its sandbox and runtime are starting; it has not asked for an event yet.
    Starting,
    /// It has a free slot.
    Ready,
    /// Every slot is taken.
    Busy,
    /// Its version is no longer served: it finishes the requests already handed to it, then
    /// stops.
    Draining,
    Stopped,
    /// Its process died, timed out or failed to start.
    Failed,
}

impl InstanceState {
    /// The allowed transitions, in one table.
    pub fn may_become(self, to: InstanceState) -> bool {
        use InstanceState::*;
        matches!(
            (self, to),
            (Starting, Ready)
                | (Ready, Busy)
                | (Busy, Ready)
                | (Ready | Busy, Draining)
                | (Starting | Ready | Draining, Stopped)
                | (Starting | Ready | Busy | Draining, Failed)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Busy => "busy",
            Self::Draining => "draining",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        }
    }
}

impl std::fmt::Display for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
/// Where a cold start's instance came from: what it cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartSource {
    /// A sandbox and runtime process started for it.
    Full,
    /// A pre-warmed sandbox (stem cell) specialised to the function.
    StemCell,
    /// A WebAssembly program never seen on the node: compiled (Cranelift).
    WasmCompile,
    /// A WebAssembly program compiled before: mapped from the node's disk cache.
    WasmDiskCache,
    /// A WebAssembly program another instance had already loaded.
    WasmMemory,
}

impl StartSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::StemCell => "stem_cell",
            Self::WasmCompile => "wasm_compile",
            Self::WasmDiskCache => "wasm_disk_cache",
            Self::WasmMemory => "wasm_memory",
        }
    }
}
