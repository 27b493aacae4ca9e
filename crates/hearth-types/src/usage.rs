//! Usage: what invocations and kept instances consumed, summed per function, version (or
//! alias) and hour, and what it costs at a price table. The sums are integers (microseconds,
//! milliseconds, megabyte-milliseconds), so every backend and every order of adding gives
//! the same figures, equal to the sums over the raw records.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{FunctionName, InvocationRecord};

/// One hour of one function version, as the caller named it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsageKey {
    pub function: FunctionName,
    pub version: u32,
    /// The alias or version number invoked; `None` for `$LATEST` (and for kept instances).
    pub qualifier: Option<String>,
    /// The start of the hour (UTC).
    pub hour: DateTime<Utc>,
}

/// Summed facts. Durations are kept in whole microseconds (each record's rounded to the
/// nearest), billed time in milliseconds, memory × time in megabyte-milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageFigures {
    pub requests: u64,
    pub errors: u64,
    /// Errors by type (`Runtime.ExitError`, `Sandbox.Timedout`, `Handled`, ...).
    pub errors_by_type: BTreeMap<String, u64>,
    pub cold_starts: u64,
    pub init_duration_us: u64,
    pub duration_us: u64,
    pub billed_ms: u64,
    /// Σ billed_ms × memory_mb of the invocations.
    pub mb_ms: u64,
    /// Σ memory_mb × time of the instances kept by `min_instances`.
    pub provisioned_mb_ms: u64,
}

/// A whole number of microseconds, the nearest to `ms` milliseconds.
fn micros(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 { (ms * 1000.0).round() as u64 } else { 0 }
}

/// The start of the UTC hour holding `t`.
pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

impl UsageFigures {
    /// One invocation's figures, and the hour they count in.
    pub fn of(r: &InvocationRecord) -> (UsageKey, Self) {
        let key = UsageKey {
            function: r.function.clone(),
            version: r.version,
            qualifier: r.qualifier.clone(),
            hour: hour_of(r.started_at),
        };
        let error = r.outcome != "success";
        let mut errors_by_type = BTreeMap::new();
        if error {
            errors_by_type.insert(r.error_type.clone().unwrap_or_else(|| "Unknown".into()), 1);
        }
        let figures = Self {
            requests: 1,
            errors: u64::from(error),
            errors_by_type,
            cold_starts: u64::from(r.cold_start),
            init_duration_us: r.init_duration_ms.map_or(0, micros),
            duration_us: micros(r.duration_ms),
            billed_ms: r.billed_ms,
            mb_ms: r.billed_ms.saturating_mul(u64::from(r.memory_mb)),
            provisioned_mb_ms: 0,
        };
        (key, figures)
    }

    pub fn add(&mut self, o: &Self) {
        self.requests += o.requests;
        self.errors += o.errors;
        for (k, v) in &o.errors_by_type {
            *self.errors_by_type.entry(k.clone()).or_default() += v;
        }
        self.cold_starts += o.cold_starts;
        self.init_duration_us += o.init_duration_us;
        self.duration_us += o.duration_us;
        self.billed_ms += o.billed_ms;
        self.mb_ms = self.mb_ms.saturating_add(o.mb_ms);
        self.provisioned_mb_ms = self.provisioned_mb_ms.saturating_add(o.provisioned_mb_ms);
    }

    /// GB-seconds of invocations, as Lambda counts them (1 GB = 1024 MB).
    pub fn gb_seconds(&self) -> f64 {
        self.mb_ms as f64 / 1024.0 / 1000.0
    }

    pub fn provisioned_gb_seconds(&self) -> f64 {
        self.provisioned_mb_ms as f64 / 1024.0 / 1000.0
    }
}

/// Sums `records` per key (what a store adds to its aggregates in the transaction that
/// stores them).
pub fn aggregate<'a>(records: impl IntoIterator<Item = &'a InvocationRecord>) -> BTreeMap<UsageKey, UsageFigures> {
    let mut out: BTreeMap<UsageKey, UsageFigures> = BTreeMap::new();
    for r in records {
        let (key, figures) = UsageFigures::of(r);
        out.entry(key).or_default().add(&figures);
    }
    out
}

