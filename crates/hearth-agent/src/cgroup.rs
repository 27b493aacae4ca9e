//! Resource limits for instances through cgroups, on v1 (separate controller hierarchies,
//! as on this machine) and v2 (one unified hierarchy). Every instance gets its own group
//! under `hearth/`: memory = the function's memory size (swap off), pids capped. The child
//! joins its groups itself between fork and exec, so no process ever runs unlimited.

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Processes one instance may have (fork bombs stop here).
pub const PIDS_MAX: u64 = 256;
/// Memory size that buys one full CPU, as on Lambda.
pub const MB_PER_VCPU: u64 = 1_769;
const CPU_PERIOD_US: u64 = 100_000;

/// CPU time per 100 ms period for a function of `memory_mb` (at least 1 ms).
pub fn cpu_quota_us(memory_mb: u32) -> u64 {
    (u64::from(memory_mb) * CPU_PERIOD_US / MB_PER_VCPU).max(1_000)
}

const ROOT: &str = "/sys/fs/cgroup";
const PARENT: &str = "hearth";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// The cgroup hierarchy Hearth manages on this machine.
#[derive(Debug, Clone)]
pub struct Cgroups {
    version: CgroupVersion,
    /// `/sys/fs/cgroup`, or a plain folder standing in for it in tests.
    root: PathBuf,
}

/// Once per process: when it exits normally (a test binary, a benchmark, any process that
/// embeds the agent), the instance cgroups it made go with it, their processes killed, as
/// `hearth up` removes its own on a graceful stop. A killed process leaves them to the next
/// server's sweep.
fn remove_own_at_exit() {
    extern "C" fn at_exit() {
        if let Some(cg) = Cgroups::detect() {
            cg.remove_own(std::time::Duration::from_secs(2));
        }
    }
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: registers a plain function; it runs once, at exit, on the exiting thread.
        unsafe { nix::libc::atexit(at_exit) };
    });
}

/// One instance's groups (one per controller on v1, one on v2). Removed on drop.
#[derive(Debug)]
pub struct InstanceCgroup {
    version: CgroupVersion,
    /// v1: `memory/hearth/<id>`, `pids/hearth/<id>`, `cpu/hearth/<id>`; v2: `hearth/<id>`.
    dirs: Vec<PathBuf>,
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

impl Cgroups {
    /// The hierarchy, if this process may manage it (root, and memory + pids controllers
    /// available).
    pub fn detect() -> Option<Self> {
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        remove_own_at_exit();
        let root = Path::new(ROOT);
        let v2 = std::fs::read_to_string(root.join("cgroup.controllers")).ok();
        let cg = match v2 {
            Some(c) if ["memory", "pids", "cpu"].iter().all(|want| c.split_whitespace().any(|x| x == *want)) => {
                let parent = root.join(PARENT);
                std::fs::create_dir_all(&parent).ok()?;
                write(&root.join("cgroup.subtree_control"), "+memory +pids +cpu").ok()?;
                write(&parent.join("cgroup.subtree_control"), "+memory +pids +cpu").ok()?;
                Self { version: CgroupVersion::V2, root: root.to_path_buf() }
            }
            _ if root.join("memory/memory.limit_in_bytes").exists()
                && root.join("pids").exists()
                && root.join("cpu/cpu.cfs_quota_us").exists() =>
            {
                for c in ["memory", "pids", "cpu"] {
                    std::fs::create_dir_all(root.join(c).join(PARENT)).ok()?;
                }
                Self { version: CgroupVersion::V1, root: root.to_path_buf() }
            }
            _ => return None,
        };
        Some(cg)
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// A hierarchy of `version` at `root`, as it is (for tests of the files written).
    #[doc(hidden)]
    pub fn at(root: &Path, version: CgroupVersion) -> Self {
        Self { version, root: root.to_path_buf() }
    }

    fn parents(&self) -> Vec<PathBuf> {
        let root = self.root.as_path();
        match self.version {
            CgroupVersion::V1 => {
                vec![root.join("memory").join(PARENT), root.join("pids").join(PARENT), root.join("cpu").join(PARENT)]
            }
            CgroupVersion::V2 => vec![root.join(PARENT)],
        }
    }

    /// Kills and removes the groups of servers that are gone (killed without cleaning up).
    /// Groups are named `<server pid>-<instance>`, so live servers' instances are left alone.
    pub fn sweep_leftovers(&self) -> usize {
        let mut removed = 0;
        for parent in self.parents() {
            let Ok(entries) = std::fs::read_dir(&parent) else { continue };
            for e in entries.flatten().filter(|e| e.path().is_dir()) {
                let name = e.file_name().to_string_lossy().into_owned();
                let owner = name.split('-').next().and_then(|p| p.parse::<u32>().ok());
                let alive = owner.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                if !alive {
                    tracing::debug!(group = %e.path().display(), "removing a leftover instance cgroup");
                    drop(InstanceCgroup { version: self.version, dirs: vec![e.path()] });
                    removed += 1;
                }
            }
        }
        removed
    }

    /// At shutdown: kills what is left in this server's groups and removes them, waiting up
    /// to `limit` for the killed processes to be reaped. Returns how many remain.
    pub fn remove_own(&self, limit: std::time::Duration) -> usize {
        let prefix = format!("{}-", std::process::id());
        let ours = |parent: &Path| -> Vec<PathBuf> {
            std::fs::read_dir(parent)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        };
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left: Vec<PathBuf> = self.parents().iter().flat_map(|p| ours(p)).collect();
            for d in &left {
                let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
                let _ = std::fs::remove_dir(d);
            }
            let remaining = self.parents().iter().map(|p| ours(p).len()).sum();
            if remaining == 0 || std::time::Instant::now() >= deadline {
                return remaining;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Creates the groups of instance `id` (of this server) with its limits.
    pub fn create(&self, id: &str, memory_mb: u32) -> std::io::Result<InstanceCgroup> {
        let bytes = (u64::from(memory_mb) * 1024 * 1024).to_string();
        let name = format!("{}-{id}", std::process::id());
        let dirs: Vec<PathBuf> = self.parents().into_iter().map(|p| p.join(&name)).collect();
        for d in &dirs {
            std::fs::create_dir(d)?;
        }
        let cg = InstanceCgroup { version: self.version, dirs };
        match self.version {
            CgroupVersion::V1 => {
                let (mem, pids) = (&cg.dirs[0], &cg.dirs[1]);
                write(&mem.join("memory.limit_in_bytes"), &bytes)?;
                // Swap off: memory + swap may not exceed memory.
                let memsw = mem.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &bytes)?;
                }
                write(&pids.join("pids.max"), &PIDS_MAX.to_string())?;
            }
            CgroupVersion::V2 => {
                let d = &cg.dirs[0];
                write(&d.join("memory.max"), &bytes)?;
                write(&d.join("memory.swap.max"), "0").ok();
                write(&d.join("pids.max"), &PIDS_MAX.to_string())?;
            }
        }
        Ok(cg)
    }
}

impl InstanceCgroup {
    /// The `cgroup.procs` files a child writes `0` to, joining the groups itself.
    pub fn procs_files(&self) -> Vec<CString> {
        self.dirs
            .iter()
            .filter_map(|d| CString::new(d.join("cgroup.procs").into_os_string().into_encoded_bytes()).ok())
            .collect()
    }

