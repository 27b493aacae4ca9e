use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_blob::PackageError;
use hearth_types::api::{Binary, CodeFromObject, DeployResponse};
use hearth_types::{CodeRef, FunctionName, VersionSelector};
use serde::Deserialize;
use utoipa::IntoParams;

use super::function_name;
use crate::auth::{Authorized, needs};
use crate::body::read_limited;
use crate::{ApiError, ApiErrorBody, AppState, deploy};

/// Why a package is refused with 400.
const PACKAGE_REFUSED: &str = "Invalid package (the code names the rule, e.g. `ZipPathTraversal`, `ZipNotAnArchive`), invalid function name (`InvalidFunctionName`), or a JSON body that is not `{\"object_url\": \"s3://bucket/key\"}` (`InvalidRequestBody`, `InvalidObjectUrl`); with S3 configured, an object that does not exist or cannot be read (`CodeObjectNotFound`, `CodeObjectAccessDenied`)";
/// Why an `s3://` URL is refused with 403.
const S3_REFUSED: &str = "An `s3://` URL on a server without S3 settings (`S3NotConfigured`), or naming a bucket outside its allow-list (`S3BucketNotAllowed`)";

/// Largest JSON body accepted for `{"object_url": ...}`.
const OBJECT_REF_MAX_BYTES: u64 = 64 * 1024;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CodeQuery {
    #[param(schema_with = hearth_types::schema::version)]
    pub version: Option<String>,
}

/// Reads an uploaded package: the zip itself, or fetched from an object URL.
async fn read_package(state: &AppState, headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, ApiError> {
    let max = state.inner.code.limits().max_zipped_bytes;
    match upload_kind(headers)? {
        Upload::Zip => read_limited(body, max, |got| PackageError::TooLarge { got, max }.into()).await,
        Upload::ObjectRef => {
            let raw = read_limited(body, OBJECT_REF_MAX_BYTES, |_| {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "RequestTooLarge", "the JSON body is too large")
            })
            .await?;
            let r: CodeFromObject = serde_json::from_slice(&raw).map_err(|e| {
                ApiError::bad_request(
                    "InvalidRequestBody",
                    format!("expected {{\"object_url\": \"s3://bucket/key\"}}: {e}"),
                )
            })?;
            Ok(state.inner.objects.fetch(&r.object_url, max).await?)
        }
    }
}

/// Upload a code package without attaching it to a function.
///
/// Same body as `PUT /v1/functions/{name}/code`. Returns the package's sha256, which
/// `PUT /v1/functions/{name}` accepts as `code_sha256` to change code and configuration in
/// one version (what `hearth fn deploy` does).
#[utoipa::path(
    post, path = "/v1/packages", tag = "code",
    request_body(content(
        (Binary = "application/zip"),
        (Binary = "application/x-zip-compressed"),
        (Binary = "application/octet-stream"),
        (CodeFromObject = "application/json"),
    ), description = "The zip, or where to fetch it; `Content-Type` says which"),
    responses(
        (status = 201, body = CodeRef),
        (status = 400, description = PACKAGE_REFUSED, body = ApiErrorBody),
        (status = 403, description = S3_REFUSED, body = ApiErrorBody),
        (status = 413, description = "Package over 50 MiB (`ZipTooLarge`), or JSON body over 64 KiB (`RequestTooLarge`)", body = ApiErrorBody),
        (status = 415, description = "`Content-Type` is neither a zip type nor `application/json` (`UnsupportedMediaType`)", body = ApiErrorBody),
        (status = 502, description = "The S3-compatible store could not be reached (`CodeObjectFetchFailed`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn upload_package(
    _: Authorized<needs::Deploy>,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<CodeRef>), ApiError> {
    let zip = read_package(&state, &headers, body).await?;
    Ok((StatusCode::CREATED, Json(state.inner.code.put(zip).await?)))
}

enum Upload {
    Zip,
    ObjectRef,
}

fn upload_kind(headers: &HeaderMap) -> Result<Upload, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/zip" | "application/x-zip-compressed" | "application/octet-stream" => Ok(Upload::Zip),
        "application/json" => Ok(Upload::ObjectRef),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "Content-Type {ct:?} is not accepted: send a zip as application/zip, or {{\"object_url\": \"s3://...\"}} as application/json"
            ),
        )),
    }
}

