//! The process sandbox driver: a child process in its own process group with an explicit
//! environment. As root, between fork and exec, it also joins its cgroups and its network
//! namespace, enters new mount, uts, ipc and pid namespaces with a minimal read-only root,
//! and drops its privileges (see the modules it calls); without root it is a plain process.

use std::ffi::{CStr, CString};
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::oneshot;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cgroup::{Cgroups, InstanceCgroup};
use crate::driver::{
    Exit, InstanceNetwork, LaunchSpec, NetworkFuture, Sandbox, SandboxControl, SandboxDriver, SandboxError,
};
use crate::egress::Egress;
use crate::netns::ReadyNetworks;
use crate::privileges::{Identity, Privileges};
use crate::rootfs::RootPlan;
use crate::uid_range::UidRange;
use hearth_types::Network;

/// Where every instance sees its code when the driver can mount it there.
pub const TASK_ROOT: &str = "/var/task";
/// Where every instance sees the embedded runtimes.
pub const RUNTIME_ROOT: &str = "/var/runtime";
/// Network namespaces kept ready per mode.
const NETNS_POOL: usize = 4;

#[derive(Debug, Clone)]
pub struct ProcessDriver {
    mount_task_root: bool,
    cgroups: Option<Cgroups>,
    privileges: Option<Privileges>,
    /// Host uids of this server's instances, and the next to hand out.
    uids: Option<Arc<UidRange>>,
    next_uid: Arc<AtomicU64>,
    networks: Option<ReadyNetworks>,
}

impl ProcessDriver {
    /// Mounts code at `/var/task` when this process may (root, and the mount point exists or
    /// can be created); otherwise instances see their code at its host path.
    pub fn detect() -> Self {
        let root = nix::unistd::geteuid().is_root();
        let mount_task_root = root && crate::rootfs::prepare_host().is_ok();
        // Dropping privileges needs the mounts: the unprivileged process cannot reach the
        // code and runtimes in the (0700) data directory otherwise.
        let privileges = if mount_task_root {
            match Privileges::new() {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::error!(%e, "instances will keep root privileges");
                    None
                }
            }
        } else {
            None
        };
        let networks = if mount_task_root {
            match ReadyNetworks::start(NETNS_POOL, Egress::default()) {
                Ok(pool) => Some(pool),
                Err(e) => {
                    tracing::error!(%e, "cannot start the network namespace pool");
                    None
                }
            }
        } else {
            None
        };
        let uids = privileges.is_some().then(|| Arc::new(UidRange::claim()));
        Self { mount_task_root, cgroups: Cgroups::detect(), privileges, uids, next_uid: Arc::default(), networks }
    }

    /// Plain child processes with no sandbox at all, whoever runs them (for comparisons).
    pub fn plain() -> Self {
        Self {
            mount_task_root: false,
            cgroups: None,
            privileges: None,
            uids: None,
            next_uid: Arc::default(),
            networks: None,
        }
    }

    /// Whether instances run as an unprivileged uid under the seccomp filter.
    pub fn drops_privileges(&self) -> bool {
        self.privileges.is_some()
    }

    /// The cgroups instances are limited by, if this process can manage them.
    pub fn cgroups(&self) -> Option<&Cgroups> {
        self.cgroups.as_ref()
    }

    /// Whether instances see their code at `/var/task`.
    pub fn mounts_task_root(&self) -> bool {
        self.mount_task_root
    }
}

/// In the child between fork and exec: every descriptor above stdio is closed at exec,
/// whatever the server, or whoever started it, had open without `O_CLOEXEC` (a log file, a
/// secret). Marked rather than closed, so the later steps and the spawn's own error pipe
/// still work until exec. Fails closed: a kernel without `close_range` (before 5.11) gets
/// no instance rather than one that inherits descriptors.
fn close_inherited_at_exec() -> std::io::Result<()> {
    use nix::libc;
    // SAFETY: close_range with integer arguments.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// In the child between fork and exec: RLIMIT_CORE 0, soft and hard, so neither the instance
/// nor anything it starts ever writes its memory (its callers' events, its secrets) to a
/// core file, whatever limit the server runs with. Sandboxed or not (the sandbox sets it
/// again as it drops privileges).
fn no_core_dumps() -> std::io::Result<()> {
    use nix::sys::resource::{Resource, setrlimit};
    Ok(setrlimit(Resource::RLIMIT_CORE, 0, 0)?)
}

/// In the child between fork and exec: joins its cgroups (writing `0` to `cgroup.procs`
/// moves the writer). Only raw syscalls on strings prepared before the fork.
fn join_cgroups(procs: &[CString]) -> std::io::Result<()> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    for file in procs {
        let fd = open(file.as_c_str(), OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())?;
        nix::unistd::write(&fd, b"0")?;
    }
    Ok(())
}

