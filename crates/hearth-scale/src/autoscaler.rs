//! How many instances a function needs, in the spirit of Knative's KPA: desired instances =
//! observed concurrency (in flight + queued) / (per-instance concurrency x target
//! utilisation), averaged over a stable window (60 s) and a panic window (6 s). When the
//! panic window asks for twice the ready capacity or more, the autoscaler panics: it follows
//! the panic window and never scales down until the stable window has passed calmly.
//! Bounded by `min_instances`/`max_instances` and by what the node can still admit.
//!
//! [`Autoscaler::decide`] is pure: time and observations are passed in.

use std::collections::VecDeque;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct AutoscalerConfig {
    pub target_utilisation: f64,
    pub stable_window: Duration,
    pub panic_window: Duration,
    /// Panic when the panic window wants this many times the ready instances.
    pub panic_threshold: f64,
}

/// Limits on a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min_instances: u32,
    pub max_instances: u32,
    /// Requests one instance serves at once.
    pub per_instance: u32,
    /// Instances there are now (ready or starting).
    pub current: u32,
    /// More instances the node can admit (memory budget).
    pub room: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub desired: u32,
    pub panicking: bool,
    pub stable_concurrency: f64,
    pub panic_concurrency: f64,
}

/// One function's autoscaler: its recent observations and panic state.
#[derive(Debug, Clone, Default)]
pub struct Autoscaler {
    config: AutoscalerConfig,
    /// (time, concurrency averaged since the previous sample, time since it), oldest first,
    /// within the stable window.
    samples: VecDeque<(Duration, f64, Duration)>,
    panic_since: Option<Duration>,
    /// The highest decision while panicking (no scale-down in panic).
    panic_desired: u32,
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        Self::knative()
    }
}

impl Autoscaler {
    pub fn new(config: AutoscalerConfig) -> Self {
        Self { config, ..Default::default() }
    }

    pub fn config(&self) -> &AutoscalerConfig {
        &self.config
    }

    /// Records the concurrency observed at `now` (time since any fixed origin), averaged
    /// over the time since the previous observation.
    pub fn observe(&mut self, now: Duration, concurrency: f64) {
        let since = self.samples.back().map_or(Duration::ZERO, |(t, _, _)| now.saturating_sub(*t));
        self.samples.push_back((now, concurrency, since));
        while self.samples.front().is_some_and(|(t, _, _)| now.saturating_sub(*t) > self.config.stable_window) {
            self.samples.pop_front();
        }
    }

    /// The time-weighted mean over `window` before `now`; time without observations counts
    /// as no load (so a brief spike in a new function does not look like a trend).
    fn average(&self, now: Duration, window: Duration) -> f64 {
        let sum: f64 = self
            .samples
            .iter()
            .filter(|(t, _, _)| now.saturating_sub(*t) < window)
            .map(|(_, c, dt)| c * dt.as_secs_f64())
            .sum();
        sum / window.as_secs_f64()
    }

    /// The instances the function should have at `now`.
    pub fn decide(&mut self, now: Duration, bounds: Bounds) -> Decision {
        let per_instance = f64::from(bounds.per_instance.max(1)) * self.config.target_utilisation;
        let stable = self.average(now, self.config.stable_window);
        let panic = self.average(now, self.config.panic_window);
        // (The epsilon keeps 7 / 0.7 at 10, not 11.)
        let want = |c: f64| (c / per_instance - 1e-9).ceil().max(0.0) as u32;
        let (stable_want, panic_want) = (want(stable), want(panic));
        let over = f64::from(panic_want) >= self.config.panic_threshold * f64::from(bounds.current.max(1));
        if over && panic_want > 0 {
            if self.panic_since.is_none() {
                self.panic_desired = 0;
            }
            self.panic_since = Some(now);
        } else if self.panic_since.is_some_and(|t| now.saturating_sub(t) >= self.config.stable_window) {
            self.panic_since = None;
        }
        let panicking = self.panic_since.is_some();
        let mut desired = if panicking {
            self.panic_desired = self.panic_desired.max(panic_want).max(bounds.current);
            self.panic_desired
        } else {
            stable_want
        };
        desired = desired.clamp(bounds.min_instances, bounds.max_instances.max(bounds.min_instances));
        // Growth only as far as the node has room.
        if desired > bounds.current {
            desired = desired.min(bounds.current.saturating_add(bounds.room));
        }
        Decision { desired, panicking, stable_concurrency: stable, panic_concurrency: panic }
    }
}

impl AutoscalerConfig {
    /// Knative's defaults: 70% target utilisation, 60 s stable and 6 s panic windows, panic
    /// at 200%.
    pub fn knative() -> Self {
        Self {
            target_utilisation: 0.7,
            stable_window: Duration::from_secs(60),
            panic_window: Duration::from_secs(6),
            panic_threshold: 2.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn bounds(current: u32) -> Bounds {
        Bounds { min_instances: 0, max_instances: 100, per_instance: 1, current, room: 1_000 }
    }

    #[test]
    fn steady_load_gets_load_over_target_utilisation() {
        let mut a = Autoscaler::default();
        for t in 0..60 {
            a.observe(s(t), 7.0);
        }
        let d = a.decide(s(59), bounds(10));
        assert_eq!((d.desired, d.panicking), (10, false), "7 in flight at 70% of 1 each: {d:?}");
        let mut four = Autoscaler::default();
        for t in 0..60 {
            four.observe(s(t), 7.0);
        }
        let d = four.decide(s(59), Bounds { per_instance: 4, ..bounds(3) });
        assert_eq!(d.desired, 3, "ceil(7 / 2.8)");
    }

    #[test]
    fn a_burst_panics_and_scales_ahead_without_scaling_down() {
        let mut a = Autoscaler::default();
        for t in 0..54 {
            a.observe(s(t), 1.0);
        }
        assert_eq!(a.decide(s(53), bounds(2)).desired, 2);
        for t in 54..60 {
            a.observe(s(t), 50.0);
        }
        let d = a.decide(s(59), bounds(2));
        assert!(d.panicking, "{d:?}");
        assert_eq!(d.desired, 72, "the panic window's 50 / 0.7, not the stable window's average");
        // The burst stops: still panicking, so no scale-down for a stable window.
        for t in 60..100 {
            a.observe(s(t), 0.0);
        }
        let d = a.decide(s(99), bounds(72));
        assert!(d.panicking);
        assert_eq!(d.desired, 72);
        for t in 100..130 {
            a.observe(s(t), 0.0);
        }
        let d = a.decide(s(129), bounds(72));
        assert!(!d.panicking, "a calm stable window ends the panic: {d:?}");
        assert_eq!(d.desired, 0, "scale to zero once idle");
    }

    #[test]
    fn bounds_and_node_room_limit_the_decision() {
        let mut a = Autoscaler::default();
        a.observe(s(0), 100.0);
        a.observe(s(1), 100.0);
        let d = a.decide(s(1), Bounds { max_instances: 10, ..bounds(1) });
        assert_eq!(d.desired, 10);
        let d = a.decide(s(1), Bounds { room: 3, ..bounds(1) });
        assert_eq!(d.desired, 4, "only 3 more fit on the node");
        let mut idle = Autoscaler::default();
        idle.observe(s(0), 0.0);
        assert_eq!(idle.decide(s(0), Bounds { min_instances: 2, ..bounds(0) }).desired, 2);
    }
}
