//! The behaviour every [`UsageStore`] backend must show, fed through
//! [`MetadataStore::append_invocations`] (which adds to the aggregates). Backends call
//! [`run`] from their tests; functions `u-*`, times in 2040, so other suites' records do not
//! change its answers.

use chrono::{DateTime, Duration, TimeZone, Utc};
use hearth_types::{
    FunctionId, FunctionName, InvocationRecord, UsageFigures, UsageGroup, UsageKey, UsageRow, aggregate_usage,
    group_usage, hour_of,
};

use crate::{MetadataStore, UsageStore};

fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2040, 1, 1, 0, 0, 0).single().expect("a valid time") + Duration::seconds(secs)
}

fn record(n: u32, function: &str, version: u32, qualifier: Option<&str>, secs: i64) -> InvocationRecord {
    let error = n.is_multiple_of(5);
    InvocationRecord {
        request_id: format!("u-{n}"),
        attempt: 1 + n % 2,
        qualifier: qualifier.map(str::to_owned),
        function_id: FunctionId::new(),
        function: function.parse().expect("a valid name"),
        version,
        started_at: at(secs),
        // Fractions of a millisecond that do not add up exactly in floating point.
        duration_ms: 0.1 + f64::from(n) * 1.37,
        billed_ms: 1 + u64::from(n) * 2,
        memory_mb: [128, 256, 1769][n as usize % 3],
        max_memory_used_mb: Some(40),
        cold_start: n.is_multiple_of(4),
        init_duration_ms: n.is_multiple_of(4).then(|| 100.0 + f64::from(n) / 3.0),
        start_source: None,
        cpu_time_ms: None,
        outcome: if error { "error" } else { "success" }.into(),
        error_type: error.then(|| ["Runtime.ExitError", "Sandbox.Timedout"][n as usize % 2].to_owned()),
    }
}

/// Runs every check.
pub async fn run<S: MetadataStore + UsageStore>(s: &S) {
    let mut records = Vec::new();
    for n in 0..60u32 {
        let (function, version, qualifier) = match n % 4 {
            0 => ("u-a", 1, None),
            1 => ("u-a", 2, Some("live")),
            2 => ("u-a", 2, Some("2")),
            _ => ("u-b", 1, None),
        };
        // Three hours and a day boundary: 2040-01-01 22:00 to 2040-01-02 00:57.
        records.push(record(n, function, version, qualifier, 22 * 3600 + i64::from(n) * 180));
    }
    for chunk in records[..50].chunks(7) {
        s.append_invocations(chunk).await.expect("records stored");
    }
    // A batch of stored and new records (a writer retrying a batch that grew): each is
    // counted once.
    s.append_invocations(&records[40..]).await.expect("records stored again");
    // Another attempt of a stored request is a record of its own.
    let mut retried = records[0].clone();
    retried.attempt += 1;
    records.push(retried.clone());
    s.append_invocations(&[retried]).await.expect("a second attempt stored");
    let kept =
        (UsageKey { function: name("u-b"), version: 1, qualifier: None, hour: hour_of(at(23 * 3600)) }, 3_600_000);
    s.add_provisioned(std::slice::from_ref(&kept)).await.expect("provisioned time added");
    s.add_provisioned(&[(kept.0.clone(), 1000)]).await.expect("provisioned time added");

    let mut hours = aggregate_usage(&records);
    hours.entry(kept.0.clone()).or_insert_with(UsageFigures::default).provisioned_mb_ms += 3_601_000;
    let expected = |from: DateTime<Utc>, to: DateTime<Utc>, f: Option<&str>, by: UsageGroup| -> Vec<UsageRow> {
        let selected = hours
            .iter()
            .filter(|(k, _)| k.hour >= from && k.hour < to && f.is_none_or(|f| k.function.as_str() == f))
            .map(|(k, v)| (k.clone(), v.clone()));
        group_usage(selected, by)
    };
    let (all_from, all_to) = (at(0), at(3 * 86400));
    for by in [UsageGroup::Hour, UsageGroup::Day, UsageGroup::Function, UsageGroup::Version] {
        let got = s.usage(all_from, all_to, None, by).await.expect("usage read");
        assert_eq!(got, expected(all_from, all_to, None, by), "usage grouped by {by:?}");
    }
    let by_function = s.usage(all_from, all_to, None, UsageGroup::Function).await.unwrap();
    let a = &by_function[0].figures;
    assert_eq!(a.requests, 46, "u-a had 45 invocations and one retried attempt: {a:?}");
    let days = s.usage(all_from, all_to, None, UsageGroup::Day).await.unwrap();
    let starts: Vec<_> = days.iter().map(|d| d.period_start).collect();
    assert_eq!(starts, [Some(at(0)), Some(at(86400))], "two days: {days:?}");
    assert_eq!(a.errors, a.errors_by_type.values().sum::<u64>(), "errors are counted by type");
    let b = &by_function[1].figures;
    assert_eq!(b.provisioned_mb_ms, 3_601_000, "provisioned time adds up");
    let versions = s.usage(all_from, all_to, Some(&name("u-a")), UsageGroup::Version).await.unwrap();
    let named: Vec<(Option<u32>, Option<&str>)> =
        versions.iter().map(|r| (r.version, r.qualifier.as_deref())).collect();
    assert_eq!(named, [(Some(1), None), (Some(2), Some("2")), (Some(2), Some("live"))]);
    // Hours are selected from `from` (included) to `to` (excluded), by their start.
    let (from, to) = (at(23 * 3600), at(24 * 3600));
    let one_hour = s.usage(from, to, None, UsageGroup::Hour).await.unwrap();
    assert_eq!(one_hour, expected(from, to, None, UsageGroup::Hour));
    assert_eq!(one_hour.len(), 1);
    assert_eq!(one_hour[0].period_start, Some(from));
    let in_that_hour = records.iter().filter(|r| hour_of(r.started_at) == from).count() as u64;
    assert_eq!(one_hour[0].figures.requests, in_that_hour, "the hour starting at `to` is not counted");
    let none = s.usage(at(0), at(3600), None, UsageGroup::Day).await.unwrap();
    assert!(none.is_empty(), "no usage, no rows: {none:?}");
    let unknown = s.usage(all_from, all_to, Some(&name("u-none")), UsageGroup::Function).await.unwrap();
    assert!(unknown.is_empty());
    // The aggregates outlive the records: pruning every record leaves them as they were.
    s.prune_telemetry(at(30 * 86400)).await.expect("records pruned");
    let after = s.usage(all_from, all_to, None, UsageGroup::Version).await.unwrap();
    assert_eq!(after, expected(all_from, all_to, None, UsageGroup::Version), "usage after the records' retention");
}

fn name(s: &str) -> FunctionName {
    s.parse().expect("a valid name")
}
