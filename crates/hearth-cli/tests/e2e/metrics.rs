//! `hearth up --metrics-listen`: Prometheus metrics without a token on a listener of their
//! own, valid for `promtool check metrics`, counting what ran; the API's `/metrics` still
//! needs a token.

use std::io::Write as _;

use super::*;

#[test]
fn the_metrics_listener_serves_prometheus_text_without_a_token() {
    let home = Home::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let server = home.up_with(&[("HEARTH_METRICS_LISTEN", &metrics_addr)]);
    let code = home.path().join("code");
    std::fs::create_dir(&code).unwrap();
    std::fs::write(code.join("main.py"), "def handler(event, context):\n    return 'ok'\n").unwrap();
    home.ok(&[
        "fn",
        "deploy",
        code.to_str().unwrap(),
        "--name",
        "scraped",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
    ]);
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
