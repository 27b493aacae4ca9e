//! The gateway end to end over real HTTP: deploy through the API, invoke real Python, Node
//! and `provided` instances, watch the route cache, the activator and the keep-alive reaper
//! work. The tests here run in parallel, grouped by concept in the modules below; destructive
//! and timing-sensitive ones are in the `serial` binary, which shares `harness.rs` and
//! `guard.rs`.

mod admission;
mod aliases;
mod compat;
mod console;
mod documented;
mod event_limits;
mod events;
mod guard;
mod harness;
mod hostile;
mod invoke;
mod lambda_manage;
mod log_stream;
mod logs;
mod metrics;
mod nats;
mod nats_hostile;
mod network;
mod route_cache;
mod scaling;
mod scopes;
mod stats;
mod stem_cells;
mod triggers;
mod usage;
mod wasm;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use guard::*;
use harness::*;
use hearth_blob::fixtures::deflated_zip;
use hearth_gateway::GatewaySettings;
use hearth_server::openapi;
use reqwest::StatusCode;
use serde_json::{Value, json};
