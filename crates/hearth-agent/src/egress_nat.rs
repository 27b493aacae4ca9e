//! The machine-wide part of egress: IPv4 forwarding and the nftables table `ip hearth`, shared
//! by every Hearth server on the machine that has instances with egress.
//!
//! A process holds a shared lock on `/run/hearth/egress.lock` while anything in it uses them
//! ([`NatUse`], counted). When its last user goes, or at [`release_egress`] when the server
//! stops, it lets go of the lock and tries to take it alone: if it can, no other server uses
//! egress, and it removes the table and puts forwarding back as the first server found it
//! (`/run/hearth/ip_forward.before`). A server setting up waits while another tears down, so
//! the two never interleave. After a SIGKILL nothing is removed until the next server that
//! used egress stops; `scripts/check-leftovers` reports a table or forwarding state nobody
//! holds.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

const DIR: &str = "/run/hearth";
const LOCK: &str = "/run/hearth/egress.lock";
/// Forwarding as the first server found it (`0` or `1`).
const FORWARD_BEFORE: &str = "/run/hearth/ip_forward.before";
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

struct Users {
    count: usize,
    /// The shared lock, held while `count` > 0.
    lock: Option<File>,
}

static USERS: Mutex<Users> = Mutex::new(Users { count: 0, lock: None });

fn users() -> std::sync::MutexGuard<'static, Users> {
    USERS.lock().unwrap_or_else(|p| p.into_inner())
}

/// One user's hold on forwarding and the NAT table; they stay while any hold does.
#[derive(Debug)]
pub(crate) struct NatUse(());

impl NatUse {
    /// Forwarding on and the table of `rules` in place (replaced when this process is the
    /// first user in it).
    pub(crate) fn acquire(rules: &str) -> Result<Self, String> {
        let mut users = users();
        if users.lock.is_none() {
            std::fs::create_dir_all(DIR).map_err(|e| format!("cannot create {DIR}: {e}"))?;
            let lock = File::create(LOCK).map_err(|e| format!("cannot create {LOCK}: {e}"))?;
            // Waits while the last user of another server tears the table down.
            lock.lock_shared().map_err(|e| format!("cannot lock {LOCK}: {e}"))?;
            let before = std::fs::read_to_string(IP_FORWARD).map_err(|e| format!("cannot read {IP_FORWARD}: {e}"))?;
            // The first user since the machine booted (or since the last one cleaned up).
            if let Ok(mut f) = OpenOptions::new().write(true).create_new(true).open(FORWARD_BEFORE) {
                let _ = f.write_all(before.trim().as_bytes());
            }
            std::fs::write(IP_FORWARD, "1").map_err(|e| format!("cannot enable IPv4 forwarding: {e}"))?;
            crate::egress::run("nft", &["-f", "-"], rules).map_err(|e| e.to_string())?;
            users.lock = Some(lock);
        }
        users.count += 1;
        Ok(Self(()))
    }
}

impl Drop for NatUse {
    fn drop(&mut self) {
        let mut users = users();
        users.count = users.count.saturating_sub(1);
        if users.count == 0 {
            release(&mut users);
        }
    }
}

/// Lets go of this process's hold, whatever still holds it (the server is stopping), and
/// removes the table and restores forwarding if no other server uses them.
pub fn release_egress() {
    let mut users = users();
    users.count = 0;
    release(&mut users);
}

fn release(users: &mut Users) {
    let Some(lock) = users.lock.take() else { return };
    let _ = lock.unlock();
    // Alone only if no other server holds it shared.
    if lock.try_lock().is_err() {
        return;
    }
    if let Err(e) = crate::egress::run("nft", &["delete", "table", "ip", "hearth"], "") {
        tracing::warn!(%e, "cannot remove the nftables table `ip hearth`");
    }
    if let Ok(before) = std::fs::read_to_string(FORWARD_BEFORE) {
        match std::fs::write(IP_FORWARD, before.trim()) {
            Ok(()) => {
                let _ = std::fs::remove_file(FORWARD_BEFORE);
            }
            Err(e) => tracing::warn!(%e, "cannot restore IPv4 forwarding"),
        }
    }
}
