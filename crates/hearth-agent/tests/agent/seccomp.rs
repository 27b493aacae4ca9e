//! The seccomp allow-list against what real functions call (as root). Each example function
//! (Python, Node, `provided`) runs in the real sandbox, with the real bootstraps, under
//! `strace -ff` through its cold start, init, one invocation and an idle wait; every syscall
//! it makes after the filters are installed must be allowed. The list must also keep out the
//! calls that reach the kernel's or other processes' business, and the runtimes' features
//! that lean on the kernel (threads, child processes, DNS, network interfaces) must still work.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;

/// Calls no instance may make, whatever it runs.
#[rustfmt::skip]
const DANGEROUS: &[&str] = &[
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp", "process_madvise", "mount", "umount2",
    "pivot_root", "chroot", "fsopen", "fsmount", "fsconfig", "fspick", "move_mount", "open_tree", "mount_setattr",
    "unshare", "setns", "clone3", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key", "init_module", "finit_module", "delete_module",
    "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog",
    "vhangup", "settimeofday", "clock_settime", "adjtimex", "clock_adjtime", "sethostname", "setdomainname", "iopl",
    "ioperm", "modify_ldt", "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "fanotify_init", "uselib",
    "ustat", "sysfs", "_sysctl", "mbind", "set_mempolicy", "migrate_pages", "move_pages",
];

fn allowed() -> BTreeSet<&'static str> {
    hearth_agent::SYSCALLS_ALLOWED.iter().map(|s| s.name()).collect()
}

#[test]
fn the_allow_list_keeps_out_dangerous_calls() {
    let allowed = allowed();
    assert!(allowed.len() > 250, "Docker's list, less what an instance never needs: {}", allowed.len());
    let let_in: Vec<_> = DANGEROUS.iter().filter(|c| allowed.contains(*c)).collect();
    assert!(let_in.is_empty(), "dangerous calls in the allow-list: {let_in:?}");
    for s in hearth_agent::SYSCALLS_NOT_IMPLEMENTED {
        assert!(DANGEROUS.contains(&s.name()), "{} is answered ENOSYS: it is not for instances", s.name());
    }
}

/// The example functions: label, runtime, handler, folder under `examples/`, whether the
/// instance is made from a pre-warmed sandbox (how Python and Node usually start), and what
/// its answer holds.
const EXAMPLES: &[(&str, &str, &str, &str, bool, &str)] = &[
    ("python3", "python3", "main.handler", "python-hello", false, "Hello FaaS"),
    ("python3 (pre-warmed)", "python3", "main.handler", "python-hello", true, "Hello FaaS"),
    ("nodejs", "nodejs", "index.handler", "node-hello", false, "Hello FaaS"),
    ("nodejs (pre-warmed)", "nodejs", "index.handler", "node-hello", true, "Hello FaaS"),
    ("provided (sh + curl)", "provided", "bootstrap", "shell-hello", false, "Hello FaaS"),
    // The cell's Python shim, then the executable it becomes: a tokio program.
    ("provided (Rust lambda_runtime, pre-warmed)", "provided", "bootstrap", "rust-hello", true, "Hello, world!"),
];

/// How long the traced instance idles after its invocation (waiting for the next event).
const IDLE: Duration = Duration::from_millis(1500);

