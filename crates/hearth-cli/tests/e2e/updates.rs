//! Updates that change only what they name: a redeploy keeps every setting it is not given,
//! `hearth fn config` and `hearth fn code` change one side, `--replace` starts from defaults.

use super::*;

/// A Python function answering its environment and the code generation `generation`.
fn python_folder(home: &Home, name: &str, generation: u32) -> String {
    let dir = home.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let source = format!(
        "import os\ndef handler(event, context):\n    return {{'gen': {generation}, 'env': {{k: v for k, v in os.environ.items() if k.startswith('APP_')}}}}\n"
    );
    std::fs::write(dir.join("main.py"), source).unwrap();
    dir.to_str().unwrap().to_owned()
}

#[test]
fn updates_change_only_what_they_name() {
    let home = Home::new();
    let _server = home.up();
    let v1 = python_folder(&home, "v1", 1);
    let create = ["fn", "deploy", &v1, "--name", "app", "--runtime", "python3", "--handler", "main.handler"];
    let mut create = create.to_vec();
    create.extend(["--memory", "256", "--timeout", "7", "--env", "APP_A=1", "--env", "APP_B=2"]);
    home.ok(&create);

    // Code only: the runtime, handler, memory, timeout and environment stay.
    let v2 = python_folder(&home, "v2", 2);
    let out = home.json(&["fn", "deploy", &v2, "--name", "app"]);
    assert_eq!(out["new_version"]["number"], 2, "{out}");
    let config = &out["function"]["config"];
    assert_eq!((config["memory_mb"].as_u64(), config["timeout_s"].as_u64()), (Some(256), Some(7)), "{config}");
    assert_eq!(config["environment"], json!({"APP_A": "1", "APP_B": "2"}));
    let r = home.json(&["invoke", "app"]);
    assert_eq!(r["result"], json!({"gen": 2, "env": {"APP_A": "1", "APP_B": "2"}}), "{r}");

    // Settings only: one variable set, one removed, memory changed; the code stays.
    let out = home.json(&["fn", "config", "app", "--env", "APP_C=3", "--unset-env", "APP_A", "--memory", "512"]);
    assert_eq!(out["new_version"]["number"], 3, "{out}");
    assert_eq!(out["function"]["config"]["environment"], json!({"APP_B": "2", "APP_C": "3"}));
    assert_eq!(out["function"]["config"]["timeout_s"], 7);
    let r = home.json(&["invoke", "app"]);
    assert_eq!(r["result"], json!({"gen": 2, "env": {"APP_B": "2", "APP_C": "3"}}), "{r}");

    // New code by `fn code`: the settings stay.
    let v3 = python_folder(&home, "v3", 3);
    let out = home.json(&["fn", "code", "app", &v3]);
    assert_eq!(out["new_version"]["number"], 4, "{out}");
    assert_eq!(out["new_version"]["config"]["memory_mb"], 512);
    let r = home.json(&["invoke", "app"]);
    assert_eq!(r["result"]["gen"], 3, "{r}");

    // Settings are checked before anything is uploaded or changed.
    let out = home.run(&["fn", "config", "app", "--memory", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidMemorySize"));
    let out = home.run(&["fn", "config", "app"]);
    assert_eq!(out.status.code(), Some(2), "nothing to change is a usage error");
    let out = home.run(&["fn", "deploy", &v1, "--name", "newcomer"]);
    assert_eq!(out.status.code(), Some(2), "creating needs --runtime");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--runtime is required"), "{out:?}");
    let versions = home.json(&["fn", "versions", "app"]);
    assert_eq!(versions.as_array().unwrap().len(), 4, "refusals made no version");

    // --replace: what is not given goes back to its default.
    let out = home.json(&[
        "fn",
        "deploy",
        &v1,
        "--name",
        "app",
        "--replace",
        "--runtime",
        "python3",
        "--handler",
        "main.handler",
    ]);
    let config = &out["function"]["config"];
    assert_eq!((config["memory_mb"].as_u64(), config["timeout_s"].as_u64()), (Some(128), Some(3)), "{config}");
    assert_eq!(config["environment"], json!({}));
    // --unset-env with nothing to unset (a new function, or --replace) is a usage error.
    for extra in [&["--name", "fresh"][..], &["--name", "app", "--replace"][..]] {
        let mut args = vec!["fn", "deploy", v1.as_str(), "--runtime", "python3", "--handler", "main.handler"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--unset-env", "OLD"]);
        let out = home.run(&args);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to remove"), "{out:?}");
    }
    assert!(!home.run(&["fn", "get", "fresh"]).status.success(), "nothing was created");
}
