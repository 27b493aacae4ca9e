//! An invocation's platform lines (`START`, then `END` and `REPORT`) in as few log entries as
//! its output allows. The meter's writer holds a `START` back, for up to [`HOLD`]: when the
//! invocation's `END` (one entry with its `REPORT`) comes first, all three are stored as one
//! entry, one row instead of three (on the warm path of a function that logs nothing, most
//! of the log writer's work). A line of the function's output, a flush, or [`HOLD`] passing
//! stores the `START` alone first: every `START` of a function sent before one of its lines
//! is stored before it, as when each was stored as it came (whatever request the line is
//! put down to: an instance serving several at once cannot always tell). The store reads an
//! entry back as one line each (`MetadataStore::read_logs`).
//!
//! Pure: the writer passes the time in (tokio's clock, which its sleeps follow).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use hearth_types::{FunctionName, LogLine};
use tokio::time::Instant;

/// How long a `START` waits for its `END`.
pub(crate) const HOLD: Duration = Duration::from_secs(1);
/// `START`s held at most (about the invocations in flight); past it, one is stored as it comes.
const HELD_MAX: usize = 4096;

/// What the log queue carries to the writer.
pub(crate) enum Entry {
    /// A line stored as it comes (after its invocation's `START`, if that is held).
    Line(LogLine),
    /// An invocation's `START`, which may wait for its `END`.
    Start(LogLine),
    /// An invocation's `END` and `REPORT`, one entry of two lines.
    End(LogLine),
}

impl Entry {
    pub(crate) fn line(&self) -> &LogLine {
        match self {
            Entry::Line(l) | Entry::Start(l) | Entry::End(l) => l,
        }
    }
}

/// The `START`s waiting, by request id, each with the bytes the log queue charged for it
/// (released to the queue once it is stored).
#[derive(Default)]
pub(crate) struct HeldStarts {
    held: HashMap<String, Held>,
    /// The requests held of each function, in the order their `START`s came.
    by_function: HashMap<FunctionName, VecDeque<String>>,
    /// Deadlines in the order they were set; an entry whose generation no longer matches
    /// was stored already (dropped once it reaches the front).
    due: VecDeque<(Instant, String, u64)>,
    generation: u64,
}

struct Held {
    line: LogLine,
    charge: u64,
    generation: u64,
}

impl HeldStarts {
    /// Adds `entry` (charged `charge` bytes) to `out`, the lines to store in order, or holds
    /// it; returns the bytes of what went to `out`.
    pub(crate) fn admit(&mut self, entry: Entry, charge: u64, now: Instant, out: &mut Vec<LogLine>) -> u64 {
        match entry {
            Entry::Line(line) => {
                let released = self.release_function(&line.function, out);
                out.push(line);
                released + charge
            }
            Entry::Start(line) => {
                let Some(request) = line.request_id.clone() else {
                    out.push(line);
                    return charge;
                };
                // A retry's START (the same request id) while the first is held.
                let released = self.release(&request, out);
                if self.held.len() >= HELD_MAX {
                    out.push(line);
                    return released + charge;
                }
                self.generation += 1;
                self.by_function.entry(line.function.clone()).or_default().push_back(request.clone());
                self.held.insert(request.clone(), Held { line, charge, generation: self.generation });
                self.due.push_back((now + HOLD, request, self.generation));
                self.compact_due();
                released
            }
            // Merged only with its own function's START (request ids are the server's, one
            // function's each; this keeps it so whatever makes them).
            Entry::End(line) => {
                let own = line
                    .request_id
                    .as_deref()
                    .filter(|r| self.held.get(*r).is_some_and(|h| h.line.function == line.function));
                match own.and_then(|r| self.remove(r)) {
                    Some(start) => {
                        let message = format!("{}\n{}", start.line.message, line.message);
                        out.push(LogLine { message, ..start.line });
                        start.charge + charge
                    }
                    None => {
                        out.push(line);
                        charge
                    }
                }
            }
        }
    }

    /// Stores the `START`s held for [`HOLD`] by `now`; returns their bytes.
    pub(crate) fn release_due(&mut self, now: Instant, out: &mut Vec<LogLine>) -> u64 {
        let mut released = 0;
        while let Some((deadline, request, _)) = self.front() {
            if *deadline > now {
                break;
            }
            let request = request.clone();
            released += self.release(&request, out);
            self.due.pop_front();
        }
        released
    }

