//! The Lambda management calls, so `aws lambda` and the AWS SDKs manage Hearth functions
//! with `--endpoint-url`: ListFunctions, GetFunction, GetFunctionConfiguration,
//! CreateFunction, UpdateFunctionCode, UpdateFunctionConfiguration, DeleteFunction,
//! PublishVersion and ListVersionsByFunction. Each goes through the same deploy writes as
//! Hearth's own API (`crate::deploy`), so the two always agree.
//!
//! Where the models differ: every change to a function with code already makes an
//! immutable version, so `Publish` is implied and `PublishVersion` returns the newest
//! version; roles are accepted and ignored; VPC settings, layers, file systems and images
//! are refused with `InvalidParameterValueException`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use base64::Engine;
use hearth_types::{CodeRef, Function, FunctionConfig, FunctionName, FunctionSpec, Scope, Version, VersionSelector};
use serde::de::DeserializeOwned;

use super::caller::LambdaCaller;
use super::function_ref::{parse_function, query_param};
use super::runtime_names::hearth_runtime;
use super::shapes::*;
use super::{LambdaError, LambdaErrorBody};
use crate::body::read_limited;
use crate::{ApiError, AppState, deploy};

/// The account id in ARNs: Hearth has no accounts.
const ACCOUNT: &str = "000000000000";
const ROLE: &str = "arn:aws:iam::000000000000:role/hearth-has-no-roles";
/// Page size of the list calls (Lambda's most).
const MAX_ITEMS: usize = 50;
/// The largest `Marker` (an index; the document's pattern allows 9 digits).
const MAX_MARKER: usize = 999_999_999;
/// JSON bodies without code.
const CONFIG_BODY_MAX: u64 = 256 * 1024;

type Answer<T> = Result<Json<T>, LambdaError>;

// Why the calls refuse, as the document states it.
const REFUSED: &str = "A value Hearth cannot honour or refuses (`InvalidParameterValueException`), or a body that is not JSON of the call's shape (`InvalidRequestContentException`)";
const NOT_FOUND: &str = "No such function or version (`ResourceNotFoundException`)";
const CONCURRENT: &str = "Another request changed the function at the same time (`ResourceConflictException`)";
const STALE_REVISION: &str = "`RevisionId` is not the function's (`PreconditionFailedException`)";
const TOO_LARGE: &str = "Body too large (`RequestTooLargeException`)";
const S3_UNREACHABLE: &str = "The S3-compatible store could not be reached (`ServiceException`)";
const BAD_PAGE: &str = "`Marker` or `MaxItems` out of range (`InvalidParameterValueException`)";

// The parameters as the document states them; the handlers read them from the request
// itself (every refusal answers in Lambda's shape), so nothing builds these.

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct FunctionPath {
    /// Name, `name:qualifier`, `account:function:name[:qualifier]` or a function ARN.
    #[param(schema_with = super::function_ref_schema)]
    pub name: String,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct QualifierQuery {
    /// Version number or `$LATEST`; wins over a qualifier in the name.
    #[param(rename = "Qualifier", schema_with = hearth_types::schema::version)]
    pub qualifier: Option<String>,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageQuery {
    /// Where the page starts: the `NextMarker` of the page before.
    #[param(rename = "Marker", pattern = "^[0-9]{1,9}$")]
    pub marker: Option<String>,
    /// Items per page, 1-50 (default 50).
    #[param(rename = "MaxItems", minimum = 1, maximum = 50)]
    pub max_items: Option<u32>,
}

/// Reads a JSON body of at most `limit` bytes.
async fn read_json<T: DeserializeOwned>(body: Body, limit: u64) -> Result<T, LambdaError> {
    let too_large = |got| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLarge",
            format!("the request body ({got} bytes) is too large"),
        )
    };
    let bytes = read_limited(body, limit, too_large).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        LambdaError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            format!("could not parse the request body: {e}"),
        )
    })
}

/// A body that may carry a zip in base64: the package limit, a third larger, plus room for
/// the rest.
fn code_body_max(state: &AppState) -> u64 {
    state.code().limits().max_zipped_bytes / 3 * 4 + 64 * 1024
}

async fn authorize(request: Request, state: &AppState, scope: Scope) -> Result<(LambdaCaller, Body), LambdaError> {
    let (mut parts, body) = request.into_parts();
    let who = LambdaCaller::authorize(&mut parts, state, scope).await?;
    Ok((who, body))
}

