use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hearth_types::api::{DeployResponse, FunctionList, FunctionPatch, VersionList};
use hearth_types::{CodeDigest, CodeRef, Function, FunctionName, FunctionSpec};

use super::function_name;
use crate::auth::{Authorized, needs};
use crate::{ApiError, ApiErrorBody, AppState, deploy};

/// Create a function or replace its configuration.
///
/// Fields left out take their defaults. When the function has code and the configuration
/// changes, a new version is created. With `code_sha256` (a package stored by
/// `POST /v1/packages`) code and configuration change together in one version.
#[utoipa::path(
    put, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = FunctionName, Path, description = "Function name")),
    request_body = FunctionSpec,
    responses(
        (status = 201, description = "Created", body = DeployResponse),
        (status = 200, description = "Updated (or unchanged)", body = DeployResponse),
        (status = 400, description = "Invalid name or configuration (the code names the rule, e.g. `InvalidMemorySize`, `InvalidInstanceCount`), or a body that is not a `FunctionSpec` (`InvalidJson`, `InvalidRequestBody`)", body = ApiErrorBody),
        (status = 409, description = "`code_sha256` names no stored package (`CodePackageNotFound`: upload it first), another request changed the function at the same time (`ConcurrentModification`), or this node cannot run the configuration: its runtime is not installed (`RuntimeUnavailable`) or one instance needs more memory than the node admits (`MemoryOverNodeLimit`); or a `provided` function's package has no executable `bootstrap` (`BootstrapMissing`), or a `wasm` function's package lacks the module its handler names (`WasmModuleMissing`)", body = ApiErrorBody),
        (status = 413, description = "Body over 2 MiB (`RequestTooLarge`)", body = ApiErrorBody),
        (status = 415, description = "Body not sent as `application/json` (`UnsupportedMediaType`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_function(
    _: Authorized<needs::Deploy>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    spec: Result<Json<FunctionSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<DeployResponse>), ApiError> {
    let name = function_name(&name)?;
    let Json(spec) = spec?;
    let config = spec.validate()?;
    let code = match &spec.code_sha256 {
        None => None,
        Some(sha) => Some(stored_package(&state, sha).await?),
    };
    let d = deploy::put_config(state.store().as_ref(), &state, &name, config, code).await?;
    state.function_changed(&name).await;
    let status = if d.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(DeployResponse { function: d.function, new_version: d.new_version })))
}

/// Change some of a function's settings, its code, or both.
///
/// The body is a JSON merge patch (RFC 7396) of the function's configuration: a field given
/// replaces the current one, `null` resets it to its default, and `environment` is merged
/// variable by variable (`null` removes a variable). With `code_sha256` the code changes in
/// the same version. A patch that changes something makes exactly one version; one that
/// changes nothing makes none.
#[utoipa::path(
    patch, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = FunctionName, Path, description = "Function name")),
    request_body(content = FunctionPatch, content_type = "application/json",
                 description = "The fields to change",
                 example = json!({"timeout_s": 10, "environment": {"LOG_LEVEL": "debug", "OLD": null}})),
    responses(
        (status = 200, description = "Updated (or unchanged)", body = DeployResponse),
        (status = 400, description = "Invalid name or resulting configuration (the code names the rule, e.g. `InvalidMemorySize`), or a body that is not a JSON object of `FunctionSpec` fields (`InvalidJson`, `InvalidRequestBody`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`): create it with PUT", body = ApiErrorBody),
        (status = 409, description = "`code_sha256` names no stored package (`CodePackageNotFound`: upload it first), another request changed the function at the same time (`ConcurrentModification`), or this node cannot run the configuration: its runtime is not installed (`RuntimeUnavailable`) or one instance needs more memory than the node admits (`MemoryOverNodeLimit`); or a `provided` function's package has no executable `bootstrap` (`BootstrapMissing`), or a `wasm` function's package lacks the module its handler names (`WasmModuleMissing`)", body = ApiErrorBody),
        (status = 413, description = "Body over 2 MiB (`RequestTooLarge`)", body = ApiErrorBody),
        (status = 415, description = "Body not sent as JSON (`UnsupportedMediaType`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn patch_function(
    _: Authorized<needs::Deploy>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    patch: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<DeployResponse>, ApiError> {
    let name = function_name(&name)?;
    let Json(patch) = patch?;
    let code = match patch.get("code_sha256") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(sha)) => Some(stored_package(&state, sha).await?),
        Some(_) => {
            return Err(ApiError::bad_request("InvalidRequestBody", "code_sha256 must be a sha256 digest string"));
        }
    };
    let d = deploy::patch_config(state.store().as_ref(), &state, &name, &patch, code).await?;
    state.function_changed(&name).await;
    Ok(Json(DeployResponse { function: d.function, new_version: d.new_version }))
}

/// The stored package `code_sha256` names. A digest that is well formed but names nothing
/// stored is a 409, not a 400: the same request succeeds once the package is uploaded.
async fn stored_package(state: &AppState, sha: &str) -> Result<CodeRef, ApiError> {
    let digest: CodeDigest = sha.parse().map_err(|e| {
        ApiError::bad_request("InvalidParameterValue", format!("code_sha256 {sha:?} is not a sha256 digest: {e}"))
    })?;
    state.inner.code.stat(&digest).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "CodePackageNotFound",
            format!("no package with sha256 {sha:?} is stored; upload it first with POST /v1/packages"),
        )
    })
}

/// List functions, ordered by name.
#[utoipa::path(
    get, path = "/v1/functions", tag = "functions",
    responses((status = 200, body = FunctionList)),
    security(("bearer" = []))
)]
pub async fn list_functions(
    _: Authorized<needs::Read>,
    State(state): State<AppState>,
) -> Result<Json<FunctionList>, ApiError> {
    Ok(Json(FunctionList { functions: state.store().list_functions().await? }))
}

/// Get one function.
#[utoipa::path(
    get, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = FunctionName, Path, description = "Function name")),
    responses(
        (status = 200, body = Function),
        (status = 400, description = "Invalid function name (`InvalidFunctionName`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_function(
    _: Authorized<needs::Read>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Function>, ApiError> {
    let name = function_name(&name)?;
    let f = state.store().get_function(&name).await?;
    f.map(Json).ok_or_else(|| ApiError::function_not_found(name.as_str()))
}

/// Delete a function and all its versions.
#[utoipa::path(
    delete, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = FunctionName, Path, description = "Function name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid function name (`InvalidFunctionName`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_function(
    _: Authorized<needs::Deploy>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = function_name(&name)?;
    if state.store().delete_function(&name).await? {
        state.function_changed(&name).await;
        state.triggers_changed().await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::function_not_found(name.as_str()))
    }
}

/// List a function's versions, oldest first.
#[utoipa::path(
    get, path = "/v1/functions/{name}/versions", tag = "functions",
    params(("name" = FunctionName, Path, description = "Function name")),
    responses(
        (status = 200, body = VersionList),
        (status = 400, description = "Invalid function name (`InvalidFunctionName`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_versions(
    _: Authorized<needs::Read>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<VersionList>, ApiError> {
    let name = function_name(&name)?;
    let store = state.store();
    if store.get_function(&name).await?.is_none() {
        return Err(ApiError::function_not_found(name.as_str()));
    }
    Ok(Json(VersionList { versions: store.list_versions(&name).await? }))
}
