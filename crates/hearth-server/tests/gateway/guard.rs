//! The guard in front of every attack of the hostile functions
//! (`hearth-agent/tests/agent/fixtures/hostile.{py,mjs}` and `hostile_bootstrap.sh`), shared
//! by both test binaries. Before each attack the harness probes the instance that will take
//! it, checks from the host that its memory and pids cgroups are this server's and hold the
//! function's memory and `PIDS_MAX`, and sends what it checked with the attack. The function
//! then checks, first thing, that it is PID 1 of its own pid namespace, not root, under a
//! read-only `/` and in those very groups, and aborts the attack otherwise; the harness fails
//! the test with the check the function named.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{FUNCTION, Reply, Server, py, start_with};

pub const HOSTILE: &str = include_str!("../../../hearth-agent/tests/agent/fixtures/hostile.py");
/// A `provided` function in sh: `kill -9 -1` and attacks with ordinary tools.
pub const SHELL_ATTACKER: &str = include_str!("../../../hearth-agent/tests/agent/fixtures/hostile_bootstrap.sh");
pub const NODE_ATTACKER: &str = include_str!("../../../hearth-agent/tests/agent/fixtures/hostile.mjs");

/// What the host knows of the instance that answered a probe.
pub struct Probed {
    /// The guard an attack carries: the groups checked and their limits.
    pub guard: Value,
    /// The host uid and gid the instance runs as.
    pub host_uid: u32,
    pub host_gid: u32,
}

/// Reads, from the host, the limits of the memory and pids groups an instance's
/// `/proc/self/cgroup` names: they must be groups of this server, and hold `memory_mb` and
/// `PIDS_MAX`. Returns the guard an attack carries.
pub fn limits_from_host(cgroup: &str, memory_mb: u64) -> Value {
    let group = |controller: &str| -> (String, String) {
        let v1 = cgroup.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            let named = controllers.split(',').any(|c| c == controller);
            named.then(|| (format!("/sys/fs/cgroup/{controllers}{path}"), path.to_owned()))
        });
        let v2 =
            || cgroup.lines().find_map(|l| l.strip_prefix("0::")).map(|p| (format!("/sys/fs/cgroup{p}"), p.into()));
        v1.or_else(v2).unwrap_or_else(|| panic!("no {controller} group in {cgroup}"))
    };
    let ((memory_dir, memory), (pids_dir, pids)) = (group("memory"), group("pids"));
    let ours = format!("/hearth/{}-", std::process::id());
    assert!(memory.starts_with(&ours) && pids.starts_with(&ours), "not in groups of this server ({ours}…): {cgroup}");
    let read = |f: String| std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{f}: {e}")).trim().to_owned();
    let v1_limit = format!("{memory_dir}/memory.limit_in_bytes");
    let limit = if std::path::Path::new(&v1_limit).exists() { v1_limit } else { format!("{memory_dir}/memory.max") };
    let bytes = memory_mb << 20;
    assert_eq!(read(limit.clone()), bytes.to_string(), "{limit}: the memory limit is the function's {memory_mb} MB");
    let pids_max = format!("{pids_dir}/pids.max");
    assert_eq!(read(pids_max.clone()), hearth_agent::PIDS_MAX.to_string(), "{pids_max}");
    json!({"cgroups": {"memory": memory, "pids": pids}, "memory_bytes": bytes, "pids_max": hearth_agent::PIDS_MAX})
}

/// The host id that `inner` maps to in a `/proc/<pid>/{uid,gid}_map`.
fn host_id(map: &str, inner: u64) -> u32 {
    map.lines()
        .find_map(|l| {
            let f: Vec<u64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            (f[0] <= inner && inner < f[0] + f[2]).then(|| u32::try_from(f[1] + inner - f[0]).unwrap())
        })
        .unwrap_or_else(|| panic!("{inner} is not mapped: {map}"))
}

impl Server {
    /// Probes the instance that will take `name`'s next event (starting it if there is none)
    /// and checks its limits from the host.
    pub async fn probe(&self, name: &str) -> Probed {
        let r = self.event(name, json!({"attack": "probe"})).await;
        assert_eq!((r.status, r.error.as_deref()), (StatusCode::OK, None), "probe of {name}: {:?}", r.body);
        let function = self.get_json(&format!("/v1/functions/{name}")).await;
        let memory_mb = function["config"]["memory_mb"].as_u64().unwrap();
        let text = |k: &str| r.body[k].as_str().unwrap_or_else(|| panic!("probe of {name}: {:?}", r.body)).to_owned();
        Probed {
            guard: limits_from_host(&text("cgroup"), memory_mb),
            host_uid: host_id(&text("uid_map"), r.body["uid"].as_u64().unwrap()),
            host_gid: host_id(&text("gid_map"), r.body["gid"].as_u64().unwrap()),
        }
    }

    /// Sends `event` to `name` carrying the host-side checks of a probe just before as its
    /// guard; fails the test, naming the check, if the function's guard aborted the attack.
    pub async fn guarded(&self, name: &str, event: Value) -> Reply {
        let mut event = event;
        event["guard"] = self.probe(name).await.guard;
        let r = self.event(name, event).await;
        assert_ne!(r.body["errorType"], "SandboxMissing", "{name}: the guard aborted the attack: {}", r.body);
        assert!(r.body.get("guard_failed").is_none(), "{name}: the guard aborted the attack: {}", r.body);
        r
    }

    /// A guarded attack, after which the server still serves a normal function.
    pub async fn attack(&self, name: &str, event: Value) -> Reply {
        let r = self.guarded(name, event.clone()).await;
        let ok = self.event("bystander", json!({"after": event["attack"]})).await;
        assert_eq!((ok.status, ok.error.as_deref()), (StatusCode::OK, None), "after {event}: {:?}", ok.body);
        assert_eq!(ok.body["echo"]["after"], event["attack"]);
        r
    }
}

/// A server with a normal function (`bystander`) and the hostile Python one (`hostile`).
/// Requests wait up to 30 s for an instance (rather than their function's timeout, as short
/// as 1 s here), so that a loaded machine slows the suite down instead of failing it.
pub async fn hostile_server() -> Server {
    let s = start_with(|g| g.queue_wait = Some(std::time::Duration::from_secs(30))).await;
    s.deploy("bystander", FUNCTION, py(json!({}))).await;
    s.deploy("hostile", HOSTILE, py(json!({"timeout_s": 20, "memory_mb": 256}))).await;
    s
}

/// Deploys the hostile `provided` function in sh as `name`.
pub async fn deploy_shell_attacker(s: &Server, name: &str) {
    let mut entry = hearth_blob::fixtures::RawEntry::file("bootstrap", SHELL_ATTACKER.as_bytes());
    entry.unix_mode = 0o100755;
    s.deploy_zip(name, hearth_blob::fixtures::raw_zip(&[entry]), json!({"runtime": "provided"})).await;
}
