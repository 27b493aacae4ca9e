use std::time::Duration;

/// The gateway's limits. Defaults here; the CLI's config module may override them.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Requests held per function version while instances start (then 429).
    pub queue_length: usize,
    /// Longest a held request waits for an instance; `None` = the function's timeout.
    pub queue_wait: Option<Duration>,
    /// Longest an instance may take to initialise.
    pub init_timeout: Duration,
    /// How often idle instances are checked against their keep-alive.
    pub reap_interval: Duration,
    /// Value of `AWS_REGION` inside functions.
    pub region: String,
    /// How long invocation records and log lines are kept.
    pub log_retention: Duration,
    /// How often records and log lines older than `log_retention` are pruned (10 minutes;
    /// shorter only to test it).
    pub prune_interval: Duration,
    /// What one instance's output may put in the log: the longest line (256 KiB) and the
    /// bytes per invocation (4 MiB). Past them, lines are cut or dropped, with a marker.
    pub log_capture: hearth_agent::CaptureLimits,
    /// Bytes of output one function (all its instances) may log per minute; past them, one
    /// marker line, then lines are dropped until the next minute.
    pub log_bytes_per_minute: u64,
    /// The pool of pre-warmed sandboxes; `None` turns it off.
    pub stem_cells: Option<hearth_agent::StemCellSettings>,
    /// The keep-alive policy of functions that do not choose one.
    pub keep_alive_policy: hearth_types::KeepAlivePolicyKind,
    /// Memory (sum of instances' `memory_mb`) this node admits; beyond it, new instances
    /// are refused rather than over-committed.
    pub node_memory_mb: u64,
    /// Which idle instances are evicted when the node's memory is full and a held request
    /// needs an instance (`greedy-dual`, `lru`; `off` refuses with `NodeMemoryFull`).
    pub eviction_policy: hearth_scale::EvictionPolicy,
    pub autoscaler: hearth_scale::AutoscalerConfig,
    /// Width of the adaptive keep-alive policy's histogram bins (one minute; shorter only
    /// to test it in seconds).
    pub adaptive_bin: Duration,
    /// Functions with Prometheus series of their own; the rest share `function="_other"`.
    pub metrics_max_functions: usize,
    /// A series not updated for this long is dropped (a deleted function's, or the
    /// histograms of a function idle that long).
    pub metrics_series_ttl: Duration,
    /// Invocation records (and so usage) and metrics of each invocation; off only to measure
    /// what they cost (`hearth-bench telemetry`).
    pub telemetry: bool,
}

/// 90% of the machine's memory, in MB (8 GiB if it cannot be read).
pub fn default_node_memory_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(8 * 1024, |kb| kb / 1024 * 9 / 10)
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            queue_length: 1_000,
            queue_wait: None,
            init_timeout: Duration::from_secs(10),
            reap_interval: Duration::from_millis(500),
            region: "us-east-1".into(),
            log_retention: Duration::from_secs(7 * 24 * 3600),
            prune_interval: Duration::from_secs(600),
            log_capture: hearth_agent::CaptureLimits::default(),
            log_bytes_per_minute: 16 * 1024 * 1024,
            stem_cells: Some(hearth_agent::StemCellSettings::default()),
            keep_alive_policy: hearth_types::KeepAlivePolicyKind::Fixed,
            node_memory_mb: default_node_memory_mb(),
            eviction_policy: hearth_scale::EvictionPolicy::GreedyDual,
            autoscaler: hearth_scale::AutoscalerConfig::default(),
            adaptive_bin: Duration::from_secs(60),
            metrics_max_functions: 1000,
            metrics_series_ttl: Duration::from_secs(600),
            telemetry: true,
        }
    }
}