/// Upload a function's code.
///
/// The body is a zip (`Content-Type: application/zip`), or JSON `{"object_url": "s3://bucket/key"}`
/// naming a zip in an S3-compatible store. The package is validated before anything is stored;
/// new code creates a new version, identical code changes nothing.
#[utoipa::path(
    put, path = "/v1/functions/{name}/code", tag = "code",
    params(("name" = FunctionName, Path, description = "Function name")),
    request_body(content(
        (Binary = "application/zip"),
        (Binary = "application/x-zip-compressed"),
        (Binary = "application/octet-stream"),
        (CodeFromObject = "application/json"),
    ), description = "The zip, or where to fetch it; `Content-Type` says which"),
    responses(
        (status = 200, body = DeployResponse),
        (status = 400, description = PACKAGE_REFUSED, body = ApiErrorBody),
        (status = 403, description = S3_REFUSED, body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`)", body = ApiErrorBody),
        (status = 409, description = "Another request changed the function at the same time (`ConcurrentModification`), or the function is `provided` and the package has no executable `bootstrap` (`BootstrapMissing`), or a `wasm` function's package lacks the module its handler names (`WasmModuleMissing`)", body = ApiErrorBody),
        (status = 413, description = "Package over 50 MiB (`ZipTooLarge`), or JSON body over 64 KiB (`RequestTooLarge`)", body = ApiErrorBody),
        (status = 415, description = "`Content-Type` is neither a zip type nor `application/json` (`UnsupportedMediaType`)", body = ApiErrorBody),
        (status = 502, description = "The S3-compatible store could not be reached (`CodeObjectFetchFailed`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_code(
    _: Authorized<needs::Deploy>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<DeployResponse>, ApiError> {
    let name = function_name(&name)?;
    let store = state.store();
    // Refuse early, before reading a large body, when the function does not exist.
    if store.get_function(&name).await?.is_none() {
        return Err(ApiError::function_not_found(name.as_str()));
    }
    let zip = read_package(&state, &headers, body).await?;
    let code = state.inner.code.put(zip).await?;
    let d = deploy::put_code(store.as_ref(), &state, &name, code).await?;
    if d.new_version.is_some() {
        state.function_changed(&name).await;
    }
    Ok(Json(DeployResponse { function: d.function, new_version: d.new_version }))
}

/// Download a function's code as the zip that was uploaded.
#[utoipa::path(
    get, path = "/v1/functions/{name}/code", tag = "code",
    params(("name" = FunctionName, Path, description = "Function name"), CodeQuery),
    responses(
        (status = 200, description = "The zip", content_type = "application/zip", body = Binary,
         headers(("X-Hearth-Code-Sha256" = String, description = "The package's sha256"),
                 ("X-Hearth-Version" = u32, description = "The version whose code this is"))),
        (status = 400, description = "Invalid function name (`InvalidFunctionName`) or version (`InvalidVersion`)", body = ApiErrorBody),
        (status = 404, description = "No such function (`FunctionNotFound`), version (`VersionNotFound`), or no code yet (`CodeNotFound`)", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_code(
    _: Authorized<needs::Read>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<CodeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let name = function_name(&name)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request("InvalidQuery", e.body_text()))?;
    let selector = match query.version.as_deref() {
        None => VersionSelector::Latest,
        Some(v) => v.parse().map_err(|e: String| ApiError::bad_request("InvalidVersion", e))?,
    };
    let store = state.store();
    let function = store.get_function(&name).await?.ok_or_else(|| ApiError::function_not_found(name.as_str()))?;
    let selector = super::aliases::pinned(store.as_ref(), &name, selector).await?;
    let (number, code) = match selector {
        VersionSelector::Latest | VersionSelector::Alias(_) => match (function.latest_version, function.code) {
            (Some(n), Some(code)) => (n, code),
            _ => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "CodeNotFound",
                    format!("function \"{name}\" has no code yet; upload some with `hearth fn deploy`"),
                ));
            }
        },
        VersionSelector::Number(n) => {
            let v = store.get_version(&name, n).await?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "VersionNotFound",
                    format!("function \"{name}\" has no version {n}; `hearth fn versions {name}` lists them"),
                )
            })?;
            (n, v.code)
        }
    };
    let bytes = state.inner.code.get(&code.sha256).await?;
    let disposition = format!("attachment; filename=\"{name}-v{number}.zip\"");
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(code.sha256.as_str()) {
        h.insert("x-hearth-code-sha256", v);
    }
    h.insert("x-hearth-version", HeaderValue::from(number));
    Ok(resp)
}
