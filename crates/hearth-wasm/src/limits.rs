//! What one loaded program may use: linear memory and tables counted against the
//! function's memory size, shared by every run of the program at once (as an instance's
//! slots share its cgroup), and released when a run ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes counted per table element (a function reference is a pointer and a type index).
const TABLE_ELEMENT_BYTES: usize = 16;

/// The memory a loaded program's runs share: the function's `memory_mb`.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    pub fn new(memory_mb: u32) -> Arc<Self> {
        Arc::new(Self { limit: memory_mb as usize * 1024 * 1024, used: AtomicUsize::new(0) })
    }

    /// Bytes of linear memory and tables the program's runs hold now.
    pub fn used_bytes(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn limit_mb(&self) -> usize {
        self.limit / (1024 * 1024)
    }

    /// Takes `bytes` if they fit.
    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// One run's share of a [`MemoryBudget`], given back when the run's store is dropped.
pub(crate) struct Limiter {
    budget: Arc<MemoryBudget>,
    held: usize,
    /// A growth was refused: the run failed for want of memory.
    pub(crate) exceeded: bool,
}

impl Limiter {
    pub(crate) fn new(budget: Arc<MemoryBudget>) -> Self {
        Self { budget, held: 0, exceeded: false }
    }

    fn grow(&mut self, bytes: usize, what: &str) -> wasmtime::Result<bool> {
        if self.budget.take(bytes) {
            self.held += bytes;
            return Ok(true);
        }
        self.exceeded = true;
        wasmtime::bail!(
            "growing its {what} by {bytes} bytes would take the function past its memory size of {} MB",
            self.budget.limit_mb()
        )
    }
}

/// Instances, memories and tables one run may create (a component holds several core
/// instances; a run never needs more than these).
pub(crate) const MAX_INSTANCES_PER_RUN: usize = 32;
pub(crate) const MAX_MEMORIES_PER_RUN: usize = 4;
pub(crate) const MAX_TABLES_PER_RUN: usize = 32;

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Past its own declared maximum a growth fails as wasm says (-1), uncharged.
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        self.grow(desired.saturating_sub(current), "linear memory")
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        self.grow(desired.saturating_sub(current).saturating_mul(TABLE_ELEMENT_BYTES), "table")
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES_PER_RUN
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES_PER_RUN
    }

    fn tables(&self) -> usize {
        MAX_TABLES_PER_RUN
    }
}

impl Drop for Limiter {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn runs_share_the_budget_and_give_it_back() {
        let budget = MemoryBudget::new(1);
        let mut a = Limiter::new(budget.clone());
        let mut b = Limiter::new(budget.clone());
        assert!(a.memory_growing(0, 600 * 1024, None).unwrap());
        assert!(b.memory_growing(0, 600 * 1024, None).is_err(), "two runs together are over 1 MB");
        assert!(b.exceeded && !a.exceeded);
        assert_eq!(budget.used_bytes(), 600 * 1024);
        drop(a);
        assert_eq!(budget.used_bytes(), 0);
        assert!(b.memory_growing(0, 1024 * 1024, None).unwrap());
    }

    #[test]
    fn a_growth_past_its_own_maximum_fails_uncharged() {
        let budget = MemoryBudget::new(1);
        let mut a = Limiter::new(budget.clone());
        assert!(!a.memory_growing(0, 512 * 1024, Some(65536)).unwrap());
        assert!(!a.exceeded);
        assert_eq!(budget.used_bytes(), 0);
    }

    #[test]
    fn tables_count_against_memory() {
        let budget = MemoryBudget::new(1);
        let mut a = Limiter::new(budget.clone());
        assert!(a.table_growing(0, 1000, None).unwrap());
        assert_eq!(budget.used_bytes(), 1000 * TABLE_ELEMENT_BYTES);
        assert!(a.table_growing(1000, 1_000_000, None).is_err());
    }
}
