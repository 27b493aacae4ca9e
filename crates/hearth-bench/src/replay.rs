//! `hearth-bench replay`: the Azure 2019 trace sample replayed in virtual time against
//! keep-alive policies (the same policy code the server runs, `hearth_scale`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use hearth_scale::simulate::{SimConfig, replay};
use hearth_scale::trace::Trace;
use hearth_scale::{PolicyKind, keep_alive_policy};

use crate::{Figure, figure};

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

/// The policies compared: fixed keep-alives of 90 s (Hearth's default) and 10 minutes, and
/// the adaptive histogram policy (falling back to 90 s).
pub const POLICIES: [(&str, PolicyKind, u64); 3] = [
    ("fixed_90s", PolicyKind::Fixed, 90),
    ("fixed_10min", PolicyKind::Fixed, 600),
    ("adaptive", PolicyKind::Adaptive, 90),
];

/// One policy's measurements: (metric, value, unit).
type Measured = Vec<(&'static str, f64, &'static str)>;

/// Every policy's measurements as figures named `prefix.policy.metric`, each against the
/// first policy's.
fn compare(prefix: &str, runs: &[(&str, Measured)]) -> Vec<Figure> {
    let (base_name, base) = &runs[0];
    runs.iter()
        .flat_map(|(name, measured)| {
            measured.iter().zip(base).map(move |((metric, value, unit), (_, base_value, _))| {
                figure(&format!("{prefix}.{name}.{metric}"), *value, unit, base_name, *base_value)
            })
        })
        .collect()
}

/// The simulation, per policy: cold-start rate, idle memory, p99 added latency.
pub fn figures(args: &ReplayArgs) -> Result<Vec<Figure>> {
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
    let runs: Vec<(&str, Measured)> = POLICIES
        .iter()
        .map(|&(name, kind, keep_s)| {
            let make = || keep_alive_policy(kind, Duration::from_secs(keep_s), Duration::from_secs(60));
            let r = replay(&trace, make, &config);
            let measured = vec![
                ("cold_start_rate", r.cold_start_rate() * 100.0, "%"),
                ("idle_memory", r.idle_gb_seconds, "GB-s"),
                ("p99_added_latency", r.p99_added_ms, "ms"),
            ];
            (name, measured)
        })
        .collect();
    Ok(compare("replay", &runs))
}

/// The live replay, per policy, each on a server of its own.
pub async fn live_figures(args: &ReplayArgs) -> Result<Vec<Figure>> {
    let mut runs: Vec<(&str, Measured)> = vec![];
    for (name, kind, keep_s) in POLICIES {
        eprintln!("live replay, {name}: {} trace minutes at {}x", args.minutes, args.speed);
        let r = crate::replay_live::run(args, kind, keep_s).await?;
        let rate = r.cold_starts as f64 * 100.0 / r.invocations.max(1) as f64;
        let measured = vec![
            ("cold_start_rate", rate, "%"),
            ("idle_memory", r.idle_gb_seconds, "GB-s"),
            ("p99_latency", r.p99_latency_ms, "ms"),
            ("errors", r.errors as f64, "requests"),
            ("invocations", r.invocations as f64, "requests"),
        ];
        runs.push((name, measured));
    }
    Ok(compare("replay_live", &runs))
}
