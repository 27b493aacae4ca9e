//! How many bytes of output a function may log per minute, all its instances together: a
//! fixed window. The first line over the budget is replaced by a marker, later ones are
//! dropped and counted, and the first line of the next window brings a summary of what was
//! dropped. [`LogBudget::admit`] is pure: time is passed in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_types::FunctionName;

/// What happens to one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Keep,
    /// The first line over the budget: a marker in its place.
    Mark,
    Drop,
}

/// Output dropped in an earlier window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dropped {
    pub lines: u64,
    pub bytes: u64,
}

/// The decision on one line: a summary of an earlier window's losses to log first, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admit {
    pub dropped_before: Option<Dropped>,
    pub fate: Fate,
}

/// One function's budget.
#[derive(Debug)]
pub struct LogBudget {
    per_window: u64,
    window: Duration,
    began: Instant,
    used: u64,
    dropped: Dropped,
}

impl LogBudget {
    pub fn new(per_window: u64, window: Duration, now: Instant) -> Self {
        Self { per_window, window, began: now, used: 0, dropped: Dropped::default() }
    }

    /// Charges a line of `bytes` at `now`.
    pub fn admit(&mut self, bytes: u64, now: Instant) -> Admit {
        let mut dropped_before = None;
        if now.saturating_duration_since(self.began) >= self.window {
            self.began = now;
            self.used = 0;
            if self.dropped.lines > 0 {
                dropped_before = Some(std::mem::take(&mut self.dropped));
            }
        }
        if self.dropped.lines == 0 && self.used + bytes <= self.per_window {
            self.used += bytes;
            return Admit { dropped_before, fate: Fate::Keep };
        }
        self.dropped.lines += 1;
        self.dropped.bytes += bytes;
        let fate = if self.dropped.lines == 1 { Fate::Mark } else { Fate::Drop };
        Admit { dropped_before, fate }
    }

    /// Holds nothing worth keeping: its window is over and it dropped nothing.
    fn idle(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.began) >= self.window && self.dropped.lines == 0
    }
}

/// Every function's budget, shared by its instances (and kept across them, so a new instance
/// does not bring a fresh budget).
#[derive(Debug)]
pub struct LogBudgets {
    pub bytes_per_minute: u64,
    budgets: Mutex<HashMap<FunctionName, Arc<Mutex<LogBudget>>>>,
}

impl LogBudgets {
    pub fn new(bytes_per_minute: u64) -> Self {
        Self { bytes_per_minute, budgets: Mutex::default() }
    }

    /// `function`'s budget. Budgets no instance uses and that hold nothing (their window is
    /// over and they dropped nothing) are forgotten on the way.
    pub fn of(&self, function: &FunctionName) -> Arc<Mutex<LogBudget>> {
        let now = Instant::now();
        let mut budgets = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        budgets.retain(|name, b| {
            name == function || Arc::strong_count(b) > 1 || !b.lock().unwrap_or_else(|p| p.into_inner()).idle(now)
        });
        let minute = Duration::from_secs(60);
        budgets
            .entry(function.clone())
            .or_insert_with(|| Arc::new(Mutex::new(LogBudget::new(self.bytes_per_minute, minute, now))))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn over_budget_one_marker_then_drops_until_the_next_window() {
        let t0 = Instant::now();
        let mut b = LogBudget::new(100, MINUTE, t0);
        let keep = Admit { dropped_before: None, fate: Fate::Keep };
        assert_eq!(b.admit(60, t0), keep);
        assert_eq!(b.admit(40, t0 + Duration::from_secs(10)), keep, "exactly the budget");
        assert_eq!(b.admit(1, t0 + Duration::from_secs(20)).fate, Fate::Mark);
        assert_eq!(b.admit(0, t0 + Duration::from_secs(30)).fate, Fate::Drop, "no line slips in after the marker");
        assert_eq!(b.admit(9, t0 + Duration::from_secs(59)).fate, Fate::Drop);
        let next = b.admit(50, t0 + MINUTE);
        assert_eq!(next, Admit { dropped_before: Some(Dropped { lines: 3, bytes: 10 }), fate: Fate::Keep });
        assert_eq!(b.admit(50, t0 + MINUTE), keep, "the summary comes once");
        assert_eq!(b.admit(1, t0 + MINUTE).fate, Fate::Mark);
    }

    #[test]
    fn a_line_larger_than_the_budget_still_reports_the_last_window() {
        let t0 = Instant::now();
        let mut b = LogBudget::new(10, MINUTE, t0);
        assert_eq!(b.admit(11, t0).fate, Fate::Mark);
        let later = b.admit(11, t0 + 2 * MINUTE);
        assert_eq!(later, Admit { dropped_before: Some(Dropped { lines: 1, bytes: 11 }), fate: Fate::Mark });
    }

    #[test]
    fn instances_of_a_function_share_one_budget_which_outlives_them() {
        let budgets = LogBudgets::new(100);
        let (a, b): (FunctionName, FunctionName) = ("a".parse().unwrap(), "b".parse().unwrap());
        let first = budgets.of(&a);
        assert!(Arc::ptr_eq(&first, &budgets.of(&a)));
        assert!(!Arc::ptr_eq(&first, &budgets.of(&b)));
        let now = Instant::now();
        assert_eq!(first.lock().unwrap().admit(101, now).fate, Fate::Mark);
        drop(first);
        // Its instances are gone, but it is over budget: a new instance gets the same one.
        assert_eq!(budgets.of(&a).lock().unwrap().admit(1, now).fate, Fate::Drop);
    }
}
