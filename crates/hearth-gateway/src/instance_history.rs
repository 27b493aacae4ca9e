//! How many live instances each function had over the last day, for the console's charts:
//! the reaper samples every function's live instances every [`SAMPLE_EVERY`] and keeps only
//! the changes, for [`KEEP`] (so at most one point a sample per function), and
//! [`Gateway::max_instances`] answers the most seen in each span asked about, the current
//! moment included. Nothing is known of the time before the server started.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};
use hearth_types::FunctionId;

use crate::Gateway;

/// How often the live instances are counted.
pub const SAMPLE_EVERY: TimeDelta = TimeDelta::seconds(10);
/// How long the counts are kept.
pub const KEEP: TimeDelta = TimeDelta::hours(24);
/// The most points one function keeps: one a sample for [`KEEP`] (the time bound comes first).
const MAX_POINTS: usize = (KEEP.num_seconds() / SAMPLE_EVERY.num_seconds()) as usize + 1;

pub(crate) struct InstanceHistory {
    started: DateTime<Utc>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last_sample: Option<DateTime<Utc>>,
    /// Per function, when its count changed and to what, oldest first. A function without
    /// points had none since the server started.
    points: HashMap<FunctionId, VecDeque<(DateTime<Utc>, u32)>>,
}

impl InstanceHistory {
    pub(crate) fn new(started: DateTime<Utc>) -> Self {
        Self { started, state: Mutex::default() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `count()` (live instances per function; a function not in it has none) at
    /// `now`, unless the last sample is more recent than [`SAMPLE_EVERY`]; drops what is
    /// older than [`KEEP`].
    pub(crate) fn sample(&self, now: DateTime<Utc>, count: impl FnOnce() -> HashMap<FunctionId, u32>) {
        let mut st = self.state();
        if st.last_sample.is_some_and(|t| now - t < SAMPLE_EVERY) {
            return;
        }
        st.last_sample = Some(now);
        let counts = count();
        for function in counts.keys() {
            st.points.entry(*function).or_default();
        }
        let horizon = now - KEEP;
        st.points.retain(|function, points| {
            let n = counts.get(function).copied().unwrap_or(0);
            // No point is 0: a count is kept when it differs from the last one.
            if points.back().map_or(0, |&(_, last)| last) != n {
                points.push_back((now, n));
            }
            // The last point before the horizon stays: it is the count in effect there.
            while points.len() > MAX_POINTS || points.get(1).is_some_and(|&(t, _)| t <= horizon) {
                points.pop_front();
            }
            // A function at zero since before the horizon needs no point.
            let forgotten = points.len() == 1 && points[0].1 == 0 && points[0].0 <= horizon;
            !points.is_empty() && !forgotten
        });
    }

    /// For each span `[from, to)`, the most live instances of `function` seen in it: the
    /// count in effect at its start, every change within it, and `live_now` when it holds
    /// `now`. `None` for a span that ends before the server started or [`KEEP`] ago, or
    /// starts after `now`.
    pub(crate) fn max_in(
        &self,
        function: FunctionId,
        spans: &[(DateTime<Utc>, DateTime<Utc>)],
        now: DateTime<Utc>,
        live_now: u32,
    ) -> Vec<Option<u32>> {
        let known = self.started.max(now - KEEP);
        let st = self.state();
        let points = st.points.get(&function);
        let empty = VecDeque::new();
        let points = points.unwrap_or(&empty);
        spans
            .iter()
            .map(|&(from, to)| {
                if to <= known || from > now {
                    return None;
                }
                let start = from.max(known);
                // The count in effect at `start`: the last change at or before it.
                let first_after = points.partition_point(|&(t, _)| t <= start);
                let mut most = first_after.checked_sub(1).map_or(0, |i| points[i].1);
                most = points.range(first_after..).take_while(|&&(t, _)| t < to).fold(most, |m, &(_, n)| m.max(n));
                if from <= now && now < to {
                    most = most.max(live_now);
                }
                Some(most)
            })
            .collect()
    }
}

impl Gateway {
    /// Live instances per function now (all versions).
    pub(crate) fn live_counts(&self) -> HashMap<FunctionId, u32> {
        let mut counts: HashMap<FunctionId, u32> = HashMap::new();
        for p in self.inner.routes.all() {
            let n = p.instances().len() as u32;
            if n > 0 {
                *counts.entry(p.key.0).or_default() += n;
            }
        }
        counts
    }

    /// Live instances of each function now, by name (all versions).
    pub fn live_instances(&self) -> HashMap<hearth_types::FunctionName, u32> {
        let mut counts = HashMap::new();
        for p in self.inner.routes.all() {
            let n = p.instances().len() as u32;
            if n > 0 {
                *counts.entry(p.template.function.clone()).or_default() += n;
            }
        }
        counts
    }

    /// For each span, the most live instances of `function` this server saw in it (see
    /// [`SAMPLE_EVERY`]; now included), or `None` when it does not know.
    pub fn max_instances(&self, function: FunctionId, spans: &[(DateTime<Utc>, DateTime<Utc>)]) -> Vec<Option<u32>> {
        let live_now = self.live_counts().get(&function).copied().unwrap_or(0);
        // A window that ends "now" ended a moment before this call: its last span still
        // holds the current count.
        let mut now = Utc::now();
        if let Some(&(_, end)) = spans.last()
            && end <= now
            && now - end < SAMPLE_EVERY
        {
            now = end - TimeDelta::microseconds(1);
        }
        self.inner.history.max_in(function, spans, now, live_now)
    }

    /// Samples the live instances if it is time (the reaper calls it every tick).
    pub(crate) fn sample_instances(&self) {
        self.inner.history.sample(Utc::now(), || self.live_counts());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000 + s, 0).unwrap()
    }

    #[test]
    fn the_most_seen_in_each_span() {
        let h = InstanceHistory::new(t(0));
        let f = FunctionId::new();
        let g = FunctionId::new();
        h.sample(t(0), || HashMap::from([(f, 1)]));
        h.sample(t(5), || HashMap::from([(f, 9)])); // too soon after the last: ignored
        h.sample(t(10), || HashMap::from([(f, 3), (g, 2)]));
        h.sample(t(20), || HashMap::from([(f, 3)]));
        h.sample(t(30), HashMap::new);
        let spans = [(t(-20), t(-10)), (t(-5), t(5)), (t(12), t(25)), (t(25), t(35)), (t(35), t(45)), (t(50), t(60))];
        assert_eq!(
            h.max_in(f, &spans, t(40), 4),
            [None, Some(1), Some(3), Some(3), Some(4), None],
            "before the start; the start; in effect from before; a drop to 0 within; now; the future"
        );
        assert_eq!(h.max_in(g, &spans, t(40), 0), [None, Some(0), Some(2), Some(0), Some(0), None]);
        assert_eq!(h.max_in(FunctionId::new(), &spans[1..2], t(40), 0), [Some(0)], "never seen: none live");
    }

    #[test]
    fn only_changes_are_kept_and_only_for_a_day() {
        let h = InstanceHistory::new(t(0));
        let f = FunctionId::new();
        for i in 0..100 {
            h.sample(t(i * 10), || HashMap::from([(f, 2)]));
        }
        assert_eq!(h.state().points[&f].len(), 1, "an unchanged count is one point");
        let day = KEEP.num_seconds();
        h.sample(t(day + 1_000), HashMap::new);
        h.sample(t(2 * day + 2_000), HashMap::new);
        assert!(h.state().points.is_empty(), "a function at zero for a day is forgotten");
        assert_eq!(h.max_in(f, &[(t(0), t(10))], t(2 * day + 2_000), 0), [None], "more than a day ago");
    }
}
