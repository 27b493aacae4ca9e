//! The plain-process sandbox driver: a child process in its own process group with an
//! explicit environment. No isolation beyond that (the namespace sandbox replaces it).

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::oneshot;

use crate::driver::{Exit, LaunchSpec, Sandbox, SandboxControl, SandboxDriver, SandboxError};

#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessDriver;

struct GroupKiller {
    /// `None` when the child was already gone at spawn: never signal group 0 (our own).
    pgid: Option<Pid>,
}

impl SandboxControl for GroupKiller {
    fn kill(&self) {
        if let Some(pgid) = self.pgid.filter(|p| p.as_raw() > 1) {
            // ESRCH once the group is gone: nothing left to kill.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl SandboxDriver for ProcessDriver {
    fn name(&self) -> &'static str {
        "process"
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<Sandbox, SandboxError> {
        let mut child = tokio::process::Command::new(&spec.program)
            .args(&spec.args)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.task_root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SandboxError::Spawn { program: spec.program.display().to_string(), source })?;
        let pid = child.id().map(|p| Pid::from_raw(p as i32));
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
            stdout: Box::pin(stdout),
            stderr: Box::pin(stderr),
            exited,
            control: Box::new(GroupKiller { pgid: pid }),
        })
    }
}
