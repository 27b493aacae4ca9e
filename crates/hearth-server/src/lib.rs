//! The server: assembles the control plane (`hearth-api`) and the gateway (`hearth-gateway`)
//! into the two HTTP applications `hearth up` serves, with the complete OpenAPI document,
//! and serves them on listeners with the limits untrusted callers need.
//!
//! Asynchronous invocations (`hearth-events`) are accepted by the invoke routes and followed
//! through `/v1/invocations/{id}` and the dead-letter routes here; usage and cost are read
//! at `/v1/usage`.
//!
//! This crate is the only one that knows both halves: the control plane tells the gateway
//! about deploys through [`DeployHooks`](hearth_api::DeployHooks), and the gateway's HTTP
//! routes (invoke, the Lambda Invoke API, HTTP triggers, instances, logs and records) live
//! here, so neither half depends on the other.

mod apps;
mod console;
mod event_routes;
mod http_event;
mod instance_routes;
mod invoke_error;
mod invoke_route;
mod lambda_api;
mod log_stream;
mod meter_routes;
mod metrics_route;
mod nats_routes;
mod request_span;
mod schedule_routes;
mod serve;
mod stats_routes;
mod trigger_checks;
mod trigger_routes;
mod usage;

pub use apps::{Apps, ServerDoc, apps, openapi};
pub use serve::{BodyTimeout, ListenerLimits, TlsConfig, TlsError, TlsFiles, serve};
pub use usage::{Usage, spawn_provisioned_meter};

/// The request and response conversions on their own, for the fuzz targets in `fuzz/`; not
/// an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::http_event::{event, response, strip_credentials};
}
