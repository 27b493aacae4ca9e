//! The seccomp profile of every instance: an allow-list at least as strict as Docker's
//! default profile. An instance may make the syscalls in [`SYSCALLS_ALLOWED`] (Docker's
//! unconditional allow-list as it applies to x86_64 without capabilities, less
//! [`WITHHELD`]); `clone` without namespace flags, `personality` with Docker's values, and
//! sockets of the UNIX, INET and INET6 families only. Everything else is refused:
//!
//! - with EPERM, as Docker does, when this table knows the syscall (a refusal a caller can
//!   report: "operation not permitted");
//! - with ENOSYS for `clone3` and io_uring ([`SYSCALLS_NOT_IMPLEMENTED`]), and for numbers
//!   above the newest syscall in the table: libc and runtimes then fall back as on an older
//!   kernel (glibc's `clone3` → `clone`; a newer libc's newer calls → their older forms),
//!   where EPERM would make them fail outright (as glibc's `faccessat2` did under Docker
//!   profiles older than it);
//! - with EPERM for every x32-ABI syscall, and by killing the process for any other
//!   architecture (each filter checks the architecture first).
//!
//! Applied in the child between fork and exec, so the exec itself and the dynamic loader run
//! under it. The agent's `seccomp` tests trace the example functions and check that every
//! syscall they make is here.

use std::collections::BTreeMap;

use nix::libc;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch, sock_filter,
};

/// A syscall: its name and its x86_64 number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syscall {
    symbol: &'static str,
    pub nr: i64,
}

impl Syscall {
    /// The name, as strace and the man pages spell it.
    pub fn name(&self) -> &'static str {
        self.symbol.trim_start_matches("SYS_")
    }
}

/// x86_64 syscall numbers: `libc`'s, and the few newer than the `libc` crate (a stable ABI).
#[allow(non_upper_case_globals)]
mod nr {
    pub use nix::libc::*;
    pub const SYS_io_pgetevents: i64 = 333;
    pub const SYS_cachestat: i64 = 451;
    pub const SYS_map_shadow_stack: i64 = 453;
    pub const SYS_futex_wake: i64 = 454;
    pub const SYS_futex_wait: i64 = 455;
    pub const SYS_futex_requeue: i64 = 456;
}

macro_rules! syscalls {
    ($($symbol:ident),* $(,)?) => {
        &[$(Syscall { symbol: stringify!($symbol), nr: nr::$symbol }),*]
    };
}

