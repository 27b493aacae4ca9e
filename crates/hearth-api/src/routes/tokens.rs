use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hearth_types::api::{NewToken, TOKEN_NAME_MAX_LEN, TokenInfo, TokenList, TokenSpec};
use hearth_types::{Scope, TokenId};

use crate::auth::{Authorized, Caller, mint_token, needs};
use crate::{ApiError, ApiErrorBody, AppState};

/// Create an API token (admin only).
#[utoipa::path(
    post, path = "/v1/tokens", tag = "tokens", request_body = TokenSpec,
    responses(
        (status = 201, body = NewToken),
        (status = 400, description = "Unknown or no scope (`InvalidScope`), invalid name (`InvalidParameterValue`), or a body that is not a `TokenSpec` (`InvalidJson`, `InvalidRequestBody`)", body = ApiErrorBody),
        (status = 413, description = "Body over 2 MiB (`RequestTooLarge`)", body = ApiErrorBody),
        (status = 415, description = "Body not sent as `application/json` (`UnsupportedMediaType`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_token(
    _: Authorized<needs::Admin>,
    State(state): State<AppState>,
    spec: Result<Json<TokenSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    let Json(spec) = spec?;
    let mut scopes = spec.scopes.iter().map(|s| s.parse::<Scope>()).collect::<Result<Vec<_>, _>>()?;
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(ApiError::bad_request("InvalidScope", "give at least one scope: admin, deploy, invoke or read"));
    }
    let name = spec.name.unwrap_or_else(|| "token".into());
    let len = name.chars().count();
    if len == 0 || len > TOKEN_NAME_MAX_LEN || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "InvalidParameterValue",
            format!("token name must be 1-{TOKEN_NAME_MAX_LEN} characters, none of them control characters"),
        ));
    }
    let (record, secret) = mint_token(&name, scopes)?;
    state.store().insert_token(&record).await?;
    Ok((StatusCode::CREATED, Json(NewToken { info: record.into(), token: secret })))
}

/// The token this request carries: its id, name, scopes and creation time (any valid
/// token; never its secret).
#[utoipa::path(
    get, path = "/v1/token", tag = "tokens",
    responses((status = 200, body = TokenInfo)),
    security(("bearer" = []))
)]
pub async fn whoami(caller: Caller) -> Json<TokenInfo> {
    Json(caller.token.into())
}

/// List API tokens (admin only).
#[utoipa::path(
    get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, body = TokenList)),
    security(("bearer" = []))
)]
pub async fn list_tokens(
    _: Authorized<needs::Admin>,
    State(state): State<AppState>,
) -> Result<Json<TokenList>, ApiError> {
    let tokens = state.store().list_tokens().await?.into_iter().map(TokenInfo::from).collect();
    Ok(Json(TokenList { tokens }))
}

/// Delete an API token (admin only). The last admin token cannot be deleted.
#[utoipa::path(
    delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = TokenId, Path, description = "Token id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No token with this id (`TokenNotFound`)", body = ApiErrorBody),
        (status = 409, description = "The last admin token (`LastAdminToken`): create another first", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_token(
    _: Authorized<needs::Admin>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "TokenNotFound", format!("no token with id {id:?}"));
    let id: TokenId = id.parse().map_err(|_| not_found())?;
    let tokens = state.store().list_tokens().await?;
    let target = tokens.iter().find(|t| t.id == id).ok_or_else(not_found)?;
    let admins = tokens.iter().filter(|t| t.grants(Scope::Admin)).count();
    if target.grants(Scope::Admin) && admins == 1 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "LastAdminToken",
            "this is the last admin token; create another admin token before deleting it",
        ));
    }
    state.store().delete_token(id).await?;
    state.inner.tokens.forget(id);
    Ok(StatusCode::NO_CONTENT)
}
