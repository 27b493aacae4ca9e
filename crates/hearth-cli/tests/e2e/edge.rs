//! The public listeners: connection, header and body limits, TLS with reload, graceful stops.

use super::*;

/// The public listeners bound what a caller can hold: connections past the cap cost the
/// server no descriptor, a request whose headers or body never finish is closed after its
/// timeout, and bodies buffered at once stay within the budget (503 `ServerBusy` past it).
#[test]
fn listeners_bound_connections_headers_and_bodies() {
    let _alone = heavy_or_timed();
    use std::io::Write;
    let home = Home::new();
    let server = home.up_with(&[
        ("HEARTH_MAX_CONNECTIONS", "40"),
        ("HEARTH_HEADER_TIMEOUT_S", "1"),
        ("HEARTH_BODY_TIMEOUT_S", "3"),
        ("HEARTH_BUFFERED_BODY_MB", "8"),
    ]);
    let fds = || std::fs::read_dir(format!("/proc/{}/fd", server.child.id())).unwrap().count();
    let before = fds();
    // 400 silent connections on each listener (half-open as far as HTTP goes).
    let mut idle: Vec<std::net::TcpStream> = vec![];
    for url in [&server.url, &server.trigger_url] {
        for _ in 0..400 {
            idle.push(raw_connect(url));
        }
    }
    let during = fds();
    assert!(
        during <= before + 2 * 40 + 10,
        "{during} descriptors with 800 idle connections (cap 40 per listener), {before} before"
    );
    // The header timeout closes silent connections, so the server keeps answering.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ok = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap()
            .get(format!("{}/healthz", server.url))
            .send()
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the API never answered while idle connections were held");
    }
    let (_, closed) = read_until_closed(&mut idle[0], Duration::from_secs(30));
    assert!(closed, "a connection that sent no headers is closed by the server");
    drop(idle);
    // Headers that never end: closed after the header timeout.
    let mut slow = raw_connect(&server.url);
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = std::time::Instant::now();
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(10));
    assert!(closed && started.elapsed() < Duration::from_secs(8), "unfinished headers are cut off");
    // A body that never ends: the request fails after the body timeout.
    let secret = std::fs::read_to_string(home.path().join("client.toml")).unwrap();
    let secret = secret.lines().find_map(|l| l.strip_prefix("token = ")).unwrap().trim_matches('"').to_owned();
    let example = repo().join("examples/python-hello");
    home.ok(&[
        "fn",
        "deploy",
        example.to_str().unwrap(),
        "--name",
        "hello",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
    ]);
    let partial_body = |len: usize| {
        let mut s = raw_connect(&server.url);
        let head = format!(
            "POST /v1/functions/hello/invoke HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\nContent-Length: {len}\r\n\r\n{{\"a\":"
        );
        s.write_all(head.as_bytes()).unwrap();
        s
    };
    let mut stalled = partial_body(100);
    let started = std::time::Instant::now();
    let (answer, _) = read_until_closed(&mut stalled, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 400"), "a stalled body fails: {answer}");
    assert!(started.elapsed() < Duration::from_secs(8), "within the body timeout");
    // Bodies buffered at once: two 6 MB bodies do not fit in 8 MB; whichever comes second
    // waits a moment for room, then gets 503 (the first fails at its body timeout).
    let mut pair = [partial_body(6 << 20), partial_body(6 << 20)];
    let answers: Vec<String> = pair.iter_mut().map(|s| read_until_closed(s, Duration::from_secs(10)).0).collect();
    let busy = answers.iter().filter(|a| a.starts_with("HTTP/1.1 503") && a.contains("ServerBusy")).count();
    assert_eq!(busy, 1, "{answers:?}");
    // Small requests still pass.
    assert_eq!(home.json(&["invoke", "hello"])["result"]["statusCode"], 200);
}

