//! The Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`), so AWS SDKs and
//! the AWS CLI can invoke Hearth functions with `--endpoint-url`.
//! Authentication and error shapes are the Lambda API's (`hearth_api::lambda`), shared with
//! the management calls.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hearth_api::ApiError;
use hearth_api::lambda::{
    LambdaCaller, LambdaError, LambdaErrorBody, function_ref_schema, parse_function, qualifier_of,
};
use hearth_gateway::{AcquireError, InvokeError, InvokeRequest};
use hearth_types::{EventSource, Scope, VersionSelector};
use utoipa::IntoParams;

use crate::apps::ServerState;
use crate::invoke_error::api_error;
use crate::invoke_route::{answer, read_event};

fn aws_error(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    LambdaError::new(status, error_type, message).into_response()
}

fn from_api(e: ApiError) -> Response {
    LambdaError::from(e).into_response()
}

/// `X-Amz-Invocation-Type`.
const INVOCATION_TYPES: [&str; 3] = ["RequestResponse", "Event", "DryRun"];
/// `X-Amz-Log-Type`.
const LOG_TYPES: [&str; 2] = ["None", "Tail"];

fn enum_schema(values: &[&str]) -> utoipa::openapi::schema::Schema {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
        .into()
}

fn invocation_type_schema() -> utoipa::openapi::schema::Schema {
    enum_schema(&INVOCATION_TYPES)
}

fn log_type_schema() -> utoipa::openapi::schema::Schema {
    enum_schema(&LOG_TYPES)
}

// The Invoke API's parameters as the document states them. The handler reads them from the
// request itself (it answers every refusal in the AWS error shape), so nothing builds these.

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct LambdaInvokePath {
    #[param(schema_with = function_ref_schema)]
    pub name: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct LambdaInvokeQuery {
    /// Version number or `$LATEST`; wins over a qualifier in the function name.
    #[param(rename = "Qualifier", schema_with = hearth_types::schema::version)]
    pub qualifier: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct LambdaInvokeHeaders {
    /// `RequestResponse` (default), `Event` (stored durably and answered `202` at once,
    /// delivered at least once with retries) or `DryRun` (only checks that the function
    /// exists and the token may invoke it).
    #[param(rename = "X-Amz-Invocation-Type", schema_with = invocation_type_schema)]
    pub invocation_type: Option<String>,
    /// `Tail`: the last 4 KB of the invocation's log, base64, in `X-Amz-Log-Result`.
    #[param(rename = "X-Amz-Log-Type", schema_with = log_type_schema)]
    pub log_type: Option<String>,
}

/// `DryRun`: the function exists, and so does the version or alias named.
async fn dry_run(
    state: &ServerState,
    name: &hearth_types::FunctionName,
    selector: VersionSelector,
) -> Result<(), ApiError> {
    let Some(f) = state.gateway.function(name).await? else {
        return Err(ApiError::function_not_found(name.as_str()));
    };
    if let VersionSelector::Number(n) = hearth_api::pinned(state.api.store().as_ref(), name, selector).await?
        && f.latest_version.is_none_or(|latest| n > latest)
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "VersionNotFound",
            format!("function {:?} has no version {n}", name.as_str()),
        ));
    }
    Ok(())
}

