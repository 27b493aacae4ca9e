//! Work a caller starts and must not abandon (an invocation that has an instance): polled in
//! the caller's own task, so the hot path hands nothing to another task or thread (a spawn
//! wakes an idle worker thread for every request), and finished by a task of its own only if
//! the caller goes away first.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

type Work<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// `future`, run to completion whatever happens to whoever awaits it. Its output, or the
/// message of its panic (the caller's task goes on).
/// Made inside a Tokio runtime, which finishes an abandoned one.
pub(crate) struct Completion<T: Send + 'static> {
    work: Option<Work<T>>,
    runtime: tokio::runtime::Handle,
}

impl<T: Send + 'static> Completion<T> {
    pub(crate) fn new(future: impl Future<Output = T> + Send + 'static) -> Self {
        Self { work: Some(Box::pin(future)), runtime: tokio::runtime::Handle::current() }
    }
}

impl<T: Send + 'static> Future for Completion<T> {
    type Output = Result<T, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(work) = this.work.as_mut() else {
            return Poll::Ready(Err("polled after it completed".into()));
        };
        let polled = catch_unwind(AssertUnwindSafe(|| work.as_mut().poll(cx)));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => {
                this.work = None;
                Poll::Ready(Ok(output))
            }
            Err(panic) => {
                // Its drop may panic too: that stays here, not in the caller's task.
                let _ = catch_unwind(AssertUnwindSafe(|| this.work = None));
                Poll::Ready(Err(panic_message(panic.as_ref())))
            }
        }
    }
}

impl<T: Send + 'static> Drop for Completion<T> {
    fn drop(&mut self) {
        if let Some(work) = self.work.take() {
            // The caller went away mid-way: the rest runs on its own, its output unread.
            self.runtime.spawn(work);
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => format!("the invocation panicked: {s}"),
        (_, Some(s)) => format!("the invocation panicked: {s}"),
        _ => "the invocation panicked".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    // Several worker threads: a spawned task could run on another one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_in_the_callers_task() {
        let caller = std::thread::current().id();
        let ran_on = Completion::new(async { std::thread::current().id() }).await.unwrap();
        assert_eq!(ran_on, caller, "no hand-off to another thread");
    }

    #[tokio::test]
    async fn finishes_when_the_caller_goes_away() {
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let (finished, done) = tokio::sync::oneshot::channel::<()>();
        let mut work = Completion::new(async move {
            let _ = wait.await;
            let _ = finished.send(());
        });
        // The caller polls once (the work waits), then gives up.
        std::future::poll_fn(|cx| {
            assert!(Pin::new(&mut work).poll(cx).is_pending(), "the work waits for `go`");
            Poll::Ready(())
        })
        .await;
        drop(work);
        go.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), done)
            .await
            .expect("the abandoned work finished on its own")
            .expect("it ran to its end, not dropped");
    }

    #[tokio::test]
    async fn a_panic_is_an_error_not_the_callers_end() {
        let failed = Completion::new(async { panic!("boom") }).await;
        assert_eq!(failed.unwrap_err(), "the invocation panicked: boom");
    }
}
