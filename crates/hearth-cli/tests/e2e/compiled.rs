//! Compiled functions as a user deploys them: the Rust examples, written for AWS Lambda
//! with `lambda_runtime` and `lambda_http` and unmodified, built here and deployed by the CLI
//! as single executables (`provided` runs them as `bootstrap`); the event one invoked, the
//! HTTP one behind a trigger; later cold starts from a pre-warmed `provided` sandbox.

use std::time::Instant;

use super::*;

/// Waits until `hearth node` lists a ready pre-warmed sandbox of `runtime`.
fn wait_for_cell(home: &Home, runtime: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let node = home.json(&["node"]);
        let ready = node["prewarmed"].as_array().unwrap().iter().any(|p| p["runtime"] == runtime && p["ready"] != 0);
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "no {runtime} sandbox was pre-warmed: {node}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn rust_lambda_functions_deploy_as_executables_and_answer() {
    let hello = hearth_wasm::test_support::rust_example("rust-hello");
    let web = hearth_wasm::test_support::rust_example("rust-http");
    let home = Home::new();
    let server = home.up();

    // The event function: an executable deploys as it is, packaged as `bootstrap`.
    let out = home.run(&["fn", "deploy", hello.to_str().unwrap(), "--name", "hello-rust", "--runtime", "provided"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains(": 1 file, "), "one executable, one file: {said}");
    let answer: Value =
        serde_json::from_str(&home.ok(&["invoke", "hello-rust", "--data", r#"{"name": "Rust"}"#])).unwrap();
    assert_eq!(answer["message"], "Hello, Rust!", "{answer}");
    // The Lambda context the crate reads from the Runtime API and the environment.
    assert_eq!(answer["function"], "hello-rust", "{answer}");
    assert_eq!(answer["memory_mb"], 128, "{answer}");
    assert!(answer["request_id"].as_str().is_some_and(|id| id.len() == 36), "{answer}");
    assert!(answer["deadline_ms"].as_u64().unwrap() > 1_700_000_000_000, "{answer}");
    // Its errors are function errors with the crate's error document.
    let out = home.run(&["invoke", "hello-rust", "--data", r#"{"fail": true}"#]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["errorMessage"], "asked to fail", "{doc}");
    let logs = home.ok(&["logs", "hello-rust"]);
    assert!(logs.contains("greeting Rust"), "its stderr is its log: {logs}");

    // The HTTP function behind a trigger: status, headers, cookies and bodies both ways.
    home.ok(&["fn", "deploy", web.to_str().unwrap(), "--name", "web-rust", "--runtime", "provided"]);
    home.ok(&["trigger", "add", "http", "web-rust", "--path", "/web"]);
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let r = http
        .post(format!("{}/web/echo?colour=blue", server.trigger_url))
        .header("x-greeting", "hi")
        .body("some text")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-served-by"], "rust-http");
    let cookies: Vec<&str> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(cookies, ["session=abc; Path=/; HttpOnly", "theme=dark"]);
    let echo: Value = r.json().unwrap();
    assert_eq!(echo["method"], "POST", "{echo}");
    assert!(echo["path"].as_str().unwrap().ends_with("/echo"), "{echo}");
    assert_eq!(echo["query"], json!([["colour", "blue"]]), "{echo}");
    assert_eq!((&echo["greeting"], &echo["body"]), (&json!("hi"), &json!("some text")), "{echo}");
    let r = http.get(format!("{}/web/binary", server.trigger_url)).send().unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["content-type"].to_str().unwrap()), (200, "application/octet-stream"));
    assert_eq!(r.bytes().unwrap().to_vec(), (0..=255).collect::<Vec<u8>>(), "a binary body, byte for byte");

    // Cold starts made demand for `provided` sandboxes: the next version's first start
    // takes one, and it is the function, with its own configuration.
    wait_for_cell(&home, "provided");
    home.ok(&["fn", "config", "hello-rust", "--timeout", "7"]);
    wait_for_cell(&home, "provided");
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let out = home.json(&["invoke", "hello-rust", "--data", r#"{"name": "cell"}"#]);
    assert_eq!((&out["version"], &out["start_source"]), (&json!(2), &json!("stem_cell")), "{out}");
    let result = &out["result"];
    assert_eq!((&result["message"], &result["function"]), (&json!("Hello, cell!"), &json!("hello-rust")), "{out}");
    // Its deadline is its own 7 s timeout, through the Runtime API.
    let deadline = result["deadline_ms"].as_u64().unwrap();
    assert!(deadline > now_ms + 5_000 && deadline <= now_ms + 8_000, "{deadline} vs {now_ms}: {out}");
}
