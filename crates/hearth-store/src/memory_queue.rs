//! In-memory [`EventQueue`] for [`MemoryStore`]: events by request id in the store's state,
//! delivered in order of acceptance (an arrival number kept with each).

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hearth_types::{CronTrigger, EventRecord, EventStatus, FunctionName, NatsTrigger, ScheduleState, TriggerId};

use crate::event_transitions as transitions;
use crate::memory::State;
use crate::{Enqueued, EventQueue, Fired, Lease, MemoryStore, NewEvent, QueueDepth, QueuedEvent, Settle, StoreError};

/// One stored event: its record, what is delivered, and what the record does not show.
#[derive(Debug, Clone)]
pub(crate) struct StoredEvent {
    record: EventRecord,
    payload: Bytes,
    chain: u32,
    /// Arrival number: the order of delivery and of the dead-letter list.
    seq: u64,
    /// The worker holding a running event, and until when.
    lease: Option<(String, DateTime<Utc>)>,
}

impl StoredEvent {
    fn queued(&self) -> QueuedEvent {
        QueuedEvent { record: self.record.clone(), payload: self.payload.clone(), chain: self.chain }
    }

    /// Queued or running: counted against the function's bound.
    fn pending(&self) -> bool {
        matches!(self.record.status, EventStatus::Queued | EventStatus::Running)
    }

    /// When it may be delivered next (`None` once it is final).
    fn due_at(&self) -> Option<DateTime<Utc>> {
        match self.record.status {
            EventStatus::Queued => Some(self.record.not_before),
            EventStatus::Running => self.lease.as_ref().map(|(_, until)| *until),
            _ => None,
        }
    }

    fn deliverable(&self, now: DateTime<Utc>) -> bool {
        self.due_at().is_some_and(|at| at <= now)
    }
}

impl State {
    /// Stores `event` unless its request id is taken, and (with a bound) unless its function
    /// already has `max_queued` events queued or running.
    fn insert_event(&mut self, event: &NewEvent, bounded: bool) -> Enqueued {
        if self.events.contains_key(&event.request_id) {
            return Enqueued::Duplicate;
        }
        if bounded {
            let queued =
                self.events.values().filter(|e| e.record.function == event.function && e.pending()).count() as u64;
            if queued >= u64::from(event.max_queued) {
                return Enqueued::QueueFull { queued };
            }
        }
        self.next_event_seq += 1;
        let record = transitions::accepted(event);
        let stored = StoredEvent {
            record,
            payload: event.payload.clone(),
            chain: event.chain,
            seq: self.next_event_seq,
            lease: None,
        };
        self.events.insert(event.request_id.clone(), stored);
        Enqueued::Accepted
    }

    /// A function's events that `keep` selects, in order of acceptance.
    fn events_of(&mut self, function: &FunctionName, keep: impl Fn(&StoredEvent) -> bool) -> Vec<&mut StoredEvent> {
        let mut out: Vec<_> = self.events.values_mut().filter(|e| &e.record.function == function && keep(e)).collect();
        out.sort_by_key(|e| e.seq);
        out
    }
}

#[async_trait]
impl EventQueue for MemoryStore {
    async fn enqueue(&self, events: &[NewEvent]) -> Result<Vec<Enqueued>, StoreError> {
        let mut st = self.state();
        Ok(events.iter().map(|e| st.insert_event(e, true)).collect())
    }

