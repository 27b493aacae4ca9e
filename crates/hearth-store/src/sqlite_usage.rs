//! [`UsageStore`] on SQLite (tables `usage_hours` and `usage_errors`, migration 5), and the
//! aggregate writes `append_invocations` makes in its transaction.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use hearth_types::{
    FunctionActivity, FunctionName, InvocationStats, StatsWindow, UsageFigures, UsageGroup, UsageKey, UsageRow,
};
use rusqlite::{Transaction, params};

use crate::{SqliteStore, StoreError, UsageStore};

/// Adds `figures` to the aggregates of `key`, in `tx`.
pub(crate) fn add(tx: &Transaction<'_>, key: &UsageKey, f: &UsageFigures) -> Result<(), StoreError> {
    let (function, qualifier, hour) =
        (key.function.as_str(), key.qualifier.as_deref().unwrap_or(""), key.hour.timestamp());
    tx.prepare_cached(
        "INSERT INTO usage_hours (function, version, qualifier, hour, requests, errors, cold_starts, init_us,
             duration_us, billed_ms, mb_ms, provisioned_mb_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (function, version, qualifier, hour) DO UPDATE SET
             requests = requests + excluded.requests, errors = errors + excluded.errors,
             cold_starts = cold_starts + excluded.cold_starts, init_us = init_us + excluded.init_us,
             duration_us = duration_us + excluded.duration_us, billed_ms = billed_ms + excluded.billed_ms,
             mb_ms = mb_ms + excluded.mb_ms, provisioned_mb_ms = provisioned_mb_ms + excluded.provisioned_mb_ms",
    )?
    .execute(params![
        function,
        key.version,
        qualifier,
        hour,
        f.requests as i64,
        f.errors as i64,
        f.cold_starts as i64,
        f.init_duration_us as i64,
        f.duration_us as i64,
        f.billed_ms as i64,
        f.mb_ms as i64,
        f.provisioned_mb_ms as i64
    ])?;
    for (error_type, n) in &f.errors_by_type {
        tx.prepare_cached(
            "INSERT INTO usage_errors (function, version, qualifier, hour, error_type, count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (function, version, qualifier, hour, error_type) DO UPDATE SET count = count + excluded.count",
        )?
        .execute(params![function, key.version, qualifier, hour, error_type, *n as i64])?;
    }
    Ok(())
}

/// The grouping columns of `group`: period (epoch seconds), function, version, qualifier.
fn columns(group: UsageGroup) -> &'static str {
    match group {
        UsageGroup::Hour => "hour, NULL, NULL, NULL",
        UsageGroup::Day => "hour - (hour % 86400), NULL, NULL, NULL",
        UsageGroup::Function => "NULL, function, NULL, NULL",
        UsageGroup::Version => "NULL, function, version, qualifier",
    }
}

type RowKey = (Option<i64>, Option<String>, Option<u32>, Option<String>);

fn row_key(r: &rusqlite::Row<'_>) -> rusqlite::Result<RowKey> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn add_provisioned(&self, rows: &[(UsageKey, u64)]) -> Result<(), StoreError> {
        let rows = rows.to_vec();
        self.with(move |c| {
            let tx = c.transaction()?;
            for (key, mb_ms) in &rows {
                add(&tx, key, &UsageFigures { provisioned_mb_ms: *mb_ms, ..Default::default() })?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn usage(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        function: Option<&FunctionName>,
        group: UsageGroup,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let (from, to, function) = (from.timestamp(), to.timestamp(), function.map(|f| f.to_string()));
        self.with(move |c| {
            let cols = columns(group);
            let filter = "hour >= ?1 AND hour < ?2 AND (?3 IS NULL OR function = ?3)";
            let mut rows: BTreeMap<RowKey, UsageFigures> = BTreeMap::new();
            let mut stmt = c.prepare(&format!(
                "SELECT {cols}, SUM(requests), SUM(errors), SUM(cold_starts), SUM(init_us), SUM(duration_us),
                     SUM(billed_ms), SUM(mb_ms), SUM(provisioned_mb_ms)
                 FROM usage_hours WHERE {filter} GROUP BY 1, 2, 3, 4"
            ))?;
            let found = stmt.query_map(params![from, to, function], |r| {
                let n = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
                let figures = UsageFigures {
                    requests: n(4)?,
                    errors: n(5)?,
                    errors_by_type: BTreeMap::new(),
                    cold_starts: n(6)?,
                    init_duration_us: n(7)?,
                    duration_us: n(8)?,
                    billed_ms: n(9)?,
                    mb_ms: n(10)?,
                    provisioned_mb_ms: n(11)?,
                };
                Ok((row_key(r)?, figures))
            })?;
            for row in found {
                let (key, figures) = row?;
                rows.insert(key, figures);
            }
            let mut stmt = c.prepare(&format!(
                "SELECT {cols}, error_type, SUM(count) FROM usage_errors WHERE {filter} GROUP BY 1, 2, 3, 4, 5"
            ))?;
            let errors = stmt.query_map(params![from, to, function], |r| {
                Ok((row_key(r)?, r.get::<_, String>(4)?, r.get::<_, i64>(5)? as u64))
            })?;
            for e in errors {
                let (key, error_type, n) = e?;
                rows.entry(key).or_default().errors_by_type.insert(error_type, n);
            }
            rows.into_iter()
                .map(|((period, function, version, qualifier), figures)| {
                    let function = function
                        .map(|f| f.parse::<FunctionName>().map_err(|e| StoreError::Corrupt(e.to_string())))
                        .transpose()?;
                    Ok(UsageRow {
                        period_start: period.and_then(|p| Utc.timestamp_opt(p, 0).single()),
                        function,
                        version,
                        qualifier: qualifier.filter(|q| !q.is_empty()),
                        figures,
                    })
                })
                .collect()
        })
        .await
    }

    async fn invocation_stats(
        &self,
        function: &FunctionName,
        window: StatsWindow,
        max_durations: u64,
    ) -> Result<InvocationStats, StoreError> {
        let function = function.clone();
        self.with(move |c| crate::sqlite_stats::invocation_stats(c, &function, window, max_durations)).await
    }

    async fn function_activity(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        max_durations: u64,
    ) -> Result<Vec<FunctionActivity>, StoreError> {
        self.with(move |c| crate::sqlite_stats::function_activity(c, from, to, max_durations)).await
    }
}
