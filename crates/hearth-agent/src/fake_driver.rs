//! A sandbox driver without processes, for tests of the logic above the driver (the
//! gateway's version pools, the instance factory). Each "runtime process" is a task of this
//! process that speaks the Runtime API over loopback HTTP as a real runtime does, so the
//! Runtime API, the instance state machine and everything above them run for real; only
//! the process, its sandbox and its interpreter are left out.
//!
//! The fake runtime answers each event with `{"echo": <event>, "instance": <its id>}`. An
//! event can ask for more: `{"sleep_ms": N}` answers after N ms, `{"hold": true}` answers
//! once the test calls [`FakeDriver::open`], `{"fail": "Type"}` reports a function error of
//! that type, `{"exit": true}` ends the "process" mid-invocation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, watch};

use crate::driver::{Exit, LaunchSpec, Sandbox, SandboxControl, SandboxDriver, SandboxError};

/// How fake runtimes start.
#[derive(Debug, Clone, Default)]
pub struct FakeInit {
    /// Time before the runtime asks for its first event.
    pub delay: Duration,
    /// Report this error type to `/init/error` instead of becoming ready.
    pub error: Option<String>,
}

/// The driver. Cheap to share (`Arc`).
#[derive(Default)]
pub struct FakeDriver {
    init: Mutex<FakeInit>,
    launched: AtomicUsize,
    killed: Arc<AtomicUsize>,
    /// Events with `"hold": true` wait until this is true.
    gate: Arc<watch::Sender<bool>>,
}

impl FakeDriver {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// How runtimes launched from now on start.
    pub fn set_init(&self, init: FakeInit) {
        *self.init.lock().unwrap_or_else(|p| p.into_inner()) = init;
    }

    /// Runtime processes launched so far.
    pub fn launched(&self) -> usize {
        self.launched.load(Ordering::SeqCst)
    }

    /// Runtime processes killed so far.
    pub fn killed(&self) -> usize {
        self.killed.load(Ordering::SeqCst)
    }

    /// Lets every held event (and every later one) be answered.
    pub fn open(&self) {
        self.gate.send_replace(true);
    }

    /// Holds `"hold": true` events again until the next [`FakeDriver::open`].
    pub fn close(&self) {
        self.gate.send_replace(false);
    }
}

struct FakeControl {
    task: tokio::task::AbortHandle,
    exit: Arc<Mutex<Option<oneshot::Sender<Exit>>>>,
    killed: Arc<AtomicUsize>,
}

impl SandboxControl for FakeControl {
    fn kill(&self) {
        self.task.abort();
        if let Some(tx) = self.exit.lock().unwrap_or_else(|p| p.into_inner()).take() {
            self.killed.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(Exit::Signal(9));
        }
    }
}

impl SandboxDriver for FakeDriver {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn task_root(&self, host_dir: &std::path::Path) -> std::path::PathBuf {
        host_dir.to_path_buf()
    }

    fn runtime_root(&self, host_dir: &std::path::Path) -> std::path::PathBuf {
        host_dir.to_path_buf()
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<Sandbox, SandboxError> {
        self.launched.fetch_add(1, Ordering::SeqCst);
        let env = |key: &str| spec.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let api = env("AWS_LAMBDA_RUNTIME_API").unwrap_or_default();
        let workers = env("HEARTH_CONCURRENCY").and_then(|c| c.parse().ok()).unwrap_or(1usize).max(1);
        let runtime = FakeRuntime {
            api,
            id: spec.instance_id.clone(),
            init: self.init.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            gate: self.gate.subscribe(),
        };
        let (tx, exited) = oneshot::channel();
        let exit = Arc::new(Mutex::new(Some(tx)));
        let on_exit = exit.clone();
        let task = tokio::spawn(async move {
            let code = runtime.run(workers).await;
            if let Some(tx) = on_exit.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = tx.send(code);
            }
        });
        let control = FakeControl { task: task.abort_handle(), exit, killed: self.killed.clone() };
        Ok(Sandbox {
            stdin: None,
            stdout: Box::pin(tokio::io::empty()),
            stderr: Box::pin(tokio::io::empty()),
            exited,
            control: Box::new(control),
        })
    }
}

struct FakeRuntime {
    api: String,
    id: String,
    init: FakeInit,
    gate: watch::Receiver<bool>,
}

impl FakeRuntime {
    /// Runs until an event asks it to exit (or it is killed); how it ended.
    async fn run(self, workers: usize) -> Exit {
        tokio::time::sleep(self.init.delay).await;
        if let Some(error_type) = &self.init.error {
            let doc = crate::ErrorDocument::new(error_type, "the fake runtime's init failed");
            let _ = post(&self.api, "/2018-06-01/runtime/init/error", error_type, &doc.to_bytes()).await;
            return Exit::Code(1);
        }
        let this = Arc::new(self);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..workers {
            set.spawn(this.clone().serve());
        }
        // The first worker to end (an `exit` event, or a broken API) ends the process.
        set.join_next().await.and_then(Result::ok).unwrap_or(Exit::Code(-1))
    }

    async fn serve(self: Arc<Self>) -> Exit {
        loop {
            let Ok((headers, event)) = request(&self.api, "GET", "/2018-06-01/runtime/invocation/next", "", b"").await
            else {
                return Exit::Code(-1);
            };
            let request_id = header(&headers, "lambda-runtime-aws-request-id").unwrap_or_default();
            let event: serde_json::Value = serde_json::from_slice(&event).unwrap_or_default();
            if let Some(ms) = event.get("sleep_ms").and_then(serde_json::Value::as_u64) {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if event.get("hold").and_then(serde_json::Value::as_bool) == Some(true) {
                let mut gate = self.gate.clone();
                let _ = gate.wait_for(|open| *open).await;
            }
            if event.get("exit").and_then(serde_json::Value::as_bool) == Some(true) {
                return Exit::Code(2);
            }
            let path = format!("/2018-06-01/runtime/invocation/{request_id}");
            let sent = match event.get("fail").and_then(serde_json::Value::as_str) {
                Some(error_type) => {
                    let doc = crate::ErrorDocument::new(error_type, "the fake function failed");
                    post(&self.api, &format!("{path}/error"), error_type, &doc.to_bytes()).await
                }
                None => {
                    let body = serde_json::json!({"echo": event, "instance": self.id}).to_string();
                    post(&self.api, &format!("{path}/response"), "", body.as_bytes()).await
                }
            };
            if sent.is_err() {
                return Exit::Code(-1);
            }
        }
    }
}

async fn post(api: &str, path: &str, error_type: &str, body: &[u8]) -> std::io::Result<()> {
    request(api, "POST", path, error_type, body).await.map(|_| ())
}

/// One HTTP/1.1 request on its own connection: the response's head and body.
async fn request(
    api: &str,
    method: &str,
    path: &str,
    error_type: &str,
    body: &[u8],
) -> std::io::Result<(String, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect(api).await?;
    let extra = if error_type.is_empty() {
        String::new()
    } else {
        format!("Lambda-Runtime-Function-Error-Type: {error_type}\r\n")
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").ok_or(std::io::ErrorKind::InvalidData)?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    if !head.starts_with("HTTP/1.1 2") {
        return Err(std::io::Error::other(head));
    }
    Ok((head, response[split + 4..].to_vec()))
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}