/// SIGTERM stops accepting, lets the request in flight finish, then exits 0.
#[test]
fn sigterm_finishes_requests_in_flight() {
    let home = Home::new();
    let server = home.up();
    let code = home.path().join("slow");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("main.py"),
        "import time\n\ndef handler(event, context):\n    time.sleep(event['s'])\n    return 'done'\n",
    )
    .unwrap();
    home.ok(&[
        "fn",
        "deploy",
        code.to_str().unwrap(),
        "--name",
        "slow",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
        "--timeout",
        "30",
    ]);
    assert_eq!(home.json(&["invoke", "slow", "--data", r#"{"s": 0}"#])["result"], "done");
    let mut call = home.cmd();
    call.args(["invoke", "slow", "--json", "--data", r#"{"s": 2}"#]).stdout(Stdio::piped());
    let caller = call.spawn().unwrap();
    // Wait until the call is in flight: the instance is busy.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !home.ok(&["fn", "instances", "slow"]).contains("busy") {
        assert!(std::time::Instant::now() < deadline, "the call never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = server.url.clone();
    server.terminate_in_background();
    let out = caller.wait_with_output().unwrap();
    assert!(out.status.success(), "the call in flight finished: {}", String::from_utf8_lossy(&out.stdout));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["result"], "done");
    let after = reqwest::blocking::Client::new().get(format!("{url}/healthz")).send();
    assert!(after.is_err(), "no new connections after SIGTERM");
}

/// A console following a log does not hold a stop for its grace period: on SIGTERM its
/// stream gets its `end` event (`expired`: reconnect) and closes, and the server exits.
#[test]
fn sigterm_ends_log_streams_at_once() {
    use std::io::Read;

    let home = Home::new();
    let mut server = home.up();
    home.deploy_python("followed", "def handler(event, context):\n    return 1\n", &[]);
    let mut stream = reqwest::blocking::Client::new()
        .get(format!("{}/v1/functions/followed/logs/stream", server.url))
        .bearer_auth(admin_token(&home))
        .send()
        .unwrap();
    assert_eq!(stream.status(), reqwest::StatusCode::OK);
    let stopped_at = std::time::Instant::now();
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    assert!(body.ends_with("event: end\ndata: {\"reason\":\"expired\"}\n\n"), "{body:?}");
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(stopped_at.elapsed() < Duration::from_secs(60), "the server still runs 60 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success());
    // The grace period is 30 s: the stream did not wait for it.
    assert!(stopped_at.elapsed() < Duration::from_secs(20), "stopped after {:?}", stopped_at.elapsed());
}

/// Both listeners over HTTPS with a certificate that is reloaded when its files change.
#[test]
fn tls_on_both_listeners_with_reload() {
    let home = Home::new();
    let (cert, key) = (home.path().join("cert.pem"), home.path().join("key.pem"));
    let make = || {
        let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    };
    let (first, first_key) = make();
    std::fs::write(&cert, &first).unwrap();
    std::fs::write(&key, &first_key).unwrap();
    let server =
        home.up_with(&[("HEARTH_TLS_CERT", cert.to_str().unwrap()), ("HEARTH_TLS_KEY", key.to_str().unwrap())]);
    assert!(server.url.starts_with("https://") && server.trigger_url.starts_with("https://"), "{}", server.banner);
    let trusting = |pem: &str| {
        reqwest::blocking::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
            .build()
            .unwrap()
    };
    for url in [&server.url, &server.trigger_url] {
        let r = trusting(&first).get(format!("{url}/healthz")).send().unwrap();
        assert!(r.status().is_success(), "{url}");
        let plain = reqwest::blocking::get(format!("{}/healthz", url.replace("https://", "http://")));
        assert!(plain.is_err() || !plain.unwrap().status().is_success(), "plain HTTP is not served");
    }
    // A new certificate in the same files is served without a restart.
    let (second, second_key) = make();
    std::fs::write(&key, &second_key).unwrap();
    std::fs::write(&cert, &second).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while trusting(&second).get(format!("{}/healthz", server.url)).send().is_err() {
        assert!(std::time::Instant::now() < deadline, "the new certificate was never served");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(trusting(&first).get(format!("{}/healthz", server.url)).send().is_err(), "the old one is gone");
}

/// A request still running when the grace period (`HEARTH_SHUTDOWN_GRACE_S`) ends does not
/// hold the stop: the server exits once it has passed, the caller's connection closed.
#[test]
fn sigterm_gives_up_after_the_grace_period() {
    let home = Home::new();
    let mut server = home.up_with(&[("HEARTH_SHUTDOWN_GRACE_S", "1")]);
    let code = home.path().join("slower");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("main.py"),
        "import time\n\ndef handler(event, context):\n    time.sleep(60)\n    return 'done'\n",
    )
    .unwrap();
    let code = code.to_str().unwrap();
    home.ok(&[
        "fn",
        "deploy",
        code,
        "--name",
        "slower",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
        "--timeout",
        "120",
    ]);
    let mut call = home.cmd();
    call.args(["invoke", "slower", "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let caller = call.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !home.ok(&["fn", "instances", "slower"]).contains("busy") {
        assert!(std::time::Instant::now() < deadline, "the call never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped_at = std::time::Instant::now();
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(stopped_at.elapsed() < Duration::from_secs(30), "the server still runs 30 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = stopped_at.elapsed();
    assert!(exit.success(), "a stop after the grace period still exits 0");
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(20), "stopped after {took:?}");
    let out = caller.wait_with_output().unwrap();
    assert!(!out.status.success(), "the cut-off call is reported as failed: {}", String::from_utf8_lossy(&out.stdout));
}
