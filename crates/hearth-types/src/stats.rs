//! Statistics of invocations over time (the console's charts and function list): counts,
//! errors, cold starts and nearest-rank percentiles of durations, per bucket of a window,
//! computed from the stored invocation records. The rules every store backend keeps are
//! written here once; [`stats_of`] and [`activity_of`] apply them to records in memory (the
//! fake store uses them; SQLite computes the same in SQL).
//!
//! Percentiles are bounded in cost: when a bucket (or the window) holds more records than
//! its share of the budget of durations, they are computed from a deterministic sample:
//! every k-th record in time order (started_at in milliseconds, then the order the records
//! were stored).

use chrono::{DateTime, TimeZone, Utc};

use crate::{FunctionName, InvocationRecord};

/// The longest window one request may cover, in seconds (7 days, the default retention of
/// the records).
pub const STATS_MAX_WINDOW_S: i64 = 7 * 86_400;
/// The most buckets one request may ask for.
pub const STATS_MAX_BUCKETS: i64 = 1_000;
/// The shortest bucket, in seconds.
pub const STATS_MIN_STEP_S: i64 = 10;
/// How many buckets a window is cut into when the caller names no step.
pub const STATS_DEFAULT_BUCKETS: i64 = 60;

/// `[from, to)` cut into buckets of `step_ms` from `from` (the last may be shorter), in
/// milliseconds since the epoch: the precision of stored records' `started_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsWindow {
    pub from_ms: i64,
    pub to_ms: i64,
    pub step_ms: i64,
}

impl StatsWindow {
    /// The window from `from` to `to` in steps of `step_s` seconds; `None` unless
    /// `from < to` and `step_s > 0`.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>, step_s: i64) -> Option<Self> {
        let (from_ms, to_ms) = (from.timestamp_millis(), to.timestamp_millis());
        let step_ms = step_s.checked_mul(1000)?;
        (from_ms < to_ms && step_ms > 0).then_some(Self { from_ms, to_ms, step_ms })
    }

    /// How many buckets: the window's length divided by the step, rounded up.
    pub fn buckets(&self) -> usize {
        ((self.to_ms - self.from_ms) as u64).div_ceil(self.step_ms as u64) as usize
    }

    /// The bucket holding `at_ms`, if it is in the window.
    pub fn bucket_of(&self, at_ms: i64) -> Option<usize> {
        (self.from_ms..self.to_ms).contains(&at_ms).then(|| ((at_ms - self.from_ms) / self.step_ms) as usize)
    }

    /// Where bucket `i` starts and ends (the last ends at the window's end).
    pub fn bucket_span(&self, i: usize) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = self.from_ms.saturating_add((i as i64).saturating_mul(self.step_ms));
        let end = start.saturating_add(self.step_ms).min(self.to_ms);
        (millis(start), millis(end))
    }
}

fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// What the invocations of a span of time add up to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvocationFigures {
    pub invocations: u64,
    /// Invocations whose outcome was not `success`.
    pub errors: u64,
    pub cold_starts: u64,
    /// Nearest-rank percentiles of `duration_ms`; `None` without invocations.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// A function's invocations over a [`StatsWindow`]: one [`InvocationFigures`] per bucket (as
/// many as [`StatsWindow::buckets`], empty ones included) and the whole window's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvocationStats {
    pub buckets: Vec<InvocationFigures>,
    pub total: InvocationFigures,
    /// Whether some percentile was computed from a sample of the durations.
    pub sampled: bool,
}

/// One function's invocations over a window, for listings.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionActivity {
    pub function: FunctionName,
    pub invocations: u64,
    pub errors: u64,
    pub p99_ms: Option<f64>,
    /// Whether `p99_ms` was computed from a sample of the durations.
    pub sampled: bool,
}

/// The 1-based rank of the `percent`th percentile of `n` sorted values, by nearest rank:
/// ⌈percent × n / 100⌉ (at least 1).
pub fn nearest_rank(n: u64, percent: u64) -> u64 {
    (n * percent).div_ceil(100).max(1)
}

/// Every how many records one is read so that `count` records give at most `budget`
/// durations (1: all of them).
pub fn stride(count: u64, budget: u64) -> u64 {
    count.div_ceil(budget.max(1)).max(1)
}

/// The `percent`th percentile of `values` by nearest rank (sorts them).
pub fn percentile(values: &mut [f64], percent: u64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[nearest_rank(values.len() as u64, percent) as usize - 1])
}

