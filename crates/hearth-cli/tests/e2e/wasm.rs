//! WebAssembly functions as a user deploys them: a `.wasm` file built from the examples,
//! deployed by the CLI as it is, invoked by the CLI and through an HTTP trigger; and the
//! server's memory after 10,000 invocations.

use std::time::Instant;

use super::*;

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn wasm_files_deploy_as_they_are_and_answer_and_memory_stays_flat() {
    let hello = hearth_wasm::test_support::example("wasm-hello", "wasm32-wasip1", "wasm-hello.wasm");
    let web = hearth_wasm::test_support::example("wasm-http", "wasm32-wasip2", "wasm_http.wasm");
    let home = Home::new();
    let server = home.up();
    let out = home.run(&["fn", "deploy", hello.to_str().unwrap(), "--name", "hi", "--runtime", "wasm"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains(": 1 file, "), "a single module is packaged as one file: {said}");
    let config = home.json(&["fn", "get", "hi"]);
    assert_eq!(config["config"]["handler"], "main.wasm", "{config}");
    let answer = home.ok(&["invoke", "hi", "--data", r#"{"name": "wasm"}"#]);
    assert!(answer.contains("Hello, wasm!"), "{answer}");

    home.ok(&["fn", "deploy", web.to_str().unwrap(), "--name", "web", "--runtime", "wasm"]);
    home.ok(&["trigger", "add", "http", "web", "--path", "/web"]);
    home.ok(&["trigger", "add", "http", "hi", "--path", "/hi"]);
    let r = reqwest::blocking::get(format!("{}/web/hello?q=1", server.trigger_url)).unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-served-by"], "wasm-http");
    let seen: Value = r.json().unwrap();
    assert_eq!(seen["path"], "/web/hello?q=1");

    // 10,000 invocations of both after a warm-up: the server's memory holds the two loaded
    // programs, not something per invocation.
    let _heavy = heavy_or_timed();
    let hit = |n: usize| {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let base = server.trigger_url.clone();
                std::thread::spawn(move || {
                    let http = reqwest::blocking::Client::new();
                    for i in 0..n / 4 {
                        let path = if (i + t) % 2 == 0 { "web/x" } else { "hi" };
                        let r = http.get(format!("{base}/{path}")).send().unwrap();
                        assert!(r.status().is_success(), "{path}: {}", r.status());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    };
    hit(1_000);
    let before = rss_kb(server.child.id());
    let started = Instant::now();
    hit(10_000);
    let after = rss_kb(server.child.id());
    println!(
        "server RSS: {} MB after 1,000 warm-up invocations, {} MB after 10,000 more ({:.1} s)",
        before / 1024,
        after / 1024,
        started.elapsed().as_secs_f64()
    );
    assert!(after < before + 16 * 1024, "the server grew from {before} kB to {after} kB over 10,000 invocations");
}