/// The function a call that changes or lists it names: a version qualifier there would be
/// ignored, so it is refused.
fn function_name(raw: &str) -> Result<FunctionName, LambdaError> {
    match parse_function(raw, None).map_err(LambdaError::not_found)? {
        (name, VersionSelector::Latest) => Ok(name),
        (_, q) => Err(LambdaError::invalid(format!(
            "{raw}: this call takes the function's name or unqualified ARN, not qualifier {q}"
        ))),
    }
}

async fn existing(state: &AppState, name: &FunctionName, region: &str) -> Result<Function, LambdaError> {
    state
        .store()
        .get_function(name)
        .await?
        .ok_or_else(|| LambdaError::not_found(format!("Function not found: {}", arn(region, name, None))))
}

fn arn(region: &str, name: &FunctionName, version: Option<u32>) -> String {
    let suffix = version.map(|v| format!(":{v}")).unwrap_or_default();
    format!("arn:aws:lambda:{region}:{ACCOUNT}:function:{name}{suffix}")
}

/// The hex digest as Lambda shows it: base64 of the bytes.
fn sha256_base64(code: &CodeRef) -> String {
    let bytes = hex::decode(code.sha256.as_str()).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn configuration(
    region: &str,
    name: &FunctionName,
    config: &FunctionConfig,
    code: Option<&CodeRef>,
    version: Option<u32>,
    modified: chrono::DateTime<chrono::Utc>,
    revision: u64,
) -> FunctionConfiguration {
    FunctionConfiguration {
        function_name: name.to_string(),
        function_arn: arn(region, name, version),
        runtime: config.runtime.to_string(),
        role: ROLE.into(),
        handler: config.handler.clone(),
        code_size: code.map_or(0, |c| c.size_bytes),
        description: config.description.clone(),
        timeout: config.timeout_s,
        memory_size: config.memory_mb,
        last_modified: modified.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string(),
        code_sha256: code.map(sha256_base64).unwrap_or_default(),
        version: version.map_or_else(|| "$LATEST".to_owned(), |v| v.to_string()),
        environment: EnvironmentResponse { variables: config.environment.clone() },
        revision_id: revision.to_string(),
        state: "Active".into(),
        last_update_status: "Successful".into(),
        package_type: "Zip".into(),
        architectures: vec![std::env::consts::ARCH.replace("aarch64", "arm64")],
        ephemeral_storage: EphemeralStorage { size: i64::from(config.ephemeral_storage_mb) },
    }
}

fn latest(region: &str, f: &Function) -> FunctionConfiguration {
    configuration(region, &f.name, &f.config, f.code.as_ref(), None, f.updated_at, f.revision)
}

fn of_version(region: &str, v: &Version, revision: u64) -> FunctionConfiguration {
    configuration(region, &v.function, &v.config, Some(&v.code), Some(v.number), v.created_at, revision)
}

/// The configuration of `selector` (`$LATEST` or a version).
async fn selected(
    state: &AppState,
    region: &str,
    name: &FunctionName,
    selector: VersionSelector,
) -> Result<(Function, FunctionConfiguration), LambdaError> {
    let f = existing(state, name, region).await?;
    let selector = crate::routes::aliases::pinned(state.store().as_ref(), name, selector).await?;
    let shown = match selector {
        VersionSelector::Latest | VersionSelector::Alias(_) => latest(region, &f),
        VersionSelector::Number(n) => {
            let v = state.store().get_version(name, n).await?;
            let v =
                v.ok_or_else(|| LambdaError::not_found(format!("Function not found: {}", arn(region, name, Some(n)))))?;
            of_version(region, &v, f.revision)
        }
    };
    Ok((f, shown))
}

fn qualified(raw: &str, query: Option<&str>) -> Result<(FunctionName, VersionSelector), LambdaError> {
    parse_function(raw, query_param(query, "Qualifier").as_deref()).map_err(LambdaError::not_found)
}

/// Refuses what Hearth cannot honour rather than ignoring it.
fn refuse_unsupported(u: &Unsupported, architectures: Option<&[String]>) -> Result<(), LambdaError> {
    if u.vpc_config.as_ref().is_some_and(|v| !v.subnet_ids.is_empty() || !v.security_group_ids.is_empty()) {
        return Err(LambdaError::invalid(
            "VpcConfig is not supported: Hearth functions have no network (network: none) or outbound NAT (network: egress, Hearth's API)",
        ));
    }
    if !u.layers.is_empty() {
        return Err(LambdaError::invalid("Layers are not supported: put the layer's files in the function's package"));
    }
    if !u.file_system_configs.is_empty() {
        return Err(LambdaError::invalid("FileSystemConfigs are not supported"));
    }
    if u.image_config.is_some() {
        return Err(LambdaError::invalid("ImageConfig is not supported: container images are not supported yet"));
    }
    let host = std::env::consts::ARCH.replace("aarch64", "arm64");
    if let Some(other) = architectures.into_iter().flatten().find(|a| **a != host) {
        return Err(LambdaError::invalid(format!("Architectures {other:?}: this server runs {host} only")));
    }
    if architectures.is_some_and(|a| a.len() > 1) {
        return Err(LambdaError::invalid("Architectures takes one architecture"));
    }
    Ok(())
}

/// Stores the code a request names (zip or S3 object); `None` when it names none.
async fn store_code(state: &AppState, code: &FunctionCode, dry_run: bool) -> Result<Option<CodeRef>, LambdaError> {
    if code.image_uri.is_some() {
        return Err(LambdaError::invalid(
            "ImageUri is not supported: container images are not supported yet; upload a zip",
        ));
    }
    if code.s3_object_version.is_some() {
        return Err(LambdaError::invalid("S3ObjectVersion is not supported: name the object by S3Bucket and S3Key"));
    }
    let max = state.code().limits().max_zipped_bytes;
    let zip = match (&code.zip_file, &code.s3_bucket, &code.s3_key) {
        (Some(b64), None, None) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| LambdaError::invalid(format!("ZipFile is not base64: {e}")))?
            .into(),
        (None, Some(bucket), Some(key)) => state.inner.objects.fetch(&format!("s3://{bucket}/{key}"), max).await?,
        (None, None, None) => return Ok(None),
        _ => return Err(LambdaError::invalid("give either ZipFile, or S3Bucket with S3Key")),
    };
    if dry_run {
        hearth_blob::validate_package(&zip, state.code().limits()).map_err(ApiError::from)?;
        return Ok(Some(CodeRef { sha256: hearth_types::CodeDigest::of(&zip), size_bytes: zip.len() as u64 }));
    }
    Ok(Some(state.code().put(zip).await?))
}

