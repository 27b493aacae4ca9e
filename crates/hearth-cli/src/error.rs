//! Failures the CLI finds itself, before or without the server: each with a stable code
//! (as the server's refusals have) and an exit status. `main::report` prints them.

use std::fmt;

/// Exit codes, documented in `hearth --help`.
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_UNREACHABLE: u8 = 3;

/// A failure found locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// Stable machine-readable code, e.g. `UsageError`, `InvalidUrl`, `InvalidJson`.
    pub code: &'static str,
    pub message: String,
    /// A usage error (exit 2): the command line or the environment asks for something that
    /// cannot be done, and nothing was sent.
    pub usage: bool,
}

impl CliError {
    /// A usage error (exit 2).
    pub fn usage(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), usage: true }
    }

    /// Any other failure (exit 1).
    pub fn failed(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), usage: false }
    }

    pub fn exit_code(&self) -> u8 {
        if self.usage { EXIT_USAGE } else { EXIT_FAILED }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Returns early with a usage error (exit 2).
macro_rules! usage {
    ($code:expr, $($arg:tt)*) => {
        return Err($crate::error::CliError::usage($code, format!($($arg)*)).into())
    };
}
pub(crate) use usage;
