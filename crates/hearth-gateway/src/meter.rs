//! Metering and logs off the request path: invocation records and log lines go through
//! bounded channels to one writer task that stores them in batches, and old ones are pruned.
//!
//! Records have a channel of their own, larger and served first, so a flood of log lines
//! cannot push them out. Log lines wait in a queue bounded in lines and bytes; when it is
//! full they are dropped and counted per function, and once the writer has caught up it
//! stores one line per function saying how many it lost.
//!
//! After each batch of log lines is stored, the writer bumps a watch ([`Meter::log_batches`]),
//! so followers of a log (`log_follow.rs`) wait for new lines instead of polling the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use hearth_store::{MetadataStore, StoreError};
use hearth_types::{FunctionName, InvocationRecord, LogLine, LogStream};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::platform_lines::{Entry, HeldStarts};

enum Msg {
    Record(Box<InvocationRecord>),
    Flush(oneshot::Sender<()>),
}

/// Cheap to clone; every clone feeds the same writer.
#[derive(Clone)]
pub struct Meter {
    store: Arc<dyn MetadataStore>,
    records: mpsc::Sender<Msg>,
    logs: mpsc::Sender<Entry>,
    counts: Arc<Counts>,
    /// How many batches of log lines the writer has stored.
    log_batches: Arc<watch::Sender<u64>>,
    /// Places for followers of a log ([`crate::LOG_FOLLOWERS_MAX`]).
    followers: Arc<Semaphore>,
    /// Told of every flush, so the writer stops waiting for its batch to fill.
    flushing: Arc<Notify>,
}

/// What the senders and the writer share.
#[derive(Default)]
struct Counts {
    /// Bytes of log messages sent and not yet stored.
    queued_bytes: AtomicU64,
    /// Log lines dropped since the writer last reported them, in total and per function.
    dropped: AtomicU64,
    dropped_by_function: Mutex<HashMap<FunctionName, u64>>,
    /// Invocation records lost because their queue was full.
    records_lost: AtomicU64,
}

/// Written when this many items wait.
const BATCH: usize = 512;
/// How long the writer waits for a batch to fill before writing what it has.
const LINGER: Duration = Duration::from_millis(10);
/// Log lines waiting to be stored, at most, and the bytes they may hold (the batch being
/// stored included): with lines of up to 256 KiB, the bytes bound the memory. Each line is
/// charged its message and [`LINE_OVERHEAD`] (its record, names and ids).
const LOG_QUEUE: usize = 16_384;
const LOG_QUEUE_BYTES: u64 = 32 * 1024 * 1024;
const LINE_OVERHEAD: u64 = 256;
/// Invocation records waiting, at most (a few hundred bytes each).
const RECORD_QUEUE: usize = 16_384;

impl Meter {
    /// Starts the writer; telemetry older than `retention` is pruned at start and then every
    /// `prune_every`.
    pub(crate) fn start(
        store: Arc<dyn MetadataStore>,
        retention: Duration,
        prune_every: Duration,
        metrics: Arc<crate::Metrics>,
    ) -> Self {
        let (records, records_rx) = mpsc::channel(RECORD_QUEUE);
        let (logs, logs_rx) = mpsc::channel(LOG_QUEUE);
        let counts = Arc::new(Counts::default());
        let log_batches = Arc::new(watch::Sender::new(0));
        let followers = Arc::new(Semaphore::new(crate::LOG_FOLLOWERS_MAX));
        let flushing = Arc::new(Notify::new());
        let writer_state = (counts.clone(), log_batches.clone(), flushing.clone());
        tokio::spawn(writer(store.clone(), records_rx, logs_rx, writer_state, retention, prune_every, metrics));
        Self { store, records, logs, counts, log_batches, followers, flushing }
    }

    /// Queues a record; if its queue is full (the store far behind), says so and counts it.
    pub(crate) fn record(&self, record: InvocationRecord) {
        if let Err(TrySendError::Full(_)) = self.records.try_send(Msg::Record(Box::new(record))) {
            let lost = self.counts.records_lost.fetch_add(1, Ordering::Relaxed) + 1;
            if lost.is_power_of_two() {
                tracing::warn!(lost, "invocation records lost: the metering queue is full");
            }
        }
    }

