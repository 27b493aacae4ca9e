//! `GET /v1/functions/{name}/instances` and `GET /v1/node`: what runs on this node.

use axum::Json;
use axum::extract::{Path, State};
use hearth_api::{ApiError, ApiErrorBody, Authorized, needs};
use hearth_types::FunctionName;
use hearth_types::api::{InstanceList, InstanceView, NodeView, PrewarmedView};

use crate::apps::ServerState;
use crate::invoke_route::name_of;

/// List a function's live instances.
#[utoipa::path(
    get, path = "/v1/functions/{name}/instances", tag = "invoke",
    params(("name" = FunctionName, Path, description = "Function name")),
    responses(
        (status = 200, body = InstanceList),
        (status = 400, description = "Invalid function name (`InvalidFunctionName`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn instances(
    _: Authorized<needs::Read>,
    State(state): State<ServerState>,
    Path(name): Path<String>,
) -> Result<Json<InstanceList>, ApiError> {
    let name = name_of(&name)?;
    let f = state.gateway.function(&name).await?.ok_or_else(|| ApiError::function_not_found(name.as_str()))?;
    let instances = state
        .gateway
        .instances(f.id)
        .into_iter()
        .map(|i| InstanceView {
            id: i.id,
            version: i.version,
            state: i.state,
            started_at: i.started_at.into(),
            requests_served: i.requests_served,
            last_used: i.last_used.into(),
            memory_used_mb: i.memory_used_mb,
        })
        .collect();
    Ok(Json(InstanceList { instances }))
}

/// This node's memory and pre-warmed sandboxes.
#[utoipa::path(
    get, path = "/v1/node", tag = "invoke",
    responses((status = 200, body = NodeView)),
    security(("bearer" = []))
)]
pub(crate) async fn node(_: Authorized<needs::Read>, State(state): State<ServerState>) -> Json<NodeView> {
    let s = state.gateway.node_status();
    Json(NodeView {
        memory_limit_mb: s.memory_limit_mb,
        memory_committed_mb: s.memory_committed_mb,
        prewarm_budget_mb: s.prewarm_budget_mb,
        prewarmed: s
            .prewarmed
            .into_iter()
            .map(|(k, ready)| PrewarmedView { runtime: k.runtime.to_string(), memory_mb: k.memory_mb, ready })
            .collect(),
    })
}
