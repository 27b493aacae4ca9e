//! `hearth-bench replay --live`: a time-compressed slice of the trace replayed against a real
//! server, once per keep-alive policy. Time runs `speed` times faster: durations, keep-alive
//! times and the adaptive policy's bins are all divided by `speed`, so the policies see the
//! trace's shape in seconds instead of minutes.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hearth_agent::{ProcessDriver, StemCellSettings};
use hearth_blob::fixtures::{RawEntry, raw_zip};
use hearth_scale::PolicyKind;
use hearth_scale::trace::{Trace, TraceFunction};
use hearth_types::FunctionSpec;
use tokio::time::Instant;

use crate::harness::{Bench, ServerSetup};
use crate::replay::ReplayArgs;

const SLEEPER: &str =
    "import time\n\ndef handler(event, context):\n    time.sleep(event['sleep_ms'] / 1000)\n    return 'ok'\n";

/// What one policy's live run measured.
#[derive(Debug, Default)]
pub struct LiveResult {
    pub invocations: u64,
    pub cold_starts: u64,
    pub errors: u64,
    /// Idle instance memory, in trace time (GB-seconds).
    pub idle_gb_seconds: f64,
    pub p99_latency_ms: f64,
}

/// Minutes `from..from + minutes` of at most `functions` functions called in at least a
/// tenth of those minutes and at most `max_per_minute` times in any, the busiest first.
pub fn pick_slice(
    trace: &Trace,
    from: usize,
    minutes: usize,
    max_per_minute: u32,
    functions: usize,
) -> Vec<TraceFunction> {
    let to = from + minutes;
    let mut picked: Vec<TraceFunction> = trace
        .functions
        .iter()
        .map(|f| TraceFunction {
            per_minute: f.per_minute[from.min(f.per_minute.len())..to.min(f.per_minute.len())].to_vec(),
            ..f.clone()
        })
        .filter(|f| {
            let active = f.per_minute.iter().filter(|&&n| n > 0).count();
            active * 10 >= minutes && f.per_minute.iter().all(|&n| n <= max_per_minute)
        })
        .collect();
    picked.sort_by_key(|f| std::cmp::Reverse(f.per_minute.iter().sum::<u32>()));
    picked.truncate(functions);
    picked
}

pub async fn run(args: &ReplayArgs, policy: PolicyKind, keep_alive_trace_s: u64) -> Result<LiveResult> {
    let trace = Trace::load(&args.trace).with_context(|| format!("cannot load {}", args.trace.display()))?;
    let functions = pick_slice(&trace, args.from_minute, args.minutes, args.max_per_minute, args.functions);
    let speed = args.speed;
    let bin = Duration::from_secs(60).div_f64(speed);
    let setup = ServerSetup {
        adaptive_bin: bin,
        ..ServerSetup::new(ProcessDriver::detect(), Some(StemCellSettings::default()))
    };
    let bench = Bench::start(setup).await?;
    let package = bench.client.upload_package(raw_zip(&[RawEntry::file("main.py", SLEEPER.as_bytes())])).await?;
    let keep_alive = ((keep_alive_trace_s as f64 / speed).round() as i64).max(1);
    for (i, _) in functions.iter().enumerate() {
        let spec = FunctionSpec {
            runtime: "python3".into(),
            handler: Some("main.handler".into()),
            code_sha256: Some(package.sha256.to_string()),
            keep_alive_s: Some(keep_alive),
            keep_alive_policy: Some(policy.to_string()),
            max_instances: Some(50),
            timeout_s: Some(30),
            ..Default::default()
        };
        bench.client.put_function(&format!("trace-{i}"), &spec).await?;
    }
    // Every invocation at its compressed time, each in its own task.
    let start = Instant::now() + Duration::from_millis(200);
    let mut tasks = vec![];
    for (i, f) in functions.iter().enumerate() {
        let sleep_ms = (f.duration_ms / speed).min(5_000.0);
        for at in f.arrivals(args.seed) {
            let (b, name) = (bench.clone(), format!("trace-{i}"));
            let when = start + Duration::from_secs_f64(at / speed);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(when).await;
                let t = std::time::Instant::now();
                let payload = serde_json::json!({ "sleep_ms": sleep_ms }).to_string().into_bytes();
                let r = b.client.invoke(&name, payload, None).await;
                (r.map(|inv| inv.cold_start && inv.function_error.is_none()), t.elapsed())
            }));
        }
    }
    // Meanwhile, idle instances sampled every 100 ms.
    let end = start + Duration::from_secs_f64(args.minutes as f64 * 60.0 / speed);
    let sampler = {
        let (b, n) = (bench.clone(), functions.len());
        tokio::spawn(sample_idle(b, n, end))
    };
    let mut result = LiveResult::default();
    let mut latencies = vec![];
    for t in tasks {
        let (outcome, took) = t.await?;
        result.invocations += 1;
        latencies.push(took);
        match outcome {
            Ok(true) => result.cold_starts += 1,
            Ok(false) => {}
            Err(_) => result.errors += 1,
        }
    }
    let idle_instance_seconds = sampler.await??;
    // Deleting the functions drains their instances (and cancels pre-warms) before the next
    // policy's run.
    for i in 0..functions.len() {
        bench.client.delete_function(&format!("trace-{i}")).await?;
    }
    // 128 MB instances; real seconds x speed = trace seconds.
    result.idle_gb_seconds = idle_instance_seconds * speed * 128.0 / 1024.0;
    latencies.sort();
    if let Some(p99) = latencies.get(((latencies.len() as f64 - 1.0) * 0.99).round() as usize) {
        result.p99_latency_ms = p99.as_secs_f64() * 1000.0;
    }
    Ok(result)
}

/// Instance-seconds spent idle (ready, not busy) across the functions until `end`.
async fn sample_idle(b: Arc<Bench>, functions: usize, end: Instant) -> Result<f64> {
    let every = Duration::from_millis(100);
    let mut total = 0.0;
    while Instant::now() < end {
        for i in 0..functions {
            let list = b.client.instances(&format!("trace-{i}")).await?;
            let idle = list.iter().filter(|x| x.state == hearth_types::InstanceState::Ready).count();
            total += idle as f64 * every.as_secs_f64();
        }
        tokio::time::sleep(every).await;
    }
    Ok(total)
}