    /// Stores every `START` held (a flush: everything sent before it is readable).
    pub(crate) fn release_all(&mut self, out: &mut Vec<LogLine>) -> u64 {
        let mut held: Vec<Held> = self.held.drain().map(|(_, h)| h).collect();
        held.sort_by_key(|h| h.generation);
        self.due.clear();
        self.by_function.clear();
        held.into_iter()
            .map(|h| {
                out.push(h.line);
                h.charge
            })
            .sum()
    }

    /// Drops the deadlines of `START`s stored already once they are many (one `START` held
    /// for its whole second would otherwise keep every deadline set behind it).
    fn compact_due(&mut self) {
        if self.due.len() > 2 * HELD_MAX {
            let held = &self.held;
            self.due.retain(|(_, request, generation)| held.get(request).is_some_and(|h| h.generation == *generation));
        }
    }

    /// When the next held `START` is due, if one is held.
    pub(crate) fn next_due(&mut self) -> Option<Instant> {
        self.front().map(|(deadline, ..)| *deadline)
    }

    /// The first deadline of a `START` still held, the stored ones before it dropped.
    fn front(&mut self) -> Option<&(Instant, String, u64)> {
        while let Some((_, request, generation)) = self.due.front() {
            if self.held.get(request).is_some_and(|h| h.generation == *generation) {
                break;
            }
            self.due.pop_front();
        }
        self.due.front()
    }

    fn release(&mut self, request: &str, out: &mut Vec<LogLine>) -> u64 {
        match self.remove(request) {
            Some(h) => {
                out.push(h.line);
                h.charge
            }
            None => 0,
        }
    }

    /// Stores every `START` of `function` held, in the order they came.
    fn release_function(&mut self, function: &FunctionName, out: &mut Vec<LogLine>) -> u64 {
        let Some(requests) = self.by_function.remove(function) else {
            return 0;
        };
        let mut released = 0;
        for request in requests {
            if let Some(h) = self.held.remove(&request) {
                out.push(h.line);
                released += h.charge;
            }
        }
        released
    }

