//! `hearth-bench pressure`: a node whose memory holds the load's busy instances but not the
//! idle ones its autoscaler and keep-alive would also keep. Functions (Python, 128 MB, a
//! 20 ms handler) behind HTTP triggers; callers each call one function after another, drawn
//! from a Zipf distribution whose ranking turns at every phase, so the instances the last
//! phase left idle hold memory the next one needs. One server per eviction policy, today's
//! refusal (`off`) the baseline: refused calls (`429 NodeMemoryFull`), cold starts, p99
//! latency and evictions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hearth_agent::ProcessDriver;
use hearth_scale::EvictionPolicy;
use hearth_scale::trace::SplitMix64;

use crate::harness::{Bench, Code, ServerSetup};
use crate::{Figure, figure, percentile};

const SLEEPY_HELLO: &str = "import time\ndef handler(event, context):\n    time.sleep(0.02)\n    return {'statusCode': 200, 'body': 'Hello FaaS'}\n";
const SLEEPY: Code = Code {
    runtime: "python3",
    handler: "main.handler",
    file: "main.py",
    source: SLEEPY_HELLO.as_bytes(),
    answer: "Hello FaaS",
};
const MEMORY_MB: u32 = 128;

#[derive(clap::Args)]
pub struct PressureArgs {
    /// Functions deployed.
    #[arg(long, default_value_t = 30)]
    pub functions: usize,
    /// Concurrent callers.
    #[arg(long, default_value_t = 48)]
    pub callers: usize,
    /// Calls per phase, all callers together.
    #[arg(long, default_value_t = 3000)]
    pub requests: usize,
    /// Phases (the popularity ranking turns by functions/phases at each).
    #[arg(long, default_value_t = 4)]
    pub phases: usize,
    /// The node's memory for instances (MB); by default room for 1.25 instances of 128 MB
    /// per caller: all busy ones fit, not all the idle ones kept besides.
    #[arg(long)]
    pub node_memory_mb: Option<u64>,
}

const POLICIES: [(&str, EvictionPolicy); 3] =
    [("refuse", EvictionPolicy::Off), ("lru", EvictionPolicy::Lru), ("greedy_dual", EvictionPolicy::GreedyDual)];

#[derive(Default)]
struct Outcome {
    calls: u64,
    refused: u64,
    cold: u64,
    errors: u64,
    latencies: Vec<Duration>,
}

pub async fn figures(args: &PressureArgs) -> Result<Vec<Figure>> {
    if args.functions == 0 || args.callers == 0 || args.phases == 0 || args.requests < args.callers {
        bail!("--functions, --callers and --phases must be positive, and --requests at least --callers");
    }
    let node_mb = args.node_memory_mb.unwrap_or(args.callers as u64 * u64::from(MEMORY_MB) * 5 / 4);
    let mut runs = vec![];
    for (name, policy) in POLICIES {
        eprintln!(
            "{name}: {} functions, {} callers, {} phases of {} calls, node memory {node_mb} MB",
            args.functions, args.callers, args.phases, args.requests
        );
        let setup = ServerSetup {
            node_memory_mb: Some(node_mb),
            eviction_policy: policy,
            ..ServerSetup::new(ProcessDriver::detect(), Some(Default::default()))
        };
        let bench = Bench::start(setup).await?;
        for f in 0..args.functions {
            bench.deploy(&format!("p{f}"), SLEEPY, MEMORY_MB, args.callers as u32).await?;
        }
        let mut all = Outcome::default();
        for phase in 0..args.phases {
            let o = phase_load(&bench, args, phase).await?;
            eprintln!("  phase {}: {} calls, {} refused, {} cold starts", phase + 1, o.calls, o.refused, o.cold);
            all.calls += o.calls;
            all.refused += o.refused;
            all.cold += o.cold;
            all.errors += o.errors;
            all.latencies.extend(o.latencies);
        }
        let evicted = evictions(&bench);
        for f in 0..args.functions {
            bench.client.delete_function(&format!("p{f}")).await?;
        }
        runs.push((name, all, evicted));
    }
    let rate = |n: u64, o: &Outcome| n as f64 * 100.0 / o.calls.max(1) as f64;
    let (base_name, base, base_evicted) = &runs[0];
    let p99 = |o: &Outcome| if o.latencies.is_empty() { 0.0 } else { percentile(&mut o.latencies.clone(), 0.99) };
    let base_p99 = p99(base);
    let mut out = vec![];
    for (name, o, evicted) in &runs {
        let p = |m: &str| format!("pressure.{name}.{m}");
        out.push(figure(&p("refused_rate"), rate(o.refused, o), "%", base_name, rate(base.refused, base)));
        out.push(figure(&p("cold_start_rate"), rate(o.cold, o), "%", base_name, rate(base.cold, base)));
        out.push(figure(&p("p99_latency"), p99(o), "ms", base_name, base_p99));
        out.push(figure(&p("evictions"), *evicted as f64, "instances", base_name, *base_evicted as f64));
        out.push(figure(&p("errors"), o.errors as f64, "requests", base_name, base.errors as f64));
    }
    Ok(out)
}

