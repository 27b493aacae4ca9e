//! `{"name": "Rust"}` in, `{"message": "Hello, Rust!", ...}` out, one log line per event.
//! The same code runs on AWS Lambda (`provided.al2023`) and on Hearth (`provided`).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    if payload.get("fail").is_some() {
        return Err("asked to fail".into());
    }
    let name = payload.get("name").and_then(Value::as_str).unwrap_or("world");
    eprintln!("greeting {name}");
    Ok(json!({
        "message": format!("Hello, {name}!"),
        "request_id": context.request_id,
        "function": context.env_config.function_name,
        "memory_mb": context.env_config.memory,
        "deadline_ms": context.deadline,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
