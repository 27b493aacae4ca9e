//! A Hearth server started in this process on a temporary data directory, and the client
//! calls the benchmarks make against it over real HTTP.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hearth_agent::{CellKey, ProcessDriver, Runtimes, StemCellSettings};
use hearth_api::{AppState, ensure_admin_token};
use hearth_blob::fixtures::{RawEntry, raw_zip};
use hearth_blob::{CodeStore, ObjectSource, PackageLimits};
use hearth_client::Client;
use hearth_gateway::{Gateway, GatewaySettings};
use hearth_server::apps;
use hearth_store::SqliteStore;
use hearth_types::FunctionSpec;
use hearth_types::api::TriggerSpec;

pub const PY_HELLO: &str = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'Hello FaaS'}\n";
pub const NODE_HELLO: &str = "export const handler = async () => ({ statusCode: 200, body: 'Hello FaaS' });\n";
/// A `provided` function: a shell loop over the Runtime API with curl.
pub const SH_HELLO: &str = r#"#!/bin/sh
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  H=$(mktemp)
  curl -sS -o /dev/null -D "$H" "$API/invocation/next"
  ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$H" | tr -d '[:space:]' | cut -d: -f2)
  curl -sS -o /dev/null -X POST "$API/invocation/$ID/response" -d '{"statusCode":200,"body":"Hello FaaS"}'
done
"#;

/// A function to deploy: runtime, handler, file name and contents, and what its answer to
/// an HTTP request holds.
#[derive(Clone, Copy)]
pub struct Code {
    pub runtime: &'static str,
    pub handler: &'static str,
    pub file: &'static str,
    pub source: &'static [u8],
    pub answer: &'static str,
}

const HELLO: &str = "Hello FaaS";
pub const PYTHON: Code =
    Code { runtime: "python3", handler: "main.handler", file: "main.py", source: PY_HELLO.as_bytes(), answer: HELLO };
pub const NODE: Code = Code {
    runtime: "nodejs",
    handler: "index.handler",
    file: "index.mjs",
    source: NODE_HELLO.as_bytes(),
    answer: HELLO,
};
pub const PROVIDED: Code =
    Code { runtime: "provided", handler: "bootstrap", file: "bootstrap", source: SH_HELLO.as_bytes(), answer: HELLO };

/// `examples/rust-hello` (the AWS Lambda Rust runtime, `lambda_runtime`), built in release
/// by cargo from the repository this benchmark was built in, as a `provided` function.
pub fn rust_hello() -> Result<Code> {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    eprintln!("building examples/rust-hello (cargo build --release)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--release", "--locked", "--bin", "rust-hello"])
        .current_dir(&examples)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .with_context(|| format!("cannot run cargo in {}", examples.display()))?;
    anyhow::ensure!(status.success(), "cargo build of examples/rust-hello failed");
    let path = examples.join("target/release/rust-hello");
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let source: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    Ok(Code { runtime: "provided", handler: "bootstrap", file: "bootstrap", source, answer: "Hello, world!" })
}

/// One full CPU (the quota is proportional to memory): measure the platform, not a small
/// function's CPU share.
pub const BENCH_MEMORY_MB: u32 = 1_769;

pub struct Bench {
    /// Where `get` sends requests: the server's HTTP trigger listener (or a baseline server).
    pub url: String,
    pub client: Client,
    pub http: reqwest::Client,
    pub gateway: Option<Gateway>,
    _dir: Option<Arc<tempfile::TempDir>>,
}

/// How a benchmark server is set up.
pub struct ServerSetup {
    pub driver: ProcessDriver,
    pub stem_cells: Option<StemCellSettings>,
    /// The adaptive keep-alive policy's bin width (a minute, or less for time-compressed
    /// replays).
    pub adaptive_bin: Duration,
    /// Invocation records and metrics (off only to measure what they cost).
    pub telemetry: bool,
    /// The node's memory for instances (MB; `None`: the server's default).
    pub node_memory_mb: Option<u64>,
    /// Which idle instances a full node evicts.
    pub eviction_policy: hearth_scale::EvictionPolicy,
}

impl ServerSetup {
    pub fn new(driver: ProcessDriver, stem_cells: Option<StemCellSettings>) -> Self {
        Self {
            driver,
            stem_cells,
            adaptive_bin: Duration::from_secs(60),
            telemetry: true,
            node_memory_mb: None,
            eviction_policy: Default::default(),
        }
    }
}

