//! A network namespace per instance with only its own loopback, and the instance's Runtime
//! API listener opened inside it: the platform serves that socket, the instance joins the
//! namespace, and no other process on the machine can reach the API or be reached from it.

use std::fs::File;
use std::os::fd::OwnedFd;

use nix::libc;

/// Brings `lo` up in the calling thread's network namespace.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: plain socket/ioctl syscalls on a zeroed, correctly sized ifreq.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut rc = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            rc = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        }
        let err = std::io::Error::last_os_error();
        libc::close(sock);
        if rc != 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// A new network namespace (only `lo`, up) and a listener on 127.0.0.1:0 inside it.
/// Created on a short-lived thread, since `unshare(CLONE_NEWNET)` moves only the caller.
pub fn namespace_with_listener() -> std::io::Result<(OwnedFd, std::net::TcpListener)> {
    std::thread::spawn(|| -> std::io::Result<(OwnedFd, std::net::TcpListener)> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
        loopback_up()?;
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let ns = File::open("/proc/thread-self/ns/net")?;
        Ok((ns.into(), listener))
    })
    .join()
    .map_err(|_| std::io::Error::other("the network namespace thread panicked"))?
}
