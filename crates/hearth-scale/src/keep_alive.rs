//! Keep-alive policies: once a function has nothing left to run, how long its idle instances
//! are kept, and whether to unload them at once and pre-warm one shortly before the next
//! invocation is expected.
//!
//! [`Fixed`] keeps idle instances for a set time (the function's `keep_alive_s`, default
//! 90 s). [`Adaptive`] is the hybrid histogram policy of Shahrad et al., "Serverless in the
//! Wild" (USENIX ATC 2020): per function, a histogram of idle times (from the end of one
//! burst of work to the next arrival); pre-warm at its 5th percentile, keep alive to its
//! 99th (each with a 10% margin), and fall back to a fixed keep-alive while the histogram is
//! not representative.

use std::time::Duration;

/// What a policy decides when a function's last running invocation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// Zero: keep the idle instances. Otherwise unload them now and have one instance ready
    /// this long after the end.
    pub prewarm: Duration,
    /// How long the kept (or pre-warmed) instance stays, from the end (or from the pre-warm).
    pub keep_alive: Duration,
}

/// A keep-alive policy for one function. Time is passed in, never read.
pub trait KeepAlivePolicy: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> PolicyKind;

    /// The function was idle for `idle`: from the end of its last invocation (when nothing
    /// else was running) to the next arrival.
    fn observe_idle(&mut self, idle: Duration);

    /// The windows to apply now that the function has nothing running.
    fn windows(&self) -> Windows;
}

/// The policies a function or the server can select (defined with the function
/// configuration).
pub use hearth_types::KeepAlivePolicyKind as PolicyKind;

/// A fresh policy of `kind`, with `keep_alive` as the fixed time (and the adaptive
/// policy's fallback); the adaptive histogram has 240 bins of `bin` (one minute in
/// production, as in the paper).
pub fn build(kind: PolicyKind, keep_alive: Duration, bin: Duration) -> Box<dyn KeepAlivePolicy> {
    match kind {
        PolicyKind::Fixed => Box::new(Fixed(keep_alive)),
        PolicyKind::Adaptive => Box::new(Adaptive::with_bins(keep_alive, bin, 240)),
    }
}

/// Keeps idle instances for a fixed time.
#[derive(Debug, Clone, Copy)]
pub struct Fixed(pub Duration);

impl KeepAlivePolicy for Fixed {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Fixed
    }

    fn observe_idle(&mut self, _idle: Duration) {}

    fn windows(&self) -> Windows {
        Windows { prewarm: Duration::ZERO, keep_alive: self.0 }
    }
}

/// The hybrid histogram policy.
#[derive(Debug, Clone)]
pub struct Adaptive {
    /// Counts of idle times per bin of `bin` width; longer ones count in `out_of_range`.
    bins: Vec<u32>,
    bin: Duration,
    out_of_range: u32,
    total: u32,
    fallback: Duration,
}

/// Idle times seen before the histogram is trusted.
const MIN_SAMPLES: u32 = 10;
/// A histogram whose bin counts vary less than this (coefficient of variation) says little.
const MIN_CV: f64 = 2.0;
const HEAD: f64 = 0.05;
const TAIL: f64 = 0.99;
const MARGIN: f64 = 0.10;

impl Adaptive {
    /// One-minute bins over four hours, as in the paper.
    pub fn new(fallback: Duration) -> Self {
        Self::with_bins(fallback, Duration::from_secs(60), 240)
    }

    pub fn with_bins(fallback: Duration, bin: Duration, count: usize) -> Self {
        Self { bins: vec![0; count], bin, out_of_range: 0, total: 0, fallback }
    }

    /// Whether the histogram is trusted: enough samples, most of them in range, and
    /// concentrated enough to predict anything.
    fn representative(&self) -> bool {
        if self.total < MIN_SAMPLES || self.out_of_range * 2 > self.total {
            return false;
        }
        let n = self.bins.len() as f64;
        let mean = self.bins.iter().map(|&c| f64::from(c)).sum::<f64>() / n;
        let var = self.bins.iter().map(|&c| (f64::from(c) - mean).powi(2)).sum::<f64>() / n;
        mean > 0.0 && var.sqrt() / mean >= MIN_CV
    }

