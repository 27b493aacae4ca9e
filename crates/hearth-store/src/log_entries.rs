//! Stored log entries and the lines read back from them. An entry is one row of the log; a
//! platform entry may hold several lines (an invocation's `START`, `END` and `REPORT`,
//! stored together by the gateway's meter: one row instead of three on the warm path), read
//! back one line each, all with the entry's `seq`. Only entries the meter builds are split:
//! platform entries that begin with `START RequestId: ` or `END RequestId: `, into at most
//! [`ENTRY_LINES_MAX`] lines. Nothing a function sends can make one: its own lines are
//! stdout or stderr, and the one platform line carrying its words (an `INIT_REPORT`'s error
//! type) begins otherwise.

use hearth_types::{LogLine, LogStream};

/// The most lines one stored entry reads back as: a read of `limit` lines that returns
/// fewer than `limit - (ENTRY_LINES_MAX - 1)` read everything there was.
pub const ENTRY_LINES_MAX: usize = 3;

/// What a platform entry the meter built begins with.
const ENTRY_STARTS: [&str; 2] = ["START RequestId: ", "END RequestId: "];

/// The lines of `entries` (oldest first), at most `limit` of them, never splitting an
/// entry, but always at least the first entry kept: from the oldest (`Keep::Oldest`, a read
/// forwards from a position, which the last line's `seq` resumes) or the newest
/// (`Keep::Newest`, a tail).
pub(crate) fn lines_of(entries: Vec<LogLine>, limit: usize, keep: Keep) -> Vec<LogLine> {
    let mut groups: Vec<Vec<LogLine>> = entries.into_iter().map(split).collect();
    if keep == Keep::Newest {
        groups.reverse();
    }
    let mut kept = Vec::with_capacity(groups.len());
    let mut count = 0;
    for group in groups {
        if !kept.is_empty() && count + group.len() > limit {
            break;
        }
        count += group.len();
        kept.push(group);
    }
    if keep == Keep::Newest {
        kept.reverse();
    }
    kept.into_iter().flatten().collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    Oldest,
    Newest,
}

/// One entry's lines.
fn split(entry: LogLine) -> Vec<LogLine> {
    let built = entry.stream == LogStream::Platform && ENTRY_STARTS.iter().any(|s| entry.message.starts_with(s));
    if !built || !entry.message.contains('\n') {
        return vec![entry];
    }
    entry
        .message
        .splitn(ENTRY_LINES_MAX, '\n')
        .map(|message| LogLine {
            seq: entry.seq,
            function: entry.function.clone(),
            request_id: entry.request_id.clone(),
            at: entry.at,
            stream: entry.stream,
            message: message.to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn entry(seq: i64, stream: LogStream, message: &str) -> LogLine {
        LogLine {
            seq,
            function: "f".parse().unwrap(),
            request_id: Some("r".into()),
            at: Utc::now(),
            stream,
            message: message.into(),
        }
    }

    fn seen(lines: &[LogLine]) -> Vec<(i64, &str)> {
        lines.iter().map(|l| (l.seq, l.message.as_str())).collect()
    }

    #[test]
    fn platform_entries_split_and_a_limit_never_cuts_one() {
        let entries = || {
            vec![
                entry(1, LogStream::Stdout, "out"),
                entry(2, LogStream::Platform, "START RequestId: r\nEND RequestId: r\nREPORT RequestId: r"),
                entry(3, LogStream::Stderr, "a\nb"),
            ]
        };
        let all = lines_of(entries(), 10, Keep::Oldest);
        let expected =
            [(1, "out"), (2, "START RequestId: r"), (2, "END RequestId: r"), (2, "REPORT RequestId: r"), (3, "a\nb")];
        assert_eq!(seen(&all), expected, "a function's line is never split");
        assert!(all[1..4].iter().all(|l| l.stream == LogStream::Platform && l.request_id.as_deref() == Some("r")));
        assert_eq!(seen(&lines_of(entries(), 4, Keep::Oldest)), expected[..4]);
        assert_eq!(seen(&lines_of(entries(), 3, Keep::Oldest)), expected[..1], "the entry does not fit whole");
        assert_eq!(seen(&lines_of(entries(), 4, Keep::Newest)), expected[1..]);
        assert_eq!(seen(&lines_of(entries(), 3, Keep::Newest)), expected[4..]);
        // A limit below an entry's size still reads it: a reader always moves on.
        assert_eq!(seen(&lines_of(entries()[1..].to_vec(), 1, Keep::Oldest)), expected[1..4]);
        assert_eq!(seen(&lines_of(entries()[..2].to_vec(), 1, Keep::Newest)), expected[1..4]);
    }

    #[test]
    fn only_entries_the_meter_builds_are_split_and_into_three_lines_at_most() {
        let forged = "INIT_REPORT RequestId: r\tError Type: x\nREPORT RequestId: forged";
        for message in [forged, "START\nEND", "[truncated] a\nb"] {
            let lines = lines_of(vec![entry(1, LogStream::Platform, message)], 10, Keep::Oldest);
            assert_eq!(seen(&lines), [(1, message)], "not one the meter builds");
        }
        let many = "END RequestId: r\nREPORT RequestId: r\nthird\nfourth";
        let lines = lines_of(vec![entry(1, LogStream::Platform, many)], 10, Keep::Oldest);
        assert_eq!(
            seen(&lines),
            [(1, "END RequestId: r"), (1, "REPORT RequestId: r"), (1, "third\nfourth")],
            "at most ENTRY_LINES_MAX lines"
        );
    }
}
