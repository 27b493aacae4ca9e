//! Statistics of invocation records on SQLite, in SQL: counts per bucket by `GROUP BY` over
//! the index on `(function, started_at)`, nearest-rank percentiles by window functions, and
//! the deterministic sample of [`hearth_types::stats_of`] (every k-th record in
//! `started_at`, then `rowid` order: the order records were stored).

use chrono::{DateTime, Utc};
use hearth_types::{FunctionActivity, FunctionName, InvocationFigures, InvocationStats, StatsWindow, bucket_share};
use rusqlite::{Connection, params};

use crate::StoreError;

/// The records of function `?1` that started in `[?2, ?3)` (milliseconds since the epoch).
const IN_WINDOW: &str = "FROM invocations WHERE function = ?1 AND started_at >= ?2 AND started_at < ?3";

/// The nearest-rank p50 and p99 of `d` over sample `s`, ranked by `r` among `m` values.
const PERCENTILES: &str =
    "MAX(CASE WHEN r = (m * 50 + 99) / 100 THEN d END), MAX(CASE WHEN r = (m * 99 + 99) / 100 THEN d END)";

pub(crate) fn invocation_stats(
    c: &Connection,
    function: &FunctionName,
    window: StatsWindow,
    max_durations: u64,
) -> Result<InvocationStats, StoreError> {
    let StatsWindow { from_ms, to_ms, step_ms } = window;
    let mut buckets = vec![InvocationFigures::default(); window.buckets()];
    let mut stmt = c.prepare(&format!(
        "SELECT (started_at - ?2) / ?4, COUNT(*), SUM(json_extract(body, '$.outcome') != 'success'),
             SUM(json_extract(body, '$.cold_start'))
         {IN_WINDOW} GROUP BY 1"
    ))?;
    let rows = stmt.query_map(params![function.as_str(), from_ms, to_ms, step_ms], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<i64>>(3)?))
    })?;
    for row in rows {
        let (b, n, errors, cold) = row?;
        let bucket = usize::try_from(b)
            .ok()
            .and_then(|b| buckets.get_mut(b))
            .ok_or_else(|| StoreError::Corrupt(format!("an invocation record outside its window (bucket {b})")))?;
        bucket.invocations = n as u64;
        bucket.errors = errors as u64;
        bucket.cold_starts = cold.unwrap_or(0) as u64;
    }
    let total_count: u64 = buckets.iter().map(|b| b.invocations).sum();
    if total_count == 0 {
        return Ok(InvocationStats { buckets, total: InvocationFigures::default(), sampled: false });
    }
    let non_empty = buckets.iter().filter(|b| b.invocations > 0).count() as u64;
    let share = bucket_share(max_durations, non_empty);
    let mut sampled = buckets.iter().any(|b| b.invocations > share);

    // Each bucket's percentiles, from every k-th of its records where k = ⌈count / share⌉.
    let mut stmt = c.prepare(&format!(
        "WITH w AS (
             SELECT (started_at - ?2) / ?4 AS b, json_extract(body, '$.duration_ms') AS d,
                 ROW_NUMBER() OVER (PARTITION BY (started_at - ?2) / ?4 ORDER BY started_at, rowid) AS n,
                 COUNT(*) OVER (PARTITION BY (started_at - ?2) / ?4) AS c
             {IN_WINDOW}
         ),
         s AS (
             SELECT b, d, ROW_NUMBER() OVER (PARTITION BY b ORDER BY d) AS r, COUNT(*) OVER (PARTITION BY b) AS m
             FROM w WHERE n % ((c + ?5 - 1) / ?5) = 0
         )
         SELECT b, {PERCENTILES} FROM s GROUP BY b"
    ))?;
    let rows = stmt.query_map(params![function.as_str(), from_ms, to_ms, step_ms, clamp(share)], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Option<f64>>(1)?, r.get::<_, Option<f64>>(2)?))
    })?;
    for row in rows {
        let (b, p50, p99) = row?;
        if let Some(bucket) = usize::try_from(b).ok().and_then(|b| buckets.get_mut(b)) {
            (bucket.p50_ms, bucket.p99_ms) = (p50, p99);
        }
    }

    // The window's, from every k-th record where k = ⌈total / max_durations⌉.
    let k = hearth_types::stride(total_count, max_durations);
    sampled |= k > 1;
    let (p50_ms, p99_ms) = c.query_row(
        &format!(
            "WITH w AS (
                 SELECT json_extract(body, '$.duration_ms') AS d, ROW_NUMBER() OVER (ORDER BY started_at, rowid) AS n
                 {IN_WINDOW}
             ),
             s AS (SELECT d, ROW_NUMBER() OVER (ORDER BY d) AS r, COUNT(*) OVER () AS m FROM w WHERE n % ?4 = 0)
             SELECT {PERCENTILES} FROM s"
        ),
        params![function.as_str(), from_ms, to_ms, clamp(k)],
        |r| Ok((r.get::<_, Option<f64>>(0)?, r.get::<_, Option<f64>>(1)?)),
    )?;
    let total = InvocationFigures {
        invocations: total_count,
        errors: buckets.iter().map(|b| b.errors).sum(),
        cold_starts: buckets.iter().map(|b| b.cold_starts).sum(),
        p50_ms,
        p99_ms,
    };
    Ok(InvocationStats { buckets, total, sampled })
}

