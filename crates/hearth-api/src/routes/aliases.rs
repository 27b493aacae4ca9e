//! Aliases: `PUT /v1/functions/{name}/aliases/{alias}` (create or move), `GET` one or all,
//! `DELETE`. An alias names a version, and optionally a second one with a share of the
//! invocations; invocations, triggers and destinations may name `NAME:alias`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use hearth_store::{MetadataStore, StoreError};
use hearth_types::api::{AliasList, AliasSpec};
use hearth_types::{AdditionalVersion, Alias, AliasName, FunctionName, VersionSelector, validate_weight};

use crate::auth::{Authorized, needs};
use crate::{ApiError, ApiErrorBody, AppState};

/// Aliases one function may have.
const ALIASES_PER_FUNCTION: usize = 100;

fn alias_not_found(name: &FunctionName, alias: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "AliasNotFound",
        format!("function \"{name}\" has no alias {alias:?}; `hearth alias list {name}` lists them"),
    )
}

/// `selector` with an alias replaced by the version it names (its main one): for reading a
/// version's code or configuration. 404 `AliasNotFound` when there is no such alias.
pub async fn pinned(
    store: &dyn MetadataStore,
    name: &FunctionName,
    selector: VersionSelector,
) -> Result<VersionSelector, ApiError> {
    match selector {
        VersionSelector::Alias(a) => match store.get_alias(name, &a).await? {
            Some(alias) => Ok(VersionSelector::Number(alias.version)),
            None => Err(alias_not_found(name, a.as_str())),
        },
        other => Ok(other),
    }
}

fn parts(name: &str, alias: &str) -> Result<(FunctionName, AliasName), ApiError> {
    Ok((name.parse()?, alias.parse()?))
}

/// Create an alias or move it: it names `version` (and with `additional_version`, sends that
/// share of invocations to a second one).
#[utoipa::path(
    put, path = "/v1/functions/{name}/aliases/{alias}", tag = "functions", request_body = AliasSpec,
    params(("name" = FunctionName, Path, description = "Function name"), ("alias" = AliasName, Path, description = "Alias name")),
    responses(
        (status = 200, description = "Moved", body = Alias),
        (status = 201, description = "Created", body = Alias),
        (status = 400, description = "Invalid name, alias name or weight (`InvalidFunctionName`, `InvalidAliasName`, `InvalidWeight`), or a body that is not an `AliasSpec` (`InvalidJson`, `InvalidRequestBody`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`) or version (`VersionNotFound`)", body = ApiErrorBody),
        (status = 409, description = "The function has 100 aliases already (`AliasLimitExceeded`)", body = ApiErrorBody),
        (status = 413, description = "Body over 2 MiB (`RequestTooLarge`)", body = ApiErrorBody),
        (status = 415, description = "Body not sent as `application/json` (`UnsupportedMediaType`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_alias(
    _: Authorized<needs::Deploy>,
    State(state): State<AppState>,
    Path((name, alias)): Path<(String, String)>,
    spec: Result<Json<AliasSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<Alias>), ApiError> {
    let (name, alias_name) = parts(&name, &alias)?;
    let Json(spec) = spec?;
    let additional = match spec.additional_version {
        None => None,
        Some(a) => Some(AdditionalVersion { version: a.version, weight: validate_weight(a.weight)? }),
    };
    if let Some(description) = &spec.description
        && description.chars().count() > hearth_types::limits::DESCRIPTION_MAX_LEN
    {
        return Err(ApiError::bad_request(
            "InvalidParameterValue",
            format!("description is longer than {} characters", hearth_types::limits::DESCRIPTION_MAX_LEN),
        ));
    }
    let store = state.store();
    let function = store.get_function(&name).await?.ok_or_else(|| ApiError::function_not_found(name.as_str()))?;
    for v in std::iter::once(spec.version).chain(additional.map(|a| a.version)) {
        if store.get_version(&name, v).await?.is_none_or(|found| found.function_id != function.id) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "VersionNotFound",
                format!("function \"{name}\" has no version {v}; `hearth fn versions {name}` lists them"),
            ));
        }
    }
    if additional.is_some_and(|a| a.version == spec.version) {
        return Err(ApiError::bad_request(
            "InvalidParameterValue",
            "the additional version must differ from the alias's version",
        ));
    }
    let now = Utc::now();
    let existing = store.get_alias(&name, &alias_name).await?;
    let created = existing.is_none();
    // Bounded: each alias keeps the pools of the versions it names.
    if created && store.list_aliases(&name).await?.len() >= ALIASES_PER_FUNCTION {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "AliasLimitExceeded",
            format!("function \"{name}\" has {ALIASES_PER_FUNCTION} aliases, the most it may have; delete one first"),
        ));
    }
    let alias = Alias {
        function: name.clone(),
        name: alias_name,
        version: spec.version,
        additional_version: additional,
        description: spec.description.unwrap_or_default(),
        revision: existing.as_ref().map_or(1, |a| a.revision + 1),
        created_at: existing.as_ref().map_or(now, |a| a.created_at),
        updated_at: now,
    };
    match store.put_alias(&alias).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Err(ApiError::function_not_found(name.as_str())),
        Err(e) => return Err(e.into()),
    }
    state.function_changed(&name).await;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(alias)))
}

/// A function's aliases, ordered by name.
#[utoipa::path(
    get, path = "/v1/functions/{name}/aliases", tag = "functions",
    params(("name" = FunctionName, Path, description = "Function name")),
    responses(
        (status = 200, body = AliasList),
        (status = 400, description = "Invalid function name (`InvalidFunctionName`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_aliases(
    _: Authorized<needs::Read>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<AliasList>, ApiError> {
    let name: FunctionName = name.parse()?;
    if state.store().get_function(&name).await?.is_none() {
        return Err(ApiError::function_not_found(name.as_str()));
    }
    Ok(Json(AliasList { aliases: state.store().list_aliases(&name).await? }))
}

/// One alias.
#[utoipa::path(
    get, path = "/v1/functions/{name}/aliases/{alias}", tag = "functions",
    params(("name" = FunctionName, Path, description = "Function name"), ("alias" = AliasName, Path, description = "Alias name")),
    responses(
        (status = 200, body = Alias),
        (status = 400, description = "Invalid function or alias name (`InvalidFunctionName`, `InvalidAliasName`)", body = ApiErrorBody),
        (status = 404, description = "No such alias (`AliasNotFound`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_alias(
    _: Authorized<needs::Read>,
    State(state): State<AppState>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Json<Alias>, ApiError> {
    let (name, alias_name) = parts(&name, &alias)?;
    state.store().get_alias(&name, &alias_name).await?.map(Json).ok_or_else(|| alias_not_found(&name, &alias))
}

/// Delete an alias (invocations naming it then get 404 `AliasNotFound`).
#[utoipa::path(
    delete, path = "/v1/functions/{name}/aliases/{alias}", tag = "functions",
    params(("name" = FunctionName, Path, description = "Function name"), ("alias" = AliasName, Path, description = "Alias name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid function or alias name (`InvalidFunctionName`, `InvalidAliasName`)", body = ApiErrorBody),
        (status = 404, description = "No such alias (`AliasNotFound`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_alias(
    _: Authorized<needs::Deploy>,
    State(state): State<AppState>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (name, alias_name) = parts(&name, &alias)?;
    if !state.store().delete_alias(&name, &alias_name).await? {
        return Err(alias_not_found(&name, &alias));
    }
    state.function_changed(&name).await;
    Ok(StatusCode::NO_CONTENT)
}
