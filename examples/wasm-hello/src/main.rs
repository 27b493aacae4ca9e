//! Hello from WebAssembly: reads `{"name": ...}` and answers a greeting.

use std::io::Read;

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).expect("the event on stdin");
    let event: serde_json::Value = serde_json::from_str(&input).unwrap_or(serde_json::Value::Null);
    let name = event.get("name").and_then(|n| n.as_str()).unwrap_or("world");
    eprintln!("greeting {name}");
    let answer = serde_json::json!({
        "message": format!("Hello, {name}!"),
        "runtime": "wasm",
        "function": std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
    });
    println!("{answer}");
}
