use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hearth_types::{
    Alias, AliasName, Function, FunctionName, HttpTrigger, InvocationRecord, LogLine, TokenId, TokenRecord, TriggerId,
    Version,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::log_entries::{Keep, lines_of};
use crate::{Expect, MetadataStore, StoreError, sqlite_schema};

/// The embedded default [`MetadataStore`]: one SQLite file in WAL mode.
///
/// One connection serialises all statements; calls run on tokio's blocking pool so the
/// async executor never waits on disk.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

pub(crate) fn decode<T: DeserializeOwned>(body: String) -> Result<T, StoreError> {
    Ok(serde_json::from_str(&body)?)
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.to_string()))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        sqlite_schema::migrate(&mut conn)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Schema version after migrations (for diagnostics and tests).
    pub fn schema_version(&self) -> usize {
        sqlite_schema::latest()
    }

    /// What `PRAGMA integrity_check` and `PRAGMA foreign_key_check` find wrong: empty when
    /// the file is sound (for diagnostics and the crash tests).
    pub fn integrity_problems(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut problems: Vec<String> = conn
            .prepare("PRAGMA integrity_check")?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|line| line != "ok")
            .collect();
        let mut keys = conn.prepare("PRAGMA foreign_key_check")?;
        let broken = keys.query_map([], |r| {
            Ok(format!("foreign key: {} row {:?}", r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?))
        })?;
        for b in broken {
            problems.push(b?);
        }
        Ok(problems)
    }

    pub(crate) async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // rusqlite rolls back an open transaction on drop, so a panic mid-statement
            // leaves the database consistent and the lock safe to reuse.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

fn function_id_of(conn: &Connection, name: &str) -> Result<Option<String>, StoreError> {
    Ok(conn.query_row("SELECT id FROM functions WHERE name = ?1", [name], |r| r.get(0)).optional()?)
}

/// A function's log after a position (`?2`), all of it or one request's (`?3`), oldest first;
/// and its tail at or before a position, newest first. Each reads a range of the function's
/// index from the position.
pub(crate) const READ_LOGS: &str =
    "SELECT seq, body FROM logs WHERE function = ?1 AND seq > ?2 AND ?3 IS NULL ORDER BY seq LIMIT ?4";
pub(crate) const READ_REQUEST_LOGS: &str =
    "SELECT seq, body FROM logs WHERE function = ?1 AND request_id = ?3 AND seq > ?2 ORDER BY seq LIMIT ?4";
pub(crate) const LOG_TAIL: &str =
    "SELECT seq, body FROM logs WHERE function = ?1 AND seq <= ?2 AND ?3 IS NULL ORDER BY seq DESC LIMIT ?4";
