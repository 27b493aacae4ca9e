//! An instance's output, bounded. Each stdout/stderr line goes to the [`LogSink`] as soon as
//! it is printed, attributed to the request the instance is serving; a line longer than the
//! cap is delivered cut (marked ` [truncated]`) the moment it reaches the cap, and the rest of
//! it is skipped up to its newline, so no more than the cap is ever buffered. Each invocation
//! may print only so many bytes (stdout and stderr together): past that, one marker line, then
//! its lines are dropped, and counted in a summary line once the next request begins.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use hearth_types::LogStream;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::instance::{CurrentRequest, LogEvent, LogSink};

/// What marks output that was cut or dropped.
pub const TRUNCATED: &str = "[truncated]";

/// Bytes read from a stream at a time.
const READ_BUFFER: usize = 64 * 1024;

/// How much of an instance's output reaches its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureLimits {
    /// The longest line kept, in bytes (256 KiB).
    pub line_bytes: usize,
    /// The output one invocation may log, in bytes (4 MiB).
    pub invocation_bytes: u64,
}

impl Default for CaptureLimits {
    fn default() -> Self {
        Self { line_bytes: 256 * 1024, invocation_bytes: 4 * 1024 * 1024 }
    }
}

/// Where an instance's output goes, and how much of it.
#[derive(Clone)]
pub struct LogOutput {
    pub sink: LogSink,
    pub limits: CaptureLimits,
}

impl From<LogSink> for LogOutput {
    /// A sink with the default limits.
    fn from(sink: LogSink) -> Self {
        Self { sink, limits: CaptureLimits::default() }
    }
}

/// Reads the instance's stdout and stderr until they close, sending each line to `output`
/// (or to the debug log), within `output`'s limits.
pub(crate) fn capture(
    label: String,
    stdout: std::pin::Pin<Box<dyn AsyncRead + Send>>,
    stderr: std::pin::Pin<Box<dyn AsyncRead + Send>>,
    current: CurrentRequest,
    output: Option<LogOutput>,
) {
    let limits = output.as_ref().map_or_else(CaptureLimits::default, |o| o.limits);
    let to = Arc::new(Target {
        label,
        current,
        sink: output.map(|o| o.sink),
        limits,
        budget: Mutex::new(InvocationBudget::new(limits.invocation_bytes)),
    });
    for (which, stream) in [(LogStream::Stdout, stdout), (LogStream::Stderr, stderr)] {
        tokio::spawn(read_lines(stream, which, LineCutter::new(limits.line_bytes), to.clone()));
    }
}

/// What both of an instance's streams share.
struct Target {
    label: String,
    current: CurrentRequest,
    sink: Option<LogSink>,
    limits: CaptureLimits,
    budget: Mutex<InvocationBudget>,
}

async fn read_lines(
    stream: std::pin::Pin<Box<dyn AsyncRead + Send>>,
    which: LogStream,
    mut cutter: LineCutter,
    to: Arc<Target>,
) {
    let mut reader = BufReader::with_capacity(READ_BUFFER, stream);
    loop {
        // Whatever is there now, not a full buffer: lines go out as they are printed.
        let line = match reader.fill_buf().await {
            Ok([]) | Err(_) => {
                if let Some(line) = cutter.finish() {
                    to.emit(which, line);
                }
                return;
            }
            Ok(buf) => {
                let (used, line) = cutter.feed(buf);
                reader.consume(used);
                line
            }
        };
        if let Some(line) = line {
            to.emit(which, line);
        }
    }
}

