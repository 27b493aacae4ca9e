//! The engine's clock: while any program runs, the epoch advances every [`TICK`]; each tick
//! is where a running program yields to the scheduler, so a program in a tight loop shares
//! its thread and is stopped at its timeout. With nothing running, the thread sleeps. The
//! engine lives as long as the process, and so does its clock.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How often a running program yields.
pub const TICK: Duration = Duration::from_millis(5);

/// Runs under way, counted without a lock (a run starts and ends on every request); the
/// lock and condition variable only put the clock to sleep and wake it, and a run wakes it
/// only when it sleeps (a notify is a system call even with nobody waiting). `running` and
/// `parked` are each written by one side and read by the other, all sequentially
/// consistent: either the clock sees the run, or the run sees the clock parked.
#[derive(Default)]
struct State {
    running: AtomicUsize,
    parked: AtomicBool,
    asleep: Mutex<()>,
    wake: Condvar,
}

#[derive(Clone)]
pub(crate) struct Ticker(Arc<State>);

impl Ticker {
    pub(crate) fn start(engine: wasmtime::Engine) -> std::io::Result<Self> {
        let ticker = Self(Arc::default());
        let shared = ticker.0.clone();
        std::thread::Builder::new().name("hearth-wasm-epoch".into()).spawn(move || {
            loop {
                {
                    // Parked under the lock a waking run takes: its notify comes once this waits.
                    let mut guard = shared.asleep.lock().unwrap_or_else(|p| p.into_inner());
                    shared.parked.store(true, Ordering::SeqCst);
                    while shared.running.load(Ordering::SeqCst) == 0 {
                        guard = shared.wake.wait(guard).unwrap_or_else(|p| p.into_inner());
                    }
                    shared.parked.store(false, Ordering::SeqCst);
                }
                std::thread::sleep(TICK);
                engine.increment_epoch();
            }
        })?;
        Ok(ticker)
    }

    /// Keeps the clock going until the guard is dropped.
    pub(crate) fn running(&self) -> Running {
        // Only the first run wakes the clock, and only if it sleeps; it sleeps only when
        // nothing runs.
        if self.0.running.fetch_add(1, Ordering::SeqCst) == 0 && self.0.parked.load(Ordering::SeqCst) {
            let _guard = self.0.asleep.lock().unwrap_or_else(|p| p.into_inner());
            self.0.wake.notify_one();
        }
        Running(self.clone())
    }
}

pub(crate) struct Running(Ticker);

impl Drop for Running {
    fn drop(&mut self) {
        (self.0).0.running.fetch_sub(1, Ordering::SeqCst);
    }
}