/// Kept-instance time of `instances` instances of `memory_mb` each from `from` to `to`,
/// split at hour boundaries: megabyte-milliseconds per hour.
pub fn provisioned(
    function: &FunctionName,
    version: u32,
    instances: u32,
    memory_mb: u32,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(UsageKey, u64)> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let hour = hour_of(at);
        let end = (hour + TimeDelta::hours(1)).min(to);
        let ms = (end - at).num_milliseconds().max(0) as u64;
        let mb_ms = ms.saturating_mul(u64::from(instances) * u64::from(memory_mb));
        if mb_ms > 0 {
            out.push((UsageKey { function: function.clone(), version, qualifier: None, hour }, mb_ms));
        }
        at = end;
    }
    out
}

/// How usage rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UsageGroup {
    Hour,
    #[default]
    Day,
    /// One row per function over the whole range.
    Function,
    /// One row per function, version and qualifier over the whole range.
    Version,
}

impl std::str::FromStr for UsageGroup {
    type Err = crate::ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "hour" => Self::Hour,
            "day" => Self::Day,
            "function" => Self::Function,
            "version" => Self::Version,
            other => return Err(crate::ValidationError::InvalidUsageGroup(other.to_owned())),
        })
    }
}

/// One row of a usage answer: the group it sums and its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageRow {
    /// The hour or day (UTC) the row covers; absent when grouped by function or version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    #[serde(flatten)]
    pub figures: UsageFigures,
}

/// Where `key` falls when grouped by `group`: the row it adds to.
pub fn group_row(key: &UsageKey, group: UsageGroup) -> UsageRow {
    let figures = UsageFigures::default();
    match group {
        UsageGroup::Hour => {
            UsageRow { period_start: Some(key.hour), function: None, version: None, qualifier: None, figures }
        }
        UsageGroup::Day => UsageRow {
            period_start: Some(key.hour.duration_trunc(TimeDelta::days(1)).unwrap_or(key.hour)),
            function: None,
            version: None,
            qualifier: None,
            figures,
        },
        UsageGroup::Function => UsageRow {
            period_start: None,
            function: Some(key.function.clone()),
            version: None,
            qualifier: None,
            figures,
        },
        UsageGroup::Version => UsageRow {
            period_start: None,
            function: Some(key.function.clone()),
            version: Some(key.version),
            qualifier: key.qualifier.clone(),
            figures,
        },
    }
}

/// Groups hourly aggregates: rows ordered by period, then function, version, qualifier.
pub fn group(hours: impl IntoIterator<Item = (UsageKey, UsageFigures)>, by: UsageGroup) -> Vec<UsageRow> {
    type RowKey = (Option<DateTime<Utc>>, Option<FunctionName>, Option<u32>, Option<String>);
    let mut rows: BTreeMap<RowKey, UsageRow> = BTreeMap::new();
    for (key, figures) in hours {
        let row = group_row(&key, by);
        let k = (row.period_start, row.function.clone(), row.version, row.qualifier.clone());
        rows.entry(k).or_insert(row).figures.add(&figures);
    }
    rows.into_values().collect()
}

/// Prices, in the operator's currency. The default is shaped like AWS Lambda's public x86
/// prices (an example to start from, not a claim about anyone's bill).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Prices {
    pub per_million_requests: f64,
    pub per_gb_second: f64,
    pub per_provisioned_gb_second: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Self { per_million_requests: 0.20, per_gb_second: 0.000_016_666_7, per_provisioned_gb_second: 0.000_004_166_7 }
    }
}

/// What a row costs.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct Cost {
    pub requests: f64,
    pub compute: f64,
    pub provisioned: f64,
    pub total: f64,
}