impl Target {
    fn emit(&self, which: LogStream, line: String) {
        let request_id = self.current.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (summary, fate) =
            self.budget.lock().unwrap_or_else(|p| p.into_inner()).admit(request_id.as_deref(), line.len() as u64);
        let at = SystemTime::now();
        let send = |request_id: Option<String>, stream: LogStream, line: String| match &self.sink {
            Some(sink) => sink(LogEvent { request_id, stream, line, at }),
            None => tracing::debug!(target: "hearth::function", instance = %self.label, "{line}"),
        };
        if let Some(s) = summary {
            let message =
                format!("{TRUNCATED} {} lines ({} bytes) of this invocation's output were dropped", s.lines, s.bytes);
            send(s.request_id, LogStream::Platform, message);
        }
        match fate {
            Fate::Keep => send(request_id, which, line),
            Fate::Mark => {
                let message = format!(
                    "{TRUNCATED} this invocation's output passed its limit of {} KiB; the rest is dropped",
                    self.limits.invocation_bytes / 1024
                );
                send(request_id, LogStream::Platform, message);
            }
            Fate::Drop => {}
        }
    }
}

/// Splits a byte stream into lines of at most `max` bytes, holding no more than that.
#[derive(Debug)]
pub(crate) struct LineCutter {
    max: usize,
    line: Vec<u8>,
    /// A cut line's rest is being skipped, up to its newline.
    skipping: bool,
}

impl LineCutter {
    pub(crate) fn new(max: usize) -> Self {
        Self { max: max.max(1), line: Vec::new(), skipping: false }
    }

    /// Takes bytes from the start of `buf`: returns how many it used and the line they
    /// completed, if any. A line reaching the cap is returned cut at once.
    pub(crate) fn feed(&mut self, buf: &[u8]) -> (usize, Option<String>) {
        let newline = buf.iter().position(|&b| b == b'\n');
        let used = newline.map_or(buf.len(), |i| i + 1);
        if self.skipping {
            self.skipping = newline.is_none();
            return (used, None);
        }
        let end = newline.unwrap_or(buf.len());
        let room = self.max - self.line.len();
        if end > room {
            self.line.extend_from_slice(&buf[..room]);
            self.skipping = true;
            return (room, Some(self.take(true)));
        }
        self.line.extend_from_slice(&buf[..end]);
        match newline {
            Some(_) => (used, Some(self.take(false))),
            None => (used, None),
        }
    }

    /// The stream ended: the last line, if it had no newline.
    pub(crate) fn finish(&mut self) -> Option<String> {
        (!self.line.is_empty()).then(|| self.take(false))
    }

    fn take(&mut self, cut: bool) -> String {
        let mut bytes = std::mem::take(&mut self.line);
        if cut {
            // Not half a character: drop an incomplete UTF-8 sequence at the cut.
            if let Err(e) = std::str::from_utf8(&bytes)
                && e.error_len().is_none()
            {
                bytes.truncate(e.valid_up_to());
            }
        } else if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        // Invalid bytes become 3-byte replacement characters: still no longer than the cap.
        let mut cut = cut;
        if text.len() > self.max {
            let mut end = self.max;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            cut = true;
        }
        if cut {
            text.push(' ');
            text.push_str(TRUNCATED);
        }
        text
    }
}

/// What happens to one line under the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Keep,
    /// The first line over the budget: a marker in its place.
    Mark,
    Drop,
}

/// Output an earlier request lost to the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub request_id: Option<String>,
    pub lines: u64,
    pub bytes: u64,
}

/// The bytes each invocation may log; starts over when the attributed request changes.
#[derive(Debug)]
pub(crate) struct InvocationBudget {
    limit: u64,
    request_id: Option<String>,
    used: u64,
    dropped_lines: u64,
    dropped_bytes: u64,
}

impl InvocationBudget {
    pub(crate) fn new(limit: u64) -> Self {
        Self { limit, request_id: None, used: 0, dropped_lines: 0, dropped_bytes: 0 }
    }

