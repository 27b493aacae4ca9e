//! How an event's record and a schedule's state change, written once for every backend: the
//! backends decide which rows a call touches (and hold the transaction); these say what
//! becomes of each.

use chrono::{DateTime, Utc};
use hearth_types::{EventRecord, EventStatus, ScheduleState};

use crate::{Enqueued, NewEvent, Settle};

/// The record a new event starts with: queued, deliverable at once, nothing tried.
pub(crate) fn accepted(e: &NewEvent) -> EventRecord {
    EventRecord {
        request_id: e.request_id.clone(),
        function: e.function.clone(),
        qualifier: e.qualifier.clone(),
        status: EventStatus::Queued,
        source: e.source,
        attempts: 0,
        function_errors: 0,
        redeliveries: 0,
        redrives: 0,
        enqueued_at: e.enqueued_at,
        queued_at: e.enqueued_at,
        not_before: e.enqueued_at,
        last_attempt_at: None,
        finished_at: None,
        executed_version: None,
        result: None,
        result_truncated: false,
        error: None,
        destination: None,
    }
}

/// Leased at `now`: one more attempt; a running event whose lease expired counts a
/// redelivery.
pub(crate) fn leased(r: &mut EventRecord, now: DateTime<Utc>) {
    if r.status == EventStatus::Running {
        r.redeliveries += 1;
    }
    r.status = EventStatus::Running;
    r.attempts += 1;
    r.last_attempt_at = Some(now);
}

/// An attempt ended at `at` with `outcome`.
pub(crate) fn settled(r: &mut EventRecord, outcome: Settle, at: DateTime<Utc>) {
    let (status, version, error) = match outcome {
        Settle::Succeeded { executed_version, result, result_truncated } => {
            r.result = Some(result);
            r.result_truncated = result_truncated;
            r.error = None;
            (EventStatus::Succeeded, Some(executed_version), None)
        }
        Settle::Retry { not_before, executed_version, error } => {
            r.not_before = not_before;
            (EventStatus::Queued, executed_version, Some(error))
        }
        Settle::DeadLetter { executed_version, error } => (EventStatus::DeadLettered, executed_version, Some(error)),
        Settle::Failed { executed_version, error } => (EventStatus::Failed, executed_version, Some(error)),
    };
    r.status = status;
    if status.is_final() {
        r.finished_at = Some(at);
    }
    if version.is_some() {
        r.executed_version = version;
    }
    if let Some(error) = error {
        r.function_errors += u32::from(error.function_error);
        r.error = Some(error);
    }
}

/// The record of an event delivered elsewhere: `attempts` attempts, `function_errors` of
/// them the function's before the last, the last ended at `at` with `outcome`.
pub(crate) fn finished(
    e: &NewEvent,
    attempts: u32,
    function_errors: u32,
    outcome: Settle,
    at: DateTime<Utc>,
) -> EventRecord {
    let mut r = accepted(e);
    r.status = EventStatus::Running;
    r.attempts = attempts;
    r.function_errors = function_errors;
    r.last_attempt_at = Some(at);
    settled(&mut r, outcome, at);
    r
}

/// Taken back from a stopped worker: deliverable again at `now`, counted as a redelivery.
pub(crate) fn released(r: &mut EventRecord, now: DateTime<Utc>) {
    r.status = EventStatus::Queued;
    r.not_before = now;
    r.redeliveries += 1;
}

/// Redriven from the dead-letter list at `now`: a fresh retry budget and age.
pub(crate) fn redriven(r: &mut EventRecord, now: DateTime<Utc>) {
    r.status = EventStatus::Queued;
    r.not_before = now;
    r.queued_at = now;
    r.function_errors = 0;
    r.redrives += 1;
    r.finished_at = None;
}

/// A schedule moved on to `next` at `at`, its occurrence `stored` (or none).
pub(crate) fn fired(s: &mut ScheduleState, stored: Option<Enqueued>, next: Option<DateTime<Utc>>, at: DateTime<Utc>) {
    match stored {
        Some(Enqueued::Accepted) => {
            s.fired += 1;
            s.last_fired_at = Some(at);
        }
        Some(Enqueued::QueueFull { .. }) => s.dropped += 1,
        Some(Enqueued::Duplicate) | None => {}
    }
    s.next_fire_at = next;
}
