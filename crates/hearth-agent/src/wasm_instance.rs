//! A WebAssembly instance: a loaded program (`hearth-wasm`) serving one function version.
//! Each invocation is a fresh wasm instance of it, in the server's process; the "instance"
//! the gateway keeps warm is the compiled, loaded program, and its memory size is shared
//! by the runs it serves at once, as a process instance's slots share its cgroup.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hearth_types::LogStream;
use hearth_wasm::{CpuMeter, MemoryBudget, Program, ProgramKind, Run, RunFailure};

use crate::error_document::{ErrorDocument, error_type};
use crate::instance::{LogEvent, LogSink};
use crate::instance_start::InstanceSpec;
use crate::{Invocation, Outcome};

/// A trap: the function's own failure, reported with the trap's message and backtrace.
pub const WASM_TRAP: &str = "Runtime.WasmTrap";
/// A module that does not compile, or whose imports or exports Hearth cannot run.
pub const WASM_INVALID: &str = "Runtime.InvalidWasm";
/// No room on the node for another WebAssembly run at this moment.
pub const WASM_BUSY: &str = "Runtime.WasmBusy";
/// An HTTP component that gave no response.
pub const WASM_NO_RESPONSE: &str = "Runtime.WasmNoResponse";

pub(crate) struct WasmInstance {
    program: Program,
    /// The environment and arguments every run gets, and the instance's memory.
    template: Run,
    output: Option<LogSink>,
}

impl WasmInstance {
    pub(crate) fn new(program: Program, spec: &InstanceSpec, output: Option<LogSink>) -> Self {
        let template = Run {
            env: environment(spec).into(),
            args: Arc::new([spec.config.handler.clone()]),
            timeout: Duration::from_secs(u64::from(spec.config.timeout_s)),
            memory: MemoryBudget::new(spec.config.memory_mb),
            log: Arc::new(|_| {}),
            cpu: CpuMeter::default(),
        };
        Self { program, template, output }
    }

    /// Bytes of linear memory and tables its runs hold now.
    pub(crate) fn memory_bytes(&self) -> u64 {
        self.template.memory.used_bytes() as u64
    }

    /// Runs one invocation: its outcome and the CPU time it spent. Every failure is the
    /// function's (an error document); the instance serves the next one as if nothing
    /// happened.
    pub(crate) async fn invoke(&self, invocation: Invocation, timeout: Duration) -> (Outcome, Duration) {
        let mut run = self.template.clone();
        run.timeout = timeout;
        run.cpu = CpuMeter::default();
        if let Some(sink) = &self.output {
            let (sink, request_id) = (sink.clone(), invocation.request_id.clone());
            run.log = Arc::new(move |line| {
                sink(LogEvent {
                    request_id: Some(request_id.clone()),
                    stream: LogStream::Stderr,
                    line,
                    at: SystemTime::now(),
                })
            });
        }
        let request_id = invocation.request_id.clone();
        let result = match self.program.kind() {
            ProgramKind::Event => self.program.run_event(&run, invocation.payload).await,
            ProgramKind::Http => match crate::wasm_http_event::request(&invocation.payload) {
                Ok(request) => self.program.run_http(&run, request).await.map(crate::wasm_http_event::result),
                Err(why) => Ok(invalid_event(&why)),
            },
        };
        let outcome = match result {
            Ok(body) => Outcome::Response { body, content_type: Some("application/json".into()) },
            Err(RunFailure::ResultTooLarge(_)) => Outcome::ResponseTooLarge,
            Err(failure) => failed(&request_id, failure),
        };
        (outcome, run.cpu.total())
    }
}

/// The structured answer to an event that is not an HTTP request.
fn invalid_event(why: &str) -> Bytes {
    let body = format!("this function serves HTTP requests (through an HTTP trigger): {why}");
    serde_json::to_vec(&serde_json::json!({"statusCode": 400, "headers": {"content-type": "text/plain"}, "body": body}))
        .expect("JSON")
        .into()
}

fn failed(request_id: &str, failure: RunFailure) -> Outcome {
    let (kind, message) = match failure {
        RunFailure::Trap(m) => (WASM_TRAP, m),
        RunFailure::OutOfMemory(m) => (error_type::OUT_OF_MEMORY, m),
        RunFailure::TimedOut(t) => (
            error_type::TIMED_OUT,
            format!("RequestId: {request_id} Error: Task timed out after {:.2} seconds", t.as_secs_f64()),
        ),
        RunFailure::Exit { code, stdout } => {
            // A command may report its own error document on stdout before exiting.
            if let Some(own) = ErrorDocument::type_in(&stdout) {
                return Outcome::FunctionError { body: stdout, error_type: Some(own) };
            }
            (error_type::EXIT_ERROR, format!("RequestId: {request_id} Error: exited with status {code}"))
        }
        RunFailure::NoResponse(m) => (WASM_NO_RESPONSE, m),
        RunFailure::Busy(m) => (WASM_BUSY, m),
        RunFailure::ResultTooLarge(_) => unreachable!("handled by the caller"),
    };
    Outcome::FunctionError { body: ErrorDocument::new(kind, message).to_bytes(), error_type: Some(kind.to_owned()) }
}

/// What a run sees of its environment: the function's variables and the names Lambda
/// gives a function, nothing of the server's.
fn environment(spec: &InstanceSpec) -> Vec<(String, String)> {
    let mut env = spec.config.environment.clone();
    let reserved = [
        ("AWS_LAMBDA_FUNCTION_NAME", spec.function.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", spec.version.to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", spec.config.memory_mb.to_string()),
        ("AWS_REGION", spec.region.clone()),
        ("_HANDLER", spec.config.handler.clone()),
    ];
    env.extend(reserved.into_iter().map(|(k, v)| (k.to_owned(), v)));
    env.into_iter().collect()
}
