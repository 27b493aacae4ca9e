//! `hearth-bench replay`: the Azure 2019 trace sample replayed in virtual time against
//! keep-alive policies (the same policy code the server runs, `hearth_scale`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use hearth_scale::simulate::{SimConfig, SimResult, replay};
use hearth_scale::trace::Trace;
use hearth_scale::{Adaptive, Fixed, KeepAlivePolicy};

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The trace folder (invocations.csv, durations.csv, memory.csv).
    #[arg(long, default_value = "../shared/traces/azure2019-sample100")]
    pub trace: PathBuf,
    /// The latency a cold start adds, in ms (default: Hearth's measured Python cold start).
    #[arg(long, default_value_t = 50)]
    pub cold_start_ms: u64,
    /// Seed for the arrival times within each minute (spread uniformly at random).
    #[arg(long, default_value_t = 2019)]
    pub seed: u64,
    /// Replay a time-compressed slice against a real server instead of simulating.
    #[arg(long)]
    pub live: bool,
    /// Live: how many times faster than the trace.
    #[arg(long, default_value_t = 120.0)]
    pub speed: f64,
    /// Live: the slice's first minute (from the trace's start).
    #[arg(long, default_value_t = 0)]
    pub from_minute: usize,
    /// Live: the slice's length in trace minutes.
    #[arg(long, default_value_t = 120)]
    pub minutes: usize,
    /// Live: at most this many functions.
    #[arg(long, default_value_t = 20)]
    pub functions: usize,
    /// Live: only functions called at most this often in any minute.
    #[arg(long, default_value_t = 20)]
    pub max_per_minute: u32,
}

type Factory = Box<dyn Fn() -> Box<dyn KeepAlivePolicy>>;

/// The policies compared: fixed keep-alives of 90 s (Hearth's default) and 10 minutes, and
/// the adaptive histogram policy (falling back to 90 s).
fn policies() -> Vec<(&'static str, Factory)> {
    vec![
        ("fixed_90s", Box::new(|| Box::new(Fixed(Duration::from_secs(90))))),
        ("fixed_10min", Box::new(|| Box::new(Fixed(Duration::from_secs(600))))),
        ("adaptive", Box::new(|| Box::new(Adaptive::new(Duration::from_secs(90))))),
    ]
}

/// Runs every policy; returns (name, result) in order.
pub fn run(args: &ReplayArgs) -> Result<Vec<(&'static str, SimResult)>> {
    let trace = Trace::load(&args.trace)
        .with_context(|| format!("cannot load the trace from {} (use --trace DIR)", args.trace.display()))?;
    eprintln!(
        "replaying {} functions, {} minutes, {} invocations (arrivals uniform at random within each minute, seed {})",
        trace.functions.len(),
        trace.minutes(),
        trace.invocations(),
        args.seed
    );
    let config = SimConfig { cold_start: Duration::from_millis(args.cold_start_ms), seed: args.seed };
    Ok(policies().into_iter().map(|(name, make)| (name, replay(&trace, make, &config))).collect())
}