impl Bench {
    /// A server on a temporary data directory.
    pub async fn start(setup: ServerSetup) -> Result<Arc<Self>> {
        let dir = tempfile::tempdir()?;
        let store = Arc::new(SqliteStore::open(&dir.path().join("metadata.db"))?);
        let code = CodeStore::local(&dir.path().join("code"), PackageLimits::DEFAULT)?;
        let token =
            ensure_admin_token(store.as_ref()).await.map_err(|e| anyhow::anyhow!(e.message))?.context("fresh store")?;
        let runtimes = Runtimes::install(&dir.path().join("runtimes"))?;
        let defaults = GatewaySettings::default();
        let settings = GatewaySettings {
            stem_cells: setup.stem_cells,
            adaptive_bin: setup.adaptive_bin,
            telemetry: setup.telemetry,
            node_memory_mb: setup.node_memory_mb.unwrap_or(defaults.node_memory_mb),
            eviction_policy: setup.eviction_policy,
            ..defaults
        };
        let gateway = Gateway::new(
            store.clone(),
            code.clone(),
            dir.path().join("cache"),
            runtimes,
            Arc::new(setup.driver),
            settings,
        );
        let _reaper = gateway.spawn_reaper();
        let events = hearth_events::Events::start(store.clone(), gateway.clone(), Default::default());
        let usage = hearth_server::Usage { store: store.clone(), prices: Default::default() };
        let apps = apps(AppState::new(store, code, ObjectSource::default()), gateway.clone(), events, usage);
        // Served as `hearth up` serves them: the same edge, limits included.
        let (api_url, url) = (edge(apps.api).await?, edge(apps.triggers).await?);
        let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
        Ok(Arc::new(Self {
            client: Client::new(&api_url, Some(token)),
            url,
            http,
            gateway: Some(gateway),
            _dir: Some(Arc::new(dir)),
        }))
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self._dir.as_deref().map(|d| d.path())
    }

    /// A client of some other HTTP server (the baseline).
    pub fn other(&self, url: String) -> Arc<Self> {
        Arc::new(Self { url, client: self.client.clone(), http: self.http.clone(), gateway: None, _dir: None })
    }

    /// Deploys `code` as `name` with an HTTP trigger at `/name`.
    pub async fn deploy(&self, name: &str, code: Code, memory_mb: u32, max_instances: u32) -> Result<()> {
        let mut entry = RawEntry::file(code.file, code.source);
        if code.runtime == "provided" {
            entry.unix_mode = 0o100755;
        }
        let package = self.client.upload_package(raw_zip(&[entry])).await?;
        let spec = FunctionSpec {
            runtime: code.runtime.into(),
            handler: Some(code.handler.into()),
            code_sha256: Some(package.sha256.to_string()),
            max_instances: Some(max_instances.into()),
            timeout_s: Some(30),
            memory_mb: Some(memory_mb.into()),
            ..Default::default()
        };
        self.client.put_function(name, &spec).await?;
        let trigger =
            TriggerSpec { kind: None, function: name.into(), path: format!("/{name}"), methods: vec![], auth: None };
        self.client.create_trigger(&trigger).await?;
        Ok(())
    }

    /// One request; fails unless the answer is the hello body.
    pub async fn get(&self, path: &str) -> Result<Duration> {
        let t = Instant::now();
        let r = self.http.get(format!("{}{path}", self.url)).send().await?;
        let ok = r.status().is_success();
        let body = r.bytes().await?;
        if !ok || &body[..] != HELLO.as_bytes() {
            bail!("unexpected answer from {path}: {}", String::from_utf8_lossy(&body));
        }
        Ok(t.elapsed())
    }

    /// The first request to `code` deployed at `path`: fails unless it is a cold start from
    /// `source` (`full`, `stem_cell`) answered with the code's answer.
    async fn first(&self, path: &str, code: Code, source: &str) -> Result<Duration> {
        let t = Instant::now();
        let r = self.http.get(format!("{}{path}", self.url)).send().await?;
        let ok = r.status().is_success();
        let header = |k: &str| r.headers().get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let seen = header("x-hearth-start-source");
        let body = r.bytes().await?;
        let took = t.elapsed();
        let text = String::from_utf8_lossy(&body);
        if !ok || !text.contains(code.answer) || seen != source {
            bail!("{path}: expected a cold start from {source} answering {:?}, got {seen:?}: {text}", code.answer);
        }
        Ok(took)
    }