/// The durations of `records` (in time order) at positions 1-based divisible by `stride`.
fn sample(records: &[&InvocationRecord], stride: u64) -> Vec<f64> {
    records.iter().skip(stride as usize - 1).step_by(stride as usize).map(|r| r.duration_ms).collect()
}

/// Counts and percentiles of `records` (one span of time, in time order), reading at most
/// `budget` durations; and whether it sampled.
fn figures_of(records: &[&InvocationRecord], budget: u64) -> (InvocationFigures, bool) {
    let k = stride(records.len() as u64, budget);
    let mut durations = sample(records, k);
    let figures = InvocationFigures {
        invocations: records.len() as u64,
        errors: records.iter().filter(|r| r.outcome != "success").count() as u64,
        cold_starts: records.iter().filter(|r| r.cold_start).count() as u64,
        p50_ms: percentile(&mut durations, 50),
        p99_ms: percentile(&mut durations, 99),
    };
    (figures, k > 1)
}

/// The records of `function` in the window, in time order (started_at in milliseconds, then
/// the order of `records`, which is the order they were stored).
fn in_window<'a>(
    records: impl IntoIterator<Item = &'a InvocationRecord>,
    function: &FunctionName,
    from_ms: i64,
    to_ms: i64,
) -> Vec<&'a InvocationRecord> {
    let mut out: Vec<&InvocationRecord> = records
        .into_iter()
        .filter(|r| &r.function == function && (from_ms..to_ms).contains(&r.started_at.timestamp_millis()))
        .collect();
    out.sort_by_key(|r| r.started_at.timestamp_millis());
    out
}

/// The statistics of `function`'s records (given in the order they were stored) over
/// `window`, reading at most `max_durations` durations for the buckets' percentiles (each
/// non-empty bucket gets an equal share) and as many for the window's.
pub fn stats_of<'a>(
    records: impl IntoIterator<Item = &'a InvocationRecord>,
    function: &FunctionName,
    window: StatsWindow,
    max_durations: u64,
) -> InvocationStats {
    let all = in_window(records, function, window.from_ms, window.to_ms);
    let mut by_bucket: Vec<Vec<&InvocationRecord>> = vec![Vec::new(); window.buckets()];
    for r in &all {
        if let Some(b) = window.bucket_of(r.started_at.timestamp_millis()) {
            by_bucket[b].push(r);
        }
    }
    let share = bucket_share(max_durations, by_bucket.iter().filter(|b| !b.is_empty()).count() as u64);
    let mut sampled = false;
    let buckets = by_bucket
        .iter()
        .map(|b| {
            let (figures, s) = figures_of(b, share);
            sampled |= s;
            figures
        })
        .collect();
    let (total, s) = figures_of(&all, max_durations);
    InvocationStats { buckets, total, sampled: sampled || s }
}

/// Each non-empty bucket's share of the budget of durations (at least 1).
pub fn bucket_share(max_durations: u64, non_empty: u64) -> u64 {
    (max_durations / non_empty.max(1)).max(1)
}

