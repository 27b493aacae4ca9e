//! Cron triggers: a function invoked asynchronously at each instant of a schedule.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{FunctionName, TriggerId, ValidationError};

/// Longest schedule expression and time-zone name accepted.
pub const SCHEDULE_MAX_LEN: usize = 256;
pub const TIME_ZONE_MAX_LEN: usize = 64;

/// A validated schedule: a cron expression with a seconds field (`sec min hour
/// day-of-month month day-of-week [year]`, parsed by the `cron` crate) read in a time zone
/// (`UTC` or an IANA name such as `Europe/Paris`, from the `chrono-tz` database).
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    time_zone: chrono_tz::Tz,
    schedule: cron::Schedule,
}

impl CronSchedule {
    pub fn new(expression: &str, time_zone: &str) -> Result<Self, ValidationError> {
        let bad = |why: String| ValidationError::InvalidSchedule(expression.chars().take(80).collect(), why);
        if expression.len() > SCHEDULE_MAX_LEN {
            return Err(bad(format!("use at most {SCHEDULE_MAX_LEN} characters")));
        }
        let fields = expression.split_whitespace().count();
        if !(6..=7).contains(&fields) {
            return Err(bad(format!(
                "it has {fields} fields; use 6 or 7: seconds, minutes, hours, day of month, month, day of week [, year], e.g. \"0 */5 * * * *\""
            )));
        }
        let schedule = cron::Schedule::from_str(expression).map_err(|e| bad(e.to_string()))?;
        if time_zone.len() > TIME_ZONE_MAX_LEN {
            return Err(ValidationError::InvalidTimeZone(time_zone.chars().take(80).collect()));
        }
        let time_zone: chrono_tz::Tz =
            time_zone.parse().map_err(|_| ValidationError::InvalidTimeZone(time_zone.to_owned()))?;
        let s = Self { expression: expression.to_owned(), time_zone, schedule };
        if s.next_after(Utc::now()).is_none() {
            return Err(bad("it never fires from now on".into()));
        }
        Ok(s)
    }

    /// The first instant of the schedule strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.after(&t.with_timezone(&self.time_zone)).next().map(|at| at.with_timezone(&Utc))
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn time_zone(&self) -> &str {
        self.time_zone.name()
    }
}

/// What a cron trigger does with the instants it missed while no server ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MissedRuns {
    /// Fire none of them: the next instant from now on is the next one.
    #[default]
    Skip,
    /// Fire once, for the latest missed instant.
    Once,
}

impl FromStr for MissedRuns {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "skip" => Ok(Self::Skip),
            "once" => Ok(Self::Once),
            other => Err(ValidationError::InvalidMissedRuns(other.to_owned())),
        }
    }
}

/// A cron trigger as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CronTrigger {
    pub id: TriggerId,
    pub function: FunctionName,
    /// The version number or alias it invokes; absent: `$LATEST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    /// The cron expression, seconds first.
    #[schema(example = "0 */5 * * * *")]
    pub schedule: String,
    /// `UTC` or an IANA time-zone name.
    #[schema(example = "UTC")]
    pub time_zone: String,
    pub missed_runs: MissedRuns,
    pub created_at: DateTime<Utc>,
}

/// A cron trigger with where it is in its schedule (what `GET /v1/schedules` lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleState {
    #[serde(flatten)]
    pub trigger: CronTrigger,
    /// The next instant it fires; `None` when the schedule has no instant left.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// Occurrences queued as events.
    pub fired: u64,
    /// Occurrences dropped because the function's queue was full.
    pub dropped: u64,
    pub last_fired_at: Option<DateTime<Utc>>,
}

impl CronTrigger {
    /// Its schedule (validated when it was made).
    pub fn cron(&self) -> Result<CronSchedule, ValidationError> {
        CronSchedule::new(&self.schedule, &self.time_zone)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn schedules_have_a_seconds_field_and_a_time_zone() {
        let s = CronSchedule::new("0 */5 * * * *", "UTC").unwrap();
        let t = Utc.with_ymd_and_hms(2030, 1, 1, 10, 2, 3).unwrap();
        assert_eq!(s.next_after(t), Some(Utc.with_ymd_and_hms(2030, 1, 1, 10, 5, 0).unwrap()));
        // 02:30 in Paris does not exist on the spring-forward night: the next fire is 03:00
        // local (01:00 UTC).
        let paris = CronSchedule::new("0 */30 * * * *", "Europe/Paris").unwrap();
        let before = Utc.with_ymd_and_hms(2030, 3, 31, 0, 45, 0).unwrap();
        assert_eq!(paris.next_after(before), Some(Utc.with_ymd_and_hms(2030, 3, 31, 1, 0, 0).unwrap()));
        assert_eq!(paris.time_zone(), "Europe/Paris");
        for (expr, tz, code) in [
            ("*/5 * * * *", "UTC", "InvalidSchedule"),
            ("0 0 * * * * * *", "UTC", "InvalidSchedule"),
            ("0 61 * * * *", "UTC", "InvalidSchedule"),
            ("0 0 0 30 2 *", "UTC", "InvalidSchedule"),
            ("0 0 * * * *", "Mars/Olympus", "InvalidTimeZone"),
        ] {
            assert_eq!(CronSchedule::new(expr, tz).unwrap_err().code(), code, "{expr} {tz}");
        }
        assert_eq!(CronSchedule::new(&"0 ".repeat(200), "UTC").unwrap_err().code(), "InvalidSchedule");
        assert_eq!("sometimes".parse::<MissedRuns>().unwrap_err().code(), "InvalidMissedRuns");
    }
}