/// In the child between fork and exec: private mount, uts and ipc namespaces, then the
/// minimal root of `plan`. Only raw syscalls on memory prepared before the fork.
fn enter_root(plan: &RootPlan) -> std::io::Result<()> {
    use nix::mount::{MsFlags, mount};
    use nix::sched::CloneFlags;
    let none: Option<&CStr> = None;
    nix::sched::unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC)?;
    nix::unistd::sethostname("hearth")?;
    mount(none, c"/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)?;
    plan.enter()
}

/// In the child between fork and exec: a new pid namespace. The calling process stays
/// outside as a reaper that waits for the runtime (PID 1 inside, with its own `/proc`) and
/// ends the same way; only the runtime returns from here.
fn enter_pid_namespace() -> std::io::Result<()> {
    use nix::libc;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID)?;
    // SAFETY: fork/waitpid/kill/_exit in a single-threaded child; no allocation.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if pid > 0 {
            // The reaper never execs: close everything but stdio, above all the pipe on
            // which the parent's spawn() waits for exec (it would wait forever).
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
                for fd in 3..4096 {
                    libc::close(fd);
                }
            }
            let mut status = 0;
            while libc::waitpid(pid, &mut status, 0) < 0 {
                if *libc::__errno_location() != libc::EINTR {
                    libc::_exit(127);
                }
            }
            if libc::WIFSIGNALED(status) {
                let sig = libc::WTERMSIG(status);
                libc::signal(sig, libc::SIG_DFL);
                libc::kill(libc::getpid(), sig);
                libc::_exit(128 + sig);
            }
            libc::_exit(libc::WEXITSTATUS(status));
        }
    }
    let none: Option<&CStr> = None;
    let flags = nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV | nix::mount::MsFlags::MS_NOEXEC;
    nix::mount::mount(Some(c"proc"), c"/proc", Some(c"proc"), flags, none)?;
    Ok(())
}

/// In the child between fork and exec: join the network namespace made for the instance.
fn join_netns(fd: &std::os::fd::OwnedFd) -> std::io::Result<()> {
    nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET)?;
    Ok(())
}

struct GroupKiller {
    /// `None` when the child was already gone at spawn: never signal group 0 (our own).
    pgid: Option<Pid>,
    cgroup: Option<InstanceCgroup>,
    memory_mb: u32,
}

impl SandboxControl for GroupKiller {
    fn kill(&self) {
        if let Some(pgid) = self.pgid.filter(|p| p.as_raw() > 1) {
            // ESRCH once the group is gone: nothing left to kill.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        if let Some(cg) = &self.cgroup {
            // Also whatever left the process group (setsid) but not the cgroup.
            cg.kill_all();
        }
    }

    fn oom_killed(&self) -> bool {
        self.cgroup.as_ref().is_some_and(|cg| cg.oom_kills() > 0)
    }

    fn peak_memory_bytes(&self) -> Option<u64> {
        self.cgroup.as_ref().and_then(InstanceCgroup::peak_bytes)
    }

    fn memory_bytes(&self) -> Option<u64> {
        self.cgroup.as_ref().and_then(InstanceCgroup::usage_bytes)
    }

    fn initialised(&self) {
        if let Some(cg) = &self.cgroup
            && let Err(e) = cg.limit_cpu(self.memory_mb)
        {
            tracing::warn!(%e, "could not apply the CPU quota");
        }
    }
}