/// What an instance may call, by purpose.
#[rustfmt::skip]
pub const SYSCALLS_ALLOWED: &[Syscall] = syscalls![
    // Processes and threads (`clone` only without namespace flags: NAMESPACE_FLAGS).
    SYS_clone, SYS_fork, SYS_vfork, SYS_execve, SYS_execveat, SYS_exit, SYS_exit_group, SYS_wait4, SYS_waitid,
    SYS_set_tid_address, SYS_set_robust_list, SYS_get_robust_list, SYS_rseq, SYS_arch_prctl, SYS_set_thread_area,
    SYS_get_thread_area, SYS_getpid, SYS_getppid, SYS_gettid, SYS_getpgid, SYS_getpgrp, SYS_setpgid, SYS_getsid,
    SYS_setsid, SYS_kill, SYS_tkill, SYS_tgkill, SYS_pidfd_open, SYS_pidfd_send_signal, SYS_process_mrelease,
    // Its own settings (`personality` only with Docker's values: PERSONALITIES); filters and
    // Landlock rules a process adds to itself only restrict it further.
    SYS_prctl, SYS_personality, SYS_seccomp, SYS_landlock_create_ruleset, SYS_landlock_add_rule,
    SYS_landlock_restrict_self,
    // Credentials: without capabilities, only among the ids the process already has.
    SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid, SYS_getresuid, SYS_getresgid, SYS_getgroups, SYS_setuid,
    SYS_setgid, SYS_setreuid, SYS_setregid, SYS_setresuid, SYS_setresgid, SYS_setfsuid, SYS_setfsgid, SYS_setgroups,
    SYS_capget, SYS_capset,
    // Scheduling, limits and system information.
    SYS_sched_yield, SYS_sched_getaffinity, SYS_sched_setaffinity, SYS_sched_getattr, SYS_sched_setattr,
    SYS_sched_getparam, SYS_sched_setparam, SYS_sched_getscheduler, SYS_sched_setscheduler, SYS_sched_get_priority_max,
    SYS_sched_get_priority_min, SYS_sched_rr_get_interval, SYS_getpriority, SYS_setpriority, SYS_ioprio_get,
    SYS_ioprio_set, SYS_getrlimit, SYS_setrlimit, SYS_prlimit64, SYS_getrusage, SYS_times, SYS_getcpu, SYS_sysinfo,
    SYS_uname, SYS_umask, SYS_getrandom,
    // Signals.
    SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_rt_sigpending, SYS_rt_sigsuspend, SYS_rt_sigtimedwait,
    SYS_rt_sigqueueinfo, SYS_rt_tgsigqueueinfo, SYS_sigaltstack, SYS_signalfd, SYS_signalfd4, SYS_pause,
    SYS_restart_syscall,
    // Time and timers (reading the clocks; setting them is refused).
    SYS_clock_gettime, SYS_clock_getres, SYS_clock_nanosleep, SYS_nanosleep, SYS_gettimeofday, SYS_time, SYS_alarm,
    SYS_getitimer, SYS_setitimer, SYS_timer_create, SYS_timer_delete, SYS_timer_getoverrun, SYS_timer_gettime,
    SYS_timer_settime, SYS_timerfd_create, SYS_timerfd_gettime, SYS_timerfd_settime,
    // Memory.
    SYS_brk, SYS_mmap, SYS_munmap, SYS_mremap, SYS_mprotect, SYS_madvise, SYS_msync, SYS_mincore, SYS_mlock,
    SYS_mlock2, SYS_munlock, SYS_mlockall, SYS_munlockall, SYS_membarrier, SYS_memfd_create, SYS_memfd_secret,
    SYS_pkey_alloc, SYS_pkey_free, SYS_pkey_mprotect, SYS_map_shadow_stack,
    // Waiting and event notification.
    SYS_futex, SYS_futex_waitv, SYS_futex_wake, SYS_futex_wait, SYS_futex_requeue, SYS_eventfd, SYS_eventfd2,
    SYS_epoll_create, SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_wait, SYS_epoll_pwait, SYS_epoll_pwait2, SYS_poll,
    SYS_ppoll, SYS_select, SYS_pselect6, SYS_inotify_init, SYS_inotify_init1, SYS_inotify_add_watch,
    SYS_inotify_rm_watch,
    // Descriptors and their data.
    SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64, SYS_preadv, SYS_pwritev, SYS_preadv2,
    SYS_pwritev2, SYS_lseek, SYS_close, SYS_close_range, SYS_dup, SYS_dup2, SYS_dup3, SYS_fcntl, SYS_ioctl, SYS_flock,
    SYS_pipe, SYS_pipe2, SYS_sendfile, SYS_splice, SYS_tee, SYS_vmsplice, SYS_copy_file_range, SYS_fsync,
    SYS_fdatasync, SYS_sync, SYS_syncfs, SYS_sync_file_range, SYS_fadvise64, SYS_readahead, SYS_fallocate,
    SYS_truncate, SYS_ftruncate, SYS_cachestat,
    // Asynchronous I/O, the old interface (io_uring: SYSCALLS_NOT_IMPLEMENTED).
    SYS_io_setup, SYS_io_destroy, SYS_io_submit, SYS_io_cancel, SYS_io_getevents, SYS_io_pgetevents,
    // Paths and file metadata.
    SYS_open, SYS_openat, SYS_openat2, SYS_creat, SYS_access, SYS_faccessat, SYS_faccessat2, SYS_stat, SYS_fstat,
    SYS_lstat, SYS_newfstatat, SYS_statx, SYS_statfs, SYS_fstatfs, SYS_getdents, SYS_getdents64, SYS_getcwd, SYS_chdir,
    SYS_fchdir, SYS_mkdir, SYS_mkdirat, SYS_mknod, SYS_mknodat, SYS_rmdir, SYS_rename, SYS_renameat, SYS_renameat2,
    SYS_link, SYS_linkat, SYS_symlink, SYS_symlinkat, SYS_unlink, SYS_unlinkat, SYS_readlink, SYS_readlinkat,
    SYS_chmod, SYS_fchmod, SYS_fchmodat, SYS_fchmodat2, SYS_chown, SYS_fchown, SYS_fchownat, SYS_lchown, SYS_utime,
    SYS_utimes, SYS_utimensat, SYS_futimesat,
    // Extended attributes.
    SYS_getxattr, SYS_lgetxattr, SYS_fgetxattr, SYS_setxattr, SYS_lsetxattr, SYS_fsetxattr, SYS_listxattr,
    SYS_llistxattr, SYS_flistxattr, SYS_removexattr, SYS_lremovexattr, SYS_fremovexattr,
    // Sockets (`socket` and `socketpair` only of SOCKET_FAMILIES).
    SYS_socket, SYS_socketpair, SYS_bind, SYS_listen, SYS_accept, SYS_accept4, SYS_connect, SYS_shutdown,
    SYS_getsockname, SYS_getpeername, SYS_getsockopt, SYS_setsockopt, SYS_sendto, SYS_sendmsg, SYS_sendmmsg,
    SYS_recvfrom, SYS_recvmsg, SYS_recvmmsg,
    // System V and POSIX IPC, private to the instance's IPC namespace.
    SYS_msgget, SYS_msgsnd, SYS_msgrcv, SYS_msgctl, SYS_semget, SYS_semop, SYS_semtimedop, SYS_semctl, SYS_shmget,
    SYS_shmat, SYS_shmdt, SYS_shmctl, SYS_mq_open, SYS_mq_unlink, SYS_mq_timedsend, SYS_mq_timedreceive, SYS_mq_notify,
    SYS_mq_getsetattr,
];

