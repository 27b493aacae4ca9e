//! The whole application: the control plane and the gateway's routes on the API origin, the
//! HTTP triggers on their own origin, and the OpenAPI document of both.

use std::sync::Arc;

use axum::extract::FromRef;
use axum::routing::{get, post};
use axum::{Json, Router};
use hearth_api::{ApiError, ApiErrorBody, AppState, DeployHooks, not_runnable};
use hearth_events::Events;
use hearth_gateway::{Gateway, NotRunnable};
use hearth_types::{FunctionConfig, FunctionName};
use utoipa::OpenApi;

use crate::{
    event_routes, instance_routes, invoke_route, lambda_api, log_stream, meter_routes, nats_routes, schedule_routes,
    stats_routes, trigger_routes,
};

/// What the gateway's handlers share: the control plane's state (tokens) and the gateway.
#[derive(Clone)]
pub(crate) struct ServerState {
    pub api: AppState,
    pub gateway: Gateway,
    pub events: Events,
    pub usage: crate::Usage,
}

impl FromRef<ServerState> for AppState {
    fn from_ref(s: &ServerState) -> AppState {
        s.api.clone()
    }
}

/// The two origins of `hearth up`, each served on its own listener: the API (control
/// plane, invoke and Lambda APIs, `/openapi.json`; where tokens and the console live) and
/// the HTTP triggers (`/fn/{name}/...` and trigger paths; where functions' own responses
/// are served). A function's HTML can never run script on the API's origin.
pub struct Apps {
    pub api: Router,
    pub triggers: Router,
    /// `GET /metrics` without a token, for `--metrics-listen`.
    pub metrics: Router,
}

/// Tells the gateway what the control plane changed.
struct GatewayHooks(Gateway);

#[async_trait::async_trait]
impl DeployHooks for GatewayHooks {
    async fn triggers_changed(&self) {
        self.0.triggers_changed().await;
    }

    async fn function_changed(&self, name: &FunctionName) {
        self.0.function_changed(name).await;
    }

    fn admit(&self, config: &FunctionConfig) -> Result<(), ApiError> {
        self.0.admit(config).map_err(|e| match e {
            NotRunnable::Runtime(e) => {
                not_runnable("RuntimeUnavailable", format!("{e}; choose another runtime, or install it on this node"))
            }
            NotRunnable::Memory { .. } => not_runnable(
                "MemoryOverNodeLimit",
                format!("{e}; lower memory_mb, or raise the node's HEARTH_NODE_MEMORY_MB"),
            ),
        })
    }
}

/// Drops a deleted function's cron and NATS triggers and its events.
struct EventHooks(Gateway, Events);

#[async_trait::async_trait]
impl DeployHooks for EventHooks {
    async fn function_changed(&self, name: &FunctionName) {
        // Runs after the gateway's hook, which forgot the cached function: this reads it anew.
        if let Ok(None) = self.0.function(name).await {
            match self.1.queue().delete_schedules_of(name).await {
                Ok(0) => {}
                Ok(_) => self.1.schedules_changed(),
                Err(e) => tracing::warn!(%e, function = %name, "cannot delete a deleted function's cron triggers"),
            }
            match self.1.queue().delete_nats_triggers_of(name).await {
                Ok(0) => {}
                Ok(_) => self.1.nats_triggers_changed(),
                Err(e) => tracing::warn!(%e, function = %name, "cannot delete a deleted function's NATS triggers"),
            }
            // Running deliveries finish (their settle then finds nothing); the rest go.
            if let Err(e) = self.1.queue().delete_events_of(name).await {
                tracing::warn!(%e, function = %name, "cannot delete a deleted function's events");
            }
        }
    }
}

/// Both routers, sharing one gateway and one event service.
pub fn apps(api: AppState, gateway: Gateway, events: Events, usage: crate::Usage) -> Apps {
    api.add_deploy_hooks(Arc::new(GatewayHooks(gateway.clone())));
    api.add_deploy_hooks(Arc::new(EventHooks(gateway.clone(), events.clone())));
    let state = ServerState { api: api.clone(), gateway, events, usage };
    let gateway_routes = Router::new()
        .route("/v1/functions/{name}/invoke", post(invoke_route::invoke))
        .route("/v1/functions/{name}/instances", get(instance_routes::instances))
        .route("/v1/functions/{name}/logs", get(meter_routes::logs))
        .route("/v1/functions/{name}/logs/stream", get(log_stream::logs_stream))
        .route("/v1/functions/{name}/stats", get(stats_routes::function_stats))
        .route("/v1/stats", get(stats_routes::summary))
        .route("/v1/functions/{name}/invocations", get(meter_routes::invocations))
        .route("/v1/functions/{name}/dead-letters", get(event_routes::dead_letters))
        .route("/v1/functions/{name}/dead-letters/redrive", post(event_routes::redrive))
        .route("/v1/invocations/{id}", get(event_routes::get_invocation))
        .route("/v1/schedules", post(schedule_routes::create).get(schedule_routes::list))
        .route("/v1/schedules/{id}", axum::routing::delete(schedule_routes::delete))
        .route("/v1/nats-triggers", post(nats_routes::create).get(nats_routes::list))
        .route("/v1/nats-triggers/{id}", axum::routing::delete(nats_routes::delete))
        .route("/v1/node", get(instance_routes::node))
        .route("/v1/usage", get(crate::usage::usage))
        .route("/metrics", get(crate::metrics_route::metrics))
        .route("/2015-03-31/functions/{name}/invocations", post(lambda_api::invocations))
        .with_state(state.clone());
    let api = hearth_api::control_plane(api.clone())
        .merge(hearth_api::lambda::management(api))
        .merge(gateway_routes)
        .route("/openapi.json", get(openapi_json))
        .merge(crate::console::router())
        .fallback(hearth_api::not_found)
        .method_not_allowed_fallback(hearth_api::method_not_allowed)
        .layer(axum::middleware::from_fn(crate::request_span::request_span));
    let metrics = Router::new()
        .route("/metrics", get(crate::metrics_route::open_metrics))
        .with_state(state.clone())
        .fallback(hearth_api::not_found);
    let triggers = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .fallback_service(axum::routing::any(trigger_routes::dispatch).with_state(state))
        .layer(axum::middleware::from_fn(crate::request_span::request_span));
    Apps { api, triggers, metrics }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        invoke_route::invoke,
        instance_routes::instances,
        instance_routes::node,
        meter_routes::logs,
        meter_routes::invocations,
        log_stream::logs_stream,
        stats_routes::function_stats,
        stats_routes::summary,
        event_routes::get_invocation,
        event_routes::dead_letters,
        event_routes::redrive,
        schedule_routes::create,
        schedule_routes::list,
        schedule_routes::delete,
        nats_routes::create,
        nats_routes::list,
        nats_routes::delete,
        crate::usage::usage,
        crate::metrics_route::metrics,
        openapi_json,
        lambda_api::invocations
    ),
    components(schemas(ApiErrorBody))
)]
pub struct ServerDoc;

/// The complete OpenAPI document (checked in as `openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    hearth_api::document_with(ServerDoc::openapi())
}

/// This API's OpenAPI document (no token needed).
#[utoipa::path(
    get, path = "/openapi.json", tag = "system",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object, content_type = "application/json"))
)]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}