    /// `total` requests from `concurrency` concurrent callers; latencies and throughput.
    pub async fn load(self: &Arc<Self>, path: &str, total: usize, concurrency: usize) -> Result<(Vec<Duration>, f64)> {
        anyhow::ensure!(
            total >= concurrency,
            "{total} requests cannot keep {concurrency} connections busy: ask for at least {concurrency} \
             (a figure over fewer would read 0 req/s)"
        );
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|i| {
                let (b, path) = (self.clone(), path.to_owned());
                // Every request asked for, the remainder on the first connections.
                let n = total / concurrency + usize::from(i < total % concurrency);
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

    /// Cold starts: each new function's first request, from arrival to response. With a
    /// pool, each waits until a pre-warmed sandbox is ready (as it would be between
    /// ordinary cold starts).
    pub async fn cold_starts(&self, code: Code, n: usize, tag: &str) -> Result<Vec<Duration>> {
        let key = CellKey { runtime: code.runtime.parse().expect("known runtime"), memory_mb: BENCH_MEMORY_MB };
        let mut cold = vec![];
        for i in 0..n {
            let name = format!("cold-{tag}-{}-{i}", code.runtime);
            self.deploy(&name, code, BENCH_MEMORY_MB, 4).await?;
            if tag == "pool" {
                self.wait_prewarmed(key).await?;
            }
            let source = if tag == "pool" { "stem_cell" } else { "full" };
            cold.push(self.first(&format!("/{name}"), code, source).await?);
            // Its instance goes with it: the node's memory is not held by finished runs.
            self.client.delete_function(&name).await?;
        }
        Ok(cold)
    }

    async fn wait_prewarmed(&self, key: CellKey) -> Result<()> {
        let gateway = self.gateway.as_ref().context("not a Hearth server")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready = |g: &Gateway| g.node_status().prewarmed.iter().any(|(k, n)| *k == key && *n > 0);
        while !ready(gateway) {
            if Instant::now() > deadline {
                bail!("no pre-warmed sandbox for {key:?} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// The function's live instance ids.
    pub async fn instance_ids(&self, name: &str) -> Result<Vec<String>> {
        let list = self.client.instances(name).await?;
        Ok(list.into_iter().map(|i| i.id).collect())
    }
}

/// A minimal HTTP server (axum on hyper) answering the same body: the floor for a request.
pub async fn baseline_server() -> Result<SocketAddr> {
    let app = axum::Router::new().fallback(|| async { "Hello FaaS" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// Wall time of running a command to completion, `n` times after 2 warm-ups.
pub fn exec_times(program: &str, args: &[&str], n: usize) -> Result<Vec<Duration>> {
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

/// Proportional set size (kB) of `pids`, from `smaps_rollup`.
pub fn pss_kb(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).ok())
        .filter_map(|s| {
            s.lines().find(|l| l.starts_with("Pss:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .sum()
}

/// The processes of this server's instance `id` (from its cgroup), if cgroups are in use.
pub fn instance_pids(id: &str) -> Vec<u32> {
    let name = format!("{}-{id}", std::process::id());
    ["/sys/fs/cgroup/memory/hearth", "/sys/fs/cgroup/hearth"]
        .iter()
        .filter_map(|d| std::fs::read_to_string(format!("{d}/{name}/cgroup.procs")).ok())
        .flat_map(|s| s.lines().filter_map(|l| l.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

/// PSS (kB) of a bare interpreter sitting idle: `program args` waiting on its stdin.
pub fn idle_pss_kb(program: &str, args: &[&str]) -> Result<u64> {
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    // Until its memory settles (the interpreter has started).
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = pss_kb(&[child.id()]);
        if (now > 0 && now == last) || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(now);
        }
        last = now;
    }
}

/// Serves `router` on a loopback port with `hearth up`'s listener and its default limits.
async fn edge(router: axum::Router) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let limits = hearth_server::ListenerLimits::default();
    tokio::spawn(hearth_server::serve(listener, router, limits, None, std::future::pending()));
    Ok(url)
}
