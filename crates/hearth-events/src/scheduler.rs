//! Cron triggers: each instant of a schedule becomes one asynchronous invocation, queued in
//! the same transaction that moves the schedule on (`EventQueue::fire_schedule`), so an
//! instant fires at most once across restarts and racing schedulers; its event's request id
//! is derived from the trigger and the instant, so even a replay could not queue it twice.
//!
//! Instants older than `schedule_grace` when the scheduler sees them were missed (no server
//! ran): the trigger's `missed_runs` policy fires none of them (`skip`) or one, for the
//! latest (`once`). The plan is pure (`plan`), time passed in.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use hearth_gateway::Gateway;
use hearth_store::{EventQueue, Fired, NewEvent};
use hearth_types::{CronSchedule, EventSource, MissedRuns, ScheduleState};
use tokio::sync::Notify;

use crate::EventSettings;

/// Instants walked through at most when a schedule catches up after downtime (a day of an
/// every-second schedule); past it, the latest seen counts as the latest missed.
const WALK_LIMIT: usize = 100_000;

/// One move of a stored schedule: the instant it fires (none for a skipped stretch) and the
/// next instant stored after it.
type Step = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// What to do with a schedule now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Instants to fire, oldest first.
    pub fire: Vec<DateTime<Utc>>,
    /// The instant after them (the first after `now`); `None` when the schedule has none.
    pub next: Option<DateTime<Utc>>,
}

/// The instants from `stored_next` up to `now`: those within `grace` of `now` fire, older
/// ones were missed and fire by `missed`.
pub fn plan(
    schedule: &CronSchedule,
    stored_next: DateTime<Utc>,
    now: DateTime<Utc>,
    grace: Duration,
    missed: MissedRuns,
) -> Plan {
    let cutoff = now - chrono::Duration::from_std(grace).unwrap_or_default();
    let mut fire = Vec::new();
    let mut last_missed = None;
    let mut at = Some(stored_next);
    let mut walked = 0;
    while let Some(t) = at.filter(|t| *t <= now) {
        if t < cutoff {
            last_missed = Some(t);
            walked += 1;
            at = if walked < WALK_LIMIT { schedule.next_after(t) } else { schedule.next_after(cutoff) };
        } else {
            fire.push(t);
            at = schedule.next_after(t);
        }
    }
    if let (MissedRuns::Once, Some(t)) = (missed, last_missed) {
        fire.insert(0, t);
    }
    Plan { fire, next: at }
}

/// The request id of an instant's event: the same for the same trigger and instant.
pub fn occurrence_id(trigger: &str, instant: DateTime<Utc>) -> String {
    let name = format!("hearth-cron/{trigger}/{}", instant.timestamp_millis());
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
}

/// An EventBridge scheduled event, as Lambda functions on a schedule receive it.
pub fn scheduled_event(region: &str, trigger: &str, request_id: &str, instant: DateTime<Utc>) -> Bytes {
    let doc = serde_json::json!({
        "version": "0",
        "id": request_id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": instant.to_rfc3339_opts(SecondsFormat::Secs, true),
        "region": region,
        "resources": [format!("arn:aws:events:{region}:000000000000:rule/hearth-{trigger}")],
        "detail": {},
    });
    Bytes::from(serde_json::to_vec(&doc).expect("a JSON value serialises"))
}

pub(crate) struct Scheduler {
    pub queue: Arc<dyn EventQueue>,
    pub gateway: Gateway,
    pub settings: EventSettings,
    /// Told when an occurrence was queued (the dispatcher's wake).
    pub queued: Arc<Notify>,
    /// Told when schedules were added or removed.
    pub changed: Arc<Notify>,
}

