//! The gateway's destructive and timing-sensitive tests, run one at a time: fork and memory
//! bombs, /tmp fills, a CPU spin and `kill -9 -1` through the real server (every attack
//! guarded, as in the `gateway` binary's hostile suite), and the scaling tests whose callers
//! follow a rhythm. A binary of their own, so that they never share the machine with the
//! parallel tests (cargo runs test binaries one after another), and each test takes
//! `one_at_a_time` first, so that they never share it with each other either.

#[path = "../gateway/guard.rs"]
#[allow(dead_code)] // Shared with the `gateway` binary; each uses part of it.
mod guard;
#[path = "../gateway/harness.rs"]
#[allow(dead_code)]
mod harness;

mod exhaustion;
mod kill_all;
mod queue;
mod scaling;

use std::sync::Arc;
use std::time::{Duration, Instant};

use guard::*;
use harness::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Held for a test's whole run: the tests of this binary run one after another, whatever
/// `--test-threads` says.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}
