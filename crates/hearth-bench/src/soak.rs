//! `hearth-bench soak`: the real `hearth` binary under the trace's load for a set wall-clock
//! time, its resources sampled from `/proc` throughout, so leaks show as drift.
//!
//! The trace's functions are deployed as Python functions that sleep for the trace's average
//! duration divided by the speed-up, each behind an HTTP trigger; the whole trace is replayed
//! at `speed` times its pace (looping when it ends). Instances retire after a short keep-alive
//! and one function gets a new version every `deploy_every_s` (its instances drain), so
//! instances start and stop throughout. Every `sample_s` the server's RSS, open
//! descriptors, threads, instance cgroups and database size are read. The run fails when more invocations fail
//! than allowed, when the server holds more descriptors idle after the load than idle before
//! it (beyond a bound), or when its RSS at the end is over a multiple of its RSS after warm-up.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hearth_blob::fixtures::{RawEntry, raw_zip};
use hearth_client::Client;
use hearth_scale::trace::Trace;
use hearth_types::FunctionSpec;
use hearth_types::api::TriggerSpec;
use tokio::time::Instant;

use crate::replay_live::pick_slice;
use crate::server_process::{HearthProcess, Reading, hearth_binary};
use crate::{Figure, figure};

/// Sleeps for its `SLEEP_MS` (the trace's duration over the speed-up) and answers `ok`.
const SLEEPER: &str = "import os, time\n\nSLEEP_S = float(os.environ.get('SLEEP_MS', '0')) / 1000\n\n\
def handler(event, context):\n    time.sleep(SLEEP_S)\n    return {'statusCode': 200, 'body': 'ok'}\n";

#[derive(clap::Args)]
pub struct SoakArgs {
    /// Wall-clock minutes of load.
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// The `hearth` binary (default: this workspace's target/release/hearth, built if missing).
    #[arg(long)]
    pub hearth: Option<PathBuf>,
    /// The trace folder (invocations.csv, durations.csv, memory.csv).
    #[arg(long, default_value = "../shared/traces/azure2019-sample100")]
    pub trace: PathBuf,
    /// How many times faster than the trace.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// At most this many functions (the busiest called in a tenth of the trace's minutes).
    #[arg(long, default_value_t = 20)]
    pub functions: usize,
    /// Only functions called at most this often in any trace minute.
    #[arg(long, default_value_t = 20)]
    pub max_per_minute: u32,
    /// The functions' keep-alive, in (real) seconds.
    #[arg(long, default_value_t = 10)]
    pub keep_alive_s: u64,
    /// Seconds between deploys of a new version of one of the functions (in turn).
    #[arg(long, default_value_t = 60)]
    pub deploy_every_s: u64,
    /// Seed for the arrival times within each minute (spread uniformly at random).
    #[arg(long, default_value_t = 2019)]
    pub seed: u64,
    /// Seconds between readings.
    #[arg(long, default_value_t = 5)]
    pub sample_s: u64,
    /// Fail when more than this percentage of invocations fail.
    #[arg(long, default_value_t = 1.0)]
    pub max_error_pct: f64,
    /// Fail when the idle server holds more than this many descriptors more after the load
    /// than before it.
    #[arg(long, default_value_t = 200)]
    pub max_fd_growth: u64,
    /// Fail when the idle server has more than this many instance cgroups more after the load
    /// than before it (pre-warmed sandboxes have them too: at most 8 per runtime).
    #[arg(long, default_value_t = 20)]
    pub max_cgroup_growth: u64,
    /// Fail when the RSS at the end is over this multiple of the RSS after warm-up.
    #[arg(long, default_value_t = 2.0)]
    pub max_rss_ratio: f64,
}

/// One reading, with what the load had done by then.
#[derive(Debug, Clone)]
struct Sample {
    at_s: f64,
    label: &'static str,
    reading: Reading,
    ok: u64,
    errors: u64,
    cold_starts: u64,
    /// p99 latency of the requests finished since the previous sample, in ms.
    p99_ms: f64,
}

