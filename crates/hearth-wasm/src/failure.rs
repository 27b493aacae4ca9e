//! How a run or a load ends other than well. Each run is a fresh instance, so none of these
//! harms the loaded program: the next request runs as if nothing happened.

use std::time::Duration;

use bytes::Bytes;

/// A run that did not end with a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunFailure {
    /// A trap (unreachable, out-of-bounds access, stack overflow, ...): its message and the
    /// program's backtrace.
    #[error("{0}")]
    Trap(String),
    /// Linear memory or tables would have grown past the function's memory size.
    #[error("{0}")]
    OutOfMemory(String),
    #[error("Task timed out after {:.2} seconds", .0.as_secs_f64())]
    TimedOut(Duration),
    /// A command exited with a status other than 0; what it wrote on stdout.
    #[error("exited with status {code}")]
    Exit { code: i32, stdout: Bytes },
    /// A result larger than the payload limit.
    #[error("the result is larger than {0} bytes")]
    ResultTooLarge(usize),
    /// An HTTP component returned without setting a response, or set an error.
    #[error("{0}")]
    NoResponse(String),
    /// No room for another instance now (every slot of the engine's pool is taken).
    #[error("{0}")]
    Busy(String),
}

/// Why a program could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the module {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{0} is not a WebAssembly module or component (no \\0asm header of version 1, or a component)")]
    NotWasm(String),
    #[error("the module does not compile: {0}")]
    Compile(String),
    /// Compiled, but its imports or exports are not what Hearth runs.
    #[error("{0}")]
    Link(String),
    #[error("the compiled-module cache: {0}")]
    Cache(String),
}

/// The message of an error from wasmtime with its causes (and a trap's backtrace), bounded.
pub(crate) fn describe(error: &wasmtime::Error) -> String {
    let mut text = format!("{error:?}");
    const MAX: usize = 4096;
    if text.len() > MAX {
        let mut end = MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(" [truncated]");
    }
    text
}
