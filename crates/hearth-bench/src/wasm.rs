//! `hearth-bench wasm`: WebAssembly functions behind HTTP triggers. Cold starts of modules
//! never seen (a compile) and of modules in the disk cache (a load), end to end; warm
//! latency at concurrency 1 and throughput at 64 against a bare hyper server in the same
//! run; the memory one loaded module holds.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hearth_agent::ProcessDriver;
use hearth_blob::fixtures::deflated_zip;
use hearth_types::FunctionSpec;
use hearth_types::api::TriggerSpec;

use crate::harness::{Bench, ServerSetup, baseline_server};
use crate::{Figure, figure, percentile};

#[derive(clap::Args)]
pub struct WasmArgs {
    /// Cold starts measured per kind (compile, disk cache).
    #[arg(long, default_value_t = 20)]
    pub cold_starts: usize,
    /// Requests per warm figure (the throughput figure is steadier over a few seconds).
    #[arg(long, default_value_t = 20000)]
    pub requests: usize,
}

/// Rounds of the throughput figure, Hearth's and the bare server's in turns.
const ROUNDS: usize = 5;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// An event module answering the trigger's hello body; `tag` makes each a different module
/// (a different digest: a compile of its own).
fn hello_module(tag: &str) -> Vec<u8> {
    let answer = r#"{\"statusCode\":200,\"body\":\"Hello FaaS\"}"#;
    let len = answer.len() - answer.matches('\\').count();
    wat::parse_str(format!(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 64) "{answer}")
          (data (i32.const 4096) "{tag}")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 64))
            (i32.store (i32.const 4) (i32.const {len}))
            (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
    ))
    .expect("valid WAT")
}

async fn deploy(b: &Bench, name: &str, module: &[u8], concurrency: u32) -> Result<()> {
    let package = b.client.upload_package(deflated_zip(&[("main.wasm", module)])).await?;
    let spec = FunctionSpec {
        runtime: "wasm".into(),
        code_sha256: Some(package.sha256.to_string()),
        memory_mb: Some(128),
        concurrency: Some(concurrency.into()),
        max_instances: Some(4),
        timeout_s: Some(30),
        ..Default::default()
    };
    b.client.put_function(name, &spec).await?;
    let trigger =
        TriggerSpec { kind: None, function: name.into(), path: format!("/{name}"), methods: vec![], auth: None };
    b.client.create_trigger(&trigger).await?;
    Ok(())
}

/// The first request to `name`, which must be a cold start from `source`.
async fn first(b: &Bench, name: &str, source: &str) -> Result<Duration> {
    let t = Instant::now();
    let r = b.http.get(format!("{}/{name}", b.url)).send().await?;
    let took = t.elapsed();
    let seen = r.headers().get("x-hearth-start-source").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body = r.bytes().await?;
    if &body[..] != b"Hello FaaS" || seen != source {
        bail!("{name}: expected a cold start from {source}, got {seen:?}: {}", String::from_utf8_lossy(&body));
    }
    Ok(took)
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

pub async fn figures(args: &WasmArgs) -> Result<Vec<Figure>> {
    let b = Bench::start(ServerSetup::new(ProcessDriver::detect(), None)).await?;
    let baseline = b.other(format!("http://{}", baseline_server().await?));
    let n = args.cold_starts;
    // The hop every request pays: one request to a bare server, on the same client.
    let mut hop = vec![];
    for _ in 0..n {
        hop.push(baseline.get("/").await?);
    }
    let mut out = vec![];
    // A warm-up function, so the engine exists before the first measured compile.
    deploy(&b, "warmup", &hello_module("warm-up"), 1).await?;
    first(&b, "warmup", "wasm_compile").await?;

    eprintln!("cold starts of {n} modules never seen (compile), then of the same from the disk cache");
    let modules: Vec<Vec<u8>> = (0..n).map(|i| hello_module(&format!("module {i} {}", std::process::id()))).collect();
    let rss_before = rss_kb();
    let mut compile = vec![];
    for (i, m) in modules.iter().enumerate() {
        deploy(&b, &format!("c{i}"), m, 1).await?;
        compile.push(first(&b, &format!("c{i}"), "wasm_compile").await?);
    }
    let per_module_kb = rss_kb().saturating_sub(rss_before) as f64 / n as f64;
    let artefacts: u64 = std::fs::read_dir(b.data_dir().context("a Hearth server")?.join("cache/.wasm"))?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum::<u64>()
        / (n as u64 + 1);
    for i in 0..n {
        b.client.delete_function(&format!("c{i}")).await?;
    }
    let gateway = b.gateway.as_ref().context("a Hearth server")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Only the warm-up function's instance holds memory.
    while gateway.node_status().memory_committed_mb > 128 {
        if Instant::now() > deadline {
            bail!("the deleted functions' instances did not go");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut cached = vec![];
    for (i, m) in modules.iter().enumerate() {
        deploy(&b, &format!("d{i}"), m, 1).await?;
        cached.push(first(&b, &format!("d{i}"), "wasm_disk_cache").await?);
    }
    for (p, label) in [(0.5, "p50"), (0.99, "p99")] {
        let h = percentile(&mut hop, p);
        let baseline = "one request to a bare hyper server";
        out.push(figure(&format!("cold_start.wasm.compile.{label}"), percentile(&mut compile, p), "ms", baseline, h));
        out.push(figure(&format!("cold_start.wasm.cache.{label}"), percentile(&mut cached, p), "ms", baseline, h));
    }

    eprintln!("warm: {} requests at concurrency 1, then 64", args.requests);
    deploy(&b, "warm", &hello_module("warm"), 64).await?;
    b.load("/warm", 500, 8).await?;
    baseline.load("/", 500, 8).await?;
    let (mut warm, _) = b.load("/warm", args.requests, 1).await?;
    let (mut floor, _) = baseline.load("/", args.requests, 1).await?;
    for (p, label) in [(0.5, "p50"), (0.99, "p99")] {
        let (v, f) = (percentile(&mut warm, p), percentile(&mut floor, p));
        out.push(figure(&format!("warm.wasm.c1.{label}"), v, "ms", "bare axum/hyper server", f));
    }
    // Rounds taken in turns, each figure the median of its rounds: this machine's speed
    // drifts over seconds, and a baseline measured once, after, would drift with it.
    let (mut hearth, mut bare) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        hearth.push(b.load("/warm", args.requests / ROUNDS, 64).await?.1);
        bare.push(baseline.load("/", args.requests / ROUNDS, 64).await?.1);
    }
    let (rps, floor_rps) = (median(&mut hearth), median(&mut bare));
    out.push(figure("throughput.wasm.c64", rps, "req/s", "bare axum/hyper server", floor_rps));
    let artefact_mb = artefacts as f64 / 1024.0 / 1024.0;
    let baseline = "its compiled artefact's size";
    out.push(figure("memory.wasm.loaded_module", per_module_kb / 1024.0, "MB", baseline, artefact_mb));
    Ok(out)
}
