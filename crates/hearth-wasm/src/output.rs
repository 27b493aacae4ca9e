//! Where a program's stdout and stderr go: both bounded, neither ever failing a write (a
//! program that prints too much loses what is past the bound, it is not killed for it).
//! Stdout of an event function is its result; stderr (and an HTTP component's stdout) is
//! its log, one line at a time.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A line longer than this is cut and marked, as for process instances.
pub const MAX_LINE_BYTES: usize = 256 * 1024;
/// What one run may log before the rest is dropped.
pub const MAX_LOG_BYTES_PER_RUN: usize = 4 * 1024 * 1024;
/// The marker of cut lines and dropped output.
pub const TRUNCATED: &str = "[truncated]";

/// The most one write may carry (a larger one is split by wasmtime's writers). Never zero:
/// these streams are always ready.
const WRITE_PERMIT: usize = 1024 * 1024;

/// Where log lines go (the function's log, attributed by the caller).
pub type LineSink = Arc<dyn Fn(String) + Send + Sync>;

/// Stdout kept in memory up to a bound; past it, bytes are counted and dropped.
#[derive(Clone)]
pub(crate) struct CappedOutput {
    inner: Arc<Mutex<(Vec<u8>, bool)>>,
    cap: usize,
}

impl CappedOutput {
    pub(crate) fn new(cap: usize) -> Self {
        Self { inner: Arc::default(), cap }
    }

    /// What was written, and whether more was written than the bound.
    pub(crate) fn take(&self) -> (Bytes, bool) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (Bytes::from(std::mem::take(&mut inner.0)), inner.1)
    }

    fn append(&self, buf: &[u8]) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let room = self.cap.saturating_sub(inner.0.len());
        if buf.len() > room {
            inner.1 = true;
        }
        inner.0.extend_from_slice(&buf[..buf.len().min(room)]);
    }
}

struct Lines {
    sink: LineSink,
    partial: Vec<u8>,
    /// The current line was cut: skip to its newline.
    skipping: bool,
    logged: usize,
    /// The per-run bound was reached and marked.
    closed: bool,
}

impl Lines {
    fn emit(&mut self, line: &[u8], cut: bool) {
        if self.closed {
            return;
        }
        // A line costs its newline too: empty lines are not free.
        if self.logged + line.len() + 1 > MAX_LOG_BYTES_PER_RUN {
            self.closed = true;
            (self.sink)(TRUNCATED.to_owned());
            return;
        }
        self.logged += line.len() + 1;
        let mut text = String::from_utf8_lossy(line).into_owned();
        if cut {
            text.push(' ');
            text.push_str(TRUNCATED);
        }
        (self.sink)(text);
    }

    fn write(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            let newline = buf.iter().position(|&b| b == b'\n');
            let (chunk, rest) = match newline {
                Some(i) => (&buf[..i], &buf[i + 1..]),
                None => (buf, &[][..]),
            };
            if !self.skipping {
                let room = MAX_LINE_BYTES - self.partial.len();
                self.partial.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() > room {
                    let line = std::mem::take(&mut self.partial);
                    self.emit(&line, true);
                    self.skipping = true;
                } else if newline.is_some() {
                    let line = std::mem::take(&mut self.partial);
                    self.emit(&line, false);
                }
            }
            if newline.is_some() {
                self.skipping = false;
            }
            buf = rest;
        }
    }
}

/// Output cut into log lines as it is written; the last unterminated line is sent when the
/// run ends ([`LogLines::finish`]).
#[derive(Clone)]
pub(crate) struct LogLines(Arc<Mutex<Lines>>);

impl LogLines {
    fn append(&self, buf: &[u8]) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).write(buf);
    }

    pub(crate) fn new(sink: LineSink) -> Self {
        Self(Arc::new(Mutex::new(Lines { sink, partial: vec![], skipping: false, logged: 0, closed: false })))
    }

    pub(crate) fn finish(&self) {
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !lines.partial.is_empty() {
            let line = std::mem::take(&mut lines.partial);
            lines.emit(&line, false);
        }
    }
}

