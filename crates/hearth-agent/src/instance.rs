//! One instance: a sandboxed runtime process serving one function version through its own
//! Runtime API. Every state change goes through [`Instance::transition`].

use crate::error_document::{ErrorDocument, error_type};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use crate::driver::{Exit, SandboxControl};
use crate::{Invocation, Outcome, RuntimeApi};

pub use hearth_types::InstanceState;

#[derive(Debug, thiserror::Error)]
#[error("instance cannot go from {from:?} to {to:?}")]
pub struct IllegalTransition {
    pub from: InstanceState,
    pub to: InstanceState,
}

/// A function error produced by the platform (not by the function), Lambda-style.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformError {
    pub error_type: &'static str,
    pub message: String,
}

impl PlatformError {
    pub fn body(&self) -> Bytes {
        ErrorDocument::new(self.error_type, self.message.as_str()).to_bytes()
    }
}

/// The result of one invocation on an instance.
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeResult {
    /// The runtime answered (success, function error, or response too large).
    Answered(Outcome),
    /// The platform ended the invocation: timeout or runtime exit. The instance is gone.
    Failed(PlatformError),
}

/// One line a runtime printed, with the request it was serving.
#[derive(Debug, Clone)]
pub struct LogEvent {
    pub request_id: Option<String>,
    pub stream: hearth_types::LogStream,
    pub line: String,
    pub at: SystemTime,
}

/// Where an instance's output lines go.
pub type LogSink = std::sync::Arc<dyn Fn(LogEvent) + Send + Sync>;

/// The request an instance is serving (or last served): output is attributed to it.
pub(crate) type CurrentRequest = std::sync::Arc<Mutex<Option<String>>>;

pub struct Instance {
    id: String,
    current: CurrentRequest,
    started_at: SystemTime,
    /// Invocations it serves at once (the function's per-instance concurrency).
    slots: u32,
    /// State and in-flight count change together.
    state: Mutex<(InstanceState, u32)>,
    api: RuntimeApi,
    control: Box<dyn SandboxControl>,
    /// `Some` once the process has ended; every waiter sees it.
    exit: watch::Receiver<Option<Exit>>,
    served: Mutex<u64>,
    /// Started from a stem cell (a pre-warmed sandbox), not from nothing.
    from_stem_cell: bool,
}

impl Instance {
    pub(crate) fn new(
        id: String,
        slots: u32,
        current: CurrentRequest,
        api: RuntimeApi,
        control: Box<dyn SandboxControl>,
        exited: oneshot::Receiver<Exit>,
    ) -> Self {
        let (tx, exit) = watch::channel(None);
        tokio::spawn(async move {
            // A dropped sender (the driver's waiter gone) also means the process is gone.
            let code = exited.await.unwrap_or(Exit::Code(-1));
            let _ = tx.send(Some(code));
        });
        Self {
            id,
            current,
            started_at: SystemTime::now(),
            slots: slots.max(1),
            state: Mutex::new((InstanceState::Starting, 0)),
            api,
            control,
            exit,
            served: Mutex::new(0),
            from_stem_cell: false,
        }
    }

    /// Marks it as made from a stem cell.
    pub(crate) fn made_from_stem_cell(mut self) -> Self {
        self.from_stem_cell = true;
        self
    }

