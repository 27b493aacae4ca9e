//! `hearth-bench`: starts its own Hearth server on a temporary data directory and measures
//! it, printing each figure beside a baseline measured in the same run.
//!
//! cargo run --release -p hearth-bench [-- --json]
//! cargo run --release -p hearth-bench -- replay [--trace DIR]
//! cargo run --release -p hearth-bench -- soak [--minutes N]
//! cargo run --release -p hearth-bench -- events
//! cargo run --release -p hearth-bench -- wasm
//! cargo run --release -p hearth-bench -- pressure

/// mimalloc instead of glibc's allocator: the server allocates and frees on every request
/// from every worker thread, where glibc's arenas contend on their locks (see ARCHITECTURE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use hearth_agent::{CellKey, ProcessDriver, StemCellSettings};
use hearth_types::Runtime;
use serde::Serialize;

use harness::{
    BENCH_MEMORY_MB, Bench, NODE, PROVIDED, PYTHON, ServerSetup, baseline_server, exec_times, idle_pss_kb,
    instance_pids, pss_kb,
};

mod events;
mod harness;
mod pressure;
mod replay;
mod replay_live;
mod server_process;
mod soak;
mod telemetry;
mod wasm;

#[derive(Parser)]
#[command(about = "Benchmark a Hearth server started on a temporary data directory")]
struct Args {
    #[command(subcommand)]
    command: Option<Subcommand>,
    /// Requests per warm-latency figure.
    #[arg(long, default_value_t = 2000)]
    warm_requests: usize,
    /// Cold starts measured per runtime.
    #[arg(long, default_value_t = 20)]
    cold_starts: usize,
    /// Concurrent first requests in the burst from zero.
    #[arg(long, default_value_t = 500)]
    burst: usize,
    /// One JSON object per figure instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum Subcommand {
    /// Replay the Azure Functions 2019 trace sample against the keep-alive policies, in
    /// virtual time: cold-start rate, idle memory and added latency per policy.
    Replay(replay::ReplayArgs),
    /// Run the real `hearth` binary under the trace's load for a wall-clock time, sampling
    /// its RSS, descriptors, threads and database size: drift, and a verdict on leaks.
    Soak(soak::SoakArgs),
    /// Asynchronous invocations: acceptance throughput at concurrency 32 and the delivery
    /// latency of an idle queue, against synchronous invocations in the same run.
    Events(events::EventArgs),
    /// What metering and metrics cost on the warm path: warm latency and throughput with
    /// and without them, in the same run.
    Telemetry(telemetry::TelemetryArgs),
    /// WebAssembly functions: cold starts (a compile, a load from the disk cache), warm
    /// latency and throughput against a bare hyper server, memory per loaded module.
    Wasm(wasm::WasmArgs),
    /// Memory pressure: a node whose memory holds the busy instances but not the idle ones
    /// kept besides, per eviction policy (refusal the baseline): refused calls, cold starts,
    /// p99 latency, evictions.
    Pressure(pressure::PressureArgs),
}

/// One measured figure, with the baseline it is compared to.
#[derive(Serialize)]
struct Figure {
    name: String,
    value: f64,
    unit: &'static str,
    baseline: String,
    baseline_value: f64,
    ratio: f64,
}

