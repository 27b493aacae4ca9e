//! Scaling decisions, as pure code with time passed in, so that the server and the trace
//! simulator run exactly the same logic:
//!
//! - [`keep_alive`]: how long an idle function keeps instances, and when to pre-warm one
//!   ([`KeepAlivePolicy`]: [`Fixed`], [`Adaptive`] after Shahrad et al., ATC 2020).
//! - [`autoscaler`]: how many instances a function needs ([`Autoscaler`], after Knative's KPA).
//! - [`eviction`]: which idle instances go when the node's memory is full ([`EvictionPolicy`]:
//!   greedy-dual-size-frequency after FaasCache, ASPLOS 2021, or LRU).
//! - [`trace`] and [`simulate`]: the Azure Functions 2019 trace, replayed in virtual time
//!   against keep-alive policies.

pub mod autoscaler;
pub mod eviction;
pub mod keep_alive;
pub mod node_replay;
pub mod simulate;
pub mod trace;

pub use autoscaler::{Autoscaler, AutoscalerConfig, Bounds, Decision};
pub use eviction::{Candidate as EvictionCandidate, EvictionPolicy, worth_waiting};
pub use keep_alive::{Adaptive, Fixed, KeepAlivePolicy, PolicyKind, Windows, build as keep_alive_policy};
