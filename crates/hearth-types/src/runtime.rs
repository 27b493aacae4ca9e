use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ValidationError;

/// The language runtime a function runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// CPython 3, handler `module.function`.
    Python3,
    /// Node.js, handler `file.export` (CommonJS or ESM).
    Nodejs,
    /// A `bootstrap` executable in the package speaking the Lambda Runtime API.
    Provided,
    /// A WebAssembly module (a WASI command: the event on stdin, the result on stdout) or
    /// component (`wasi:http/proxy`, or a `wasi:cli` command); handler: its path in the
    /// package, `main.wasm` by default.
    Wasm,
}

impl Runtime {
    pub const ALL: [Runtime; 4] = [Self::Python3, Self::Nodejs, Self::Provided, Self::Wasm];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Python3 => "python3",
            Self::Nodejs => "nodejs",
            Self::Provided => "provided",
            Self::Wasm => "wasm",
        }
    }

    /// Handler used when the caller gives none; `None` when the runtime needs one.
    pub fn default_handler(self) -> Option<&'static str> {
        match self {
            Self::Python3 | Self::Nodejs => None,
            Self::Provided => Some("bootstrap"),
            Self::Wasm => Some("main.wasm"),
        }
    }
}

impl FromStr for Runtime {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| ValidationError::InvalidRuntime(s.to_owned()))
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
