//! [`EventQueue`] on the SQLite metadata database (tables `events` and `schedules`,
//! migration 4; `nats_triggers`, migration 5).
//!
//! Acceptance is durable: `enqueue` commits with `PRAGMA synchronous = FULL`, so the WAL is
//! synced to disk before a caller hears `202` (the rest of the store keeps `NORMAL`, which
//! survives a killed process but not a power cut). Concurrent acceptances share one commit
//! when the caller batches them (the server's acceptor does).

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use hearth_types::{CronTrigger, EventRecord, EventStatus, FunctionName, NatsTrigger, ScheduleState, TriggerId};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::event_transitions as transitions;
use crate::sqlite::{decode, encode};
use crate::{Enqueued, EventQueue, Fired, Lease, NewEvent, QueueDepth, QueuedEvent, Settle, SqliteStore, StoreError};

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(t: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(t).single().unwrap_or_default()
}

/// Stores `e` unless its id exists; with `bound`, unless its function is at its bound.
fn insert(tx: &Transaction<'_>, e: &NewEvent, bound: bool) -> Result<Enqueued, StoreError> {
    let exists: bool =
        tx.query_row("SELECT EXISTS (SELECT 1 FROM events WHERE request_id = ?1)", [&e.request_id], |r| r.get(0))?;
    if exists {
        return Ok(Enqueued::Duplicate);
    }
    let function = e.function.as_str();
    if bound {
        let queued: u64 = tx.query_row(
            "SELECT COUNT(*) FROM events WHERE function = ?1 AND status IN ('queued', 'running')",
            [function],
            |r| r.get(0),
        )?;
        if queued >= u64::from(e.max_queued) {
            return Ok(Enqueued::QueueFull { queued });
        }
    }
    let record = transitions::accepted(e);
    tx.execute(
        "INSERT INTO events (request_id, function, status, not_before, queued_at, chain, payload, body)
         VALUES (?1, ?2, 'queued', ?3, ?3, ?4, ?5, ?6)",
        params![e.request_id, function, ms(e.enqueued_at), e.chain, e.payload.as_ref(), encode(&record)?],
    )?;
    Ok(Enqueued::Accepted)
}

/// Writes a changed record back, with the columns queries select on.
fn update(tx: &Connection, r: &EventRecord, lease: Option<(&str, DateTime<Utc>)>) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE events SET status = ?2, not_before = ?3, lease_owner = ?4, lease_until = ?5, finished_at = ?6,
         body = ?7, queued_at = ?8 WHERE request_id = ?1",
        params![
            r.request_id,
            r.status.as_str(),
            ms(r.not_before),
            lease.map(|(owner, _)| owner),
            lease.map(|(_, until)| ms(until)),
            r.finished_at.map(ms),
            encode(r)?,
            ms(r.queued_at)
        ],
    )?;
    Ok(())
}

fn queued_event(payload: Vec<u8>, body: String, chain: u32) -> Result<QueuedEvent, StoreError> {
    Ok(QueuedEvent { record: decode(body)?, payload: Bytes::from(payload), chain })
}

#[async_trait]
impl EventQueue for SqliteStore {
    async fn enqueue(&self, events: &[NewEvent]) -> Result<Vec<Enqueued>, StoreError> {
        let events = events.to_vec();
        self.with(move |c| {
            // Synced before the caller is answered; back to the store's default after.
            c.pragma_update(None, "synchronous", "FULL")?;
            let result = (|| {
                let tx = c.transaction()?;
                let out = events.iter().map(|e| insert(&tx, e, true)).collect::<Result<Vec<_>, _>>()?;
                tx.commit()?;
                Ok(out)
            })();
            c.pragma_update(None, "synchronous", "NORMAL")?;
            result
        })
        .await
    }

