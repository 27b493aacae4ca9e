//! Observing the real binary: `--metrics-listen` serves Prometheus metrics without a token on
//! a listener of their own, valid for `promtool check metrics`, counting what ran (the API's
//! `/metrics` still needs a token); `HEARTH_LOG_FORMAT=json` writes the server's log as JSON
//! lines carrying the request id of the invocation each was written in.

use std::io::Write as _;

use super::*;

#[test]
fn the_metrics_listener_serves_prometheus_text_without_a_token() {
    let home = Home::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let server = home.up_with(&[("HEARTH_METRICS_LISTEN", &metrics_addr)]);
    home.deploy_python("scraped", "def handler(event, context):\n    return 'ok'\n", &[]);
    for _ in 0..2 {
        home.ok(&["invoke", "scraped"]);
    }
    let text = reqwest::blocking::get(format!("http://{metrics_addr}/metrics")).unwrap().text().unwrap();
    assert!(text.contains(r#"hearth_invocations_total{function="scraped",outcome="success"} 2"#), "{text}");
    let mut promtool = Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/test-deps.sh, as root)");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let other = reqwest::blocking::get(format!("http://{metrics_addr}/v1/functions")).unwrap();
    assert_eq!(other.status(), 404, "the metrics listener serves nothing else");
    let api = reqwest::blocking::get(format!("{}/metrics", server.url)).unwrap();
    assert_eq!(api.status(), 401, "on the API's listener a token is needed");
    server.terminate();
}

#[test]
fn json_logs_carry_the_request_id_of_their_invocation() {
    let home = Home::new();
    let log = home.path().join("server.log");
    let mut command = home.up_command();
    command.envs([("HEARTH_LOG_FORMAT", "json"), ("HEARTH_LOG", "info,hearth_gateway=debug")]);
    let server = home.spawn_up_logging(&mut command, Stdio::from(std::fs::File::create(&log).unwrap()));
    home.deploy_python("logged", "def handler(event, context):\n    return 'ok'\n", &[]);
    // Invoked through the API with the caller's request id.
    let token = admin_token(&home);
    let invoked = reqwest::blocking::Client::new()
        .post(format!("{}/v1/functions/logged/invoke", server.url))
        .bearer_auth(&token)
        .header("x-request-id", "call-7")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(invoked.status(), 200);
    let request_id = invoked.headers()["x-hearth-request-id"].to_str().unwrap().to_owned();
    // Any request's lines carry its HTTP request id: the caller's X-Request-Id, answered back.
    let listed = reqwest::blocking::Client::new()
        .get(format!("{}/v1/functions/nope", server.url))
        .bearer_auth(&token)
        .header("x-request-id", "trace-me-1")
        .send()
        .unwrap();
    assert_eq!((listed.status().as_u16(), listed.headers()["x-request-id"].to_str().unwrap()), (404, "trace-me-1"));
    for odd in ["x".repeat(200), "has space".to_owned(), "quote\"d".to_owned()] {
        let r = reqwest::blocking::Client::new()
            .get(format!("{}/healthz", server.trigger_url))
            .header("x-request-id", odd.as_str())
            .send()
            .unwrap();
        let answered = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(answered != odd && answered.len() == 36, "an odd id is replaced by a fresh one: {answered}");
    }
    server.terminate();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("every log line is JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().all(|l| l["timestamp"].is_string() && l["level"].is_string()), "{text}");
    // The invocation's span is among those each line lists (the innermost may be a phase).
    let invocation =
        |l: &Value| -> Option<Value> { l["spans"].as_array()?.iter().find(|s| s["name"] == "invocation").cloned() };
    let of_request: Vec<&Value> =
        lines.iter().filter(|l| invocation(l).is_some_and(|s| s["request_id"] == request_id.as_str())).collect();
    let messages: Vec<&str> = of_request.iter().filter_map(|l| l["fields"]["message"].as_str()).collect();
    assert!(messages.contains(&"instance acquired") && messages.contains(&"invocation finished"), "{text}");
    assert!(of_request.iter().all(|l| invocation(l).unwrap()["function"] == "logged"), "{text}");
    // The invocation's lines are also in the span of the HTTP request that carried it.
    assert!(
        of_request.iter().all(|l| l["spans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "request" && s["request_id"] == "call-7")),
        "{text}"
    );
}
