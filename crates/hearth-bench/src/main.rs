//! `hearth-bench`: starts its own Hearth server on a temporary data directory and measures
//! it, printing each figure beside a baseline measured in the same run.
//!
//! cargo run --release -p hearth-bench [-- --json]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use hearth_agent::{ProcessDriver, Runtimes};
use hearth_api::{AppState, ensure_admin_token};
use hearth_blob::fixtures::{RawEntry, raw_zip};
use hearth_blob::{CodeStore, ObjectSource, PackageLimits};
use hearth_client::Client;
use hearth_gateway::{Gateway, GatewaySettings, app};
use hearth_store::SqliteStore;
use hearth_types::FunctionSpec;
use hearth_types::api::TriggerSpec;
use serde::Serialize;

mod replay;

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
    /// One JSON object per figure instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum Subcommand {
    /// Replay the Azure Functions 2019 trace sample against the keep-alive policies, in
    /// virtual time: cold-start rate, idle memory and added latency per policy.
    Replay(replay::ReplayArgs),
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

/// Wall time of running a command to completion, `n` times after 2 warm-ups.
fn exec_times(program: &str, args: &[&str], n: usize) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n + 2 {
        let t = Instant::now();
        let status = Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", "/tmp")
            .env("LANG", "C.UTF-8")
            .status()
            .with_context(|| format!("cannot run {program}"))?;
        if !status.success() {
            bail!("{program} failed: {status}");
        }
        if i >= 2 {
            out.push(t.elapsed());
        }
    }
    Ok(out)
}

const PY_HELLO: &str = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'Hello FaaS'}\n";
const NODE_HELLO: &str = "export const handler = async () => ({ statusCode: 200, body: 'Hello FaaS' });\n";

struct Bench {
    url: String,
    client: Client,
    http: reqwest::Client,
}

impl Bench {
    async fn deploy(&self, name: &str, runtime: &str, handler: &str, file: &str, source: &str) -> Result<()> {
        let code = self.client.upload_package(raw_zip(&[RawEntry::file(file, source.as_bytes())])).await?;
        let spec = FunctionSpec {
            runtime: runtime.into(),
            handler: Some(handler.into()),
            code_sha256: Some(code.sha256.to_string()),
            max_instances: Some(32),
            timeout_s: Some(30),
            // One full CPU (the quota is proportional to memory): measure the platform,
            // not a small function's CPU share.
            memory_mb: Some(1_769),
            ..Default::default()
        };
        self.client.put_function(name, &spec).await?;
        let trigger =
            TriggerSpec { kind: None, function: name.into(), path: format!("/{name}"), methods: vec![], auth: None };
        self.client.create_trigger(&trigger).await?;
        Ok(())
    }

    async fn get(&self, path: &str) -> Result<Duration> {
        let t = Instant::now();
        let r = self.http.get(format!("{}{path}", self.url)).send().await?;
        let ok = r.status().is_success();
        let body = r.bytes().await?;
        if !ok || &body[..] != b"Hello FaaS" {
            bail!("unexpected answer from {path}: {}", String::from_utf8_lossy(&body));
        }
        Ok(t.elapsed())
    }

    /// `total` requests from `concurrency` concurrent callers; latencies and throughput.
    async fn load(self: &Arc<Self>, path: &str, total: usize, concurrency: usize) -> Result<(Vec<Duration>, f64)> {
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (b, path) = (self.clone(), path.to_owned());
                let n = total / concurrency;
                tokio::spawn(async move {
                    let mut v = Vec::with_capacity(n);
                    for _ in 0..n {
                        v.push(b.get(&path).await?);
                    }
                    anyhow::Ok(v)
                })
            })
            .collect();
        let mut all = vec![];
        for t in tasks {
            all.extend(t.await??);
        }
        let rps = all.len() as f64 / started.elapsed().as_secs_f64();
        Ok((all, rps))
    }
}

