//! The minimal root an instance sees: read-only `/usr` (with the merged-usr links), a few
//! `/etc` files, its code at `/var/task`, the runtimes at `/var/runtime`, a fresh `/proc`, a
//! minimal `/dev`, a size-capped writable `/tmp`; everything else on the host is out of view.
//! Built in the child's private mount namespace and entered with `pivot_root`.

use std::ffi::{CStr, CString};
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// Where the new root is assembled (an empty directory on the host; the tmpfs mounted over
/// it exists only in the instance's mount namespace).
const STAGE: &str = "/run/hearth/root";
/// Substitute `/etc` files, written once by [`prepare_host`].
const ETC: &str = "/run/hearth/etc";

/// Creates the staging directory and the substitute `/etc` files.
pub fn prepare_host() -> std::io::Result<()> {
    std::fs::create_dir_all(STAGE)?;
    std::fs::create_dir_all(ETC)?;
    let files = [
        (
            "passwd",
            "root:x:0:0:root:/root:/usr/sbin/nologin\n\
             sbx_user1051:x:993:990::/tmp:/usr/sbin/nologin\n\
             nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        ),
        ("group", "root:x:0:\nsbx_user1051:x:990:\nnogroup:x:65534:\n"),
        ("hosts", "127.0.0.1\tlocalhost hearth\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    ];
    for (name, content) in files {
        std::fs::write(Path::new(ETC).join(name), content)?;
    }
    Ok(())
}

/// One step of building the root, with every string allocated before the fork.
enum Step {
    Dir(CString),
    Symlink {
        target: CString,
        link: CString,
    },
    /// An empty file to bind a file over.
    File(CString),
    /// Bind `source` at `target`, then remount read-only (`nodev` unless `dev`).
    Bind {
        source: CString,
        target: CString,
        dev: bool,
    },
    Tmpfs {
        target: CString,
        options: CString,
    },
}

/// The steps for an instance whose code is at `task_root` and runtimes at `runtime_dir`
/// on the host, with `/tmp` capped at `tmp_mb`; `dns` shows it the host's
/// `/etc/resolv.conf` (instances without network get none: it would only tell them about
/// the host's network).
pub struct RootPlan {
    steps: Vec<Step>,
    stage: CString,
    put_old: CString,
}

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL in built paths")
}

fn in_root(p: &str) -> CString {
    c(&format!("{STAGE}{p}"))
}

impl RootPlan {
    pub fn new(task_root: &Path, runtime_dir: &Path, tmp_mb: u32, dns: bool) -> Option<Self> {
        let host = |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).ok();
        let mut steps = vec![Step::Tmpfs { target: c(STAGE), options: c("size=16m,mode=0755") }];
        for d in ["/usr", "/etc", "/proc", "/dev", "/tmp", "/var", "/var/task", "/var/runtime", "/.old"] {
            steps.push(Step::Dir(in_root(d)));
        }
        for (target, link) in [("usr/bin", "/bin"), ("usr/lib", "/lib"), ("usr/lib64", "/lib64"), ("usr/sbin", "/sbin")]
        {
            if Path::new(link).exists() {
                steps.push(Step::Symlink { target: c(target), link: in_root(link) });
            }
        }
        steps.push(Step::Bind { source: c("/usr"), target: in_root("/usr"), dev: false });
        for dir in ["/etc/ssl", "/etc/alternatives"] {
            if Path::new(dir).is_dir() {
                steps.push(Step::Dir(in_root(dir)));
                steps.push(Step::Bind { source: c(dir), target: in_root(dir), dev: false });
            }
        }
        let etc_files = [
            ("/etc/passwd", format!("{ETC}/passwd")),
            ("/etc/group", format!("{ETC}/group")),
            ("/etc/hosts", format!("{ETC}/hosts")),
            ("/etc/resolv.conf", "/etc/resolv.conf".to_owned()),
            ("/etc/ld.so.cache", "/etc/ld.so.cache".to_owned()),
            ("/etc/nsswitch.conf", "/etc/nsswitch.conf".to_owned()),
        ];
        for (target, source) in etc_files {
            if target == "/etc/resolv.conf" && !dns {
                continue;
            }
            if Path::new(&source).is_file() {
                steps.push(Step::File(in_root(target)));
                steps.push(Step::Bind { source: c(&source), target: in_root(target), dev: false });
            }
        }
        steps.push(Step::Symlink { target: c("/usr/share/zoneinfo/Etc/UTC"), link: in_root("/etc/localtime") });
        for dev in ["null", "zero", "full", "random", "urandom"] {
            let p = format!("/dev/{dev}");
            steps.push(Step::File(in_root(&p)));
            steps.push(Step::Bind { source: c(&p), target: in_root(&p), dev: true });
        }
        for (target, link) in [
            ("/proc/self/fd", "/dev/fd"),
            ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"),
            ("/proc/self/fd/2", "/dev/stderr"),
        ] {
            steps.push(Step::Symlink { target: c(target), link: in_root(link) });
        }
        steps.push(Step::Tmpfs { target: in_root("/tmp"), options: c(&format!("size={tmp_mb}m,mode=1777")) });
        steps.push(Step::Bind { source: host(task_root)?, target: in_root("/var/task"), dev: false });
        steps.push(Step::Bind { source: host(runtime_dir)?, target: in_root("/var/runtime"), dev: false });
        Some(Self { steps, stage: c(STAGE), put_old: in_root("/.old") })
    }

    /// In the child, in its private mount namespace: builds the root and pivots into it,
    /// leaving it read-only with the working directory at /var/task. Raw syscalls only.
    pub fn enter(&self) -> std::io::Result<()> {
        use nix::libc;
        let none: Option<&CStr> = None;
        let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID;
        for step in &self.steps {
            match step {
                Step::Dir(p) => {
                    // SAFETY: mkdir on a NUL-terminated path.
                    if unsafe { libc::mkdir(p.as_ptr(), 0o755) } != 0
                        && nix::errno::Errno::last() != nix::errno::Errno::EEXIST
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Step::Symlink { target, link } => {
                    // SAFETY: symlink on NUL-terminated paths.
                    if unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) } != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Step::File(p) => {
                    // SAFETY: open/close on a NUL-terminated path.
                    let fd = unsafe { libc::open(p.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o644) };
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    unsafe { libc::close(fd) };
                }
                Step::Bind { source, target, dev } => {
                    mount(Some(source.as_c_str()), target.as_c_str(), none, MsFlags::MS_BIND | MsFlags::MS_REC, none)?;
                    let flags = if *dev { ro } else { ro | MsFlags::MS_NODEV };
                    mount(none, target.as_c_str(), none, flags, none)?;
                }
                Step::Tmpfs { target, options } => {
                    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
                    mount(Some(c"tmpfs"), target.as_c_str(), Some(c"tmpfs"), flags, Some(options.as_c_str()))?;
                }
            }
        }
        nix::unistd::pivot_root(self.stage.as_c_str(), self.put_old.as_c_str())?;
        nix::unistd::chdir(c"/")?;
        umount2(c"/.old", MntFlags::MNT_DETACH)?;
        // SAFETY: rmdir on a NUL-terminated path.
        unsafe { libc::rmdir(c"/.old".as_ptr()) };
        mount(none, c"/", none, ro | MsFlags::MS_NODEV, none)?;
        nix::unistd::chdir(c"/var/task")?;
        Ok(())
    }
}