/// A Lambda `RevisionId` precondition against the function's revision (checked again
/// inside the write).
fn check_revision(f: &Function, wanted: Option<&str>) -> Result<(), LambdaError> {
    Ok(deploy::revision_matches(f, wanted)?)
}

/// `ListFunctions`: every function's `$LATEST`, by name, 50 a page.
#[utoipa::path(
    get, path = "/2015-03-31/functions", tag = "lambda",
    params(PageQuery),
    responses(
        (status = 200, body = ListFunctionsResponse),
        (status = 400, description = BAD_PAGE, body = LambdaErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_functions(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Answer<ListFunctionsResponse> {
    let (who, _) = authorize(request, &state, Scope::Read).await?;
    let all = state.store().list_functions().await?;
    let (page, next_marker) = paginate(all, query.as_deref())?;
    Ok(Json(ListFunctionsResponse { functions: page.iter().map(|f| latest(&who.region, f)).collect(), next_marker }))
}

/// A page of `items` after `Marker` (an index), at most `MaxItems` (1–50).
fn paginate<T>(items: Vec<T>, query: Option<&str>) -> Result<(Vec<T>, Option<String>), LambdaError> {
    let number = |key: &str| -> Result<Option<usize>, LambdaError> {
        query_param(query, key)
            .map(|v| v.parse::<usize>().map_err(|_| LambdaError::invalid(format!("{key} {v:?} is not a number"))))
            .transpose()
    };
    let start = number("Marker")?.unwrap_or(0);
    if start > MAX_MARKER {
        return Err(LambdaError::invalid("Marker is not one this server gave: pass the NextMarker of the page before"));
    }
    let max = number("MaxItems")?.unwrap_or(MAX_ITEMS);
    if !(1..=MAX_ITEMS).contains(&max) {
        return Err(LambdaError::invalid(format!("MaxItems must be 1-{MAX_ITEMS}")));
    }
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(max).collect();
    let end = start + max; // Both bounded above: no overflow.
    let next = (end < total).then(|| end.to_string());
    Ok((page, next))
}

/// `GetFunction`: the configuration and where to download the code.
#[utoipa::path(
    get, path = "/2015-03-31/functions/{name}", tag = "lambda",
    params(FunctionPath, QualifierQuery),
    responses(
        (status = 200, body = GetFunctionResponse),
        (status = 404, description = NOT_FOUND, body = LambdaErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_function(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Answer<GetFunctionResponse> {
    let (who, _) = authorize(request, &state, Scope::Read).await?;
    let (name, selector) = qualified(&raw, query.as_deref())?;
    let selector = crate::routes::aliases::pinned(state.store().as_ref(), &name, selector).await?;
    let (_, configuration) = selected(&state, &who.region, &name, selector.clone()).await?;
    let version = match selector {
        VersionSelector::Number(n) => format!("?version={n}"),
        _ => String::new(),
    };
    let base = state.api_base_url().unwrap_or_default();
    let location = format!("{base}/v1/functions/{name}/code{version}");
    Ok(Json(GetFunctionResponse { configuration, code: CodeLocation { repository_type: "Hearth".into(), location } }))
}

/// `GetFunctionConfiguration`.
#[utoipa::path(
    get, path = "/2015-03-31/functions/{name}/configuration", tag = "lambda",
    params(FunctionPath, QualifierQuery),
    responses(
        (status = 200, body = FunctionConfiguration),
        (status = 404, description = NOT_FOUND, body = LambdaErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_configuration(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Answer<FunctionConfiguration> {
    let (who, _) = authorize(request, &state, Scope::Read).await?;
    let (name, selector) = qualified(&raw, query.as_deref())?;
    Ok(Json(selected(&state, &who.region, &name, selector).await?.1))
}

/// The configuration `settings` ask for, over `spec`.
fn spec_over(mut spec: FunctionSpec, settings: &Settings) -> Result<FunctionSpec, LambdaError> {
    if let Some(r) = &settings.runtime {
        spec.runtime = hearth_runtime(r)?.to_string();
    }
    if let Some(h) = &settings.handler {
        spec.handler = Some(h.clone());
    }
    spec.memory_mb = settings.memory_size.or(spec.memory_mb);
    spec.timeout_s = settings.timeout.or(spec.timeout_s);
    if let Some(d) = &settings.description {
        spec.description = Some(d.clone());
    }
    if let Some(e) = &settings.environment {
        spec.environment = e.variables.clone().unwrap_or_default();
    }
    if let Some(s) = &settings.ephemeral_storage {
        spec.ephemeral_storage_mb = Some(s.size);
    }
    Ok(spec)
}

/// `CreateFunction` (201): a new function with its code; one that exists is a
/// `ResourceConflictException`.
#[utoipa::path(
    post, path = "/2015-03-31/functions", tag = "lambda",
        request_body = CreateFunctionRequest,
    responses(
        (status = 201, body = FunctionConfiguration),
        (status = 400, description = REFUSED, body = LambdaErrorBody),
        (status = 409, description = "A function of that name exists (`ResourceConflictException`)", body = LambdaErrorBody),
        (status = 413, description = TOO_LARGE, body = LambdaErrorBody),
        (status = 502, description = S3_UNREACHABLE, body = LambdaErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_function(
    State(state): State<AppState>,
    request: Request,
) -> Result<(StatusCode, Json<FunctionConfiguration>), LambdaError> {
    let (who, body) = authorize(request, &state, Scope::Deploy).await?;
    let req: CreateFunctionRequest = read_json(body, code_body_max(&state)).await?;
    // A name that cannot be is a bad parameter here, not a function that is not found.
    let (name, selector) = parse_function(&req.function_name, None).map_err(|_| {
        LambdaError::invalid(format!(
            "FunctionName {:?} is not a valid name: 1-63 lower-case letters, digits and '-', starting with a letter",
            req.function_name
        ))
    })?;
    if selector != VersionSelector::Latest {
        return Err(LambdaError::invalid("FunctionName cannot name a version when creating"));
    }
    refuse_unsupported(&req.settings.unsupported, req.architectures.as_deref())?;
    if req.package_type.as_deref().is_some_and(|p| p != "Zip") {
        return Err(LambdaError::invalid("PackageType Image is not supported yet: use Zip"));
    }
    if req.settings.runtime.is_none() {
        return Err(LambdaError::invalid("Runtime is required for a Zip package"));
    }
    let spec = spec_over(FunctionSpec::default(), &req.settings)?;
    let config = spec.validate()?;
    if state.store().get_function(&name).await?.is_some() {
        return Err(LambdaError::new(
            StatusCode::CONFLICT,
            "ResourceConflictException",
            format!("Function already exist: {name}"),
        ));
    }
    let code = store_code(&state, &req.code, false).await?;
    let code = code.ok_or_else(|| LambdaError::invalid("Code must give ZipFile, or S3Bucket with S3Key"))?;
    let d = deploy::create(state.store().as_ref(), &state, &name, config, Some(code)).await?;
    state.function_changed(&name).await;
    Ok((StatusCode::CREATED, Json(latest(&who.region, &d.function))))
}

/// `UpdateFunctionConfiguration`: the settings given change (`Environment` replaces every
/// variable), the others stay.
#[utoipa::path(
    put, path = "/2015-03-31/functions/{name}/configuration", tag = "lambda",
    params(FunctionPath),
    request_body = UpdateFunctionConfigurationRequest,
    responses(
        (status = 200, body = FunctionConfiguration),
        (status = 400, description = REFUSED, body = LambdaErrorBody),
        (status = 404, description = NOT_FOUND, body = LambdaErrorBody),
        (status = 409, description = CONCURRENT, body = LambdaErrorBody),
        (status = 412, description = STALE_REVISION, body = LambdaErrorBody),
        (status = 413, description = TOO_LARGE, body = LambdaErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update_configuration(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    request: Request,
) -> Answer<FunctionConfiguration> {
    let (who, body) = authorize(request, &state, Scope::Deploy).await?;
    let req: UpdateFunctionConfigurationRequest = read_json(body, CONFIG_BODY_MAX).await?;
    let name = function_name(&raw)?;
    refuse_unsupported(&req.settings.unsupported, None)?;
    // The runtime is checked here too, so its error is Lambda's, not a generic one.
    if let Some(r) = &req.settings.runtime {
        hearth_runtime(r)?;
    }
    let f = existing(&state, &name, &who.region).await?;
    let change = |current: &FunctionConfig| -> Result<FunctionConfig, ApiError> {
        let spec = spec_over(FunctionSpec::from_config(current), &req.settings)
            .map_err(|e| ApiError::bad_request("InvalidRuntime", e.message))?;
        Ok(spec.validate()?)
    };
    // What is asked must be valid before whether it may be applied is looked at.
    change(&f.config)?;
    check_revision(&f, req.revision_id.as_deref())?;
    let revision = req.revision_id.as_deref();
    let at_revision = |current: &Function| {
        deploy::revision_matches(current, revision)?;
        change(&current.config)
    };
    let d = deploy::update_config(state.store().as_ref(), &state, &name, at_revision, None).await?;
    state.function_changed(&name).await;
    Ok(Json(latest(&who.region, &d.function)))
}

/// `UpdateFunctionCode`: new code (zip or S3 object), the same settings.
#[utoipa::path(
    put, path = "/2015-03-31/functions/{name}/code", tag = "lambda",
    params(FunctionPath),
    request_body = UpdateFunctionCodeRequest,
    responses(
        (status = 200, body = FunctionConfiguration),
        (status = 400, description = REFUSED, body = LambdaErrorBody),
        (status = 404, description = NOT_FOUND, body = LambdaErrorBody),
        (status = 409, description = CONCURRENT, body = LambdaErrorBody),
        (status = 412, description = STALE_REVISION, body = LambdaErrorBody),
        (status = 413, description = TOO_LARGE, body = LambdaErrorBody),
        (status = 502, description = S3_UNREACHABLE, body = LambdaErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update_code(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    request: Request,
) -> Answer<FunctionConfiguration> {
    let (who, body) = authorize(request, &state, Scope::Deploy).await?;
    let req: UpdateFunctionCodeRequest = read_json(body, code_body_max(&state)).await?;
    let name = function_name(&raw)?;
    refuse_unsupported(&Unsupported::default(), req.architectures.as_deref())?;
    let f = existing(&state, &name, &who.region).await?;
    let c = &req.code;
    if c.zip_file.is_none() && c.s3_bucket.is_none() && c.s3_key.is_none() && c.image_uri.is_none() {
        return Err(LambdaError::invalid("give ZipFile, or S3Bucket with S3Key"));
    }
    check_revision(&f, req.revision_id.as_deref())?;
    let dry_run = req.dry_run.unwrap_or(false);
    let code = store_code(&state, &req.code, dry_run).await?;
    let code = code.ok_or_else(|| LambdaError::invalid("give ZipFile, or S3Bucket with S3Key"))?;
    if dry_run {
        let mut shown = latest(&who.region, &f);
        shown.code_sha256 = sha256_base64(&code);
        shown.code_size = code.size_bytes;
        return Ok(Json(shown));
    }
    let revision = req.revision_id.as_deref();
    let same_settings = |current: &Function| {
        deploy::revision_matches(current, revision)?;
        Ok(current.config.clone())
    };
    let d = deploy::update_config(state.store().as_ref(), &state, &name, same_settings, Some(code)).await?;
    if d.new_version.is_some() {
        state.function_changed(&name).await;
    }
    Ok(Json(latest(&who.region, &d.function)))
}

/// `DeleteFunction` (204): the function and all its versions. Deleting one version is
/// refused: versions are immutable history here.
#[utoipa::path(
    delete, path = "/2015-03-31/functions/{name}", tag = "lambda",
    params(FunctionPath, QualifierQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A `Qualifier` naming one version (`InvalidParameterValueException`)", body = LambdaErrorBody),
        (status = 404, description = NOT_FOUND, body = LambdaErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_function(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<StatusCode, LambdaError> {
    let (who, _) = authorize(request, &state, Scope::Deploy).await?;
    let (name, selector) = qualified(&raw, query.as_deref())?;
    if selector != VersionSelector::Latest {
        return Err(LambdaError::invalid(
            "deleting one version is not supported: versions are kept until the function is deleted",
        ));
    }
    if !state.store().delete_function(&name).await? {
        return Err(LambdaError::not_found(format!("Function not found: {}", arn(&who.region, &name, None))));
    }
    state.function_changed(&name).await;
    state.triggers_changed().await;
    Ok(StatusCode::NO_CONTENT)
}

/// `PublishVersion` (201): every change already made a version, so this returns the newest
/// one, after checking `CodeSha256` and `RevisionId` when given.
#[utoipa::path(
    post, path = "/2015-03-31/functions/{name}/versions", tag = "lambda",
    params(FunctionPath),
    request_body = PublishVersionRequest,
    responses(
        (status = 201, body = FunctionConfiguration),
        (status = 400, description = REFUSED, body = LambdaErrorBody),
        (status = 404, description = NOT_FOUND, body = LambdaErrorBody),
        (status = 409, description = "The function has no code yet (`ResourceConflictException`)", body = LambdaErrorBody),
        (status = 412, description = STALE_REVISION, body = LambdaErrorBody),
        (status = 413, description = TOO_LARGE, body = LambdaErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn publish_version(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<FunctionConfiguration>), LambdaError> {
    let (who, body) = authorize(request, &state, Scope::Deploy).await?;
    let req: PublishVersionRequest = read_json(body, CONFIG_BODY_MAX).await?;
    let name = function_name(&raw)?;
    let f = existing(&state, &name, &who.region).await?;
    check_revision(&f, req.revision_id.as_deref())?;
    let (Some(number), Some(code)) = (f.latest_version, &f.code) else {
        return Err(LambdaError::new(
            StatusCode::CONFLICT,
            "ResourceConflictException",
            "the function has no code to publish",
        ));
    };
    if let Some(sha) = &req.code_sha256
        && *sha != sha256_base64(code)
    {
        return Err(LambdaError::invalid(format!(
            "CodeSha256 {sha} does not match the function's code ({})",
            sha256_base64(code)
        )));
    }
    let v = state.store().get_version(&name, number).await?;
    let v = v.ok_or_else(|| LambdaError::not_found(format!("version {number} of {name} is gone")))?;
    Ok((StatusCode::CREATED, Json(of_version(&who.region, &v, f.revision))))
}

/// `ListVersionsByFunction`: `$LATEST`, then every version, oldest first.
#[utoipa::path(
    get, path = "/2015-03-31/functions/{name}/versions", tag = "lambda",
    params(FunctionPath, PageQuery),
    responses(
        (status = 200, body = ListVersionsResponse),
        (status = 400, description = BAD_PAGE, body = LambdaErrorBody),
        (status = 404, description = NOT_FOUND, body = LambdaErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_versions(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Answer<ListVersionsResponse> {
    let (who, _) = authorize(request, &state, Scope::Read).await?;
    let name = function_name(&raw)?;
    let f = existing(&state, &name, &who.region).await?;
    let versions = state.store().list_versions(&name).await?;
    let all: Vec<FunctionConfiguration> = std::iter::once(latest(&who.region, &f))
        .chain(versions.iter().map(|v| of_version(&who.region, v, f.revision)))
        .collect();
    let (versions, next_marker) = paginate(all, query.as_deref())?;
    Ok(Json(ListVersionsResponse { versions, next_marker }))
}