    /// The bin holding the `q` quantile of the in-range idle times.
    fn quantile_bin(&self, q: f64) -> usize {
        let in_range = self.total - self.out_of_range;
        let want = (q * f64::from(in_range)).ceil().max(1.0) as u32;
        let mut seen = 0;
        for (i, &c) in self.bins.iter().enumerate() {
            seen += c;
            if seen >= want {
                return i;
            }
        }
        self.bins.len() - 1
    }
}

impl KeepAlivePolicy for Adaptive {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Adaptive
    }

    fn observe_idle(&mut self, idle: Duration) {
        self.total += 1;
        let i = (idle.as_secs_f64() / self.bin.as_secs_f64()) as usize;
        match self.bins.get_mut(i) {
            Some(c) => *c += 1,
            None => self.out_of_range += 1,
        }
    }

    fn windows(&self) -> Windows {
        if !self.representative() {
            return Windows { prewarm: Duration::ZERO, keep_alive: self.fallback };
        }
        // The head's lower edge and the tail's upper edge, with margins.
        let head = self.bin.mul_f64(self.quantile_bin(HEAD) as f64 * (1.0 - MARGIN));
        let tail = self.bin.mul_f64((self.quantile_bin(TAIL) + 1) as f64 * (1.0 + MARGIN));
        let prewarm = if head < self.bin { Duration::ZERO } else { head };
        Windows { prewarm, keep_alive: tail.saturating_sub(prewarm).max(self.bin) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn fixed_keeps_for_its_time() {
        let mut p = Fixed(Duration::from_secs(90));
        p.observe_idle(Duration::from_secs(1_000));
        assert_eq!(p.windows(), Windows { prewarm: Duration::ZERO, keep_alive: Duration::from_secs(90) });
    }

    #[test]
    fn adaptive_falls_back_until_representative() {
        let mut p = Adaptive::new(Duration::from_secs(90));
        for _ in 0..(MIN_SAMPLES - 1) {
            p.observe_idle(MIN * 30);
        }
        assert_eq!(p.windows().keep_alive, Duration::from_secs(90), "too few samples");
        // Uniformly spread idle times say nothing: still the fallback.
        let mut flat = Adaptive::new(Duration::from_secs(90));
        for i in 0..240 {
            flat.observe_idle(MIN * i);
        }
        assert_eq!(flat.windows().prewarm, Duration::ZERO);
        assert_eq!(flat.windows().keep_alive, Duration::from_secs(90));
        // Mostly longer than the histogram's range: the fallback too.
        let mut long = Adaptive::new(Duration::from_secs(90));
        for _ in 0..20 {
            long.observe_idle(MIN * 600);
        }
        assert_eq!(long.windows().keep_alive, Duration::from_secs(90));
    }

    #[test]
    fn adaptive_prewarms_before_a_regular_gap_and_covers_its_tail() {
        // A timer every 30 minutes, give or take one.
        let mut p = Adaptive::new(Duration::from_secs(90));
        for i in 0..40 {
            p.observe_idle(MIN * (29 + i % 3));
        }
        let w = p.windows();
        assert!(w.prewarm >= MIN * 25 && w.prewarm <= MIN * 29, "{w:?}");
        let end = w.prewarm + w.keep_alive;
        assert!(end >= MIN * 32 && end <= MIN * 36, "covers the 99th percentile: {w:?}");
    }

    #[test]
    fn adaptive_keeps_frequent_functions_without_unloading() {
        let mut p = Adaptive::new(Duration::from_secs(90));
        for i in 0..100 {
            p.observe_idle(Duration::from_secs(5 + i % 40));
        }
        let w = p.windows();
        assert_eq!(w.prewarm, Duration::ZERO);
        assert_eq!(w.keep_alive, MIN.mul_f64(1.1));
    }

    #[test]
    fn kinds_parse_and_build() {
        assert_eq!("adaptive".parse::<PolicyKind>().unwrap(), PolicyKind::Adaptive);
        assert!("lru".parse::<PolicyKind>().is_err());
        assert_eq!(build(PolicyKind::Fixed, MIN, MIN).kind(), PolicyKind::Fixed);
    }
}
