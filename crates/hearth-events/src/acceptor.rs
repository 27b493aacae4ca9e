//! Durable acceptance with group commit: events accepted at the same time share one synced
//! commit, so acceptance throughput is not one disk flush per event.

use std::sync::Arc;

use hearth_store::{Enqueued, EventQueue, NewEvent, StoreError};
use tokio::sync::{Notify, mpsc, oneshot};

struct Pending {
    event: NewEvent,
    reply: oneshot::Sender<Result<Enqueued, StoreError>>,
}

/// Cheap to clone; every clone feeds the same writer task.
#[derive(Clone)]
pub struct Acceptor {
    tx: mpsc::Sender<Pending>,
}

impl Acceptor {
    /// Starts the writer task. `wake` is told after every commit that accepted something.
    pub fn start(queue: Arc<dyn EventQueue>, batch: usize, wake: Arc<Notify>) -> Self {
        let (tx, rx) = mpsc::channel(batch.max(1) * 4);
        tokio::spawn(write(queue, rx, batch.max(1), wake));
        Self { tx }
    }

    /// Stores `event` durably; returns once the commit holding it is on disk.
    pub async fn accept(&self, event: NewEvent) -> Result<Enqueued, StoreError> {
        self.submit(event).await?.await
    }

    /// Hands `event` to the writer (waiting for room) and returns the wait for its commit:
    /// events submitted one after the other are stored in that order.
    pub async fn submit(
        &self,
        event: NewEvent,
    ) -> Result<impl std::future::Future<Output = Result<Enqueued, StoreError>> + use<>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Backend("the event writer stopped".into());
        self.tx.send(Pending { event, reply }).await.map_err(|_| gone())?;
        Ok(async move { answer.await.map_err(|_| gone())? })
    }
}

async fn write(queue: Arc<dyn EventQueue>, mut rx: mpsc::Receiver<Pending>, batch: usize, wake: Arc<Notify>) {
    let mut pending = Vec::with_capacity(batch);
    while rx.recv_many(&mut pending, batch).await > 0 {
        let events: Vec<NewEvent> = pending.iter().map(|p| p.event.clone()).collect();
        match queue.enqueue(&events).await {
            Ok(results) => {
                if results.contains(&Enqueued::Accepted) {
                    wake.notify_one();
                }
                for (p, r) in pending.drain(..).zip(results) {
                    let _ = p.reply.send(Ok(r));
                }
            }
            Err(e) => {
                tracing::error!(%e, events = events.len(), "could not store asynchronous invocations");
                for p in pending.drain(..) {
                    let _ = p.reply.send(Err(StoreError::Backend(e.to_string())));
                }
            }
        }
    }
}