/// What the requests did, shared by their tasks.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    deploys: AtomicU64,
    in_flight: AtomicU64,
    ok: AtomicU64,
    cold_starts: AtomicU64,
    /// Failures by kind: the HTTP status and error code, a wrong body, the transport error,
    /// or a failed deploy.
    errors: Mutex<BTreeMap<String, u64>>,
    /// Latencies (ms) since the last sample, and all of them.
    window: Mutex<Vec<f64>>,
    all: Mutex<Vec<(f64, f64)>>,
}

impl Tally {
    fn error(&self, kind: String) {
        *self.errors.lock().unwrap_or_else(|p| p.into_inner()).entry(kind).or_default() += 1;
    }

    fn errors(&self) -> u64 {
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).values().sum()
    }
}

/// Runs the soak: its figures, and its verdict (an error when a check failed).
pub async fn run(args: &SoakArgs) -> Result<(Vec<Figure>, Result<()>)> {
    let trace = Trace::load(&args.trace)
        .with_context(|| format!("cannot load the trace from {} (use --trace DIR)", args.trace.display()))?;
    let functions = pick_slice(&trace, 0, trace.minutes(), args.max_per_minute, args.functions);
    if functions.is_empty() {
        bail!("no function of the trace fits --max-per-minute {}", args.max_per_minute);
    }
    let bin = hearth_binary(args.hearth.as_deref())?;
    let server = HearthProcess::start(&bin, &[])?;
    let client = Client::new(&server.url, Some(server.token.clone()));
    let speed = args.speed;

    // The functions, all sharing one package; a new generation is a new version.
    let package = client.upload_package(raw_zip(&[RawEntry::file("main.py", SLEEPER.as_bytes())])).await?;
    let keep_alive = i64::try_from(args.keep_alive_s)?;
    let sleeps: Vec<f64> = functions.iter().map(|f| (f.duration_ms / speed).min(5_000.0)).collect();
    let spec = move |i: usize, generation: u64| FunctionSpec {
        runtime: "python3".into(),
        handler: Some("main.handler".into()),
        code_sha256: Some(package.sha256.to_string()),
        environment: [
            ("SLEEP_MS".to_owned(), format!("{:.1}", sleeps[i])),
            ("SOAK_GENERATION".to_owned(), generation.to_string()),
        ]
        .into(),
        keep_alive_s: Some(keep_alive),
        max_instances: Some(50),
        timeout_s: Some(30),
        ..Default::default()
    };
    for i in 0..functions.len() {
        let name = format!("trace-{i}");
        client.put_function(&name, &spec(i, 0)).await?;
        let trigger =
            TriggerSpec { kind: None, function: name.clone(), path: format!("/{name}"), methods: vec![], auth: None };
        client.create_trigger(&trigger).await?;
    }

    // One lap of the trace: every arrival of every function, in order.
    let mut arrivals: Vec<(f64, usize)> = functions
        .iter()
        .enumerate()
        .flat_map(|(i, f)| f.arrivals(args.seed).into_iter().map(move |at| (at, i)))
        .collect();
    arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let lap_s = trace.minutes() as f64 * 60.0;
    let run = Duration::from_secs_f64(args.minutes * 60.0);
    let per_s = arrivals.len() as f64 * speed / lap_s;
    eprintln!(
        "soak: {} ({}), {} functions, trace at {speed}x ({per_s:.1} requests/s on average), keep-alive {keep_alive} s, {} minutes",
        bin.display(),
        server.pid(),
        functions.len(),
        args.minutes
    );

    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let mut samples = vec![sample(&server, &tally, 0.0, "idle before")?];
    // Idle connections are dropped before the server's header timeout (10 s) closes them,
    // so no request is sent on a connection the server is closing.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .pool_idle_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()?;
    let deadline = start + run;
    let deploys = {
        let (tally, client, n, every) = (tally.clone(), client.clone(), functions.len(), args.deploy_every_s.max(1));
        tokio::spawn(async move {
            for generation in 1u64.. {
                let when = start + Duration::from_secs(every * generation);
                if when >= deadline {
                    return;
                }
                tokio::time::sleep_until(when).await;
                let i = (generation as usize - 1) % n;
                match client.put_function(&format!("trace-{i}"), &spec(i, generation)).await {
                    Ok(_) => tally.deploys.fetch_add(1, Ordering::SeqCst),
                    Err(e) => {
                        tally.error(format!("deploy: {e}"));
                        0
                    }
                };
            }
        })
    };
    let load = {
        let (tally, url) = (tally.clone(), server.trigger_url.clone());
        tokio::spawn(async move {
            for lap in 0u64.. {
                for &(at, i) in &arrivals {
                    let when = start + Duration::from_secs_f64((lap as f64 * lap_s + at) / speed);
                    if when >= deadline {
                        return;
                    }
                    tokio::time::sleep_until(when).await;
                    tokio::spawn(call(http.clone(), format!("{url}/trace-{i}"), tally.clone()));
                }
            }
        })
    };

    // Readings until the deadline, a few of them printed along the way.
    // Past the first cold starts of every function (a burst of sandboxes at once).
    let warmup = (run / 4).min(Duration::from_secs(60));
    let print_every = (run / 6).max(Duration::from_secs(args.sample_s));
    let mut next_print = start + print_every;
    let mut warmed = false;
    print_header();
    print_row(&samples[0]);
    loop {
        let next = Instant::now() + Duration::from_secs(args.sample_s);
        let last = next >= deadline;
        tokio::time::sleep_until(next.min(deadline)).await;
        let at = start.elapsed().as_secs_f64();
        let label = match (last, warmed || start.elapsed() < warmup) {
            (true, _) => "end",
            (false, false) => "start",
            (false, true) => "",
        };
        warmed |= label == "start";
        let s = sample(&server, &tally, at, label)?;
        if !label.is_empty() || Instant::now() >= next_print {
            print_row(&s);
            next_print = Instant::now() + print_every;
        }
        samples.push(s);
        if last {
            break;
        }
    }
    load.await?;
    deploys.await?;
    // The requests still in flight finish (bounded by the client's timeout).
    let drain_until = Instant::now() + Duration::from_secs(70);
    while tally.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Idle again once every instance has retired after its keep-alive.
    let idle_until = Instant::now() + Duration::from_secs(60).max(Duration::from_secs(args.keep_alive_s * 4));
    loop {
        let mut live = 0;
        for i in 0..functions.len() {
            live += client.instances(&format!("trace-{i}")).await?.len();
        }
        if live == 0 || Instant::now() >= idle_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Their cgroups go once their processes are reaped.
    let settled = samples[0].reading.instances + args.max_cgroup_growth;
    while server.read()?.instances > settled && Instant::now() < idle_until + Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let after = sample(&server, &tally, start.elapsed().as_secs_f64(), "idle after")?;
    print_row(&after);
    samples.push(after);

    let problems = server.log_problems();
    if !problems.is_empty() {
        eprintln!("the server logged {} warnings or errors; the first ones:", problems.len());
        for line in problems.iter().take(5) {
            eprintln!("  {line}");
        }
    }
    let errors = tally.errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if !errors.is_empty() {
        eprintln!("failed invocations by kind: {errors:?}");
    }
    server.terminate(Duration::from_secs(40))?;

    let summary = summarize(&samples, &tally, args, run.as_secs_f64());
    let verdict = check(&summary, args);
    Ok((summary.figures, verdict))
}

/// One request through the function's HTTP trigger.
async fn call(http: reqwest::Client, url: String, tally: Arc<Tally>) {
    tally.sent.fetch_add(1, Ordering::SeqCst);
    tally.in_flight.fetch_add(1, Ordering::SeqCst);
    let t = std::time::Instant::now();
    let outcome = async {
        let r = http.get(&url).send().await.map_err(|e| format!("transport: {}", root_cause(&e)))?;
        let (status, cold) = (r.status(), r.headers().get("x-hearth-cold-start").is_some_and(|v| v == "true"));
        let body = r.bytes().await.map_err(|e| format!("body: {}", root_cause(&e)))?;
        if !status.is_success() {
            let code = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["code"].as_str().map(str::to_owned))
                .unwrap_or_default();
            return Err(format!("HTTP {} {code}", status.as_u16()).trim_end().to_owned());
        }
        if &body[..] != b"ok" {
            return Err("unexpected body".to_owned());
        }
        Ok(cold)
    }
    .await;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(cold) => {
            tally.ok.fetch_add(1, Ordering::SeqCst);
            if cold {
                tally.cold_starts.fetch_add(1, Ordering::SeqCst);
            }
            tally.window.lock().unwrap_or_else(|p| p.into_inner()).push(ms);
        }
        Err(kind) => tally.error(kind),
    }
    tally.in_flight.fetch_sub(1, Ordering::SeqCst);
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut e = e;
    while let Some(next) = e.source() {
        e = next;
    }
    e.to_string()
}

