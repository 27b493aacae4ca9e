//! Hearth's control-plane HTTP API: functions, versions, code, tokens.
//!
//! [`router`] builds the axum router over an [`AppState`]. Every error is an [`ApiError`]
//! (status + stable code + message); every route but `/healthz` and `/openapi.json` needs a
//! bearer token with the right [`hearth_types::Scope`].

mod admission;
mod auth;
mod body;
pub mod deploy;
mod error;
pub mod lambda;
mod openapi;
pub mod routes;
mod state;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post, put};

pub use admission::not_runnable;
pub use auth::{Authorized, Caller, TOKEN_PREFIX, ensure_admin_token, hash_secret, mint_token, needs};
pub use error::{ApiError, ApiErrorBody};
pub use openapi::{ApiDoc, document_with};
pub use routes::aliases::pinned;
pub use state::{AppState, DeployHooks};

use routes::{aliases, code, functions, system, tokens, triggers};

/// The control-plane router, answering unknown routes with `RouteNotFound`.
pub fn router(state: AppState) -> Router {
    control_plane(state).fallback(not_found).method_not_allowed_fallback(method_not_allowed)
}

/// The control-plane routes without fallbacks, for embedding in a larger app.
pub fn control_plane(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/v1/functions", get(functions::list_functions))
        .route(
            "/v1/functions/{name}",
            put(functions::put_function)
                .patch(functions::patch_function)
                .get(functions::get_function)
                .delete(functions::delete_function),
        )
        .route("/v1/functions/{name}/versions", get(functions::list_versions))
        .route("/v1/functions/{name}/aliases", get(aliases::list_aliases))
        .route(
            "/v1/functions/{name}/aliases/{alias}",
            put(aliases::put_alias).get(aliases::get_alias).delete(aliases::delete_alias),
        )
        .route("/v1/functions/{name}/code", put(code::put_code).get(code::get_code))
        .route("/v1/packages", post(code::upload_package))
        .route("/v1/triggers", get(triggers::list_triggers).post(triggers::create_trigger))
        .route("/v1/triggers/{id}", axum::routing::delete(triggers::delete_trigger))
        .route("/v1/token", get(tokens::whoami))
        .route("/v1/tokens", get(tokens::list_tokens).post(tokens::create_token))
        .route("/v1/tokens/{id}", axum::routing::delete(tokens::delete_token))
        .with_state(state)
}

/// The answer to a path nothing serves.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "RouteNotFound", "no such endpoint; GET /openapi.json lists them")
}

/// The answer to a method a route does not support.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "this endpoint does not support that method; GET /openapi.json lists them",
    )
}
