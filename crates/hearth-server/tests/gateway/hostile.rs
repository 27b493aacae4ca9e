//! The hostile-function suite through the real server: each attack is deployed and invoked
//! over HTTP, must fail with the error only the sandbox causes, and a normal function must
//! still be served afterwards. Needs root, where instances are sandboxed. Every attack is
//! guarded (`guard.rs`): it runs only once the host has checked the instance's limits and the
//! function has checked its own namespace, uid and read-only root, so a broken sandbox fails
//! the test rather than the machine. Destructive attacks (bombs, /tmp fills, CPU spin,
//! `kill -9 -1`) are in the `serial` test binary.

use super::*;
use hearth_agent::test_support::Sentinel;

#[tokio::test]
async fn hostile_reads_writes_and_views_fail() {
    if !require_root() {
        return;
    }
    let s = hostile_server().await;
    // A token file like the one `hearth up` writes, and the platform's own files.
    let token_file = s.dir.path().join("config.toml");
    std::fs::write(&token_file, format!("token = \"{}\"\n", s.token)).unwrap();
    let db = s.dir.path().join("meta.db");
    s.deploy("other", "SECRET = 'other-function-code'\ndef handler(e, c): return SECRET\n", py(json!({}))).await;
    assert_eq!(s.event("other", json!({})).await.body, "other-function-code");
    let other_code: Vec<String> = walk(&s.dir.path().join("cache"))
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|c| c.contains("other-function-code")))
        .map(|p| p.display().to_string())
        .collect();
    assert!(!other_code.is_empty(), "the other function's code is unpacked on the host");
    // Out of view (ENOENT; without the sandbox an unprivileged uid would see EACCES): the
    // host's /etc (and, without network, its resolver configuration), the platform's files
    // and another function's code, and a file any process may write.
    let sentinel = Sentinel::new();
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
    let r = s.attack("hostile", json!({"attack": "append", "paths": [&sentinel.path]})).await;
    assert_eq!(r.body[&sentinel.path], "No such file or directory", "{:?}", r.body);
    sentinel.assert_untouched();
    // Read-only: no new file in its code, the substitute /etc or the host's /usr (EROFS,
    // which only a read-only mount gives: without it an unprivileged uid would see EACCES).
    let read_only = new_names(&["/var/task", "/etc", "/usr"]);
    let r = s.attack("hostile", json!({"attack": "create", "paths": read_only})).await;
    for p in &read_only {
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
}

/// A new file's name in each of `dirs`, unique to this test process.
fn new_names(dirs: &[&str]) -> Vec<String> {
    dirs.iter().map(|d| format!("{d}/hearth-sentinel-{}", std::process::id())).collect()
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
    if !require_root() {
        return;
    }
    let s = hostile_server().await;
    // Another instance's Runtime API address, from its own environment.
    s.deploy("peer", HOSTILE, py(json!({}))).await;
    let peer = s.guarded("peer", json!({"attack": "environment"})).await;
    let peer_api = peer.body["environ"]["AWS_LAMBDA_RUNTIME_API"].as_str().unwrap().to_owned();
    let (peer_host, peer_port) = peer_api.rsplit_once(':').unwrap();
    let own = s.guarded("hostile", json!({"attack": "environment"})).await;
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
    let r = s.guarded("hostile", json!({"attack": "read", "paths": ["/proc/net/route", "/proc/net/dev"]})).await;
    assert_eq!(r.body["/proc/net/route"].as_str().unwrap().lines().count(), 1, "no routes: {:?}", r.body);
    let devices =
        r.body["/proc/net/dev"].as_str().unwrap().lines().skip(2).map(|l| l.split(':').next().unwrap().trim());
    assert_eq!(devices.collect::<Vec<_>>(), ["lo"]);
}

