//! A loaded program and its runs. Every run is a fresh instance in a fresh store: nothing
//! one request leaves in memory is seen by the next, and a trap harms nothing but its run.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use wasmtime::{InstancePre, ModuleExport, Store};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use crate::cpu::CpuMeter;
use crate::engine::{ComponentState, ModuleState, shared};
use crate::failure::{RunFailure, describe};
use crate::limits::{Limiter, MemoryBudget};
use crate::output::{CappedOutput, LineSink, LogLines};

/// The largest result (an event function's stdout, an HTTP response body): Lambda's
/// payload limit, 6 MiB + 100 bytes.
pub const MAX_RESULT_BYTES: usize = 6 * 1024 * 1024 + 100;

pub(crate) enum Kind {
    /// A WASI preview 1 command module: the event on stdin, the result on stdout; its
    /// `_start` export, found once when it was linked.
    Module(InstancePre<ModuleState>, ModuleExport),
    /// A `wasi:cli/command` component, run the same way.
    Command(CommandPre<ComponentState>),
    /// A `wasi:http/proxy` component: one HTTP request in, one response out.
    Http(ProxyPre<ComponentState>),
}

/// What a program is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramKind {
    /// Reads an event on stdin and writes its result on stdout.
    Event,
    /// Serves `wasi:http/incoming-handler`.
    Http,
}

/// A compiled program, loaded and linked, ready for any number of runs at once. Cheap to
/// clone; every clone is the same program.
#[derive(Clone)]
pub struct Program(pub(crate) Arc<Kind>);

/// How a run is bounded and what it sees.
#[derive(Clone)]
pub struct Run {
    /// Its environment, exactly (nothing of the server's); shared by the runs of an
    /// instance, not copied for each.
    pub env: Arc<[(String, String)]>,
    /// Its arguments (`argv[0]` first).
    pub args: Arc<[String]>,
    pub timeout: Duration,
    /// Shared by all runs of the same instance.
    pub memory: Arc<MemoryBudget>,
    /// Where its log lines go: stderr (and an HTTP component's stdout).
    pub log: LineSink,
    /// Where the CPU time it spends is added.
    pub cpu: CpuMeter,
}

impl Program {
    pub fn kind(&self) -> ProgramKind {
        match &*self.0 {
            Kind::Module(..) | Kind::Command(_) => ProgramKind::Event,
            Kind::Http(_) => ProgramKind::Http,
        }
    }

    /// Runs an event function: `payload` on stdin, the result is what it wrote on stdout
    /// once it exited with status 0.
    pub async fn run_event(&self, run: &Run, payload: Bytes) -> Result<Bytes, RunFailure> {
        let stdout = CappedOutput::new(MAX_RESULT_BYTES);
        let logs = LogLines::new(run.log.clone());
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdin(MemoryInputPipe::new(payload)).stdout(stdout.clone()).stderr(logs.clone());
        wasi.envs(&run.env).args(&run.args);
        let ticker = &shared().map_err(|e| RunFailure::Busy(e.to_string()))?.ticker;
        let _running = ticker.running();
        let (result, exceeded) = match &*self.0 {
            Kind::Module(pre, start) => {
                let state = ModuleState {
                    wasi: wasi.max_random_size(MAX_RANDOM_BYTES).build_p1(),
                    limiter: Limiter::new(run.memory.clone()),
                };
                let mut store = bounded_store(pre.module().engine(), state, |s| &mut s.limiter);
                let result = tokio::time::timeout(
                    run.timeout,
                    run.cpu.measure(async {
                        let instance = pre.instantiate_async(&mut store).await?;
                        let start = instance
                            .get_module_export(&mut store, start)
                            .and_then(wasmtime::Extern::into_func)
                            .ok_or_else(|| wasmtime::format_err!("the module has no _start function"))?
                            .typed::<(), ()>(&store)?;
                        start.call_async(&mut store, ()).await
                    }),
                )
                .await;
                (result, store.data().limiter.exceeded)
            }
            Kind::Command(pre) => {
                let mut store = bounded_store(pre.engine(), component_state(wasi, run), |s| &mut s.limiter);
                let result = tokio::time::timeout(
                    run.timeout,
                    run.cpu.measure(async {
                        let command = pre.instantiate_async(&mut store).await?;
                        match command.wasi_cli_run().call_run(&mut store).await? {
                            Ok(()) => Ok(()),
                            Err(()) => Err(I32Exit(1).into()),
                        }
                    }),
                )
                .await;
                (result, store.data().limiter.exceeded)
            }
            Kind::Http(_) => unreachable!("an HTTP component is run by run_http"),
        };
        logs.finish();
        let (out, overflowed) = stdout.take();
        match result {
            Err(_) => Err(RunFailure::TimedOut(run.timeout)),
            Ok(Ok(())) => finished(out, overflowed, 0),
            Ok(Err(e)) => match e.downcast_ref::<I32Exit>() {
                Some(I32Exit(code)) => finished(out, overflowed, *code),
                None => Err(classify(&e, exceeded, &run.memory)),
            },
        }
    }