    /// Whether it was made from a stem cell (a pre-warmed sandbox).
    pub fn started_from_stem_cell(&self) -> bool {
        self.from_stem_cell
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    pub fn slots(&self) -> u32 {
        self.slots
    }

    pub fn state(&self) -> InstanceState {
        self.lock().0
    }

    /// Invocations running now.
    pub fn in_flight(&self) -> u32 {
        self.lock().1
    }

    /// The most memory the instance has used, in MB, when the sandbox measures it.
    pub fn max_memory_used_mb(&self) -> Option<u64> {
        self.control.peak_memory_bytes().map(|b| b.div_ceil(1024 * 1024))
    }

    /// The memory the instance uses now, in MB (rounded up), when the sandbox measures it.
    pub fn memory_used_mb(&self) -> Option<u64> {
        self.control.memory_bytes().map(|b| b.div_ceil(1024 * 1024))
    }

    pub fn requests_served(&self) -> u64 {
        *self.served.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (InstanceState, u32)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The one place an instance changes state.
    pub fn transition(&self, to: InstanceState) -> Result<(), IllegalTransition> {
        let mut state = self.lock();
        Self::apply(&mut state.0, to)
    }

    fn apply(state: &mut InstanceState, to: InstanceState) -> Result<(), IllegalTransition> {
        if !state.may_become(to) {
            return Err(IllegalTransition { from: *state, to });
        }
        tracing::debug!(from = ?*state, ?to, "instance state");
        *state = to;
        Ok(())
    }

    /// The runtime finished its init: the sandbox may now apply start-up-sensitive limits.
    pub(crate) fn initialised(&self) {
        self.control.initialised();
    }

    pub(crate) fn api(&self) -> &RuntimeApi {
        &self.api
    }

    /// Whether the process has ended, without waiting.
    pub fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Waits for the process to end. Any number of callers may wait; all see the exit.
    pub(crate) async fn wait_exit(&self) -> Option<Exit> {
        let mut rx = self.exit.clone();
        rx.wait_for(Option::is_some).await.ok().and_then(|v| *v)
    }

    /// Runs one invocation with the function's timeout, in one of the instance's slots (it is
    /// `Busy` while all are taken; a `Draining` instance serves the slots already handed
    /// out). A timeout or a runtime exit kills the instance and marks it failed; the caller
    /// gets the platform's error.
    pub async fn invoke(&self, invocation: Invocation, timeout: Duration) -> Result<InvokeResult, IllegalTransition> {
        {
            let mut st = self.lock();
            match st.0 {
                InstanceState::Ready => {
                    st.1 += 1;
                    if st.1 == self.slots {
                        Self::apply(&mut st.0, InstanceState::Busy)?;
                    }
                }
                // A slot handed out before the version was drained: served, and the instance
                // stays Draining (the pool hands a draining instance no new work).
                InstanceState::Draining if st.1 < self.slots => st.1 += 1,
                from => return Err(IllegalTransition { from, to: InstanceState::Busy }),
            }
        }
        let request_id = invocation.request_id.clone();
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(request_id.clone());
        let result = tokio::select! {
            answer = self.api.invoke(invocation) => match answer {
                Ok(outcome) => InvokeResult::Answered(outcome),
                Err(_) => InvokeResult::Failed(exit_error(&request_id, None)),
            },
            code = self.wait_exit() => InvokeResult::Failed(if self.control.oom_killed() {
                PlatformError {
                    error_type: error_type::OUT_OF_MEMORY,
                    message: format!("RequestId: {request_id} Error: Runtime exited with error: signal: killed (the function used more than its memory size)"),
                }
            } else {
                exit_error(&request_id, code)
            }),
            _ = tokio::time::sleep(timeout) => InvokeResult::Failed(PlatformError {
                error_type: error_type::TIMED_OUT,
                message: format!("RequestId: {request_id} Error: Task timed out after {:.2} seconds", timeout.as_secs_f64()),
            }),
        };
        *self.served.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        if matches!(result, InvokeResult::Failed(_)) {
            self.control.kill();
        }
        let mut st = self.lock();
        st.1 -= 1;
        match (&result, st.0) {
            (InvokeResult::Failed(_), InstanceState::Ready | InstanceState::Busy | InstanceState::Draining) => {
                Self::apply(&mut st.0, InstanceState::Failed)?;
            }
            (InvokeResult::Answered(_), InstanceState::Busy) => Self::apply(&mut st.0, InstanceState::Ready)?,
            _ => {}
        }
        Ok(result)
    }

    /// Stops the instance (kills its process group).
    pub fn stop(&self) {
        self.control.kill();
        let _ = self.transition(InstanceState::Stopped);
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.control.kill();
    }
}

fn exit_error(request_id: &str, exit: Option<Exit>) -> PlatformError {
    let how = exit.map_or("runtime exited".to_owned(), |e| format!("Runtime exited with error: {e}"));
    PlatformError { error_type: error_type::EXIT_ERROR, message: format!("RequestId: {request_id} Error: {how}") }
}

/// Milliseconds since the Unix epoch, for deadlines.
pub fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
