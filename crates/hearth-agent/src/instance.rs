//! One instance: a sandboxed runtime process serving one function version through its own
//! Runtime API, or a loaded WebAssembly program (`wasm_instance.rs`). Every state change
//! goes through [`Instance::transition`].

use crate::error_document::{ErrorDocument, error_type};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use crate::driver::{Exit, SandboxControl};
use crate::wasm_instance::WasmInstance;
use crate::{Invocation, Outcome, RuntimeApi};

pub use hearth_types::{InstanceState, StartSource};

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
    started_at: SystemTime,
    /// Invocations it serves at once (the function's per-instance concurrency).
    slots: u32,
    /// State and in-flight count change together.
    state: Mutex<(InstanceState, u32)>,
    backend: Backend,
    served: Mutex<u64>,
    /// Where it came from: what its cold start cost.
    source: StartSource,
}

/// What serves an instance's invocations.
enum Backend {
    Process(Process),
    Wasm(WasmInstance),
}

/// A runtime process in its sandbox, speaking the Runtime API.
struct Process {
    current: CurrentRequest,
    api: RuntimeApi,
    control: Box<dyn SandboxControl>,
    /// `Some` once the process has ended; every waiter sees it.
    exit: watch::Receiver<Option<Exit>>,
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
        Self::with_backend(id, slots, Backend::Process(Process { current, api, control, exit }), StartSource::Full)
    }

    /// A WebAssembly instance, ready at once (loading was its start).
    pub(crate) fn wasm(id: String, slots: u32, wasm: WasmInstance, source: StartSource) -> Self {
        let instance = Self::with_backend(id, slots, Backend::Wasm(wasm), source);
        instance.transition(InstanceState::Ready).expect("Starting -> Ready is allowed");
        instance
    }

    fn with_backend(id: String, slots: u32, backend: Backend, source: StartSource) -> Self {
        Self {
            id,
            started_at: SystemTime::now(),
            slots: slots.max(1),
            state: Mutex::new((InstanceState::Starting, 0)),
            backend,
            served: Mutex::new(0),
            source,
        }
    }

    /// Marks it as made from a stem cell.
    pub(crate) fn made_from_stem_cell(mut self) -> Self {
        self.source = StartSource::StemCell;
        self
    }

    /// Whether it was made from a stem cell (a pre-warmed sandbox).
    pub fn started_from_stem_cell(&self) -> bool {
        self.source == StartSource::StemCell
    }

    /// Where it came from: a full launch, a stem cell, or a WebAssembly compile or load.
    pub fn start_source(&self) -> StartSource {
        self.source
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

    /// The most memory the instance has used, in MB, when the sandbox measures it (a
    /// WebAssembly instance: what its runs hold now).
    pub fn max_memory_used_mb(&self) -> Option<u64> {
        match &self.backend {
            Backend::Process(p) => p.control.peak_memory_bytes().map(|b| b.div_ceil(1024 * 1024)),
            Backend::Wasm(w) => Some(w.memory_bytes().div_ceil(1024 * 1024)),
        }
    }

    /// The memory the instance uses now, in MB (rounded up), when the sandbox measures it.
    pub fn memory_used_mb(&self) -> Option<u64> {
        match &self.backend {
            Backend::Process(p) => p.control.memory_bytes().map(|b| b.div_ceil(1024 * 1024)),
            Backend::Wasm(w) => Some(w.memory_bytes().div_ceil(1024 * 1024)),
        }
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

    fn process(&self) -> Option<&Process> {
        match &self.backend {
            Backend::Process(p) => Some(p),
            Backend::Wasm(_) => None,
        }
    }

    /// The runtime finished its init: the sandbox may now apply start-up-sensitive limits.
    pub(crate) fn initialised(&self) {
        if let Some(p) = self.process() {
            p.control.initialised();
        }
    }

    /// A process instance's Runtime API (only process instances are started through it).
    pub(crate) fn api(&self) -> &RuntimeApi {
        &self.process().expect("only a process instance has a Runtime API").api
    }

    /// Whether the process has ended, without waiting (a WebAssembly instance never does).
    pub fn has_exited(&self) -> bool {
        self.process().is_some_and(|p| p.exit.borrow().is_some())
    }

    /// Waits for the process to end. Any number of callers may wait; all see the exit.
    pub(crate) async fn wait_exit(&self) -> Option<Exit> {
        match self.process() {
            Some(p) => p.exit.clone().wait_for(Option::is_some).await.ok().and_then(|v| *v),
            None => std::future::pending().await,
        }
    }

    /// Runs one invocation with the function's timeout, in one of the instance's slots (it is
    /// `Busy` while all are taken; a `Draining` instance serves the slots already handed
    /// out). A timeout or a runtime exit kills the instance and marks it failed; the caller
    /// gets the platform's error.
    pub async fn invoke(&self, invocation: Invocation, timeout: Duration) -> Result<InvokeResult, IllegalTransition> {
        Ok(self.invoke_metered(invocation, timeout).await?.0)
    }

    /// [`Instance::invoke`], with the CPU time the invocation spent where the instance
    /// measures it per invocation (a WebAssembly instance does; a process serves several
    /// invocations at once and is measured as a whole).
    pub async fn invoke_metered(
        &self,
        invocation: Invocation,
        timeout: Duration,
    ) -> Result<(InvokeResult, Option<Duration>), IllegalTransition> {
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
        let (result, cpu) = match &self.backend {
            Backend::Process(p) => (self.invoke_process(p, invocation, timeout).await, None),
            Backend::Wasm(w) => {
                let (outcome, cpu) = w.invoke(invocation, timeout).await;
                (InvokeResult::Answered(outcome), Some(cpu))
            }
        };
        *self.served.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        if let (InvokeResult::Failed(_), Some(p)) = (&result, self.process()) {
            p.control.kill();
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
        Ok((result, cpu))
    }

    async fn invoke_process(&self, p: &Process, invocation: Invocation, timeout: Duration) -> InvokeResult {
        let request_id = invocation.request_id.clone();
        *p.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(request_id.clone());
        tokio::select! {
            answer = p.api.invoke(invocation) => match answer {
                Ok(outcome) => InvokeResult::Answered(outcome),
                Err(_) => InvokeResult::Failed(exit_error(&request_id, None)),
            },
            code = self.wait_exit() => InvokeResult::Failed(if p.control.oom_killed() {
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
        }
    }

    /// Stops the instance (kills its process group; a WebAssembly instance's program is
    /// unloaded once nothing holds it).
    pub fn stop(&self) {
        if let Some(p) = self.process() {
            p.control.kill();
        }
        let _ = self.transition(InstanceState::Stopped);
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(p) = self.process() {
            p.control.kill();
        }
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