/// A WASI output stream that writes in place with `append` (never failing, always ready):
/// wasmtime's default adapter of an `AsyncWrite` gives each stream a writer task of its
/// own (a spawn per stream per run, a hand-off per write).
macro_rules! written_in_place {
    ($t:ty) => {
        impl AsyncWrite for $t {
            fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
                self.append(buf);
                Poll::Ready(Ok(buf.len()))
            }

            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
                Poll::Ready(Ok(()))
            }
        }

        impl IsTerminal for $t {
            fn is_terminal(&self) -> bool {
                false
            }
        }

        impl StdoutStream for $t {
            fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
                Box::new(self.clone())
            }

            fn p2_stream(&self) -> Box<dyn OutputStream> {
                Box::new(self.clone())
            }
        }

        impl OutputStream for $t {
            fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
                self.append(&bytes);
                Ok(())
            }

            fn flush(&mut self) -> StreamResult<()> {
                Ok(())
            }

            fn check_write(&mut self) -> StreamResult<usize> {
                Ok(WRITE_PERMIT)
            }
        }

        #[async_trait::async_trait]
        impl Pollable for $t {
            async fn ready(&mut self) {}
        }
    };
}

written_in_place!(CappedOutput);
written_in_place!(LogLines);

#[cfg(test)]
mod tests {
    use super::*;

    fn collect() -> (LogLines, Arc<Mutex<Vec<String>>>) {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let s = seen.clone();
        (LogLines::new(Arc::new(move |l| s.lock().unwrap().push(l))), seen)
    }

    #[test]
    fn lines_are_split_across_writes_and_the_last_one_is_flushed() {
        let (lines, seen) = collect();
        lines.0.lock().unwrap().write(b"one\ntw");
        lines.0.lock().unwrap().write(b"o\nthree");
        assert_eq!(*seen.lock().unwrap(), ["one", "two"]);
        lines.finish();
        assert_eq!(*seen.lock().unwrap(), ["one", "two", "three"]);
    }

    #[test]
    fn a_long_line_is_cut_once_and_the_rest_skipped() {
        let (lines, seen) = collect();
        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        lines.0.lock().unwrap().write(&long);
        lines.0.lock().unwrap().write(b"yyy\nnext\n");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen[0].ends_with(" [truncated]") && seen[0].len() == MAX_LINE_BYTES + 12);
        assert_eq!(seen[1], "next");
    }

    #[test]
    fn a_run_logs_at_most_its_bound_then_one_marker() {
        let (lines, seen) = collect();
        let line = [vec![b'z'; 1023], vec![b'\n']].concat();
        for _ in 0..(MAX_LOG_BYTES_PER_RUN / 1023 + 100) {
            lines.0.lock().unwrap().write(&line);
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.last().unwrap(), TRUNCATED);
        assert_eq!(seen.iter().filter(|l| *l == TRUNCATED).count(), 1);
        assert!(seen.len() <= MAX_LOG_BYTES_PER_RUN / 1023 + 1);
    }

    #[test]
    fn empty_lines_count_against_the_bound() {
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let last: Arc<Mutex<String>> = Arc::default();
        let (c, l) = (count.clone(), last.clone());
        let lines = LogLines::new(Arc::new(move |line| {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *l.lock().unwrap() = line;
        }));
        lines.0.lock().unwrap().write(&vec![b'\n'; MAX_LOG_BYTES_PER_RUN + 10]);
        assert_eq!(count.load(std::sync::atomic::Ordering::Relaxed), MAX_LOG_BYTES_PER_RUN + 1);
        assert_eq!(*last.lock().unwrap(), TRUNCATED);
    }

    #[test]
    fn stdout_keeps_its_bound_and_says_it_overflowed() {
        let mut out = CappedOutput::new(4);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(matches!(Pin::new(&mut out).poll_write(&mut cx, b"abcdef"), Poll::Ready(Ok(6))));
        assert_eq!(out.take(), (Bytes::from_static(b"abcd"), true));
    }

    #[test]
    fn the_streams_wasmtime_writes_keep_the_same_bounds() {
        let mut out = CappedOutput::new(4);
        let stream: &mut dyn OutputStream = &mut out;
        assert!(stream.check_write().unwrap() > 0);
        stream.write(Bytes::from_static(b"abc")).unwrap();
        stream.write(Bytes::from_static(b"def")).unwrap();
        assert_eq!(out.take(), (Bytes::from_static(b"abcd"), true));
        let (mut lines, seen) = collect();
        let stream: &mut dyn OutputStream = &mut lines;
        stream.write(Bytes::from_static(b"one\ntw")).unwrap();
        stream.write(Bytes::from_static(b"o\n")).unwrap();
        assert_eq!(*seen.lock().unwrap(), ["one", "two"]);
    }
}