impl SandboxDriver for ProcessDriver {
    fn name(&self) -> &'static str {
        "process"
    }

    fn task_root(&self, host_dir: &std::path::Path) -> std::path::PathBuf {
        if self.mount_task_root { TASK_ROOT.into() } else { host_dir.to_path_buf() }
    }

    fn runtime_root(&self, host_dir: &std::path::Path) -> std::path::PathBuf {
        if self.mount_task_root { RUNTIME_ROOT.into() } else { host_dir.to_path_buf() }
    }

    fn network(&self, mode: Network) -> NetworkFuture<'_> {
        match &self.networks {
            Some(pool) => Box::pin(pool.take(mode)),
            None if mode == Network::Egress => Box::pin(std::future::ready(Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "network egress needs the sandbox (run Hearth as root)",
            )))),
            None => Box::pin(std::future::ready(InstanceNetwork::host())),
        }
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<Sandbox, SandboxError> {
        let spawn_error = |source| SandboxError::Spawn { program: spec.program.display().to_string(), source };
        let mut command = tokio::process::Command::new(&spec.program);
        // SAFETY: raw syscalls in the forked child. Registered first: they must run whatever
        // else the launch adds.
        unsafe {
            command.pre_exec(close_inherited_at_exec);
            command.pre_exec(no_core_dumps);
        }
        let cgroup = match &self.cgroups {
            Some(cg) => Some(cg.create(&spec.instance_id, spec.memory_mb).map_err(spawn_error)?),
            None => None,
        };
        if let Some(cg) = &cgroup {
            let procs = cg.procs_files();
            // SAFETY: runs in the forked child before exec; only open/write/close syscalls
            // on strings allocated before the fork.
            unsafe {
                command.pre_exec(move || join_cgroups(&procs));
            }
        }
        // Before the pid namespace, so that the reaper is in the instance's network namespace
        // too.
        if let Some(ns) = spec.netns.clone() {
            // SAFETY: setns on a descriptor opened before the fork.
            unsafe {
                command.pre_exec(move || join_netns(&ns));
            }
        }
        if self.mount_task_root {
            let dns = spec.network == Network::Egress;
            let plan = RootPlan::new(&spec.task_root, &spec.runtime_dir, spec.tmp_mb, dns).ok_or_else(|| {
                spawn_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, "a path contains a NUL byte"))
            })?;
            // SAFETY: the closure runs in the forked child before exec and only makes raw
            // syscalls (unshare, mount, mkdir, pivot_root, chdir, fork, waitpid) on memory
            // allocated before the fork.
            unsafe {
                command.pre_exec(move || enter_root(&plan));
                command.pre_exec(enter_pid_namespace);
            }
        }
        if let (Some(privileges), Some(uids)) = (self.privileges.clone(), &self.uids) {
            let uid = uids.uid(self.next_uid.fetch_add(1, Ordering::Relaxed));
            let identity = Identity::new(uid, uid);
            // SAFETY: runs in the forked child before exec, after the mounts (which need
            // root); prctl/setgroups/setres[ug]id/seccomp on memory prepared before the fork.
            unsafe {
                command.pre_exec(move || privileges.apply(&identity));
            }
        }
        let mut child = command
            .args(&spec.args)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.task_root)
            .stdin(if spec.stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_error)?;
        let pid = child.id().map(|p| Pid::from_raw(p as i32));
        let stdin = child.stdin.take().map(|s| Box::pin(s) as Pin<Box<dyn tokio::io::AsyncWrite + Send>>);
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, exited) = oneshot::channel();
        tokio::spawn(async move {
            let exit = match child.wait().await {
                Ok(status) => match (status.code(), status.signal()) {
                    (Some(c), _) => Exit::Code(c),
                    (None, Some(s)) => Exit::Signal(s),
                    _ => Exit::Code(-1),
                },
                Err(_) => Exit::Code(-1),
            };
            let _ = tx.send(exit);
        });
        Ok(Sandbox {
            stdin,
            stdout: Box::pin(stdout),
            stderr: Box::pin(stderr),
            exited,
            control: Box::new(GroupKiller { pgid: pid, cgroup, memory_mb: spec.memory_mb }),
        })
    }
}