    /// Charges a line of `bytes` to `request_id`. When the request changed and the previous
    /// one lost lines, also returns what it lost.
    pub(crate) fn admit(&mut self, request_id: Option<&str>, bytes: u64) -> (Option<Dropped>, Fate) {
        let mut summary = None;
        if self.request_id.as_deref() != request_id {
            if self.dropped_lines > 0 {
                summary = Some(Dropped {
                    request_id: self.request_id.take(),
                    lines: self.dropped_lines,
                    bytes: self.dropped_bytes,
                });
            }
            *self = Self { request_id: request_id.map(str::to_owned), ..Self::new(self.limit) };
        }
        if self.dropped_lines == 0 && self.used + bytes <= self.limit {
            self.used += bytes;
            return (summary, Fate::Keep);
        }
        self.dropped_lines += 1;
        self.dropped_bytes += bytes;
        (summary, if self.dropped_lines == 1 { Fate::Mark } else { Fate::Drop })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` as a stream would deliver them; returns the lines.
    fn lines(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut cutter = LineCutter::new(max);
        let mut out = vec![];
        for chunk in chunks {
            let mut rest = *chunk;
            while !rest.is_empty() {
                let (used, line) = cutter.feed(rest);
                assert!(used > 0 || line.is_some(), "progress");
                assert!(cutter.line.len() <= max, "never holds more than the cap");
                rest = &rest[used..];
                out.extend(line);
            }
        }
        out.extend(cutter.finish());
        out
    }

    #[test]
    fn lines_split_across_reads_and_crlf() {
        assert_eq!(lines(100, &[b"ab", b"c\nde\r\n", b"f"]), ["abc", "de", "f"]);
        assert_eq!(lines(100, &[b"\n\n"]), ["", ""]);
        assert_eq!(lines(3, &[b"abc\n"]), ["abc"], "exactly the cap is whole");
    }

    #[test]
    fn a_long_line_is_cut_at_once_and_its_rest_skipped() {
        let mut cutter = LineCutter::new(4);
        // No newline yet, but the cap is reached: the cut line comes out now.
        let (used, line) = cutter.feed(b"abcdefgh");
        assert_eq!((used, line.as_deref()), (4, Some("abcd [truncated]")));
        assert_eq!(cutter.feed(b"efgh"), (4, None));
        assert_eq!(cutter.feed(b"ij\nok\n"), (3, None), "skipped up to the newline");
        assert_eq!(cutter.feed(b"ok\n"), (3, Some("ok".into())));
        assert_eq!(lines(4, &[b"abcde", b"fgh", b"\nxy"]), ["abcd [truncated]", "xy"]);
    }

    #[test]
    fn a_cut_never_splits_a_character_and_invalid_bytes_stay_within_the_cap() {
        let s = "aé".as_bytes(); // 'é' is two bytes: a cap of 2 falls inside it
        assert_eq!(lines(2, &[s, b"\n"]), ["a [truncated]"]);
        let l = lines(4, &[&[0xff, 0xff, 0xff, 0xff, b'\n']]);
        assert_eq!(l, ["\u{fffd} [truncated]"], "four replacement characters would be 12 bytes");
    }

    #[test]
    fn an_invocation_over_budget_gets_one_marker_then_a_summary() {
        let mut b = InvocationBudget::new(10);
        assert_eq!(b.admit(Some("a"), 6), (None, Fate::Keep));
        assert_eq!(b.admit(Some("a"), 4), (None, Fate::Keep));
        assert_eq!(b.admit(Some("a"), 1), (None, Fate::Mark));
        assert_eq!(b.admit(Some("a"), 0), (None, Fate::Drop), "nothing after the marker, not even short lines");
        assert_eq!(b.admit(Some("a"), 5), (None, Fate::Drop));
        let (summary, fate) = b.admit(Some("b"), 10);
        assert_eq!(summary, Some(Dropped { request_id: Some("a".into()), lines: 3, bytes: 6 }));
        assert_eq!(fate, Fate::Keep, "a new request starts over");
        assert_eq!(b.admit(None, 3), (None, Fate::Keep), "no summary when nothing was dropped");
        assert_eq!(b.admit(None, 11), (None, Fate::Mark));
    }
}
