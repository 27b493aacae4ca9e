//! The hostile-function suite through the real server: each attack is deployed and invoked
//! over HTTP, must fail, and a normal function must still be served afterwards. Runs only as
//! root, where instances are sandboxed; every destructive case first checks the sandbox is
//! in place (its own pid namespace and cgroup limits), so a broken sandbox fails the test
//! rather than the machine.

use super::*;

const HOSTILE: &str = include_str!("../../../hearth-agent/tests/agent/fixtures/hostile.py");

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl Server {
    async fn attack(&self, name: &str, event: Value) -> Reply {
        let r = self.event(name, event.clone()).await;
        // The server keeps serving a normal function after every attack.
        let ok = self.event("bystander", json!({"after": event["attack"]})).await;
        assert_eq!((ok.status, ok.error.as_deref()), (StatusCode::OK, None), "after {event}: {:?}", ok.body);
        assert_eq!(ok.body["echo"]["after"], event["attack"]);
        r
    }
}

async fn hostile_server() -> Server {
    let s = start().await;
    s.deploy("bystander", FUNCTION, py(json!({}))).await;
    s.deploy("hostile", HOSTILE, py(json!({"timeout_s": 20, "memory_mb": 256}))).await;
    s
}

/// The sandbox is in place: PID 1 of its own pid namespace, inside memory and pids limits.
async fn assert_sandboxed(s: &Server, name: &str) {
    let r = s.event(name, json!({"attack": "processes"})).await;
    assert_eq!(r.body["pids"][0], 1, "not in a pid namespace of its own: {:?}", r.body);
    let r = s.event(name, json!({"attack": "read", "paths": ["/proc/self/cgroup"]})).await;
    let cg = r.body["/proc/self/cgroup"].as_str().unwrap().to_owned();
    for controller in ["memory", "pids"] {
        let line = cg.lines().find(|l| l.contains(controller) || l.starts_with("0::")).unwrap_or_default();
        assert!(line.contains("/hearth/"), "not in Hearth's {controller} cgroup: {cg}");
    }
}

#[tokio::test]
async fn hostile_reads_writes_and_views_fail() {
    if !is_root() {
        return; // Without root there is no sandbox (the README says so).
    }
    let s = hostile_server().await;
    // A token file like the one `hearth up` writes, and the platform's own files.
    let token_file = s._dir.path().join("config.toml");
    std::fs::write(&token_file, format!("token = \"{}\"\n", s.token)).unwrap();
    let db = s._dir.path().join("meta.db");
    s.deploy("other", "SECRET = 'other-function-code'\ndef handler(e, c): return SECRET\n", py(json!({}))).await;
    assert_eq!(s.event("other", json!({})).await.body, "other-function-code");
    let other_code: Vec<String> = walk(&s._dir.path().join("cache"))
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|c| c.contains("other-function-code")))
        .map(|p| p.display().to_string())
        .collect();
    assert!(!other_code.is_empty(), "the other function's code is unpacked on the host");
    // (An instance without network also has no resolver configuration of the host's.)
    let mut paths = vec![
        "/etc/shadow".to_owned(),
        "/etc/resolv.conf".to_owned(),
        db.display().to_string(),
        token_file.display().to_string(),
    ];
    paths.extend(other_code);
    let r = s.attack("hostile", json!({"attack": "read", "paths": paths})).await;
    for p in &paths {
        assert_eq!(r.body[p], "No such file or directory", "{p} is out of view: {:?}", r.body);
    }
    let r =
        s.attack("hostile", json!({"attack": "write", "paths": ["/var/task/main.py", "/etc/passwd", "/usr/x"]})).await;
    for p in ["/var/task/main.py", "/etc/passwd", "/usr/x"] {
        assert_eq!(r.body[p], "Read-only file system", "{p}: {:?}", r.body);
    }
    // No token or platform secret in its environment; /proc/1 is the instance itself.
    let r = s.attack("hostile", json!({"attack": "environment"})).await;
    assert!(!r.body.to_string().contains(&s.token), "the platform's token leaked: {:?}", r.body);
    assert_eq!(r.body["proc1_has_host_env"], false, "/proc/1 is not the host's init: {:?}", r.body);
    // Only its own processes: none of the host's (this test, the server, init).
    let r = s.attack("hostile", json!({"attack": "processes"})).await;
    assert_eq!(r.body["pids"], json!([1]), "{:?}", r.body);
    let commands = r.body["commands"].to_string();
    assert!(!commands.contains("gateway") && !commands.contains("init"), "{commands}");
    assert_sandboxed(&s, "hostile").await;
}