    fn memory_dir(&self) -> &Path {
        &self.dirs[0]
    }

    /// How many times the kernel's OOM killer killed a process of this instance.
    pub fn oom_kills(&self) -> u64 {
        let file = match self.version {
            CgroupVersion::V1 => "memory.oom_control",
            CgroupVersion::V2 => "memory.events",
        };
        std::fs::read_to_string(self.memory_dir().join(file))
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|n| n.trim().parse().ok()))
            .unwrap_or(0)
    }

    /// The most memory the instance has used, in bytes.
    pub fn peak_bytes(&self) -> Option<u64> {
        let file = match self.version {
            CgroupVersion::V1 => "memory.max_usage_in_bytes",
            CgroupVersion::V2 => "memory.peak",
        };
        std::fs::read_to_string(self.memory_dir().join(file)).ok()?.trim().parse().ok()
    }

    /// The memory the instance uses now, in bytes (page cache included).
    pub fn usage_bytes(&self) -> Option<u64> {
        let file = match self.version {
            CgroupVersion::V1 => "memory.usage_in_bytes",
            CgroupVersion::V2 => "memory.current",
        };
        std::fs::read_to_string(self.memory_dir().join(file)).ok()?.trim().parse().ok()
    }

    /// Caps CPU at the share `memory_mb` buys (1 vCPU at 1,769 MB) as a quota. Applied once
    /// the runtime is initialised: under the quota a small function's start-up would take
    /// many times longer.
    pub fn limit_cpu(&self, memory_mb: u32) -> std::io::Result<()> {
        let quota = cpu_quota_us(memory_mb);
        match self.version {
            CgroupVersion::V1 => {
                let cpu = &self.dirs[2];
                write(&cpu.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string())
            }
            CgroupVersion::V2 => write(&self.dirs[0].join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}")),
        }
    }

    /// SIGKILL to every process in the instance's groups.
    pub fn kill_all(&self) {
        if self.version == CgroupVersion::V2 && write(&self.dirs[0].join("cgroup.kill"), "1").is_ok() {
            return;
        }
        for d in &self.dirs {
            let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) else { continue };
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

/// How long a dropped instance's groups are retried while their processes are being reaped.
const REMOVE_RETRY_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Removes each of `dirs` once it is empty (rmdir fails with EBUSY until then), retrying
/// with a backoff from 10 ms to 1 s for up to `limit` in all; whether all went.
fn remove_when_empty(mut dirs: Vec<PathBuf>, limit: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        dirs.retain(|d| matches!(std::fs::remove_dir(d), Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY)));
        if dirs.is_empty() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            tracing::warn!(?dirs, "instance cgroups still busy; the next start removes them");
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_secs(1));
    }
}

