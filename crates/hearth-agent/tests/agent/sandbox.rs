//! The sandbox (as root): /var/task, cgroup limits, privileges, namespaces, minimal root, and
//! hostile functions. Every hostile event is guarded (`guard.rs`): the host reads the
//! instance's limits first, and the function checks its own sandbox before it attempts
//! anything.

use super::guard::{HOSTILE_PY, HOSTILE_SH, Sentinel, assert_limited, host_checked_guard, unguarded};
use super::*;

#[tokio::test]
async fn code_is_mounted_read_only_at_var_task() {
    let driver = ProcessDriver::detect();
    let root = nix_is_root();
    assert_eq!(driver.mounts_task_root(), root, "as root the driver mounts /var/task");
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    let probe = r#"
import os

def handler(event, context):
    try:
        open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "written"), "w").write("x")
        write = "allowed"
    except OSError as e:
        write = e.strerror
    return {"cwd": os.getcwd(), "root": os.environ["LAMBDA_TASK_ROOT"],
            "files": sorted(os.listdir(os.environ["LAMBDA_TASK_ROOT"])), "write": write}
"#;
    std::fs::write(code.join("main.py"), probe).unwrap();
    // The cache keeps code read-only; do the same here.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(code.join("main.py"), std::fs::Permissions::from_mode(0o444)).unwrap();
    let rt = runtimes(dir.path());
    let inst = start_instance(&driver, &rt, &spec(&code, config("python3", "main.handler")), Duration::from_secs(30))
        .await
        .unwrap();
    let (v, err) = answered(inst.invoke(invocation("m-1", "{}"), Duration::from_secs(10)).await.unwrap());
    assert!(!err, "{v}");
    assert_eq!(v["files"], json!(["main.py"]));
    assert_ne!(v["write"], "allowed", "the code is read-only");
    if root {
        assert_eq!((v["root"].as_str(), v["cwd"].as_str()), (Some("/var/task"), Some("/var/task")));
        assert_eq!(v["write"], "Read-only file system");
        let host_view: Vec<_> =
            std::fs::read_dir("/var/task").map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
        assert!(!host_view.iter().any(|f| f == "main.py"), "the mount is private to the instance");
    } else {
        assert_eq!(v["root"].as_str(), code.to_str());
    }
}

const LIMITS_PROBE: &str = r#"
import os, time
from hostile import guard

def handler(event, context):
    guard(event.get("guard"))
    if event.get("bomb"):
        hog = []
        while True:
            hog.append(bytearray(8 << 20))
    if event.get("spin"):
        end = time.time() + event["spin"]
        while time.time() < end:
            pass
        return {"cpu_seconds": time.process_time()}
    if event.get("forks"):
        n = 0
        try:
            while n < 5000:
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                n += 1
        except OSError:
            pass
        return {"forked": n}
    return {"ok": True}
"#;

