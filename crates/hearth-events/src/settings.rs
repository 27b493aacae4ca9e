use std::time::Duration;

/// How asynchronous invocations are delivered. Defaults here; the CLI's config module may
/// override them.
#[derive(Debug, Clone)]
pub struct EventSettings {
    /// The wait before the n-th retry after a function error is n times this (1 minute, then
    /// 2, as on Lambda; shorter only to test it).
    pub retry_delay: Duration,
    /// First wait after the platform could not run an event (throttled, no memory, no
    /// instance in time); doubled per attempt, with jitter, up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Deliveries in flight on this node at once, all functions together: asynchronous work
    /// has a budget of its own, so it cannot take every instance from synchronous callers.
    pub max_in_flight: usize,
    /// A lease lasts the function's timeout twice (a wait for an instance, then the run) plus
    /// this; a delivery still running then may be made again.
    pub lease_margin: Duration,
    /// How often the store is asked for due events when nothing wakes the dispatcher (events
    /// queued by another node, leases that expired).
    pub poll_interval: Duration,
    /// Events accepted together share one synced commit, at most this many.
    pub accept_batch: usize,
    /// Finished events are kept this long (then `GET /v1/invocations/{id}` forgets them).
    pub retention: Duration,
    /// Dead letters are kept this long unless redriven.
    pub dead_letter_retention: Duration,
    /// How often old events are pruned.
    pub prune_interval: Duration,
    /// A cron instant older than this when the scheduler sees it was missed (no server ran):
    /// it fires by its trigger's missed-runs policy instead of on its own.
    pub schedule_grace: Duration,
    /// This node's name in leases: on start it takes back the leases its previous run held.
    pub owner: String,
    /// Value of the region in destination records' ARNs.
    pub region: String,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            retry_delay: Duration::from_secs(60),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            max_in_flight: 32,
            lease_margin: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            accept_batch: 256,
            retention: Duration::from_secs(7 * 24 * 3600),
            dead_letter_retention: Duration::from_secs(14 * 24 * 3600),
            prune_interval: Duration::from_secs(600),
            schedule_grace: Duration::from_secs(10),
            owner: "local".into(),
            region: "us-east-1".into(),
        }
    }
}
