//! SIGKILL at chosen points of deploys, uploads and invocations: the store and code store stay consistent.

use super::*;

/// Incompressible bytes, reproducibly (xorshift): packages whose upload takes a while.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Files under `dir` (recursively) whose name satisfies `pred`.
fn files_named(dir: &Path, pred: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if pred(&e.file_name().to_string_lossy()) {
                out.push(p.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out
}

/// SIGKILL in the middle of the work a server does, five times on one data directory, each
/// at another point reached by waiting on what the server has done (not on time): while an
/// upload's body is arriving, while a package is being written, between a package landing and
/// its version being written, with invocations in flight, and while a new version's package is
/// being unpacked for a cold start; each time with concurrent callers, a deploy and an upload
/// under way. After each kill the store is sound, every version's package is there and matches
/// its name, nothing half-written is left in the code store or the code cache, the killed
/// server's cgroups and mounts are gone, and every function answers.
#[test]
fn sigkill_mid_deploy_upload_and_invocations_leaves_a_consistent_store() {
    use std::io::Write;
    let home = Home::new();
    let data = home.path().join("data");
    let code_dir = data.join("code");
    // The code cache is on the server's instance volume, mounted only in its own namespace.
    let cache_dir = data.join("volume/cache");
    let packages = code_dir.join("packages/sha256");
    let slow = home.path().join("slow");
    std::fs::create_dir_all(&slow).unwrap();
    std::fs::write(
        slow.join("main.py"),
        "import time\n\ndef handler(event, context):\n    time.sleep(event.get('s', 0))\n    return 'slept'\n",
    )
    .unwrap();
    let big = home.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    let deploy = |dir: &Path, name: &str| {
        let mut c = home.cmd();
        c.args(["fn", "deploy", dir.to_str().unwrap(), "--name", name, "--runtime", "python3"]).args([
            "--handler",
            "main.handler",
            "--timeout",
            "30",
        ]);
        c
    };
    let write_big = |round: u64| {
        std::fs::write(big.join("main.py"), format!("def handler(event, context):\n    return {{'round': {round}}}\n"))
            .unwrap();
        std::fs::write(big.join("blob.bin"), noise(round, 32 << 20)).unwrap();
    };
    let mut server = home.up();
    assert!(deploy(&slow, "slow").status().unwrap().success());
    write_big(100);
    assert!(deploy(&big, "big").status().unwrap().success());
    let token = std::fs::read_to_string(home.path().join("client.toml")).unwrap();
    let token = token.lines().find_map(|l| l.strip_prefix("token = ")).unwrap().trim_matches('"').to_owned();
    let sandboxed = !cgroups_of(server.child.id()).is_empty();

    let points =
        ["upload body arriving", "package being written", "package stored", "invocations in flight", "unpacking"];
    for (round, point) in points.iter().enumerate() {
        let round = round as u64;
        let known: Vec<PathBuf> = files_named(&packages, &|_| true);
        // Concurrent callers of the slow function, until the server is gone.
        let callers: Vec<_> = (0..6)
            .map(|_| {
                let (url, token) = (server.url.clone(), token.clone());
                std::thread::spawn(move || {
                    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
                    let mut answered = 0;
                    while http
                        .post(format!("{url}/v1/functions/slow/invoke"))
                        .bearer_auth(&token)
                        .body(r#"{"s": 0.3}"#)
                        .send()
                        .is_ok_and(|r| r.status().is_success())
                    {
                        answered += 1;
                    }
                    answered
                })
            })
            .collect();
        // A package upload on a connection of our own: half the body, a signal, the rest.
        let upload = hearth_blob::fixtures::raw_zip(&[hearth_blob::fixtures::RawEntry::file(
            "data.bin",
            &noise(1000 + round, 24 << 20),
        )]);
        let (half_sent, half_sent_rx) = mpsc::channel();
        let uploader = {
            let (url, token) = (server.url.clone(), token.clone());
            std::thread::spawn(move || {
                let mut s = raw_connect(&url);
                let head = format!(
                    "POST /v1/packages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/zip\r\nContent-Length: {}\r\n\r\n",
                    upload.len()
                );
                let (first, rest) = upload.split_at(upload.len() / 2);
                let _ = s.write_all(head.as_bytes()).and_then(|()| s.write_all(first));
                let _ = half_sent.send(());
                let _ = s.write_all(rest);
                read_until_closed(&mut s, Duration::from_secs(30)).0
            })
        };
        // A new version of the big function: the CLI zips 32 MiB, uploads it and deploys.
        write_big(round);
        let mut deployer = deploy(&big, "big").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let new_package = || files_named(&packages, &|n| n.ends_with(".zip")).iter().any(|p| !known.contains(p));
        let reached = match round {
            0 => half_sent_rx.recv_timeout(Duration::from_secs(60)).is_ok(),
            1 => wait_for(Duration::from_secs(60), || !files_named(&packages, &|n| n.contains('#')).is_empty()),
            2 => wait_for(Duration::from_secs(60), new_package),
            3 => wait_for(Duration::from_secs(60), || {
                let list = home.json(&["fn", "instances", "slow"]);
                list.as_array().unwrap().iter().filter(|i| i["state"] == "busy").count() >= 3
            }),
            _ => {
                assert!(deployer.wait().unwrap().success(), "the deploy before the cold start");
                let (url, token) = (server.url.clone(), token.clone());
                std::thread::spawn(move || {
                    let _ = reqwest::blocking::Client::new()
                        .post(format!("{url}/v1/functions/big/invoke"))
                        .bearer_auth(token)
                        .body("{}")
                        .send();
                });
                wait_for(Duration::from_secs(60), || {
                    !files_named(&server.view(&cache_dir), &|n| n.starts_with(".unpack-")).is_empty()
                })
            }
        };
        let old_pid = server.child.id();
        let unpacks_cut = files_named(&server.view(&cache_dir), &|n| n.starts_with(".unpack-")).len();
        server.kill();
        let _ = deployer.wait();
        let _ = uploader.join();
        for c in callers {
            c.join().unwrap();
        }
        let cut_short = files_named(&code_dir, &|n| n.contains('#')).len() + unpacks_cut;
        eprintln!("round {round}: killed at '{point}' (reached: {reached}; {cut_short} writes cut short)");

        // The store as the kill left it.
        let store = hearth_store::SqliteStore::open(&data.join("metadata.db")).unwrap();
        assert_eq!(store.integrity_problems().unwrap(), Vec::<String>::new(), "round {round}: the database is sound");
        drop(store);

        server = home.up();
        assert!(server.banner.contains("listening on"), "round {round}: restarted on the same data directory");
        let half_done = files_named(&code_dir, &|n| n.contains('#'));
        assert!(half_done.is_empty(), "round {round}: unfinished uploads left in the code store: {half_done:?}");
        assert!(server.view(&cache_dir).is_dir(), "round {round}: the restarted server's code cache is on its volume");
        let unpacking = files_named(&server.view(&cache_dir), &|n| n.starts_with(".unpack-"));
        assert!(unpacking.is_empty(), "round {round}: unfinished unpacks left in the code cache: {unpacking:?}");
        // Every stored package is named by its sha256.
        for p in files_named(&packages, &|_| true) {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let digest = hearth_types::CodeDigest::of(&std::fs::read(&p).unwrap());
            assert_eq!(name, format!("{}.zip", digest.as_str()), "round {round}: a package that is not its name");
        }
        // Every version of every function points at a stored package; numbers have no gap.
        let list = home.json(&["fn", "list"]);
        let names: Vec<String> = list.as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().into()).collect();
        assert_eq!(names.len(), 2, "round {round}: {list}");
        for (f, name) in list.as_array().unwrap().iter().zip(&names) {
            let versions = home.json(&["fn", "versions", name]);
            let versions = versions.as_array().unwrap();
            let mut numbers: Vec<u64> = versions.iter().map(|v| v["number"].as_u64().unwrap()).collect();
            numbers.sort();
            assert_eq!(numbers, (1..=versions.len() as u64).collect::<Vec<_>>(), "round {round}: {name}");
            assert_eq!(f["latest_version"].as_u64(), Some(versions.len() as u64), "round {round}: {name}");
            for v in versions {
                let sha = v["code"]["sha256"].as_str().unwrap();
                assert!(
                    packages.join(format!("{sha}.zip")).is_file(),
                    "round {round}: {name} v{} has no package",
                    v["number"]
                );
            }
            // And answers.
            let r = home.json(&["invoke", name]);
            assert!(!r["result"].is_null(), "round {round}: {name} answered nothing: {r}");
        }
        // Nothing of the killed server's sandboxes is left once the new one has swept.
        if sandboxed {
            assert!(
                wait_for(Duration::from_secs(10), || cgroups_of(old_pid).is_empty()),
                "round {round}: the killed server's cgroups are still there: {:?}",
                cgroups_of(old_pid)
            );
            let left = instance_mounts(&home.path().join("data"));
            assert!(left.is_empty(), "round {round}: an instance root is still mounted: {left:?}");
        }
    }
    server.terminate();
}
