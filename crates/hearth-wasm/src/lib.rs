//! Hearth's WebAssembly runtime, on wasmtime in the server's own process (WebAssembly is
//! the sandbox: no process, namespace or cgroup is needed).
//!
//! - [`Programs`]: modules and components compiled once per code digest (Cranelift),
//!   cached on disk, loaded once per node ([`LoadSource`] says which a cold start was).
//! - [`Program`]: a loaded program; each request is a fresh instance of it
//!   ([`Program::run_event`] for a WASI command, [`Program::run_http`] for a `wasi:http`
//!   proxy component), bounded by a [`Run`]: timeout (epoch interruption), memory
//!   ([`MemoryBudget`]), bounded output, no filesystem, no network, only its environment;
//!   its CPU time measured ([`CpuMeter`]) for billing.
//! - [`RunFailure`], [`LoadError`]: how a run or a load ends other than well.

mod cpu;
mod engine;
mod failure;
mod limits;
mod outgoing;
mod output;
mod program;
mod programs;
#[cfg(feature = "test-support")]
pub mod test_support;
mod ticker;

pub use cpu::CpuMeter;
pub use engine::MAX_CONCURRENT_RUNS;
pub use failure::{LoadError, RunFailure};
pub use limits::MemoryBudget;
pub use output::{LineSink, MAX_LINE_BYTES, MAX_LOG_BYTES_PER_RUN, TRUNCATED};
pub use program::{MAX_RESULT_BYTES, Program, ProgramKind, Run};
pub use programs::{LoadSource, MAX_MODULE_BYTES, Programs};
pub use ticker::TICK;