    async fn due_functions(&self, now: DateTime<Utc>) -> Result<Vec<FunctionName>, StoreError> {
        let st = self.state();
        let mut out: Vec<_> =
            st.events.values().filter(|e| e.deliverable(now)).map(|e| e.record.function.clone()).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.state().events.values().filter_map(StoredEvent::due_at).min())
    }

    async fn lease(&self, function: &FunctionName, lease: &Lease) -> Result<Vec<QueuedEvent>, StoreError> {
        let mut st = self.state();
        let mut due = st.events_of(function, |e| e.deliverable(lease.now));
        due.truncate(lease.limit);
        Ok(due
            .into_iter()
            .map(|e| {
                transitions::leased(&mut e.record, lease.now);
                e.lease = Some((lease.owner.clone(), lease.until));
                e.queued()
            })
            .collect())
    }

    async fn settle(
        &self,
        request_id: &str,
        attempt: u32,
        at: DateTime<Utc>,
        outcome: Settle,
        forward: Option<NewEvent>,
    ) -> Result<bool, StoreError> {
        let mut st = self.state();
        let Some(event) = st.events.get_mut(request_id) else { return Ok(false) };
        if event.record.status != EventStatus::Running || event.record.attempts != attempt {
            return Ok(false);
        }
        event.lease = None;
        transitions::settled(&mut event.record, outcome, at);
        if matches!(event.record.status, EventStatus::Succeeded | EventStatus::Failed) {
            event.payload = Bytes::new();
        }
        let r = &mut event.record;
        if let Some(forward) = forward {
            r.destination = Some(forward.function.clone());
            // A forward already stored (a settle repeated under the same id) stays as it is.
            st.insert_event(&forward, false);
        }
        Ok(true)
    }

    async fn release_leases(&self, owner: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut st = self.state();
        let mut released = 0;
        for e in st.events.values_mut() {
            let held = e.lease.as_ref().is_some_and(|(o, _)| o == owner);
            if e.record.status == EventStatus::Running && held {
                e.lease = None;
                transitions::released(&mut e.record, now);
                released += 1;
            }
        }
        Ok(released)
    }

    async fn get_event(&self, request_id: &str) -> Result<Option<EventRecord>, StoreError> {
        Ok(self.state().events.get(request_id).map(|e| e.record.clone()))
    }

    async fn list_dead_letters(
        &self,
        function: &FunctionName,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<QueuedEvent>, StoreError> {
        let mut st = self.state();
        // The page starts after the named event's place in arrival order, whatever became of
        // it since; a request id never stored (or pruned) has no place: an empty page.
        let after = match after {
            None => 0,
            Some(id) => match st.events.get(id) {
                Some(e) => e.seq,
                None => return Ok(vec![]),
            },
        };
        let letters = st.events_of(function, |e| e.record.status == EventStatus::DeadLettered && e.seq > after);
        Ok(letters.into_iter().take(limit).map(|e| e.queued()).collect())
    }

    async fn redrive(
        &self,
        function: &FunctionName,
        ids: Option<&[String]>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut st = self.state();
        let letters = st.events_of(function, |e| {
            e.record.status == EventStatus::DeadLettered && ids.is_none_or(|ids| ids.contains(&e.record.request_id))
        });
        let mut redriven = 0;
        for e in letters {
            transitions::redriven(&mut e.record, now);
            redriven += 1;
        }
        Ok(redriven)
    }

    async fn prune_events(
        &self,
        finished_before: DateTime<Utc>,
        dead_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut st = self.state();
        let before = st.events.len();
        st.events.retain(|_, e| {
            let cutoff = match e.record.status {
                EventStatus::Succeeded | EventStatus::Failed => finished_before,
                EventStatus::DeadLettered => dead_before,
                EventStatus::Queued | EventStatus::Running => return true,
            };
            e.record.finished_at.is_none_or(|at| at >= cutoff)
        });
        Ok((before - st.events.len()) as u64)
    }

    async fn delete_events_of(&self, function: &FunctionName) -> Result<u64, StoreError> {
        let mut st = self.state();
        let before = st.events.len();
        st.events.retain(|_, e| &e.record.function != function);
        Ok((before - st.events.len()) as u64)
    }

    async fn queue_depths(&self) -> Result<Vec<QueueDepth>, StoreError> {
        let st = self.state();
        let mut depths: BTreeMap<&FunctionName, QueueDepth> = BTreeMap::new();
        for e in st.events.values() {
            let r = &e.record;
            if !matches!(r.status, EventStatus::Queued | EventStatus::Running | EventStatus::DeadLettered) {
                continue;
            }
            let d = depths.entry(&r.function).or_insert_with(|| QueueDepth {
                function: r.function.clone(),
                queued: 0,
                running: 0,
                dead_lettered: 0,
                oldest_queued_at: None,
            });
            match r.status {
                EventStatus::Queued => d.queued += 1,
                EventStatus::Running => d.running += 1,
                _ => d.dead_lettered += 1,
            }
            if e.pending() {
                d.oldest_queued_at = Some(d.oldest_queued_at.map_or(r.queued_at, |t| t.min(r.queued_at)));
            }
        }
        Ok(depths.into_values().collect())
    }

    async fn add_schedule(&self, trigger: &CronTrigger, next_fire_at: Option<DateTime<Utc>>) -> Result<(), StoreError> {
        let mut st = self.state();
        if st.schedules.iter().any(|s| s.trigger.id == trigger.id) {
            return Err(StoreError::Conflict);
        }
        let state = ScheduleState { trigger: trigger.clone(), next_fire_at, fired: 0, dropped: 0, last_fired_at: None };
        st.schedules.push(state);
        // As SQLite orders them: by creation time to the millisecond, then id.
        let key = |s: &ScheduleState| (s.trigger.created_at.timestamp_millis(), s.trigger.id.to_string());
        st.schedules.sort_by_key(key);
        Ok(())
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleState>, StoreError> {
        Ok(self.state().schedules.clone())
    }

    async fn delete_schedule(&self, id: TriggerId) -> Result<bool, StoreError> {
        let mut st = self.state();
        let before = st.schedules.len();
        st.schedules.retain(|s| s.trigger.id != id);
        Ok(st.schedules.len() < before)
    }

    async fn delete_schedules_of(&self, function: &FunctionName) -> Result<u64, StoreError> {
        let mut st = self.state();
        let before = st.schedules.len();
        st.schedules.retain(|s| &s.trigger.function != function);
        Ok((before - st.schedules.len()) as u64)
    }

    async fn fire_schedule(
        &self,
        id: TriggerId,
        expected: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
        event: Option<NewEvent>,
    ) -> Result<Fired, StoreError> {
        let mut st = self.state();
        let Some(i) = st.schedules.iter().position(|s| s.trigger.id == id) else { return Ok(Fired::Stale) };
        if st.schedules[i].next_fire_at != Some(expected) {
            return Ok(Fired::Stale);
        }
        let stored = event.as_ref().map(|e| st.insert_event(e, true));
        transitions::fired(&mut st.schedules[i], stored, next, at);
        Ok(Fired::Advanced(stored))
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
        let mut st = self.state();
        if st.events.contains_key(&event.request_id) {
            return Ok(Enqueued::Duplicate);
        }
        let mut record = transitions::finished(event, attempts, function_errors, outcome, at);
        if let Some(forward) = forward {
            record.destination = Some(forward.function.clone());
            st.insert_event(&forward, false);
        }
        let payload = if record.status == EventStatus::DeadLettered { event.payload.clone() } else { Bytes::new() };
        st.next_event_seq += 1;
        let stored = StoredEvent { record, payload, chain: event.chain, seq: st.next_event_seq, lease: None };
        st.events.insert(event.request_id.clone(), stored);
        Ok(Enqueued::Accepted)
    }

    async fn add_nats_trigger(&self, trigger: &NatsTrigger) -> Result<(), StoreError> {
        let mut st = self.state();
        if st.nats_triggers.iter().any(|t| t.id == trigger.id) {
            return Err(StoreError::Conflict);
        }
        st.nats_triggers.push(trigger.clone());
        // As SQLite orders them: by creation time to the millisecond, then id.
        st.nats_triggers.sort_by_key(|t| (t.created_at.timestamp_millis(), t.id.to_string()));
        Ok(())
    }

    async fn list_nats_triggers(&self) -> Result<Vec<NatsTrigger>, StoreError> {
        Ok(self.state().nats_triggers.clone())
    }

    async fn delete_nats_trigger(&self, id: TriggerId) -> Result<bool, StoreError> {
        let mut st = self.state();
        let before = st.nats_triggers.len();
        st.nats_triggers.retain(|t| t.id != id);
        Ok(st.nats_triggers.len() < before)
    }

    async fn delete_nats_triggers_of(&self, function: &FunctionName) -> Result<u64, StoreError> {
        let mut st = self.state();
        let before = st.nats_triggers.len();
        st.nats_triggers.retain(|t| &t.function != function);
        Ok((before - st.nats_triggers.len()) as u64)
    }
}
