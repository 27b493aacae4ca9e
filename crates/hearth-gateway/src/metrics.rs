//! Prometheus metrics, recorded through the `metrics` crate into a recorder of this
//! gateway's own (`metrics-exporter-prometheus`, which writes the exposition format), so two
//! servers in one process keep theirs apart.
//!
//! Events are recorded as they happen (invocations, cold starts, waits for an instance);
//! levels (instances, queues, memory, stem cells) are set from a [`Levels`] snapshot when the
//! metrics are rendered. Cardinality is bounded: at most `max_functions` functions have
//! series of their own (the rest share `function="_other"`), and a series not updated for
//! `series_ttl` is dropped. Each render refreshes the counters and levels of the functions
//! that exist, so a deleted function's series go within `series_ttl`, as do the histograms
//! of a function idle that long (they start again with its next invocation).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hearth_types::FunctionName;
use metrics::{Counter, Histogram, Recorder, SharedString};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use metrics_util::MetricKindMask;

/// Histogram buckets, in seconds: half a millisecond to fifteen minutes.
const BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0];

/// The instance states and event statuses every function's levels are given in.
const INSTANCE_STATES: [&str; 4] = ["starting", "ready", "busy", "draining"];
const EVENT_STATUSES: [&str; 3] = ["queued", "running", "dead_lettered"];

/// The label of functions past the cap.
pub const OTHER: &str = "_other";

pub use hearth_types::StartSource;

/// Levels read when the metrics are rendered.
#[derive(Debug, Clone, Default)]
pub struct Levels {
    /// Every function that exists.
    pub functions: Vec<FunctionName>,
    /// (function, state, count) of live instances.
    pub instances: Vec<(FunctionName, &'static str, usize)>,
    /// (function, requests waiting for an instance).
    pub activator_queue: Vec<(FunctionName, usize)>,
    /// (function, queued, running, dead-lettered, age of the oldest queued or running, s).
    pub events: Vec<(FunctionName, u64, u64, u64, f64)>,
    /// (runtime, memory MB, stem cells ready).
    pub stem_cells: Vec<(String, u32, usize)>,
    pub memory_limit_bytes: u64,
    pub memory_committed_bytes: u64,
}

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    max_functions: usize,
    /// Functions with series of their own.
    labelled: Mutex<BTreeSet<FunctionName>>,
    /// The series every invocation updates, kept between calls (a lookup by name and labels
    /// costs more than the update).
    hot: Mutex<HotSeries>,
    /// A handle unused this long is looked up again: the recorder drops a series not
    /// updated for `series_ttl`, and a handle kept past that would update nothing it shows.
    reuse_for: Duration,
}

/// Handles of the series on the invocation path, each with when it was last used.
#[derive(Default)]
struct HotSeries {
    invocations: HashMap<FunctionName, (InvocationSeries, Instant)>,
    activator_wait: Option<(Histogram, Instant)>,
}

struct InvocationSeries {
    /// The `function` label they were made with (the function's name, or `_other`).
    label: SharedString,
    success: Counter,
    error: Counter,
    duration: Histogram,
}

