//! Metering and logs off the request path: invocation records and log lines go through a
//! channel to one writer task that stores them in batches, and old ones are pruned.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hearth_store::MetadataStore;
use hearth_types::{InvocationRecord, LogLine};
use tokio::sync::{mpsc, oneshot};

enum Msg {
    Record(InvocationRecord),
    Log(LogLine),
    Flush(oneshot::Sender<()>),
}

/// Cheap to clone; every clone feeds the same writer.
#[derive(Clone)]
pub struct Meter {
    tx: mpsc::UnboundedSender<Msg>,
}

/// Written when this many items wait, or every `FLUSH_EVERY`.
const BATCH: usize = 512;
const FLUSH_EVERY: Duration = Duration::from_millis(200);
const PRUNE_EVERY: Duration = Duration::from_secs(600);

impl Meter {
    /// Starts the writer; telemetry older than `retention` is pruned every 10 minutes.
    pub fn start(store: Arc<dyn MetadataStore>, retention: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(store, rx, retention));
        Self { tx }
    }

    pub fn record(&self, record: InvocationRecord) {
        let _ = self.tx.send(Msg::Record(record));
    }

    pub fn log(&self, line: LogLine) {
        let _ = self.tx.send(Msg::Log(line));
    }

    /// Waits until everything sent before this call is stored.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

async fn writer(store: Arc<dyn MetadataStore>, mut rx: mpsc::UnboundedReceiver<Msg>, retention: Duration) {
    let mut records = Vec::new();
    let mut logs = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        let closed = tokio::select! {
            msg = rx.recv() => match msg {
                Some(Msg::Record(r)) => { records.push(r); false }
                Some(Msg::Log(l)) => { logs.push(l); false }
                Some(Msg::Flush(done)) => { waiting.push(done); false }
                None => true,
            },
            _ = tick.tick() => false,
            _ = prune.tick() => {
                let before = Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(7));
                if let Err(e) = store.prune_telemetry(before).await {
                    tracing::warn!(%e, "pruning old logs failed");
                }
                false
            }
        };
        let due = closed || !waiting.is_empty() || records.len() + logs.len() >= BATCH || rx.is_empty();
        if due && !(records.is_empty() && logs.is_empty()) {
            if let Err(e) = store.append_invocations(&records).await {
                tracing::warn!(%e, lost = records.len(), "storing invocation records failed");
            }
            if let Err(e) = store.append_logs(&logs).await {
                tracing::warn!(%e, lost = logs.len(), "storing log lines failed");
            }
            records.clear();
            logs.clear();
        }
        if rx.is_empty() {
            for done in waiting.drain(..) {
                let _ = done.send(());
            }
        }
        if closed {
            return;
        }
    }
}
