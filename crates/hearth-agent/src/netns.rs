//! A network namespace per instance, with the instance's Runtime API listener opened inside
//! it: the platform serves that socket, the instance joins the namespace, and no other
//! process on the machine can reach the API.
//!
//! By default ([`Network::None`]) the namespace has only `lo`. With [`Network::Egress`] it
//! also gets a veth pair to the host (see [`crate::egress`]) and outbound connections leave
//! through NAT.
//!
//! Creating a namespace costs about a millisecond, plus a few for the veth plumbing, and
//! destroying one queues work in a kernel worker. So namespaces are made ahead of time, on
//! one thread of their own, and kept in a small pool per mode: an instance start takes one
//! without waiting, and the thread tops the pool up again off the request path.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use hearth_types::Network;
use nix::libc;
use tokio::sync::oneshot;

use crate::egress::Egress;

/// A network namespace ready for one instance.
#[derive(Debug)]
pub struct InstanceNetwork {
    /// Bound to 127.0.0.1 inside the namespace, non-blocking.
    pub listener: std::net::TcpListener,
    /// The namespace the instance joins; `None` when the driver shares the host's.
    pub netns: Option<OwnedFd>,
}

impl InstanceNetwork {
    /// A listener on the host's loopback, for drivers without namespaces.
    pub fn host() -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        Ok(Self { listener, netns: None })
    }
}

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

/// Makes one namespace. Runs on the pool's thread, which enters the new namespace to open
/// the listener there and returns to `host` before it ends.
fn create(host: &OwnedFd, mode: Network, egress: &Egress) -> std::io::Result<InstanceNetwork> {
    use nix::sched::{CloneFlags, setns, unshare};
    unshare(CloneFlags::CLONE_NEWNET)?;
    let made = (|| -> std::io::Result<_> {
        loopback_up()?;
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let ns: OwnedFd = File::open("/proc/thread-self/ns/net")?.into();
        Ok((listener, ns))
    })();
    setns(host, CloneFlags::CLONE_NEWNET)?;
    let (listener, ns) = made?;
    if mode == Network::Egress {
        let link = egress.attach(host, &ns)?;
        tracing::debug!(host = %link.host_if, address = %link.instance_addr, "egress link ready");
    }
    Ok(InstanceNetwork { listener, netns: Some(ns) })
}

enum Job {
    Make(Network, oneshot::Sender<std::io::Result<InstanceNetwork>>),
    Refill,
}

#[derive(Default)]
struct Ready {
    by_mode: HashMap<Network, Vec<InstanceNetwork>>,
    /// Modes asked for at least once: only those are kept ready.
    wanted: HashMap<Network, usize>,
}

/// Namespaces made ahead of time, per [`Network`] mode.
#[derive(Clone)]
pub struct ReadyNetworks {
    ready: Arc<Mutex<Ready>>,
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for ReadyNetworks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ready = self.ready.lock().expect("pool lock");
        let sizes: HashMap<_, _> = ready.by_mode.iter().map(|(m, v)| (*m, v.len())).collect();
        f.debug_struct("ReadyNetworks").field("ready", &sizes).finish()
    }
}

impl ReadyNetworks {
    /// Starts the pool's thread; it keeps `target` namespaces ready for each mode in use
    /// (no-network ones from the start). Ends when the last handle is dropped.
    pub fn start(target: usize, egress: Egress) -> std::io::Result<Self> {
        let host: OwnedFd = File::open("/proc/thread-self/ns/net")?.into();
        let ready = Arc::new(Mutex::new(Ready::default()));
        ready.lock().expect("pool lock").wanted.insert(Network::None, target);
        let (jobs, rx) = mpsc::channel();
        let shared = ready.clone();
        std::thread::Builder::new()
            .name("hearth-netns".into())
            .spawn(move || run(&host, &shared, &rx, target, &egress))?;
        let _ = jobs.send(Job::Refill);
        Ok(Self { ready, jobs })
    }

    /// A namespace for `mode`: one made earlier if there is one, otherwise one made now.
    pub async fn take(&self, mode: Network) -> std::io::Result<InstanceNetwork> {
        let pooled = {
            let mut ready = self.ready.lock().expect("pool lock");
            ready.by_mode.get_mut(&mode).and_then(Vec::pop)
        };
        if let Some(n) = pooled {
            let _ = self.jobs.send(Job::Refill);
            return Ok(n);
        }
        let (tx, rx) = oneshot::channel();
        self.jobs.send(Job::Make(mode, tx)).map_err(|_| std::io::Error::other("the namespace thread has stopped"))?;
        rx.await.map_err(|_| std::io::Error::other("the namespace thread has stopped"))?
    }
}

/// The pool's thread: requests first, then topping up whatever is below target.
fn run(host: &OwnedFd, ready: &Mutex<Ready>, jobs: &mpsc::Receiver<Job>, target: usize, egress: &Egress) {
    loop {
        let short = {
            let r = ready.lock().expect("pool lock");
            r.wanted.iter().find(|(m, want)| r.by_mode.get(m).map_or(0, Vec::len) < **want).map(|(m, _)| *m)
        };
        let job = match short {
            Some(_) => match jobs.try_recv() {
                Ok(job) => Some(job),
                Err(mpsc::TryRecvError::Empty) => None,
                Err(mpsc::TryRecvError::Disconnected) => return,
            },
            None => match jobs.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            },
        };
        match (job, short) {
            (Some(Job::Make(mode, reply)), _) => {
                ready.lock().expect("pool lock").wanted.entry(mode).or_insert(target);
                let _ = reply.send(create(host, mode, egress));
            }
            (Some(Job::Refill), _) | (None, None) => {}
            (None, Some(mode)) => match create(host, mode, egress) {
                Ok(n) => ready.lock().expect("pool lock").by_mode.entry(mode).or_default().push(n),
                Err(e) => {
                    // Stop topping this mode up; requests still make their own (and fail
                    // with the reason).
                    tracing::warn!(%e, %mode, "cannot prepare network namespaces ahead of time");
                    ready.lock().expect("pool lock").wanted.remove(&mode);
                }
            },
        }
    }
}
