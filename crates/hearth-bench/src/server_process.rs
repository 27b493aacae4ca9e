//! The real `hearth` binary run as a child process (`hearth up` on loopback with a temporary
//! data directory and HOME), so its memory, descriptors and threads can be read from
//! `/proc/<pid>/` the way an operator would see them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A `hearth up` child; killed when dropped unless [`HearthProcess::terminate`] stopped it.
pub struct HearthProcess {
    child: Child,
    /// The API's origin.
    pub url: String,
    /// The HTTP triggers' origin.
    pub trigger_url: String,
    /// The admin token the first start created.
    pub token: String,
    pub data_dir: PathBuf,
    /// The server's stderr (its warnings and errors).
    pub log: PathBuf,
    _home: tempfile::TempDir,
}

/// One reading of the server process and its data directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    pub rss_kb: u64,
    pub fds: u64,
    pub threads: u64,
    /// Instance cgroups named after the server (sandboxes: instances and pre-warmed cells).
    pub instances: u64,
    /// `metadata.db` + `metadata.db-wal`.
    pub db_bytes: u64,
}

/// The binary at `path`, or `target/release/hearth` of this workspace, built if missing.
pub fn hearth_binary(path: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = path {
        if !p.is_file() {
            bail!("no hearth binary at {}", p.display());
        }
        return Ok(p.to_owned());
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from);
    let bin = target.join("release/hearth");
    if !bin.is_file() {
        eprintln!("building {} (cargo build --release -p hearth-cli)", bin.display());
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "--release", "-p", "hearth-cli"])
            .current_dir(&workspace)
            .status()
            .context("cannot run cargo to build the hearth binary (or pass --hearth PATH)")?;
        if !status.success() || !bin.is_file() {
            bail!("building the hearth binary failed ({status}); pass --hearth PATH");
        }
    }
    Ok(bin)
}

impl HearthProcess {
    /// Starts `bin up` on loopback and waits for its banner. `env` is added to a cleared
    /// environment (PATH, HOME and the client config inside the temporary home).
    pub fn start(bin: &Path, env: &[(&str, String)]) -> Result<Self> {
        let home = tempfile::tempdir()?;
        let data_dir = home.path().join("data");
        let client_config = home.path().join("client.toml");
        let log = home.path().join("server.log");
        let child = Command::new(bin)
            .args(["up", "--listen", "127.0.0.1:0", "--trigger-listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("HEARTH_CLIENT_CONFIG", &client_config)
            .env("HEARTH_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut server = Self {
            child,
            url: String::new(),
            trigger_url: String::new(),
            token: String::new(),
            data_dir,
            log,
            _home: home,
        };
        let stdout = server.child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                bail!("hearth up did not report it was listening within 60 s; see {}", server.log.display());
            };
            // "listening on URL (data: ...); HTTP triggers on URL"
            let after = |marker: &str| line.split(marker).nth(1).and_then(|r| r.split_whitespace().next());
            if let (Some(api), Some(triggers)) = (after("listening on "), after("HTTP triggers on ")) {
                server.url = api.to_owned();
                server.trigger_url = triggers.to_owned();
                break;
            }
        }
        let config = std::fs::read_to_string(&client_config).context("the first start wrote no client config")?;
        server.token = config
            .lines()
            .find_map(|l| l.strip_prefix("token = "))
            .map(|t| t.trim_matches('"').to_owned())
            .context("no token in the client config")?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// RSS, descriptors and threads from `/proc/<pid>/`, and the database's size.
    pub fn read(&self) -> Result<Reading> {
        let proc = PathBuf::from(format!("/proc/{}", self.pid()));
        let status = std::fs::read_to_string(proc.join("status")).context("the server is gone")?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let fds = std::fs::read_dir(proc.join("fd"))?.count() as u64;
        let size = |name: &str| std::fs::metadata(self.data_dir.join(name)).map_or(0, |m| m.len());
        Ok(Reading {
            rss_kb: field("VmRSS:"),
            fds,
            threads: field("Threads:"),
            instances: self.cgroups(),
            db_bytes: size("metadata.db") + size("metadata.db-wal"),
        })
    }

    /// How many instance cgroups (`<pid>-<instance>`) the server has (0 without a sandbox).
    fn cgroups(&self) -> u64 {
        let prefix = format!("{}-", self.pid());
        ["/sys/fs/cgroup/memory/hearth", "/sys/fs/cgroup/hearth"]
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with(&prefix)).count())
            .max()
            .unwrap_or(0) as u64
    }

    /// SIGTERM, then wait for the exit (SIGKILL after `grace`). The exit status is an error
    /// unless the server stopped cleanly in time.
    pub fn terminate(mut self, grace: Duration) -> Result<()> {
        let signalled = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        if !signalled.is_ok_and(|s| s.success()) {
            bail!("cannot send SIGTERM to the server ({})", self.pid());
        }
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("the server exited with {status} after SIGTERM; see its log above");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("the server did not stop within {grace:?} of SIGTERM; killed");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's warning and error lines so far.
    pub fn log_problems(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for HearthProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
