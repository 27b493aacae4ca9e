//! `network: egress`: the instance gets a link to the host with NAT beyond it. Traffic goes
//! only to servers this test starts: one on the host (which the instance must not reach),
//! one in a network namespace the test makes itself (standing in for the uplink).

use std::io::{Read, Write};
use std::process::Command;

use super::*;

const NET_FUNCTION: &str = r#"
import socket, struct

def gateway():
    for line in open("/proc/net/route").readlines()[1:]:
        f = line.split()
        if f[1] == "00000000":
            return socket.inet_ntoa(struct.pack("<L", int(f[2], 16)))
    return None

def handler(event, context):
    if event.get("read"):
        try:
            return {"text": open(event["read"]).read()}
        except OSError as e:
            return {"error": e.strerror}
    host = event.get("host") or gateway()
    if host is None:
        return {"error": "no default route"}
    try:
        s = socket.create_connection((host, event["port"]), timeout=2)
        own = s.getsockname()[0]
        s.sendall(b"hello")
        reply = s.recv(100).decode()
        s.close()
        return {"reply": reply, "own": own, "host": host}
    except OSError as e:
        return {"error": e.strerror or str(e), "host": host}
"#;

/// Accepts one connection on `listener`, reads the greeting and answers with the peer's IP.
fn answer_one(listener: std::net::TcpListener) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let (mut conn, peer) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        conn.write_all(peer.ip().to_string().as_bytes()).unwrap();
        peer.ip().to_string()
    })
}