fn sample(server: &HearthProcess, tally: &Tally, at_s: f64, label: &'static str) -> Result<Sample> {
    let mut window = std::mem::take(&mut *tally.window.lock().unwrap_or_else(|p| p.into_inner()));
    tally.all.lock().unwrap_or_else(|p| p.into_inner()).extend(window.iter().map(|&ms| (at_s, ms)));
    Ok(Sample {
        at_s,
        label,
        reading: server.read()?,
        ok: tally.ok.load(Ordering::SeqCst),
        errors: tally.errors(),
        cold_starts: tally.cold_starts.load(Ordering::SeqCst),
        p99_ms: p99(&mut window),
    })
}

fn p99(ms: &mut [f64]) -> f64 {
    if ms.is_empty() {
        return 0.0;
    }
    ms.sort_by(f64::total_cmp);
    ms[((ms.len() as f64 - 1.0) * 0.99).round() as usize]
}

fn print_header() {
    eprintln!(
        "| t (s) | point | RSS (MB) | fds | threads | instances | db (MB) | ok | errors | cold starts | p99 (ms) |"
    );
    eprintln!("|---|---|---|---|---|---|---|---|---|---|---|");
}

fn print_row(s: &Sample) {
    let r = &s.reading;
    eprintln!(
        "| {:.0} | {} | {:.1} | {} | {} | {} | {:.2} | {} | {} | {} | {:.0} |",
        s.at_s,
        s.label,
        r.rss_kb as f64 / 1024.0,
        r.fds,
        r.threads,
        r.instances,
        r.db_bytes as f64 / 1048576.0,
        s.ok,
        s.errors,
        s.cold_starts,
        s.p99_ms
    );
}

