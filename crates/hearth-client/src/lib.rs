//! A client for Hearth's HTTP API. Server refusals come back as [`ClientError::Api`] with the
//! server's stable error code.

use std::time::Duration;

use bytes::Bytes;
use hearth_types::api::{
    AliasList, AliasSpec, ApiErrorBody, CodeFromObject, DeadLetterPage, DeployResponse, EventAccepted, FunctionList,
    Health, InstanceList, InstanceView, InvocationList, LogPage, NatsTriggerList, NatsTriggerSpec, NewToken, NodeView,
    RedriveRequest, RedriveResult, ScheduleList, ScheduleSpec, TokenInfo, TokenList, TokenSpec, TriggerList,
    TriggerSpec, TriggerView, VersionList,
};
use hearth_types::{
    Alias, CodeRef, EventRecord, Function, FunctionSpec, InvocationRecord, NatsTriggerState, ScheduleState, Version,
};
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;

/// Percent-encodes all but RFC 3986's unreserved characters (for ids given by people).
fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{message}")]
    Api { status: u16, code: String, message: String },
    #[error(
        "cannot reach the Hearth server at {url}: {reason}. Is `hearth up` running? Set HEARTH_URL to point elsewhere"
    )]
    Unreachable { url: String, reason: String },
    /// The server's URL cannot be used (nothing was sent).
    #[error("{url:?} is not a usable server URL: {reason}; expected e.g. http://127.0.0.1:8080")]
    InvalidUrl { url: String, reason: String },
    #[error("unexpected response from {url}: {reason}")]
    Protocol { url: String, reason: String },
}

impl ClientError {
    /// The server's error code, if the server refused the request.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// The answer to one invocation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Invocation {
    pub request_id: String,
    pub cold_start: bool,
    /// For a cold start, where its instance came from (`full`, `stem_cell`, `wasm_compile`,
    /// `wasm_disk_cache`, `wasm_memory`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_source: Option<String>,
    pub version: u32,
    /// Set when the function failed: the error type; `body` is then the error document.
    pub function_error: Option<String>,
    #[serde(skip)]
    pub body: Bytes,
}