/// Syscalls Docker's default profile allows without capabilities that instances may not
/// make: another process's memory (`ptrace` and `process_vm_*`, allowed by Docker on kernels
/// from 4.8), the LDT, clock adjustment state, file handles, fanotify marks (useless without
/// `fanotify_init`), the deprecated `remap_file_pages`, and the two x86_64 numbers no kernel
/// implements. (io_uring, also allowed by older Docker releases, is answered ENOSYS.)
#[rustfmt::skip]
const WITHHELD: &[Syscall] = syscalls![
    SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_modify_ldt, SYS_adjtimex, SYS_clock_adjtime,
    SYS_name_to_handle_at, SYS_fanotify_mark, SYS_remap_file_pages, SYS_epoll_ctl_old, SYS_epoll_wait_old,
];

/// Syscalls answered ENOSYS, so that callers fall back as on an older kernel: `clone3` (its
/// flags are in memory the filter cannot read; libc falls back to `clone`, whose flags are
/// checked) and io_uring (a second syscall surface the filter cannot see into; libuv falls
/// back to epoll and its thread pool).
pub const SYSCALLS_NOT_IMPLEMENTED: &[Syscall] =
    syscalls![SYS_clone3, SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register];

/// `clone` flags that would create namespaces (Docker's mask 0x7e020000).
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// `personality` values allowed (as in Docker's default profile): `PER_LINUX`,
/// `PER_LINUX32`, each with `UNAME26`, and the query; turning off address randomisation or
/// making reads imply exec is refused.
const PERSONALITIES: &[u64] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// Socket families an instance may open: local sockets and IP, and netlink for its routing
/// protocol only (`NETLINK_ROUTE`: what listing interfaces needs, e.g. Node's
/// `os.networkInterfaces()` and glibc's `getifaddrs`; inside the instance's own network
/// namespace it shows only its own links, and changing them needs a capability it lacks).
/// Everything else (other netlink protocols, packet, vsock, which a network namespace does
/// not isolate, bluetooth, …) is refused with EAFNOSUPPORT, as if the kernel lacked it.
const SOCKET_FAMILIES: &[u64] =
    &[libc::AF_UNIX as u64, libc::AF_INET as u64, libc::AF_INET6 as u64, libc::AF_NETLINK as u64];