/// A minimal HTTP server answering the same body: the floor for a warm request.
async fn baseline_server() -> Result<SocketAddr> {
    let app = axum::Router::new().fallback(|| async { "Hello FaaS" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// A server on a temporary data directory whose instances are made by `driver`.
async fn server(driver: ProcessDriver) -> Result<(Arc<Bench>, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(&dir.path().join("metadata.db"))?);
    let code = CodeStore::local(&dir.path().join("code"), PackageLimits::DEFAULT)?;
    let token =
        ensure_admin_token(store.as_ref()).await.map_err(|e| anyhow::anyhow!(e.message))?.context("fresh store")?;
    let runtimes = Runtimes::install(&dir.path().join("runtimes"))?;
    let gateway = Gateway::new(
        store.clone(),
        code.clone(),
        dir.path().join("cache"),
        runtimes,
        Arc::new(driver),
        GatewaySettings::default(),
    );
    let _reaper = gateway.spawn_reaper();
    let router = app(AppState::new(store, code, ObjectSource::default()), gateway);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    Ok((Arc::new(Bench { client: Client::new(&url, Some(token)), url, http }), dir))
}

impl Bench {
    /// Cold starts: each new function's first request, from arrival to response.
    async fn cold_starts(
        &self,
        runtime: &str,
        handler: &str,
        file: &str,
        source: &str,
        n: usize,
        tag: &str,
    ) -> Result<Vec<Duration>> {
        let mut cold = vec![];
        for i in 0..n {
            let name = format!("cold-{tag}-{runtime}-{i}");
            self.deploy(&name, runtime, handler, file, source).await?;
            cold.push(self.get(&format!("/{name}")).await?);
        }
        Ok(cold)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(Subcommand::Replay(replay_args)) = &args.command {
        let mut figures = vec![];
        let results = replay::run(replay_args)?;
        let baseline = &results[0];
        for (name, r) in &results {
            let (b, base) = (baseline.0, &baseline.1);
            figures.push(figure(
                &format!("replay.{name}.cold_start_rate"),
                r.cold_start_rate() * 100.0,
                "%",
                b,
                base.cold_start_rate() * 100.0,
            ));
            figures.push(figure(
                &format!("replay.{name}.idle_memory"),
                r.idle_gb_seconds,
                "GB-s",
                b,
                base.idle_gb_seconds,
            ));
            figures.push(figure(
                &format!("replay.{name}.p99_added_latency"),
                r.p99_added_ms,
                "ms",
                b,
                base.p99_added_ms,
            ));
        }
        print_figures(&figures, args.json)?;
        return Ok(());
    }
    let driver = ProcessDriver::detect();
    let sandboxed = driver.drops_privileges();
    let (bench, _dir) = server(driver).await?;
    let mut figures = vec![];
    let say = |s: &str| {
        if !args.json {
            eprintln!("{s}");
        }
    };

    // Cold starts: each function's first request, from arrival to response.
    let python_exec = exec_times("/usr/bin/python3", &["-I", "-S", "-c", "pass"], args.cold_starts)?;
    let node_exec = exec_times("/usr/bin/node", &["-e", "0"], args.cold_starts)?;
    for (runtime, handler, file, source, mut exec, exec_name) in [
        ("python3", "main.handler", "main.py", PY_HELLO, python_exec, "exec python3 -I -S -c pass"),
        ("nodejs", "index.handler", "index.mjs", NODE_HELLO, node_exec, "exec node -e 0"),
    ] {
        say(&format!("cold starts: {runtime} x {}", args.cold_starts));
        let mut cold = bench.cold_starts(runtime, handler, file, source, args.cold_starts, "s").await?;
        let short = if runtime == "python3" { "python" } else { "node" };
        for (p, label) in [(0.5, "p50"), (0.99, "p99")] {
            let (v, b) = (percentile(&mut cold, p), percentile(&mut exec, p));
            figures.push(figure(&format!("cold_start.{short}.{label}"), v, "ms", exec_name, b));
        }
        if sandboxed {
            // The same without any sandbox, on a second server: the difference is the
            // sandbox's set-up cost.
            say(&format!("cold starts without the sandbox: {runtime} x {}", args.cold_starts));
            let (plain, _plain_dir) = server(ProcessDriver::plain()).await?;
            let mut unsandboxed = plain.cold_starts(runtime, handler, file, source, args.cold_starts, "p").await?;
            let with = percentile(&mut cold, 0.5);
            let without = percentile(&mut unsandboxed, 0.5);
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
    bench.deploy("warm", "python3", "main.handler", "main.py", PY_HELLO).await?;
    let base = baseline_server().await?;
    let baseline =
        Arc::new(Bench { url: format!("http://{base}"), client: bench.client.clone(), http: bench.http.clone() });
    for concurrency in [1, 16] {
        say(&format!("warm: {} requests at concurrency {concurrency}", args.warm_requests));
        bench.load("/warm", concurrency * 4, concurrency).await?; // warm instances and connections
        baseline.load("/", concurrency * 4, concurrency).await?;
        let (mut warm, rps) = bench.load("/warm", args.warm_requests, concurrency).await?;
        let (mut floor, floor_rps) = baseline.load("/", args.warm_requests, concurrency).await?;
        for (p, label) in [(0.5, "p50"), (0.99, "p99")] {
            let (v, b) = (percentile(&mut warm, p), percentile(&mut floor, p));
            figures.push(figure(&format!("warm.http.c{concurrency}.{label}"), v, "ms", "bare axum server", b));
        }
        figures.push(figure(&format!("throughput.http.c{concurrency}"), rps, "req/s", "bare axum server", floor_rps));
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
