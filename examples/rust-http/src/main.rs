//! Answers what it was asked: `GET /binary` gets 256 bytes (0..=255) as
//! `application/octet-stream`; anything else gets a JSON echo of the method, path, query,
//! a header and the body, with status 201 for a POST, a header of its own and two cookies.

use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Error, Request, RequestExt, Response, run, service_fn};
use serde_json::json;

async fn handler(request: Request) -> Result<Response<Body>, Error> {
    if request.uri().path().ends_with("/binary") {
        let bytes: Vec<u8> = (0..=255).collect();
        return Ok(Response::builder()
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::Binary(bytes))?);
    }
    let body = String::from_utf8_lossy(request.body().as_ref()).into_owned();
    let query: Vec<(String, String)> = request
        .query_string_parameters()
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let echo = json!({
        "method": request.method().as_str(),
        "path": request.uri().path(),
        "query": query,
        "greeting": request.headers().get("x-greeting").and_then(|v| v.to_str().ok()),
        "body": body,
    });
    let status = if request.method() == "POST" { StatusCode::CREATED } else { StatusCode::OK };
    Ok(Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-served-by", "rust-http")
        .header(header::SET_COOKIE, "session=abc; Path=/; HttpOnly")
        .header(header::SET_COOKIE, "theme=dark")
        .body(Body::Text(echo.to_string()))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(handler)).await
}