pub(crate) const REQUEST_LOG_TAIL: &str =
    "SELECT seq, body FROM logs WHERE function = ?1 AND request_id = ?3 AND seq <= ?2 ORDER BY seq DESC LIMIT ?4";

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn get_function(&self, name: &FunctionName) -> Result<Option<Function>, StoreError> {
        let name = name.to_string();
        self.with(move |c| {
            c.query_row("SELECT body FROM functions WHERE name = ?1", [name], |r| r.get(0))
                .optional()?
                .map(decode)
                .transpose()
        })
        .await
    }

    async fn list_functions(&self) -> Result<Vec<Function>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT body FROM functions ORDER BY name")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|r| decode(r?)).collect()
        })
        .await
    }

    async fn save_function(
        &self,
        function: &Function,
        expect: Expect,
        version: Option<&Version>,
    ) -> Result<(), StoreError> {
        let body = encode(function)?;
        let version = version.map(|v| Ok::<_, StoreError>((v.number, encode(v)?))).transpose()?;
        let (id, name, revision) = (function.id.to_string(), function.name.to_string(), function.revision);
        self.with(move |c| {
            let tx = c.transaction()?;
            let stored: Option<(String, u64)> = tx
                .query_row("SELECT id, revision FROM functions WHERE name = ?1", [&name], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            match (expect, stored) {
                (Expect::Absent, None) => {
                    tx.execute(
                        "INSERT INTO functions (id, name, revision, body) VALUES (?1, ?2, ?3, ?4)",
                        params![id, name, revision, body],
                    )?;
                }
                (Expect::Revision(want), Some((stored_id, rev))) if rev == want && stored_id == id => {
                    tx.execute(
                        "UPDATE functions SET revision = ?1, body = ?2 WHERE id = ?3",
                        params![revision, body, id],
                    )?;
                }
                _ => return Err(StoreError::Conflict),
            }
            if let Some((number, vbody)) = version {
                let inserted = tx.execute(
                    "INSERT OR IGNORE INTO versions (function_id, number, body) VALUES (?1, ?2, ?3)",
                    params![id, number, vbody],
                )?;
                if inserted == 0 {
                    return Err(StoreError::Conflict);
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn delete_function(&self, name: &FunctionName) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.with(move |c| {
            let tx = c.transaction()?;
            let Some(id) = function_id_of(&tx, &name)? else {
                return Ok(false);
            };
            tx.execute("DELETE FROM versions WHERE function_id = ?1", [&id])?;
            tx.execute("DELETE FROM aliases WHERE function_id = ?1", [&id])?;
            tx.execute("DELETE FROM triggers WHERE function = ?1", [&name])?;
            tx.execute("DELETE FROM logs WHERE function = ?1", [&name])?;
            tx.execute("DELETE FROM functions WHERE id = ?1", [&id])?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn put_alias(&self, alias: &Alias) -> Result<(), StoreError> {
        let (function, name, body) = (alias.function.to_string(), alias.name.to_string(), encode(alias)?);
        self.with(move |c| {
            let tx = c.transaction()?;
            let Some(id) = function_id_of(&tx, &function)? else { return Err(StoreError::Conflict) };
            tx.execute(
                "INSERT INTO aliases (function_id, name, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (function_id, name) DO UPDATE SET body = excluded.body",
                params![id, name, body],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn get_alias(&self, function: &FunctionName, name: &AliasName) -> Result<Option<Alias>, StoreError> {
        let (function, name) = (function.to_string(), name.to_string());
        self.with(move |c| {
            c.query_row(
                "SELECT a.body FROM aliases a JOIN functions f ON f.id = a.function_id WHERE f.name = ?1 AND a.name = ?2",
                params![function, name],
                |r| r.get(0),
            )
            .optional()?
            .map(decode)
            .transpose()
        })
        .await
    }

    async fn list_aliases(&self, function: &FunctionName) -> Result<Vec<Alias>, StoreError> {
        let function = function.to_string();
        self.with(move |c| {
            let mut stmt = c.prepare(
                "SELECT a.body FROM aliases a JOIN functions f ON f.id = a.function_id WHERE f.name = ?1 ORDER BY a.name",
            )?;
            let rows = stmt.query_map([function], |r| r.get::<_, String>(0))?;
            rows.map(|r| decode(r?)).collect()
        })
        .await
    }

    async fn delete_alias(&self, function: &FunctionName, name: &AliasName) -> Result<bool, StoreError> {
        let (function, name) = (function.to_string(), name.to_string());
        self.with(move |c| {
            let Some(id) = function_id_of(c, &function)? else { return Ok(false) };
            Ok(c.execute("DELETE FROM aliases WHERE function_id = ?1 AND name = ?2", params![id, name])? > 0)
        })
        .await
    }

    async fn list_versions(&self, name: &FunctionName) -> Result<Vec<Version>, StoreError> {
        let name = name.to_string();
        self.with(move |c| {
            let mut stmt = c.prepare(
                "SELECT v.body FROM versions v JOIN functions f ON f.id = v.function_id
                 WHERE f.name = ?1 ORDER BY v.number",
            )?;
            let rows = stmt.query_map([name], |r| r.get::<_, String>(0))?;
            rows.map(|r| decode(r?)).collect()
        })
        .await
    }

    async fn get_version(&self, name: &FunctionName, number: u32) -> Result<Option<Version>, StoreError> {
        let name = name.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT v.body FROM versions v JOIN functions f ON f.id = v.function_id
                 WHERE f.name = ?1 AND v.number = ?2",
                params![name, number],
                |r| r.get(0),
            )
            .optional()?
            .map(decode)
            .transpose()
        })
        .await
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let body = encode(token)?;
        let (id, hash, created) = (token.id.to_string(), token.secret_sha256.clone(), token.created_at.to_rfc3339());
        self.with(move |c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO tokens (id, secret_sha256, created_at, body) VALUES (?1, ?2, ?3, ?4)",
                params![id, hash, created, body],
            )?;
            if n == 0 { Err(StoreError::Conflict) } else { Ok(()) }
        })
        .await
    }

    async fn token_by_secret_hash(&self, sha256: &str) -> Result<Option<TokenRecord>, StoreError> {
        let hash = sha256.to_owned();
        self.with(move |c| {
            c.query_row("SELECT body FROM tokens WHERE secret_sha256 = ?1", [hash], |r| r.get(0))
                .optional()?
                .map(decode)
                .transpose()
        })
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT body FROM tokens ORDER BY created_at, id")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|r| decode(r?)).collect()
        })
        .await
    }

    async fn delete_token(&self, id: TokenId) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.with(move |c| Ok(c.execute("DELETE FROM tokens WHERE id = ?1", [id])? > 0)).await
    }

    async fn insert_trigger(&self, trigger: &HttpTrigger) -> Result<(), StoreError> {
        let body = encode(trigger)?;
        let (id, path, function) = (trigger.id.to_string(), trigger.path.to_string(), trigger.function.to_string());
        self.with(move |c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO triggers (id, path, function, body) VALUES (?1, ?2, ?3, ?4)",
                params![id, path, function, body],
            )?;
            if n == 0 { Err(StoreError::Conflict) } else { Ok(()) }
        })
        .await
    }

    async fn list_triggers(&self) -> Result<Vec<HttpTrigger>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT body FROM triggers ORDER BY path")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|r| decode(r?)).collect()
        })
        .await
    }

    async fn delete_trigger(&self, id: TriggerId) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.with(move |c| Ok(c.execute("DELETE FROM triggers WHERE id = ?1", [id])? > 0)).await
    }

    async fn append_invocations(&self, records: &[InvocationRecord]) -> Result<(), StoreError> {
        self.append_telemetry(records, &[]).await
    }

    async fn list_invocations(
        &self,
        function: &FunctionName,
        limit: usize,
    ) -> Result<Vec<InvocationRecord>, StoreError> {
        let function = function.to_string();
        self.with(move |c| {
            let mut stmt =
                c.prepare("SELECT body FROM invocations WHERE function = ?1 ORDER BY started_at DESC LIMIT ?2")?;
            let rows = stmt.query_map(params![function, limit as i64], |r| r.get::<_, String>(0))?;
            rows.map(|r| decode(r?)).collect()
        })
        .await
    }

    async fn append_logs(&self, lines: &[LogLine]) -> Result<(), StoreError> {
        self.append_telemetry(&[], lines).await
    }

    async fn append_telemetry(&self, records: &[InvocationRecord], lines: &[LogLine]) -> Result<(), StoreError> {
        let records = InvocationRows::of(records)?;
        let lines = LogRows::of(lines)?;
        self.with(move |c| {
            let tx = c.transaction()?;
            records.insert(&tx)?;
            lines.insert(&tx)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn read_logs(
        &self,
        function: &FunctionName,
        after: i64,
        request_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogLine>, StoreError> {
        let (function, request_id) = (function.to_string(), request_id.map(str::to_owned));
        self.with(move |c| {
            // Two statements, so the planner sees a plain condition in each.
            let mut stmt = c.prepare_cached(if request_id.is_some() { READ_REQUEST_LOGS } else { READ_LOGS })?;
            let rows = stmt.query_map(params![function, after, request_id, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            let entries = rows
                .map(|r| {
                    let (seq, body) = r?;
                    Ok(LogLine { seq, ..decode(body)? })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(lines_of(entries, limit, Keep::Oldest))
        })
        .await
    }

    async fn read_log_tail(
        &self,
        function: &FunctionName,
        at_most: i64,
        request_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogLine>, StoreError> {
        let (function, request_id) = (function.to_string(), request_id.map(str::to_owned));
        self.with(move |c| {
            let mut stmt = c.prepare_cached(if request_id.is_some() { REQUEST_LOG_TAIL } else { LOG_TAIL })?;
            let rows = stmt.query_map(params![function, at_most, request_id, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut lines = rows
                .map(|r| {
                    let (seq, body) = r?;
                    Ok(LogLine { seq, ..decode(body)? })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            lines.reverse();
            Ok(lines_of(lines, limit, Keep::Newest))
        })
        .await
    }

    async fn log_end(&self) -> Result<i64, StoreError> {
        // `logs.seq` is AUTOINCREMENT: SQLite keeps the highest one ever given here.
        self.with(|c| {
            Ok(c.query_row("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'logs'), 0)", [], |r| {
                r.get(0)
            })?)
        })
        .await
    }

    async fn prune_telemetry(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let cutoff = before.timestamp_millis();
        self.with(move |c| {
            let logs = c.execute("DELETE FROM logs WHERE at < ?1", [cutoff])?;
            let records = c.execute("DELETE FROM invocations WHERE started_at < ?1", [cutoff])?;
            Ok((logs + records) as u64)
        })
        .await
    }
}

/// Invocation records ready to insert (encoded before the store's thread takes them).
struct InvocationRows {
    rows: Vec<(String, u32, String, i64, String)>,
    records: Vec<InvocationRecord>,
}

impl InvocationRows {
    fn of(records: &[InvocationRecord]) -> Result<Self, StoreError> {
        let rows = records
            .iter()
            .map(|r| {
                Ok((
                    r.request_id.clone(),
                    r.attempt,
                    r.function.to_string(),
                    r.started_at.timestamp_millis(),
                    encode(r)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self { rows, records: records.to_vec() })
    }

    fn insert(&self, tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO invocations (request_id, attempt, function, started_at, body)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut stored = Vec::with_capacity(self.rows.len());
        for ((id, attempt, function, at, body), record) in self.rows.iter().zip(&self.records) {
            if stmt.execute(params![id, attempt, function, at, body])? == 1 {
                stored.push(record);
            }
        }
        // A repeat adds nothing: the aggregates count the records stored.
        for (key, figures) in hearth_types::aggregate_usage(stored) {
            crate::sqlite_usage::add(tx, &key, &figures)?;
        }
        Ok(())
    }
}

/// Log entries ready to insert.
struct LogRows(Vec<(String, Option<String>, i64, String)>);

impl LogRows {
    fn of(lines: &[LogLine]) -> Result<Self, StoreError> {
        lines
            .iter()
            .map(|l| Ok((l.function.to_string(), l.request_id.clone(), l.at.timestamp_millis(), encode(l)?)))
            .collect::<Result<Vec<_>, StoreError>>()
            .map(Self)
    }

    fn insert(&self, tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut stmt =
            tx.prepare_cached("INSERT INTO logs (function, request_id, at, body) VALUES (?1, ?2, ?3, ?4)")?;
        for (function, request_id, at, body) in &self.0 {
            stmt.execute(params![function, request_id, at, body])?;
        }
        Ok(())
    }
}
