//! The Lambda management API's request and response bodies, with Lambda's field names.
//! Requests ignore fields Hearth has no use for (so newer SDKs keep working); the handlers
//! refuse the ones it cannot honour.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};

/// A function's (or one version's) configuration, as every Lambda call returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionConfiguration {
    pub function_name: String,
    /// `arn:aws:lambda:REGION:000000000000:function:NAME` (`:N` for a version).
    pub function_arn: String,
    /// Hearth's runtime: `python3`, `nodejs`, `provided` or `wasm`.
    pub runtime: String,
    /// Hearth has no execution roles: always a placeholder.
    pub role: String,
    pub handler: String,
    pub code_size: u64,
    pub description: String,
    pub timeout: u32,
    pub memory_size: u32,
    /// e.g. `2026-12-02T03:10:07.000+0000`.
    pub last_modified: String,
    /// The package's sha256, base64 (Hearth's API shows it in hex).
    pub code_sha256: String,
    /// `$LATEST` or a version number.
    pub version: String,
    pub environment: EnvironmentResponse,
    pub revision_id: String,
    /// Always `Active`: a function is ready once its write returns.
    pub state: String,
    pub last_update_status: String,
    pub package_type: String,
    pub architectures: Vec<String>,
    pub ephemeral_storage: EphemeralStorage,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct EnvironmentResponse {
    pub variables: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Environment {
    #[serde(default)]
    #[schema(schema_with = variables)]
    pub variables: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct EphemeralStorage {
    /// MB of `/tmp`.
    #[schema(schema_with = storage_size)]
    #[serde(deserialize_with = "whole_number")]
    pub size: i64,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct VpcConfig {
    #[serde(default)]
    pub subnet_ids: Vec<String>,
    #[serde(default)]
    pub security_group_ids: Vec<String>,
}

/// Where new code comes from: a zip (base64 in JSON) or an S3 object.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionCode {
    /// The zip, base64.
    #[schema(format = Byte)]
    pub zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Option<String>,
    #[serde(rename = "S3Key")]
    pub s3_key: Option<String>,
    #[serde(rename = "S3ObjectVersion")]
    pub s3_object_version: Option<String>,
    /// Refused: container images are not supported yet.
    pub image_uri: Option<String>,
}

/// What Hearth refuses rather than ignores, shared by create and update.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Unsupported {
    /// Without subnets or security groups only.
    pub vpc_config: Option<VpcConfig>,
    /// None: layers are not supported.
    #[serde(default)]
    #[schema(max_items = 0)]
    pub layers: Vec<String>,
    /// None: file systems are not supported.
    #[serde(default)]
    #[schema(max_items = 0)]
    pub file_system_configs: Vec<serde_json::Value>,
    /// Refused: container images are not supported yet.
    pub image_config: Option<serde_json::Value>,
}

/// The settings CreateFunction and UpdateFunctionConfiguration share; each one not given is
/// left as it is (or its default for a new function).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Settings {
    #[schema(schema_with = runtime_name)]
    pub runtime: Option<String>,
    /// Accepted and ignored: Hearth has no execution roles.
    pub role: Option<String>,
    #[schema(schema_with = hearth_types::schema::handler)]
    pub handler: Option<String>,
    #[schema(schema_with = hearth_types::schema::description)]
    pub description: Option<String>,
    #[schema(schema_with = hearth_types::schema::timeout_s)]
    #[serde(default, deserialize_with = "hearth_types::json_integer")]
    pub timeout: Option<i64>,
    #[schema(schema_with = hearth_types::schema::memory_mb)]
    #[serde(default, deserialize_with = "hearth_types::json_integer")]
    pub memory_size: Option<i64>,
    /// Replaces every variable.
    pub environment: Option<Environment>,
    pub ephemeral_storage: Option<EphemeralStorage>,
    #[serde(flatten)]
    pub unsupported: Unsupported,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct CreateFunctionRequest {
    #[schema(schema_with = new_function_name)]
    pub function_name: String,
    pub code: FunctionCode,
    /// Ignored: every change makes a version.
    pub publish: Option<bool>,
    /// `Zip` only.
    #[schema(schema_with = package_type)]
    pub package_type: Option<String>,
    #[schema(schema_with = architectures)]
    pub architectures: Option<Vec<String>>,
    #[serde(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateFunctionCodeRequest {
    #[serde(flatten)]
    pub code: FunctionCode,
    pub publish: Option<bool>,
    /// Check the code without storing it.
    pub dry_run: Option<bool>,
    /// Refuse the update unless the function is at this revision.
    pub revision_id: Option<String>,
    #[schema(schema_with = architectures)]
    pub architectures: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateFunctionConfigurationRequest {
    /// Refuse the update unless the function is at this revision.
    pub revision_id: Option<String>,
    #[serde(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct PublishVersionRequest {
    /// Refuse unless `$LATEST`'s code has this sha256 (base64).
    pub code_sha256: Option<String>,
    pub description: Option<String>,
    pub revision_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ListFunctionsResponse {
    pub functions: Vec<FunctionConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ListVersionsResponse {
    pub versions: Vec<FunctionConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GetFunctionResponse {
    pub configuration: FunctionConfiguration,
    pub code: CodeLocation,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct CodeLocation {
    /// Always `S3` in Lambda; here the code is served by Hearth's own API.
    pub repository_type: String,
    /// `GET` it with a token of the `read` scope (`Authorization: Bearer`).
    pub location: String,
}

/// A whole number, `512` or `512.0`, as JSON Schema counts integers.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    hearth_types::json_integer(d)?.ok_or_else(|| serde::de::Error::custom("expected an integer"))
}

// The rules of the request fields that the derive cannot state.

fn string(pattern: String, about: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(pattern))
        .description(Some(about))
        .build()
        .into()
}

/// A new function's name. (An unqualified ARN is accepted too, but the document states the
/// name: API tools that carry values from one call to the next then carry a name.)
fn new_function_name() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^{}$", hearth_types::FunctionName::PATTERN)))
        .description(Some("The function's name (an unqualified function ARN is accepted too)"))
        .build()
        .into()
}

/// What `runtime_names::hearth_runtime` maps.
fn runtime_name() -> Schema {
    string(
        r"^(?:python3(?:\.[0-9]+)?|nodejs(?:[0-9]+\.x)?|provided(?:\.al2|\.al2023)?|wasm)$".into(),
        "python3.x, nodejs*.x, provided, provided.al2, provided.al2023, or Hearth's python3, nodejs, provided, wasm",
    )
}

/// Hearth's environment rules; `null` (no variables) too.
fn variables() -> Schema {
    let mut s = hearth_types::schema::environment();
    if let Schema::Object(o) = &mut s {
        o.schema_type = SchemaType::from_iter([Type::Object, Type::Null]);
    }
    s
}

fn storage_size() -> Schema {
    let mut s = hearth_types::schema::ephemeral_storage_mb();
    if let Schema::Object(o) = &mut s {
        o.schema_type = SchemaType::Type(Type::Integer);
    }
    s
}

fn package_type() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(["Zip"]))
        .build()
        .into()
}

/// The host's architecture only.
fn architectures() -> Schema {
    let host = std::env::consts::ARCH.replace("aarch64", "arm64");
    let item = ObjectBuilder::new().schema_type(Type::String).enum_values(Some([host])).build();
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(item)
        .max_items(Some(1))
        .build()
        .into()
}