/// Each listed function's activity over `[from_ms, to_ms)`, in the order of `functions`,
/// from `records` (in the order they were stored); each function with records gets an equal
/// share of `max_durations` for its percentile.
pub fn activity_of(
    records: &[InvocationRecord],
    functions: &[FunctionName],
    from_ms: i64,
    to_ms: i64,
    max_durations: u64,
) -> Vec<FunctionActivity> {
    let per_function: Vec<Vec<&InvocationRecord>> =
        functions.iter().map(|f| in_window(records, f, from_ms, to_ms)).collect();
    let share = bucket_share(max_durations, per_function.iter().filter(|r| !r.is_empty()).count() as u64);
    functions
        .iter()
        .zip(per_function)
        .map(|(function, records)| {
            let (f, sampled) = figures_of(&records, share);
            FunctionActivity {
                function: function.clone(),
                invocations: f.invocations,
                errors: f.errors,
                p99_ms: f.p99_ms,
                sampled,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FunctionId;

    fn record(function: &str, ms: i64, duration_ms: f64, error: bool) -> InvocationRecord {
        InvocationRecord {
            request_id: format!("r-{ms}-{duration_ms}"),
            attempt: 1,
            qualifier: None,
            function_id: FunctionId::new(),
            function: function.parse().unwrap(),
            version: 1,
            started_at: millis(ms),
            duration_ms,
            billed_ms: duration_ms.ceil() as u64,
            memory_mb: 128,
            max_memory_used_mb: None,
            cold_start: ms % 2 == 0,
            init_duration_ms: None,
            start_source: None,
            cpu_time_ms: None,
            outcome: if error { "error" } else { "success" }.into(),
            error_type: error.then(|| "Runtime.ExitError".into()),
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(nearest_rank(1, 50), 1);
        assert_eq!(nearest_rank(1, 99), 1);
        assert_eq!(nearest_rank(2, 50), 1);
        assert_eq!(nearest_rank(3, 50), 2);
        assert_eq!(nearest_rank(100, 99), 99);
        assert_eq!(nearest_rank(101, 99), 100);
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50), Some(50.0));
        assert_eq!(percentile(&mut v, 99), Some(99.0));
        assert_eq!(percentile(&mut [], 50), None);
    }

    #[test]
    fn windows_cut_into_buckets() {
        let w = StatsWindow::new(millis(0), millis(25_000), 10).unwrap();
        assert_eq!(w.buckets(), 3, "the last bucket is shorter");
        assert_eq!(w.bucket_of(0), Some(0));
        assert_eq!(w.bucket_of(9_999), Some(0));
        assert_eq!(w.bucket_of(20_000), Some(2));
        assert_eq!(w.bucket_of(25_000), None, "the end is excluded");
        assert_eq!(w.bucket_of(-1), None);
        assert_eq!(w.bucket_span(2), (millis(20_000), millis(25_000)));
        assert!(StatsWindow::new(millis(5), millis(5), 10).is_none());
        assert!(StatsWindow::new(millis(0), millis(5), 0).is_none());
    }

    #[test]
    fn stats_count_and_rank_per_bucket() {
        let w = StatsWindow::new(millis(0), millis(20_000), 10).unwrap();
        let records = [
            record("f", 0, 3.0, false),
            record("f", 1, 1.0, true),
            record("f", 9_999, 2.0, false),
            record("f", 15_000, 7.0, false),
            record("g", 1_000, 100.0, false),
            record("f", 20_000, 100.0, false),
        ];
        let s = stats_of(&records, &"f".parse().unwrap(), w, 1_000);
        assert!(!s.sampled);
        assert_eq!(
            s.buckets[0],
            InvocationFigures { invocations: 3, errors: 1, cold_starts: 1, p50_ms: Some(2.0), p99_ms: Some(3.0) }
        );
        assert_eq!(s.buckets[1].p50_ms, Some(7.0));
        assert_eq!((s.total.invocations, s.total.p50_ms, s.total.p99_ms), (4, Some(2.0), Some(7.0)));
    }

    #[test]
    fn large_buckets_are_sampled_deterministically() {
        let w = StatsWindow::new(millis(0), millis(20_000), 10).unwrap();
        // Bucket 0: 10 records (durations 1..=10); bucket 1: 2 records.
        let mut records: Vec<_> = (1..=10).map(|i| record("f", i64::from(i), f64::from(i), false)).collect();
        records.push(record("f", 10_000, 50.0, false));
        records.push(record("f", 10_001, 60.0, false));
        // A budget of 4: each of the 2 buckets gets 2; bucket 0 reads every 5th record
        // (durations 5 and 10); the window reads every 3rd of 12 (3, 6, 9, 60).
        let s = stats_of(&records, &"f".parse().unwrap(), w, 4);
        assert!(s.sampled);
        assert_eq!((s.buckets[0].invocations, s.buckets[0].p50_ms, s.buckets[0].p99_ms), (10, Some(5.0), Some(10.0)));
        assert_eq!((s.buckets[1].p50_ms, s.buckets[1].p99_ms), (Some(50.0), Some(60.0)));
        assert_eq!((s.total.invocations, s.total.p50_ms, s.total.p99_ms), (12, Some(6.0), Some(60.0)));
    }

    #[test]
    fn activity_lists_every_function() {
        let records = [record("f", 5, 2.0, true), record("f", 6, 4.0, false), record("g", 50, 1.0, false)];
        let functions: Vec<FunctionName> = ["f", "g", "h"].iter().map(|n| n.parse().unwrap()).collect();
        let a = activity_of(&records, &functions, 0, 10, 1_000);
        assert_eq!(a.len(), 3);
        assert_eq!((a[0].invocations, a[0].errors, a[0].p99_ms), (2, 1, Some(4.0)));
        assert_eq!((a[1].invocations, a[1].p99_ms), (0, None), "g's record is outside the window");
        assert_eq!(a[2].function.as_str(), "h");
    }
}
