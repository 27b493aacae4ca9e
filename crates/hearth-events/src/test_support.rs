//! A real `nats-server` with JetStream, on a loopback port of its own, for tests: the binary
//! is Debian's (`scripts/test-deps.sh` installs it); a test that cannot find it fails with
//! that instruction, it does not pass without NATS.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `nats-server -js`, stopped (and its store removed) when dropped.
pub struct NatsServer {
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts one on a free loopback port and waits until it accepts clients.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With extra arguments (`--user`, `--pass`, ...).
    pub fn start_with(args: &[&str]) -> Self {
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or_else(|| panic!("nats-server is not installed: run scripts/test-deps.sh (as root) first"));
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut child = Command::new(binary)
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.split("Listening for client connections on ").nth(1) {
                    let _ = tx.send(at.trim().to_owned());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("nats-server did not say where it listens within 20 s"));
        Self { url: format!("nats://{addr}"), child, _dir: dir }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