impl Prices {
    pub fn cost(&self, f: &UsageFigures) -> Cost {
        let requests = f.requests as f64 / 1_000_000.0 * self.per_million_requests;
        let compute = f.gb_seconds() * self.per_gb_second;
        let provisioned = f.provisioned_gb_seconds() * self.per_provisioned_gb_second;
        Cost { requests, compute, provisioned, total: requests + compute + provisioned }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::FunctionId;

    fn record(function: &str, at: DateTime<Utc>, ms: f64, memory_mb: u32, error: Option<&str>) -> InvocationRecord {
        InvocationRecord {
            request_id: uuid::Uuid::new_v4().to_string(),
            attempt: 1,
            qualifier: None,
            function_id: FunctionId::new(),
            function: function.parse().unwrap(),
            version: 1,
            started_at: at,
            duration_ms: ms,
            billed_ms: ms.ceil() as u64,
            memory_mb,
            max_memory_used_mb: None,
            cold_start: error.is_none(),
            init_duration_ms: error.is_none().then_some(100.0004),
            start_source: None,
            cpu_time_ms: None,
            outcome: if error.is_some() { "error" } else { "success" }.into(),
            error_type: error.map(str::to_owned),
        }
    }

    #[test]
    fn figures_sum_exactly_and_group_by_period_and_function() {
        let t = Utc.with_ymd_and_hms(2030, 5, 6, 23, 59, 59).unwrap();
        let records = [
            record("a", t, 1.2, 128, None),
            record("a", t + TimeDelta::seconds(2), 10.0, 1024, Some("Runtime.ExitError")),
            record("b", t, 0.4, 256, Some("Handled")),
        ];
        let hours = aggregate(&records);
        assert_eq!(hours.len(), 3, "a's two invocations fall in two hours (and days)");
        let a = &hours[&UsageKey { function: "a".parse().unwrap(), version: 1, qualifier: None, hour: hour_of(t) }];
        assert_eq!(
            (a.requests, a.cold_starts, a.init_duration_us, a.duration_us, a.billed_ms, a.mb_ms),
            (1, 1, 100_000, 1200, 2, 256)
        );
        let by_function = group(hours.clone(), UsageGroup::Function);
        assert_eq!(by_function.len(), 2);
        let f = &by_function[0].figures;
        assert_eq!((f.requests, f.errors, f.mb_ms), (2, 1, 256 + 10 * 1024));
        assert_eq!(f.errors_by_type.get("Runtime.ExitError"), Some(&1));
        let by_day = group(hours, UsageGroup::Day);
        assert_eq!(by_day.iter().map(|r| r.figures.requests).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(by_day[1].period_start, Some(Utc.with_ymd_and_hms(2030, 5, 7, 0, 0, 0).unwrap()));
        let cost = Prices { per_million_requests: 0.2, per_gb_second: 0.00001, per_provisioned_gb_second: 0.0 }
            .cost(&by_function[0].figures);
        assert!((cost.total - (2.0 / 1e6 * 0.2 + (256.0 + 10240.0) / 1024.0 / 1000.0 * 0.00001)).abs() < 1e-15);
        assert_eq!("week".parse::<UsageGroup>().unwrap_err().code(), "InvalidUsageGroup");
    }

    #[test]
    fn kept_instances_are_split_at_hours() {
        let f: FunctionName = "warm".parse().unwrap();
        let from = Utc.with_ymd_and_hms(2030, 1, 1, 9, 59, 30).unwrap();
        let rows = provisioned(&f, 3, 2, 128, from, from + TimeDelta::seconds(90));
        assert_eq!(
            rows.iter().map(|(k, v)| (k.hour, *v)).collect::<Vec<_>>(),
            [(hour_of(from), 30_000 * 256), (Utc.with_ymd_and_hms(2030, 1, 1, 10, 0, 0).unwrap(), 60_000 * 256)]
        );
        assert!(provisioned(&f, 3, 2, 128, from, from).is_empty());
    }
}
