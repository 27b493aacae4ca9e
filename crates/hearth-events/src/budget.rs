//! The concurrency budget of asynchronous work on this node, shared by the queue's
//! dispatcher and the NATS consumers: at most `max_in_flight` deliveries at once, all
//! functions together, and per function at most its share (half its capacity), so
//! synchronous callers always keep the other half.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use hearth_types::{FunctionConfig, FunctionName};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

pub(crate) struct Budget {
    node: Arc<Semaphore>,
    per_function: Mutex<HashMap<FunctionName, usize>>,
    /// Told whenever a slot is given back.
    released: Notify,
}

/// One delivery's place in the budget, given back when dropped.
pub(crate) struct Slot {
    budget: Arc<Budget>,
    function: FunctionName,
    _permit: OwnedSemaphorePermit,
}

impl Budget {
    pub fn new(max_in_flight: usize) -> Arc<Self> {
        Arc::new(Self {
            node: Arc::new(Semaphore::new(max_in_flight.max(1))),
            per_function: Mutex::new(HashMap::new()),
            released: Notify::new(),
        })
    }

    fn counts(&self) -> MutexGuard<'_, HashMap<FunctionName, usize>> {
        self.per_function.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Free places on the node.
    pub fn available(&self) -> usize {
        self.node.available_permits()
    }

    /// Deliveries running, all functions.
    pub fn running(&self) -> usize {
        self.counts().values().sum()
    }

    /// Deliveries of `function` running.
    pub fn running_of(&self, function: &FunctionName) -> usize {
        self.counts().get(function).copied().unwrap_or(0)
    }

    /// A place for one delivery of `function`, if the node and the function's share (`cap`)
    /// have one now.
    pub fn try_take(self: &Arc<Self>, function: &FunctionName, cap: usize) -> Option<Slot> {
        let mut counts = self.counts();
        let busy = counts.get(function).copied().unwrap_or(0);
        if busy >= cap {
            return None;
        }
        let permit = self.node.clone().try_acquire_owned().ok()?;
        *counts.entry(function.clone()).or_default() += 1;
        Some(Slot { budget: self.clone(), function: function.clone(), _permit: permit })
    }

    /// Waits for a place for one delivery of `function`.
    pub async fn take(self: &Arc<Self>, function: &FunctionName, cap: usize) -> Slot {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(slot) = self.try_take(function, cap) {
                return slot;
            }
            released.await;
        }
    }

    /// Waits until every slot is given back.
    pub async fn idle(&self) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.running() == 0 {
                return;
            }
            released.await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut counts = self.budget.counts();
            if let Some(n) = counts.get_mut(&self.function) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&self.function);
                }
            }
        }
        self.budget.released.notify_waiters();
    }
}

/// Deliveries of one function's events at once: half its capacity, at least one.
pub(crate) fn share(config: &FunctionConfig) -> usize {
    let capacity = u64::from(config.max_instances) * u64::from(config.concurrency);
    usize::try_from(capacity.div_ceil(2)).unwrap_or(usize::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_are_bounded_per_node_and_function_and_given_back() {
        let budget = Budget::new(3);
        let (a, b): (FunctionName, FunctionName) = ("a".parse().unwrap(), "b".parse().unwrap());
        let a1 = budget.try_take(&a, 2).unwrap();
        let a2 = budget.try_take(&a, 2).unwrap();
        assert!(budget.try_take(&a, 2).is_none(), "a's share is 2");
        let b1 = budget.try_take(&b, 5).unwrap();
        assert!(budget.try_take(&b, 5).is_none(), "the node has 3");
        assert_eq!((budget.running(), budget.running_of(&a), budget.available()), (3, 2, 0));
        let waiter = tokio::spawn({
            let budget = budget.clone();
            let a = a.clone();
            async move { budget.take(&a, 2).await }
        });
        drop(b1);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "a is still at its share when b gives its place back");
        drop(a1);
        let slot = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
        assert_eq!((slot.function.as_str(), budget.running_of(&a), budget.running()), ("a", 2, 2));
        drop(slot);
        drop(a2);
    }

    #[test]
    fn the_share_is_half_the_capacity_at_least_one() {
        let spec = hearth_types::FunctionSpec {
            runtime: "python3".into(),
            handler: Some("main.handler".into()),
            ..Default::default()
        };
        let mut c = spec.validate().unwrap();
        (c.max_instances, c.concurrency) = (5, 1);
        assert_eq!(share(&c), 3);
        (c.max_instances, c.concurrency) = (0, 1);
        assert_eq!(share(&c), 1);
    }
}