/// The cgroup directories of an instance of this (in-process) server.
fn cgroup_dirs(instance: &str) -> Vec<std::path::PathBuf> {
    let name = format!("{}-{instance}", std::process::id());
    ["memory/hearth", "pids/hearth", "cpu/hearth", "hearth"]
        .iter()
        .map(|d| Path::new("/sys/fs/cgroup").join(d).join(&name))
        .filter(|p| p.exists())
        .collect()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[tokio::test]
async fn hostile_connections_fail() {
    if !is_root() {
        return;
    }
    let s = hostile_server().await;
    // Another instance's Runtime API address, from its own environment.
    s.deploy("peer", HOSTILE, py(json!({}))).await;
    let peer = s.event("peer", json!({"attack": "environment"})).await;
    let peer_api = peer.body["environ"]["AWS_LAMBDA_RUNTIME_API"].as_str().unwrap().to_owned();
    let (peer_host, peer_port) = peer_api.rsplit_once(':').unwrap();
    let own = s.event("hostile", json!({"attack": "environment"})).await;
    let own_api = own.body["environ"]["AWS_LAMBDA_RUNTIME_API"].as_str().unwrap().to_owned();
    // A listener this test starts on the machine's loopback, and the control plane's port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let outside = listener.local_addr().unwrap().port();
    let control: u16 = s.url.rsplit_once(':').unwrap().1.parse().unwrap();
    let mut targets = vec![json!(["127.0.0.1", outside]), json!(["127.0.0.1", control])];
    if peer_api != own_api {
        // (Namespaces are separate, so the two ports may coincide; then the address is its own.)
        targets.push(json!([peer_host, peer_port.parse::<u16>().unwrap()]));
    }
    let r = s.attack("hostile", json!({"attack": "connect", "targets": targets})).await;
    let results = r.body.as_object().unwrap();
    assert_eq!(results.len(), targets.len(), "{results:?}");
    for (target, outcome) in results {
        assert_eq!(outcome, "Connection refused", "{target}: {results:?}");
    }
    // Nothing reached the listener.
    let accepted = tokio::time::timeout(Duration::from_millis(1), listener.accept()).await;
    assert!(accepted.is_err(), "a connection reached the host");
    // No route anywhere else: only `lo`, and a routing table without entries.
    let r = s.event("hostile", json!({"attack": "read", "paths": ["/proc/net/route", "/proc/net/dev"]})).await;
    assert_eq!(r.body["/proc/net/route"].as_str().unwrap().lines().count(), 1, "no routes: {:?}", r.body);
    let devices =
        r.body["/proc/net/dev"].as_str().unwrap().lines().skip(2).map(|l| l.split(':').next().unwrap().trim());
    assert_eq!(devices.collect::<Vec<_>>(), ["lo"]);
}

#[tokio::test]
async fn hostile_privilege_escalations_fail() {
    if !is_root() {
        return;
    }
    let s = hostile_server().await;
    assert_sandboxed(&s, "hostile").await;
    let r = s.attack("hostile", json!({"attack": "syscalls"})).await;
    for call in ["ptrace_attach_parent", "mount", "remount_root_rw", "unshare_user", "unshare_mount", "chroot"] {
        assert_eq!(r.body[call], "Operation not permitted", "{call}: {:?}", r.body);
    }
    for call in ["init_module", "finit_module"] {
        assert_eq!(r.body[call], "Operation not permitted", "{call}: {:?}", r.body);
    }
    for call in ["personality_no_randomize", "modify_ldt", "kcmp", "x32_getpid"] {
        assert_eq!(r.body[call], "Operation not permitted", "{call}: {:?}", r.body);
    }
    assert_eq!(r.body["io_uring_setup"], "Function not implemented", "{:?}", r.body);
    // Only local and IP sockets: vsock (which a network namespace does not isolate),
    // netlink (but for its routing protocol, which lists its own links) and packet sockets
    // do not exist for it.
    for call in ["socket_vsock", "socket_netlink_audit", "socket_packet", "socketpair_vsock"] {
        assert_eq!(r.body[call], "Address family not supported by protocol", "{call}: {:?}", r.body);
    }
    for call in ["socket_inet", "socket_inet6", "socket_unix", "socket_netlink_route"] {
        assert_eq!(r.body[call], "allowed", "{call}: {:?}", r.body);
    }
    // uid 0 does not exist in the instance's user namespace.
    assert_eq!(r.body["setuid_root"], "Invalid argument", "{:?}", r.body);
    // Setuid-root binaries of the host's /usr run without their privileges.
    let paths = ["/usr/bin/su", "/usr/bin/passwd"];
    let r = s.attack("hostile", json!({"attack": "setuid", "paths": paths})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    for p in paths {
        let v = &r.body[p];
        assert_eq!(v["setuid_bit"], true, "{p} is a setuid binary, so the attack was real: {v}");
        assert_eq!(v["euid"], v["uid"], "{p} ran with the caller's uid, not its owner's: {v}");
        assert_ne!(v["euid"], 0, "{v}");
    }
}

#[tokio::test]
async fn hostile_resource_exhaustion_is_contained() {
    if !is_root() {
        return;
    }
    let s = hostile_server().await;
    assert_sandboxed(&s, "hostile").await;
    // Fork bomb: stopped by the pids limit.
    let r = s.attack("hostile", json!({"attack": "fork_bomb"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let forked = r.body["forked"].as_u64().unwrap();
    assert!(forked < hearth_agent::PIDS_MAX, "{:?}", r.body);
    assert_eq!(r.body["error"], "Resource temporarily unavailable", "{:?}", r.body);
    // Memory bomb: killed at its 256 MB, reported as such; the crashed instance's cgroups go
    // with it.
    let crashed = s.instances("hostile").await[0]["id"].as_str().unwrap().to_owned();
    let groups = cgroup_dirs(&crashed);
    assert!(!groups.is_empty(), "the instance has cgroups");
    let r = s.attack("hostile", json!({"attack": "memory_bomb"})).await;
    assert_eq!(r.error.as_deref(), Some("Runtime.OutOfMemory"), "{:?}", r.body);
    let deadline = Instant::now() + Duration::from_secs(10);
    while groups.iter().any(|g| g.exists()) {
        assert!(Instant::now() < deadline, "cgroups left after the crash: {groups:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Filling /tmp stops at its 512 MB cap (the memory limit leaves room: 1 GB here).
    s.deploy("filler", HOSTILE, py(json!({"memory_mb": 1024, "timeout_s": 60}))).await;
    let r = s.attack("filler", json!({"attack": "fill_tmp"})).await;
    assert_eq!(r.body["fill"], "No space left on device", "{:?}", r.body);
    assert!((400..=512).contains(&r.body["mb"].as_u64().unwrap()), "{:?}", r.body);
    // A larger ephemeral storage gives a larger /tmp.
    s.deploy("filler", HOSTILE, py(json!({"memory_mb": 2048, "timeout_s": 60, "ephemeral_storage_mb": 1024}))).await;
    let r = s.attack("filler", json!({"attack": "fill_tmp"})).await;
    assert_eq!(r.body["fill"], "No space left on device", "{:?}", r.body);
    assert!((900..=1024).contains(&r.body["mb"].as_u64().unwrap()), "{:?}", r.body);
    // 10,000 open files stop at the limit.
    let r = s.attack("hostile", json!({"attack": "open_files"})).await;
    assert_eq!(r.body["error"], "Too many open files", "{:?}", r.body);
    assert!(r.body["opened"].as_u64().unwrap() < hearth_agent::NOFILE, "{:?}", r.body);
    // A CPU spin past the timeout.
    s.deploy("spinner", HOSTILE, py(json!({"timeout_s": 1}))).await;
    let r = s.attack("spinner", json!({"attack": "spin"})).await;
    assert_eq!(r.error.as_deref(), Some("Sandbox.Timedout"), "{:?}", r.body);
}

/// A `provided` function in sh: `kill -9 -1` (every process it may signal), after checking
/// it is PID 1 of its own pid namespace and not root; plus attacks with ordinary tools.
const SHELL_ATTACKER: &str = include_str!("../../../hearth-agent/tests/agent/fixtures/hostile_bootstrap.sh");

#[tokio::test]
async fn a_hostile_provided_function_is_contained() {
    if !is_root() {
        return;
    }
    let s = hostile_server().await;
    let mut entry = hearth_blob::fixtures::RawEntry::file("bootstrap", SHELL_ATTACKER.as_bytes());
    entry.unix_mode = 0o100755;
    s.deploy_zip("shell", hearth_blob::fixtures::raw_zip(&[entry]), json!({"runtime": "provided"})).await;
    let r = s.attack("shell", json!({"attack": "kill_all"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_ne!(r.body["kill_all"], "skipped", "the sandbox was in place, so the attack ran: {:?}", r.body);
    assert_eq!((r.body["mount"].as_str(), r.body["su"].as_str()), (Some("refused"), Some("refused")), "{:?}", r.body);
    assert_ne!(r.body["uid"], 0);
    // `kill -9 -1` reached only the instance's own processes: the server (this process)
    // still serves, and so do other instances.
    assert_eq!(s.event("hostile", json!({"attack": "processes"})).await.status, StatusCode::OK);
}

/// Two servers on one machine hand their instances host uids from blocks of their own, so
/// one server's instances can never act as another's.
#[tokio::test]
async fn two_servers_never_share_instance_uids() {
    if !is_root() {
        return;
    }
    let (a, b) = (hostile_server().await, hostile_server().await);
    let host_uid = |r: Reply| -> u32 {
        let map = r.body["/proc/self/uid_map"].as_str().unwrap().to_owned();
        // "read: <inner> <outer> 1"
        map.trim_start_matches("read: ").split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let read = json!({"attack": "read", "paths": ["/proc/self/uid_map"]});
    let (ua, ub) = (host_uid(a.event("hostile", read.clone()).await), host_uid(b.event("hostile", read).await));
    let block = |u: u32| (u - hearth_agent::UID_BASE) / hearth_agent::UID_BLOCK;
    assert!(ua >= hearth_agent::UID_BASE && ub >= hearth_agent::UID_BASE, "{ua} {ub}");
    assert_ne!(block(ua), block(ub), "host uids {ua} and {ub} come from one block");
}