fn header_text(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Lambda Invoke API (AWS SDKs and CLI with `--endpoint-url`).
///
/// Needs a token with the `invoke` scope, as a bearer token or as the access key id of a
/// SigV4 `Authorization` header (any secret). Function errors answer 200 with
/// `X-Amz-Function-Error: Unhandled`. `X-Amz-Client-Context` (base64 of a JSON object)
/// reaches the function as its client context. Errors are AWS-shaped: `X-Amzn-ErrorType`
/// names the error.
#[utoipa::path(
    post, path = "/2015-03-31/functions/{name}/invocations", tag = "invoke",
    params(LambdaInvokePath, LambdaInvokeQuery, LambdaInvokeHeaders),
    request_body(content = Option<serde_json::Value>, content_type = "application/json",
                 description = "The event: any JSON value; no body is the event `{}`"),
    responses(
        (status = 200, description = "The function's result, or its error document with `X-Amz-Function-Error`",
         content((serde_json::Value = "application/json"), (hearth_types::api::Binary = "*/*")),
         headers(("X-Amz-Executed-Version" = u32), ("X-Amzn-RequestId" = String),
                 ("X-Amz-Function-Error" = String, description = "`Unhandled` when the function failed"),
                 ("X-Amz-Log-Result" = String, description = "With `X-Amz-Log-Type: Tail`"))),
        (status = 202, description = "`Event`: the event is stored and will be delivered", headers(("X-Amzn-RequestId" = String))),
        (status = 204, description = "`DryRun`: the function exists and the token may invoke it"),
        (status = 400, description = "The event or `X-Amz-Client-Context` is not valid (`InvalidRequestContentException`), or an unknown invocation or log type (`InvalidParameterValueException`)", body = LambdaErrorBody),
        (status = 401, description = "No credentials (`MissingAuthenticationTokenException`)", body = LambdaErrorBody),
        (status = 403, description = "Not a valid token (`UnrecognizedClientException`), or one without the `invoke` scope (`AccessDeniedException`)", body = LambdaErrorBody),
        (status = 404, description = "No such function or version (`ResourceNotFoundException`)", body = LambdaErrorBody),
        (status = 409, description = "The function has no code yet (`ResourceConflictException`)", body = LambdaErrorBody),
        (status = 413, description = "Event over 6 MiB, or 1 MiB when asynchronous (`RequestTooLargeException`)", body = LambdaErrorBody),
        (status = 429, description = "Too many requests held for instances, no memory for one, or the asynchronous queue is full (`TooManyRequestsException`)", body = LambdaErrorBody),
        (status = 503, description = "No instance within the wait limit, or too many bodies being received (`ServiceException`)", body = LambdaErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn invocations(
    State(state): State<ServerState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, body): (Parts, Body) = request.into_parts();
    if let Err(e) = LambdaCaller::authorize(&mut parts, &state.api, Scope::Invoke).await {
        return e.into_response();
    }
    let qualifier = qualifier_of(query.as_deref());
    let (name, selector) = match parse_function(&raw, qualifier.as_deref()) {
        Ok(x) => x,
        Err(message) => return aws_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", &message),
    };
    let h = &parts.headers;
    let client_context = match header_text(h, "x-amz-client-context") {
        None => None,
        Some(b64) => {
            match base64::engine::general_purpose::STANDARD.decode(b64).ok().and_then(|b| String::from_utf8(b).ok()) {
                Some(json) => Some(json),
                None => {
                    return aws_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidRequestContentException",
                        "X-Amz-Client-Context must be base64 JSON",
                    );
                }
            }
        }
    };
    let payload = match read_event(body).await {
        Ok(p) => p,
        Err(e) => return from_api(e),
    };
    if !payload.is_empty() && serde_json::from_slice::<serde_json::Value>(&payload).is_err() {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "Could not parse request body into json",
        );
    }
    let log_type = header_text(h, "x-amz-log-type");
    if let Some(other) = log_type.as_deref().filter(|t| !LOG_TYPES.contains(t)) {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            &format!("unknown log type {other}: use None or Tail"),
        );
    }
    match header_text(h, "x-amz-invocation-type").as_deref() {
        None | Some("RequestResponse") => {}
        Some("DryRun") => {
            return match dry_run(&state, &name, selector).await {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(e) => from_api(e),
            };
        }
        Some("Event") => {
            let payload = if payload.is_empty() { bytes::Bytes::from_static(b"{}") } else { payload };
            return match crate::event_routes::accept(&state, &name, selector, payload, EventSource::Lambda).await {
                Ok(request_id) => {
                    let mut resp = StatusCode::ACCEPTED.into_response();
                    if let Ok(v) = HeaderValue::from_str(&request_id) {
                        resp.headers_mut().insert("x-amzn-requestid", v);
                    }
                    resp
                }
                Err(e) => from_api(e),
            };
        }
        Some(other) => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                &format!("unknown invocation type {other}"),
            );
        }
    }
    let payload = if payload.is_empty() { bytes::Bytes::from_static(b"{}") } else { payload };
    let request = InvokeRequest {
        payload,
        content_type: Some("application/json".into()),
        client_context,
        trace_id: header_text(h, "x-amzn-trace-id"),
        ..Default::default()
    };
    let r = match state.gateway.invoke(&name, selector, request).await {
        Ok(r) => r,
        Err(InvokeError::Unavailable(AcquireError::Throttled { .. } | AcquireError::NodeFull { .. })) => {
            return aws_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException", "Rate Exceeded.");
        }
        Err(e) => return from_api(api_error(e)),
    };
    // Tail: the last 4 KB of this invocation's log, base64.
    let tail = if log_type.as_deref() == Some("Tail") {
        let lines = state.gateway.meter().logs(&name, 0, Some(&r.request_id), 10_000).await.unwrap_or_default();
        let text: String = lines.iter().map(|l| format!("{}\n", l.message)).collect();
        let start = text.len().saturating_sub(4096);
        let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        Some(base64::engine::general_purpose::STANDARD.encode(&text[start..]))
    } else {
        None
    };
    let (request_id, version, failed) = (r.request_id.clone(), r.version, r.function_error.is_some());
    let mut resp = answer(r);
    let out = resp.headers_mut();
    if let Some(v) = tail.and_then(|t| HeaderValue::from_str(&t).ok()) {
        out.insert("x-amz-log-result", v);
    }
    out.insert("x-amz-executed-version", HeaderValue::from(version));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        out.insert("x-amzn-requestid", v);
    }
    if failed {
        out.insert("x-amz-function-error", HeaderValue::from_static("Unhandled"));
    }
    resp
}
