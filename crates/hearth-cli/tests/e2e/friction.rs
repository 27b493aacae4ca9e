//! The CLI without surprises (issue 12, point 5): closed pipes, messages that name what the
//! user typed, `--data @-`, `logs --since/--tail`, comma lists, id prefixes, exit codes and
//! one JSON error shape, on the real binary.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;

use super::*;

/// Deploys the Python example as `hello`.
fn deploy_hello(home: &Home, extra: &[&str]) {
    let example = repo().join("examples/python-hello");
    let mut args = vec!["fn", "deploy", example.to_str().unwrap(), "--name", "hello", "--runtime", "python3"];
    args.extend(["--handler", "main.handler"]);
    args.extend(extra);
    home.ok(&args);
}

/// Runs `hearth args` with `stdin` as its input.
fn run_with_stdin(home: &Home, args: &[&str], stdin: &[u8]) -> Output {
    let mut child =
        home.cmd().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    // The command may stop reading early (it refuses what is too large): a broken pipe is fine.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().unwrap()
}

/// The one JSON error object a failed `--json` command printed on stderr, checked for its
/// shape: exactly `{"error": {"status", "code", "message"}}`, the code a string.
fn json_error(out: &Output) -> Value {
    assert!(!out.status.success(), "expected a failure: {out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("stderr is not one JSON value ({e}): {text}"));
    let error = v["error"].as_object().unwrap_or_else(|| panic!("no error object: {v}"));
    let mut keys: Vec<&str> = error.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["code", "message", "status"], "{v}");
    assert!(error["code"].is_string() && error["message"].is_string(), "{v}");
    assert!(error["status"].is_null() || error["status"].is_u64(), "{v}");
    assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
    v["error"].clone()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_closed_stdout_ends_a_command_by_sigpipe_without_a_panic() {
    let home = Home::new();
    let _server = home.up();
    deploy_hello(&home, &[]);
    home.ok(&["trigger", "add", "http", "hello", "--path", "/hello"]);
    for args in [&["trigger", "list"][..], &["fn", "get", "hello"], &["openapi"]] {
        // stdout is a pipe whose reader is already closed, as under `| head -1` once head
        // has exited.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = home.cmd().args(args).stdout(writer).stderr(Stdio::piped()).output().unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked") && !err.contains("failed printing"), "{args:?}: {err}");
        assert_eq!(out.status.signal(), Some(13), "{args:?} ends by SIGPIPE, as `ls` does: {out:?}");
    }
    let help = home.ok(&["--help"]);
    assert!(help.contains("SIGPIPE") && help.contains("141"), "documented in --help: {help}");
}

#[test]
fn invoking_takes_json_from_stdin_and_names_versions_plainly() {
    let home = Home::new();
    let _server = home.up();
    deploy_hello(&home, &[]);

    // The Debug form of the name never leaks into a message.
    let out = home.run(&["invoke", "hello", "--version", "9"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("function \"hello\" has no version 9; `hearth fn versions hello` lists them"), "{err}");
    assert!(!err.contains("FunctionName"), "{err}");

    // --data @- reads the event from stdin.
    let out = run_with_stdin(&home, &["invoke", "hello", "--data", "@-", "--json"], br#"{"from": "stdin"}"#);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["result"]["body"].as_str().unwrap().contains(r#""from": "stdin""#), "{v}");

    // Text that is not JSON is refused before sending: a usage error naming the flag and where.
    let file = home.path().join("event.json");
    std::fs::write(&file, "{\"a\": 1,}").unwrap();
    let from_file = format!("@{}", file.display());
    for (args, stdin, position) in [
        (vec!["invoke", "hello", "--data", "{nope"], &b""[..], "line 1 column 2"),
        (vec!["invoke", "hello", "--data", &from_file], b"", "line 1 column 9"),
        (vec!["invoke", "hello", "--data", "@-"], b"\n\n  [1, 2", "line 3 column 7"),
    ] {
        let out = run_with_stdin(&home, &args, stdin);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("--data") && err.contains("not valid JSON") && err.contains(position), "{err}");
    }
    let mut args = vec!["invoke", "hello", "--data", "@-", "--json"];
    let out = run_with_stdin(&home, &args, b"{");
    let error = json_error(&out);
    assert_eq!((out.status.code(), &error["code"], &error["status"]), (Some(2), &json!("InvalidJson"), &Value::Null));
    // More than the 6 MiB an event may have: refused, stdin read no further than the limit.
    let big = vec![b' '; 7 << 20];
    let out = run_with_stdin(&home, &args, &big);
    assert_eq!((out.status.code(), json_error(&out)["code"].clone()), (Some(2), json!("RequestTooLarge")));
    let invocations = home.json(&["logs", "hello"]);
    let starts = invocations.as_array().unwrap().iter().filter(|l| l["message"].as_str().unwrap().starts_with("START"));
    assert_eq!(starts.count(), 1, "only the stdin event was sent");

    // --json --log: the log lines are inside the one JSON document.
    args = vec!["invoke", "hello", "--json", "--log"];
    let out = home.run(&args);
    assert!(out.status.success() && out.stderr.is_empty(), "nothing but JSON: {out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let log = v["log"].as_array().unwrap_or_else(|| panic!("no log: {v}"));
    assert!(log.iter().any(|l| l["message"].as_str().unwrap().starts_with("REPORT RequestId")), "{v}");
    assert!(log.iter().all(|l| l["request_id"] == v["request_id"]), "{v}");
}

#[test]
fn logs_since_tail_follow_and_unknown_requests() {
    let home = Home::new();
    let _server = home.up();
    deploy_hello(&home, &[]);
    for _ in 0..3 {
        home.ok(&["invoke", "hello"]);
    }
    // Without -f, --json is one array.
    let all = home.json(&["logs", "hello"]);
    let all = all.as_array().unwrap().clone();
    assert!(all.len() >= 9, "three START/END/REPORT at least: {all:?}");
    let text = home.ok(&["logs", "hello"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), all.len());

    let tail = home.ok(&["logs", "hello", "--tail", "2"]);
    assert_eq!(tail.lines().collect::<Vec<_>>(), lines[lines.len() - 2..], "the last two lines");
    assert_eq!(home.ok(&["logs", "hello", "--since", "10m", "--tail", "100"]), text, "all of it is recent");
    assert_eq!(home.json(&["logs", "hello", "--tail", "1"]), json!([all.last().unwrap()]));
    // Since a line's time: that line and the later ones.
    let cut = &all[all.len() / 2];
    let at = cut["at"].as_str().unwrap();
    let time = |l: &Value| chrono::DateTime::parse_from_rfc3339(l["at"].as_str().unwrap()).unwrap();
    let expected: Vec<&Value> = all.iter().filter(|l| time(l) >= time(cut)).collect();
    let since = home.json(&["logs", "hello", "--since", at]);
    assert_eq!(since.as_array().unwrap().iter().collect::<Vec<_>>(), expected);
    assert_eq!(home.json(&["logs", "hello", "--since", "2999-01-01T00:00:00Z"]), json!([]));
    let out = home.run(&["logs", "hello", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("30s, 10m, 2h, 1d"), "{}", stderr(&out));

    // One request's lines; an unknown request id is an error.
    let id = all[0]["request_id"].as_str().unwrap();
    let one = home.json(&["logs", "hello", "--request", id]);
    assert!(one.as_array().unwrap().iter().all(|l| l["request_id"] == id) && one[0].is_object());
    let out = home.run(&["logs", "hello", "--request", "nosuch"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no invocation with request id \"nosuch\" is in the retained log"), "{err}");
    let out = home.run(&["logs", "hello", "--request", "nosuch", "--json"]);
    assert_eq!(json_error(&out)["code"], "RequestNotFound");

    // -f --json: NDJSON, the last line first (--tail 1), then new ones as they come.
    let mut follow = home
        .cmd()
        .args(["logs", "hello", "-f", "--json", "--tail", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || -> Value {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("a line within 30 s");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"))
    };
    assert_eq!(next(), *all.last().unwrap());
    let fresh = home.json(&["invoke", "hello"]);
    let line = next();
    assert_eq!(line["request_id"], fresh["request_id"], "{line}");
    follow.kill().unwrap();
    follow.wait().unwrap();
}

/// The shortest prefix of `id` that no other of `ids` starts with.
fn unique_prefix(id: &str, ids: &[String]) -> String {
    (1..=id.len())
        .map(|n| &id[..n])
        .find(|p| ids.iter().filter(|other| other.starts_with(p)).count() == 1)
        .unwrap()
        .to_owned()
}

#[test]
fn comma_lists_and_id_prefixes() {
    let home = Home::new();
    let _server = home.up();
    deploy_hello(&home, &["--env", "GREETING=hi, there", "--env", "A=1", "--env", "B=2"]);

    // --scope takes a comma list, as --methods does; --env never splits a value.
    let token = home.json(&["token", "create", "--scope", "read,invoke", "--name", "both"]);
    assert_eq!(token["scopes"], json!(["invoke", "read"]), "{token}");
    let f = home.json(&["fn", "get", "hello"]);
    assert_eq!(f["config"]["environment"]["GREETING"], "hi, there");
    let out = home.json(&["fn", "config", "hello", "--unset-env", "A,B"]);
    assert_eq!(out["function"]["config"]["environment"], json!({"GREETING": "hi, there"}));
    let help = home.ok(&["fn", "config", "--help"]);
    assert!(help.contains("commas are not separators"), "{help}");

    // Seventeen triggers: two ids share a first hex digit.
    for n in 0..17 {
        home.ok(&["trigger", "add", "http", "hello", "--path", &format!("/p{n}"), "--methods", "GET,POST"]);
    }
    let listed = home.json(&["trigger", "list"]);
    let listed = listed.as_array().unwrap();
    assert!(listed.iter().all(|t| t["url"].as_str().is_some_and(|u| u.ends_with(t["path"].as_str().unwrap()))));
    assert_eq!(listed[0]["methods"], json!(["GET", "POST"]));
    let ids: Vec<String> = listed.iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect();
    let shared = ids.iter().map(|id| &id[..1]).find(|c| ids.iter().filter(|i| i.starts_with(c)).count() > 1).unwrap();
    let out = home.run(&["trigger", "delete", shared]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let candidates: Vec<&String> = ids.iter().filter(|i| i.starts_with(shared)).collect();
    assert!(candidates.iter().all(|c| err.contains(c.as_str())), "the candidates are listed: {err}");
    let out = home.run(&["trigger", "delete", "zz", "--json"]);
    assert_eq!(json_error(&out)["code"], "TriggerNotFound");
    let prefix = unique_prefix(&ids[3], &ids);
    let out = home.json(&["trigger", "delete", &prefix]);
    assert_eq!(out["deleted"], ids[3].as_str());
    assert_eq!(home.json(&["trigger", "list"]).as_array().unwrap().len(), 16);

    let tokens = home.json(&["token", "list"]);
    let token_ids: Vec<String> = tokens.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().into()).collect();
    let both = token["id"].as_str().unwrap();
    home.ok(&["token", "delete", &unique_prefix(both, &token_ids)]);
    assert_eq!(home.json(&["token", "list"]).as_array().unwrap().len(), token_ids.len() - 1);
    let out = home.run(&["token", "delete", "zz", "--json"]);
    assert_eq!((out.status.code(), &json_error(&out)["code"]), (Some(1), &json!("TokenNotFound")));
}

#[test]
fn usage_errors_exit_2_and_every_json_error_has_one_shape() {
    let home = Home::new();
    let server = home.up();
    let example = repo().join("examples/python-hello");
    let example = example.to_str().unwrap();
    let hello = ["fn", "deploy", example, "--name", "hello", "--runtime", "python3", "--handler", "main.handler"];

    // Flags out of range, refused locally: exit 2, the message names the flag.
    for (flag, value, code) in [
        ("--memory", "5", "InvalidMemorySize"),
        ("--keep-alive", "0", "InvalidKeepAlive"),
        ("--timeout", "901", "InvalidTimeout"),
        ("--ephemeral-storage", "1", "InvalidEphemeralStorage"),
        ("--max-instances", "0", "InvalidInstanceCount"),
        ("--concurrency", "0", "InvalidConcurrency"),
    ] {
        let mut args = hello.to_vec();
        args.extend([flag, value]);
        let out = home.run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&format!("{flag} must be between")) && err.contains(code), "{err}");
        assert!(!err.contains("_mb") && !err.contains("keep_alive_s") && !err.contains("timeout_s"), "{err}");
    }
    assert_eq!(count_packages(&home), 0, "nothing was uploaded");
    home.ok(&hello);
    let out = home.run(&["fn", "config", "hello", "--min-instances", "20", "--json"]);
    let error = json_error(&out);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(error["code"], "InvalidInstanceCount");
    assert!(error["message"].as_str().unwrap().contains("--min-instances (20) must not exceed --max-instances"));

    // The server's refusals stay exit 1, with its status.
    let out = home.run(&["fn", "get", "nope", "--json"]);
    let error = json_error(&out);
    assert_eq!(
        (out.status.code(), &error["status"], &error["code"]),
        (Some(1), &json!(404), &json!("FunctionNotFound"))
    );

    // A malformed URL or context name is a usage error, not an unreachable server.
    for url in ["not a url", "localhost:8080", "ftp://127.0.0.1"] {
        let out = home.cmd().env("HEARTH_URL", url).args(["fn", "list", "--json"]).output().unwrap();
        let error = json_error(&out);
        assert_eq!((out.status.code(), &error["code"]), (Some(2), &json!("InvalidUrl")), "{url}: {error}");
        assert!(error["message"].as_str().unwrap().contains("HEARTH_URL"), "{error}");
    }
    let out = home.run(&["fn", "list", "--context", "no such/context", "--json"]);
    assert_eq!((out.status.code(), json_error(&out)["code"].clone()), (Some(2), json!("InvalidContextName")));
    let out = home.cmd().env("HEARTH_CONTEXT", "bad name").args(["fn", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // Every other failure is one JSON object too, with a code.
    let out = home.run(&["fn", "deploy", "--json"]);
    let error = json_error(&out);
    assert_eq!((out.status.code(), &error["code"]), (Some(2), &json!("UsageError")), "clap's refusals too");
    let out = home.cmd().env("HEARTH_URL", "http://127.0.0.1:9").args(["fn", "list", "--json"]).output().unwrap();
    assert_eq!((out.status.code(), json_error(&out)["code"].clone()), (Some(3), json!("Unreachable")));
    let out = home.run(&["invoke", "hello", "--data", "@/nonexistent/event.json", "--json"]);
    assert_eq!((out.status.code(), json_error(&out)["code"].clone()), (Some(1), json!("LocalError")));
    let out = home.run(&["fn", "code", "hello", "--json"]);
    assert_eq!(json_error(&out)["code"], "UsageError");
    drop(server);
}

#[test]
fn an_empty_hearth_prewarm_keeps_no_sandboxes() {
    let home = Home::new();
    let _server = home.up_with(&[("HEARTH_PREWARM", "")]);
    // A server started alongside with the default pre-warms; once its sandboxes are ready,
    // the other would have had time to make its own.
    let control = Home::new();
    let _control_server = control.up();
    let ready = wait_for(Duration::from_secs(60), || control.json(&["node"])["prewarmed"] != json!([]));
    assert!(ready, "the default server pre-warms sandboxes: {}", control.json(&["node"]));
    let node = home.json(&["node"]);
    assert_eq!(node["prewarmed"], json!([]), "HEARTH_PREWARM= keeps no pre-warmed sandbox: {node}");
}

#[test]
fn fn_get_shows_every_setting() {
    let home = Home::new();
    let _server = home.up();
    deploy_hello(
        &home,
        &[
            "--env",
            "GREETING=hi",
            "--concurrency",
            "3",
            "--min-instances",
            "0",
            "--max-instances",
            "4",
            "--keep-alive",
            "45",
            "--keep-alive-policy",
            "adaptive",
            "--ephemeral-storage",
            "1024",
            "--network",
            "egress",
            "--description",
            "says hello",
        ],
    );
    let shown = home.ok(&["fn", "get", "hello"]);
    let f = home.json(&["fn", "get", "hello"]);
    let digest = f["code"]["sha256"].as_str().unwrap();
    for expected in [
        "env:",
        "GREETING=hi",
        "concurrency:",
        "3 per instance",
        "min instances:",
        "max instances:",
        "4",
        "keep-alive:",
        "45 s",
        "keep-alive policy:",
        "adaptive",
        "ephemeral storage:",
        "1024 MB",
        "network:",
        "egress",
        "description:",
        "says hello",
        digest,
        "code size:",
        "latest version:",
        "created:",
        "updated:",
    ] {
        assert!(shown.contains(expected), "fn get does not show {expected:?}:\n{shown}");
    }
}
