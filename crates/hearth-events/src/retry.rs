//! What happens after an attempt: pure decisions, time and randomness passed in.

use chrono::{DateTime, Utc};
use hearth_types::{EventConfig, EventError};

use crate::EventSettings;

/// How one delivery ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Succeeded,
    /// The function failed: its own error, a crash of its runtime, its timeout, a failed
    /// initialisation. Counts against `async_retries`.
    FunctionError,
    /// The platform could not run it now: throttled, no memory on the node, no instance
    /// within the wait, no code yet, an internal failure. Retried with backoff until the
    /// event is `max_event_age_s` old.
    Unavailable,
    /// It can never run: the function or the version asked for does not exist.
    Impossible,
}

/// Why an event gave up (Lambda's destination `condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    RetriesExhausted,
    EventAgeExceeded,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetriesExhausted => "RetriesExhausted",
            Self::EventAgeExceeded => "EventAgeExceeded",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Done,
    RetryAt(DateTime<Utc>),
    GiveUp(Condition),
}

/// The counts of an event after the attempt that just ended.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    /// Deliveries started, this one included.
    pub attempts: u32,
    /// Deliveries that ended in a function error, this one included.
    pub function_errors: u32,
    /// When the event last entered the queue: its age counts from here.
    pub queued_at: DateTime<Utc>,
}

/// What follows `attempt`. `jitter` is uniform in `[0, 1)`: a backoff waits between half
/// and all of its exponential delay, so events throttled together do not return together.
pub fn next(
    attempt: Attempt,
    counts: Counts,
    now: DateTime<Utc>,
    config: &EventConfig,
    settings: &EventSettings,
    jitter: f64,
) -> Next {
    let deadline = counts.queued_at + chrono::Duration::seconds(i64::from(config.max_event_age_s));
    let wait = match attempt {
        Attempt::Succeeded => return Next::Done,
        Attempt::Impossible => return Next::GiveUp(Condition::RetriesExhausted),
        Attempt::FunctionError if counts.function_errors > config.async_retries => {
            return Next::GiveUp(Condition::RetriesExhausted);
        }
        Attempt::FunctionError => settings.retry_delay * counts.function_errors.max(1),
        Attempt::Unavailable => {
            let failures = counts.attempts.saturating_sub(counts.function_errors).max(1);
            let exponential = settings.backoff_min.saturating_mul(1u32 << (failures - 1).min(20));
            let full = exponential.min(settings.backoff_max);
            full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
        }
    };
    let at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
    if at > deadline { Next::GiveUp(Condition::EventAgeExceeded) } else { Next::RetryAt(at) }
}

/// Deliveries cut short (by server stops or lost leases) after which an event is
/// dead-lettered rather than delivered again.
pub const MAX_REDELIVERIES: u32 = 8;

/// The error that stops an event delivered `attempts` times, `redeliveries` of them cut
/// short, when that is too many; `None` while it may be delivered again.
pub fn cut_short(attempts: u32, redeliveries: u32) -> Option<EventError> {
    (redeliveries > MAX_REDELIVERIES).then(|| EventError {
        error_type: "TooManyRedeliveries".into(),
        message: format!(
            "delivered {attempts} times without an outcome (each delivery was cut short); not delivered again"
        ),
        function_error: false,
    })
}

/// A uniform value in `[0, 1)` from the operating system's generator.
pub fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn counts(attempts: u32, function_errors: u32) -> Counts {
        Counts { attempts, function_errors, queued_at: t(0) }
    }

    #[test]
    fn function_errors_retry_after_one_then_two_minutes_then_give_up() {
        let (config, settings) = (EventConfig::default(), EventSettings::default());
        assert_eq!(next(Attempt::FunctionError, counts(1, 1), t(1), &config, &settings, 0.3), Next::RetryAt(t(61)));
        assert_eq!(next(Attempt::FunctionError, counts(2, 2), t(70), &config, &settings, 0.3), Next::RetryAt(t(190)));
        assert_eq!(
            next(Attempt::FunctionError, counts(3, 3), t(200), &config, &settings, 0.3),
            Next::GiveUp(Condition::RetriesExhausted)
        );
        let none = EventConfig { async_retries: 0, ..EventConfig::default() };
        assert_eq!(
            next(Attempt::FunctionError, counts(1, 1), t(1), &none, &settings, 0.3),
            Next::GiveUp(Condition::RetriesExhausted)
        );
    }

    #[test]
    fn platform_failures_back_off_exponentially_with_jitter_until_the_event_is_too_old() {
        let config = EventConfig { max_event_age_s: 60, ..EventConfig::default() };
        let settings = EventSettings::default();
        // 1 s, 2 s, 4 s ... times a jitter factor in [0.5, 1).
        assert_eq!(
            next(Attempt::Unavailable, counts(1, 0), t(0), &config, &settings, 0.0),
            Next::RetryAt(t(0) + chrono::Duration::milliseconds(500))
        );
        assert_eq!(next(Attempt::Unavailable, counts(3, 0), t(0), &config, &settings, 0.0), Next::RetryAt(t(2)));
        let late = next(Attempt::Unavailable, counts(3, 1), t(0), &config, &settings, 0.999);
        assert!(matches!(late, Next::RetryAt(at) if at > t(1) && at < t(2)), "{late:?}");
        // Capped at backoff_max, and given up once past the event's age.
        let capped = next(Attempt::Unavailable, counts(30, 0), t(0), &EventConfig::default(), &settings, 0.999);
        assert!(matches!(capped, Next::RetryAt(at) if at <= t(300)), "{capped:?}");
        assert_eq!(
            next(Attempt::Unavailable, counts(2, 0), t(59), &config, &settings, 0.5),
            Next::GiveUp(Condition::EventAgeExceeded)
        );
        // A function error whose retry would come after the event's age gives up too.
        assert_eq!(
            next(Attempt::FunctionError, counts(1, 1), t(30), &config, &settings, 0.5),
            Next::GiveUp(Condition::EventAgeExceeded)
        );
    }

    #[test]
    fn conditions_are_named_as_lambda_names_them() {
        assert_eq!(Condition::RetriesExhausted.as_str(), "RetriesExhausted");
        assert_eq!(Condition::EventAgeExceeded.as_str(), "EventAgeExceeded");
    }

    #[test]
    fn success_is_done_and_the_impossible_gives_up_at_once() {
        let (config, settings) = (EventConfig::default(), EventSettings::default());
        assert_eq!(next(Attempt::Succeeded, counts(1, 0), t(1), &config, &settings, 0.5), Next::Done);
        assert_eq!(
            next(Attempt::Impossible, counts(1, 0), t(1), &config, &settings, 0.5),
            Next::GiveUp(Condition::RetriesExhausted)
        );
    }

    #[test]
    fn an_event_cut_short_too_often_stops() {
        assert_eq!(cut_short(9, MAX_REDELIVERIES), None);
        let e = cut_short(10, MAX_REDELIVERIES + 1).unwrap();
        assert_eq!((e.error_type.as_str(), e.function_error), ("TooManyRedeliveries", false));
        assert!(e.message.starts_with("delivered 10 times"), "{}", e.message);
    }

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
