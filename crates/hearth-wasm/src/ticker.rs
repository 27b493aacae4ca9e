//! The engine's clock: while any program runs, the epoch advances every [`TICK`]; each tick
//! is where a running program yields to the scheduler, so a program in a tight loop shares
//! its thread and is stopped at its timeout. With nothing running, the thread sleeps. The
//! engine lives as long as the process, and so does its clock.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How often a running program yields.
pub const TICK: Duration = Duration::from_millis(5);

#[derive(Default)]
struct State {
    running: usize,
}

#[derive(Clone)]
pub(crate) struct Ticker(Arc<(Mutex<State>, Condvar)>);

impl Ticker {
    pub(crate) fn start(engine: wasmtime::Engine) -> std::io::Result<Self> {
        let ticker = Self(Arc::default());
        let shared = ticker.0.clone();
        std::thread::Builder::new().name("hearth-wasm-epoch".into()).spawn(move || {
            let (state, wake) = &*shared;
            loop {
                {
                    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                    while s.running == 0 {
                        s = wake.wait(s).unwrap_or_else(|p| p.into_inner());
                    }
                }
                std::thread::sleep(TICK);
                engine.increment_epoch();
            }
        })?;
        Ok(ticker)
    }

    /// Keeps the clock going until the guard is dropped.
    pub(crate) fn running(&self) -> Running {
        let (state, wake) = &*self.0;
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.running += 1;
        // Only the first run wakes the clock (a notify is a system call even with nobody
        // waiting); it waits only when nothing runs.
        if s.running == 1 {
            wake.notify_one();
        }
        Running(self.clone())
    }
}

pub(crate) struct Running(Ticker);

impl Drop for Running {
    fn drop(&mut self) {
        let (state, _) = &*(self.0).0;
        state.lock().unwrap_or_else(|p| p.into_inner()).running -= 1;
    }
}
