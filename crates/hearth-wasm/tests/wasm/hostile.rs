//! A hostile `wasi:http` component (`tests/guests/hostile`) tries, one request each, what a
//! function must not do: hoard host memory in resources, send HTTP, open a socket, read
//! the host's files, see the server's environment, take 64 MiB of host memory in one call.
//! Every attempt fails or is cut short, and the next request is served.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hearth_wasm::{Program, Run, RunFailure};

use crate::support::{Fixture, run_with};

async fn ask(program: &Program, run: &Run, path: &str) -> Result<String, RunFailure> {
    let request = http::Request::get(format!("http://fn.local{path}")).body(Bytes::new()).unwrap();
    program.run_http(run, request).await.map(|r| String::from_utf8_lossy(r.body()).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_component_gets_nothing_it_must_not_have() {
    let fx = Fixture::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests/hostile");
    let module = hearth_wasm::test_support::build(&root, "wasm32-wasip2", "hostile.wasm");
    let (program, _) = fx.programs.load("hostile", "main.wasm", &module).await.unwrap();
    let (mut run, _) = run_with(128, Duration::from_secs(10));
    run.env = Arc::new([("ONLY_THIS".into(), "1".into())]);

    // Header sets live in the host: a run may hold a bounded number, not gigabytes.
    let started = Instant::now();
    let fields = ask(&program, &run, "/fields").await;
    println!("/fields: {fields:?}");
    match fields {
        Ok(answer) => {
            let held: usize =
                answer.strip_prefix("refused after ").and_then(|r| r.split(':').next()?.parse().ok()).unwrap();
            assert!(held <= 1024, "{answer}");
        }
        Err(RunFailure::Trap(message)) => assert!(message.contains("resource"), "{message}"),
        Err(other) => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "cut short, not run to exhaustion");
    let outgoing = ask(&program, &run, "/outgoing").await.unwrap();
    assert!(outgoing.starts_with("denied") && outgoing.contains("HttpRequestDenied"), "{outgoing}");
    let tcp = ask(&program, &run, "/tcp").await.unwrap();
    assert!(tcp.starts_with("denied"), "{tcp}");
    let file = ask(&program, &run, "/file").await.unwrap();
    assert!(file.starts_with("denied"), "{file}");
    assert_eq!(ask(&program, &run, "/env").await.unwrap(), "ONLY_THIS", "only its own variables");
    let random = ask(&program, &run, "/random").await;
    println!("/random: {random:?}");
    assert!(!matches!(&random, Ok(answer) if answer.starts_with("GOT")), "{random:?}");
    // None of it harmed the program: the next request is served.
    assert_eq!(ask(&program, &run, "/env").await.unwrap(), "ONLY_THIS");
    assert_eq!(run.memory.used_bytes(), 0);
}
