//! Schema migrations for the SQLite backend, applied in order and tracked in
//! `PRAGMA user_version`. Append only: never edit a migration that has shipped. A database
//! of a newer version than this binary knows is refused ([`StoreError::SchemaTooNew`]): the
//! binary cannot know what the newer migrations changed, nor keep to it. Every older version has a
//! fixture database in `tests/fixtures/`, upgraded by `tests/store.rs`.

use rusqlite::Connection;

use crate::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: functions, versions, tokens. Records are stored as JSON documents next to the
    // columns that constraints and lookups need.
    "CREATE TABLE functions (
         id       TEXT PRIMARY KEY,
         name     TEXT NOT NULL UNIQUE,
         revision INTEGER NOT NULL,
         body     TEXT NOT NULL
     );
     CREATE TABLE versions (
         function_id TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
         number      INTEGER NOT NULL,
         body        TEXT NOT NULL,
         PRIMARY KEY (function_id, number)
     );
     CREATE TABLE tokens (
         id            TEXT PRIMARY KEY,
         secret_sha256 TEXT NOT NULL UNIQUE,
         created_at    TEXT NOT NULL,
         body          TEXT NOT NULL
     );",
    // 2: HTTP triggers, one per path.
    "CREATE TABLE triggers (
         id       TEXT PRIMARY KEY,
         path     TEXT NOT NULL UNIQUE,
         function TEXT NOT NULL,
         body     TEXT NOT NULL
     );
     CREATE INDEX triggers_function ON triggers(function);",
    // 3: telemetry: invocation records and log lines, pruned by age.
    "CREATE TABLE invocations (
         request_id TEXT PRIMARY KEY,
         function   TEXT NOT NULL,
         started_at INTEGER NOT NULL,
         body       TEXT NOT NULL
     );
     CREATE INDEX invocations_function ON invocations(function, started_at);
     CREATE TABLE logs (
         seq        INTEGER PRIMARY KEY AUTOINCREMENT,
         function   TEXT NOT NULL,
         request_id TEXT,
         at         INTEGER NOT NULL,
         body       TEXT NOT NULL
     );
     CREATE INDEX logs_function ON logs(function, seq);
     CREATE INDEX logs_at ON logs(at);",
    // 4: asynchronous invocations, cron triggers (which fire into the same queue) and
    // aliases. Invocation records are unique by request id and attempt
    // (an event's retries keep its request id); the events themselves are the durable queue:
    // columns for what queries select on, the whole `EventRecord` in `body`.
    "CREATE TABLE invocations_v4 (
         request_id TEXT NOT NULL,
         attempt    INTEGER NOT NULL,
         function   TEXT NOT NULL,
         started_at INTEGER NOT NULL,
         body       TEXT NOT NULL,
         PRIMARY KEY (request_id, attempt)
     );
     INSERT INTO invocations_v4 (request_id, attempt, function, started_at, body)
         SELECT request_id, 1, function, started_at, body FROM invocations;
     DROP TABLE invocations;
     ALTER TABLE invocations_v4 RENAME TO invocations;
     CREATE INDEX invocations_function ON invocations(function, started_at);
     CREATE TABLE events (
         seq         INTEGER PRIMARY KEY AUTOINCREMENT,
         request_id  TEXT NOT NULL UNIQUE,
         function    TEXT NOT NULL,
         status      TEXT NOT NULL,
         not_before  INTEGER NOT NULL,
         queued_at   INTEGER NOT NULL,
         lease_owner TEXT,
         lease_until INTEGER,
         finished_at INTEGER,
         chain       INTEGER NOT NULL,
         payload     BLOB NOT NULL,
         body        TEXT NOT NULL
     );
     CREATE INDEX events_function ON events(function, status, seq);
     CREATE INDEX events_due ON events(status, not_before);
     CREATE INDEX events_lease ON events(status, lease_until);
     CREATE INDEX events_finished ON events(status, finished_at);
     CREATE TABLE schedules (
         id           TEXT PRIMARY KEY,
         function     TEXT NOT NULL,
         next_fire_at INTEGER,
         created_at   INTEGER NOT NULL,
         body         TEXT NOT NULL
     );
     CREATE INDEX schedules_function ON schedules(function);
     CREATE TABLE aliases (
         function_id TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
         name        TEXT NOT NULL,
         body        TEXT NOT NULL,
         PRIMARY KEY (function_id, name)
     );",
    // 5: NATS triggers, their credentials in a column of their own (the body is what the
    // API shows); usage aggregates per function, version, qualifier ('' for none) and hour.
    "CREATE TABLE nats_triggers (
         id          TEXT PRIMARY KEY,
         function    TEXT NOT NULL,
         created_at  INTEGER NOT NULL,
         credentials TEXT,
         body        TEXT NOT NULL
     );
     CREATE INDEX nats_triggers_function ON nats_triggers(function);
     CREATE TABLE usage_hours (
         function          TEXT NOT NULL,
         version           INTEGER NOT NULL,
         qualifier         TEXT NOT NULL,
         hour              INTEGER NOT NULL,
         requests          INTEGER NOT NULL,
         errors            INTEGER NOT NULL,
         cold_starts       INTEGER NOT NULL,
         init_us           INTEGER NOT NULL,
         duration_us       INTEGER NOT NULL,
         billed_ms         INTEGER NOT NULL,
         mb_ms             INTEGER NOT NULL,
         provisioned_mb_ms INTEGER NOT NULL,
         PRIMARY KEY (function, version, qualifier, hour)
     );
     CREATE INDEX usage_hours_hour ON usage_hours(hour);
     CREATE TABLE usage_errors (
         function   TEXT NOT NULL,
         version    INTEGER NOT NULL,
         qualifier  TEXT NOT NULL,
         hour       INTEGER NOT NULL,
         error_type TEXT NOT NULL,
         count      INTEGER NOT NULL,
         PRIMARY KEY (function, version, qualifier, hour, error_type)
     );
     CREATE INDEX usage_errors_hour ON usage_errors(hour);
     -- The records stored before: their aggregates, computed as UsageFigures::of does
     -- (durations rounded to the microsecond per record, half away from zero).
     INSERT INTO usage_hours
     SELECT json_extract(body, '$.function'), json_extract(body, '$.version'),
            COALESCE(json_extract(body, '$.qualifier'), ''), started_at / 1000 - (started_at / 1000) % 3600,
            COUNT(*), SUM(json_extract(body, '$.outcome') != 'success'), SUM(json_extract(body, '$.cold_start')),
            CAST(TOTAL(CASE WHEN json_extract(body, '$.init_duration_ms') > 0
                            THEN ROUND(json_extract(body, '$.init_duration_ms') * 1000.0) ELSE 0 END) AS INTEGER),
            CAST(TOTAL(CASE WHEN json_extract(body, '$.duration_ms') > 0
                            THEN ROUND(json_extract(body, '$.duration_ms') * 1000.0) ELSE 0 END) AS INTEGER),
            SUM(json_extract(body, '$.billed_ms')),
            SUM(json_extract(body, '$.billed_ms') * json_extract(body, '$.memory_mb')), 0
     FROM invocations GROUP BY 1, 2, 3, 4;
     INSERT INTO usage_errors
     SELECT json_extract(body, '$.function'), json_extract(body, '$.version'),
            COALESCE(json_extract(body, '$.qualifier'), ''), started_at / 1000 - (started_at / 1000) % 3600,
            COALESCE(json_extract(body, '$.error_type'), 'Unknown'), COUNT(*)
     FROM invocations WHERE json_extract(body, '$.outcome') != 'success' GROUP BY 1, 2, 3, 4, 5;",
];

pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::SchemaTooNew { found: current, known: MIGRATIONS.len() });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

pub(crate) fn latest() -> usize {
    MIGRATIONS.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How SQLite reads a statement (the `detail` column of `EXPLAIN QUERY PLAN`).
    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map(rusqlite::params!["f", 5, "r", 10], |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    /// A log read, with or without a request filter, forwards or backwards, is a range of
    /// the function's index from a position: a follower reads only what is past its place
    /// (which a short read moves to the log's end, `hearth-gateway`'s `LogFollower`).
    #[test]
    fn log_reads_use_an_index_range() {
        use crate::sqlite::{LOG_TAIL, READ_LOGS, READ_REQUEST_LOGS, REQUEST_LOG_TAIL};
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        for sql in [READ_LOGS, LOG_TAIL, READ_REQUEST_LOGS, REQUEST_LOG_TAIL] {
            let p = plan(&conn, sql);
            assert!(p.contains("USING INDEX logs_function (function=? AND seq"), "{sql}: {p}");
            assert!(!p.contains("TEMP B-TREE"), "no sort: {p}");
        }
    }
}