/// One phase: `args.requests` calls from `args.callers` callers, each drawing its function
/// from a Zipf(1) ranking turned by `phase`.
async fn phase_load(bench: &Arc<Bench>, args: &PressureArgs, phase: usize) -> Result<Outcome> {
    let n = args.functions;
    let weights: Vec<f64> = (1..=n).map(|rank| 1.0 / rank as f64).collect();
    let total: f64 = weights.iter().sum();
    let turn = phase * n / args.phases;
    let tasks: Vec<_> = (0..args.callers)
        .map(|caller| {
            let calls = args.requests / args.callers + usize::from(caller < args.requests % args.callers);
            let (b, weights) = (bench.clone(), weights.clone());
            tokio::spawn(async move {
                let mut rng = SplitMix64((phase * 1_000 + caller) as u64);
                let mut o = Outcome::default();
                for _ in 0..calls {
                    let mut x = rng.unit() * total;
                    let rank = weights.iter().position(|w| {
                        x -= w;
                        x < 0.0
                    });
                    let f = (rank.unwrap_or(n - 1) + turn) % n;
                    call(&b, &format!("/p{f}"), &mut o).await;
                }
                o
            })
        })
        .collect();
    let mut all = Outcome::default();
    for t in tasks {
        let o = t.await?;
        all.calls += o.calls;
        all.refused += o.refused;
        all.cold += o.cold;
        all.errors += o.errors;
        all.latencies.extend(o.latencies);
    }
    Ok(all)
}

/// One call, counted: answered (cold or warm), refused for memory, or anything else.
async fn call(b: &Bench, path: &str, o: &mut Outcome) {
    o.calls += 1;
    let t = Instant::now();
    let Ok(r) = b.http.get(format!("{}{path}", b.url)).send().await else {
        o.errors += 1;
        return;
    };
    let status = r.status();
    let cold = r.headers().get("x-hearth-cold-start").is_some_and(|v| v == "true");
    let body = r.bytes().await.unwrap_or_default();
    if status.is_success() && &body[..] == SLEEPY.answer.as_bytes() {
        o.latencies.push(t.elapsed());
        o.cold += u64::from(cold);
    } else if status.as_u16() == 429 && String::from_utf8_lossy(&body).contains("NodeMemoryFull") {
        o.refused += 1;
    } else {
        o.errors += 1;
    }
}

/// `hearth_instances_evicted_total`, from the server's own metrics.
fn evictions(bench: &Bench) -> u64 {
    let Some(gateway) = &bench.gateway else { return 0 };
    let text = gateway.metrics().render(&gateway.metric_levels());
    text.lines()
        .find_map(|l| l.strip_prefix("hearth_instances_evicted_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}
