//! `hearth-bench replay`: the Azure 2019 trace sample replayed in virtual time against
//! keep-alive policies (the same policy code the server runs, `hearth_scale`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use hearth_scale::EvictionPolicy;
use hearth_scale::node_replay::{NodeBudget, replay_node};
use hearth_scale::simulate::{SimConfig, SimResult, frontier_at, replay};
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

/// The fixed keep-alives of the frontier adaptive is judged against, in seconds.
const FRONTIER_S: [u64; 6] = [60, 120, 300, 600, 1200, 1800];

/// Node-memory budgets, as fractions of the peak the trace commits unbounded.
const BUDGETS: [(&str, f64); 2] = [("budget_25pct", 0.25), ("budget_50pct", 0.5)];

/// What a full node does, as compared under a budget (least-recently-used first: the
/// baseline most platforms use).
const EVICTIONS: [(&str, EvictionPolicy); 3] =
    [("lru", EvictionPolicy::Lru), ("greedy_dual", EvictionPolicy::GreedyDual), ("refuse", EvictionPolicy::Off)];

/// The keep-alive under the memory budgets: fixed 10 minutes, which keeps the most idle.
const BUDGET_KEEP_ALIVE_S: u64 = 600;

/// The simulation, per policy: cold-start rate, idle memory, p99 added latency; then the
/// fixed keep-alive frontier with adaptive placed on it at equal idle memory; then the
/// node-memory budgets with each eviction policy.
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
    let mut out = compare("replay", &runs);
    out.extend(frontier(&trace, &config));
    out.extend(budgets(&trace, &config));
    Ok(out)
}

fn fixed(keep_s: u64) -> impl Fn() -> Box<dyn hearth_scale::KeepAlivePolicy> {
    move || keep_alive_policy(PolicyKind::Fixed, Duration::from_secs(keep_s), Duration::from_secs(60))
}

/// Fixed keep-alives from 60 s to 30 minutes (cold-start rate against idle memory), and the
/// cold-start rate the frontier reaches at adaptive's idle memory (linear between its two
/// neighbours; clamped at the ends) against adaptive's own.
fn frontier(trace: &Trace, config: &SimConfig) -> Vec<Figure> {
    let points: Vec<(u64, SimResult)> = FRONTIER_S.iter().map(|&s| (s, replay(trace, fixed(s), config))).collect();
    let runs: Vec<(String, Measured)> = points
        .iter()
        .map(|(s, r)| {
            let name = if s % 60 == 0 && *s > 60 { format!("fixed_{}min", s / 60) } else { format!("fixed_{s}s") };
            (
                name,
                vec![("cold_start_rate", r.cold_start_rate() * 100.0, "%"), ("idle_memory", r.idle_gb_seconds, "GB-s")],
            )
        })
        .collect();
    let named: Vec<(&str, Measured)> = runs.iter().map(|(n, m)| (n.as_str(), m.clone())).collect();
    let mut out = compare("replay.frontier", &named);
    let adaptive = replay(
        trace,
        || keep_alive_policy(PolicyKind::Adaptive, Duration::from_secs(90), Duration::from_secs(60)),
        config,
    );
    let at = adaptive.idle_gb_seconds;
    let curve: Vec<(f64, f64)> = points.iter().map(|(_, r)| (r.idle_gb_seconds, r.cold_start_rate() * 100.0)).collect();
    let on_frontier = frontier_at(&curve, at);
    eprintln!(
        "adaptive: {:.3}% cold starts at {at:.0} GB-s idle; the fixed frontier at that idle memory: {on_frontier:.3}%",
        adaptive.cold_start_rate() * 100.0
    );
    out.push(crate::figure(
        "replay.adaptive.cold_start_rate_at_equal_idle_memory",
        adaptive.cold_start_rate() * 100.0,
        "%",
        "fixed_frontier",
        on_frontier,
    ));
    out
}

/// The node under 25 % and 50 % of the memory the trace commits at its peak (unbounded,
/// fixed 10-minute keep-alive): cold-start rate, refused calls and evictions when a full
/// node refuses (as before eviction), evicts the least recently used idle instance, or
/// evicts by greedy-dual-size-frequency.
fn budgets(trace: &Trace, config: &SimConfig) -> Vec<Figure> {
    let peak = replay_node(trace, fixed(BUDGET_KEEP_ALIVE_S), config, None).peak_mb;
    eprintln!("peak committed memory, unbounded, fixed {BUDGET_KEEP_ALIVE_S} s keep-alive: {peak:.0} MB");
    let mut out = vec![];
    for (budget_name, fraction) in BUDGETS {
        let runs: Vec<(&str, Measured)> = EVICTIONS
            .iter()
            .map(|&(name, eviction)| {
                let budget = NodeBudget { memory_mb: peak * fraction, eviction };
                let r = replay_node(trace, fixed(BUDGET_KEEP_ALIVE_S), config, Some(budget));
                let measured = vec![
                    ("cold_start_rate", r.sim.cold_start_rate() * 100.0, "%"),
                    ("refused_rate", r.refused_rate() * 100.0, "%"),
                    ("held_rate", r.held as f64 * 100.0 / r.sim.invocations.max(1) as f64, "%"),
                    ("not_warm_rate", (r.sim.cold_start_rate() + r.refused_rate()) * 100.0, "%"),
                    ("evictions", r.evictions as f64, "instances"),
                    ("idle_memory", r.sim.idle_gb_seconds, "GB-s"),
                ];
                (name, measured)
            })
            .collect();
        out.extend(compare(&format!("replay.{budget_name}"), &runs));
    }
    out
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