impl Metrics {
    pub fn new(max_functions: usize, series_ttl: Duration) -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("the buckets are not empty")
            .idle_timeout(MetricKindMask::ALL, Some(series_ttl))
            .build_recorder();
        let handle = recorder.handle();
        Self {
            recorder,
            handle,
            max_functions,
            labelled: Mutex::new(BTreeSet::new()),
            hot: Mutex::default(),
            reuse_for: series_ttl / 2,
        }
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder as &dyn Recorder, f)
    }

    /// The `function` label of `name`: its name while fewer than `max_functions` have one.
    pub fn label(&self, name: &FunctionName) -> SharedString {
        let mut labelled = self.labelled.lock().unwrap_or_else(|p| p.into_inner());
        if labelled.contains(name) || (labelled.len() < self.max_functions && labelled.insert(name.clone())) {
            SharedString::from(name.to_string())
        } else {
            SharedString::const_str(OTHER)
        }
    }

    /// One invocation ended: its outcome and time in the function.
    pub fn invoked(&self, function: &FunctionName, error: bool, duration: Duration) {
        let now = Instant::now();
        let mut hot = self.hot.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = |(_, used): &(InvocationSeries, Instant)| now.duration_since(*used) < self.reuse_for;
        if !hot.invocations.get(function).is_some_and(fresh) {
            let label = self.label(function);
            let series = self.with(|| InvocationSeries {
                label: label.clone(),
                success: metrics::counter!("hearth_invocations_total", "function" => label.clone(), "outcome" => "success"),
                error: metrics::counter!("hearth_invocations_total", "function" => label.clone(), "outcome" => "error"),
                duration: metrics::histogram!("hearth_invocation_duration_seconds", "function" => label),
            });
            hot.invocations.insert(function.clone(), (series, now));
        }
        let (series, used) = hot.invocations.get_mut(function).expect("inserted above");
        *used = now;
        if error { &series.error } else { &series.success }.increment(1);
        series.duration.record(duration);
    }

    /// An instance started for a waiting request, from `source`, in `took`.
    pub fn cold_start(&self, function: &FunctionName, source: StartSource, took: Duration) {
        let function = self.label(function);
        self.with(|| {
            metrics::counter!("hearth_cold_starts_total", "function" => function, "source" => source.as_str())
                .increment(1);
            metrics::histogram!("hearth_cold_start_duration_seconds", "source" => source.as_str()).record(took);
        });
    }

    /// Idle instances evicted to make room for another function's.
    pub fn evicted(&self, n: u64) {
        if n > 0 {
            self.with(|| metrics::counter!("hearth_instances_evicted_total").increment(n));
        }
    }

    /// A request waited `took` for an instance (zero for a warm one).
    pub fn acquired(&self, took: Duration) {
        let now = Instant::now();
        let mut hot = self.hot.lock().unwrap_or_else(|p| p.into_inner());
        let wait = match hot.activator_wait.take() {
            Some((h, used)) if now.duration_since(used) < self.reuse_for => h,
            _ => self.with(|| metrics::histogram!("hearth_activator_wait_seconds")),
        };
        wait.record(took);
        hot.activator_wait = Some((wait, now));
    }

    /// A store or code-cache operation took `took`.
    pub fn operation(&self, metric: &'static str, operation: &'static str, took: Duration) {
        self.with(|| metrics::histogram!(metric, "operation" => operation).record(took));
    }

    /// The exposition text, with `levels` set first and the existing functions' counters
    /// refreshed (so only those of deleted functions expire).
    pub fn render(&self, levels: &Levels) -> String {
        let live: BTreeSet<&FunctionName> = levels.functions.iter().collect();
        self.labelled.lock().unwrap_or_else(|p| p.into_inner()).retain(|f| live.contains(f));
        self.with(|| {
            metrics::counter!("hearth_instances_evicted_total").increment(0);
            for f in &levels.functions {
                let function = self.label(f);
                for outcome in ["success", "error"] {
                    metrics::counter!("hearth_invocations_total", "function" => function.clone(), "outcome" => outcome)
                        .increment(0);
                }
                for source in [StartSource::StemCell, StartSource::Full] {
                    let source = source.as_str();
                    metrics::counter!("hearth_cold_starts_total", "function" => function.clone(), "source" => source)
                        .increment(0);
                }
            }
            // Handles made under a label the function no longer has (it was deleted, or has
            // just been given its own name in place of `_other`) are made again when next used.
            self.hot
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .invocations
                .retain(|f, (series, _)| live.contains(f) && series.label == self.label(f));
            // Every existing function gets every level, zero when it has none: a level that
            // fell to nothing must say so, not keep its last value. Functions past the cap
            // add up under `_other`.
            let mut instances: BTreeMap<(SharedString, &str), f64> = BTreeMap::new();
            let mut waiting: BTreeMap<SharedString, f64> = BTreeMap::new();
            let mut events: BTreeMap<(SharedString, &str), f64> = BTreeMap::new();
            let mut oldest: BTreeMap<SharedString, f64> = BTreeMap::new();
            for f in &levels.functions {
                let function = self.label(f);
                for state in INSTANCE_STATES {
                    instances.insert((function.clone(), state), 0.0);
                }
                for status in EVENT_STATUSES {
                    events.insert((function.clone(), status), 0.0);
                }
                waiting.insert(function.clone(), 0.0);
                oldest.insert(function, 0.0);
            }
            for (f, state, n) in &levels.instances {
                *instances.entry((self.label(f), *state)).or_default() += *n as f64;
            }
            for (f, n) in &levels.activator_queue {
                *waiting.entry(self.label(f)).or_default() += *n as f64;
            }
            for (f, queued, running, dead, age) in &levels.events {
                let function = self.label(f);
                for (status, n) in EVENT_STATUSES.into_iter().zip([queued, running, dead]) {
                    *events.entry((function.clone(), status)).or_default() += *n as f64;
                }
                let o = oldest.entry(function).or_default();
                *o = o.max(*age);
            }
            for ((function, state), n) in instances {
                metrics::gauge!("hearth_instances", "function" => function, "state" => state).set(n);
            }
            for (function, n) in waiting {
                metrics::gauge!("hearth_activator_queue_depth", "function" => function).set(n);
            }
            for ((function, status), n) in events {
                metrics::gauge!("hearth_event_queue_depth", "function" => function, "status" => status).set(n);
            }
            for (function, age) in oldest {
                metrics::gauge!("hearth_event_oldest_age_seconds", "function" => function).set(age);
            }
            for (runtime, memory_mb, ready) in &levels.stem_cells {
                let memory = memory_mb.to_string();
                metrics::gauge!("hearth_stem_cells_ready", "runtime" => runtime.clone(), "memory_mb" => memory)
                    .set(*ready as f64);
            }
            metrics::gauge!("hearth_node_memory_limit_bytes").set(levels.memory_limit_bytes as f64);
            metrics::gauge!("hearth_node_memory_committed_bytes").set(levels.memory_committed_bytes as f64);
            describe();
        });
        self.handle.render()
    }
}