/// The only netlink protocol allowed.
const NETLINK_ROUTE: u64 = 0;

#[derive(Debug, thiserror::Error)]
#[error("cannot build the seccomp filter: {0}")]
pub struct FilterError(String);

fn backend(e: seccompiler::BackendError) -> FilterError {
    FilterError(e.to_string())
}

fn condition(arg: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, value: u64) -> Result<SeccompRule, FilterError> {
    SeccompRule::new(vec![SeccompCondition::new(arg, len, op, value).map_err(backend)?]).map_err(backend)
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    otherwise: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, FilterError> {
    let filter = SeccompFilter::new(rules, otherwise, matched, TargetArch::x86_64).map_err(backend)?;
    BpfProgram::try_from(filter).map_err(backend)
}

/// The allow-list: each allowed syscall with its argument rules (any rule matching allows).
fn allow_list() -> Result<BpfProgram, FilterError> {
    use SeccompCmpArgLen::{Dword, Qword};
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = SYSCALLS_ALLOWED.iter().map(|s| (s.nr, vec![])).collect();
    rules.insert(libc::SYS_clone, vec![condition(0, Qword, SeccompCmpOp::MaskedEq(NAMESPACE_FLAGS), 0)?]);
    let personalities = PERSONALITIES.iter().map(|p| condition(0, Dword, SeccompCmpOp::Eq, *p));
    rules.insert(libc::SYS_personality, personalities.collect::<Result<_, _>>()?);
    compile(rules, SeccompAction::Errno(libc::EPERM as u32), SeccompAction::Allow)
}

/// `socket` of any family but SOCKET_FAMILIES, netlink of any protocol but
/// `NETLINK_ROUTE`, and `socketpair` of any family but UNIX, INET and INET6 → EAFNOSUPPORT.
fn socket_families() -> Result<BpfProgram, FilterError> {
    let cond = |arg, op, value| SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(backend);
    // Matches (refuses) when the family is none of `families`.
    let none_of = |families: &[u64]| -> Result<SeccompRule, FilterError> {
        let conditions = families.iter().map(|f| cond(0, SeccompCmpOp::Ne, *f)).collect::<Result<Vec<_>, _>>()?;
        SeccompRule::new(conditions).map_err(backend)
    };
    let other_netlink = SeccompRule::new(vec![
        cond(0, SeccompCmpOp::Eq, libc::AF_NETLINK as u64)?,
        cond(2, SeccompCmpOp::Ne, NETLINK_ROUTE)?,
    ])
    .map_err(backend)?;
    let local_and_ip = &SOCKET_FAMILIES[..3];
    let rules = BTreeMap::from([
        (libc::SYS_socket, vec![none_of(SOCKET_FAMILIES)?, other_netlink]),
        (libc::SYS_socketpair, vec![none_of(local_and_ip)?]),
    ]);
    compile(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EAFNOSUPPORT as u32))
}

fn not_implemented() -> BTreeMap<i64, Vec<SeccompRule>> {
    SYSCALLS_NOT_IMPLEMENTED.iter().map(|s| (s.nr, vec![])).collect()
}

/// The newest syscall the table knows: anything above it is answered as if the kernel lacked it.
fn newest_known() -> i64 {
    SYSCALLS_ALLOWED.iter().chain(SYSCALLS_NOT_IMPLEMENTED).chain(WITHHELD).map(|s| s.nr).max().unwrap_or(0)
}

