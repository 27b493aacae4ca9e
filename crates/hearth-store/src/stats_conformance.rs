//! The statistics every [`UsageStore`] backend must compute from the stored invocation
//! records: the same as [`hearth_types::stats_of`] and [`hearth_types::activity_of`] (unit-tested
//! by hand there) applied to the records in the order they were stored, sampling included.
//! Backends call [`run`] from their tests; functions `s-*`, times in 2041, so other suites'
//! records do not change its answers.

use chrono::{DateTime, Duration, TimeZone, Utc};
use hearth_types::{FunctionId, FunctionName, InvocationFigures, InvocationRecord, StatsWindow, activity_of, stats_of};

use crate::conformance::sample_function;
use crate::{Expect, MetadataStore, UsageStore};

fn at(ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2041, 1, 1, 0, 0, 0).single().expect("a valid time") + Duration::milliseconds(ms)
}

fn name(s: &str) -> FunctionName {
    s.parse().expect("a valid name")
}

fn record(n: u32, function: &str, ms: i64) -> InvocationRecord {
    let error = n.is_multiple_of(5);
    InvocationRecord {
        request_id: format!("s-{n}"),
        attempt: 1,
        qualifier: None,
        function_id: FunctionId::new(),
        function: name(function),
        version: 1,
        started_at: at(ms),
        // Quarters of a millisecond, exact in binary and in JSON; not in time order, with ties.
        duration_ms: f64::from((n * 37) % 23) * 0.25 + 1.0,
        billed_ms: 1,
        memory_mb: 128,
        max_memory_used_mb: None,
        cold_start: n.is_multiple_of(3),
        init_duration_ms: None,
        start_source: None,
        cpu_time_ms: None,
        outcome: if error { "error" } else { "success" }.into(),
        error_type: error.then(|| "Runtime.ExitError".to_owned()),
    }
}

/// Runs every check.
pub async fn run<S: MetadataStore + UsageStore>(s: &S) {
    for f in ["s-a", "s-b", "s-c"] {
        s.save_function(&sample_function(f), Expect::Absent, None).await.expect("function saved");
    }
    // s-a: 40 records over 0..200 s, a few sharing a millisecond (stored out of time order,
    // so the order they were stored decides which are sampled); s-b: 10 in the same window;
    // one s-a record just before the window and one at its end (both outside).
    let mut records = Vec::new();
    for n in 0..40u32 {
        let ms = if n % 8 == 7 { 65_000 } else { i64::from(n) * 4_999 };
        records.push(record(n, "s-a", ms));
    }
    for n in 40..50u32 {
        records.push(record(n, "s-b", i64::from(n - 40) * 19_000));
    }
    records.push(record(50, "s-a", -1));
    records.push(record(51, "s-a", 200_000));
    // Stored in batches, newest first within each, and one batch again (ignored).
    let mut stored = Vec::new();
    for chunk in records.chunks(9) {
        let mut batch = chunk.to_vec();
        batch.reverse();
        s.append_invocations(&batch).await.expect("records stored");
        stored.extend(batch);
    }
    s.append_invocations(&stored[..9]).await.expect("records stored again");

    // 200 s in steps of 60 s: three buckets of 60 s and one of 20 s.
    let window = StatsWindow::new(at(0), at(200_000), 60).expect("a valid window");
    let a = name("s-a");
    let full = s.invocation_stats(&a, window, 100_000).await.expect("stats read");
    assert_eq!(full, stats_of(&stored, &a, window, 100_000), "every duration read");
    assert_eq!(full.buckets.len(), 4);
    assert!(!full.sampled);
    assert_eq!(full.total.invocations, 40, "the records at the window's edges are outside it: {full:?}");
    assert_eq!(full.total.errors, 8);
    assert_eq!(full.total.cold_starts, 14);
    assert_eq!(full.buckets.iter().map(|b| b.invocations).sum::<u64>(), 40);
    assert!(full.buckets.iter().all(|b| b.p50_ms <= b.p99_ms && b.p50_ms.is_some()), "{full:?}");
    for budget in [7, 3, 1] {
        let got = s.invocation_stats(&a, window, budget).await.expect("stats read");
        assert_eq!(got, stats_of(&stored, &a, window, budget), "durations sampled within a budget of {budget}");
        assert!(got.sampled);
        assert_eq!(got.total.invocations, 40, "counts are never sampled");
    }

    // Empty: a window without records, a function without any.
    let empty = StatsWindow::new(at(-100_000), at(-50_000), 10).expect("a valid window");
    let none = s.invocation_stats(&a, empty, 100).await.expect("stats read");
    assert_eq!(none.buckets, vec![InvocationFigures::default(); 5]);
    assert_eq!((none.total.invocations, none.total.p50_ms, none.sampled), (0, None, false));
    let unknown = s.invocation_stats(&name("s-none"), window, 100).await.expect("stats read");
    assert_eq!(unknown.total, InvocationFigures::default());

    // Every function's activity, those without records included, by name.
    let functions: Vec<FunctionName> =
        s.list_functions().await.expect("functions listed").into_iter().map(|f| f.name).collect();
    for budget in [100_000, 4] {
        let got = s.function_activity(at(0), at(200_000), budget).await.expect("activity read");
        let (from, to) = (at(0).timestamp_millis(), at(200_000).timestamp_millis());
        assert_eq!(got, activity_of(&stored, &functions, from, to, budget), "activity with a budget of {budget}");
        let named: Vec<(&str, u64)> = got.iter().map(|f| (f.function.as_str(), f.invocations)).collect();
        assert_eq!(named, [("s-a", 40), ("s-b", 10), ("s-c", 0)]);
        assert_eq!(got[2].p99_ms, None);
        assert_eq!(got[0].sampled, budget < 40);
    }
}
