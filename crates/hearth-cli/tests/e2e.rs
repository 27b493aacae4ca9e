//! End to end: the real `hearth` binary, as a new user runs it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_hearth");

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
        let child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
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

#[test]
fn quickstart_versions_and_restart() {
    let home = Home::new();
    let server = home.up();
    assert!(server.banner.contains("admin token"), "first start prints the token: {}", server.banner);
    let client_cfg = std::fs::read_to_string(home.path().join("client.toml")).unwrap();
    assert!(client_cfg.contains(&server.url) && client_cfg.contains("hth_"), "client config written");

    let example = repo().join("examples/python-hello");
    let example = example.to_str().unwrap();
    let deploy = ["fn", "deploy", example, "--name", "hello", "--runtime", "python3", "--handler", "main.handler"];
    let out = home.ok(&deploy);
    assert!(out.contains("version 1"), "{out}");
    let list = home.json(&["fn", "list"]);
    assert_eq!(list[0]["name"], "hello");
    assert_eq!(list[0]["config"]["runtime"], "python3");
    assert_eq!(list[0]["latest_version"], 1);

    // The seed example: an HTTP trigger at /hello answers /hello/faas.
    home.ok(&["trigger", "add", "http", "hello", "--path", "/hello"]);
    let get = || reqwest::blocking::get(format!("{}/hello/faas", server.trigger_url)).unwrap();
    let r = get();
    assert_eq!(r.headers()["x-hearth-cold-start"], "true");
    assert_eq!(r.text().unwrap(), "Hello FaaS");
    let r = get();
    assert_eq!(r.headers()["x-hearth-cold-start"], "false");
    assert_eq!(r.text().unwrap(), "Hello FaaS");
    let listed = home.ok(&["trigger", "list"]);
    assert!(listed.contains(&format!("{}/hello", server.trigger_url)), "the trigger's URL: {listed}");
    // Triggers and the API are separate origins: neither answers the other's paths.
    let api_side = reqwest::blocking::get(format!("{}/hello/faas", server.url)).unwrap();
    assert_eq!(api_side.status(), 404, "trigger paths are not served on the API's origin");
    let trigger_side = reqwest::blocking::get(format!("{}/v1/functions", server.trigger_url)).unwrap();
    assert_eq!(trigger_side.status(), 404, "the API is not served on the triggers' origin");

    // Invoke it directly: the warm instance answers.
    let first = home.json(&["invoke", "hello", "--data", r#"{"x":1}"#]);
    assert_eq!((first["cold_start"].as_bool(), first["version"].as_u64()), (Some(false), Some(1)), "{first}");
    assert_eq!(first["result"]["statusCode"], 200);
    assert!(first["result"]["body"].as_str().unwrap().contains("\"x\": 1"), "{first}");
    let second = home.json(&["invoke", "hello"]);
    assert_eq!(second["cold_start"], false);
    let out = home.run(&["invoke", "hello", "--log"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && log.contains("START RequestId") && log.contains("REPORT RequestId"), "{log}");
    let all = home.ok(&["logs", "hello"]);
    assert!(all.matches("REPORT RequestId").count() >= 5, "every invocation is in the log: {all}");
    let instances = home.json(&["fn", "instances", "hello"]);
    assert_eq!(instances.as_array().unwrap().len(), 1);
    assert_eq!(instances[0]["requests_served"], 5);

    let pulled = home.path().join("pulled-v1");
    home.ok(&["fn", "code", "pull", "hello", pulled.to_str().unwrap()]);
    assert_eq!(tree(&pulled), tree(Path::new(example)), "pull returns the same files");
    assert!(home.ok(&deploy).contains("unchanged"), "same code, no new version");

    // New code: a copy of the example with a changed handler body.
    let v2 = home.path().join("hello-v2");
    std::fs::create_dir_all(&v2).unwrap();
    std::fs::write(v2.join("main.py"), "def handler(event, context):\n    return {'statusCode': 200, 'body': 'v2'}\n")
        .unwrap();
    let out = home.ok(&[
        "fn",
        "deploy",
        v2.to_str().unwrap(),
        "--name",
        "hello",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
    ]);
    assert!(out.contains("version 2"), "{out}");
    let versions = home.json(&["fn", "versions", "hello"]);
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_ne!(versions[0]["code"]["sha256"], versions[1]["code"]["sha256"]);
    let old = home.path().join("pulled-old");
    home.ok(&["fn", "code", "pull", "hello", old.to_str().unwrap(), "--version", "1"]);
    assert_eq!(tree(&old), tree(Path::new(example)), "the old version is still downloadable");
    assert_eq!(count_packages(&home), 2);

    // Kill -9 (with a live instance) and start again: everything is still there, nothing
    // re-uploaded, and the dead server's sandbox leftovers are swept.
    home.ok(&["invoke", "hello"]);
    let old_pid = server.child.id();
    let groups_of = cgroups_of;
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let sandboxed = !groups_of(old_pid).is_empty();
    assert_eq!(sandboxed, root, "as root, instances live in cgroups named after their server");
    // The live instance's network and mount namespaces, seen from its processes (waiting
    // out the old version's instance, which drains away meanwhile).
    let namespaces = || -> Vec<String> {
        groups_of(old_pid)
            .iter()
            .flat_map(|g| {
                ["/sys/fs/cgroup/memory/hearth", "/sys/fs/cgroup/hearth"]
                    .iter()
                    .filter_map(move |d| std::fs::read_to_string(format!("{d}/{g}/cgroup.procs")).ok())
            })
            .flat_map(|procs| procs.lines().map(str::to_owned).collect::<Vec<_>>())
            .flat_map(|p| ["net", "mnt"].map(|ns| std::fs::read_link(format!("/proc/{p}/ns/{ns}"))))
            .filter_map(Result::ok)
            .map(|l| l.display().to_string())
            .collect::<Vec<String>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut instance_namespaces = namespaces();
    while sandboxed && instance_namespaces.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        instance_namespaces = namespaces();
    }
    let own = |ns: &str| std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap().display().to_string();
    if sandboxed {
        assert!(!instance_namespaces.is_empty());
        assert!(!instance_namespaces.contains(&own("net")) && !instance_namespaces.contains(&own("mnt")));
    }
    server.kill();
    let server = home.up();
    if sandboxed {
        // Removal finishes once the killed processes are reaped.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !groups_of(old_pid).is_empty() {
            assert!(std::time::Instant::now() < deadline, "the restart did not sweep the killed server's cgroups");
            std::thread::sleep(Duration::from_millis(20));
        }
        // No process is left in the killed instance's namespaces, so the kernel has freed them
        // (Hearth never pins a namespace with a bind mount), and with them its mounts and veths.
        // The new server's own sandboxes are left out: the kernel reuses freed namespace
        // numbers, and its pre-warmed sandboxes start at once.
        let new_groups = format!("/hearth/{}-", server.child.id());
        let in_use: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| !std::fs::read_to_string(e.path().join("cgroup")).is_ok_and(|c| c.contains(&new_groups)))
            .flat_map(|e| ["net", "mnt"].map(|ns| std::fs::read_link(e.path().join("ns").join(ns))))
            .filter_map(Result::ok)
            .map(|l| l.display().to_string())
            .collect();
        let leaked: Vec<_> = instance_namespaces.iter().filter(|ns| in_use.contains(ns)).collect();
        assert!(leaked.is_empty(), "namespaces still in use after kill -9 and restart: {leaked:?}");
        let left = instance_mounts(&home.path().join("data"));
        assert!(left.is_empty(), "an instance's root is still mounted on the host: {left:?}");
    }
    assert!(!server.banner.contains("admin token"), "no new token on restart");
    let list = home.json(&["fn", "list"]);
    assert_eq!((list[0]["name"].as_str(), list[0]["latest_version"].as_u64()), (Some("hello"), Some(2)));
    assert_eq!(home.json(&["fn", "versions", "hello"]).as_array().unwrap().len(), 2);
    let again = home.path().join("pulled-after-restart");
    home.ok(&["fn", "code", "pull", "hello", again.to_str().unwrap(), "--version", "1"]);
    assert_eq!(tree(&again), tree(Path::new(example)));
    assert_eq!(count_packages(&home), 2, "nothing re-uploaded");

    // A second server on the same data directory is refused.
    let out = home.run(&["up", "--listen", "127.0.0.1:0", "--data-dir", home.path().join("data").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already using"));

    home.ok(&["fn", "delete", "hello"]);
    assert_eq!(home.json(&["fn", "list"]), serde_json::json!([]));

    // The node's memory and pre-warmed sandboxes (python3:128 and nodejs:128 by default).
    let node = home.json(&["node"]);
    assert!(node["memory_limit_mb"].as_u64().unwrap() > 0, "{node}");
    assert_eq!(node["prewarm_budget_mb"], 2048);

    // A graceful stop (SIGTERM) leaves no cgroup behind, pre-warmed sandboxes included.
    home.ok(&["fn", "deploy", example, "--name", "again", "--runtime", "python3", "--handler", "main.handler"]);
    home.ok(&["invoke", "again"]);
    let pid = server.child.id();
    assert_eq!(!groups_of(pid).is_empty(), sandboxed);
    server.terminate();
    assert!(groups_of(pid).is_empty(), "cgroups left after a graceful stop: {:?}", groups_of(pid));
}

#[test]
fn failures_have_codes_and_exit_statuses() {
    let home = Home::new();
    let _server = home.up();
    let code_of = |out: &Output| -> Value {
        let err: Value = serde_json::from_slice(&out.stderr).expect("--json errors are JSON on stderr");
        err["error"]["code"].clone()
    };

    let out = home.run(&["fn", "get", "nope", "--json"]);
    assert_eq!((out.status.code(), code_of(&out)), (Some(1), "FunctionNotFound".into()));
    let out = home.run(&["fn", "get", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("code: FunctionNotFound"));

    let example = repo().join("examples/python-hello");
    let example = example.to_str().unwrap();
    for (args, code) in [
        (vec!["--name", "Bad_Name", "--runtime", "python3", "--handler", "main.handler"], "InvalidFunctionName"),
        (vec!["--name", "f", "--runtime", "cobol", "--handler", "main.handler"], "InvalidRuntime"),
        (
            vec!["--name", "f", "--runtime", "python3", "--handler", "main.handler", "--memory", "32"],
            "InvalidMemorySize",
        ),
        (
            vec!["--name", "f", "--runtime", "python3", "--handler", "main.handler", "--timeout", "1000"],
            "InvalidTimeout",
        ),
        (
            vec!["--name", "f", "--runtime", "python3", "--handler", "main.handler", "-e", "AWS_REGION=x"],
            "ReservedEnvironmentVariable",
        ),
    ] {
        let mut full = vec!["fn", "deploy", example];
        full.extend(args);
        full.push("--json");
        let out = home.run(&full);
        assert_eq!((out.status.code(), code_of(&out)), (Some(1), code.into()), "{full:?}");
    }

    // A hostile zip given to `fn deploy` is refused by the server with its rule's code.
    let evil = home.path().join("evil.zip");
    std::fs::write(&evil, hearth_blob::fixtures::raw_zip(&[hearth_blob::fixtures::RawEntry::file("../evil.py", b"x")]))
        .unwrap();
    let out = home.run(&[
        "fn",
        "deploy",
        evil.to_str().unwrap(),
        "--name",
        "f",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
        "--json",
    ]);
    assert_eq!((out.status.code(), code_of(&out)), (Some(1), "ZipPathTraversal".into()));
    assert_eq!(count_packages(&home), 0);

    // A function error prints the error document and exits 1 naming the error type.
    let raising = home.path().join("raising");
    std::fs::create_dir_all(&raising).unwrap();
    std::fs::write(raising.join("main.py"), "def handler(event, context):\n    raise KeyError('missing')\n").unwrap();
    home.ok(&[
        "fn",
        "deploy",
        raising.to_str().unwrap(),
        "--name",
        "raiser",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
    ]);
    let out = home.run(&["invoke", "raiser"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("KeyError"), "the error document is printed");
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed with KeyError"));

    // Scopes through the CLI: a read token can list but not deploy.
    let token = home.json(&["token", "create", "--scope", "read", "--name", "viewer"]);
    let secret = token["token"].as_str().unwrap();
    let out = home.cmd().env("HEARTH_TOKEN", secret).args(["fn", "list"]).output().unwrap();
    assert!(out.status.success());
    let out = home
        .cmd()
        .env("HEARTH_TOKEN", secret)
        .args(["fn", "deploy", example, "--name", "f", "--runtime", "python3", "--handler", "main.handler", "--json"])
        .output()
        .unwrap();
    assert_eq!((out.status.code(), code_of(&out)), (Some(1), "InsufficientScope".into()));
    let out = home.cmd().env("HEARTH_TOKEN", "hth_wrong").args(["fn", "list", "--json"]).output().unwrap();
    assert_eq!(code_of(&out), "InvalidToken");

    let out = home.cmd().env("HEARTH_URL", "http://127.0.0.1:9").args(["fn", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "unreachable server");
    let out = home.run(&["fn", "deploy"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
}

#[test]
fn deploy_from_an_s3_object() {
    let s3 = hearth_blob::fixtures::S3TestServer::start();
    let http = reqwest::blocking::Client::new();
    let put = |path: &str, body: Vec<u8>| {
        let r = http.put(format!("{}{path}", s3.endpoint)).header("content-type", "application/zip").body(body);
        assert!(r.send().unwrap().status().is_success(), "PUT {path}");
    };
    put("/code", vec![]);
    put("/code/hello.zip", hearth_blob::fixtures::hello_python());

    let home = Home::new();
    let _server = home.up_with(&[
        ("HEARTH_S3_ENDPOINT", s3.endpoint.as_str()),
        ("HEARTH_S3_ALLOW_HTTP", "true"),
        ("HEARTH_S3_REGION", "us-east-1"),
        ("HEARTH_S3_ACCESS_KEY_ID", "test"),
        ("HEARTH_S3_SECRET_ACCESS_KEY", "test"),
    ]);
    let out = home.ok(&[
        "fn",
        "deploy",
        "s3://code/hello.zip",
        "--name",
        "from-s3",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
    ]);
    assert!(out.contains("version 1"), "{out}");
    let pulled = home.path().join("pulled");
    home.ok(&["fn", "code", "pull", "from-s3", pulled.to_str().unwrap()]);
    assert!(std::fs::read_to_string(pulled.join("main.py")).unwrap().contains("Hello FaaS"));
    let out = home.run(&[
        "fn",
        "deploy",
        "s3://code/missing.zip",
        "--name",
        "from-s3",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CodeObjectNotFound"));
}

#[test]
fn deploy_from_s3_without_s3_settings_is_refused() {
    // No [s3], no HEARTH_S3_* and no AWS_* (the environment is cleared): refused before any
    // request leaves the server, with what to set.
    let home = Home::new();
    let _server = home.up_with(&[("HEARTH_PREWARM_BUDGET_MB", "0")]);
    let deploy =
        ["fn", "deploy", "s3://code/hello.zip", "--name", "f", "--runtime", "python3", "--handler", "main.handler"];
    let out = home.run(&deploy);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("S3NotConfigured") && stderr.contains("HEARTH_S3_ENDPOINT"), "{stderr}");
}

/// Descriptors the server inherited or opened without `O_CLOEXEC` never reach an instance:
/// `hearth up` is started holding a root-only secret on fd 7 and a log file on fd 8, and
/// neither a pre-warmed (128 MB) nor a fully started (256 MB) Python instance can use them.
#[test]
fn inherited_descriptors_never_reach_instances() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let home = Home::new();
    let secret = home.path().join("secret.txt");
    std::fs::write(&secret, "root-only secret").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let log = home.path().join("server.log");
    std::fs::write(&log, "").unwrap();
    let secret_file = std::fs::File::open(&secret).unwrap();
    let log_file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let (secret_fd, log_fd) = (secret_file.as_raw_fd(), log_file.as_raw_fd());
    let mut command = home.up_command();
    // SAFETY: dup2 in the forked child; dup2 leaves the new descriptors without CLOEXEC, as a
    // shell's `7<secret 8>>log` would.
    unsafe {
        command.pre_exec(move || {
            for (from, to) in [(secret_fd, 7), (log_fd, 8)] {
                if nix::libc::dup2(from, to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let _server = home.spawn_up(&mut command);
    let code = home.path().join("fds");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("main.py"),
        r#"
import os, stat

# Every regular file it holds, read and written to: an inherited one would show here.
def handler(event, context):
    out = {}
    for fd in sorted(int(f) for f in os.listdir("/proc/self/fd")):
        try:
            st = os.fstat(fd)
        except OSError:
            continue  # the listing's own descriptor, closed by now
        entry = {"link": os.readlink("/proc/self/fd/%d" % fd) if fd > 2 else "stdio"}
        if stat.S_ISREG(st.st_mode):
            try:
                entry["read"] = os.pread(fd, 100, 0).decode(errors="replace")
            except OSError as e:
                entry["read"] = e.strerror
            try:
                os.write(fd, b"written by a function\n")
                entry["write"] = "written"
            except OSError as e:
                entry["write"] = e.strerror
        out[str(fd)] = entry
    return out
"#,
    )
    .unwrap();
    for memory in ["128", "256"] {
        let name = format!("fds-{memory}");
        let code = code.to_str().unwrap();
        home.ok(&[
            "fn",
            "deploy",
            code,
            "--name",
            &name,
            "--runtime",
            "python3",
            "--handler",
            "main.handler",
            "--memory",
            memory,
        ]);
        let r = home.json(&["invoke", &name]);
        let result = &r["result"];
        assert!(result.get("1").is_some(), "{memory} MB: the listing works: {result}");
        let text = result.to_string();
        assert!(!text.contains("root-only secret"), "{memory} MB: the server's secret reached the instance: {text}");
        assert!(!text.contains("written"), "{memory} MB: a server file was writable: {text}");
    }
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "", "nothing was written to the server's log file");
}

/// A function whose forked children open thousands of connections to its own Runtime API
/// and hold them costs the server a bounded number of descriptors: the server keeps
/// answering `/healthz` and other functions while the children still hold them.
#[test]
fn runtime_api_connection_flood_is_capped() {
    let home = Home::new();
    let server = home.up();
    let fds = || std::fs::read_dir(format!("/proc/{}/fd", server.child.id())).unwrap().count();
    let code = home.path().join("flood");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("main.py"),
        r#"
import os, socket, time

def hold(host, port, n, w, seconds):
    held = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect((host, port))
        except OSError:
            break
        held.append(s)
    os.write(w, b"%d\n" % len(held))
    time.sleep(seconds)
    os._exit(0)

def handler(event, context):
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
    r, w = os.pipe()
    for _ in range(event["children"]):
        if os.fork() == 0:
            hold(host, int(port), event["per_child"], w, event["hold_s"])
    os.close(w)
    lines = os.fdopen(r)
    return {"opened": sum(int(lines.readline()) for _ in range(event["children"]))}
"#,
    )
    .unwrap();
    let code = code.to_str().unwrap();
    home.ok(&[
        "fn",
        "deploy",
        code,
        "--name",
        "flood",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
        "--timeout",
        "60",
    ]);
    let example = repo().join("examples/python-hello");
    home.ok(&[
        "fn",
        "deploy",
        example.to_str().unwrap(),
        "--name",
        "bystander",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
    ]);
    assert_eq!(home.json(&["invoke", "bystander"])["result"]["statusCode"], 200);
    let before = fds();
    let r = home.json(&["invoke", "flood", "--data", r#"{"children": 4, "per_child": 1000, "hold_s": 60}"#]);
    let opened = r["result"]["opened"].as_u64().unwrap_or(0);
    // Far more than the cap (one per slot + 16): the rest wait in the kernel's backlog.
    assert!(opened > 100, "the attack really opened many connections: {r}");
    // The children still hold their connections here.
    let during = fds();
    assert!(during < before + 200, "the server holds {during} descriptors, {before} before {opened} connections");
    let health = reqwest::blocking::get(format!("{}/healthz", server.url)).unwrap();
    assert!(health.status().is_success());
    assert_eq!(home.json(&["invoke", "bystander"])["result"]["statusCode"], 200);
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

/// The public listeners bound what a caller can hold: connections past the cap cost the
/// server no descriptor, a request whose headers or body never finish is closed after its
/// timeout, and bodies buffered at once stay within the budget (503 `ServerBusy` past it).
#[test]
fn listeners_bound_connections_headers_and_bodies() {
    use std::io::Write;
    let home = Home::new();
    let server = home.up_with(&[
        ("HEARTH_MAX_CONNECTIONS", "40"),
        ("HEARTH_HEADER_TIMEOUT_S", "1"),
        ("HEARTH_BODY_TIMEOUT_S", "3"),
        ("HEARTH_BUFFERED_BODY_MB", "8"),
    ]);
    let fds = || std::fs::read_dir(format!("/proc/{}/fd", server.child.id())).unwrap().count();
    let before = fds();
    // 400 silent connections on each listener (half-open as far as HTTP goes).
    let mut idle: Vec<std::net::TcpStream> = vec![];
    for url in [&server.url, &server.trigger_url] {
        for _ in 0..400 {
            idle.push(raw_connect(url));
        }
    }
    let during = fds();
    assert!(
        during <= before + 2 * 40 + 10,
        "{during} descriptors with 800 idle connections (cap 40 per listener), {before} before"
    );
    // The header timeout closes silent connections, so the server keeps answering.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ok = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap()
            .get(format!("{}/healthz", server.url))
            .send()
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the API never answered while idle connections were held");
    }
    let (_, closed) = read_until_closed(&mut idle[0], Duration::from_secs(30));
    assert!(closed, "a connection that sent no headers is closed by the server");
    drop(idle);
    // Headers that never end: closed after the header timeout.
    let mut slow = raw_connect(&server.url);
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = std::time::Instant::now();
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(10));
    assert!(closed && started.elapsed() < Duration::from_secs(8), "unfinished headers are cut off");
    // A body that never ends: the request fails after the body timeout.
    let secret = std::fs::read_to_string(home.path().join("client.toml")).unwrap();
    let secret = secret.lines().find_map(|l| l.strip_prefix("token = ")).unwrap().trim_matches('"').to_owned();
    let example = repo().join("examples/python-hello");
    home.ok(&[
        "fn",
        "deploy",
        example.to_str().unwrap(),
        "--name",
        "hello",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
    ]);
    let partial_body = |len: usize| {
        let mut s = raw_connect(&server.url);
        let head = format!(
            "POST /v1/functions/hello/invoke HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\nContent-Length: {len}\r\n\r\n{{\"a\":"
        );
        s.write_all(head.as_bytes()).unwrap();
        s
    };
    let mut stalled = partial_body(100);
    let started = std::time::Instant::now();
    let (answer, _) = read_until_closed(&mut stalled, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 400"), "a stalled body fails: {answer}");
    assert!(started.elapsed() < Duration::from_secs(8), "within the body timeout");
    // Bodies buffered at once: two 6 MB bodies do not fit in 8 MB; whichever comes second
    // waits a moment for room, then gets 503 (the first fails at its body timeout).
    let mut pair = [partial_body(6 << 20), partial_body(6 << 20)];
    let answers: Vec<String> = pair.iter_mut().map(|s| read_until_closed(s, Duration::from_secs(10)).0).collect();
    let busy = answers.iter().filter(|a| a.starts_with("HTTP/1.1 503") && a.contains("ServerBusy")).count();
    assert_eq!(busy, 1, "{answers:?}");
    // Small requests still pass.
    assert_eq!(home.json(&["invoke", "hello"])["result"]["statusCode"], 200);
}

/// SIGTERM stops accepting, lets the request in flight finish, then exits 0.
#[test]
fn sigterm_finishes_requests_in_flight() {
    let home = Home::new();
    let server = home.up();
    let code = home.path().join("slow");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("main.py"),
        "import time\n\ndef handler(event, context):\n    time.sleep(event['s'])\n    return 'done'\n",
    )
    .unwrap();
    home.ok(&[
        "fn",
        "deploy",
        code.to_str().unwrap(),
        "--name",
        "slow",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
        "--timeout",
        "30",
    ]);
    assert_eq!(home.json(&["invoke", "slow", "--data", r#"{"s": 0}"#])["result"], "done");
    let mut call = home.cmd();
    call.args(["invoke", "slow", "--json", "--data", r#"{"s": 2}"#]).stdout(Stdio::piped());
    let caller = call.spawn().unwrap();
    // Wait until the call is in flight: the instance is busy.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !home.ok(&["fn", "instances", "slow"]).contains("busy") {
        assert!(std::time::Instant::now() < deadline, "the call never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = server.url.clone();
    server.terminate_in_background();
    let out = caller.wait_with_output().unwrap();
    assert!(out.status.success(), "the call in flight finished: {}", String::from_utf8_lossy(&out.stdout));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["result"], "done");
    let after = reqwest::blocking::Client::new().get(format!("{url}/healthz")).send();
    assert!(after.is_err(), "no new connections after SIGTERM");
}

/// Both listeners over HTTPS with a certificate that is reloaded when its files change.
#[test]
fn tls_on_both_listeners_with_reload() {
    let home = Home::new();
    let (cert, key) = (home.path().join("cert.pem"), home.path().join("key.pem"));
    let make = || {
        let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    };
    let (first, first_key) = make();
    std::fs::write(&cert, &first).unwrap();
    std::fs::write(&key, &first_key).unwrap();
    let server =
        home.up_with(&[("HEARTH_TLS_CERT", cert.to_str().unwrap()), ("HEARTH_TLS_KEY", key.to_str().unwrap())]);
    assert!(server.url.starts_with("https://") && server.trigger_url.starts_with("https://"), "{}", server.banner);
    let trusting = |pem: &str| {
        reqwest::blocking::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
            .build()
            .unwrap()
    };
    for url in [&server.url, &server.trigger_url] {
        let r = trusting(&first).get(format!("{url}/healthz")).send().unwrap();
        assert!(r.status().is_success(), "{url}");
        let plain = reqwest::blocking::get(format!("{}/healthz", url.replace("https://", "http://")));
        assert!(plain.is_err() || !plain.unwrap().status().is_success(), "plain HTTP is not served");
    }
    // A new certificate in the same files is served without a restart.
    let (second, second_key) = make();
    std::fs::write(&key, &second_key).unwrap();
    std::fs::write(&cert, &second).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while trusting(&second).get(format!("{}/healthz", server.url)).send().is_err() {
        assert!(std::time::Instant::now() < deadline, "the new certificate was never served");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(trusting(&first).get(format!("{}/healthz", server.url)).send().is_err(), "the old one is gone");
}

/// Incompressible bytes, reproducibly (xorshift): packages whose upload takes a while.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Files under `dir` (recursively) whose name satisfies `pred`.
fn files_named(dir: &Path, pred: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if pred(&e.file_name().to_string_lossy()) {
                out.push(p.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out
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

/// SIGKILL in the middle of the work a server does, five times on one data directory, each
/// at another point reached by waiting on what the server has done (not on time): while an
/// upload's body is arriving, while a package is being written, between a package landing and
/// its version being written, with invocations in flight, and while a new version's package is
/// being unpacked for a cold start; each time with concurrent callers, a deploy and an upload
/// under way. After each kill the store is sound, every version's package is there and matches
/// its name, nothing half-written is left in the code store or the code cache, the killed
/// server's cgroups and mounts are gone, and every function answers.
#[test]
fn sigkill_mid_deploy_upload_and_invocations_leaves_a_consistent_store() {
    use std::io::Write;
    let home = Home::new();
    let data = home.path().join("data");
    let (code_dir, cache_dir) = (data.join("code"), data.join("cache"));
    let packages = code_dir.join("packages/sha256");
    let slow = home.path().join("slow");
    std::fs::create_dir_all(&slow).unwrap();
    std::fs::write(
        slow.join("main.py"),
        "import time\n\ndef handler(event, context):\n    time.sleep(event.get('s', 0))\n    return 'slept'\n",
    )
    .unwrap();
    let big = home.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    let deploy = |dir: &Path, name: &str| {
        let mut c = home.cmd();
        c.args(["fn", "deploy", dir.to_str().unwrap(), "--name", name, "--runtime", "python3"]).args([
            "--handler",
            "main.handler",
            "--timeout",
            "30",
        ]);
        c
    };
    let write_big = |round: u64| {
        std::fs::write(big.join("main.py"), format!("def handler(event, context):\n    return {{'round': {round}}}\n"))
            .unwrap();
        std::fs::write(big.join("blob.bin"), noise(round, 32 << 20)).unwrap();
    };
    let mut server = home.up();
    assert!(deploy(&slow, "slow").status().unwrap().success());
    write_big(100);
    assert!(deploy(&big, "big").status().unwrap().success());
    let token = std::fs::read_to_string(home.path().join("client.toml")).unwrap();
    let token = token.lines().find_map(|l| l.strip_prefix("token = ")).unwrap().trim_matches('"').to_owned();
    let sandboxed = !cgroups_of(server.child.id()).is_empty();

    let points =
        ["upload body arriving", "package being written", "package stored", "invocations in flight", "unpacking"];
    for (round, point) in points.iter().enumerate() {
        let round = round as u64;
        let known: Vec<PathBuf> = files_named(&packages, &|_| true);
        // Concurrent callers of the slow function, until the server is gone.
        let callers: Vec<_> = (0..6)
            .map(|_| {
                let (url, token) = (server.url.clone(), token.clone());
                std::thread::spawn(move || {
                    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
                    let mut answered = 0;
                    while http
                        .post(format!("{url}/v1/functions/slow/invoke"))
                        .bearer_auth(&token)
                        .body(r#"{"s": 0.3}"#)
                        .send()
                        .is_ok_and(|r| r.status().is_success())
                    {
                        answered += 1;
                    }
                    answered
                })
            })
            .collect();
        // A package upload on a connection of our own: half the body, a signal, the rest.
        let upload = hearth_blob::fixtures::raw_zip(&[hearth_blob::fixtures::RawEntry::file(
            "data.bin",
            &noise(1000 + round, 24 << 20),
        )]);
        let (half_sent, half_sent_rx) = mpsc::channel();
        let uploader = {
            let (url, token) = (server.url.clone(), token.clone());
            std::thread::spawn(move || {
                let mut s = raw_connect(&url);
                let head = format!(
                    "POST /v1/packages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/zip\r\nContent-Length: {}\r\n\r\n",
                    upload.len()
                );
                let (first, rest) = upload.split_at(upload.len() / 2);
                let _ = s.write_all(head.as_bytes()).and_then(|()| s.write_all(first));
                let _ = half_sent.send(());
                let _ = s.write_all(rest);
                read_until_closed(&mut s, Duration::from_secs(30)).0
            })
        };
        // A new version of the big function: the CLI zips 32 MiB, uploads it and deploys.
        write_big(round);
        let mut deployer = deploy(&big, "big").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let new_package = || files_named(&packages, &|n| n.ends_with(".zip")).iter().any(|p| !known.contains(p));
        let reached = match round {
            0 => half_sent_rx.recv_timeout(Duration::from_secs(60)).is_ok(),
            1 => wait_for(Duration::from_secs(60), || !files_named(&packages, &|n| n.contains('#')).is_empty()),
            2 => wait_for(Duration::from_secs(60), new_package),
            3 => wait_for(Duration::from_secs(60), || {
                let list = home.json(&["fn", "instances", "slow"]);
                list.as_array().unwrap().iter().filter(|i| i["state"] == "busy").count() >= 3
            }),
            _ => {
                assert!(deployer.wait().unwrap().success(), "the deploy before the cold start");
                let (url, token) = (server.url.clone(), token.clone());
                std::thread::spawn(move || {
                    let _ = reqwest::blocking::Client::new()
                        .post(format!("{url}/v1/functions/big/invoke"))
                        .bearer_auth(token)
                        .body("{}")
                        .send();
                });
                wait_for(Duration::from_secs(60), || {
                    !files_named(&cache_dir, &|n| n.starts_with(".unpack-")).is_empty()
                })
            }
        };
        let old_pid = server.child.id();
        server.kill();
        let _ = deployer.wait();
        let _ = uploader.join();
        for c in callers {
            c.join().unwrap();
        }
        let cut_short = files_named(&code_dir, &|n| n.contains('#')).len()
            + files_named(&cache_dir, &|n| n.starts_with(".unpack-")).len();
        eprintln!("round {round}: killed at '{point}' (reached: {reached}; {cut_short} writes cut short)");

        // The store as the kill left it.
        let store = hearth_store::SqliteStore::open(&data.join("metadata.db")).unwrap();
        assert_eq!(store.integrity_problems().unwrap(), Vec::<String>::new(), "round {round}: the database is sound");
        drop(store);

        server = home.up();
        assert!(server.banner.contains("listening on"), "round {round}: restarted on the same data directory");
        let half_done = files_named(&code_dir, &|n| n.contains('#'));
        assert!(half_done.is_empty(), "round {round}: unfinished uploads left in the code store: {half_done:?}");
        let unpacking = files_named(&cache_dir, &|n| n.starts_with(".unpack-"));
        assert!(unpacking.is_empty(), "round {round}: unfinished unpacks left in the code cache: {unpacking:?}");
        // Every stored package is named by its sha256.
        for p in files_named(&packages, &|_| true) {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let digest = hearth_types::CodeDigest::of(&std::fs::read(&p).unwrap());
            assert_eq!(name, format!("{}.zip", digest.as_str()), "round {round}: a package that is not its name");
        }
        // Every version of every function points at a stored package; numbers have no gap.
        let list = home.json(&["fn", "list"]);
        let names: Vec<String> = list.as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().into()).collect();
        assert_eq!(names.len(), 2, "round {round}: {list}");
        for (f, name) in list.as_array().unwrap().iter().zip(&names) {
            let versions = home.json(&["fn", "versions", name]);
            let versions = versions.as_array().unwrap();
            let mut numbers: Vec<u64> = versions.iter().map(|v| v["number"].as_u64().unwrap()).collect();
            numbers.sort();
            assert_eq!(numbers, (1..=versions.len() as u64).collect::<Vec<_>>(), "round {round}: {name}");
            assert_eq!(f["latest_version"].as_u64(), Some(versions.len() as u64), "round {round}: {name}");
            for v in versions {
                let sha = v["code"]["sha256"].as_str().unwrap();
                assert!(
                    packages.join(format!("{sha}.zip")).is_file(),
                    "round {round}: {name} v{} has no package",
                    v["number"]
                );
            }
            // And answers.
            let r = home.json(&["invoke", name]);
            assert!(!r["result"].is_null(), "round {round}: {name} answered nothing: {r}");
        }
        // Nothing of the killed server's sandboxes is left once the new one has swept.
        if sandboxed {
            assert!(
                wait_for(Duration::from_secs(10), || cgroups_of(old_pid).is_empty()),
                "round {round}: the killed server's cgroups are still there: {:?}",
                cgroups_of(old_pid)
            );
            let left = instance_mounts(&home.path().join("data"));
            assert!(left.is_empty(), "round {round}: an instance root is still mounted: {left:?}");
        }
    }
    server.terminate();
}

/// The admin token `hearth up` wrote into the client config on first start.
fn admin_token(home: &Home) -> String {
    let config = std::fs::read_to_string(home.path().join("client.toml")).unwrap();
    let start = config.find("hth_").expect("the client config holds the admin token");
    config[start..].split('"').next().unwrap().to_owned()
}

/// HTTP triggers come from the store on start: after a restart, graceful or SIGKILL, the
/// trigger URL known before answers, its methods and auth kept, with no API call in between.
#[test]
fn triggers_route_after_a_restart() {
    let home = Home::new();
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (api, triggers) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let up = || {
        let mut command = home.cmd();
        command.args(["up", "--listen", &api, "--trigger-listen", &triggers, "--data-dir"]);
        home.spawn_up(command.arg(home.path().join("data")))
    };
    let mut server = up();
    let base = server.trigger_url.clone();
    assert_eq!(base, format!("http://{triggers}"), "{}", server.banner);
    let example = repo().join("examples/python-hello");
    let example = example.to_str().unwrap();
    home.ok(&["fn", "deploy", example, "--name", "hello", "--runtime", "python3", "--handler", "main.handler"]);
    home.ok(&["trigger", "add", "http", "hello", "--path", "/greet", "--methods", "GET"]);
    home.ok(&["trigger", "add", "http", "hello", "--path", "/private", "--auth", "token"]);
    let token = admin_token(&home);
    let http = reqwest::blocking::Client::new();
    // What each trigger answers: the greeting, the method refused, the token required.
    let answers = || {
        let get = |path: &str| http.get(format!("{base}{path}")).send().unwrap();
        let greet = get("/greet/faas");
        let greeting = (greet.status().as_u16(), greet.text().unwrap());
        let post = http.post(format!("{base}/greet")).send().unwrap().status().as_u16();
        let anonymous = get("/private").status().as_u16();
        let with_token = http.get(format!("{base}/private")).bearer_auth(&token).send().unwrap();
        let other = get("/elsewhere").status().as_u16();
        (greeting, post, anonymous, with_token.status().as_u16(), other)
    };
    let expected = ((200, "Hello FaaS".to_owned()), 405, 401, 200, 404);
    assert_eq!(answers(), expected, "before the restart");
    for stop in ["SIGTERM", "SIGKILL"] {
        if stop == "SIGTERM" {
            server.terminate();
        } else {
            server.kill();
        }
        server = up();
        assert_eq!(server.trigger_url, base, "the same trigger URL after {stop}");
        // The first requests the new server sees are these: no API call has been made.
        assert_eq!(answers(), expected, "after a restart by {stop}");
    }
    server.terminate();
}

/// A function whose children crash and report how, then (asked to) crashes itself.
const CRASHING_FUNCTION: &str = r#"
import ctypes, glob, os

def rlimit_core():
    for line in open("/proc/self/limits"):
        if line.startswith("Max core file size"):
            return line.split()[4:6]

def cores():
    return sorted(p for d in {os.getcwd(), "/tmp", "/var/task", "/"} for p in glob.glob(os.path.join(d, "core*")))

def crash(how):
    if how == "abort":
        os.abort()
    ctypes.memset(0, 1, 1)  # a write to address 0

def handler(event, context):
    if "crash" in event:
        crash(event["crash"])
    children = {}
    for how in ("abort", "segv"):
        pid = os.fork()
        if pid == 0:
            os.chdir("/tmp")  # writable, so a core named by a relative core_pattern could land here
            crash(how)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        signal = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        children[how] = {"signal": signal, "core_dumped": os.WIFSIGNALED(status) and os.WCOREDUMP(status)}
    return {"rlimit_core": rlimit_core(), "cwd": os.getcwd(), "cores": cores(), "children": children}
"#;

/// Files named like core dumps (`core`, `core.<pid>`, ...) under `dir`, recursively.
fn core_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "core" || name.starts_with("core.") {
                out.push(e.path());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// An instance that crashes (SIGABRT, SIGSEGV) dumps no core, even under a server allowed
/// to dump its own: its RLIMIT_CORE is 0, the kernel reports no dump, no core file appears
/// inside or on the host, the caller gets `Runtime.ExitError`, and the server serves on.
#[test]
fn crashing_instances_dump_no_core() {
    let home = Home::new();
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap().trim().to_owned();
    // A path pattern puts every core in one folder of the host; a relative one in the crashing
    // process's folder (inside the sandbox, or the data directory's code cache seen from it).
    let host_folder = pattern.starts_with('/').then(|| Path::new(&pattern).parent().unwrap().to_path_buf());
    let before = host_folder.as_deref().map(core_files).unwrap_or_default();
    let cwd_before = core_files(&std::env::current_dir().unwrap());
    // The server may dump core itself (as under LimitCORE=infinity): only Hearth keeps its
    // instances from doing so.
    let mut command = Command::new("prlimit");
    let up = home.up_command();
    command.args(["--core=unlimited:unlimited", "--", BIN]).args(up.get_args());
    command.env_clear().envs(up.get_envs().filter_map(|(k, v)| Some((k, v?))));
    let server = home.spawn_up(&mut command);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).unwrap();
    assert!(limits.lines().any(|l| l.starts_with("Max core file size") && l.contains("unlimited")), "{limits}");

    let code = home.path().join("crash");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("main.py"), CRASHING_FUNCTION).unwrap();
    let deploy = ["fn", "deploy", code.to_str().unwrap(), "--name", "crash", "--runtime", "python3"];
    home.ok(&[&deploy[..], &["--handler", "main.handler", "--timeout", "30"]].concat());
    let token = admin_token(&home);
    let http = reqwest::blocking::Client::new();
    let invoke = |event: &str| {
        let r = http
            .post(format!("{}/v1/functions/crash/invoke", server.url))
            .bearer_auth(&token)
            .body(event.to_owned())
            .send()
            .unwrap();
        let error = r.headers().get("x-hearth-function-error").map(|v| v.to_str().unwrap().to_owned());
        (r.status().as_u16(), error, r.json::<Value>().unwrap())
    };

    let (status, error, report) = invoke("{}");
    assert_eq!((status, error), (200, None), "{report}");
    assert_eq!(report["rlimit_core"], serde_json::json!(["0", "0"]), "soft and hard RLIMIT_CORE inside: {report}");
    for (how, signal) in [("abort", 6), ("segv", 11)] {
        let child = &report["children"][how];
        assert_eq!(child["signal"], signal, "a child crashed by {how}: {report}");
        assert_eq!(child["core_dumped"], false, "the kernel dumped a core of a child crashed by {how}: {report}");
    }
    assert_eq!(report["cores"], serde_json::json!([]), "core files inside the sandbox: {report}");

    for how in ["abort", "segv"] {
        let (status, error, body) = invoke(&format!(r#"{{"crash": "{how}"}}"#));
        assert_eq!((status, error.as_deref()), (200, Some("Runtime.ExitError")), "crash by {how}: {body}");
        let (status, error, _) = invoke("{}");
        assert_eq!((status, error), (200, None), "the server serves on after a crash by {how}");
    }
    let data = home.path().join("data");
    assert_eq!(core_files(&data), Vec::<PathBuf>::new(), "core files in the data directory");
    assert_eq!(core_files(&std::env::current_dir().unwrap()), cwd_before, "core files in the server's folder");
    if let Some(folder) = &host_folder {
        assert_eq!(core_files(folder), before, "core files where core_pattern {pattern:?} puts them");
    }
    server.terminate();
}

/// The server's own environment (its token, S3 and AWS secrets) never reaches a function:
/// instances get an explicit environment, not the server's.
#[test]
fn the_servers_environment_never_reaches_functions() {
    let home = Home::new();
    let secrets = [
        ("HEARTH_TOKEN", "hth_0000000000000000000000000000000000000000000000000000000000000000"),
        ("HEARTH_S3_ACCESS_KEY_ID", "server-s3-key-id-e2e"),
        ("HEARTH_S3_SECRET_ACCESS_KEY", "server-s3-secret-e2e"),
        ("AWS_SECRET_ACCESS_KEY", "server-aws-secret-e2e"),
        ("SERVER_ONLY_SETTING", "server-only-value-e2e"),
    ];
    let _server = home.up_with(&secrets);
    let code = home.path().join("env");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("main.py"),
        "import os\n\ndef handler(event, context):\n    return {'environ': dict(os.environ), 'pid1': open('/proc/1/environ').read()}\n",
    )
    .unwrap();
    let code = code.to_str().unwrap();
    for memory in ["128", "256"] {
        let name = format!("env-{memory}");
        home.ok(&[
            "fn",
            "deploy",
            code,
            "--name",
            &name,
            "--runtime",
            "python3",
            "--handler",
            "main.handler",
            "--memory",
            memory,
        ]);
        // The client's own HEARTH_TOKEN is not set: the CLI uses its config file.
        let r = home.json(&["invoke", &name]);
        let seen = r["result"].to_string();
        assert!(
            seen.contains("AWS_LAMBDA_FUNCTION_NAME"),
            "{memory} MB: the function's own environment is there: {seen}"
        );
        for (key, value) in secrets {
            assert!(!seen.contains(value), "{memory} MB: the server's {key} reached the function: {seen}");
        }
    }
}

/// A request still running when the grace period (`HEARTH_SHUTDOWN_GRACE_S`) ends does not
/// hold the stop: the server exits once it has passed, the caller's connection closed.
#[test]
fn sigterm_gives_up_after_the_grace_period() {
    let home = Home::new();
    let mut server = home.up_with(&[("HEARTH_SHUTDOWN_GRACE_S", "1")]);
    let code = home.path().join("slower");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("main.py"),
        "import time\n\ndef handler(event, context):\n    time.sleep(60)\n    return 'done'\n",
    )
    .unwrap();
    let code = code.to_str().unwrap();
    home.ok(&[
        "fn",
        "deploy",
        code,
        "--name",
        "slower",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
        "--timeout",
        "120",
    ]);
    let mut call = home.cmd();
    call.args(["invoke", "slower", "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let caller = call.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !home.ok(&["fn", "instances", "slower"]).contains("busy") {
        assert!(std::time::Instant::now() < deadline, "the call never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped_at = std::time::Instant::now();
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(stopped_at.elapsed() < Duration::from_secs(30), "the server still runs 30 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = stopped_at.elapsed();
    assert!(exit.success(), "a stop after the grace period still exits 0");
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(20), "stopped after {took:?}");
    let out = caller.wait_with_output().unwrap();
    assert!(!out.status.success(), "the cut-off call is reported as failed: {}", String::from_utf8_lossy(&out.stdout));
}