#[tokio::test]
async fn cgroups_limit_memory_and_processes() {
    let driver = ProcessDriver::detect();
    if !nix_is_root() {
        assert!(driver.cgroups().is_none(), "without root there are no cgroups to manage");
    }
    if !require_root() {
        return;
    }
    let cg = driver.cgroups().expect("as root, cgroups (v1 or v2) are managed").clone();
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("main.py"), LIMITS_PROBE).unwrap();
    std::fs::write(code.join("hostile.py"), HOSTILE_PY).unwrap();
    let rt = runtimes(dir.path());
    let spec_for = |memory_mb: u32| {
        let mut cfg = config("python3", "main.handler");
        cfg.memory_mb = memory_mb;
        InstanceSpec { instance_id: format!("t{}", uuid_like()), ..spec(&code, cfg) }
    };

    // The sandbox is in place before anything destructive runs: the limits read from the
    // host, and the guard the probe runs first.
    let s = spec_for(128);
    let inst = start_instance(&driver, &rt, &s, Duration::from_secs(30)).await.unwrap();
    let v1 = cg.version() == hearth_agent::CgroupVersion::V1;
    let guard = host_checked_guard(&driver, &s.instance_id, 128);
    let event = |extra: Value| {
        let mut e = json!({"guard": guard});
        e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        e.to_string()
    };
    let v = unguarded(inst.invoke(invocation("p-1", &event(json!({}))), Duration::from_secs(10)).await.unwrap());
    assert_eq!(v["ok"], true, "{v}");
    // CPU: a quota proportional to memory (128 MB ≈ 7% of a CPU), applied after init.
    let quota = hearth_agent::cpu_quota_us(128).to_string();
    if v1 {
        assert_limited(&cg, &s.instance_id, "cpu", "cpu.cfs_quota_us", &quota);
    } else {
        assert_limited(&cg, &s.instance_id, "cpu", "cpu.max", &format!("{quota} 100000"));
    }
    let spin = event(json!({"spin": 1}));
    let v = unguarded(inst.invoke(invocation("p-spin", &spin), Duration::from_secs(10)).await.unwrap());
    let cpu = v["cpu_seconds"].as_f64().unwrap();
    assert!(cpu < 0.5, "a 1 s spin at 128 MB gets only its CPU share, not a whole CPU: {cpu} s");
    assert!(inst.max_memory_used_mb().is_some_and(|mb| mb > 0 && mb <= 128), "peak memory is measured");

    // Memory bomb: killed by the kernel, reported as Runtime.OutOfMemory.
    let r = inst.invoke(invocation("p-2", &event(json!({"bomb": 1}))), Duration::from_secs(30)).await.unwrap();
    let InvokeResult::Failed(e) = r else { panic!("expected an OOM kill, got {r:?}") };
    assert_eq!(e.error_type, "Runtime.OutOfMemory", "{}", e.message);
    drop(inst);

    // Fork bomb (with memory to spare, so the pids limit is what stops it); the instance
    // still answers afterwards.
    let forker = spec_for(2048);
    let inst = start_instance(&driver, &rt, &forker, Duration::from_secs(30)).await.unwrap();
    let guard = host_checked_guard(&driver, &forker.instance_id, 2048).to_string();
    let forks = format!(r#"{{"forks":1,"guard":{guard}}}"#);
    let v = unguarded(inst.invoke(invocation("p-3", &forks), Duration::from_secs(30)).await.unwrap());
    let forked = v["forked"].as_u64().unwrap();
    assert!(forked > 0 && forked < hearth_agent::PIDS_MAX, "forks stop at the pids limit: {forked}");
    let ok = format!(r#"{{"guard":{guard}}}"#);
    let v = unguarded(inst.invoke(invocation("p-4", &ok), Duration::from_secs(10)).await.unwrap());
    assert_eq!(v["ok"], true, "{v}");
    drop(inst);

    // Stopped instances leave no cgroup behind; leftovers of dead servers are swept.
    let base = match cg.version() {
        hearth_agent::CgroupVersion::V1 => std::path::PathBuf::from("/sys/fs/cgroup/memory/hearth"),
        hearth_agent::CgroupVersion::V2 => std::path::PathBuf::from("/sys/fs/cgroup/hearth"),
    };
    let ours = |id: &str| base.join(format!("{}-{id}", std::process::id()));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ours(&s.instance_id).exists() || ours(&forker.instance_id).exists() {
        assert!(std::time::Instant::now() < deadline, "an instance's cgroup was not removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Named for a pid above pid_max: no process can have it, so no live server's group.
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().parse().unwrap();
    let stale = base.join(format!("{}-stale", pid_max + 1));
    std::fs::create_dir(&stale).unwrap();
    assert!(cg.sweep_leftovers() >= 1);
    assert!(!stale.exists(), "a dead server's group is swept");
}

/// A survey of the sandbox from inside, after the fixture's guard (`hostile.py`, beside it).
const SURVEY: &str = r#"
import ctypes, os
from hostile import append, create, guard

libc = ctypes.CDLL(None, use_errno=True)

def attempt(fn, *args):
    ctypes.set_errno(0)
    rc = fn(*args)
    return "allowed" if rc == 0 else os.strerror(ctypes.get_errno())

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()

def read(path):
    try:
        open(path).close()
        return "allowed"
    except OSError as e:
        return e.strerror

def connect(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return "allowed"
    except OSError as e:
        return e.strerror or str(e)

def open_many(n):
    held = []
    try:
        for _ in range(n):
            held.append(open("/dev/null"))
        return "allowed"
    except OSError as e:
        return f"{len(held)}: {e.strerror}"
    finally:
        for f in held:
            f.close()

def handler(event, context):
    guard(event.get("guard"))
    return {
        "pid": os.getpid(),
        "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "interfaces": sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]),
        "hostname": os.uname().nodename,
        "host_listener": connect(event["host_port"]),
        "runtime_api": os.environ["AWS_LAMBDA_RUNTIME_API"],
        "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
        "uid_map": open("/proc/self/uid_map").read().split(),
        "cap_eff": status("CapEff"), "cap_bnd": status("CapBnd"),
        "no_new_privs": status("NoNewPrivs"), "seccomp": status("Seccomp"),
        "mount": attempt(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None),
        "unshare_user": attempt(libc.unshare, 0x10000000),
        "unshare_net": attempt(libc.unshare, 0x40000000),
        "ptrace": attempt(libc.ptrace, 0, 0, None, None),
        "chroot": attempt(libc.chroot, b"/tmp"),
        "setuid_root": attempt(libc.setuid, 0),
        "shadow": read("/etc/shadow"),
        "sentinel": append(event["sentinel"]),
        "write_etc": create("/etc/hearth-was-here"),
        "write_task": create(os.environ["LAMBDA_TASK_ROOT"] + "/hearth-was-here"),
        "host_home": os.path.exists("/root") or os.path.exists("/home") or os.path.exists("/work"),
        "init_module": attempt(libc.init_module, None, 0, b""),
        "finit_module": attempt(libc.syscall, 313, 0, b"", 0),
        "pid1_environ": open("/proc/1/environ").read().count("CARGO_MANIFEST_DIR"),
        "open_files": open_many(10_000),
        "tmp": create("/tmp/scratch"),
    }
"#;

#[tokio::test]
async fn instances_run_unprivileged_under_seccomp() {
    let driver = ProcessDriver::detect();
    if !nix_is_root() {
        assert!(!driver.drops_privileges(), "without root there is nothing to drop");
    }
    if !require_root() {
        return;
    }
    assert!(driver.drops_privileges(), "as root, instances drop privileges");
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("main.py"), SURVEY).unwrap();
    std::fs::write(code.join("hostile.py"), HOSTILE_PY).unwrap();
    let rt = runtimes(dir.path());
    let s = spec(&code, config("python3", "main.handler"));
    let inst = start_instance(&driver, &rt, &s, Duration::from_secs(30)).await.unwrap();
    // A listener on this machine's loopback and a file anyone may write: the instance must
    // reach neither.
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sentinel = Sentinel::new();
    let guard = host_checked_guard(&driver, &s.instance_id, 256);
    let event =
        json!({"host_port": host.local_addr().unwrap().port(), "sentinel": sentinel.path, "guard": guard}).to_string();
    let v = unguarded(inst.invoke(invocation("h-1", &event), Duration::from_secs(10)).await.unwrap());
    assert_eq!(v["pid"], 1, "the runtime is PID 1 of its own pid namespace");
    assert!(v["processes"].as_array().unwrap().len() <= 2, "no host processes visible: {}", v["processes"]);
    assert_eq!(v["interfaces"], json!(["lo"]), "only its own loopback");
    assert_eq!(v["hostname"], "hearth");
    assert_eq!(v["host_listener"], "Connection refused", "no way out to the host's loopback");
    let api = v["runtime_api"].as_str().unwrap().to_owned();
    let from_host = reqwest::get(format!("http://{api}/2018-06-01/ping")).await;
    assert!(
        from_host.is_err() || from_host.unwrap().text().await.unwrap() != "pong",
        "the Runtime API is unreachable from the host"
    );
    // In a user namespace of its own, where only its own unprivileged host uid is mapped.
    let inner = u64::from(hearth_agent::INNER_UID);
    assert_eq!((v["uid"].as_u64(), v["euid"].as_u64()), (Some(inner), Some(inner)), "{v}");
    assert_eq!(v["gid"].as_u64(), Some(u64::from(hearth_agent::INNER_GID)));
    let map: Vec<u64> = v["uid_map"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(map.len(), 3, "a single mapping: {v}");
    assert_eq!((map[0], map[2]), (inner, 1));
    assert!(map[1] >= u64::from(hearth_agent::UID_BASE), "an unprivileged host uid of its own: {v}");
    assert_eq!(v["cap_eff"], "0000000000000000", "no capabilities");
    assert_eq!(v["cap_bnd"], "0000000000000000", "empty bounding set");
    assert_eq!(
        (v["no_new_privs"].as_str(), v["seccomp"].as_str()),
        (Some("1"), Some("2")),
        "no_new_privs and a seccomp filter"
    );
    for call in ["mount", "unshare_user", "unshare_net", "ptrace", "chroot"] {
        assert_eq!(v[call], "Operation not permitted", "{call}: {v}");
    }
    // uid 0 does not even exist in the instance's user namespace.
    assert_eq!(v["setuid_root"], "Invalid argument", "{v}");
    // Out of view (ENOENT, where an unprivileged uid without the sandbox would see EACCES or
    // succeed): the host's /etc and a file anyone may write.
    assert_eq!(v["shadow"], "No such file or directory", "the host's /etc is out of view");
    assert_eq!(v["sentinel"], "No such file or directory", "a file anyone may write is out of view");
    sentinel.assert_untouched();
    // Read-only (EROFS, which only a read-only mount gives a new file).
    assert_eq!(
        (v["write_etc"].as_str(), v["write_task"].as_str()),
        (Some("Read-only file system"), Some("Read-only file system")),
        "{v}"
    );
    assert!(!std::path::Path::new("/etc/hearth-was-here").exists());
    assert_eq!(v["host_home"], false, "the host's /root and /home are out of view");
    assert_eq!(v["tmp"], "allowed", "/tmp is writable");
    assert_eq!(
        (v["init_module"].as_str(), v["finit_module"].as_str()),
        (Some("Operation not permitted"), Some("Operation not permitted"))
    );
    assert_eq!(v["pid1_environ"], 0, "/proc/1 is the instance itself, not the host's init");
    let files = v["open_files"].as_str().unwrap();
    assert!(files.ends_with("Too many open files"), "10,000 open files stop at the limit: {files}");
    // Filling /tmp stops at its cap (memory to spare: tmpfs pages count against the memory
    // limit, so the cap must be what stops it).
    let filler_code = dir.path().join("filler");
    std::fs::create_dir_all(&filler_code).unwrap();
    std::fs::write(filler_code.join("main.py"), HOSTILE_PY).unwrap();
    let mut big = config("python3", "main.handler");
    big.memory_mb = 1024;
    let filler_spec = spec(&filler_code, big);
    let filler = start_instance(&driver, &rt, &filler_spec, Duration::from_secs(30)).await.unwrap();
    let fill = json!({"attack": "fill_tmp", "guard": host_checked_guard(&driver, &filler_spec.instance_id, 1024)});
    let fill = filler.invoke(invocation("h-fill", &fill.to_string()), Duration::from_secs(60)).await.unwrap();
    let f = unguarded(fill);
    assert_eq!(f["fill"], "No space left on device", "{f}");
    let mb = f["mb"].as_u64().unwrap();
    assert!((400..=512).contains(&mb), "/tmp is capped at 512 MB: {mb}");
    drop(filler);
    // The instance still serves after the attempts.
    let again = unguarded(inst.invoke(invocation("h-2", &event), Duration::from_secs(10)).await.unwrap());
    assert_eq!(again["uid_map"], v["uid_map"]);
}

/// A `provided` runtime in sh, attacking with ordinary tools; each refusal is one only the
/// sandbox makes, and `kill -9 -1` reaches only the instance's own processes, not even a host
/// process running as its own host uid.
#[tokio::test]
async fn a_hostile_shell_function_is_contained_too() {
    if !require_root() {
        return;
    }
    let driver = ProcessDriver::detect();
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("bootstrap"), HOSTILE_SH).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(code.join("bootstrap"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let rt = runtimes(dir.path());
    let s = spec(&code, config("provided", "x"));
    let inst = start_instance(&driver, &rt, &s, Duration::from_secs(30)).await.unwrap();
    let call = |id: &'static str, event: Value| {
        let inst = &inst;
        async move { unguarded(inst.invoke(invocation(id, &event.to_string()), Duration::from_secs(20)).await.unwrap()) }
    };
    let guard = host_checked_guard(&driver, &s.instance_id, 256);
    let sentinel = Sentinel::new();
    let v = call(
        "sh-1",
        json!({"attack": "files", "guard": guard, "sentinel": sentinel.path, "new_name": "hearth-was-here"}),
    )
    .await;
    let failed_with = |attack: &str, errno: &str| {
        let said = v[attack].as_str().unwrap_or_default();
        assert!(said.ends_with(&format!(": {errno}")), "{attack}: {errno} expected: {v}");
    };
    for out_of_view in ["sentinel", "shadow", "root_home"] {
        failed_with(out_of_view, "No such file or directory");
    }
    for read_only in ["write_task", "write_etc", "write_usr"] {
        failed_with(read_only, "Read-only file system");
    }
    assert_eq!(v["unshare"], "unshare: unshare failed: Operation not permitted", "{v}");
    sentinel.assert_untouched();
    assert_eq!(v["uid"].as_u64(), Some(u64::from(hearth_agent::INNER_UID)), "not root: {v}");
    assert!(v["procs"].as_u64().unwrap() <= 8, "only its own processes are visible: {v}");

    // `kill -9 -1` kills its own child but not a host process of its own host uid.
    let p = call("sh-2", json!({"attack": "probe"})).await;
    let host_uid = p["uid_map"].as_str().unwrap().split_whitespace().nth(1).unwrap().parse::<u32>().unwrap();
    let mut same_uid = {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sleep").arg("60").uid(host_uid).spawn().unwrap()
    };
    let k = call("sh-3", json!({"attack": "kill_all", "guard": guard})).await;
    let survived = same_uid.try_wait().unwrap().is_none();
    let _ = same_uid.kill();
    let _ = same_uid.wait();
    assert_eq!((k["kill_all"].as_str(), k["own_child_status"].as_u64()), (Some("allowed"), Some(137)), "{k}");
    assert!(survived, "kill -9 -1 reached a host process of the instance's host uid {host_uid}");
    let v = call("sh-4", json!({"attack": "probe"})).await;
    assert_eq!(v["pid"], 1, "the instance itself still serves: {v}");
}