    /// Queues a log line, or drops and counts it when the queue is full.
    pub(crate) fn log(&self, line: LogLine) {
        self.send(Entry::Line(line));
    }

    /// Queues an invocation's `START`, which the writer may store with its `END`
    /// (`platform_lines.rs`).
    pub(crate) fn log_start(&self, line: LogLine) {
        self.send(Entry::Start(line));
    }

    /// Queues an invocation's `END` and `REPORT`, one entry of two lines.
    pub(crate) fn log_end_and_report(&self, line: LogLine) {
        self.send(Entry::End(line));
    }

    fn send(&self, entry: Entry) {
        let bytes = charge(entry.line());
        let before = self.counts.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        if before + bytes > LOG_QUEUE_BYTES {
            self.counts.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return self.counts.drop_line(&entry.line().function);
        }
        if let Err(e) = self.logs.try_send(entry) {
            self.counts.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            if let TrySendError::Full(entry) = e {
                self.counts.drop_line(&entry.line().function);
            }
        }
    }

    /// Waits until everything sent before this call is stored.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.records.send(Msg::Flush(tx)).await.is_ok() {
            self.flushing.notify_one();
            let _ = rx.await;
        }
    }

    /// A function's log lines after `after`, everything queued so far included.
    pub async fn logs(
        &self,
        name: &FunctionName,
        after: i64,
        request_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogLine>, StoreError> {
        self.flush().await;
        self.store.read_logs(name, after, request_id, limit).await
    }

    /// The end of the log (see [`MetadataStore::log_end`]) once everything sent before this
    /// call is stored: reading after it gives only lines sent later.
    pub async fn log_end(&self) -> Result<i64, StoreError> {
        self.flush().await;
        self.store.log_end().await
    }

    /// A function's log lines after `after` that are stored already (no flush: for followers,
    /// woken once lines are stored).
    pub(crate) async fn stored_logs(
        &self,
        name: &FunctionName,
        after: i64,
        request_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogLine>, StoreError> {
        self.store.read_logs(name, after, request_id, limit).await
    }

    /// The end of the log as stored now (no flush: for followers).
    pub(crate) async fn stored_log_end(&self) -> Result<i64, StoreError> {
        self.store.log_end().await
    }

    /// A function's last `limit` stored lines at or before `at_most`, oldest first.
    pub(crate) async fn stored_log_tail(
        &self,
        name: &FunctionName,
        at_most: i64,
        request_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogLine>, StoreError> {
        self.store.read_log_tail(name, at_most, request_id, limit).await
    }

    /// Changes after each batch of log lines the writer stores.
    pub(crate) fn log_batches(&self) -> watch::Receiver<u64> {
        self.log_batches.subscribe()
    }

    /// A place for one more follower of a log, if there is one.
    pub(crate) fn follower_place(&self) -> Option<OwnedSemaphorePermit> {
        self.followers.clone().try_acquire_owned().ok()
    }

    /// A function's newest invocation records, everything queued so far included.
    pub async fn invocations(&self, name: &FunctionName, limit: usize) -> Result<Vec<InvocationRecord>, StoreError> {
        self.flush().await;
        self.store.list_invocations(name, limit).await
    }
}

/// What a queued line counts against [`LOG_QUEUE_BYTES`].
fn charge(line: &LogLine) -> u64 {
    line.message.len() as u64 + LINE_OVERHEAD
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Counts {
    fn drop_line(&self, function: &FunctionName) {
        *self.dropped_by_function.lock().unwrap_or_else(|p| p.into_inner()).entry(function.clone()).or_default() += 1;
        self.dropped.fetch_add(1, Ordering::AcqRel);
    }

    /// One platform line per function that lost lines since the last report.
    fn take_drop_report(&self) -> Vec<LogLine> {
        if self.dropped.swap(0, Ordering::AcqRel) == 0 {
            return vec![];
        }
        let by_function = std::mem::take(&mut *self.dropped_by_function.lock().unwrap_or_else(|p| p.into_inner()));
        let total: u64 = by_function.values().sum();
        tracing::warn!(lines = total, functions = by_function.len(), "log lines dropped: the log writer was behind");
        by_function
            .into_iter()
            .map(|(function, n)| LogLine {
                seq: 0,
                function,
                request_id: None,
                at: Utc::now(),
                stream: LogStream::Platform,
                message: format!("{} {n} lines dropped: the log writer was behind", hearth_agent::TRUNCATED),
            })
            .collect()
    }
}

/// What the writer stores next, and the flushes answered once it is stored.
#[derive(Default)]
struct Batch {
    records: Vec<InvocationRecord>,
    logs: Vec<LogLine>,
    /// The bytes the log queue charged for `logs`, released once they are stored.
    charged: u64,
    /// `START`s waiting for their `END` (kept from batch to batch).
    held: HeldStarts,
    waiting: Vec<oneshot::Sender<()>>,
}

impl Batch {
    fn len(&self) -> usize {
        self.records.len() + self.logs.len()
    }

    /// Stores the batch, records and lines in one transaction (one commit); returns whether
    /// it stored log lines.
    async fn store(&mut self, store: &dyn MetadataStore, metrics: &crate::Metrics) -> bool {
        if self.records.is_empty() && self.logs.is_empty() {
            return false;
        }
        let started = std::time::Instant::now();
        let stored = store.append_telemetry(&self.records, &self.logs).await;
        metrics.operation("hearth_store_operation_seconds", "append_telemetry", started.elapsed());
        let stored_lines = match stored {
            Ok(()) => !self.logs.is_empty(),
            Err(e) => {
                tracing::warn!(%e, records = self.records.len(), lines = self.logs.len(), "storing telemetry failed");
                false
            }
        };
        self.records.clear();
        self.logs.clear();
        stored_lines
    }

    /// Everything sent before a flush is stored before it is answered: the flush comes after
    /// its records on their channel, and the log lines waiting when it arrives are taken too,
    /// with every `START` held.
    fn take(&mut self, msg: Msg, logs_rx: &mut mpsc::Receiver<Entry>) {
        match msg {
            Msg::Record(r) => self.records.push(*r),
            Msg::Flush(done) => {
                self.waiting.push(done);
                while let Ok(entry) = logs_rx.try_recv() {
                    self.admit(entry);
                }
                self.charged += self.held.release_all(&mut self.logs);
            }
        }
    }

    fn admit(&mut self, entry: Entry) {
        let bytes = charge(entry.line());
        self.charged += self.held.admit(entry, bytes, Instant::now(), &mut self.logs);
    }
}

async fn writer(
    store: Arc<dyn MetadataStore>,
    mut records_rx: mpsc::Receiver<Msg>,
    mut logs_rx: mpsc::Receiver<Entry>,
    (counts, log_batches, flushing): (Arc<Counts>, Arc<watch::Sender<u64>>, Arc<Notify>),
    retention: Duration,
    prune_every: Duration,
    metrics: Arc<crate::Metrics>,
) {
    let mut batch = Batch::default();
    let mut prune = tokio::time::interval(prune_every);
    loop {
        let closed = tokio::select! {
            biased;
            msg = records_rx.recv() => match msg {
                Some(m) => { batch.take(m, &mut logs_rx); false }
                None => true,
            },
            entry = logs_rx.recv() => match entry {
                Some(e) => { batch.admit(e); false }
                None => true,
            },
            // A `START` held long enough is stored below.
            _ = sleep_until(batch.held.next_due()) => false,
            _ = prune.tick() => {
                let before = Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(7));
                if let Err(e) = store.prune_telemetry(before).await {
                    tracing::warn!(%e, "pruning old logs failed");
                }
                continue;
            }
        };
        // Unless someone waits for a flush, a moment for more to come: one commit for many
        // invocations (a commit writes whole pages, whatever it adds to them). Asleep, not
        // woken by each item; a flush ends the wait, and so does a queue half full of bytes
        // (long lines) at its start.
        let queued = records_rx.len() + logs_rx.len() + batch.len();
        let bytes = counts.queued_bytes.load(Ordering::Acquire);
        if !closed && batch.waiting.is_empty() && queued < BATCH && bytes < LOG_QUEUE_BYTES / 2 {
            tokio::select! {
                _ = tokio::time::sleep(LINGER) => {}
                _ = flushing.notified() => {}
            }
        }
        // Whatever waits, up to a batch (all of it once closed); records first.
        while batch.len() < BATCH || closed {
            match records_rx.try_recv() {
                Ok(m) => batch.take(m, &mut logs_rx),
                Err(_) => match logs_rx.try_recv() {
                    Ok(e) => batch.admit(e),
                    Err(_) => break,
                },
            }
        }
        if closed {
            batch.charged += batch.held.release_all(&mut batch.logs);
        } else {
            batch.charged += batch.held.release_due(Instant::now(), &mut batch.logs);
        }
        let mut stored_lines = batch.store(store.as_ref(), &metrics).await;
        counts.queued_bytes.fetch_sub(std::mem::take(&mut batch.charged), Ordering::AcqRel);
        // Caught up: say what was dropped while behind.
        if records_rx.is_empty() && logs_rx.is_empty() {
            batch.logs = counts.take_drop_report();
            stored_lines |= batch.store(store.as_ref(), &metrics).await;
        }
        // Before the flushes are answered, so a reader that flushed sees the lines it waited for.
        if stored_lines {
            log_batches.send_modify(|n| *n += 1);
        }
        for done in batch.waiting.drain(..) {
            let _ = done.send(());
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use hearth_store::MemoryStore;
    use hearth_types::FunctionId;

    use super::*;

    fn test_metrics() -> Arc<crate::Metrics> {
        Arc::new(crate::Metrics::new(10, Duration::from_secs(600)))
    }

    fn line(function: &FunctionName, message: String) -> LogLine {
        LogLine {
            seq: 0,
            function: function.clone(),
            request_id: None,
            at: Utc::now(),
            stream: LogStream::Stdout,
            message,
        }
    }

    fn record(function: &FunctionName, id: &str) -> InvocationRecord {
        InvocationRecord {
            request_id: id.into(),
            attempt: 1,
            qualifier: None,
            function_id: FunctionId::new(),
            function: function.clone(),
            version: 1,
            started_at: Utc::now(),
            duration_ms: 1.0,
            billed_ms: 1,
            memory_mb: 128,
            max_memory_used_mb: None,
            cold_start: false,
            init_duration_ms: None,
            start_source: None,
            cpu_time_ms: None,
            outcome: "success".into(),
            error_type: None,
        }
    }

    // One thread: the writer does not run until the test awaits, so the queue fills.
    #[tokio::test]
    async fn a_full_queue_drops_lines_says_so_and_keeps_records() {
        let store = Arc::new(MemoryStore::new());
        let meter = Meter::start(store.clone(), Duration::from_secs(3600), Duration::from_secs(600), test_metrics());
        let (f, g): (FunctionName, FunctionName) = ("f".parse().unwrap(), "g".parse().unwrap());
        for i in 0..LOG_QUEUE + 10 {
            meter.log(line(if i < LOG_QUEUE { &f } else { &g }, format!("line {i}")));
        }
        meter.log(line(&f, "one more".into()));
        meter.record(record(&f, "kept"));
        meter.flush().await;

        let logs = store.read_logs(&f, 0, None, usize::MAX).await.unwrap();
        assert_eq!(logs.len(), LOG_QUEUE + 1);
        assert_eq!(logs.last().unwrap().message, "[truncated] 1 lines dropped: the log writer was behind");
        assert_eq!(logs.last().unwrap().stream, LogStream::Platform);
        let logs = store.read_logs(&g, 0, None, usize::MAX).await.unwrap();
        let messages: Vec<&str> = logs.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["[truncated] 10 lines dropped: the log writer was behind"]);
        assert_eq!(store.list_invocations(&f, 10).await.unwrap().len(), 1, "records are not pushed out");
        assert_eq!(meter.counts.queued_bytes.load(Ordering::Acquire), 0);

        // Caught up: nothing more to report, and lines flow again.
        meter.log(line(&g, "again".into()));
        meter.flush().await;
        let logs = store.read_logs(&g, 0, None, usize::MAX).await.unwrap();
        assert_eq!(logs.last().unwrap().message, "again");
        assert_eq!(logs.len(), 2);
    }

    #[tokio::test]
    async fn each_stored_batch_of_lines_is_announced() {
        let store = Arc::new(MemoryStore::new());
        let meter = Meter::start(store.clone(), Duration::from_secs(3600), Duration::from_secs(600), test_metrics());
        let f: FunctionName = "f".parse().unwrap();
        let mut batches = meter.log_batches();
        meter.record(record(&f, "only-a-record"));
        meter.flush().await;
        assert!(!batches.has_changed().unwrap(), "records alone wake no follower");
        meter.log(line(&f, "one".into()));
        tokio::time::timeout(Duration::from_secs(10), batches.changed()).await.unwrap().unwrap();
        let lines = meter.stored_logs(&f, 0, None, 10).await.unwrap();
        assert_eq!(lines.len(), 1, "stored before it is announced");
        assert_eq!(meter.log_end().await.unwrap(), lines[0].seq);
        assert!(meter.stored_logs(&f, lines[0].seq, None, 10).await.unwrap().is_empty());
    }

    fn platform(function: &FunctionName, request: &str, message: &str) -> LogLine {
        LogLine { request_id: Some(request.into()), stream: LogStream::Platform, ..line(function, message.into()) }
    }

    #[tokio::test]
    async fn an_invocation_that_logs_nothing_is_one_entry_and_a_lone_start_is_stored() {
        let store = Arc::new(MemoryStore::new());
        let meter = Meter::start(store.clone(), Duration::from_secs(3600), Duration::from_secs(600), test_metrics());
        let f: FunctionName = "f".parse().unwrap();
        meter.log_start(platform(&f, "quiet", "START RequestId: quiet"));
        meter.log_end_and_report(platform(&f, "quiet", "END RequestId: quiet\nREPORT RequestId: quiet"));
        meter.log_start(platform(&f, "chatty", "START RequestId: chatty"));
        meter.log(LogLine { request_id: Some("chatty".into()), ..line(&f, "hello".into()) });
        meter.log_end_and_report(platform(&f, "chatty", "END RequestId: chatty\nREPORT RequestId: chatty"));
        meter.flush().await;
        let lines = meter.stored_logs(&f, 0, None, 100).await.unwrap();
        let messages: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
        let expected = [
            "START RequestId: quiet",
            "END RequestId: quiet",
            "REPORT RequestId: quiet",
            "START RequestId: chatty",
            "hello",
            "END RequestId: chatty",
            "REPORT RequestId: chatty",
        ];
        assert_eq!(messages, expected);
        assert_eq!(store.log_end().await.unwrap(), 4, "four entries: the quiet invocation's is one");
        assert_eq!(meter.counts.queued_bytes.load(Ordering::Acquire), 0, "every byte charged is released");

        // A START whose END does not come is stored on its own once held long enough, with
        // no flush and nothing else sent.
        let mut batches = meter.log_batches();
        batches.mark_unchanged();
        meter.log_start(platform(&f, "slow", "START RequestId: slow"));
        let wait = crate::platform_lines::HOLD + Duration::from_secs(10);
        tokio::time::timeout(wait, batches.changed()).await.expect("the held START was never stored").unwrap();
        let lines = meter.stored_logs(&f, 4, None, 10).await.unwrap();
        assert_eq!(lines.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["START RequestId: slow"]);
        assert_eq!(meter.counts.queued_bytes.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn the_queue_is_bounded_in_bytes() {
        let store = Arc::new(MemoryStore::new());
        let meter = Meter::start(store.clone(), Duration::from_secs(3600), Duration::from_secs(600), test_metrics());
        let f: FunctionName = "f".parse().unwrap();
        let long = "x".repeat(256 * 1024);
        for _ in 0..1_000 {
            meter.log(line(&f, long.clone()));
        }
        meter.flush().await;
        let logs = store.read_logs(&f, 0, None, usize::MAX).await.unwrap();
        let fit = (LOG_QUEUE_BYTES / (256 * 1024 + LINE_OVERHEAD)) as usize;
        assert_eq!(logs.len(), fit + 1, "{fit} lines of 256 KiB, then the report");
        assert_eq!(logs[fit].message, format!("[truncated] {} lines dropped: the log writer was behind", 1_000 - fit));
    }
}