#[tokio::test]
async fn hostile_privilege_escalations_fail() {
    if !require_root() {
        return;
    }
    let s = hostile_server().await;
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

/// A `provided` function in sh, attacking with ordinary tools; each refusal is one only the
/// sandbox makes (its tool's message carries the errno's text). `kill -9 -1` is in the
/// `serial` binary.
#[tokio::test]
async fn a_hostile_provided_function_is_contained() {
    if !require_root() {
        return;
    }
    let s = hostile_server().await;
    deploy_shell_attacker(&s, "shell").await;
    let sentinel = Sentinel::new();
    let new_name = format!("hearth-sentinel-{}", std::process::id());
    let r = s.attack("shell", json!({"attack": "files", "sentinel": sentinel.path, "new_name": new_name})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let failed_with = |attack: &str, errno: &str| {
        let said = r.body[attack].as_str().unwrap_or_default();
        assert!(said.ends_with(&format!(": {errno}")), "{attack}: {errno} expected: {:?}", r.body);
    };
    for out_of_view in ["sentinel", "shadow", "root_home"] {
        failed_with(out_of_view, "No such file or directory");
    }
    for read_only in ["write_task", "write_etc", "write_usr"] {
        failed_with(read_only, "Read-only file system");
    }
    // Any unprivileged user may make a user namespace (and be root in it); seccomp refuses.
    assert_eq!(r.body["unshare"], "unshare: unshare failed: Operation not permitted", "{:?}", r.body);
    assert_eq!(r.body["uid"].as_u64(), Some(u64::from(hearth_agent::INNER_UID)), "{:?}", r.body);
    sentinel.assert_untouched();
}

/// Two servers on one machine hand their instances host uids from blocks of their own, so
/// one server's instances can never act as another's.
#[tokio::test]
async fn two_servers_never_share_instance_uids() {
    if !require_root() {
        return;
    }
    let (a, b) = (hostile_server().await, hostile_server().await);
    let (pa, pb) = (a.probe("hostile").await, b.probe("hostile").await);
    let (ua, ub) = (pa.host_uid, pb.host_uid);
    assert_eq!((pa.host_gid, pb.host_gid), (ua, ub), "each instance's host gid is its uid's number");
    let block = |u: u32| (u - hearth_agent::UID_BASE) / hearth_agent::UID_BLOCK;
    assert!(ua >= hearth_agent::UID_BASE && ub >= hearth_agent::UID_BASE, "{ua} {ub}");
    assert_ne!(block(ua), block(ub), "host uids {ua} and {ub} come from one block");
}

/// The Node runtime's hostile function runs the same guard; its attacks see the same errnos.
#[tokio::test]
async fn a_hostile_node_function_is_contained() {
    if !require_root() {
        return;
    }
    let s = hostile_server().await;
    let spec = json!({"runtime": "nodejs", "handler": "index.handler", "memory_mb": 256});
    s.deploy_zip("node", deflated_zip(&[("index.mjs", NODE_ATTACKER.as_bytes())]), spec).await;
    let sentinel = Sentinel::new();
    let out_of_view = ["/etc/shadow", &sentinel.path];
    let r = s.attack("node", json!({"attack": "read", "paths": out_of_view})).await;
    for p in out_of_view {
        assert_eq!(r.body[p], "ENOENT", "{p}: {:?}", r.body);
    }
    let r = s.attack("node", json!({"attack": "append", "paths": [&sentinel.path]})).await;
    assert_eq!(r.body[&sentinel.path], "ENOENT", "{:?}", r.body);
    sentinel.assert_untouched();
    let read_only = new_names(&["/var/task", "/etc", "/usr"]);
    let r = s.attack("node", json!({"attack": "create", "paths": read_only})).await;
    for p in &read_only {
        assert_eq!(r.body[p], "EROFS", "{p}: {:?}", r.body);
    }
    let r = s.attack("node", json!({"attack": "processes"})).await;
    assert_eq!(r.body["pids"], json!([1]), "{:?}", r.body);
}