fn figure(name: &str, value: f64, unit: &'static str, baseline: &str, baseline_value: f64) -> Figure {
    let ratio = if baseline_value > 0.0 { value / baseline_value } else { 0.0 };
    Figure { name: name.into(), value, unit, baseline: baseline.into(), baseline_value, ratio }
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // Warnings from the servers under test (HEARTH_LOG to see more).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    hearth_agent::raise_open_file_limit()?;
    if let Some(Subcommand::Replay(replay_args)) = &args.command {
        let figures =
            if replay_args.live { replay::live_figures(replay_args).await? } else { replay::figures(replay_args)? };
        return print_figures(&figures, args.json);
    }
    if let Some(Subcommand::Soak(soak_args)) = &args.command {
        let (figures, verdict) = soak::run(soak_args).await?;
        print_figures(&figures, args.json)?;
        return verdict;
    }
    if let Some(Subcommand::Pressure(pressure_args)) = &args.command {
        return print_figures(&pressure::figures(pressure_args).await?, args.json);
    }
    if let Some(Subcommand::Events(event_args)) = &args.command {
        return print_figures(&events::figures(event_args).await?, args.json);
    }
    if let Some(Subcommand::Wasm(wasm_args)) = &args.command {
        return print_figures(&wasm::figures(wasm_args).await?, args.json);
    }
    if let Some(Subcommand::Telemetry(telemetry_args)) = &args.command {
        return print_figures(&telemetry::figures(telemetry_args).await?, args.json);
    }
    let mut figures = vec![];
    let say = |s: &str| {
        if !args.json {
            eprintln!("{s}");
        }
    };
    let sandboxed = ProcessDriver::detect().drops_privileges();
    let n = args.cold_starts;
    let pool_settings = || StemCellSettings {
        keys: vec![
            CellKey { runtime: Runtime::Python3, memory_mb: BENCH_MEMORY_MB },
            CellKey { runtime: Runtime::Nodejs, memory_mb: BENCH_MEMORY_MB },
            CellKey { runtime: Runtime::Provided, memory_mb: BENCH_MEMORY_MB },
        ],
        budget_mb: 8 * BENCH_MEMORY_MB,
        ..Default::default()
    };
    let pooled = Bench::start(ServerSetup::new(ProcessDriver::detect(), Some(pool_settings()))).await?;
    let unpooled = Bench::start(ServerSetup::new(ProcessDriver::detect(), None)).await?;

    // Cold starts: each function's first request, from arrival to response, vs executing
    // the bare interpreter.
    let python_exec = exec_times("/usr/bin/python3", &["-I", "-S", "-c", "pass"], n)?;
    let node_exec = exec_times("/usr/bin/node", &["-e", "0"], n)?;
    let sh_exec = exec_times("/bin/sh", &["-c", "exit 0"], n)?;
    // A function written for AWS Lambda in Rust (`lambda_runtime`), as `provided`.
    let rust = harness::rust_hello()?;
    for (code, short, mut exec, exec_name) in [
        (PYTHON, "python", python_exec, "exec python3 -I -S -c pass"),
        (NODE, "node", node_exec, "exec node -e 0"),
        (PROVIDED, "provided", sh_exec.clone(), "exec sh -c 'exit 0'"),
        (rust, "provided_rust", sh_exec, "exec sh -c 'exit 0'"),
    ] {
        say(&format!("cold starts from the pre-warmed pool: {short} x {n}"));
        let mut cold = pooled.cold_starts(code, n, "pool").await?;
        for (p, label) in [(0.5, "p50"), (0.99, "p99")] {
            let (v, b) = (percentile(&mut cold, p), percentile(&mut exec, p));
            figures.push(figure(&format!("cold_start.{short}.pool.{label}"), v, "ms", exec_name, b));
        }
        say(&format!("cold starts without the pool: {short} x {n}"));
        let mut cold = unpooled.cold_starts(code, n, "own").await?;
        for (p, label) in [(0.5, "p50"), (0.99, "p99")] {
            let (v, b) = (percentile(&mut cold, p), percentile(&mut exec, p));
            figures.push(figure(&format!("cold_start.{short}.{label}"), v, "ms", exec_name, b));
        }
        if sandboxed && code.runtime != "provided" {
            // The same without any sandbox, on a third server: the difference is the
            // sandbox's set-up cost.
            say(&format!("cold starts without the sandbox: {short} x {n}"));
            let plain = Bench::start(ServerSetup::new(ProcessDriver::plain(), None)).await?;
            let mut unsandboxed = plain.cold_starts(code, n, "plain").await?;
            let (with, without) = (percentile(&mut cold, 0.5), percentile(&mut unsandboxed, 0.5));
            figures.push(figure(
                &format!("cold_start.{short}.sandbox.p50"),
                with,
                "ms",
                "the same without the sandbox",
                without,
            ));
        }
    }

    // Warm invocations through the HTTP trigger, vs a bare server answering the same body.
    // At most 8 one-CPU instances on this node's memory (and 2 cores).
    pooled.deploy("warm", PYTHON, BENCH_MEMORY_MB, 8).await?;
    let baseline = pooled.other(format!("http://{}", baseline_server().await?));
    let mut floor_rps = 0.0;
    for concurrency in [1, 32] {
        say(&format!("warm: {} requests at concurrency {concurrency}", args.warm_requests));
        pooled.load("/warm", concurrency * 4, concurrency).await?; // warm instances and connections
        baseline.load("/", concurrency * 4, concurrency).await?;
        let (mut warm, _) = pooled.load("/warm", args.warm_requests, concurrency).await?;
        let (mut floor, rps) = baseline.load("/", args.warm_requests, concurrency).await?;
        floor_rps = f64::max(floor_rps, rps);
        for (p, label) in [(0.5, "p50"), (0.99, "p99")] {
            let (v, b) = (percentile(&mut warm, p), percentile(&mut floor, p));
            figures.push(figure(&format!("warm.http.c{concurrency}.{label}"), v, "ms", "bare axum/hyper server", b));
        }
    }

    pooled.client.delete_function("warm").await?;

    // Throughput of a Python function with one instance, and with N.
    for (instances, concurrency) in [(1u32, 4usize), (4, 32)] {
        let name = format!("echo-{instances}");
        pooled.deploy(&name, PYTHON, BENCH_MEMORY_MB, instances).await?;
        say(&format!(
            "throughput: {} requests at concurrency {concurrency}, {instances} instance(s)",
            args.warm_requests
        ));
        let path = format!("/{name}");
        pooled.load(&path, concurrency * 4, concurrency).await?;
        let (_, rps) = pooled.load(&path, args.warm_requests, concurrency).await?;
        figures.push(figure(
            &format!("throughput.python.i{instances}"),
            rps,
            "req/s",
            "bare axum/hyper server",
            floor_rps,
        ));
        pooled.client.delete_function(&name).await?;
    }

    // A burst from zero: `burst` concurrent first requests to a new function.
    say(&format!("burst: {} concurrent first requests", args.burst));
    pooled.deploy("burst", PYTHON, 512, 32).await?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.burst)
        .map(|_| {
            let b = pooled.clone();
            tokio::spawn(async move { b.get("/burst").await })
        })
        .collect();
    let mut errors = 0;
    for t in tasks {
        if !matches!(t.await, Ok(Ok(_))) {
            errors += 1;
        }
    }
    let took = started.elapsed().as_secs_f64() * 1000.0;
    let created = pooled.instance_ids("burst").await?.len();
    let one_cold = figures.iter().find(|f| f.name == "cold_start.python.pool.p50").map_or(0.0, |f| f.value);
    figures.push(figure("burst.duration", took, "ms", "one pooled cold start", one_cold));
    figures.push(figure("burst.errors", f64::from(errors), "requests", "none", 0.0));
    figures.push(figure("burst.instances", created as f64, "instances", "max_instances", 32.0));
    pooled.client.delete_function("burst").await?;

    // Memory of an idle warm instance (PSS of its processes), vs the bare interpreter idle.
    if sandboxed {
        for (name, code) in [("idle-python", PYTHON), ("idle-node", NODE)] {
            pooled.deploy(name, code, BENCH_MEMORY_MB, 1).await?;
            pooled.get(&format!("/{name}")).await?;
        }
        for (name, short, program, argv) in [
            ("idle-python", "python", "/usr/bin/python3", &["-I", "-S", "-c", "import sys; sys.stdin.read()"][..]),
            ("idle-node", "node", "/usr/bin/node", &["-e", "process.stdin.resume()"][..]),
        ] {
            let ids = pooled.instance_ids(name).await?;
            let per: Vec<u64> = ids.iter().map(|id| pss_kb(&instance_pids(id))).filter(|&k| k > 0).collect();
            if per.is_empty() {
                continue;
            }
            let avg = per.iter().sum::<u64>() as f64 / per.len() as f64 / 1024.0;
            let bare = idle_pss_kb(program, argv)? as f64 / 1024.0;
            figures.push(figure(&format!("memory.idle.{short}.pss"), avg, "MB", "the bare interpreter, idle", bare));
        }
    }

    print_figures(&figures, args.json)
}

/// One JSON object per figure, or a markdown table.
fn print_figures(figures: &[Figure], json: bool) -> Result<()> {
    if json {
        for f in figures {
            println!("{}", serde_json::to_string(f)?);
        }
    } else {
        println!("| figure | value | baseline | baseline value | ratio |");
        println!("|---|---|---|---|---|");
        for f in figures {
            println!(
                "| {} | {:.2} {} | {} | {:.2} {} | {:.2} |",
                f.name, f.value, f.unit, f.baseline, f.baseline_value, f.unit, f.ratio
            );
        }
    }
    Ok(())
}
