//! Resource exhaustion through the real server: fork and memory bombs, /tmp fills, open
//! files and a CPU spin, each stopped by its limit. Every attack is guarded: it runs only in
//! an instance whose limits the host has just read and which found itself sandboxed.

use super::*;

use std::path::Path;

/// The cgroup directories of an instance of this (in-process) server.
fn cgroup_dirs(instance: &str) -> Vec<std::path::PathBuf> {
    let name = format!("{}-{instance}", std::process::id());
    ["memory/hearth", "pids/hearth", "cpu/hearth", "hearth"]
        .iter()
        .map(|d| Path::new("/sys/fs/cgroup").join(d).join(&name))
        .filter(|p| p.exists())
        .collect()
}

#[tokio::test]
async fn fork_and_memory_bombs_are_stopped_by_their_limits() {
    let _turn = one_at_a_time().await;
    if !require_root() {
        return;
    }
    let s = hostile_server().await;
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
}

#[tokio::test]
async fn filling_tmp_stops_at_its_ephemeral_storage() {
    let _turn = one_at_a_time().await;
    if !require_root() {
        return;
    }
    let s = hostile_server().await;
    // 512 MB by default (the memory limit leaves room: 1 GB here).
    s.deploy("filler", HOSTILE, py(json!({"memory_mb": 1024, "timeout_s": 60}))).await;
    let r = s.attack("filler", json!({"attack": "fill_tmp"})).await;
    assert_eq!(r.body["fill"], "No space left on device", "{:?}", r.body);
    assert!((400..=512).contains(&r.body["mb"].as_u64().unwrap()), "{:?}", r.body);
    // A larger ephemeral storage gives a larger /tmp.
    s.deploy("filler", HOSTILE, py(json!({"memory_mb": 2048, "timeout_s": 60, "ephemeral_storage_mb": 1024}))).await;
    let r = s.attack("filler", json!({"attack": "fill_tmp"})).await;
    assert_eq!(r.body["fill"], "No space left on device", "{:?}", r.body);
    assert!((900..=1024).contains(&r.body["mb"].as_u64().unwrap()), "{:?}", r.body);
}

#[tokio::test]
async fn open_files_and_a_cpu_spin_are_cut_off() {
    let _turn = one_at_a_time().await;
    if !require_root() {
        return;
    }
    let s = hostile_server().await;
    // 10,000 open files stop at the limit.
    let r = s.attack("hostile", json!({"attack": "open_files"})).await;
    assert_eq!(r.body["error"], "Too many open files", "{:?}", r.body);
    assert!(r.body["opened"].as_u64().unwrap() < hearth_agent::NOFILE, "{:?}", r.body);
    // A CPU spin past the timeout.
    s.deploy("spinner", HOSTILE, py(json!({"timeout_s": 1}))).await;
    let r = s.attack("spinner", json!({"attack": "spin"})).await;
    assert_eq!(r.error.as_deref(), Some("Sandbox.Timedout"), "{:?}", r.body);
}