impl Scheduler {
    pub async fn run(self: Arc<Self>) {
        loop {
            let now = Utc::now();
            let earliest = match self.queue.list_schedules().await {
                Ok(schedules) => {
                    let mut earliest: Option<DateTime<Utc>> = None;
                    for s in schedules {
                        let next = match s.next_fire_at {
                            Some(at) if at <= now => self.fire(&s, at, now).await,
                            other => other,
                        };
                        earliest = match (earliest, next) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                    }
                    earliest
                }
                Err(e) => {
                    tracing::warn!(%e, "cannot read the cron triggers; trying again");
                    None
                }
            };
            let poll = self.settings.poll_interval;
            let wait = earliest.map_or(poll, |at| (at - Utc::now()).to_std().unwrap_or_default().min(poll));
            tokio::select! {
                () = self.changed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Fires what is due of `s` (stored at `stored_next`); returns its next instant.
    async fn fire(&self, s: &ScheduleState, stored_next: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let t = &s.trigger;
        let schedule = match t.cron() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(%e, trigger = %t.id, "a stored cron trigger no longer parses; it stays stopped");
                return None;
            }
        };
        let plan = plan(&schedule, stored_next, now, self.settings.schedule_grace, t.missed_runs);
        let function = self.gateway.function(&t.function).await.ok().flatten();
        let trigger = t.id.to_string();
        let mut expected = stored_next;
        // (instant to fire, if any; the next instant to store after it).
        let mut steps: Vec<Step> = plan
            .fire
            .iter()
            .enumerate()
            .map(|(i, at)| (Some(*at), plan.fire.get(i + 1).copied().or(plan.next)))
            .collect();
        if steps.is_empty() {
            steps.push((None, plan.next));
        }
        for (instant, next) in steps {
            let event = match (instant, &function) {
                (Some(at), Some(f)) => {
                    let request_id = occurrence_id(&trigger, at);
                    Some(NewEvent {
                        payload: scheduled_event(&self.settings.region, &trigger, &request_id, at),
                        request_id,
                        function: t.function.clone(),
                        qualifier: t.qualifier.clone(),
                        source: EventSource::Schedule,
                        enqueued_at: Utc::now(),
                        max_queued: f.config.events.max_queued_events,
                        chain: 0,
                    })
                }
                (Some(_), None) => {
                    tracing::warn!(trigger = %t.id, function = %t.function, "a cron trigger's function does not exist; skipped");
                    None
                }
                (None, _) => None,
            };
            match self.queue.fire_schedule(t.id, expected, next, Utc::now(), event).await {
                Ok(Fired::Advanced(stored)) => {
                    if stored == Some(hearth_store::Enqueued::Accepted) {
                        self.queued.notify_one();
                    } else if let Some(refused) = stored {
                        tracing::warn!(trigger = %t.id, ?refused, "a cron trigger's occurrence was not queued");
                    }
                }
                Ok(Fired::Stale) => return None,
                Err(e) => {
                    tracing::warn!(%e, trigger = %t.id, "cannot fire a cron trigger; trying again");
                    // Looked at again after a poll interval, not at once (no busy loop).
                    return Some(
                        Utc::now() + chrono::Duration::from_std(self.settings.poll_interval).unwrap_or_default(),
                    );
                }
            }
            match next {
                Some(n) => expected = n,
                None => return None,
            }
        }
        plan.next
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_900_000_000 + s, 0).unwrap()
    }

    #[test]
    fn due_instants_fire_and_missed_ones_follow_the_policy() {
        let every_second = CronSchedule::new("* * * * * *", "UTC").unwrap();
        let grace = Duration::from_secs(5);
        // On time: the instant at `now` fires, the next is a second later.
        assert_eq!(
            plan(&every_second, t(10), t(10), grace, MissedRuns::Skip),
            Plan { fire: vec![t(10)], next: Some(t(11)) }
        );
        // A little late: every instant within the grace fires, oldest first.
        let late = plan(&every_second, t(10), t(12), grace, MissedRuns::Skip);
        assert_eq!(late, Plan { fire: vec![t(10), t(11), t(12)], next: Some(t(13)) });
        // After an hour down: skip fires only the instants within the grace...
        let skip = plan(&every_second, t(0), t(3600), grace, MissedRuns::Skip);
        assert_eq!((skip.fire.first(), skip.fire.len(), skip.next), (Some(&t(3595)), 6, Some(t(3601))));
        // ... once adds one occurrence for the latest missed instant.
        let once = plan(&every_second, t(0), t(3600), grace, MissedRuns::Once);
        assert_eq!((once.fire[0], once.fire.len()), (t(3594), 7));
        // A schedule whose missed instants are all older than the grace fires nothing (skip)
        // or one (once), and moves past now.
        let hourly = CronSchedule::new("0 0 * * * *", "UTC").unwrap();
        let base = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let now = base + chrono::Duration::minutes(150);
        assert!(plan(&hourly, base, now, grace, MissedRuns::Skip).fire.is_empty());
        assert_eq!(
            plan(&hourly, base, now, grace, MissedRuns::Once),
            Plan { fire: vec![base + chrono::Duration::hours(2)], next: Some(base + chrono::Duration::hours(3)) }
        );
    }

    #[test]
    fn an_instant_has_one_request_id_and_an_eventbridge_event() {
        let a = occurrence_id("trig", t(5));
        assert_eq!(a, occurrence_id("trig", t(5)));
        assert_ne!(a, occurrence_id("trig", t(6)));
        assert_ne!(a, occurrence_id("other", t(5)));
        let doc: serde_json::Value = serde_json::from_slice(&scheduled_event("eu-west-1", "trig", &a, t(5))).unwrap();
        assert_eq!(doc["detail-type"], "Scheduled Event");
        assert_eq!(doc["source"], "aws.events");
        assert_eq!(doc["id"], a.as_str());
        assert_eq!(doc["time"], "2030-03-17T17:46:45Z");
        assert_eq!(doc["resources"][0], "arn:aws:events:eu-west-1:000000000000:rule/hearth-trig");
    }
}
