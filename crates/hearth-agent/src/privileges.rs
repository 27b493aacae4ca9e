//! What an instance's process may not do: it runs as an unprivileged uid of its own, with no
//! capabilities, `no_new_privs`, and a seccomp filter refusing the syscalls that reach the
//! kernel's or other processes' business. Applied between fork and exec.

use std::collections::BTreeMap;

use nix::libc;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

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

/// Syscalls refused with EPERM whatever their arguments.
const DENIED: &[i64] = &[
    libc::SYS_ptrace,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_userfaultfd,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_adjtimex,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_fsopen,
    libc::SYS_fsmount,
    libc::SYS_fsconfig,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_pidfd_getfd,
    libc::SYS_process_madvise,
    libc::SYS_kcmp,
    libc::SYS_modify_ldt,
    libc::SYS_syslog,
    libc::SYS_quotactl,
    libc::SYS_vhangup,
    libc::SYS_uselib,
    libc::SYS_ustat,
    libc::SYS_sysfs,
    libc::SYS_lookup_dcookie,
    libc::SYS_fanotify_init,
    libc::SYS__sysctl,
];

/// Socket families an instance may open: local sockets and IP. Everything else (netlink,
/// packet, vsock, which a network namespace does not isolate, bluetooth, …) is refused with
/// EAFNOSUPPORT, as if the kernel lacked it; C libraries fall back (glibc's `getaddrinfo`
/// assumes both IP versions when it cannot ask netlink).
const SOCKET_FAMILIES: &[u64] = &[libc::AF_UNIX as u64, libc::AF_INET as u64, libc::AF_INET6 as u64];

/// `personality` values allowed (as in Docker's default profile): `PER_LINUX`,
/// `PER_LINUX32`, each with `UNAME26`, and the query; turning off address randomisation or
/// making reads imply exec is refused.
const PERSONALITIES: &[u64] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// Syscalls answered ENOSYS, so that callers fall back as on an older kernel: `clone3`
/// (its flags are in memory the filter cannot read; libc falls back to `clone`, whose flags
/// are checked) and io_uring (a second syscall surface the filter cannot see into).
const NOT_IMPLEMENTED: &[i64] =
    &[libc::SYS_clone3, libc::SYS_io_uring_setup, libc::SYS_io_uring_enter, libc::SYS_io_uring_register];

/// `clone` flags that would create namespaces.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
];

#[derive(Debug, thiserror::Error)]
#[error("cannot build the seccomp filter: {0}")]
pub struct FilterError(String);

/// The filters, compiled once and applied in every instance's child.
#[derive(Debug, Clone)]
pub struct Privileges {
    filters: Vec<BpfProgram>,
    user_namespace: bool,
}

/// A rule that matches when argument `arg` (32 bits) is none of `values`.
fn none_of(arg: u8, values: &[u64]) -> Result<SeccompRule, FilterError> {
    let err = |e: seccompiler::BackendError| FilterError(e.to_string());
    let conditions = values
        .iter()
        .map(|v| SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, *v).map_err(err))
        .collect::<Result<Vec<_>, _>>()?;
    SeccompRule::new(conditions).map_err(err)
}

/// Refuses (EPERM) every x32-ABI syscall: under the x86_64 architecture they carry bit 30
/// in their number, so rules keyed on x86_64 numbers would never see them. (The other
/// filters already kill any other architecture.)
fn x32_filter() -> BpfProgram {
    use seccompiler::sock_filter;
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let op = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        op(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        op(JGE_K, 0, 1, X32_SYSCALL_BIT),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> Result<BpfProgram, FilterError> {
    let filter =
        SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(errno as u32), TargetArch::x86_64)
            .map_err(|e| FilterError(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| FilterError(e.to_string()))
}

impl Privileges {
    pub fn new() -> Result<Self, FilterError> {
        let err = |e: seccompiler::BackendError| FilterError(e.to_string());
        let mut denied: BTreeMap<i64, Vec<SeccompRule>> = DENIED.iter().map(|s| (*s, vec![])).collect();
        let clone_rules = NAMESPACE_FLAGS
            .iter()
            .map(|flag| {
                let cond = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(*flag), *flag)
                    .map_err(err)?;
                SeccompRule::new(vec![cond]).map_err(err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        denied.insert(libc::SYS_clone, clone_rules);
        denied.insert(libc::SYS_personality, vec![none_of(0, PERSONALITIES)?]);
        let families = BTreeMap::from([
            (libc::SYS_socket, vec![none_of(0, SOCKET_FAMILIES)?]),
            (libc::SYS_socketpair, vec![none_of(0, SOCKET_FAMILIES)?]),
        ]);
        let not_implemented: BTreeMap<i64, Vec<SeccompRule>> = NOT_IMPLEMENTED.iter().map(|s| (*s, vec![])).collect();
        // Where the kernel allows user namespaces, each instance gets one (its host uid maps
        // to INNER_UID and nothing else is mapped); elsewhere it just runs as its host uid.
        let user_namespace = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
            .is_ok_and(|s| s.trim().parse::<u64>().is_ok_and(|n| n > 0));
        let filters = vec![
            x32_filter(),
            compile(denied, libc::EPERM)?,
            compile(families, libc::EAFNOSUPPORT)?,
            compile(not_implemented, libc::ENOSYS)?,
        ];
        Ok(Self { filters, user_namespace })
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
