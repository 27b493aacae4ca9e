//! What an instance's process may not do: it runs as an unprivileged uid of its own, with no
//! capabilities, `no_new_privs`, and the seccomp allow-list of `seccomp.rs` (only the
//! syscalls an unprivileged process needs). Applied between fork and exec.

use nix::libc;
use seccompiler::BpfProgram;

use crate::seccomp::FilterError;

/// Open files an instance may hold (Lambda's limit).
pub const NOFILE: u64 = 1024;

/// First uid (and gid) handed to instances; one per instance, none with a passwd entry.
pub const UID_BASE: u32 = 100_000;
const UID_COUNT: u32 = 65_536;
/// The uid and gid an instance has inside its user namespace (Lambda's `sbx_user1051`).
pub const INNER_UID: u32 = 993;
pub const INNER_GID: u32 = 990;

/// The host uid/gid an instance runs as, and its user namespace maps, prepared before the
/// fork (the child may not allocate).
#[derive(Debug, Clone)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    uid_map: std::ffi::CString,
    gid_map: std::ffi::CString,
}

impl Identity {
    pub fn new(uid: u32, gid: u32) -> Self {
        let map = |inner: u32, outer: u32| std::ffi::CString::new(format!("{inner} {outer} 1\n")).expect("no NUL");
        Self { uid, gid, uid_map: map(INNER_UID, uid), gid_map: map(INNER_GID, gid) }
    }
}

/// Writes `data` to `path` with raw syscalls.
fn write_file(path: &std::ffi::CStr, data: &[u8]) -> std::io::Result<()> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    let fd = open(path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    nix::unistd::write(&fd, data)?;
    Ok(())
}

/// Empties the capability bounding set (EINVAL past the kernel's last cap is fine).
fn drop_bounding_set() {
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
    }
}

/// Clears the effective, permitted and inheritable capability sets.
fn clear_capabilities() -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header { version: VERSION_3, pid: 0 };
    let data = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
    // SAFETY: capset with a correctly laid out v3 header and two data words.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The filters, compiled once and applied in every instance's child.
#[derive(Debug, Clone)]
pub struct Privileges {
    filters: Vec<BpfProgram>,
    user_namespace: bool,
}

impl Privileges {
    pub fn new() -> Result<Self, FilterError> {
        // Where the kernel allows user namespaces, each instance gets one (its host uid maps
        // to INNER_UID and nothing else is mapped); elsewhere it just runs as its host uid.
        let user_namespace = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
            .is_ok_and(|s| s.trim().parse::<u64>().is_ok_and(|n| n > 0));
        Ok(Self { filters: crate::seccomp::filters()?, user_namespace })
    }

    /// A uid for the `n`th instance, from its own range.
    pub fn uid_for(n: u64) -> u32 {
        UID_BASE + (n % u64::from(UID_COUNT)) as u32
    }

    /// Whether instances get a user namespace of their own.
    pub fn user_namespace(&self) -> bool {
        self.user_namespace
    }

    /// In the child between fork and exec (root until here): drop the capability bounding
    /// set, become the identity's uid/gid with no supplementary groups (which clears every
    /// capability), enter a user namespace of its own where allowed (dropping the
    /// capabilities that brings again), then install the filters (which also sets
    /// `no_new_privs`). Raw syscalls only.
    pub fn apply(&self, id: &Identity) -> std::io::Result<()> {
        use nix::sys::resource::{Resource, setrlimit};
        drop_bounding_set();
        // SAFETY: plain syscalls with valid arguments.
        let rc = unsafe { libc::setgroups(0, std::ptr::null()) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        nix::unistd::setresgid(id.gid.into(), id.gid.into(), id.gid.into())?;
        nix::unistd::setresuid(id.uid.into(), id.uid.into(), id.uid.into())?;
        if self.user_namespace {
            // Changing uid made the process non-dumpable, which gives /proc/self to root:
            // it could not write its own maps.
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)?;
            write_file(c"/proc/self/setgroups", b"deny")?;
            write_file(c"/proc/self/uid_map", id.uid_map.as_bytes())?;
            write_file(c"/proc/self/gid_map", id.gid_map.as_bytes())?;
            // A new user namespace starts with every capability (over it) and a full
            // bounding set: drop them all again.
            drop_bounding_set();
            clear_capabilities()?;
        }
        // Last of the steps that open files: the child still holds every descriptor of the
        // (busy) server until exec, and may be above the limit.
        setrlimit(Resource::RLIMIT_NOFILE, NOFILE, NOFILE)?;
        setrlimit(Resource::RLIMIT_CORE, 0, 0)?;
        for f in &self.filters {
            seccompiler::apply_filter(f).map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        Ok(())
    }
}
