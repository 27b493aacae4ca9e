//! `hearth new` + `hearth deploy`: a function and its triggers from a folder's hearth.toml.

use super::*;

fn get(url: &str) -> (u16, String) {
    let r =
        reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap().get(url).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// Runs `hearth ARGS` in `dir`, which must succeed; returns stdout.
fn ok_in(home: &Home, dir: &Path, args: &[&str]) -> String {
    let out = home.cmd().current_dir(dir).args(args).output().unwrap();
    assert!(out.status.success(), "hearth {args:?} in {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn new_then_deploy_answers_through_the_manifests_trigger() {
    let home = Home::new();
    let server = home.up();
    let work = home.path().join("work");
    std::fs::create_dir(&work).unwrap();
    for (runtime, answer) in [("python3", "Hello, Ann!"), ("nodejs", "Hello, Ann!"), ("provided", "Hello from sh")] {
        let name = format!("hi-{runtime}");
        let out = ok_in(&home, &work, &["new", &name, "--runtime", runtime]);
        assert!(out.contains("hearth deploy"), "{out}");
        let out = ok_in(&home, &work.join(&name), &["deploy"]);
        assert!(out.contains("version 1") && out.contains(&format!("/{name} added")), "{out}");
        let (status, body) = get(&format!("{}/{name}?name=Ann", server.trigger_url));
        assert_eq!(status, 200, "{runtime}: {body}");
        assert!(body.contains(answer), "{runtime}: {body}");
    }

    // Redeploying the same folder changes nothing.
    let dir = work.join("hi-python3");
    let out = ok_in(&home, &dir, &["deploy"]);
    assert!(out.contains("unchanged") && out.contains("/hi-python3 kept"), "{out}");

    // A setting, the environment and the trigger change in the manifest: one new version
    // with the same code, the old trigger gone, the new one answering.
    let before = home.json(&["fn", "get", "hi-python3"]);
    let manifest = std::fs::read_to_string(dir.join("hearth.toml")).unwrap();
    let manifest = manifest
        .replace("memory_mb = 128", "memory_mb = 256")
        .replace("# GREETING = \"Hello\"", "GREETING = \"Hi\"")
        .replace("path = \"/hi-python3\"", "path = \"/greet\"")
        .replace("methods = [\"GET\", \"POST\"]", "methods = [\"GET\"]");
    std::fs::write(dir.join("hearth.toml"), manifest).unwrap();
    let deployed: Value = serde_json::from_str(&ok_in(&home, &dir, &["deploy", "--json"])).unwrap();
    assert_eq!(deployed["new_version"]["number"], 2, "{deployed}");
    assert_eq!(deployed["triggers"]["deleted"][0]["path"], "/hi-python3");
    assert_eq!(deployed["triggers"]["added"][0]["path"], "/greet");
    let after = home.json(&["fn", "get", "hi-python3"]);
    assert_eq!(after["config"]["memory_mb"], 256);
    assert_eq!(after["config"]["environment"]["GREETING"], "Hi");
    assert_eq!(after["code"]["sha256"], before["code"]["sha256"], "the manifest is not part of the code");
    assert_eq!(get(&format!("{}/greet", server.trigger_url)).0, 200);
    assert_eq!(get(&format!("{}/hi-python3", server.trigger_url)).0, 404);
    let triggers = home.json(&["trigger", "list"]);
    assert_eq!(triggers.as_array().unwrap().len(), 3, "one trigger per function: {triggers}");

    // A trigger path another function holds: refused before anything changes.
    let node = work.join("hi-nodejs");
    let taken = std::fs::read_to_string(node.join("hearth.toml"))
        .unwrap()
        .replace("path = \"/hi-nodejs\"", "path = \"/greet\"");
    std::fs::write(node.join("hearth.toml"), taken).unwrap();
    let out = home.cmd().current_dir(&node).args(["deploy"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("belongs to function hi-python3"), "{err}");
    assert_eq!(get(&format!("{}/hi-nodejs", server.trigger_url)).0, 200, "its own trigger is still there");
    assert_eq!(home.json(&["fn", "versions", "hi-nodejs"]).as_array().unwrap().len(), 1, "nothing was deployed");

    // What cannot work is refused before anything is sent, with what to do next.
    let out = home.cmd().current_dir(&work).args(["deploy"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hearth new"), "{out:?}");
    let out = home.cmd().current_dir(&work).args(["new", "hi-python3", "--runtime", "python3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"), "{out:?}");
    let out = home.cmd().current_dir(&work).args(["new", "x", "--runtime", "cobol"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown template is a usage error");
    std::fs::write(
        dir.join("hearth.toml"),
        "name = \"hi-python3\"\nruntime = \"python3\"\nhandler = \"main.handler\"\nmemory = 256\n",
    )
    .unwrap();
    let out = home.cmd().current_dir(&dir).args(["deploy"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("unknown field `memory`") && err.contains("hearth.toml"), "{err}");
    assert_eq!(home.json(&["fn", "versions", "hi-python3"]).as_array().unwrap().len(), 2, "nothing was deployed");
}
