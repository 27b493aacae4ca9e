//! CPU time a run spends, for billing: the time every poll of the run's future takes,
//! summed. A run executes only inside those polls (it yields at every engine tick), so this
//! is its own CPU, not the thread's or the server's. The polls are timed on the monotonic
//! clock (read in user space): a thread's own CPU clock is a system call on each side of
//! every poll, which cost more than a small run itself. A poll preempted by the kernel
//! counts its preemption; with one worker thread per core that is rare.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Where a run's CPU time is added up (cheap to clone; clones share the sum).
#[derive(Clone, Debug, Default)]
pub struct CpuMeter(Arc<AtomicU64>);

impl CpuMeter {
    /// The CPU time measured so far.
    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }

    fn add(&self, d: Duration) {
        self.0.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// `future`, with the CPU time of its polls added here.
    pub(crate) fn measure<F: Future>(&self, future: F) -> Measured<F> {
        Measured { future, meter: self.clone() }
    }
}

pub(crate) struct Measured<F> {
    future: F,
    meter: CpuMeter,
}

impl<F: Future> Future for Measured<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is never moved out of the pinned struct (structural pinning);
        // `meter` is not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let started = Instant::now();
        let polled = unsafe { Pin::new_unchecked(&mut this.future) }.poll(cx);
        this.meter.add(started.elapsed());
        polled
    }
}

#[cfg(test)]
mod tests {
    use nix::time::{ClockId, clock_gettime};

    use super::*;

    fn thread_cpu() -> Duration {
        clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map(Duration::from).unwrap_or_default()
    }

    /// Spends `cpu` of this thread's CPU time.
    fn burn(cpu: Duration) {
        let started = thread_cpu();
        let mut x = 0u64;
        while thread_cpu() - started < cpu {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }

    #[tokio::test]
    async fn counts_the_cpu_of_the_polls_not_the_time_waited() {
        let meter = CpuMeter::default();
        let (tx, rx) = tokio::sync::oneshot::channel();
        // While the measured future waits, another thread spends 200 ms of CPU, then wakes it.
        let other = std::thread::spawn(move || {
            burn(Duration::from_millis(200));
            tx.send(()).unwrap();
        });
        meter
            .measure(async {
                rx.await.unwrap();
                burn(Duration::from_millis(30));
            })
            .await;
        other.join().unwrap();
        let cpu = meter.total();
        assert!(cpu >= Duration::from_millis(30), "the busy part counts: {cpu:?}");
        assert!(cpu < Duration::from_millis(200), "the 200 ms of waiting (another thread's CPU) do not: {cpu:?}");
    }
}