/// By number alone (a hand-written filter: rules keyed on x86_64 numbers cannot express
/// ranges): every x32-ABI syscall → EPERM (under the x86_64 architecture they carry bit 30 in
/// their number, so the allow-list's rules would never see them as themselves), and numbers
/// above the newest known syscall → ENOSYS.
fn by_number() -> BpfProgram {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let op = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        op(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        op(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        op(RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        op(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        op(JGE_K, 0, 1, X32_SYSCALL_BIT),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        op(JGT_K, 0, 1, newest_known() as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// The filters, in the order they must be installed. Where several filters refuse a syscall
/// with an errno, the kernel returns the errno of the one installed last: so the allow-list
/// (EPERM) comes first, then the refinements (EAFNOSUPPORT, ENOSYS), then the filter by
/// number.
pub fn filters() -> Result<Vec<BpfProgram>, FilterError> {
    Ok(vec![
        allow_list()?,
        socket_families()?,
        compile(not_implemented(), SeccompAction::Allow, SeccompAction::Errno(libc::ENOSYS as u32))?,
        by_number(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_tables_are_consistent() {
        let allowed: BTreeSet<i64> = SYSCALLS_ALLOWED.iter().map(|s| s.nr).collect();
        assert_eq!(allowed.len(), SYSCALLS_ALLOWED.len(), "no syscall is listed twice");
        for s in WITHHELD.iter().chain(SYSCALLS_NOT_IMPLEMENTED) {
            assert!(!allowed.contains(&s.nr), "{} is allowed and refused", s.name());
        }
        assert_eq!(NAMESPACE_FLAGS, 0x7e02_0000, "Docker's mask");
        assert_eq!(SYSCALLS_ALLOWED[0].name(), "clone");
        assert_eq!(newest_known(), 456, "futex_requeue");
        for program in filters().unwrap() {
            assert!(program.len() <= 4096, "a BPF program holds at most 4,096 instructions: {}", program.len());
        }
    }

    /// Runs `probe` in a forked child under the filters; its exit code is the probe's.
    fn in_filtered_child(probe: fn() -> i32) -> i32 {
        let filters = filters().unwrap();
        // SAFETY: the child only makes raw syscalls and exits without returning.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                for f in &filters {
                    if seccompiler::apply_filter(f).is_err() {
                        libc::_exit(100);
                    }
                }
                libc::_exit(probe());
            }
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            assert!(libc::WIFEXITED(status), "the probe was killed: {status:#x}");
            libc::WEXITSTATUS(status)
        }
    }

    /// The errno of `syscall(nr, args…)`, or 0 when it succeeded.
    fn errno_of(nr: i64, a: i64, b: i64, c: i64) -> i32 {
        // SAFETY: raw syscalls the tests choose; a failing call has no effect.
        unsafe { if libc::syscall(nr, a, b, c, 0, 0, 0) < 0 { *libc::__errno_location() } else { 0 } }
    }

    #[test]
    fn refusals_carry_the_intended_errno() {
        let code = in_filtered_child(|| {
            let checks: [(i64, i64, i64, i64, i32); 13] = [
                (libc::SYS_getppid, 0, 0, 0, 0),
                (libc::SYS_ptrace, libc::PTRACE_TRACEME as i64, 0, 0, libc::EPERM),
                (libc::SYS_unshare, libc::CLONE_NEWUSER as i64, 0, 0, libc::EPERM),
                (libc::SYS_clone, (libc::CLONE_NEWUSER | libc::SIGCHLD) as i64, 0, 0, libc::EPERM),
                (libc::SYS_personality, 0x0040000, 0, 0, libc::EPERM),
                (libc::SYS_personality, 0xffff_ffff, 0, 0, 0),
                (libc::SYS_clone3, 0, 0, 0, libc::ENOSYS),
                (libc::SYS_io_uring_setup, 1, 0, 0, libc::ENOSYS),
                (libc::SYS_socket, libc::AF_NETLINK as i64, libc::SOCK_RAW as i64, 9, libc::EAFNOSUPPORT),
                (libc::SYS_socket, libc::AF_VSOCK as i64, libc::SOCK_STREAM as i64, 0, libc::EAFNOSUPPORT),
                (libc::SYS_socketpair, libc::AF_NETLINK as i64, libc::SOCK_RAW as i64, 0, libc::EAFNOSUPPORT),
                (0x4000_0000 | libc::SYS_getpid, 0, 0, 0, libc::EPERM),
                (500, 0, 0, 0, libc::ENOSYS),
            ];
            for (i, (nr, a, b, c, want)) in checks.into_iter().enumerate() {
                if errno_of(nr, a, b, c) != want {
                    return 1 + i as i32;
                }
            }
            0
        });
        assert_eq!(code, 0, "check {} (1-based) got another answer", code);
    }
}
