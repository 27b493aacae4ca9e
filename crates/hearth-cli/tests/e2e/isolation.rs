//! What an instance can never get from the server: its descriptors, its environment, its Runtime API's descriptors through a flood, core dumps.

use super::*;

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

/// The loop devices attached to `image` (`losetup -j`), one line each.
fn loop_devices_of(image: &Path) -> String {
    let out = Command::new("losetup").arg("-j").arg(image).output().unwrap();
    assert!(out.status.success(), "losetup -j: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// An instance's mount table names no host path: its code (a stem cell's folder or a fully
/// started instance's), and the runtimes are on the server's instance volume, shown as
/// `/cache/...` and `/runtimes` on a loop device. The host never sees the volume mounted,
/// and its loop device goes when the server stops, even when it is killed.
#[test]
fn instances_read_no_host_path_in_their_mount_table() {
    let home = Home::new();
    let data = home.path().join("data");
    let image = data.join("volume.img");
    let server = home.up_with(&[("HEARTH_VOLUME_GB", "2")]);
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 2 << 30, "the volume has the size asked for");
    assert!(loop_devices_of(&image).contains("volume.img"), "the volume is on a loop device");
    assert!(server.view(&data.join("volume/cache")).is_dir(), "the server sees its code cache on the volume");
    assert_eq!(instance_mounts(&data), Vec::<String>::new(), "the host sees nothing mounted in the data directory");

    let code = home.path().join("mounts");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("main.py"),
        "def handler(event, context):\n    return open('/proc/self/mountinfo').read()\n",
    )
    .unwrap();
    let host_dir = home.path().to_str().unwrap().to_owned();
    for memory in ["128", "256"] {
        let name = format!("mounts-{memory}");
        let code = code.to_str().unwrap();
        let runtime = ["--runtime", "python3", "--handler", "main.handler", "--memory", memory];
        home.ok(&[&["fn", "deploy", code, "--name", &name][..], &runtime].concat());
        let table = home.json(&["invoke", &name])["result"].as_str().unwrap().to_owned();
        assert!(!table.contains(&host_dir), "{memory} MB: the mount table names the data directory: {table}");
        let line = |target: &str| {
            table
                .lines()
                .find(|l| l.split(' ').nth(4) == Some(target))
                .unwrap_or_else(|| panic!("no {target}: {table}"))
        };
        let (task, runtime) = (line("/var/task"), line("/var/runtime"));
        for (l, root) in [(task, "/cache/"), (runtime, "/runtimes")] {
            assert!(l.split(' ').nth(3).unwrap().starts_with(root), "{memory} MB: {l}");
            assert!(l.contains(" ext4 /dev/loop"), "{memory} MB: on the volume's loop device: {l}");
        }
    }

    server.kill();
    let detached = wait_for(Duration::from_secs(10), || !loop_devices_of(&image).contains("volume.img"));
    assert!(detached, "the killed server's volume is still attached: {}", loop_devices_of(&image));
    // Mounted again, with what it held, by the next server.
    let server = home.up();
    let digests = std::fs::read_dir(server.view(&data.join("volume/cache"))).unwrap().count();
    assert!(digests >= 1, "the unpacked code survived the restart on the volume");
    server.terminate();
    assert!(wait_for(Duration::from_secs(10), || loop_devices_of(&image).is_empty()), "detached after SIGTERM");
}

/// Whether any process holds the machine's egress lock (`flock -n` cannot take it alone).
fn egress_lock_held() -> bool {
    let lock = Path::new("/run/hearth/egress.lock");
    lock.exists() && !Command::new("flock").args(["-n"]).arg(lock).arg("true").status().unwrap().success()
}

fn nat_table_exists() -> bool {
    Command::new("nft").args(["list", "table", "ip", "hearth"]).output().unwrap().status.success()
}

/// A server whose instances had egress turns forwarding on and adds the NAT table; when it
/// stops, the last to use them, it removes the table and puts forwarding back as it was.
#[test]
fn egress_leaves_no_forwarding_or_nat_table_behind() {
    assert!(!egress_lock_held(), "another server uses egress on this machine: stop it to run this test");
    let forwarding = || std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap().trim().to_owned();
    let before = forwarding();
    let home = Home::new();
    let server = home.up();
    let code = home.path().join("out");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("main.py"),
        "import socket\n\ndef handler(event, context):\n    return [name for _, name in socket.if_nameindex()]\n",
    )
    .unwrap();
    let code = code.to_str().unwrap();
    home.ok(&[
        "fn",
        "deploy",
        code,
        "--name",
        "out",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
        "--network",
        "egress",
    ]);
    let links = home.json(&["invoke", "out"])["result"].to_string();
    assert!(links.contains("eth0"), "the instance has its egress link: {links}");
    assert_eq!(forwarding(), "1", "forwarding is on while an instance has egress");
    assert!(nat_table_exists() && egress_lock_held(), "the NAT table is in place, held by the server");

    server.terminate();
    assert!(!nat_table_exists(), "the last server to use egress removed the NAT table");
    assert_eq!(forwarding(), before, "forwarding is back as it was");
    assert!(!Path::new("/run/hearth/ip_forward.before").exists(), "nothing is left to restore");
}
