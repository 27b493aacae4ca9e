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
];

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
        // clone3 passes its flags in memory the filter cannot read: answer ENOSYS, and libc
        // falls back to clone, whose flags are checked above.
        let clone3 = BTreeMap::from([(libc::SYS_clone3, vec![])]);
        Ok(Self { filters: vec![compile(denied, libc::EPERM)?, compile(clone3, libc::ENOSYS)?] })
    }

    /// A uid for the `n`th instance, from its own range.
    pub fn uid_for(n: u64) -> u32 {
        UID_BASE + (n % u64::from(UID_COUNT)) as u32
    }

    /// In the child between fork and exec (root until here): drop the capability bounding
    /// set, become `uid`/`gid` with no supplementary groups (which clears every capability),
    /// then install the filters (which also sets `no_new_privs`). Raw syscalls only.
    pub fn apply(&self, uid: u32, gid: u32) -> std::io::Result<()> {
        use nix::sys::resource::{Resource, setrlimit};
        setrlimit(Resource::RLIMIT_NOFILE, NOFILE, NOFILE)?;
        setrlimit(Resource::RLIMIT_CORE, 0, 0)?;
        for cap in 0..64 {
            // SAFETY: prctl with integer arguments; EINVAL past the kernel's last cap is fine.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        }
        // SAFETY: plain syscalls with valid arguments.
        let rc = unsafe { libc::setgroups(0, std::ptr::null()) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        nix::unistd::setresgid(gid.into(), gid.into(), gid.into())?;
        nix::unistd::setresuid(uid.into(), uid.into(), uid.into())?;
        for f in &self.filters {
            seccompiler::apply_filter(f).map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        Ok(())
    }
}