/// Every function's activity in one statement. The functions table drives (`CROSS JOIN`
/// keeps SQLite from scanning the whole index of records instead), so each function's
/// records are a range of the index on `(function, started_at)`.
pub(crate) fn function_activity(
    c: &Connection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    max_durations: u64,
) -> Result<Vec<FunctionActivity>, StoreError> {
    let mut stmt = c.prepare(
        "WITH w AS (
             SELECT i.function AS f, json_extract(i.body, '$.duration_ms') AS d,
                 json_extract(i.body, '$.outcome') != 'success' AS e,
                 ROW_NUMBER() OVER (PARTITION BY i.function ORDER BY i.started_at, i.rowid) AS n,
                 COUNT(*) OVER (PARTITION BY i.function) AS c
             FROM functions fn CROSS JOIN invocations i ON i.function = fn.name
             WHERE i.started_at >= ?1 AND i.started_at < ?2
         ),
         share AS (SELECT MAX(1, ?3 / MAX(1, COUNT(DISTINCT f))) AS k FROM w),
         s AS (
             SELECT f, d, ROW_NUMBER() OVER (PARTITION BY f ORDER BY d) AS r, COUNT(*) OVER (PARTITION BY f) AS m,
                 c > share.k AS sampled
             FROM w, share WHERE n % ((c + share.k - 1) / share.k) = 0
         ),
         t AS (SELECT f, COUNT(*) AS total, SUM(e) AS errors FROM w GROUP BY f),
         p AS (
             SELECT f, MAX(CASE WHEN r = (m * 99 + 99) / 100 THEN d END) AS p99, MAX(sampled) AS sampled
             FROM s GROUP BY f
         )
         SELECT fn.name, COALESCE(t.total, 0), COALESCE(t.errors, 0), p.p99, COALESCE(p.sampled, 0)
         FROM functions fn LEFT JOIN t ON t.f = fn.name LEFT JOIN p ON p.f = fn.name
         ORDER BY fn.name",
    )?;
    let rows = stmt.query_map(params![from.timestamp_millis(), to.timestamp_millis(), clamp(max_durations)], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Option<f64>>(3)?,
            r.get::<_, bool>(4)?,
        ))
    })?;
    rows.map(|row| {
        let (name, invocations, errors, p99_ms, sampled) = row?;
        Ok(FunctionActivity {
            function: name.parse().map_err(|e: hearth_types::ValidationError| StoreError::Corrupt(e.to_string()))?,
            invocations: invocations as u64,
            errors: errors as u64,
            p99_ms,
            sampled,
        })
    })
    .collect()
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
