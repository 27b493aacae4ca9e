//! End to end: the real `hearth` binary, as a new user runs it. One test binary; the tests
//! are grouped by concept in the modules below, this file holds the harness.

mod compiled;
mod contexts;
mod crash;
mod edge;
mod events;
mod friction;
mod isolation;
mod lifecycle;
mod manifest;
mod metrics;
mod nats;
mod readme;
mod schedules;
mod traces;
mod updates;
mod usage;
mod wasm;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_hearth");

/// Held by the tests that load the machine for a while (thousands of invocations) and by
/// those that assert timings (body timeouts, a cron schedule's pace): on 2 cores they do not
/// run at the same time.
fn heavy_or_timed() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An isolated home: data dir, client config, HOME all inside one temp dir.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("HEARTH_CLIENT_CONFIG", self.path().join("client.toml"))
            .env("HEARTH_LOG", "warn");
        c
    }

    fn up(&self) -> Server {
        self.up_with(&[])
    }

    fn up_with(&self, env: &[(&str, &str)]) -> Server {
        let mut command = self.up_command();
        self.spawn_up(command.envs(env.iter().copied()))
    }

    fn up_command(&self) -> Command {
        let mut c = self.cmd();
        c.args(["up", "--listen", "127.0.0.1:0", "--data-dir"]).arg(self.path().join("data"));
        c
    }

    /// Starts `command` (a `hearth up`) and waits until it listens.
    fn spawn_up(&self, command: &mut Command) -> Server {
        self.spawn_up_logging(command, Stdio::inherit())
    }

    /// The same, its log (stderr) sent to `stderr`.
    fn spawn_up_logging(&self, command: &mut Command, stderr: Stdio) -> Server {
        let child = command.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap();
        // Owned by a Server at once, so the process is killed even if start-up fails.
        let mut server = Server { child, url: String::new(), trigger_url: String::new(), banner: String::new() };
        let stdout = server.child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        loop {
            let line =
                rx.recv_timeout(Duration::from_secs(30)).expect("server did not report it was listening within 30 s");
            server.banner.push_str(&line);
            server.banner.push('\n');
            if let Some(rest) = line.split("listening on ").nth(1) {
                server.url = rest.split_whitespace().next().unwrap().to_owned();
                let triggers = line.split("HTTP triggers on ").nth(1).expect("the banner names the trigger URL");
                server.trigger_url = triggers.split_whitespace().next().unwrap().to_owned();
                return server;
            }
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs a command that must succeed and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "hearth {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Deploys `source` as the `main.py` of a Python function `name` (handler
    /// `main.handler`) with `hearth fn deploy`, and `extra` flags.
    fn deploy_python(&self, name: &str, source: &str, extra: &[&str]) {
        let dir = self.path().join("src").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("main.py"), source).unwrap();
        let dir = dir.to_str().unwrap().to_owned();
        let mut args = vec!["fn", "deploy", &dir, "--name", name, "--runtime", "python3", "--handler", "main.handler"];
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

struct Server {
    child: Child,
    /// The API's origin.
    url: String,
    /// The HTTP triggers' origin.
    trigger_url: String,
    banner: String,
}

impl Server {
    /// SIGTERM, then wait for the server to finish.
    fn terminate(mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        assert!(self.child.wait().unwrap().success(), "a graceful stop exits 0");
    }

    /// SIGTERM, and return at once (the server stops on its own).
    fn terminate_in_background(mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let mut child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        std::thread::spawn(move || child.wait());
    }

    /// `path` as the server sees it, in its own mount namespace (where its instance volume is
    /// mounted): through `/proc/<pid>/root`.
    fn view(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{}", self.child.id(), path.display()))
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    /// A server still running at the end of a test is stopped as an operator would stop it
    /// (SIGTERM, so it removes its instances' cgroups), killed if that takes over 5 s, and
    /// whatever instance cgroups it left then removed, so no test leaves anything behind
    /// (`scripts/check-leftovers` runs after the tests).
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return; // Already stopped (and reaped): its pid may belong to another process now.
        }
        let pid = self.child.id();
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        remove_instance_cgroups(pid);
    }
}

/// Kills the processes of the instance cgroups server `pid` left (`hearth/<pid>-<instance>`
/// under every controller) and removes the groups, within 5 s.
fn remove_instance_cgroups(pid: u32) {
    let prefix = format!("{pid}-");
    let groups = || -> Vec<PathBuf> {
        let parents = std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("hearth"))
            .chain([PathBuf::from("/sys/fs/cgroup/hearth")]);
        parents
            .flat_map(|p| std::fs::read_dir(p).into_iter().flatten().flatten())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = groups();
        if left.is_empty() || std::time::Instant::now() >= deadline {
            return;
        }
        for g in &left {
            for p in std::fs::read_to_string(g.join("cgroup.procs")).unwrap_or_default().lines() {
                let _ = Command::new("kill").args(["-KILL", p.trim()]).status();
            }
            let _ = std::fs::remove_dir(g);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn count_packages(home: &Home) -> usize {
    std::fs::read_dir(home.path().join("data/code/packages/sha256")).map(|d| d.count()).unwrap_or(0)
}

/// The host's mount points where an instance root could be left mounted: the staging root
/// `/run/hearth/root` and anything beneath the data directory (from `/proc/self/mountinfo`).
fn instance_mounts(data_dir: &Path) -> Vec<String> {
    let data = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    let staging = Path::new("/run/hearth/root");
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        // The fifth field is the mount point, with spaces and the like escaped as \ooo.
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\"))
        .filter(|m| {
            Path::new(m).starts_with(staging) || Path::new(m).starts_with(&data) || Path::new(m).starts_with(data_dir)
        })
        .collect()
}

/// Polls `done` every millisecond until it holds or `limit` passes; whether it held.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// The instance cgroups named after server `pid`.
fn cgroups_of(pid: u32) -> Vec<String> {
    ["/sys/fs/cgroup/memory/hearth", "/sys/fs/cgroup/hearth"]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with(&format!("{pid}-")))
        .collect()
}

/// Raw connections to a listener, for the limit tests.
fn raw_connect(url: &str) -> std::net::TcpStream {
    let addr = url.trim_start_matches("http://").trim_start_matches("https://");
    std::net::TcpStream::connect(addr).unwrap()
}

/// Reads what the server sends until it closes or `limit` passes.
fn read_until_closed(stream: &mut std::net::TcpStream, limit: Duration) -> (String, bool) {
    use std::io::Read;
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut out = vec![];
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

/// The admin token `hearth up` wrote into the client config on first start.
fn admin_token(home: &Home) -> String {
    let config = std::fs::read_to_string(home.path().join("client.toml")).unwrap();
    let start = config.find("hth_").expect("the client config holds the admin token");
    config[start..].split('"').next().unwrap().to_owned()
}
