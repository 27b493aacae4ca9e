//! `hearth-bench telemetry`: what metering (invocation records, usage aggregates) and
//! metrics cost on the warm path. Two servers in one process, the same in all but that
//! (`GatewaySettings::telemetry`), each with one warm Python instance behind an HTTP trigger;
//! rounds alternate between them so the machine's noise falls on both.

use std::time::Duration;

use anyhow::Result;
use hearth_agent::ProcessDriver;

use crate::harness::{BENCH_MEMORY_MB, Bench, PYTHON, ServerSetup};
use crate::{Figure, figure, percentile};

#[derive(clap::Args)]
pub struct TelemetryArgs {
    /// Requests per measurement.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Alternating rounds (each measures both servers).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

pub async fn figures(args: &TelemetryArgs) -> Result<Vec<Figure>> {
    let server = |telemetry| {
        let mut setup = ServerSetup::new(ProcessDriver::detect(), None);
        setup.telemetry = telemetry;
        Bench::start(setup)
    };
    let (with, without) = (server(true).await?, server(false).await?);
    for b in [&with, &without] {
        b.deploy("warm", PYTHON, BENCH_MEMORY_MB, 1).await?;
        b.load("/warm", 200, 4).await?;
    }
    let (mut latency, mut rps): ([Vec<Duration>; 2], [Vec<f64>; 2]) = Default::default();
    for round in 0..args.rounds {
        eprintln!(
            "round {}/{}: {} requests at concurrency 1 and 4, each server",
            round + 1,
            args.rounds,
            args.requests
        );
        for (i, b) in [&with, &without].into_iter().enumerate() {
            let (times, _) = b.load("/warm", args.requests, 1).await?;
            latency[i].extend(times);
            let (_, r) = b.load("/warm", args.requests, 4).await?;
            rps[i].push(r);
        }
    }
    let baseline = "the same without records and metrics";
    let mut out = vec![];
    for (p, label) in [(0.5, "p50"), (0.99, "p99")] {
        let (v, b) = (percentile(&mut latency[0], p), percentile(&mut latency[1], p));
        out.push(figure(&format!("telemetry.warm.http.c1.{label}"), v, "ms", baseline, b));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (r_with, r_without) = (median(&mut rps[0]), median(&mut rps[1]));
    out.push(figure("telemetry.throughput.c4", r_with, "req/s", baseline, r_without));
    Ok(out)
}