/// Help text for each metric.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("hearth_invocations_total", "Invocations that ended, by function and outcome.");
    describe_histogram!("hearth_invocation_duration_seconds", Unit::Seconds, "Time in the function per invocation.");
    describe_counter!("hearth_cold_starts_total", "Instances started for waiting requests, by source.");
    describe_histogram!(
        "hearth_cold_start_duration_seconds",
        Unit::Seconds,
        "Instance start-up time, by source (stem_cell: a pre-warmed sandbox; full: a new one)."
    );
    describe_histogram!("hearth_activator_wait_seconds", Unit::Seconds, "Time a request waited for an instance.");
    describe_gauge!("hearth_instances", "Live instances by function and state.");
    describe_counter!(
        "hearth_instances_evicted_total",
        "Idle instances evicted because the node's memory was needed for another function's."
    );
    describe_gauge!("hearth_activator_queue_depth", "Requests waiting for an instance, by function.");
    describe_gauge!("hearth_event_queue_depth", "Asynchronous events by function and status.");
    describe_gauge!("hearth_event_oldest_age_seconds", Unit::Seconds, "Age of the oldest queued or running event.");
    describe_gauge!("hearth_stem_cells_ready", "Pre-warmed sandboxes ready, by runtime and memory size.");
    describe_gauge!("hearth_node_memory_limit_bytes", Unit::Bytes, "Memory the node admits for instances.");
    describe_gauge!("hearth_node_memory_committed_bytes", Unit::Bytes, "Memory committed to instances.");
    describe_histogram!("hearth_store_operation_seconds", Unit::Seconds, "Metadata store operations, by operation.");
    describe_histogram!("hearth_code_cache_operation_seconds", Unit::Seconds, "Code cache operations, by operation.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_past_the_cap_share_a_label_and_a_deleted_one_frees_its_place() {
        let m = Metrics::new(2, Duration::from_secs(600));
        let (a, b, c): (FunctionName, FunctionName, FunctionName) =
            ("a".parse().unwrap(), "b".parse().unwrap(), "c".parse().unwrap());
        m.invoked(&a, false, Duration::from_millis(3));
        m.invoked(&b, true, Duration::from_millis(3));
        m.invoked(&c, false, Duration::from_millis(3));
        let text = m.render(&Levels { functions: vec![a.clone(), b.clone(), c.clone()], ..Default::default() });
        assert!(text.contains(r#"hearth_invocations_total{function="a",outcome="success"} 1"#), "{text}");
        assert!(text.contains(r#"hearth_invocations_total{function="b",outcome="error"} 1"#), "{text}");
        assert!(text.contains(r#"hearth_invocations_total{function="_other",outcome="success"} 1"#), "{text}");
        assert!(!text.contains(r#"function="c""#), "{text}");
        // b deleted: c takes its place, and its next invocations count under its name.
        let now = Levels { functions: vec![a.clone(), c.clone()], ..Default::default() };
        m.render(&now);
        assert_eq!(m.label(&c).as_ref(), "c");
        m.invoked(&c, false, Duration::from_millis(3));
        let text = m.render(&now);
        assert!(text.contains(r#"hearth_invocations_total{function="c",outcome="success"} 1"#), "{text}");
        assert!(text.contains(r#"hearth_invocation_duration_seconds_count{function="c"} 1"#), "{text}");
    }

    #[test]
    fn series_not_updated_within_the_ttl_are_dropped() {
        let m = Metrics::new(10, Duration::from_millis(50));
        let gone: FunctionName = "gone".parse().unwrap();
        m.invoked(&gone, false, Duration::from_millis(1));
        assert!(
            m.render(&Levels { functions: vec![gone.clone()], ..Default::default() }).contains(r#"function="gone""#)
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let text = m.render(&Levels::default());
            if !text.contains(r#"function="gone""#) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "a deleted function's series expire: {text}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn an_idle_function_keeps_its_counters_and_its_levels_fall_to_zero() {
        let m = Metrics::new(10, Duration::from_millis(50));
        let f: FunctionName = "idle".parse().unwrap();
        m.invoked(&f, false, Duration::from_millis(1));
        let busy = Levels {
            functions: vec![f.clone()],
            instances: vec![(f.clone(), "ready", 2)],
            events: vec![(f.clone(), 3, 1, 0, 2.5)],
            ..Default::default()
        };
        let text = m.render(&busy);
        assert!(text.contains(r#"hearth_instances{function="idle",state="ready"} 2"#), "{text}");
        assert!(text.contains(r#"hearth_event_queue_depth{function="idle",status="queued"} 3"#), "{text}");
        // Idle past the TTL, scraped meanwhile: the counter stays, the histogram goes, and
        // the levels that fell to nothing say 0.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let idle = Levels { functions: vec![f.clone()], ..Default::default() };
        loop {
            let text = m.render(&idle);
            if !text.contains(r#"hearth_invocation_duration_seconds_count{function="idle"}"#) {
                assert!(text.contains(r#"hearth_invocations_total{function="idle",outcome="success"} 1"#), "{text}");
                assert!(text.contains(r#"hearth_instances{function="idle",state="ready"} 0"#), "{text}");
                assert!(text.contains(r#"hearth_event_queue_depth{function="idle",status="queued"} 0"#), "{text}");
                assert!(text.contains(r#"hearth_event_oldest_age_seconds{function="idle"} 0"#), "{text}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the idle histogram expires: {text}");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Called again: its series come back (the handles kept from before are not reused).
        m.invoked(&f, false, Duration::from_millis(1));
        let text = m.render(&idle);
        assert!(text.contains(r#"hearth_invocation_duration_seconds_count{function="idle"} 1"#), "{text}");
        assert!(text.contains(r#"hearth_invocations_total{function="idle",outcome="success"} 2"#), "{text}");
    }
}