    /// The `START` held for `request`, no longer held.
    fn remove(&mut self, request: &str) -> Option<Held> {
        let held = self.held.remove(request)?;
        if let Some(requests) = self.by_function.get_mut(&held.line.function) {
            // The oldest end first, mostly: a search from the front is short.
            if let Some(i) = requests.iter().position(|r| r == request) {
                requests.remove(i);
            }
            if requests.is_empty() {
                self.by_function.remove(&held.line.function);
            }
        }
        Some(held)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use hearth_types::LogStream;

    use super::*;

    fn line(request: Option<&str>, stream: LogStream, message: &str) -> LogLine {
        LogLine {
            seq: 0,
            function: "f".parse().unwrap(),
            request_id: request.map(str::to_owned),
            at: Utc::now(),
            stream,
            message: message.into(),
        }
    }
    fn start(r: &str) -> Entry {
        Entry::Start(line(Some(r), LogStream::Platform, &format!("START {r}")))
    }
    fn end(r: &str) -> Entry {
        Entry::End(line(Some(r), LogStream::Platform, &format!("END {r}\nREPORT {r}")))
    }
    fn out_of(r: &str, message: &str) -> Entry {
        Entry::Line(line(Some(r), LogStream::Stdout, message))
    }
    fn messages(out: &[LogLine]) -> Vec<&str> {
        out.iter().map(|l| l.message.as_str()).collect()
    }

    #[test]
    fn a_silent_invocation_is_one_entry_and_output_comes_after_its_start() {
        let (mut held, mut out, t0) = (HeldStarts::default(), vec![], Instant::now());
        assert_eq!(held.admit(start("a"), 10, t0, &mut out), 0, "held, still charged");
        assert_eq!(held.admit(end("a"), 7, t0, &mut out), 17, "a's START with its END");
        assert_eq!(held.admit(start("b"), 20, t0, &mut out), 0);
        assert_eq!(held.admit(start("c"), 30, t0, &mut out), 0);
        assert_eq!(messages(&out), ["START a\nEND a\nREPORT a"]);
        assert!(out[0].stream == LogStream::Platform && out[0].request_id.as_deref() == Some("a"));
        // A line of the function stores every START of it held, in order, whichever request
        // the line is put down to.
        assert_eq!(held.admit(out_of("c", "hello"), 5, t0, &mut out), 55, "b's and c's STARTs go first");
        assert_eq!(held.admit(end("b"), 7, t0, &mut out), 7);
        assert_eq!(messages(&out), ["START a\nEND a\nREPORT a", "START b", "START c", "hello", "END b\nREPORT b"]);
        // Another function's line releases nothing.
        held.admit(start("d"), 10, t0, &mut out);
        let other = LogLine { function: "g".parse().unwrap(), ..line(Some("d"), LogStream::Stdout, "other") };
        assert_eq!(held.admit(Entry::Line(other), 5, t0, &mut out), 5);
        assert_eq!(held.admit(end("d"), 7, t0, &mut out), 17);
        assert_eq!(out.last().unwrap().message, "START d\nEND d\nREPORT d");
        assert_eq!(held.next_due(), None, "nothing held: no deadline");
        assert_eq!(held.release_due(t0 + HOLD, &mut out), 0, "nothing left to release");
    }

    #[test]
    fn a_start_waits_at_most_its_hold_and_a_flush_releases_all() {
        let (mut held, mut out, t0) = (HeldStarts::default(), vec![], Instant::now());
        held.admit(start("slow"), 10, t0, &mut out);
        held.admit(start("later"), 10, t0 + HOLD / 2, &mut out);
        assert_eq!(held.release_due(t0 + HOLD - Duration::from_millis(1), &mut out), 0);
        assert_eq!(held.release_due(t0 + HOLD, &mut out), 10);
        assert_eq!(messages(&out), ["START slow"]);
        assert_eq!(held.next_due(), Some(t0 + HOLD / 2 + HOLD));
        held.admit(start("third"), 10, t0 + HOLD, &mut out);
        assert_eq!(held.release_all(&mut out), 20, "a flush stores every START held");
        assert_eq!(messages(&out), ["START slow", "START later", "START third"], "in the order sent");
        assert_eq!(held.admit(end("slow"), 7, t0, &mut out), 7, "an END after its START was stored");
        assert_eq!(out.last().unwrap().message, "END slow\nREPORT slow");
        // A line with no request, and a retry's START (the same request id) while one is held.
        held.admit(Entry::Line(line(None, LogStream::Stderr, "no request")), 3, t0, &mut out);
        held.admit(start("retried"), 10, t0, &mut out);
        held.admit(start("retried"), 10, t0, &mut out);
        assert_eq!(messages(&out[out.len() - 2..]), ["no request", "START retried"], "the first attempt's START");
        assert_eq!(held.release_due(t0 + HOLD, &mut out), 10, "the second, once");
        assert!(held.by_function.is_empty() && held.held.is_empty(), "nothing left behind");
    }

    #[test]
    fn an_end_merges_only_with_its_own_functions_start() {
        let (mut held, mut out, t0) = (HeldStarts::default(), vec![], Instant::now());
        held.admit(start("r"), 10, t0, &mut out);
        let elsewhere = LogLine { function: "g".parse().unwrap(), ..line(Some("r"), LogStream::Platform, "END g") };
        assert_eq!(held.admit(Entry::End(elsewhere), 7, t0, &mut out), 7);
        assert_eq!(messages(&out), ["END g"], "stored alone, in its own function's log");
        assert_eq!(held.admit(end("r"), 7, t0, &mut out), 17);
        assert_eq!(messages(&out)[1], "START r\nEND r\nREPORT r");
    }

    #[test]
    fn the_held_starts_are_bounded() {
        let (mut held, mut out, t0) = (HeldStarts::default(), vec![], Instant::now());
        for i in 0..HELD_MAX + 3 {
            held.admit(start(&i.to_string()), 1, t0, &mut out);
        }
        assert_eq!(out.len(), 3, "past {HELD_MAX}, a START is stored as it comes");
        for i in 0..HELD_MAX / 2 {
            held.admit(end(&i.to_string()), 1, t0, &mut out);
        }
        assert_eq!(
            held.by_function[&"f".parse::<FunctionName>().unwrap()].len(),
            HELD_MAX / 2,
            "an END's START leaves its function's list"
        );
        assert_eq!(held.release_all(&mut out), (HELD_MAX / 2) as u64);

        // One START held for its whole second while many come and end: the deadlines of
        // those stored are dropped, not kept behind it.
        held.admit(start("slow"), 1, t0, &mut out);
        for i in 0..10 * HELD_MAX {
            held.admit(start(&format!("quick {i}")), 1, t0, &mut out);
            held.admit(end(&format!("quick {i}")), 1, t0, &mut out);
        }
        assert!(held.due.len() <= 2 * HELD_MAX + 1, "{} deadlines kept", held.due.len());
        assert_eq!(held.release_due(t0 + HOLD, &mut out), 1);
        assert_eq!(out.last().unwrap().message, "START slow");
    }
}
