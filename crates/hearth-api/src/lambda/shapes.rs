//! The Lambda management API's request and response bodies, with Lambda's field names.
//! Requests ignore fields Hearth has no use for (so newer SDKs keep working); the handlers
//! refuse the ones it cannot honour.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
    pub variables: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct EphemeralStorage {
    /// MB of `/tmp`.
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
    pub vpc_config: Option<VpcConfig>,
    #[serde(default)]
    pub layers: Vec<String>,
    #[serde(default)]
    pub file_system_configs: Vec<serde_json::Value>,
    pub image_config: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct CreateFunctionRequest {
    pub function_name: String,
    pub runtime: Option<String>,
    /// Accepted and ignored: Hearth has no execution roles.
    pub role: Option<String>,
    pub handler: Option<String>,
    pub code: FunctionCode,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    /// Ignored: every change makes a version.
    pub publish: Option<bool>,
    /// `Zip` only.
    pub package_type: Option<String>,
    pub environment: Option<Environment>,
    pub architectures: Option<Vec<String>>,
    pub ephemeral_storage: Option<EphemeralStorage>,
    #[serde(flatten)]
    pub unsupported: Unsupported,
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
    pub architectures: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateFunctionConfigurationRequest {
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    /// Replaces every variable.
    pub environment: Option<Environment>,
    pub runtime: Option<String>,
    pub revision_id: Option<String>,
    pub ephemeral_storage: Option<EphemeralStorage>,
    #[serde(flatten)]
    pub unsupported: Unsupported,
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
