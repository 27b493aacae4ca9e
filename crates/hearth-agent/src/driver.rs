//! The sandbox driver boundary: how an instance's process is created, watched and killed.
//!
//! The lifecycle logic (state machine, timeouts, log attribution) lives above this trait,
//! once; drivers only create and destroy. [`ProcessDriver`](crate::ProcessDriver) runs a
//! plain child process; the namespace/cgroup sandbox implements the same trait.

use std::path::PathBuf;
use std::pin::Pin;

use hearth_types::Network;
use tokio::io::AsyncRead;
use tokio::sync::oneshot;

pub use crate::netns::InstanceNetwork;

/// What [`SandboxDriver::network`] returns.
pub type NetworkFuture<'a> = Pin<Box<dyn std::future::Future<Output = std::io::Result<InstanceNetwork>> + Send + 'a>>;

/// Everything needed to start one instance's runtime process.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// Names the instance's resources (cgroups).
    pub instance_id: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The complete environment: nothing is inherited from the platform.
    pub env: Vec<(String, String)>,
    /// The function's unpacked code on the host; the driver shows it to the process at
    /// [`SandboxDriver::task_root`], which is also the working directory.
    pub task_root: PathBuf,
    /// The embedded runtimes on the host, shown at [`SandboxDriver::runtime_root`].
    pub runtime_dir: PathBuf,
    /// The network namespace to join (from [`SandboxDriver::network`]).
    pub netns: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
    /// The instance's network mode: only an instance with egress sees the host's
    /// `/etc/resolv.conf` (one without network has nothing to resolve through).
    pub network: hearth_types::Network,
    pub memory_mb: u32,
    /// Size of the writable `/tmp`.
    pub tmp_mb: u32,
    /// Give the process a pipe on stdin (otherwise `/dev/null`).
    pub stdin: bool,
}

/// How a sandboxed process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit status {c}"),
            Exit::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// Stops a sandbox. Killing is idempotent and also reaches processes the runtime started.
pub trait SandboxControl: Send + Sync {
    fn kill(&self);

    /// Whether the kernel killed the sandbox for exceeding its memory limit.
    fn oom_killed(&self) -> bool {
        false
    }

    /// The most memory the sandbox has used, if the driver measures it.
    fn peak_memory_bytes(&self) -> Option<u64> {
        None
    }

    /// The memory the sandbox uses now, if the driver measures it.
    fn memory_bytes(&self) -> Option<u64> {
        None
    }

    /// Called once the runtime is initialised: apply limits that would slow start-up.
    fn initialised(&self) {}
}

/// A running sandbox: its output streams, its exit, and a way to stop it.
pub struct Sandbox {
    /// The write end of the process's stdin, when [`LaunchSpec::stdin`] asked for one.
    pub stdin: Option<Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
    pub stdout: Pin<Box<dyn AsyncRead + Send>>,
    pub stderr: Pin<Box<dyn AsyncRead + Send>>,
    /// Resolves once when the process has ended.
    pub exited: oneshot::Receiver<Exit>,
    pub control: Box<dyn SandboxControl>,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot start {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
}

pub trait SandboxDriver: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Where code unpacked at `host_dir` appears inside the sandbox (`LAMBDA_TASK_ROOT`).
    fn task_root(&self, host_dir: &std::path::Path) -> PathBuf;

    /// Where the runtimes installed at `host_dir` appear inside the sandbox.
    fn runtime_root(&self, host_dir: &std::path::Path) -> PathBuf;

    /// The instance's network: the listener its Runtime API is served on, opened where only
    /// the instance can reach it, and the network namespace the instance must join (if any).
    fn network(&self, mode: Network) -> NetworkFuture<'_> {
        let _ = mode;
        Box::pin(std::future::ready(InstanceNetwork::host()))
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<Sandbox, SandboxError>;
}
