//! The guard of the hostile fixtures (`fixtures/hostile.{py,mjs}`, `hostile_bootstrap.sh`):
//! the host-side half (an instance's cgroup limits read from the host, sent with each attack)
//! and proof that each fixture's own half aborts every attack outside a sandbox.

use super::*;
pub use hearth_agent::test_support::Sentinel;

pub const HOSTILE_PY: &str = include_str!("fixtures/hostile.py");
pub const HOSTILE_SH: &str = include_str!("fixtures/hostile_bootstrap.sh");
pub const HOSTILE_MJS: &str = include_str!("fixtures/hostile.mjs");

/// Reads from the host that instance `instance_id`'s processes sit in a `controller` group
/// whose `file` holds `expected`.
pub fn assert_limited(cg: &hearth_agent::Cgroups, instance_id: &str, controller: &str, file: &str, expected: &str) {
    let dir = match cg.version() {
        hearth_agent::CgroupVersion::V1 => {
            format!("/sys/fs/cgroup/{controller}/hearth/{}-{instance_id}", std::process::id())
        }
        hearth_agent::CgroupVersion::V2 => format!("/sys/fs/cgroup/hearth/{}-{instance_id}", std::process::id()),
    };
    let limit = std::fs::read_to_string(format!("{dir}/{file}")).expect("the instance's cgroup exists");
    assert_eq!(limit.trim(), expected, "{dir}/{file}");
    let procs = std::fs::read_to_string(format!("{dir}/cgroup.procs")).unwrap();
    assert!(!procs.trim().is_empty(), "the instance's processes are in {dir}");
}

/// Checks instance `instance_id`'s memory and pids limits from the host and returns the
/// guard its attacks carry.
pub fn host_checked_guard(driver: &ProcessDriver, instance_id: &str, memory_mb: u32) -> Value {
    let cg = driver.cgroups().expect("as root, cgroups (v1 or v2) are managed");
    let memory_file = match cg.version() {
        hearth_agent::CgroupVersion::V1 => "memory.limit_in_bytes",
        hearth_agent::CgroupVersion::V2 => "memory.max",
    };
    let bytes = u64::from(memory_mb) << 20;
    assert_limited(cg, instance_id, "memory", memory_file, &bytes.to_string());
    assert_limited(cg, instance_id, "pids", "pids.max", &hearth_agent::PIDS_MAX.to_string());
    let group = format!("/hearth/{}-{instance_id}", std::process::id());
    json!({"cgroups": {"memory": group, "pids": group}, "memory_bytes": bytes, "pids_max": hearth_agent::PIDS_MAX})
}

/// The answer to a guarded event; fails the test, naming the check, if the fixture's guard
/// aborted the attack, or if the function failed.
pub fn unguarded(r: InvokeResult) -> Value {
    let (v, err) = answered(r);
    let aborted = v["errorType"] == "SandboxMissing" || v.get("guard_failed").is_some();
    assert!(!aborted, "the guard aborted the attack: {v}");
    assert!(!err, "{v}");
    v
}

/// Each fixture, started as a plain process of this (root) test with no sandbox at all, runs
/// no attack: with a guard whose limits were never checked, or none, it names the check that
/// failed. (The attacks sent are harmless ones, in case the guard were broken.)
#[tokio::test]
async fn the_guard_aborts_every_attack_without_a_sandbox() {
    let driver = ProcessDriver::plain();
    let dir = tempfile::tempdir().unwrap();
    let sentinel = Sentinel::new();
    let unchecked =
        json!({"cgroups": {"memory": "/unchecked", "pids": "/unchecked"}, "memory_bytes": 1, "pids_max": 1});
    let fixtures = [
        ("python3", "main.handler", "main.py", HOSTILE_PY, 0o644),
        ("nodejs", "index.handler", "index.mjs", HOSTILE_MJS, 0o644),
        ("provided", "x", "bootstrap", HOSTILE_SH, 0o755),
    ];
    let rt = runtimes(dir.path());
    for (runtime, handler, file, source, mode) in fixtures {
        let code = dir.path().join(runtime);
        std::fs::create_dir_all(&code).unwrap();
        std::fs::write(code.join(file), source).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(code.join(file), std::fs::Permissions::from_mode(mode)).unwrap();
        let inst = start_instance(&driver, &rt, &spec(&code, config(runtime, handler)), Duration::from_secs(30))
            .await
            .unwrap();
        let attack = if runtime == "provided" { "files" } else { "append" };
        for (i, (guard, check)) in
            [(Value::Null, "guard: "), (unchecked.clone(), "pid namespace: ")].into_iter().enumerate()
        {
            let mut event =
                json!({"attack": attack, "paths": [&sentinel.path], "sentinel": &sentinel.path, "new_name": "x"});
            if !guard.is_null() {
                event["guard"] = guard;
            }
            let id = format!("guard-{runtime}-{i}");
            let r = inst.invoke(invocation(&id, &event.to_string()), Duration::from_secs(10)).await.unwrap();
            let (v, _) = answered(r);
            let failed = if runtime == "provided" {
                v["guard_failed"].as_str().map(str::to_owned)
            } else {
                assert_eq!(v["errorType"], "SandboxMissing", "{runtime}: {v}");
                v["errorMessage"].as_str().map(str::to_owned)
            };
            let failed = failed.unwrap_or_else(|| panic!("{runtime}: the attack ran without a sandbox: {v}"));
            assert!(failed.starts_with(check), "{runtime}: {check}… expected: {failed}");
        }
    }
    sentinel.assert_untouched();
}