#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base_url: &str, token: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("hearth-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { base: base_url.trim_end_matches('/').to_owned(), token, http }
    }

    /// Checks that `url` can be a server's base URL: http or https, with a host.
    pub fn check_url(url: &str) -> Result<()> {
        let invalid = |reason: &str| ClientError::InvalidUrl { url: url.to_owned(), reason: reason.to_owned() };
        let parsed = reqwest::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it names no host"));
        }
        Ok(())
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn send(&self, r: RequestBuilder) -> Result<Response> {
        let resp = r.send().await.map_err(|e| {
            let (url, reason) = (self.base.clone(), root_cause(&e));
            if e.is_builder() {
                ClientError::InvalidUrl { url, reason }
            } else {
                ClientError::Unreachable { url, reason }
            }
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ApiErrorBody>(&text) {
            Ok(b) => ClientError::Api { status, code: b.code, message: b.message },
            Err(_) => ClientError::Api { status, code: format!("Http{status}"), message: text },
        })
    }

    async fn json<T: DeserializeOwned>(&self, r: RequestBuilder) -> Result<T> {
        let resp = self.send(r).await?;
        let url = resp.url().to_string();
        let bytes =
            resp.bytes().await.map_err(|e| ClientError::Protocol { url: url.clone(), reason: e.to_string() })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol { url, reason: e.to_string() })
    }

    pub async fn health(&self) -> Result<Health> {
        self.json(self.req(Method::GET, "/healthz")).await
    }

    pub async fn put_function(&self, name: &str, spec: &FunctionSpec) -> Result<DeployResponse> {
        self.json(self.req(Method::PUT, &format!("/v1/functions/{name}")).json(spec)).await
    }

    /// Changes only what `patch` names (a JSON merge patch of the configuration, with
    /// `code_sha256` for new code).
    pub async fn patch_function(&self, name: &str, patch: &serde_json::Value) -> Result<DeployResponse> {
        self.json(self.req(Method::PATCH, &format!("/v1/functions/{name}")).json(patch)).await
    }

    /// The function, or `None` when there is none of that name.
    pub async fn find_function(&self, name: &str) -> Result<Option<Function>> {
        match self.get_function(name).await {
            Ok(f) => Ok(Some(f)),
            Err(ClientError::Api { code, .. }) if code == "FunctionNotFound" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Uploads a zip as a package (not attached to any function yet).
    pub async fn upload_package(&self, zip: Vec<u8>) -> Result<CodeRef> {
        let r = self.req(Method::POST, "/v1/packages").header("content-type", "application/zip").body(zip);
        self.json(r).await
    }

    /// Has the server fetch a package from an object URL (`s3://bucket/key`) and store it.
    pub async fn upload_package_object(&self, object_url: &str) -> Result<CodeRef> {
        let body = CodeFromObject { object_url: object_url.to_owned() };
        self.json(self.req(Method::POST, "/v1/packages").json(&body)).await
    }

    pub async fn put_code_zip(&self, name: &str, zip: Vec<u8>) -> Result<DeployResponse> {
        let r = self
            .req(Method::PUT, &format!("/v1/functions/{name}/code"))
            .header("content-type", "application/zip")
            .body(zip);
        self.json(r).await
    }

    pub async fn put_code_object(&self, name: &str, object_url: &str) -> Result<DeployResponse> {
        let body = CodeFromObject { object_url: object_url.to_owned() };
        self.json(self.req(Method::PUT, &format!("/v1/functions/{name}/code")).json(&body)).await
    }

    pub async fn list_functions(&self) -> Result<Vec<Function>> {
        Ok(self.json::<FunctionList>(self.req(Method::GET, "/v1/functions")).await?.functions)
    }

    pub async fn get_function(&self, name: &str) -> Result<Function> {
        self.json(self.req(Method::GET, &format!("/v1/functions/{name}"))).await
    }

    pub async fn delete_function(&self, name: &str) -> Result<()> {
        self.send(self.req(Method::DELETE, &format!("/v1/functions/{name}"))).await.map(drop)
    }

    pub async fn list_versions(&self, name: &str) -> Result<Vec<Version>> {
        Ok(self.json::<VersionList>(self.req(Method::GET, &format!("/v1/functions/{name}/versions"))).await?.versions)
    }

    /// The zip of a version (`None` = `$LATEST`).
    pub async fn get_code(&self, name: &str, version: Option<&str>) -> Result<Bytes> {
        let query = match version {
            // Versions are numbers or `$LATEST`; `$` is the only character to escape.
            Some(v) => format!("?version={}", v.replace('$', "%24")),
            None => String::new(),
        };
        let r = self.req(Method::GET, &format!("/v1/functions/{name}/code{query}"));
        let resp = self.send(r).await?;
        let url = resp.url().to_string();
        resp.bytes().await.map_err(|e| ClientError::Protocol { url, reason: e.to_string() })
    }

    /// Invokes a function synchronously (`version`: None = `$LATEST`).
    pub async fn invoke(&self, name: &str, payload: Vec<u8>, version: Option<&str>) -> Result<Invocation> {
        let query = version.map(|v| format!("?version={}", v.replace('$', "%24"))).unwrap_or_default();
        let r = self
            .req(Method::POST, &format!("/v1/functions/{name}/invoke{query}"))
            .header("content-type", "application/json")
            .body(payload);
        let resp = self.send(r).await?;
        let h = resp.headers();
        let text = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let inv = Invocation {
            request_id: text("x-hearth-request-id").unwrap_or_default(),
            cold_start: text("x-hearth-cold-start").as_deref() == Some("true"),
            start_source: text("x-hearth-start-source"),
            version: text("x-hearth-version").and_then(|v| v.parse().ok()).unwrap_or(0),
            function_error: text("x-hearth-function-error"),
            body: Bytes::new(),
        };
        let url = resp.url().to_string();
        let body = resp.bytes().await.map_err(|e| ClientError::Protocol { url, reason: e.to_string() })?;
        Ok(Invocation { body, ..inv })
    }

    /// Invokes a function asynchronously: answered once the event is stored.
    pub async fn invoke_async(&self, name: &str, payload: Vec<u8>, version: Option<&str>) -> Result<EventAccepted> {
        let query = version.map(|v| format!("?version={}", v.replace('$', "%24"))).unwrap_or_default();
        let r = self
            .req(Method::POST, &format!("/v1/functions/{name}/invoke{query}"))
            .header("content-type", "application/json")
            .header("x-hearth-invocation-type", "Event")
            .body(payload);
        self.json(r).await
    }

    /// An asynchronous invocation's status.
    pub async fn get_invocation(&self, id: &str) -> Result<EventRecord> {
        let id = escape(id);
        self.json(self.req(Method::GET, &format!("/v1/invocations/{id}"))).await
    }

    /// A page of a function's dead letters.
    pub async fn dead_letters(&self, name: &str, after: Option<&str>, limit: usize) -> Result<DeadLetterPage> {
        let mut path = format!("/v1/functions/{name}/dead-letters?limit={limit}");
        if let Some(after) = after {
            path.push_str("&after=");
            path.push_str(&escape(after));
        }
        self.json(self.req(Method::GET, &path)).await
    }

    /// Queues dead letters again (those named, or all).
    pub async fn redrive(&self, name: &str, request_ids: Option<Vec<String>>) -> Result<RedriveResult> {
        let r = self.req(Method::POST, &format!("/v1/functions/{name}/dead-letters/redrive"));
        self.json(r.json(&RedriveRequest { request_ids })).await
    }

    pub async fn put_alias(&self, name: &str, alias: &str, spec: &AliasSpec) -> Result<Alias> {
        self.json(self.req(Method::PUT, &format!("/v1/functions/{name}/aliases/{}", escape(alias))).json(spec)).await
    }

    pub async fn list_aliases(&self, name: &str) -> Result<Vec<Alias>> {
        Ok(self.json::<AliasList>(self.req(Method::GET, &format!("/v1/functions/{name}/aliases"))).await?.aliases)
    }

    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        let path = format!("/v1/functions/{name}/aliases/{}", escape(alias));
        self.send(self.req(Method::DELETE, &path)).await.map(drop)
    }

    pub async fn create_nats_trigger(&self, spec: &NatsTriggerSpec) -> Result<NatsTriggerState> {
        self.json(self.req(Method::POST, "/v1/nats-triggers").json(spec)).await
    }

    pub async fn list_nats_triggers(&self) -> Result<Vec<NatsTriggerState>> {
        Ok(self.json::<NatsTriggerList>(self.req(Method::GET, "/v1/nats-triggers")).await?.triggers)
    }

    pub async fn delete_nats_trigger(&self, id: &str) -> Result<()> {
        self.send(self.req(Method::DELETE, &format!("/v1/nats-triggers/{}", escape(id)))).await?;
        Ok(())
    }

    pub async fn create_schedule(&self, spec: &ScheduleSpec) -> Result<ScheduleState> {
        self.json(self.req(Method::POST, "/v1/schedules").json(spec)).await
    }

    pub async fn list_schedules(&self) -> Result<Vec<ScheduleState>> {
        Ok(self.json::<ScheduleList>(self.req(Method::GET, "/v1/schedules")).await?.schedules)
    }

    pub async fn delete_schedule(&self, id: &str) -> Result<()> {
        self.send(self.req(Method::DELETE, &format!("/v1/schedules/{}", escape(id)))).await?;
        Ok(())
    }

    /// Log lines after `after` (optionally one request's).
    pub async fn logs(&self, name: &str, after: i64, request_id: Option<&str>) -> Result<LogPage> {
        let mut path = format!("/v1/functions/{name}/logs?after={after}");
        if let Some(id) = request_id {
            // Request ids are UUIDs: nothing to escape.
            path.push_str(&format!("&request_id={id}"));
        }
        self.json(self.req(Method::GET, &path)).await
    }

    pub async fn invocations(&self, name: &str, limit: usize) -> Result<Vec<InvocationRecord>> {
        let path = format!("/v1/functions/{name}/invocations?limit={limit}");
        Ok(self.json::<InvocationList>(self.req(Method::GET, &path)).await?.invocations)
    }

    pub async fn instances(&self, name: &str) -> Result<Vec<InstanceView>> {
        let path = format!("/v1/functions/{name}/instances");
        Ok(self.json::<InstanceList>(self.req(Method::GET, &path)).await?.instances)
    }

    /// The node's memory and pre-warmed sandboxes (`GET /v1/node`).
    /// `GET /v1/usage` with the given query pairs.
    pub async fn usage(&self, query: &[(&str, String)]) -> Result<hearth_types::api::UsageReport> {
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", escape(v))).collect();
        self.json(self.req(Method::GET, &format!("/v1/usage?{}", query.join("&")))).await
    }

    pub async fn node(&self) -> Result<NodeView> {
        self.json(self.req(Method::GET, "/v1/node")).await
    }

    pub async fn create_trigger(&self, spec: &TriggerSpec) -> Result<TriggerView> {
        self.json(self.req(Method::POST, "/v1/triggers").json(spec)).await
    }

    pub async fn list_triggers(&self) -> Result<Vec<TriggerView>> {
        Ok(self.json::<TriggerList>(self.req(Method::GET, "/v1/triggers")).await?.triggers)
    }

    pub async fn delete_trigger(&self, id: &str) -> Result<()> {
        self.send(self.req(Method::DELETE, &format!("/v1/triggers/{id}"))).await.map(drop)
    }

    pub async fn create_token(&self, name: Option<String>, scopes: Vec<String>) -> Result<NewToken> {
        self.json(self.req(Method::POST, "/v1/tokens").json(&TokenSpec { name, scopes })).await
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        Ok(self.json::<TokenList>(self.req(Method::GET, "/v1/tokens")).await?.tokens)
    }

    pub async fn delete_token(&self, id: &str) -> Result<()> {
        self.send(self.req(Method::DELETE, &format!("/v1/tokens/{id}"))).await.map(drop)
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_with_a_host_are_server_urls() {
        for good in ["http://127.0.0.1:8080", "https://hearth.example.com/", "http://[::1]:1"] {
            assert!(Client::check_url(good).is_ok(), "{good}");
        }
        for bad in ["", "not a url", "127.0.0.1:8080", "localhost:8080", "ftp://host", "http://", "file:///tmp"] {
            assert!(matches!(Client::check_url(bad), Err(ClientError::InvalidUrl { .. })), "{bad:?} accepted");
        }
    }
}