fn ip(args: &str) {
    let out = Command::new("ip").args(args.split_whitespace()).output().unwrap();
    assert!(out.status.success(), "ip {args}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A network namespace made by this test, linked to the host by a veth pair with
/// 198.18.<n>.<4m+1> (host) and 198.18.<n>.<4m+2> (inside; RFC 2544's benchmarking range).
/// Its names come from a hash of this process, a counter and the time, so that no other run's
/// are taken; a name already in use fails the test rather than being deleted. Removed on drop.
struct Uplink {
    name: String,
    host: String,
    inside: String,
}

impl Uplink {
    fn new() -> Self {
        use std::hash::{Hash, Hasher};
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (std::process::id(), COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)).hash(&mut h);
        std::time::SystemTime::now().hash(&mut h);
        let tag = format!("{:08x}", h.finish() as u32);
        let (n, m) =
            (u32::from_str_radix(&tag[..4], 16).unwrap() % 250, u32::from_str_radix(&tag[4..], 16).unwrap() % 64);
        // "hto" + 8 hex digits: 11 bytes, within IFNAMSIZ's 15.
        let (name, host_if, inner_if) = (format!("hearth-test-{tag}"), format!("hto{tag}"), format!("hti{tag}"));
        let (host, inside) = (format!("198.18.{n}.{}", 4 * m + 1), format!("198.18.{n}.{}", 4 * m + 2));
        assert!(!Path::new(&format!("/run/netns/{name}")).exists(), "namespace {name} exists: not ours to take");
        assert!(
            !Path::new(&format!("/sys/class/net/{host_if}")).exists(),
            "interface {host_if} exists: not ours to take"
        );
        let taken = Command::new("ip").args(["-o", "addr", "show", "to", &format!("{host}/30")]).output().unwrap();
        assert!(taken.stdout.is_empty(), "{host}/30 is in use: {}", String::from_utf8_lossy(&taken.stdout));
        ip(&format!("netns add {name}"));
        // From here on, dropping it (also on a failed step) removes what was made.
        let uplink = Self { name, host, inside };
        let name = &uplink.name;
        ip(&format!("link add {host_if} type veth peer name {inner_if} netns {name}"));
        ip(&format!("addr add {}/30 dev {host_if}", uplink.host));
        ip(&format!("link set {host_if} up"));
        ip(&format!("-n {name} addr add {}/30 dev {inner_if}", uplink.inside));
        ip(&format!("-n {name} link set {inner_if} up"));
        uplink
    }

    /// A listener inside the namespace.
    fn listen(&self) -> std::net::TcpListener {
        let path = format!("/run/netns/{}", self.name);
        let inside = self.inside.clone();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(path).unwrap();
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            std::net::TcpListener::bind((inside.as_str(), 0)).unwrap()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Uplink {
    fn drop(&mut self) {
        // Deleting the namespace removes the veth pair with it.
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

#[tokio::test]
async fn egress_is_masqueraded_beyond_the_host_and_kept_off_it() {
    if !require_root() {
        return; // Egress needs the sandbox, which needs root.
    }
    let s = start().await;
    s.deploy("net", NET_FUNCTION, py(json!({"network": "egress", "timeout_s": 10}))).await;

    // Beyond the host: the uplink sees the host's address, not the instance's (NAT).
    let uplink = Uplink::new();
    let remote = uplink.listen();
    let port = remote.local_addr().unwrap().port();
    let seen = answer_one(remote);
    let r = s.event("net", json!({"host": uplink.inside, "port": port})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let own = r.body["own"].as_str().unwrap_or_default().to_owned();
    assert!(own.starts_with("10.211."), "the instance has an address of its own: {:?}", r.body);
    let via = seen.join().unwrap();
    assert_eq!(r.body["reply"], via);
    assert_eq!(via, uplink.host, "masqueraded to the host's address");

    // The host itself is out of reach, even a service bound to every address.
    let host_side = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = host_side.local_addr().unwrap().port();
    let r = s.event("net", json!({"port": port})).await;
    assert_eq!(r.body["error"], "timed out", "a host service on 0.0.0.0 is out of reach: {:?}", r.body);
    host_side.set_nonblocking(true).unwrap();
    assert!(host_side.accept().is_err(), "nothing reached the host's listener");
    // Private, link-local (cloud metadata) and loopback ranges beyond the host are dropped
    // by the rules in the kernel (checked there, not by sending traffic to them).
    let out = Command::new("nft").args(["list", "table", "ip", "hearth"]).output().unwrap();
    let rules = String::from_utf8_lossy(&out.stdout);
    for range in ["10.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8"] {
        assert!(rules.contains(range), "{range} is dropped: {rules}");
    }
    assert!(rules.contains("hook input"), "input from instances is dropped: {rules}");

    // Instances cannot reach one another through the host.
    s.deploy("net2", NET_FUNCTION, py(json!({"network": "egress", "timeout_s": 10}))).await;
    let remote = uplink.listen();
    let port = remote.local_addr().unwrap().port();
    let _seen = answer_one(remote);
    let other = s.event("net2", json!({"host": uplink.inside, "port": port})).await;
    let other_addr = other.body["own"].as_str().unwrap().to_owned();
    assert_ne!(other_addr, own);
    let r = s.event("net", json!({"host": other_addr, "port": 9})).await;
    assert_eq!(r.body["error"], "timed out", "forwarding between instances is dropped: {:?}", r.body);

    // A function without egress has no route out at all, and no resolver configuration;
    // one with egress sees the host's.
    s.deploy("closed", NET_FUNCTION, py(json!({}))).await;
    let r = s.event("closed", json!({"port": 9})).await;
    assert_eq!(r.body["error"], "no default route", "{:?}", r.body);
    let r = s.event("closed", json!({"read": "/etc/resolv.conf"})).await;
    assert_eq!(r.body["error"], "No such file or directory", "{:?}", r.body);
    if let Ok(host_conf) = std::fs::read_to_string("/etc/resolv.conf") {
        let r = s.event("net", json!({"read": "/etc/resolv.conf"})).await;
        assert_eq!(r.body["text"], host_conf, "{:?}", r.body);
    }

    // This test is the binary's one user of egress: when it lets go, the table and
    // forwarding go (as `hearth up` does on SIGTERM), unless another server holds them.
    drop(s);
    hearth_agent::release_egress();
    let lock = std::path::Path::new("/run/hearth/egress.lock");
    let others = !Command::new("flock").arg("-n").arg(lock).arg("true").status().unwrap().success();
    if !others {
        let table = Command::new("nft").args(["list", "table", "ip", "hearth"]).output().unwrap();
        assert!(!table.status.success(), "the NAT table is removed once nothing uses it");
        assert!(!std::path::Path::new("/run/hearth/ip_forward.before").exists(), "forwarding is restored");
    }
}
