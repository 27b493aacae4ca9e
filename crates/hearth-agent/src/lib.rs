//! The node agent: everything that runs on the machine that hosts instances.
//!
//! - [`RuntimeApi`]: the Lambda Runtime API served to one instance.
//! - [`Instance`]: one runtime process serving one function version, with its state machine.
//! - [`SandboxDriver`]: how processes are created and killed ([`ProcessDriver`] for now).
//! - [`CodeCache`]: packages unpacked once per digest, read-only.
//! - [`Runtimes`]: the language runtimes shipped in the binary.
//! - WebAssembly instances: a loaded `hearth-wasm` program behind the same [`Instance`].

mod bytecode;
mod cgroup;
mod code_cache;
mod connection_cap;
mod driver;
mod egress;
mod egress_nat;
mod error_document;
#[cfg(any(test, feature = "test-support"))]
pub mod fake_driver;
mod instance;
mod instance_factory;
mod instance_start;
mod instance_volume;
mod invocation;
mod log_capture;
mod netns;
mod privileges;
mod process_driver;
mod rootfs;
mod runtime_api;
mod runtimes;
mod seccomp;
mod stem_cells;
#[cfg(feature = "test-support")]
pub mod test_support;
mod uid_range;
mod wasm_http_event;
mod wasm_instance;

pub use cgroup::{CgroupVersion, Cgroups, MB_PER_VCPU, PIDS_MAX, cpu_quota_us};
pub use code_cache::{CodeCache, CodeCacheError};
pub use connection_cap::{CappedListener, CappedStream};
pub use driver::{
    Exit, InstanceNetwork, LaunchSpec, NetworkFuture, Sandbox, SandboxControl, SandboxDriver, SandboxError,
};
pub use egress_nat::release_egress;
pub use error_document::{ErrorDocument, ErrorReport, error_type};
pub use instance::{
    IllegalTransition, Instance, InstanceState, InvokeResult, LogEvent, LogSink, PlatformError, StartSource, epoch_ms,
};
pub use instance_factory::{InstanceFactory, new_instance_id};
pub use instance_start::{InstanceSpec, StartFailure, lambda_environment, start_instance, start_instance_logged};
pub use instance_volume::{InstanceVolume, VolumeError, enter_private_mount_namespace};
pub use invocation::{InitOutcome, Invocation, MAX_PAYLOAD_BYTES, Outcome};
pub use log_capture::{CaptureLimits, LogOutput, TRUNCATED};
pub use privileges::{INNER_GID, INNER_UID, Identity, NOFILE, Privileges, UID_BASE};
pub use process_driver::ProcessDriver;
pub use runtime_api::{Closed, RuntimeApi, SPARE_CONNECTIONS};
pub use runtimes::{RuntimeError, Runtimes};
pub use seccomp::{FilterError, SYSCALLS_ALLOWED, SYSCALLS_NOT_IMPLEMENTED, Syscall};
pub use stem_cells::{CellKey, StemCellSettings, StemCells};
pub use uid_range::{BLOCK as UID_BLOCK, UidRange};
pub use wasm_instance::{WASM_BUSY, WASM_INVALID, WASM_NO_RESPONSE, WASM_TRAP};

/// Raises this process's open-file limit to its hard limit: each instance holds a few pipes
/// and sockets, and a busy node holds thousands. Returns the new limit.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}