impl Drop for InstanceCgroup {
    fn drop(&mut self) {
        self.kill_all();
        let busy: Vec<PathBuf> = self
            .dirs
            .iter()
            .filter(|d| matches!(std::fs::remove_dir(d), Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY)))
            .cloned()
            .collect();
        if busy.is_empty() {
            return;
        }
        // A group can only go once its processes are gone; they were just killed, and on a
        // busy node they can take seconds to exit (a soak leaked every group still busy after
        // the one second this used to allow): retry off the caller's thread, backing off, for
        // up to REMOVE_RETRY_LIMIT.
        std::thread::spawn(move || remove_when_empty(busy, REMOVE_RETRY_LIMIT));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A group whose process outlives the old one-second window (a killed runtime exiting
    /// slowly on a busy node) is removed once the process is gone, not leaked.
    #[test]
    fn a_group_busy_for_seconds_is_removed_once_empty() {
        let Some(cgroups) = Cgroups::detect() else { return }; // needs root and cgroups
        let group = cgroups.create("slow-reap", 64).unwrap();
        let dirs = group.dirs.clone();
        let mut sleeper = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        for d in &dirs {
            std::fs::write(d.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
        }
        std::mem::forget(group); // its Drop would kill the sleeper at once
        let killer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(2500));
            sleeper.kill().unwrap();
            sleeper.wait().unwrap();
        });
        let started = std::time::Instant::now();
        assert!(remove_when_empty(dirs.clone(), std::time::Duration::from_secs(30)));
        assert!(started.elapsed() >= std::time::Duration::from_secs(2), "busy until the process went");
        assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?}");
        killer.join().unwrap();
    }

    /// The files each version's instance groups get, written into plain folders standing in
    /// for the hierarchy (this machine has v1 controllers, so v2 is checked this way).
    #[test]
    fn each_version_writes_its_limits() {
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(PARENT)).unwrap();
        let v2 = Cgroups::at(dir.path(), CgroupVersion::V2).create("i2", 256).unwrap();
        let d = dir.path().join(PARENT).join(format!("{}-i2", std::process::id()));
        assert_eq!(read(d.join("memory.max")), (256u64 << 20).to_string());
        assert_eq!(read(d.join("memory.swap.max")), "0");
        assert_eq!(read(d.join("pids.max")), PIDS_MAX.to_string());
        v2.limit_cpu(1_769).unwrap();
        assert_eq!(read(d.join("cpu.max")), "100000 100000");
        std::fs::write(d.join("memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n").unwrap();
        std::fs::write(d.join("memory.peak"), "1234\n").unwrap();
        assert_eq!((v2.oom_kills(), v2.peak_bytes()), (1, Some(1234)));
        std::fs::write(d.join("memory.current"), "4096\n").unwrap();
        assert_eq!(v2.usage_bytes(), Some(4096));
        assert_eq!(v2.procs_files(), [CString::new(d.join("cgroup.procs").display().to_string()).unwrap()]);
        std::mem::forget(v2); // a plain folder cannot be removed like a cgroup

        let dir = tempfile::tempdir().unwrap();
        for c in ["memory", "pids", "cpu"] {
            std::fs::create_dir_all(dir.path().join(c).join(PARENT)).unwrap();
        }
        let v1 = Cgroups::at(dir.path(), CgroupVersion::V1).create("i1", 128).unwrap();
        let name = format!("{}-i1", std::process::id());
        let at = |c: &str| dir.path().join(c).join(PARENT).join(&name);
        assert_eq!(read(at("memory").join("memory.limit_in_bytes")), (128u64 << 20).to_string());
        assert_eq!(read(at("pids").join("pids.max")), PIDS_MAX.to_string());
        v1.limit_cpu(128).unwrap();
        assert_eq!(read(at("cpu").join("cpu.cfs_quota_us")), "7235");
        std::fs::write(at("memory").join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
            .unwrap();
        assert_eq!(v1.oom_kills(), 2);
        std::fs::write(at("memory").join("memory.usage_in_bytes"), "8192\n").unwrap();
        assert_eq!(v1.usage_bytes(), Some(8192));
        std::mem::forget(v1);
    }

    #[test]
    fn cpu_share_follows_memory() {
        assert_eq!(cpu_quota_us(1_769), 100_000, "1 vCPU at 1,769 MB");
        assert_eq!(cpu_quota_us(3_538), 200_000);
        assert_eq!(cpu_quota_us(128), 7_235);
        assert_eq!(cpu_quota_us(1), 1_000, "at least 1 ms per period");
    }
}