    async fn due_functions(&self, now: DateTime<Utc>) -> Result<Vec<FunctionName>, StoreError> {
        self.with(move |c| {
            let mut stmt = c.prepare(
                "SELECT function FROM events WHERE status = 'queued' AND not_before <= ?1
                 UNION SELECT function FROM events WHERE status = 'running' AND lease_until <= ?1
                 ORDER BY 1",
            )?;
            let rows = stmt.query_map([ms(now)], |r| r.get::<_, String>(0))?;
            rows.map(|r| r?.parse::<FunctionName>().map_err(|e| StoreError::Corrupt(e.to_string()))).collect()
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with(|c| {
            let at: Option<i64> = c.query_row(
                "SELECT MIN(t) FROM (
                     SELECT MIN(not_before) AS t FROM events WHERE status = 'queued'
                     UNION ALL SELECT MIN(lease_until) FROM events WHERE status = 'running')",
                [],
                |r| r.get(0),
            )?;
            Ok(at.map(from_ms))
        })
        .await
    }

    async fn lease(&self, function: &FunctionName, lease: &Lease) -> Result<Vec<QueuedEvent>, StoreError> {
        let (function, lease) = (function.to_string(), lease.clone());
        self.with(move |c| {
            let tx = c.transaction()?;
            let rows: Vec<(Vec<u8>, String, u32)> = {
                let mut stmt = tx.prepare(
                    "SELECT payload, body, chain FROM events WHERE function = ?1
                     AND ((status = 'queued' AND not_before <= ?2) OR (status = 'running' AND lease_until <= ?2))
                     ORDER BY seq LIMIT ?3",
                )?;
                stmt.query_map(params![function, ms(lease.now), lease.limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?
            };
            let mut out = Vec::with_capacity(rows.len());
            for (payload, body, chain) in rows {
                let mut event = queued_event(payload, body, chain)?;
                transitions::leased(&mut event.record, lease.now);
                update(&tx, &event.record, Some((&lease.owner, lease.until)))?;
                out.push(event);
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn settle(
        &self,
        request_id: &str,
        attempt: u32,
        at: DateTime<Utc>,
        outcome: Settle,
        forward: Option<NewEvent>,
    ) -> Result<bool, StoreError> {
        let request_id = request_id.to_owned();
        self.with(move |c| {
            let tx = c.transaction()?;
            let body: Option<String> = tx
                .query_row("SELECT body FROM events WHERE request_id = ?1 AND status = 'running'", [&request_id], |r| {
                    r.get(0)
                })
                .optional()?;
            let Some(body) = body else { return Ok(false) };
            let mut r: EventRecord = decode(body)?;
            if r.attempts != attempt {
                return Ok(false);
            }
            transitions::settled(&mut r, outcome, at);
            if let Some(f) = &forward {
                insert(&tx, f, false)?;
                r.destination = Some(f.function.clone());
            }
            update(&tx, &r, None)?;
            if matches!(r.status, EventStatus::Succeeded | EventStatus::Failed) {
                tx.execute("UPDATE events SET payload = x'' WHERE request_id = ?1", [&request_id])?;
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn release_leases(&self, owner: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let owner = owner.to_owned();
        self.with(move |c| {
            let tx = c.transaction()?;
            let bodies: Vec<String> = {
                let mut stmt = tx.prepare("SELECT body FROM events WHERE status = 'running' AND lease_owner = ?1")?;
                stmt.query_map([&owner], |r| r.get(0))?.collect::<Result<_, _>>()?
            };
            let n = bodies.len() as u64;
            for body in bodies {
                let mut r: EventRecord = decode(body)?;
                transitions::released(&mut r, now);
                update(&tx, &r, None)?;
            }
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    async fn get_event(&self, request_id: &str) -> Result<Option<EventRecord>, StoreError> {
        let request_id = request_id.to_owned();
        self.with(move |c| {
            c.query_row("SELECT body FROM events WHERE request_id = ?1", [request_id], |r| r.get(0))
                .optional()?
                .map(decode)
                .transpose()
        })
        .await
    }

    async fn list_dead_letters(
        &self,
        function: &FunctionName,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<QueuedEvent>, StoreError> {
        let (function, after) = (function.to_string(), after.map(str::to_owned));
        self.with(move |c| {
            let after_seq: i64 = match after {
                None => 0,
                Some(id) => c
                    .query_row("SELECT seq FROM events WHERE request_id = ?1", [id], |r| r.get(0))
                    .optional()?
                    .unwrap_or(i64::MAX),
            };
            let mut stmt = c.prepare(
                "SELECT payload, body, chain FROM events WHERE function = ?1 AND status = 'dead_lettered'
                 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows =
                stmt.query_map(params![function, after_seq, limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.map(|r| {
                let (payload, body, chain) = r?;
                queued_event(payload, body, chain)
            })
            .collect()
        })
        .await
    }

    async fn redrive(
        &self,
        function: &FunctionName,
        ids: Option<&[String]>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let (function, ids) = (function.to_string(), ids.map(<[String]>::to_vec));
        self.with(move |c| {
            let tx = c.transaction()?;
            let bodies: Vec<String> = {
                let mut stmt = tx
                    .prepare("SELECT body FROM events WHERE function = ?1 AND status = 'dead_lettered' ORDER BY seq")?;
                stmt.query_map([&function], |r| r.get(0))?.collect::<Result<_, _>>()?
            };
            let mut n = 0;
            for body in bodies {
                let mut r: EventRecord = decode(body)?;
                if ids.as_ref().is_some_and(|ids| !ids.contains(&r.request_id)) {
                    continue;
                }
                transitions::redriven(&mut r, now);
                update(&tx, &r, None)?;
                n += 1;
            }
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    async fn prune_events(
        &self,
        finished_before: DateTime<Utc>,
        dead_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.with(move |c| {
            let done = c.execute(
                "DELETE FROM events WHERE status IN ('succeeded', 'failed') AND finished_at < ?1",
                [ms(finished_before)],
            )?;
            let dead =
                c.execute("DELETE FROM events WHERE status = 'dead_lettered' AND finished_at < ?1", [ms(dead_before)])?;
            Ok((done + dead) as u64)
        })
        .await
    }

    async fn delete_events_of(&self, function: &FunctionName) -> Result<u64, StoreError> {
        let function = function.to_string();
        self.with(move |c| Ok(c.execute("DELETE FROM events WHERE function = ?1", [function])? as u64)).await
    }

    async fn queue_depths(&self) -> Result<Vec<QueueDepth>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT function, SUM(status = 'queued'), SUM(status = 'running'), SUM(status = 'dead_lettered'),
                        MIN(CASE WHEN status IN ('queued', 'running') THEN queued_at END)
                 FROM events WHERE status IN ('queued', 'running', 'dead_lettered')
                 GROUP BY function ORDER BY function",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u64>(1)?,
                    r.get::<_, u64>(2)?,
                    r.get::<_, u64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })?;
            rows.map(|row| {
                let (function, queued, running, dead_lettered, oldest) = row?;
                Ok(QueueDepth {
                    function: function
                        .parse()
                        .map_err(|e: hearth_types::ValidationError| StoreError::Corrupt(e.to_string()))?,
                    queued,
                    running,
                    dead_lettered,
                    oldest_queued_at: oldest.map(from_ms),
                })
            })
            .collect()
        })
        .await
    }

    async fn add_schedule(&self, trigger: &CronTrigger, next_fire_at: Option<DateTime<Utc>>) -> Result<(), StoreError> {
        let state = ScheduleState { trigger: trigger.clone(), next_fire_at, fired: 0, dropped: 0, last_fired_at: None };
        let (id, function, created) = (trigger.id.to_string(), trigger.function.to_string(), ms(trigger.created_at));
        let body = encode(&state)?;
        self.with(move |c| {
            let added = c.execute(
                "INSERT OR IGNORE INTO schedules (id, function, next_fire_at, created_at, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, function, next_fire_at.map(ms), created, body],
            )?;
            if added == 0 { Err(StoreError::Conflict) } else { Ok(()) }
        })
        .await
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleState>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT body FROM schedules ORDER BY created_at, id")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|r| decode(r?)).collect()
        })
        .await
    }

    async fn delete_schedule(&self, id: TriggerId) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.with(move |c| Ok(c.execute("DELETE FROM schedules WHERE id = ?1", [id])? > 0)).await
    }

    async fn delete_schedules_of(&self, function: &FunctionName) -> Result<u64, StoreError> {
        let function = function.to_string();
        self.with(move |c| Ok(c.execute("DELETE FROM schedules WHERE function = ?1", [function])? as u64)).await
    }

    async fn fire_schedule(
        &self,
        id: TriggerId,
        expected: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
        event: Option<NewEvent>,
    ) -> Result<Fired, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            // Synced as acceptance is: a fired occurrence is an accepted event.
            c.pragma_update(None, "synchronous", "FULL")?;
            let result = (|| {
                let tx = c.transaction()?;
                let body: Option<String> =
                    tx.query_row("SELECT body FROM schedules WHERE id = ?1", [&id], |r| r.get(0)).optional()?;
                let Some(body) = body else { return Ok(Fired::Stale) };
                let mut state: ScheduleState = decode(body)?;
                if state.next_fire_at != Some(expected) {
                    return Ok(Fired::Stale);
                }
                let stored = event.as_ref().map(|e| insert(&tx, e, true)).transpose()?;
                transitions::fired(&mut state, stored, next, at);
                tx.execute(
                    "UPDATE schedules SET next_fire_at = ?2, body = ?3 WHERE id = ?1",
                    params![id, next.map(ms), encode(&state)?],
                )?;
                tx.commit()?;
                Ok(Fired::Advanced(stored))
            })();
            c.pragma_update(None, "synchronous", "NORMAL")?;
            result
        })
        .await
    }

    async fn store_finished(
        &self,
        event: &NewEvent,
        attempts: u32,
        function_errors: u32,
        at: DateTime<Utc>,
        outcome: Settle,
        forward: Option<NewEvent>,
    ) -> Result<Enqueued, StoreError> {
        let mut r = transitions::finished(event, attempts, function_errors, outcome, at);
        let e = event.clone();
        self.with(move |c| {
            c.pragma_update(None, "synchronous", "FULL")?;
            let result = (|| {
                let tx = c.transaction()?;
                let exists: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM events WHERE request_id = ?1)",
                    [&e.request_id],
                    |row| row.get(0),
                )?;
                if exists {
                    return Ok(Enqueued::Duplicate);
                }
                if let Some(f) = &forward {
                    insert(&tx, f, false)?;
                    r.destination = Some(f.function.clone());
                }
                let payload: &[u8] = if r.status == EventStatus::DeadLettered { &e.payload } else { &[] };
                tx.execute(
                    "INSERT INTO events (request_id, function, status, not_before, queued_at, finished_at, chain, payload, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        r.request_id,
                        r.function.as_str(),
                        r.status.as_str(),
                        ms(r.not_before),
                        ms(r.queued_at),
                        r.finished_at.map(ms),
                        e.chain,
                        payload,
                        encode(&r)?
                    ],
                )?;
                tx.commit()?;
                Ok(Enqueued::Accepted)
            })();
            c.pragma_update(None, "synchronous", "NORMAL")?;
            result
        })
        .await
    }

    async fn add_nats_trigger(&self, trigger: &NatsTrigger) -> Result<(), StoreError> {
        let (id, function, created) = (trigger.id.to_string(), trigger.function.to_string(), ms(trigger.created_at));
        let (credentials, body) = (trigger.credentials.clone(), encode(trigger)?);
        self.with(move |c| {
            let added = c.execute(
                "INSERT OR IGNORE INTO nats_triggers (id, function, created_at, credentials, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, function, created, credentials, body],
            )?;
            if added == 0 { Err(StoreError::Conflict) } else { Ok(()) }
        })
        .await
    }

    async fn list_nats_triggers(&self) -> Result<Vec<NatsTrigger>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT credentials, body FROM nats_triggers ORDER BY created_at, id")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, String>(1)?)))?;
            rows.map(|r| {
                let (credentials, body) = r?;
                let mut trigger: NatsTrigger = decode(body)?;
                trigger.credentials = credentials;
                Ok(trigger)
            })
            .collect()
        })
        .await
    }

    async fn delete_nats_trigger(&self, id: TriggerId) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.with(move |c| Ok(c.execute("DELETE FROM nats_triggers WHERE id = ?1", [id])? > 0)).await
    }

    async fn delete_nats_triggers_of(&self, function: &FunctionName) -> Result<u64, StoreError> {
        let function = function.to_string();
        self.with(move |c| Ok(c.execute("DELETE FROM nats_triggers WHERE function = ?1", [function])? as u64)).await
    }
}
