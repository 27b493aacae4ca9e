//! Request and response bodies of the HTTP API, shared by the server and its clients.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Function, Scope, TokenId, TokenRecord, Version};

/// The JSON body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiErrorBody {
    /// Stable machine-readable code, e.g. `FunctionNotFound`, `ZipPathTraversal`.
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
}

/// The outcome of a configuration or code write.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeployResponse {
    pub function: Function,
    /// The version this request created; absent when nothing changed or there is no code yet.
    pub new_version: Option<Version>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FunctionList {
    pub functions: Vec<Function>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionList {
    pub versions: Vec<Version>,
}

/// Code given by reference to an object store.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeFromObject {
    /// `s3://bucket/key` of a zip in an S3-compatible store (endpoint from server config).
    #[schema(example = "s3://my-bucket/functions/hello.zip")]
    pub object_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// A label for people, e.g. `ci-deploy`.
    pub name: Option<String>,
    /// Any of `admin`, `deploy`, `invoke`, `read`.
    pub scopes: Vec<String>,
}

/// A token as listed (never with its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub id: TokenId,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
}

impl From<TokenRecord> for TokenInfo {
    fn from(t: TokenRecord) -> Self {
        Self { id: t.id, name: t.name, scopes: t.scopes, created_at: t.created_at }
    }
}

/// A newly created token: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The bearer secret. Store it now: it cannot be shown again.
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: String,
    pub version: String,
}

/// A trigger to create. Only `http` triggers exist today.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// `http` (the default).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    pub function: String,
    /// Path prefix, e.g. `/hello`: requests to it or below it invoke the function.
    pub path: String,
    /// Allowed methods, e.g. `["GET", "POST"]`; absent or empty = any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// `none` (default: anyone) or `token` (a bearer token with the `invoke` scope).
    #[serde(default)]
    pub auth: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TriggerList {
    pub triggers: Vec<TriggerView>,
}

/// A trigger with the URL that reaches it (on the server's trigger listener, which is
/// another origin than the API's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TriggerView {
    #[serde(flatten)]
    pub trigger: crate::HttpTrigger,
    /// e.g. `http://127.0.0.1:8081/hello`; absent when the server does not know its
    /// public trigger address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogPage {
    pub lines: Vec<crate::LogLine>,
    /// Pass as `after` to get the lines that follow.
    pub next: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvocationList {
    pub invocations: Vec<crate::InvocationRecord>,
}