    /// Serves one HTTP request with a `wasi:http/proxy` component: the response with its
    /// body read whole (at most [`MAX_RESULT_BYTES`]), once the handler returned.
    pub async fn run_http(
        &self,
        run: &Run,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, RunFailure> {
        let Kind::Http(pre) = &*self.0 else { unreachable!("an event program is run by run_event") };
        let logs = LogLines::new(run.log.clone());
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(logs.clone()).stderr(logs.clone()).envs(&run.env).args(&run.args);
        let mut store = bounded_store(pre.engine(), component_state(wasi, run), |s| &mut s.limiter);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let request = request.map(|b| {
            Full::new(b).map_err(|never: std::convert::Infallible| -> wasmtime_wasi_http::Error { match never {} })
        });
        let setup = (|| -> wasmtime::Result<_> {
            let req = store.data_mut().http().new_incoming_request(Scheme::Http, request)?;
            let out = store.data_mut().http().new_response_outparam(tx)?;
            Ok((req, out))
        })();
        let (req, out) =
            setup.map_err(|e| RunFailure::NoResponse(format!("the request cannot be given to the component: {e}")))?;
        let running = shared().map_err(|e| RunFailure::Busy(e.to_string()))?.ticker.running();
        let pre = pre.clone();
        let mut task = AbortOnDrop(tokio::spawn(run.cpu.measure(async move {
            let _running = running;
            let result = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await
            }
            .await;
            (result, store.data().limiter.exceeded)
        })));
        let memory = run.memory.clone();
        let served = async {
            let ended = |joined: Result<(wasmtime::Result<()>, bool), tokio::task::JoinError>| match joined {
                Ok((Ok(()), _)) => None,
                Ok((Err(e), exceeded)) => Some(classify(&e, exceeded, &memory)),
                Err(e) => Some(RunFailure::Trap(format!("the run ended abnormally: {e}"))),
            };
            let response = match rx.await {
                Ok(Ok(response)) => response,
                Ok(Err(code)) => {
                    return Err(ended((&mut task).await).unwrap_or_else(|| {
                        RunFailure::NoResponse(format!("the component answered with an error: {code:?}"))
                    }));
                }
                Err(_) => {
                    return Err(ended((&mut task).await).unwrap_or_else(|| {
                        RunFailure::NoResponse("the component returned without setting a response".into())
                    }));
                }
            };
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESULT_BYTES).collect().await;
            if let Some(failure) = ended((&mut task).await) {
                return Err(failure);
            }
            match body {
                Ok(body) => Ok(http::Response::from_parts(parts, body.to_bytes())),
                Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                    Err(RunFailure::ResultTooLarge(MAX_RESULT_BYTES))
                }
                Err(e) => Err(RunFailure::NoResponse(format!("the response body failed: {e}"))),
            }
        };
        let result = tokio::time::timeout(run.timeout, served).await;
        let result = match result {
            Ok(result) => result,
            Err(_) => {
                // Stopped at its next tick; waited for, so its memory and slot are back
                // and its CPU counted before this returns.
                task.abort();
                let _ = (&mut task).await;
                Err(RunFailure::TimedOut(run.timeout))
            }
        };
        logs.finish();
        result
    }
}

/// Resources (streams, fields, requests, pollables...) one component run may hold at once:
/// they live in the server's memory, outside the run's linear memory.
const MAX_RESOURCES: usize = 1024;
/// The most one `fields` (a set of headers) may hold, in bytes.
const MAX_FIELDS_BYTES: usize = 16 * 1024;
/// The most random bytes one call may ask for (the host allocates them before copying).
const MAX_RANDOM_BYTES: u64 = 1024 * 1024;

fn component_state(mut wasi: WasiCtxBuilder, run: &Run) -> ComponentState {
    let mut table = wasmtime::component::ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    let mut http = WasiHttpCtx::new();
    http.set_field_size_limit(MAX_FIELDS_BYTES);
    ComponentState {
        wasi: wasi.max_random_size(MAX_RANDOM_BYTES).build(),
        http,
        table,
        limiter: Limiter::new(run.memory.clone()),
        hooks: Default::default(),
    }
}

/// A store whose memory is limited and whose program yields at every engine tick (so the
/// run's timeout can stop it and other tasks get the thread).
fn bounded_store<T: Send + 'static>(
    engine: &wasmtime::Engine,
    state: T,
    limiter: impl (FnMut(&mut T) -> &mut Limiter) + Send + Sync + 'static,
) -> Store<T> {
    let mut store = Store::new(engine, state);
    let mut limiter = limiter;
    store.limiter(move |s| limiter(s) as &mut dyn wasmtime::ResourceLimiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_async_yield_and_update(1);
    store
}

/// A run's task, stopped if whoever waits for it goes away (a run never outlives its
/// caller's timeout).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    fn abort(&self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn finished(out: Bytes, overflowed: bool, code: i32) -> Result<Bytes, RunFailure> {
    if overflowed {
        return Err(RunFailure::ResultTooLarge(MAX_RESULT_BYTES));
    }
    if code != 0 {
        return Err(RunFailure::Exit { code, stdout: out });
    }
    Ok(out)
}

fn classify(error: &wasmtime::Error, exceeded: bool, memory: &MemoryBudget) -> RunFailure {
    if exceeded {
        return RunFailure::OutOfMemory(format!(
            "the function used more than its memory size of {} MB: {}",
            memory.limit_mb(),
            describe(error)
        ));
    }
    if error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
        return RunFailure::Busy(format!("no room for another WebAssembly instance on this node: {error}"));
    }
    RunFailure::Trap(describe(error))
}