fn strace() -> PathBuf {
    ["/usr/bin/strace", "/bin/strace"].iter().map(PathBuf::from).find(|p| p.exists()).unwrap_or_else(|| {
        panic!("strace is missing: run scripts/test-deps.sh (as root) to install it (Debian package `strace`)")
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[tokio::test]
async fn the_example_functions_make_only_allowed_syscalls() {
    // In the process this test starts under strace (below), it is the traced workload.
    if let Ok(runtime) = std::env::var("HEARTH_TRACE_RUNTIME") {
        return traced_instance(runtime).await;
    }
    if !require_root() {
        return; // Without root there is no sandbox and no filter.
    }
    let strace = strace();
    let allowed = allowed();
    let not_implemented: BTreeSet<&str> = hearth_agent::SYSCALLS_NOT_IMPLEMENTED.iter().map(|s| s.name()).collect();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    println!("allow-list: {} syscalls", allowed.len());
    for (label, runtime, handler, folder, prewarmed, answer) in EXAMPLES {
        let dir = tempfile::tempdir().unwrap();
        let code = dir.path().join("code");
        if folder.starts_with("rust-") {
            // A Rust example is its executable, as `bootstrap`.
            std::fs::create_dir_all(&code).unwrap();
            std::fs::copy(hearth_wasm::test_support::rust_example(folder), code.join("bootstrap")).unwrap();
        } else {
            copy_dir(&examples.join(folder), &code);
        }
        let traces = dir.path().join("trace");
        std::fs::create_dir(&traces).unwrap();
        let result = dir.path().join("result.json");
        let run = tokio::process::Command::new(&strace)
            .args(["-ff", "-qq", "--pidns-translation", "-o"])
            .arg(traces.join("t"))
            .arg(std::env::current_exe().unwrap())
            .args(["seccomp::the_example_functions_make_only_allowed_syscalls", "--exact", "--nocapture"])
            .args(["--test-threads=1"])
            .env("HEARTH_TRACE_RUNTIME", runtime)
            .env("HEARTH_TRACE_HANDLER", handler)
            .env("HEARTH_TRACE_CODE", &code)
            .env("HEARTH_TRACE_RESULT", &result)
            .env("HEARTH_TRACE_PREWARMED", if *prewarmed { "1" } else { "0" })
            .output()
            .await
            .unwrap();
        let output = format!("{}\n{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
        // The trace first: when a needed syscall is refused, the instance fails, and the
        // refused call is what to report.
        let observed = instance_syscalls(&traces);
        assert!(observed.contains_key("execve") && observed.contains_key("read"), "{label}: {observed:?}\n{output}");
        let names: Vec<_> = observed.keys().map(String::as_str).collect();
        let fell_back: Vec<_> = names.iter().filter(|n| not_implemented.contains(*n)).collect();
        println!("{label}: {} syscalls: {}", names.len(), names.join(" "));
        println!("{label}: answered ENOSYS, so it fell back: {fell_back:?}");
        let refused: Vec<_> = names.iter().filter(|n| !allowed.contains(*n) && !not_implemented.contains(*n)).collect();
        assert!(refused.is_empty(), "{label} makes syscalls the allow-list refuses: {refused:?}\n{output}");
        let report = std::fs::read_to_string(&result)
            .unwrap_or_else(|_| panic!("{label}: the traced instance did not finish:\n{output}"));
        let v: Value = serde_json::from_str(&report).unwrap();
        assert_eq!(v["error"], false, "{label}: {v}");
        assert!(v["response"].to_string().contains(answer), "{label} answered: {v}");
    }
}

/// The syscalls (with counts) of the traced sandboxes in `strace -ff` files: those of each
/// process that installed the filters, from its first filter on, and all those of every
/// process and thread it created, and they created.
fn instance_syscalls(traces: &Path) -> BTreeMap<String, usize> {
    let files: BTreeMap<u32, String> = std::fs::read_dir(traces)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let tid = p.extension()?.to_str()?.parse().ok()?;
            Some((tid, std::fs::read_to_string(&p).unwrap()))
        })
        .collect();
    let installs = |text: &str| text.lines().position(|l| l.starts_with("seccomp(SECCOMP_SET_MODE_FILTER"));
    let mut todo: Vec<(u32, usize)> = files.iter().filter_map(|(tid, text)| Some((*tid, installs(text)?))).collect();
    assert!(!todo.is_empty(), "a process installed the filters");
    let mut counts = BTreeMap::new();
    while let Some((tid, from)) = todo.pop() {
        let Some(text) = files.get(&tid) else { continue };
        for line in text.lines().skip(from) {
            let Some(name) = syscall_name(line) else { continue };
            *counts.entry(name.to_owned()).or_insert(0) += 1;
            if matches!(name, "clone" | "clone3" | "fork" | "vfork")
                && let Some(child) = created(line)
            {
                todo.push((child, 0));
            }
        }
    }
    counts
}

/// The syscall a trace line shows (`name(args) = result`), if any (not signals, exits or
/// the second half of an interrupted call).
fn syscall_name(line: &str) -> Option<&str> {
    let end = line.find('(')?;
    let name = &line[..end];
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
        .then_some(name)
}

/// The id of the process or thread a successful clone/fork created, as strace sees it (the
/// instance's own pid namespace numbers differently: `= 2 /* 31066 in strace's PID NS */`).
fn created(line: &str) -> Option<u32> {
    let result = &line[line.rfind(" = ")? + 3..];
    let mut words = result.split_whitespace();
    let own: u32 = words.next()?.parse().ok()?;
    match (words.next(), words.next()) {
        (Some("/*"), Some(host)) => host.parse().ok(),
        _ => Some(own),
    }
}

/// The workload `the_example_functions_make_only_allowed_syscalls` runs in a process of its
/// own under strace: one instance in the real sandbox, cold start, init, one invocation, an
/// idle wait.
async fn traced_instance(runtime: String) {
    let var = |k: &str| std::env::var(k).unwrap();
    let driver = ProcessDriver::detect();
    assert!(driver.drops_privileges(), "the instance runs under the filters");
    let dir = tempfile::tempdir().unwrap();
    let rt = runtimes(dir.path());
    let code = PathBuf::from(var("HEARTH_TRACE_CODE"));
    let cfg = config(&runtime, &var("HEARTH_TRACE_HANDLER"));
    let spec = spec(&code, cfg);
    let init = Duration::from_secs(20);
    let inst = if var("HEARTH_TRACE_PREWARMED") == "1" {
        let key = hearth_agent::CellKey::for_config(&spec.config).expect("a pre-warmable function");
        let settings = hearth_agent::StemCellSettings { keys: vec![key], ..Default::default() };
        let slots = dir.path().join("slots");
        let pool = hearth_agent::StemCells::start(Arc::new(driver.clone()), rt.clone(), slots, settings).unwrap();
        let deadline = std::time::Instant::now() + init;
        while pool.status().0.is_empty() {
            assert!(std::time::Instant::now() < deadline, "no sandbox was pre-warmed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        pool.specialize(&spec, init, None).await.expect("a pre-warmed sandbox").unwrap()
    } else {
        start_instance(&driver, &rt, &spec, init).await.unwrap()
    };
    let r = inst.invoke(invocation("trace-1", r#"{"rawPath":"/hello"}"#), Duration::from_secs(30)).await.unwrap();
    let (response, error) = answered(r);
    tokio::time::sleep(IDLE).await;
    inst.stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !inst.has_exited() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(inst);
    let report = json!({"response": response, "error": error});
    std::fs::write(var("HEARTH_TRACE_RESULT"), report.to_string()).unwrap();
}

const NODE_PROBE: &str = r#"
import os from "node:os";
import dns from "node:dns/promises";
import fs from "node:fs/promises";
import crypto from "node:crypto";
import zlib from "node:zlib";
import { execFileSync } from "node:child_process";
import { Worker } from "node:worker_threads";

const attempt = async (f) => {
  try {
    return await f();
  } catch (e) {
    return `error: ${e.code || e.message}`;
  }
};
const callback = (f) => new Promise((ok, fail) => f((e, v) => (e ? fail(e) : ok(v))));

export const handler = async () => ({
  interfaces: await attempt(() => Object.keys(os.networkInterfaces()).sort()),
  localhost: await attempt(async () => (await dns.lookup("localhost", { all: true })).map((a) => a.address).sort()),
  unknown_name: await attempt(() => dns.lookup("nothing.invalid")),
  files: await attempt(async () => {
    await fs.writeFile("/tmp/probe", "x".repeat(100000));
    return (await fs.readFile("/tmp/probe")).length;
  }),
  random: await attempt(async () => (await callback((cb) => crypto.randomBytes(16, cb))).length),
  gzip: await attempt(async () => zlib.gunzipSync(await callback((cb) => zlib.gzip("x".repeat(1000), cb))).length),
  child: await attempt(() => execFileSync("/bin/sh", ["-c", "echo child"]).toString().trim()),
  worker: await attempt(
    () =>
      new Promise((ok, fail) => {
        const w = new Worker("require('node:worker_threads').parentPort.postMessage(6 * 7)", { eval: true });
        w.on("message", ok);
        w.on("error", fail);
      }),
  ),
  cpus: await attempt(() => os.cpus().length > 0 && os.totalmem() > 0 && os.uptime() > 0),
});
"#;

const PYTHON_PROBE: &str = r#"
import os, socket, ssl, subprocess, threading

def attempt(f):
    try:
        return f()
    except Exception as e:
        return "error: %s" % e

def thread():
    out = []
    t = threading.Thread(target=lambda: out.append(42))
    t.start()
    t.join()
    return out[0]

def handler(event, context):
    return {
        "localhost": attempt(lambda: sorted({a[4][0] for a in socket.getaddrinfo("localhost", 80)})),
        "interfaces": attempt(lambda: sorted(n for _, n in socket.if_nameindex())),
        "thread": attempt(thread),
        "child": attempt(lambda: subprocess.run(["/bin/sh", "-c", "echo child"], capture_output=True, text=True).stdout.strip()),
        "tls": attempt(lambda: ssl.create_default_context().cert_store_stats()["x509_ca"] > 0),
        "cpus": attempt(lambda: len(os.sched_getaffinity(0)) > 0),
    }
"#;

/// Threads, worker threads, child processes, the libuv thread pool (also when libuv is told
/// to use io_uring: it gets ENOSYS and falls back), TLS roots, and name lookups through
/// getaddrinfo (`/etc/hosts`; an unknown name fails inside the instance's network namespace,
/// where nothing answers and nothing leaves). Listing the network interfaces works (a
/// `NETLINK_ROUTE` socket, the one netlink protocol allowed) and shows only `lo`.
#[tokio::test]
async fn runtime_features_work_under_the_allow_list() {
    if !require_root() {
        return;
    }
    let driver = ProcessDriver::detect();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtimes(dir.path());
    let probe = |name: &str, file: &str, source: &str| {
        let code = dir.path().join(name);
        std::fs::create_dir_all(&code).unwrap();
        std::fs::write(code.join(file), source).unwrap();
        code
    };
    let node = probe("node", "index.mjs", NODE_PROBE);
    for io_uring in [false, true] {
        let mut cfg = config("nodejs", "index.handler");
        if io_uring {
            cfg.environment.insert("UV_USE_IO_URING".into(), "1".into());
        }
        let inst = start_instance(&driver, &rt, &spec(&node, cfg), Duration::from_secs(30)).await.unwrap();
        let (v, err) = answered(inst.invoke(invocation("n-1", "{}"), Duration::from_secs(20)).await.unwrap());
        assert!(!err, "{v}");
        let expected = json!({"child": "child", "cpus": true, "files": 100000, "gzip": 1000, "random": 16,
            "worker": 42, "localhost": ["127.0.0.1"], "interfaces": ["lo"]});
        for (key, want) in expected.as_object().unwrap() {
            assert_eq!(&v[key], want, "node (UV_USE_IO_URING={io_uring}) {key}: {v}");
        }
        let unknown = v["unknown_name"].as_str().unwrap_or_default();
        assert!(["error: EAI_AGAIN", "error: ENOTFOUND"].contains(&unknown), "{v}");
    }
    let python = probe("python", "main.py", PYTHON_PROBE);
    let inst = start_instance(&driver, &rt, &spec(&python, config("python3", "main.handler")), Duration::from_secs(30))
        .await
        .unwrap();
    let (v, err) = answered(inst.invoke(invocation("p-1", "{}"), Duration::from_secs(20)).await.unwrap());
    assert!(!err, "{v}");
    let expected = json!({"child": "child", "cpus": true, "thread": 42, "tls": true, "localhost": ["127.0.0.1"],
        "interfaces": ["lo"]});
    for (key, want) in expected.as_object().unwrap() {
        assert_eq!(&v[key], want, "python {key}: {v}");
    }
}
