//! A new user's day on the real binary: quickstart, versions, restarts, exit codes, S3 code, triggers after a restart.

use super::*;

#[test]
fn quickstart_versions_and_restart() {
    let home = Home::new();
    let server = home.up();
    assert!(server.banner.contains("admin token"), "first start prints the token: {}", server.banner);
    let client_cfg = std::fs::read_to_string(home.path().join("client.toml")).unwrap();
    assert!(client_cfg.contains(&server.url) && client_cfg.contains("hth_"), "client config written");

    let example = repo().join("examples/python-hello");
    let example = example.to_str().unwrap();
    let deploy = ["fn", "deploy", example, "--name", "hello", "--runtime", "python3", "--handler", "main.handler"];
    let out = home.ok(&deploy);
    assert!(out.contains("version 1"), "{out}");
    let list = home.json(&["fn", "list"]);
    assert_eq!(list[0]["name"], "hello");
    assert_eq!(list[0]["config"]["runtime"], "python3");
    assert_eq!(list[0]["latest_version"], 1);

    // The seed example: an HTTP trigger at /hello answers /hello/faas.
    home.ok(&["trigger", "add", "http", "hello", "--path", "/hello"]);
    let get = || reqwest::blocking::get(format!("{}/hello/faas", server.trigger_url)).unwrap();
    let r = get();
    assert_eq!(r.headers()["x-hearth-cold-start"], "true");
    assert_eq!(r.text().unwrap(), "Hello FaaS");
    let r = get();
    assert_eq!(r.headers()["x-hearth-cold-start"], "false");
    assert_eq!(r.text().unwrap(), "Hello FaaS");
    let listed = home.ok(&["trigger", "list"]);
    assert!(listed.contains(&format!("{}/hello", server.trigger_url)), "the trigger's URL: {listed}");
    // Triggers and the API are separate origins: neither answers the other's paths.
    let api_side = reqwest::blocking::get(format!("{}/hello/faas", server.url)).unwrap();
    assert_eq!(api_side.status(), 404, "trigger paths are not served on the API's origin");
    let trigger_side = reqwest::blocking::get(format!("{}/v1/functions", server.trigger_url)).unwrap();
    assert_eq!(trigger_side.status(), 404, "the API is not served on the triggers' origin");

    // Invoke it directly: the warm instance answers.
    let first = home.json(&["invoke", "hello", "--data", r#"{"x":1}"#]);
    assert_eq!((first["cold_start"].as_bool(), first["version"].as_u64()), (Some(false), Some(1)), "{first}");
    assert_eq!(first["result"]["statusCode"], 200);
    assert!(first["result"]["body"].as_str().unwrap().contains("\"x\": 1"), "{first}");
    let second = home.json(&["invoke", "hello"]);
    assert_eq!(second["cold_start"], false);
    let out = home.run(&["invoke", "hello", "--log"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && log.contains("START RequestId") && log.contains("REPORT RequestId"), "{log}");
    let all = home.ok(&["logs", "hello"]);
    assert!(all.matches("REPORT RequestId").count() >= 5, "every invocation is in the log: {all}");
    let instances = home.json(&["fn", "instances", "hello"]);
    assert_eq!(instances.as_array().unwrap().len(), 1);
    assert_eq!(instances[0]["requests_served"], 5);

    let pulled = home.path().join("pulled-v1");
    home.ok(&["fn", "code", "pull", "hello", pulled.to_str().unwrap()]);
    assert_eq!(tree(&pulled), tree(Path::new(example)), "pull returns the same files");
    assert!(home.ok(&deploy).contains("unchanged"), "same code, no new version");

    // New code: a copy of the example with a changed handler body.
    let v2 = home.path().join("hello-v2");
    std::fs::create_dir_all(&v2).unwrap();
    std::fs::write(v2.join("main.py"), "def handler(event, context):\n    return {'statusCode': 200, 'body': 'v2'}\n")
        .unwrap();
    let out = home.ok(&[
        "fn",
        "deploy",
        v2.to_str().unwrap(),
        "--name",
        "hello",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
    ]);
    assert!(out.contains("version 2"), "{out}");
    let versions = home.json(&["fn", "versions", "hello"]);
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_ne!(versions[0]["code"]["sha256"], versions[1]["code"]["sha256"]);
    let old = home.path().join("pulled-old");
    home.ok(&["fn", "code", "pull", "hello", old.to_str().unwrap(), "--version", "1"]);
    assert_eq!(tree(&old), tree(Path::new(example)), "the old version is still downloadable");
    assert_eq!(count_packages(&home), 2);

    // Kill -9 (with a live instance) and start again: everything is still there, nothing
    // re-uploaded, and the dead server's sandbox leftovers are swept.
    home.ok(&["invoke", "hello"]);
    let old_pid = server.child.id();
    let groups_of = cgroups_of;
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let sandboxed = !groups_of(old_pid).is_empty();
    assert_eq!(sandboxed, root, "as root, instances live in cgroups named after their server");
    // The live instance's network and mount namespaces, seen from its processes (waiting
    // out the old version's instance, which drains away meanwhile).
    // The hello function's live instance only: a pre-warmed sandbox being launched meanwhile
    // is in its cgroup before it enters its namespaces.
    let live = home.json(&["fn", "instances", "hello"]);
    let live: Vec<String> = live.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect();
    let namespaces = || -> Vec<String> {
        groups_of(old_pid)
            .iter()
            .filter(|g| live.iter().any(|id| g.ends_with(id.as_str())))
            .flat_map(|g| {
                ["/sys/fs/cgroup/memory/hearth", "/sys/fs/cgroup/hearth"]
                    .iter()
                    .filter_map(move |d| std::fs::read_to_string(format!("{d}/{g}/cgroup.procs")).ok())
            })
            .flat_map(|procs| procs.lines().map(str::to_owned).collect::<Vec<_>>())
            .flat_map(|p| ["net", "mnt"].map(|ns| std::fs::read_link(format!("/proc/{p}/ns/{ns}"))))
            .filter_map(Result::ok)
            .map(|l| l.display().to_string())
            .collect::<Vec<String>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut instance_namespaces = namespaces();
    while sandboxed && instance_namespaces.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        instance_namespaces = namespaces();
    }
    let own = |ns: &str| std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap().display().to_string();
    if sandboxed {
        assert!(!instance_namespaces.is_empty());
        assert!(!instance_namespaces.contains(&own("net")) && !instance_namespaces.contains(&own("mnt")));
    }
    server.kill();
    let server = home.up();
    if sandboxed {
        // Removal finishes once the killed processes are reaped.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !groups_of(old_pid).is_empty() {
            assert!(std::time::Instant::now() < deadline, "the restart did not sweep the killed server's cgroups");
            std::thread::sleep(Duration::from_millis(20));
        }
        // No process is left in the killed instance's namespaces, so the kernel has freed them
        // (Hearth never pins a namespace with a bind mount), and with them its mounts and veths.
        // Sandboxes of other servers (the new one, and those of tests running alongside) are
        // left out: the kernel reuses freed namespace numbers, and pre-warmed sandboxes start
        // at once. A leaked process would still be in the killed server's cgroups, or in none.
        let old_groups = format!("/hearth/{old_pid}-");
        let in_use: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                std::fs::read_to_string(e.path().join("cgroup"))
                    .is_ok_and(|c| !c.contains("/hearth/") || c.contains(&old_groups))
            })
            .flat_map(|e| ["net", "mnt"].map(|ns| std::fs::read_link(e.path().join("ns").join(ns))))
            .filter_map(Result::ok)
            .map(|l| l.display().to_string())
            .collect();
        let leaked: Vec<_> = instance_namespaces.iter().filter(|ns| in_use.contains(ns)).collect();
        assert!(leaked.is_empty(), "namespaces still in use after kill -9 and restart: {leaked:?}");
        let left = instance_mounts(&home.path().join("data"));
        assert!(left.is_empty(), "an instance's root is still mounted on the host: {left:?}");
    }
    assert!(!server.banner.contains("admin token"), "no new token on restart");
    let list = home.json(&["fn", "list"]);
    assert_eq!((list[0]["name"].as_str(), list[0]["latest_version"].as_u64()), (Some("hello"), Some(2)));
    assert_eq!(home.json(&["fn", "versions", "hello"]).as_array().unwrap().len(), 2);
    let again = home.path().join("pulled-after-restart");
    home.ok(&["fn", "code", "pull", "hello", again.to_str().unwrap(), "--version", "1"]);
    assert_eq!(tree(&again), tree(Path::new(example)));
    assert_eq!(count_packages(&home), 2, "nothing re-uploaded");

    // A second server on the same data directory is refused.
    let out = home.run(&["up", "--listen", "127.0.0.1:0", "--data-dir", home.path().join("data").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already using"));

    home.ok(&["fn", "delete", "hello"]);
    assert_eq!(home.json(&["fn", "list"]), serde_json::json!([]));

    // The node's memory and pre-warmed sandboxes (python3:128 and nodejs:128 by default).
    let node = home.json(&["node"]);
    assert!(node["memory_limit_mb"].as_u64().unwrap() > 0, "{node}");
    assert_eq!(node["prewarm_budget_mb"], 2048);

    // A graceful stop (SIGTERM) leaves no cgroup behind, pre-warmed sandboxes included.
    home.ok(&["fn", "deploy", example, "--name", "again", "--runtime", "python3", "--handler", "main.handler"]);
    home.ok(&["invoke", "again"]);
    let pid = server.child.id();
    assert_eq!(!groups_of(pid).is_empty(), sandboxed);
    server.terminate();
    assert!(groups_of(pid).is_empty(), "cgroups left after a graceful stop: {:?}", groups_of(pid));
}

#[test]
fn failures_have_codes_and_exit_statuses() {
    let home = Home::new();
    let _server = home.up();
    let code_of = |out: &Output| -> Value {
        let err: Value = serde_json::from_slice(&out.stderr).expect("--json errors are JSON on stderr");
        err["error"]["code"].clone()
    };

    let out = home.run(&["fn", "get", "nope", "--json"]);
    assert_eq!((out.status.code(), code_of(&out)), (Some(1), "FunctionNotFound".into()));
    let out = home.run(&["fn", "get", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("code: FunctionNotFound"));

    let example = repo().join("examples/python-hello");
    let example = example.to_str().unwrap();
    for (args, code) in [
        (vec!["--name", "Bad_Name", "--runtime", "python3", "--handler", "main.handler"], "InvalidFunctionName"),
        (vec!["--name", "f", "--runtime", "cobol", "--handler", "main.handler"], "InvalidRuntime"),
        (
            vec!["--name", "f", "--runtime", "python3", "--handler", "main.handler", "--memory", "32"],
            "InvalidMemorySize",
        ),
        (
            vec!["--name", "f", "--runtime", "python3", "--handler", "main.handler", "--timeout", "1000"],
            "InvalidTimeout",
        ),
        (
            vec!["--name", "f", "--runtime", "python3", "--handler", "main.handler", "-e", "AWS_REGION=x"],
            "ReservedEnvironmentVariable",
        ),
    ] {
        let mut full = vec!["fn", "deploy", example];
        full.extend(args);
        full.push("--json");
        let out = home.run(&full);
        // Refused locally, before anything is sent: a usage error.
        assert_eq!((out.status.code(), code_of(&out)), (Some(2), code.into()), "{full:?}");
    }

    // A hostile zip given to `fn deploy` is refused by the server with its rule's code.
    let evil = home.path().join("evil.zip");
    std::fs::write(&evil, hearth_blob::fixtures::raw_zip(&[hearth_blob::fixtures::RawEntry::file("../evil.py", b"x")]))
        .unwrap();
    let out = home.run(&[
        "fn",
        "deploy",
        evil.to_str().unwrap(),
        "--name",
        "f",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
        "--json",
    ]);
    assert_eq!((out.status.code(), code_of(&out)), (Some(1), "ZipPathTraversal".into()));
    assert_eq!(count_packages(&home), 0);

    // A function error prints the error document and exits 1 naming the error type.
    let raising = home.path().join("raising");
    std::fs::create_dir_all(&raising).unwrap();
    std::fs::write(raising.join("main.py"), "def handler(event, context):\n    raise KeyError('missing')\n").unwrap();
    home.ok(&[
        "fn",
        "deploy",
        raising.to_str().unwrap(),
        "--name",
        "raiser",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
    ]);
    let out = home.run(&["invoke", "raiser"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("KeyError"), "the error document is printed");
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed with KeyError"));

    // Scopes through the CLI: a read token can list but not deploy.
    let token = home.json(&["token", "create", "--scope", "read", "--name", "viewer"]);
    let secret = token["token"].as_str().unwrap();
    let out = home.cmd().env("HEARTH_TOKEN", secret).args(["fn", "list"]).output().unwrap();
    assert!(out.status.success());
    let out = home
        .cmd()
        .env("HEARTH_TOKEN", secret)
        .args(["fn", "deploy", example, "--name", "f", "--runtime", "python3", "--handler", "main.handler", "--json"])
        .output()
        .unwrap();
    assert_eq!((out.status.code(), code_of(&out)), (Some(1), "InsufficientScope".into()));
    let out = home.cmd().env("HEARTH_TOKEN", "hth_wrong").args(["fn", "list", "--json"]).output().unwrap();
    assert_eq!(code_of(&out), "InvalidToken");

    let out = home.cmd().env("HEARTH_URL", "http://127.0.0.1:9").args(["fn", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "unreachable server");
    let out = home.run(&["fn", "deploy"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
}

#[test]
fn deploy_from_an_s3_object() {
    let s3 = hearth_blob::fixtures::S3TestServer::start();
    let http = reqwest::blocking::Client::new();
    let put = |path: &str, body: Vec<u8>| {
        let r = http.put(format!("{}{path}", s3.endpoint)).header("content-type", "application/zip").body(body);
        assert!(r.send().unwrap().status().is_success(), "PUT {path}");
    };
    put("/code", vec![]);
    put("/code/hello.zip", hearth_blob::fixtures::hello_python());

    let home = Home::new();
    let _server = home.up_with(&[
        ("HEARTH_S3_ENDPOINT", s3.endpoint.as_str()),
        ("HEARTH_S3_ALLOW_HTTP", "true"),
        ("HEARTH_S3_REGION", "us-east-1"),
        ("HEARTH_S3_ACCESS_KEY_ID", "test"),
        ("HEARTH_S3_SECRET_ACCESS_KEY", "test"),
    ]);
    let out = home.ok(&[
        "fn",
        "deploy",
        "s3://code/hello.zip",
        "--name",
        "from-s3",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
    ]);
    assert!(out.contains("version 1"), "{out}");
    let pulled = home.path().join("pulled");
    home.ok(&["fn", "code", "pull", "from-s3", pulled.to_str().unwrap()]);
    assert!(std::fs::read_to_string(pulled.join("main.py")).unwrap().contains("Hello FaaS"));
    let out = home.run(&[
        "fn",
        "deploy",
        "s3://code/missing.zip",
        "--name",
        "from-s3",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CodeObjectNotFound"));
}

#[test]
fn deploy_from_s3_without_s3_settings_is_refused() {
    // No [s3], no HEARTH_S3_* and no AWS_* (the environment is cleared): refused before any
    // request leaves the server, with what to set.
    let home = Home::new();
    let _server = home.up_with(&[("HEARTH_PREWARM_BUDGET_MB", "0")]);
    let deploy =
        ["fn", "deploy", "s3://code/hello.zip", "--name", "f", "--runtime", "python3", "--handler", "main.handler"];
    let out = home.run(&deploy);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("S3NotConfigured") && stderr.contains("HEARTH_S3_ENDPOINT"), "{stderr}");
}

/// HTTP triggers come from the store on start: after a restart, graceful or SIGKILL, the
/// trigger URL known before answers, its methods and auth kept, with no API call in between.
#[test]
fn triggers_route_after_a_restart() {
    let home = Home::new();
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (api, triggers) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let up = || {
        let mut command = home.cmd();
        command.args(["up", "--listen", &api, "--trigger-listen", &triggers, "--data-dir"]);
        home.spawn_up(command.arg(home.path().join("data")))
    };
    let mut server = up();
    let base = server.trigger_url.clone();
    assert_eq!(base, format!("http://{triggers}"), "{}", server.banner);
    let example = repo().join("examples/python-hello");
    let example = example.to_str().unwrap();
    home.ok(&["fn", "deploy", example, "--name", "hello", "--runtime", "python3", "--handler", "main.handler"]);
    home.ok(&["trigger", "add", "http", "hello", "--path", "/greet", "--methods", "GET"]);
    home.ok(&["trigger", "add", "http", "hello", "--path", "/private", "--auth", "token"]);
    let token = admin_token(&home);
    let http = reqwest::blocking::Client::new();
    // What each trigger answers: the greeting, the method refused, the token required.
    let answers = || {
        let get = |path: &str| http.get(format!("{base}{path}")).send().unwrap();
        let greet = get("/greet/faas");
        let greeting = (greet.status().as_u16(), greet.text().unwrap());
        let post = http.post(format!("{base}/greet")).send().unwrap().status().as_u16();
        let anonymous = get("/private").status().as_u16();
        let with_token = http.get(format!("{base}/private")).bearer_auth(&token).send().unwrap();
        let other = get("/elsewhere").status().as_u16();
        (greeting, post, anonymous, with_token.status().as_u16(), other)
    };
    let expected = ((200, "Hello FaaS".to_owned()), 405, 401, 200, 404);
    assert_eq!(answers(), expected, "before the restart");
    for stop in ["SIGTERM", "SIGKILL"] {
        if stop == "SIGTERM" {
            server.terminate();
        } else {
            server.kill();
        }
        server = up();
        assert_eq!(server.trigger_url, base, "the same trigger URL after {stop}");
        // The first requests the new server sees are these: no API call has been made.
        assert_eq!(answers(), expected, "after a restart by {stop}");
    }
    server.terminate();
}
