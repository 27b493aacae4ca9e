//! Creating an instance: runtime API, environment, sandbox, then waiting for init.

use crate::error_document::{ErrorDocument, ErrorReport, error_type};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use hearth_types::{FunctionConfig, FunctionName};

use crate::driver::{Exit, LaunchSpec, SandboxDriver, SandboxError};
use crate::instance::{CurrentRequest, Instance, InstanceState};
use crate::log_capture::{LogOutput, capture};
use crate::runtimes::{RuntimeError, Runtimes};
use crate::{InitOutcome, RuntimeApi};

/// What to start: one version of one function, its code already unpacked.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    pub instance_id: String,
    pub function: FunctionName,
    pub version: u32,
    pub config: FunctionConfig,
    pub code_dir: PathBuf,
    pub region: String,
}

/// Why an instance did not become ready. Each maps to the error its waiting callers get.
#[derive(Debug, thiserror::Error)]
pub enum StartFailure {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("cannot open the instance's runtime API: {0}")]
    Io(#[from] std::io::Error),
    /// The runtime reported `/init/error`; `body` is its error document.
    #[error("init failed ({error_type:?})")]
    Init { body: Bytes, error_type: Option<String> },
    #[error("the runtime exited during init: {0}")]
    Exited(Exit),
    #[error("init did not finish within {0:?}")]
    TimedOut(Duration),
    /// The WebAssembly program could not be loaded.
    #[error(transparent)]
    Wasm(#[from] hearth_wasm::LoadError),
}

impl StartFailure {
    /// The Lambda error document callers receive for this failure, with its type: the one
    /// the runtime's own document names, else the one it sent beside it.
    pub fn report(&self) -> ErrorReport {
        match self {
            Self::Init { body, error_type: sent } => ErrorReport {
                error_type: ErrorDocument::type_in(body)
                    .or_else(|| sent.clone())
                    .unwrap_or_else(|| error_type::UNHANDLED.into()),
                body: body.clone(),
            },
            other => {
                let error_type = match other {
                    Self::Runtime(r) => r.error_type(),
                    Self::Exited(_) => error_type::EXIT_ERROR,
                    Self::TimedOut(_) => error_type::TIMED_OUT,
                    Self::Wasm(hearth_wasm::LoadError::Read { .. } | hearth_wasm::LoadError::NotWasm(_)) => {
                        error_type::INVALID_ENTRYPOINT
                    }
                    Self::Wasm(hearth_wasm::LoadError::Compile(_) | hearth_wasm::LoadError::Link(_)) => {
                        crate::wasm_instance::WASM_INVALID
                    }
                    _ => error_type::INIT_ERROR,
                };
                ErrorDocument::new(error_type, other.to_string()).into()
            }
        }
    }
}

/// The variables every runtime process starts with (a function may override them).
pub(crate) fn default_environment(task_root: &str) -> BTreeMap<String, String> {
    [
        ("PATH", "/usr/local/bin:/usr/bin:/bin".to_owned()),
        ("LANG", "C.UTF-8".to_owned()),
        ("TZ", ":UTC".to_owned()),
        ("HOME", "/tmp".to_owned()),
        ("LD_LIBRARY_PATH", format!("{task_root}/lib")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The environment of a runtime process: defaults a function may override, then the
/// function's own variables, then the platform's reserved variables.
pub fn lambda_environment(
    spec: &InstanceSpec,
    task_root: &std::path::Path,
    api: std::net::SocketAddr,
) -> Vec<(String, String)> {
    let task_root = task_root.display().to_string();
    let mut env = default_environment(&task_root);
    env.extend(spec.config.environment.clone());
    let name = spec.function.as_str();
    let version = spec.version.to_string();
    let reserved = [
        ("AWS_LAMBDA_RUNTIME_API", api.to_string()),
        ("_HANDLER", spec.config.handler.clone()),
        ("LAMBDA_TASK_ROOT", task_root),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", version.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", spec.config.memory_mb.to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", format!("[{version}]{}", spec.instance_id)),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        // How many events Hearth's own runtimes poll for at once (per-instance concurrency).
        ("HEARTH_CONCURRENCY", spec.config.concurrency.to_string()),
        ("AWS_REGION", spec.region.clone()),
        ("AWS_DEFAULT_REGION", spec.region.clone()),
    ];
    env.extend(reserved.into_iter().map(|(k, v)| (k.to_owned(), v)));
    env.insert("AWS_LAMBDA_LOG_FORMAT".into(), "Text".into());
    env.insert("AWS_LAMBDA_LOG_LEVEL".into(), "INFO".into());
    // Managed runtimes name themselves; OS-only (`provided`) runtimes leave it unset.
    let execution_env = match spec.config.runtime {
        hearth_types::Runtime::Python3 => Some("AWS_Lambda_python3"),
        hearth_types::Runtime::Nodejs => Some("AWS_Lambda_nodejs"),
        _ => None,
    };
    if let Some(v) = execution_env {
        env.insert("AWS_EXECUTION_ENV".into(), v.into());
    }
    env.into_iter().collect()
}

/// Starts an instance and waits until its runtime asks for the first event (or fails).
/// Its output goes to the debug log.
pub async fn start_instance(
    driver: &dyn SandboxDriver,
    runtimes: &Runtimes,
    spec: &InstanceSpec,
    init_timeout: Duration,
) -> Result<Instance, StartFailure> {
    start_instance_logged(driver, runtimes, spec, init_timeout, None::<LogOutput>).await
}

/// [`start_instance`], sending every output line to `output` (a [`LogOutput`], or a
/// [`crate::LogSink`] with the default limits).
pub async fn start_instance_logged(
    driver: &dyn SandboxDriver,
    runtimes: &Runtimes,
    spec: &InstanceSpec,
    init_timeout: Duration,
    output: Option<impl Into<LogOutput>>,
) -> Result<Instance, StartFailure> {
    let process = RuntimeProcess {
        instance_id: &spec.instance_id,
        runtime: spec.config.runtime,
        code_dir: &spec.code_dir,
        network: spec.config.network,
        memory_mb: spec.config.memory_mb,
        tmp_mb: spec.config.ephemeral_storage_mb,
        prewarmed: false,
    };
    let launched =
        launch_runtime(driver, runtimes, &process, |task_root, api| lambda_environment(spec, task_root, api)).await?;
    let api =
        RuntimeApi::serve(tokio::net::TcpListener::from_std(launched.listener)?, spec.config.concurrency as usize)?;
    let sandbox = launched.sandbox;
    let output = output.map(Into::into);
    let instance = assemble(spec, api, sandbox.stdout, sandbox.stderr, sandbox.control, sandbox.exited, output);
    await_init(instance, init_timeout).await
}

/// One runtime process to launch: a function's, or a stem cell's waiting for one.
pub(crate) struct RuntimeProcess<'a> {
    pub instance_id: &'a str,
    pub runtime: hearth_types::Runtime,
    /// The host folder seen as `/var/task` (a stem cell's is empty until it specializes).
    pub code_dir: &'a std::path::Path,
    pub network: hearth_types::Network,
    pub memory_mb: u32,
    pub tmp_mb: u32,
    /// A stem cell: started before its function is known (its command does not look at the
    /// code), with a pipe on its stdin where it reads the function's environment.
    pub prewarmed: bool,
}

/// A launched runtime process, with the Runtime API's listener (bound in its network
/// namespace, not yet served) and where it sees its task root.
pub(crate) struct LaunchedRuntime {
    pub sandbox: crate::driver::Sandbox,
    pub listener: std::net::TcpListener,
    pub task_root: PathBuf,
}

/// Launches a runtime process in its sandbox: the one way both a function's instance and a
/// stem cell start. `env` gets the task root as the process sees it and the Runtime API's
/// address.
pub(crate) async fn launch_runtime(
    driver: &dyn SandboxDriver,
    runtimes: &Runtimes,
    process: &RuntimeProcess<'_>,
    env: impl FnOnce(&std::path::Path, std::net::SocketAddr) -> Vec<(String, String)>,
) -> Result<LaunchedRuntime, StartFailure> {
    let network = driver.network(process.network).await?;
    let task_root = driver.task_root(process.code_dir);
    let runtime_root = driver.runtime_root(runtimes.dir());
    let (program, args) = if process.prewarmed {
        runtimes.cell_command(process.runtime, &runtime_root)?
    } else {
        runtimes.command(process.runtime, process.code_dir, &task_root, &runtime_root)?
    };
    let launch = LaunchSpec {
        instance_id: process.instance_id.to_owned(),
        program,
        args,
        env: env(&task_root, network.listener.local_addr()?),
        task_root: process.code_dir.to_path_buf(),
        runtime_dir: runtimes.dir().to_path_buf(),
        netns: network.netns.map(std::sync::Arc::new),
        network: process.network,
        memory_mb: process.memory_mb,
        tmp_mb: process.tmp_mb,
        stdin: process.prewarmed,
    };
    let sandbox = driver.launch(&launch)?;
    Ok(LaunchedRuntime { sandbox, listener: network.listener, task_root })
}

/// An [`Instance`] for a launched sandbox: its output attributed to requests (and sent to
/// `output`, within its limits), its Runtime API, its control.
pub(crate) fn assemble(
    spec: &InstanceSpec,
    api: RuntimeApi,
    stdout: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
    stderr: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
    control: Box<dyn crate::SandboxControl>,
    exited: tokio::sync::oneshot::Receiver<Exit>,
    output: Option<LogOutput>,
) -> Instance {
    let label = format!("{}:{}/{}", spec.function, spec.version, spec.instance_id);
    let current = CurrentRequest::default();
    capture(label, stdout, stderr, current.clone(), output);
    Instance::new(spec.instance_id.clone(), spec.config.concurrency, current, api, control, exited)
}

/// Waits until the instance's runtime asks for its first event: then it is Ready (and its
/// start-up-sparing limits apply); otherwise it is stopped and the reason returned.
pub(crate) async fn await_init(instance: Instance, init_timeout: Duration) -> Result<Instance, StartFailure> {
    tracing::Instrument::instrument(await_init_in_span(instance, init_timeout), tracing::info_span!("init")).await
}

async fn await_init_in_span(instance: Instance, init_timeout: Duration) -> Result<Instance, StartFailure> {
    let failure = tokio::select! {
        init = instance.api().init() => match init {
            Ok(InitOutcome::Ready) => None,
            Ok(InitOutcome::Failed { body, error_type }) => Some(StartFailure::Init { body, error_type }),
            Err(_) => Some(StartFailure::Exited(Exit::Code(-1))),
        },
        exit = instance.wait_exit() => Some(StartFailure::Exited(exit.unwrap_or(Exit::Code(-1)))),
        _ = tokio::time::sleep(init_timeout) => Some(StartFailure::TimedOut(init_timeout)),
    };
    match failure {
        None => {
            instance.initialised();
            instance.transition(InstanceState::Ready).expect("Starting -> Ready is allowed");
            Ok(instance)
        }
        Some(f) => {
            let _ = instance.transition(InstanceState::Failed);
            instance.stop();
            Err(f)
        }
    }
}
