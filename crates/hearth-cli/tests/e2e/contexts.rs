//! Contexts: two servers on one machine, each with its own context; switching; an admin
//! token recovered from the data directory.

use super::*;

fn contexts(home: &Home) -> Vec<Value> {
    home.json(&["context", "list"]).as_array().unwrap().clone()
}

fn names_of(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect()
}

fn current(home: &Home) -> String {
    let list = contexts(home);
    let current: Vec<&Value> = list.iter().filter(|c| c["current"] == true).collect();
    assert_eq!(current.len(), 1, "one current context: {list:?}");
    current[0]["name"].as_str().unwrap().to_owned()
}

#[test]
fn two_servers_each_keep_their_context_and_token() {
    let home = Home::new();
    let first = home.up();
    assert!(first.banner.contains("context \"local\""), "{}", first.banner);
    let second_data = home.path().join("data2");
    let mut up_second = home.cmd();
    up_second.args(["up", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&second_data);
    let second = home.spawn_up(&mut up_second);
    assert!(
        second.banner.contains("context \"local-2\"") && second.banner.contains("it was \"local\""),
        "{}",
        second.banner
    );

    let list = contexts(&home);
    let urls: Vec<(&str, &str, bool)> = list
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["url"].as_str().unwrap(), c["has_token"].as_bool().unwrap()))
        .collect();
    assert_eq!(urls, [("local", first.url.as_str(), true), ("local-2", second.url.as_str(), true)]);
    assert_eq!(current(&home), "local-2", "the newest server is current");
    let listing = home.ok(&["context", "list"]);
    assert!(
        !listing.contains("hth_") && !home.ok(&["context", "list", "--json"]).contains("hth_"),
        "tokens are never listed"
    );

    // Each context reaches its own server with its own token.
    let example = repo().join("examples/python-hello");
    let example = example.to_str().unwrap();
    let deploy = ["fn", "deploy", example, "--name", "hello", "--runtime", "python3", "--handler", "main.handler"];
    home.ok(&[&deploy[..], &["--context", "local"]].concat());
    assert_eq!(names_of(&home.json(&["fn", "list", "--context", "local"])), ["hello"]);
    assert!(names_of(&home.json(&["fn", "list"])).is_empty(), "the current context is the second server");
    home.ok(&["context", "use", "local"]);
    assert_eq!(current(&home), "local");
    assert_eq!(names_of(&home.json(&["fn", "list"])), ["hello"]);
    let out = home.cmd().args(["fn", "list", "--json"]).env("HEARTH_CONTEXT", "local-2").output().unwrap();
    assert!(out.status.success());
    assert!(names_of(&serde_json::from_slice(&out.stdout).unwrap()).is_empty(), "HEARTH_CONTEXT selects too");

    // A restart on another port moves only its own context.
    second.terminate();
    let second = home.spawn_up(&mut up_second);
    let list = contexts(&home);
    assert_eq!(list[1]["url"], second.url.as_str(), "the restarted server's context follows it");
    assert_eq!(list[0]["url"], first.url.as_str());
    assert_eq!(current(&home), "local", "a restart does not switch contexts");
    assert!(home.run(&["fn", "list", "--context", "local-2"]).status.success());

    // An unknown context is an error naming the known ones.
    let out = home.run(&["fn", "list", "--context", "nosuch"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("\"nosuch\"") && err.contains("local, local-2"), "{err}");

    // Adding refuses a taken name and a non-HTTP URL; a token can come from stdin.
    let out = home.run(&["context", "add", "local", "--url", &first.url]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--replace"));
    let out = home.run(&["context", "add", "ftp", "--url", "ftp://127.0.0.1"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("http://"));
    let token = admin_token_of(&home, "local");
    let mut add = home.cmd();
    add.args(["context", "add", "again", "--url", &first.url, "--token-stdin"]).stdin(Stdio::piped());
    let mut child = add.stdout(Stdio::null()).spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), format!("{token}\n").as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(names_of(&home.json(&["fn", "list", "--context", "again"])), ["hello"]);
    home.ok(&["context", "delete", "again"]);
    assert_eq!(contexts(&home).len(), 2);
    drop(second);
}

#[test]
fn a_lost_admin_token_is_recovered_from_the_data_directory() {
    let home = Home::new();
    let server = home.up();
    let lost = admin_token_of(&home, "local");
    // The client file is gone (a new laptop, a wiped home).
    std::fs::remove_file(home.path().join("client.toml")).unwrap();
    let out = home.run(&["fn", "list"]);
    assert!(!out.status.success(), "without a token the server refuses");

    let data = home.path().join("data");
    let recovered = home.json(&["token", "recover", "--data-dir", data.to_str().unwrap(), "--url", &server.url]);
    let secret = recovered["token"].as_str().unwrap();
    assert!(secret.starts_with("hth_") && secret != lost);
    assert_eq!(recovered["context"], "local");
    assert!(home.run(&["fn", "list"]).status.success(), "the running server accepts the new token at once");
    let tokens = home.json(&["token", "list"]);
    assert_eq!(tokens.as_array().unwrap().len(), 2, "the old token is not revoked: {tokens}");

    // Recovering again updates the context with the server's URL instead of adding one.
    home.json(&["token", "recover", "--data-dir", data.to_str().unwrap(), "--url", &server.url]);
    assert_eq!(contexts(&home).len(), 1);
    let out = home.run(&["token", "recover", "--data-dir", home.path().join("nodata").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Hearth server data"), "{out:?}");
    assert_eq!(out.status.code(), Some(1));
    // A folder with some other program's metadata.db is not touched.
    let foreign = home.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("metadata.db"), b"not hearth's").unwrap();
    let out = home.run(&["token", "recover", "--data-dir", foreign.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Hearth server data"), "{out:?}");
    assert_eq!(std::fs::read(foreign.join("metadata.db")).unwrap(), b"not hearth's");
}

/// The token of context `name` in the client file.
fn admin_token_of(home: &Home, name: &str) -> String {
    let text = std::fs::read_to_string(home.path().join("client.toml")).unwrap();
    let file: toml::Table = toml::from_str(&text).unwrap();
    file["contexts"][name]["token"].as_str().unwrap().to_owned()
}
