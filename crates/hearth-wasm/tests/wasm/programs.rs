//! Loading and running: WAT written here for the limits, and the repository's examples
//! (built for wasm32-wasip1/wasip2) for what users deploy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use hearth_wasm::{LoadError, LoadSource, MemoryBudget, ProgramKind, RunFailure};

use crate::support::{Fixture, example, run_with};

const ECHO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 100) "echoing\n")
  (func (export "_start") (local $n i32)
    (i32.store (i32.const 16) (i32.const 100))
    (i32.store (i32.const 20) (i32.const 8))
    (drop (call $write (i32.const 2) (i32.const 16) (i32.const 1) (i32.const 24)))
    (loop $more
      (i32.store (i32.const 0) (i32.add (i32.const 1024) (local.get $n)))
      (i32.store (i32.const 4) (i32.sub (i32.const 64000) (local.get $n)))
      (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $n (i32.add (local.get $n) (i32.load (i32.const 8))))
      (br_if $more (i32.ne (i32.load (i32.const 8)) (i32.const 0))))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (local.get $n))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// Adds one to a byte of its data segment, to a word of a far page (where a Rust module's
/// stack is) and to a global, and prints the three: "111" when every run starts afresh.
const COUNTER: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 17)
  (data (i32.const 0) "0")
  (global $g (mut i32) (i32.const 0))
  (func (export "_start")
    (i32.store8 (i32.const 0) (i32.add (i32.load8_u (i32.const 0)) (i32.const 1)))
    (i32.store (i32.const 1000000) (i32.add (i32.load (i32.const 1000000)) (i32.const 1)))
    (global.set $g (i32.add (global.get $g) (i32.const 1)))
    (i32.store8 (i32.const 200) (i32.load8_u (i32.const 0)))
    (i32.store8 (i32.const 201) (i32.add (i32.const 48) (i32.load (i32.const 1000000))))
    (i32.store8 (i32.const 202) (i32.add (i32.const 48) (global.get $g)))
    (i32.store (i32.const 16) (i32.const 200))
    (i32.store (i32.const 20) (i32.const 3))
    (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))))"#;

const LOOP: &str = r#"(module (func (export "_start") (loop $l (br $l))))"#;

const GROW: &str = r#"(module (memory 1) (func (export "_start") (drop (memory.grow (i32.const 4096)))))"#;

const TRAP: &str = r#"(module (func $inner unreachable) (func (export "_start") call $inner))"#;

const EXIT: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 3))))"#;

