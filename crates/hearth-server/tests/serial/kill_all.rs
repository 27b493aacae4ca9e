//! `kill -9 -1` from a hostile `provided` function: it reaches the instance's own processes
//! and nothing else, neither a warm instance of another function nor processes on the host,
//! even one running as the attacker's own host uid.

use super::*;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// A `sleep 60` of this test's own, killed when dropped.
struct Bystander(Child);

impl Bystander {
    fn spawn(configure: impl FnOnce(&mut Command) -> &mut Command) -> Self {
        Self(configure(Command::new("sleep").arg("60")).spawn().unwrap())
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn kill_all_reaches_only_the_instances_own_processes() {
    let _turn = one_at_a_time().await;
    if !require_root() {
        return;
    }
    let s = hostile_server().await;
    deploy_shell_attacker(&s, "shell").await;
    // A warm instance of another function, and two processes on the host: one as root, one
    // as the host uid the attacker runs as (which, without a pid namespace of its own,
    // `kill -9 -1` would reach even with every privilege dropped).
    let before = s.event("bystander", json!({})).await;
    assert_eq!(before.status, StatusCode::OK, "{:?}", before.body);
    let attacker = s.probe("shell").await;
    let mut as_root = Bystander::spawn(|c| c);
    let mut as_attacker = Bystander::spawn(|c| c.uid(attacker.host_uid).gid(attacker.host_gid));

    let r = s.attack("shell", json!({"attack": "kill_all"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["kill_all"], "allowed", "the kill was sent: {:?}", r.body);
    assert_eq!(r.body["own_child_status"], 137, "and killed the attacker's own child: {:?}", r.body);

    let after = s.event("bystander", json!({})).await;
    assert_eq!(
        (after.body["instance"].as_str(), after.cold),
        (before.body["instance"].as_str(), Some(false)),
        "the other function's warm instance survived: {:?} then {:?}",
        before.body,
        after.body
    );
    assert!(as_root.alive(), "a root process on the host was killed");
    assert!(as_attacker.alive(), "a process of the attacker's host uid {} was killed", attacker.host_uid);
    // The attacker's instance itself (its PID 1) still serves.
    s.probe("shell").await;
}