/// What the checks look at, and the figures.
struct Summary {
    figures: Vec<Figure>,
    requests: u64,
    errors: u64,
    start: Reading,
    end: Reading,
    idle_before: Reading,
    idle_after: Reading,
}

/// A resource's name, unit, unit per hour, and how to read it.
type Metric = (&'static str, &'static str, &'static str, fn(&Reading) -> f64);

/// Least-squares slope of `(t, y)`, per hour.
fn slope_per_hour(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let (num, den) =
        points.iter().fold((0.0, 0.0), |(num, den), &(x, y)| (num + (x - mx) * (y - my), den + (x - mx) * (x - mx)));
    if den == 0.0 { 0.0 } else { num / den * 3600.0 }
}

fn summarize(samples: &[Sample], tally: &Tally, args: &SoakArgs, run_s: f64) -> Summary {
    let idle_before = samples[0].reading;
    let idle_after = samples[samples.len() - 1].reading;
    let during: Vec<&Sample> = samples.iter().filter(|s| s.label != "idle before" && s.label != "idle after").collect();
    let start_i = during.iter().position(|s| s.label == "start").unwrap_or(0);
    let loaded = &during[start_i..];
    let (start, end) = (loaded[0].reading, loaded[loaded.len() - 1].reading);
    let half = run_s / 2.0;
    let metrics: [Metric; 5] = [
        ("rss", "MB", "MB/h", |r| r.rss_kb as f64 / 1024.0),
        ("fds", "descriptors", "descriptors/h", |r| r.fds as f64),
        ("threads", "threads", "threads/h", |r| r.threads as f64),
        ("cgroups", "cgroups", "cgroups/h", |r| r.instances as f64),
        ("db", "MB", "MB/h", |r| r.db_bytes as f64 / 1048576.0),
    ];
    let mut figures = vec![];
    for (name, unit, per_hour, value) in metrics {
        let first: Vec<(f64, f64)> =
            loaded.iter().filter(|s| s.at_s < half).map(|s| (s.at_s, value(&s.reading))).collect();
        let second: Vec<(f64, f64)> =
            loaded.iter().filter(|s| s.at_s >= half).map(|s| (s.at_s, value(&s.reading))).collect();
        let (v0, v1) = (value(&start), value(&end));
        figures.push(figure(&format!("soak.{name}.end"), v1, unit, "after warm-up", v0));
        figures.push(figure(&format!("soak.{name}.drift"), v1 - v0, unit, "after warm-up", v0));
        figures.push(figure(
            &format!("soak.{name}.slope_last_half"),
            slope_per_hour(&second),
            per_hour,
            "the first half's slope",
            slope_per_hour(&first),
        ));
        figures.push(figure(
            &format!("soak.{name}.idle_after"),
            value(&idle_after),
            unit,
            "idle before the load",
            value(&idle_before),
        ));
    }
    let sent = tally.sent.load(Ordering::SeqCst);
    let errors = tally.errors();
    let ok = tally.ok.load(Ordering::SeqCst);
    let allowed = (sent as f64 * args.max_error_pct / 100.0).floor();
    figures.push(figure("soak.requests", ok as f64, "requests", "sent", sent as f64));
    let scheduled = (run_s / args.deploy_every_s.max(1) as f64).ceil() - 1.0;
    figures.push(figure(
        "soak.deploys",
        tally.deploys.load(Ordering::SeqCst) as f64,
        "versions",
        "scheduled",
        scheduled,
    ));
    figures.push(figure("soak.errors", errors as f64, "requests", "allowed (--max-error-pct)", allowed));
    figures.push(figure(
        "soak.cold_starts",
        tally.cold_starts.load(Ordering::SeqCst) as f64,
        "requests",
        "requests",
        ok as f64,
    ));
    let all = tally.all.lock().unwrap_or_else(|p| p.into_inner());
    let (mut early, mut late): (Vec<f64>, Vec<f64>) = (vec![], vec![]);
    for &(at, ms) in all.iter() {
        if at < half { early.push(ms) } else { late.push(ms) }
    }
    figures.push(figure("soak.latency.p99_last_half", p99(&mut late), "ms", "the first half's p99", p99(&mut early)));
    Summary { figures, requests: sent, errors, start, end, idle_before, idle_after }
}

/// The soak's verdict: errors within the tolerance, no descriptor or cgroup leak, RSS not
/// doubled.
fn check(s: &Summary, args: &SoakArgs) -> Result<()> {
    let mut failed = vec![];
    if s.errors as f64 > s.requests as f64 * args.max_error_pct / 100.0 {
        failed.push(format!("{} of {} invocations failed (over {}%)", s.errors, s.requests, args.max_error_pct));
    }
    let grown = s.idle_after.fds.saturating_sub(s.idle_before.fds);
    if grown > args.max_fd_growth {
        failed.push(format!(
            "the idle server holds {} descriptors after the load, {} before (over +{})",
            s.idle_after.fds, s.idle_before.fds, args.max_fd_growth
        ));
    }
    let groups = s.idle_after.instances.saturating_sub(s.idle_before.instances);
    if groups > args.max_cgroup_growth {
        failed.push(format!(
            "the idle server has {} instance cgroups after the load, {} before (over +{})",
            s.idle_after.instances, s.idle_before.instances, args.max_cgroup_growth
        ));
    }
    if s.end.rss_kb as f64 > s.start.rss_kb as f64 * args.max_rss_ratio {
        failed.push(format!(
            "RSS grew from {} to {} MB (over {}x)",
            s.start.rss_kb / 1024,
            s.end.rss_kb / 1024,
            args.max_rss_ratio
        ));
    }
    if !failed.is_empty() {
        bail!("soak failed: {}", failed.join("; "));
    }
    Ok(())
}
