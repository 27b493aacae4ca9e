//! `hearth logs NAME [--since D] [--tail N] [--request ID] [-f]`. The API pages through a
//! function's log by position only, so `--since` is applied here to each line's time while
//! paging, and `--tail` keeps the last N lines of what it selects.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use hearth_types::LogLine;

use super::client;
use crate::cli::LogsArgs;
use crate::error::CliError;

/// How often `--follow` asks for new lines.
const POLL: Duration = Duration::from_millis(500);

/// `--since`: a duration back from now (`30s`, `10m`, `2h`, `1d`) or an RFC 3339 time.
pub fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    since_at(s, Utc::now())
}

fn since_at(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let bad = || format!("{s:?} is neither a duration (30s, 10m, 2h, 1d) nor an RFC 3339 time (2026-01-02T15:04:05Z)");
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(unit)
        .and_then(chrono::TimeDelta::try_seconds)
        .and_then(|d| now.checked_sub_signed(d))
        .ok_or_else(|| format!("{s:?} reaches back too far"))
}

pub async fn run(args: LogsArgs, json: bool) -> Result<()> {
    let c = client()?;
    let request = args.request.as_deref();
    let selected = |line: &LogLine| args.since.is_none_or(|since| line.at >= since);
    // Lines are held back when only the last N are wanted, or when --json prints one array.
    let hold = args.tail.is_some() || (json && !args.follow);
    let mut held: VecDeque<LogLine> = VecDeque::new();
    let mut after = 0;
    let mut any = false;
    loop {
        let page = c.logs(&args.name, after, request).await?;
        if page.lines.is_empty() {
            break;
        }
        any = true;
        after = page.next;
        for line in page.lines.into_iter().filter(selected) {
            if !hold {
                print_line(&line, json)?;
                continue;
            }
            held.push_back(line);
            if args.tail.is_some_and(|n| held.len() > n) {
                held.pop_front();
            }
        }
    }
    if let (Some(id), false) = (request, any) {
        let name = &args.name;
        return Err(CliError::failed(
            "RequestNotFound",
            format!(
                "no invocation with request id {id:?} is in the retained log of {name} (`hearth logs {name}` shows the lines there are)"
            ),
        )
        .into());
    }
    if json && !args.follow {
        println!("{}", serde_json::to_string_pretty(&held)?);
        return Ok(());
    }
    for line in &held {
        print_line(line, json)?;
    }
    if !args.follow {
        return Ok(());
    }
    loop {
        let page = c.logs(&args.name, after, request).await?;
        if page.lines.is_empty() {
            tokio::time::sleep(POLL).await;
            continue;
        }
        after = page.next;
        for line in &page.lines {
            print_line(line, json)?;
        }
    }
}

/// One line: as text, or (with --json and -f) as one JSON object on its own line.
fn print_line(line: &LogLine, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(line)?);
    } else {
        println!("{}  {}", line.at.format("%Y-%m-%dT%H:%M:%S%.3fZ"), line.message);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_times() {
        let now: DateTime<Utc> = "2026-01-02T12:00:00Z".parse().unwrap();
        let at = |s: &str| since_at(s, now).map(|t| t.to_rfc3339());
        assert_eq!(at("30s").unwrap(), "2026-01-02T11:59:30+00:00");
        assert_eq!(at("10m").unwrap(), "2026-01-02T11:50:00+00:00");
        assert_eq!(at("2h").unwrap(), "2026-01-02T10:00:00+00:00");
        assert_eq!(at("1d").unwrap(), "2026-01-01T12:00:00+00:00");
        assert_eq!(at("2026-01-02T11:00:00+01:00").unwrap(), "2026-01-02T10:00:00+00:00");
        for bad in ["", "10", "m", "10 m", "1w", "-5m", "yesterday", "99999999999999999d"] {
            assert!(at(bad).is_err(), "{bad:?} accepted");
        }
    }
}