/// Writes 64 KiB to stdout 120 times: 7.5 MiB, over the result limit.
const FLOOD: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start") (local $i i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 65536))
    (loop $more
      (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 120))))))"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_module_gets_its_event_on_stdin_and_answers_on_stdout() {
    let fx = Fixture::new();
    let (program, source) = fx.load_wat("echo", ECHO).await.unwrap();
    assert_eq!((program.kind(), source), (ProgramKind::Event, LoadSource::Compiled));
    let (run, logs) = run_with(128, Duration::from_secs(10));
    let out = program.run_event(&run, Bytes::from_static(br#"{"hello":"wasm"}"#)).await.unwrap();
    assert_eq!(out, Bytes::from_static(br#"{"hello":"wasm"}"#));
    assert_eq!(*logs.lock().unwrap(), ["echoing"]);
    assert_eq!(run.memory.used_bytes(), 0, "the run's memory is given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_starts_from_the_module_not_from_the_last_run() {
    let fx = Fixture::new();
    let (program, _) = fx.load_wat("counter", COUNTER).await.unwrap();
    let (run, _) = run_with(128, Duration::from_secs(10));
    for n in 1..=5 {
        let out = program.run_event(&run, Bytes::new()).await.unwrap();
        assert_eq!(out, Bytes::from_static(b"111"), "run {n} saw what an earlier run wrote");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_is_compiled_once_then_shared_then_mapped_from_disk() {
    let fx = Fixture::new();
    let (first, a) = fx.load_wat("echo", ECHO).await.unwrap();
    let (_second, b) = fx.load_wat("echo", ECHO).await.unwrap();
    assert_eq!((a, b), (LoadSource::Compiled, LoadSource::Memory));
    drop((first, _second));
    let (_, c) = fx.load_wat("echo", ECHO).await.unwrap();
    assert_eq!(c, LoadSource::DiskCache, "once nothing holds it, it is mapped from the cache again");
    // Another server on the same data directory finds it too.
    let (_, d) = fx.reopen().load_wat("echo", ECHO).await.unwrap();
    assert_eq!(d, LoadSource::DiskCache);
    // A damaged artefact is compiled again, not trusted.
    for entry in std::fs::read_dir(fx.cache_dir()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"\x7fELF garbage").unwrap();
    }
    let fresh = fx.reopen();
    let (program, e) = fresh.load_wat("echo", ECHO).await.unwrap();
    assert_eq!(e, LoadSource::Compiled);
    let (run, _) = run_with(128, Duration::from_secs(10));
    assert_eq!(program.run_event(&run, Bytes::from_static(b"x")).await.unwrap(), Bytes::from_static(b"x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_starts_of_one_program_share_one_compile() {
    let fx = Fixture::new();
    let path = fx.write_wat("echo", ECHO);
    let loads = (0..8).map(|_| fx.programs.load("digest-echo", "main.wasm", &path));
    let sources: Vec<_> = join_all(loads).await.into_iter().map(|r| r.unwrap().1).collect();
    assert_eq!(sources.iter().filter(|s| **s == LoadSource::Compiled).count(), 1, "{sources:?}");
    assert_eq!(sources.iter().filter(|s| **s == LoadSource::Memory).count(), 7, "{sources:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_loops_forever_stops_at_its_timeout_and_the_next_run_is_fine() {
    let fx = Fixture::new();
    let (looping, _) = fx.load_wat("loop", LOOP).await.unwrap();
    let timeout = Duration::from_millis(300);
    let (run, _) = run_with(128, timeout);
    let started = Instant::now();
    // Several at once on two worker threads: each yields at every tick, so all are stopped.
    let runs: Vec<_> = (0..4).map(|_| looping.run_event(&run, Bytes::new())).collect();
    for outcome in join_all(runs).await {
        assert_eq!(outcome, Err(RunFailure::TimedOut(timeout)));
    }
    assert!(started.elapsed() < Duration::from_secs(5), "stopped near the timeout, took {:?}", started.elapsed());
    let (echo, _) = fx.load_wat("echo", ECHO).await.unwrap();
    assert_eq!(echo.run_event(&run, Bytes::from_static(b"after")).await.unwrap(), Bytes::from_static(b"after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_memory_past_the_function_memory_size_fails_clearly() {
    let fx = Fixture::new();
    let (grow, _) = fx.load_wat("grow", GROW).await.unwrap();
    let (run, _) = run_with(128, Duration::from_secs(10));
    let Err(RunFailure::OutOfMemory(message)) = grow.run_event(&run, Bytes::new()).await else {
        panic!("a 256 MiB growth in 128 MB must fail");
    };
    assert!(message.contains("memory size of 128 MB"), "{message}");
    assert_eq!(run.memory.used_bytes(), 0);
    // With room, the same growth is fine.
    let (roomy, _) = run_with(512, Duration::from_secs(10));
    assert_eq!(grow.run_event(&roomy, Bytes::new()).await, Ok(Bytes::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_exits_and_floods_are_reported_and_harm_nothing() {
    let fx = Fixture::new();
    let (run, _) = run_with(128, Duration::from_secs(10));
    let (trap, _) = fx.load_wat("trap", TRAP).await.unwrap();
    let Err(RunFailure::Trap(message)) = trap.run_event(&run, Bytes::new()).await else { panic!("unreachable traps") };
    assert!(message.contains("unreachable"), "{message}");
    let (exit, _) = fx.load_wat("exit", EXIT).await.unwrap();
    assert!(matches!(exit.run_event(&run, Bytes::new()).await, Err(RunFailure::Exit { code: 3, .. })));
    let (flood, _) = fx.load_wat("flood", FLOOD).await.unwrap();
    assert_eq!(
        flood.run_event(&run, Bytes::new()).await,
        Err(RunFailure::ResultTooLarge(hearth_wasm::MAX_RESULT_BYTES))
    );
    assert_eq!(run.memory.used_bytes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_a_runnable_program_is_refused_at_load() {
    let fx = Fixture::new();
    let not_wasm = fx.write_bytes("elf", b"\x7fELF\x02\x01\x01\0rest of it");
    assert!(matches!(fx.programs.load("d1", "main.wasm", &not_wasm).await, Err(LoadError::NotWasm(_))));
    let broken = fx.write_bytes("broken", b"\0asm\x01\0\0\0\xff\xff");
    assert!(matches!(fx.programs.load("d2", "main.wasm", &broken).await, Err(LoadError::Compile(_))));
    let Err(LoadError::Link(message)) = fx.load_wat("nostart", r#"(module (func (export "main")))"#).await else {
        panic!("a module without _start is not a command");
    };
    assert!(message.contains("_start"), "{message}");
    let imports = r#"(module (import "env" "open_socket" (func)) (func (export "_start")))"#;
    let Err(LoadError::Link(message)) = fx.load_wat("imports", imports).await else {
        panic!("imports beyond WASI are refused");
    };
    assert!(message.contains("open_socket"), "{message}");
    // What does not fit the engine (a second memory) fails to link, and is remembered: the
    // next cold start fails at once, without compiling again.
    let two = r#"(module (memory 1) (memory 1) (func (export "_start")))"#;
    assert!(matches!(fx.load_wat("two-memories", two).await, Err(LoadError::Link(_))));
    for entry in std::fs::read_dir(fx.cache_dir()).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    assert!(matches!(fx.load_wat("two-memories", two).await, Err(LoadError::Link(_))));
    assert_eq!(std::fs::read_dir(fx.cache_dir()).unwrap().count(), 0, "nothing was compiled again");
    let missing = fx.dir.path().join("nothing-here.wasm");
    assert!(matches!(fx.programs.load("d3", "main.wasm", &missing).await, Err(LoadError::Read { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_event_example_answers() {
    let fx = Fixture::new();
    let module = example("wasm-hello", "wasm32-wasip1", "wasm-hello.wasm");
    let (program, _) = fx.programs.load("hello", "main.wasm", &module).await.unwrap();
    let (mut run, logs) = run_with(128, Duration::from_secs(10));
    run.env = Arc::new([("AWS_LAMBDA_FUNCTION_NAME".into(), "greeter".into())]);
    let out = program.run_event(&run, Bytes::from_static(br#"{"name":"Ada"}"#)).await.unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(answer["message"], "Hello, Ada!");
    assert_eq!(answer["function"], "greeter");
    assert_eq!(*logs.lock().unwrap(), ["greeting Ada"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_function_built_with_wasi_libc_answers_and_fails_by_its_exit_status() {
    let fx = Fixture::new();
    let module = fx.write_bytes("c", &hearth_wasm::test_support::c_module(fx.dir.path()));
    let (program, _) = fx.programs.load("c", "main.wasm", &module).await.unwrap();
    let (mut run, logs) = run_with(128, Duration::from_secs(10));
    run.env = Arc::new([("AWS_LAMBDA_FUNCTION_NAME".into(), "c-hello".into())]);
    let out = program.run_event(&run, Bytes::from_static(br#"{"x":1}"#)).await.unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!((answer["language"].as_str(), answer["event_bytes"].as_u64()), (Some("C"), Some(7)));
    assert_eq!(answer["function"], "c-hello");
    assert_eq!(*logs.lock().unwrap(), ["C got 7 bytes"]);
    let failed = program.run_event(&run, Bytes::from_static(br#"{"fail":true}"#)).await;
    assert!(matches!(failed, Err(RunFailure::Exit { code: 2, .. })), "{failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_billed_the_cpu_it_spent_and_no_more_than_its_time() {
    let fx = Fixture::new();
    let (looping, _) = fx.load_wat("loop", LOOP).await.unwrap();
    let timeout = Duration::from_millis(200);
    let (run, _) = run_with(128, timeout);
    assert_eq!(looping.run_event(&run, Bytes::new()).await, Err(RunFailure::TimedOut(timeout)));
    let spent = run.cpu.total();
    assert!(spent > Duration::ZERO, "a loop spends CPU");
    assert!(spent <= timeout + hearth_wasm::TICK * 4, "never more than it ran: {spent:?}");
    let (echo, _) = fx.load_wat("echo", ECHO).await.unwrap();
    let (run, _) = run_with(128, Duration::from_secs(10));
    echo.run_event(&run, Bytes::from_static(b"x")).await.unwrap();
    assert!(run.cpu.total() > Duration::ZERO && run.cpu.total() < spent, "{:?}", run.cpu.total());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wasi_http_example_serves_requests_both_ways() {
    let fx = Fixture::new();
    let component = example("wasm-http", "wasm32-wasip2", "wasm_http.wasm");
    let (program, _) = fx.programs.load("web", "main.wasm", &component).await.unwrap();
    assert_eq!(program.kind(), ProgramKind::Http);
    let (run, logs) = run_with(128, Duration::from_secs(10));
    let get = http::Request::get("http://fn.local/hello/there?x=1")
        .header("user-agent", "probe/1")
        .body(Bytes::new())
        .unwrap();
    let response = program.run_http(&run, get).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-served-by"], "wasm-http");
    assert_eq!(response.headers()["set-cookie"], "seen=1; Path=/");
    let seen: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(seen["path"], "/hello/there?x=1");
    assert_eq!(seen["user_agent"], "probe/1");
    let binary: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let post = http::Request::post("http://fn.local/upload").body(Bytes::from(binary.clone())).unwrap();
    let response = program.run_http(&run, post).await.unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.body().as_ref(), binary.as_slice(), "a binary body survives both ways");
    assert!(logs.lock().unwrap().iter().any(|l| l == "POST /upload: 0 header(s), 300000 byte(s)"));
    assert_eq!(run.memory.used_bytes(), 0);
    let memory = MemoryBudget::new(1);
    let tight = hearth_wasm::Run { memory, ..run.clone() };
    let get = http::Request::get("http://fn.local/").body(Bytes::new()).unwrap();
    assert!(matches!(program.run_http(&tight, get).await, Err(RunFailure::OutOfMemory(_))));
}
