//! Starting an instance for a function version: code from the node cache, then the agent.

use std::sync::Arc;
use std::time::Instant;

use hearth_agent::{
    CaptureLimits, CodeCache, ErrorDocument, ErrorReport, Instance, InstanceFactory, InstanceSpec, LogEvent, LogOutput,
    LogSink, StartFailure, TRUNCATED, error_type, new_instance_id,
};
use hearth_types::{CodeDigest, FunctionConfig, FunctionName, LogLine, LogStream};

use crate::log_budget::{Fate, LogBudgets};
use crate::meter::Meter;

/// What every instance of one version is started from.
#[derive(Debug, Clone)]
pub struct InstanceTemplate {
    pub function: FunctionName,
    pub version: u32,
    pub config: FunctionConfig,
    pub digest: CodeDigest,
}

pub struct Launcher {
    pub meter: Meter,
    /// Memory this node admits for instances, and what live and starting ones hold.
    pub memory: Arc<NodeMemory>,
    /// Which idle instances go when the memory is full and a held request needs one.
    pub evictions: crate::eviction::Evictions,
    pub cache: CodeCache,
    pub factory: InstanceFactory,
    pub region: String,
    /// Each instance's output limits (line length, bytes per invocation).
    pub log_capture: CaptureLimits,
    /// Each function's output budget per minute, shared by its instances.
    pub log_budgets: LogBudgets,
    pub metrics: Arc<crate::Metrics>,
}

/// The node's memory budget for instances: admission control, so that a full node refuses
/// new instances instead of over-committing.
#[derive(Debug)]
pub struct NodeMemory {
    pub limit_mb: u64,
    committed_mb: std::sync::atomic::AtomicU64,
}

/// Memory held for one instance; given back on drop.
#[derive(Debug)]
pub struct Reservation {
    memory: Arc<NodeMemory>,
    mb: u64,
}

impl NodeMemory {
    pub fn new(limit_mb: u64) -> Arc<Self> {
        Arc::new(Self { limit_mb, committed_mb: Default::default() })
    }

    pub fn committed_mb(&self) -> u64 {
        self.committed_mb.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Instances of `mb` that still fit.
    pub fn room(&self, mb: u64) -> u32 {
        (self.limit_mb.saturating_sub(self.committed_mb()) / mb.max(1)).min(u64::from(u32::MAX)) as u32
    }

    /// Holds `mb` for an instance, if they fit.
    pub fn reserve(self: &Arc<Self>, mb: u64) -> Option<Reservation> {
        use std::sync::atomic::Ordering;
        self.committed_mb
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| (used + mb <= self.limit_mb).then_some(used + mb))
            .ok()
            .map(|_| Reservation { memory: self.clone(), mb })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.memory.committed_mb.fetch_sub(self.mb, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Launcher {
    /// Starts one instance; on failure returns the error document its callers get.
    pub async fn launch(&self, template: &InstanceTemplate) -> Result<Instance, ErrorReport> {
        let span = tracing::info_span!("start", function = %template.function);
        tracing::Instrument::instrument(self.launch_in_span(template), span).await
    }

    async fn launch_in_span(&self, template: &InstanceTemplate) -> Result<Instance, ErrorReport> {
        let started = std::time::Instant::now();
        let materialized = self.cache.materialize(&template.digest, template.config.runtime).await;
        self.metrics.operation("hearth_code_cache_operation_seconds", "materialize", started.elapsed());
        let code_dir = match materialized {
            Ok(dir) => dir,
            Err(e) => {
                tracing::error!(function = %template.function, %e, "cannot prepare code");
                let doc = ErrorDocument::new(
                    error_type::CODE_UNAVAILABLE,
                    format!("the platform could not prepare the function's code: {e}"),
                );
                return Err(doc.into());
            }
        };
        let spec = InstanceSpec {
            instance_id: new_instance_id(),
            function: template.function.clone(),
            version: template.version,
            config: template.config.clone(),
            code_dir,
            region: self.region.clone(),
        };
        let output = LogOutput { sink: self.log_sink(&template.function), limits: self.log_capture };
        let started = self.factory.start(&spec, Some(output)).await;
        started.map_err(|f: StartFailure| {
            tracing::warn!(function = %template.function, version = template.version, error = %f, "instance failed to start");
            f.report()
        })
    }

    /// Where an instance of `function` sends its output: the meter, within the function's
    /// budget per minute (the platform's own lines, such as the agent's markers, are not
    /// charged).
    fn log_sink(&self, function: &FunctionName) -> LogSink {
        let (meter, function, budget) = (self.meter.clone(), function.clone(), self.log_budgets.of(function));
        let per_minute_kib = self.log_budgets.bytes_per_minute / 1024;
        Arc::new(move |e: LogEvent| {
            let line = |request_id: Option<String>, stream, message| LogLine {
                seq: 0,
                function: function.clone(),
                request_id,
                at: e.at.into(),
                stream,
                message,
            };
            if e.stream == LogStream::Platform {
                return meter.log(line(e.request_id, e.stream, e.line));
            }
            // A line costs its newline too, so a flood of empty lines is not free.
            let admit = budget.lock().unwrap_or_else(|p| p.into_inner()).admit(e.line.len() as u64 + 1, Instant::now());
            if let Some(d) = admit.dropped_before {
                let message = format!(
                    "{TRUNCATED} {} lines ({} bytes) of output were dropped: the function passed its log budget of {per_minute_kib} KiB per minute",
                    d.lines, d.bytes
                );
                meter.log(line(e.request_id.clone(), LogStream::Platform, message));
            }
            match admit.fate {
                Fate::Keep => meter.log(line(e.request_id, e.stream, e.line)),
                Fate::Mark => {
                    let message = format!(
                        "{TRUNCATED} the function's output passed its log budget of {per_minute_kib} KiB per minute; lines are dropped until the next minute"
                    );
                    meter.log(line(e.request_id, LogStream::Platform, message));
                }
                Fate::Drop => {}
            }
        })
    }
}
