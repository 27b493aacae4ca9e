//! Stored log entries and the lines read back from them. An entry is one row of the log; a
//! platform entry may hold several lines (an invocation's `START`, `END` and `REPORT`,
//! stored together by the gateway's meter: one row instead of three on the warm path), read
//! back one line each, all with the entry's `seq`. A function's own lines never hold a line
//! break (its output is split into lines before it is stored), so only platform entries are
//! split.

use hearth_types::{LogLine, LogStream};

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
    if entry.stream != LogStream::Platform || !entry.message.contains('\n') {
        return vec![entry];
    }
    entry.message.split('\n').map(|message| LogLine { message: message.to_owned(), ..entry.clone() }).collect()
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
                entry(2, LogStream::Platform, "START r\nEND r\nREPORT r"),
                entry(3, LogStream::Stderr, "a\nb"),
            ]
        };
        let all = lines_of(entries(), 10, Keep::Oldest);
        let expected = [(1, "out"), (2, "START r"), (2, "END r"), (2, "REPORT r"), (3, "a\nb")];
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
}
