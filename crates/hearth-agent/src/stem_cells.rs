//! Pre-warmed sandboxes (OpenWhisk's stem cells, Fission's pool manager): per runtime and
//! memory size, sandboxes whose interpreter is already started with the bootstrap loaded,
//! waiting for a function. A cold start takes one and specializes it: the function's code is
//! hard-linked into the cell's (read-only) `/var/task`, its whole environment is sent on the
//! runtime's stdin, and the runtime imports the handler. Namespaces, cgroup (with the memory
//! limit of the key), privileges and interpreter start-up are all paid before the request.
//! A `provided` cell waits in a small Python shim that then execs the function's own
//! `bootstrap` (`runtimes/provided/cell.py`): everything but the function's start is paid.
//!
//! The pool refills in the background, one cell at a time; each key's target follows its
//! recent demand (cold starts that wanted a cell), within a memory budget counted in the
//! cells' memory limits.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_types::{FunctionConfig, Network, Runtime, limits};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, oneshot};

use crate::driver::{Exit, SandboxControl, SandboxDriver};
use crate::instance::Instance;
use crate::instance_start::{
    InstanceSpec, LaunchedRuntime, RuntimeProcess, StartFailure, assemble, await_init, default_environment,
    lambda_environment, launch_runtime,
};
use crate::log_capture::LogOutput;
use crate::runtime_api::RuntimeApi;
use crate::runtimes::Runtimes;

/// What a pre-warmed cell is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CellKey {
    pub runtime: Runtime,
    pub memory_mb: u32,
}

/// Environment variables that change how an interpreter starts: functions setting them
/// start their own.
const STARTUP_VARIABLES: &[&str] = &["PYTHON", "NODE_", "LD_", "UV_", "TZ", "LANG", "LC_"];

impl CellKey {
    /// The cells a function's instances can be made from, if any: Python, Node and
    /// `provided` with the default network and ephemeral storage, and for Python and Node no
    /// start-up variables (a `provided` cell execs the function's `bootstrap` with its whole
    /// environment, so every variable applies).
    pub fn for_config(c: &FunctionConfig) -> Option<Self> {
        let pooled_runtime = matches!(c.runtime, Runtime::Python3 | Runtime::Nodejs | Runtime::Provided);
        let default_storage = i64::from(c.ephemeral_storage_mb) == limits::EPHEMERAL_STORAGE_MB.default;
        let plain_env = c.runtime == Runtime::Provided
            || !c.environment.keys().any(|k| STARTUP_VARIABLES.iter().any(|p| k.starts_with(p)));
        (pooled_runtime && default_storage && plain_env && c.network == Network::None)
            .then_some(Self { runtime: c.runtime, memory_mb: c.memory_mb })
    }

    fn parse(s: &str) -> Option<Self> {
        let (runtime, memory) = s.split_once(':')?;
        Some(Self { runtime: runtime.parse().ok()?, memory_mb: memory.parse().ok()? })
    }
}

impl std::str::FromStr for CellKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| format!("expected RUNTIME:MEMORY_MB, e.g. python3:128, got {s:?}"))
    }
}

/// How the pool behaves.
#[derive(Debug, Clone)]
pub struct StemCellSettings {
    /// Keys kept ready from the start (one cell each), e.g. python3:128.
    pub keys: Vec<CellKey>,
    /// The most memory (sum of the cells' memory limits) the pool may hold, in MB.
    pub budget_mb: u32,
    /// The most cells per key.
    pub max_per_key: usize,
}

impl Default for StemCellSettings {
    fn default() -> Self {
        Self { keys: vec![], budget_mb: 2048, max_per_key: 8 }
    }
}

type Reader = Pin<Box<dyn AsyncRead + Send>>;

/// A started runtime waiting for its function.
struct Cell {
    id: String,
    dir: PathBuf,
    task_root: PathBuf,
    listener: std::net::TcpListener,
    stdin: Pin<Box<dyn AsyncWrite + Send>>,
    stdout: Reader,
    stderr: Reader,
    exited: oneshot::Receiver<Exit>,
    control: Box<dyn SandboxControl>,
}

#[derive(Default)]
struct State {
    ready: HashMap<CellKey, Vec<Cell>>,
    starting: Option<CellKey>,
    /// When cold starts wanted a cell of each key (the last 10 minutes).
    demand: HashMap<CellKey, VecDeque<Instant>>,
    /// Keys whose last cell failed to start, and when: left alone for a minute.
    broken: HashMap<CellKey, Instant>,
}

struct Inner {
    driver: Arc<dyn SandboxDriver>,
    runtimes: Runtimes,
    cells_dir: PathBuf,
    settings: StemCellSettings,
    state: Mutex<State>,
    wake: Arc<Notify>,
}

/// The pool of pre-warmed cells. Cheap to clone; the refill task ends with the last clone.
#[derive(Clone)]
pub struct StemCells {
    inner: Arc<Inner>,
}

const DEMAND_MEMORY: Duration = Duration::from_secs(600);
const READY_TIMEOUT: Duration = Duration::from_secs(30);

impl StemCells {
    /// Starts the pool; `cells_dir` holds the cells' `/var/task` folders (emptied now: cells do
    /// not survive their server) and must be on the code cache's filesystem, so code can be
    /// hard-linked.
    pub fn start(
        driver: Arc<dyn SandboxDriver>,
        runtimes: Runtimes,
        cells_dir: PathBuf,
        settings: StemCellSettings,
    ) -> std::io::Result<Self> {
        let _ = std::fs::remove_dir_all(&cells_dir);
        std::fs::create_dir_all(&cells_dir)?;
        let inner =
            Arc::new(Inner { driver, runtimes, cells_dir, settings, state: Mutex::default(), wake: Arc::default() });
        tokio::spawn(refill(Arc::downgrade(&inner)));
        inner.wake.notify_one();
        Ok(Self { inner })
    }

    /// Cells ready per key, and the pool's memory budget (MB).
    pub fn status(&self) -> (Vec<(CellKey, usize)>, u32) {
        let st = self.inner.state.lock().expect("pool lock");
        let mut keys: Vec<(CellKey, usize)> =
            st.ready.iter().filter(|(_, c)| !c.is_empty()).map(|(k, c)| (*k, c.len())).collect();
        keys.sort_by_key(|(k, _)| (k.runtime.as_str(), k.memory_mb));
        (keys, self.inner.settings.budget_mb)
    }

    /// An instance of `spec` made from a pre-warmed cell, or `None` when the function cannot
    /// use one or none is ready (the caller starts one the usual way).
    pub async fn specialize(
        &self,
        spec: &InstanceSpec,
        init_timeout: Duration,
        output: Option<LogOutput>,
    ) -> Option<Result<Instance, StartFailure>> {
        let key = CellKey::for_config(&spec.config)?;
        if !self.inner.runtimes.prewarmable(key.runtime) {
            return None;
        }
        // What a start without a cell would refuse, before a cell is spent on it.
        if let Err(e) = self.inner.runtimes.check_code(key.runtime, &spec.code_dir) {
            return Some(Err(e.into()));
        }
        let cell = {
            let mut st = self.inner.state.lock().expect("pool lock");
            st.demand.entry(key).or_default().push_back(Instant::now());
            let ready = st.ready.entry(key).or_default();
            let mut found = None;
            while let Some(mut c) = ready.pop() {
                // A cell whose runtime died while waiting is dropped (and its folder removed).
                if matches!(c.exited.try_recv(), Err(oneshot::error::TryRecvError::Empty)) {
                    found = Some(c);
                    break;
                }
                discard(c);
            }
            found
        };
        self.inner.wake.notify_one();
        Some(self.become_function(cell?, spec, init_timeout, output).await)
    }

    async fn become_function(
        &self,
        mut cell: Cell,
        spec: &InstanceSpec,
        init_timeout: Duration,
        output: Option<LogOutput>,
    ) -> Result<Instance, StartFailure> {
        let mut spec = spec.clone();
        spec.instance_id = cell.id.clone();
        if let Err(e) = link_tree(&spec.code_dir, &cell.dir) {
            discard(cell);
            return Err(StartFailure::Io(e));
        }
        let api =
            RuntimeApi::serve(tokio::net::TcpListener::from_std(cell.listener)?, spec.config.concurrency as usize)?;
        let env: HashMap<String, String> =
            lambda_environment(&spec, &cell.task_root, api.address()).into_iter().collect();
        let mut line = serde_json::to_vec(&serde_json::json!({ "env": env })).expect("JSON of strings");
        line.push(b'\n');
        let sent = async {
            cell.stdin.write_all(&line).await?;
            cell.stdin.flush().await
        };
        let sent = sent.await;
        let control = Box::new(WithCellDir { inner: cell.control, dir: cell.dir });
        let instance = assemble(&spec, api, cell.stdout, cell.stderr, control, cell.exited, output);
        if let Err(e) = sent {
            instance.stop();
            return Err(StartFailure::Io(e));
        }
        await_init(instance, init_timeout).await
    }
}

fn discard(cell: Cell) {
    cell.control.kill();
    drop(WithCellDir { inner: cell.control, dir: cell.dir });
}

/// How many cells `key` should have: its recent demand, at least one while it has any (or
/// is configured), at most `max`.
fn target(st: &mut State, key: CellKey, configured: bool, max: usize, now: Instant) -> usize {
    let demand = st.demand.entry(key).or_default();
    while demand.front().is_some_and(|t| now.duration_since(*t) > DEMAND_MEMORY) {
        demand.pop_front();
    }
    // Cold starts in the busiest 10 s of the last minute: what a burst would take at once.
    // (Demand is in time order: one sliding window over it.)
    let recent: Vec<Instant> =
        demand.iter().copied().filter(|t| now.duration_since(*t) <= Duration::from_secs(60)).collect();
    let (mut peak, mut first) = (0, 0);
    for (last, t) in recent.iter().enumerate() {
        while t.duration_since(recent[first]) >= Duration::from_secs(10) {
            first += 1;
        }
        peak = peak.max(last + 1 - first);
    }
    let floor = usize::from(configured || !demand.is_empty());
    peak.clamp(floor, max.max(floor))
}

/// The key most short of its target, if any. Cells beyond their key's target are dropped
/// first; when a key with no cell does not fit in the budget, a key with several gives one
/// up (demand moves between keys).
fn next_job(inner: &Inner) -> Option<CellKey> {
    let mut st = inner.state.lock().expect("pool lock");
    if st.starting.is_some() {
        return None;
    }
    let now = Instant::now();
    let mut keys: Vec<CellKey> = st.demand.keys().copied().chain(inner.settings.keys.iter().copied()).collect();
    keys.extend(st.ready.keys().copied());
    keys.sort_by_key(|k| (k.memory_mb, k.runtime.as_str()));
    keys.dedup();
    st.broken.retain(|_, at| now.duration_since(*at) < Duration::from_secs(60));
    let mut short = vec![];
    for key in keys {
        let want = target(&mut st, key, inner.settings.keys.contains(&key), inner.settings.max_per_key, now);
        let ready = st.ready.entry(key).or_default();
        while ready.len() > want {
            discard(ready.remove(0));
        }
        let have = ready.len();
        if !st.broken.contains_key(&key) {
            short.push(Shortfall { key, have, want });
        }
    }
    let held: Vec<(CellKey, usize)> = st.ready.iter().map(|(k, c)| (*k, c.len())).collect();
    let (key, victims) = choose(&short, &held, inner.settings.budget_mb)?;
    for victim in victims {
        if let Some(cells) = st.ready.get_mut(&victim)
            && !cells.is_empty()
        {
            discard(cells.remove(0));
        }
    }
    st.starting = Some(key);
    Some(key)
}

/// How many cells a key has and should have.
#[derive(Debug, Clone, Copy)]
struct Shortfall {
    key: CellKey,
    have: usize,
    want: usize,
}

/// The key to make a cell for next, and the cells (one per key named) to drop first to fit
/// it in `budget_mb`; `held` is the cells each key has. Keys with no cell come first, then
/// the most short. One that does not fit is skipped, so a key held at the budget never
/// stops the others; a key with no cell may take one from a key with several (only then,
/// or two keys in demand would take turns evicting each other).
fn choose(short: &[Shortfall], held: &[(CellKey, usize)], budget_mb: u32) -> Option<(CellKey, Vec<CellKey>)> {
    let mut order: Vec<&Shortfall> = short.iter().filter(|s| s.have < s.want).collect();
    order.sort_by_key(|s| (s.have > 0, std::cmp::Reverse(s.want - s.have)));
    let used: u32 = held.iter().map(|(k, n)| k.memory_mb * *n as u32).sum();
    for s in order {
        if used + s.key.memory_mb <= budget_mb {
            return Some((s.key, vec![]));
        }
        if s.have > 0 {
            continue;
        }
        let mut counts: Vec<(CellKey, usize)> = held.iter().filter(|(k, _)| *k != s.key).copied().collect();
        let (mut freed, mut victims) = (0, vec![]);
        while used - freed + s.key.memory_mb > budget_mb {
            let Some(victim) = counts.iter_mut().filter(|(_, n)| *n > 1).max_by_key(|(_, n)| *n) else { break };
            victim.1 -= 1;
            freed += victim.0.memory_mb;
            victims.push(victim.0);
        }
        if used - freed + s.key.memory_mb <= budget_mb {
            return Some((s.key, victims));
        }
    }
    None
}

/// The refill loop: one cell at a time, while some key is short; otherwise waits to be woken
/// (or re-checks every 10 s as demand ages).
async fn refill(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else { return };
        match next_job(&strong) {
            Some(key) => {
                let made = make_cell(&strong, key).await;
                let failed = {
                    let mut st = strong.state.lock().expect("pool lock");
                    st.starting = None;
                    match made {
                        Ok(cell) => {
                            st.ready.entry(key).or_default().push(cell);
                            false
                        }
                        Err(e) => {
                            tracing::warn!(runtime = %key.runtime, memory_mb = key.memory_mb, %e, "cannot pre-warm a sandbox");
                            // Not retried in a loop: left alone for a minute.
                            st.broken.insert(key, Instant::now());
                            true
                        }
                    }
                };
                drop(strong);
                if failed {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            None => {
                let wake = strong.wake.clone();
                drop(strong);
                let _ = tokio::time::timeout(Duration::from_secs(10), wake.notified()).await;
            }
        }
    }
}

/// Starts a cell's sandbox with `dir` as its (empty) `/var/task`: the sandbox, its Runtime
/// API listener, and where it sees its task root.
async fn launch_cell(inner: &Inner, key: CellKey, id: &str, dir: &Path) -> Result<LaunchedRuntime, StartFailure> {
    let process = RuntimeProcess {
        instance_id: id,
        runtime: key.runtime,
        code_dir: dir,
        network: Network::None,
        memory_mb: key.memory_mb,
        tmp_mb: limits::EPHEMERAL_STORAGE_MB.default as u32,
        prewarmed: true,
    };
    // What the interpreter starts with; the function's own environment comes on stdin.
    let env = |task_root: &Path, api: std::net::SocketAddr| {
        let root = task_root.display().to_string();
        let mut env = default_environment(&root);
        env.insert("LAMBDA_TASK_ROOT".into(), root);
        env.insert("AWS_LAMBDA_RUNTIME_API".into(), api.to_string());
        env.insert("HEARTH_PREWARMED".into(), "1".into());
        env.into_iter().collect()
    };
    launch_runtime(inner.driver.as_ref(), &inner.runtimes, &process, env).await
}

async fn make_cell(inner: &Inner, key: CellKey) -> Result<Cell, StartFailure> {
    let id = crate::instance_factory::new_instance_id();
    // Named `.starting-<id>` until the runtime is ready, then `<id>` (the sandbox's bind
    // mount follows the folder).
    let dir = inner.cells_dir.join(format!(".starting-{id}"));
    std::fs::create_dir_all(&dir)?;
    let launched = launch_cell(inner, key, &id, &dir).await;
    let LaunchedRuntime { sandbox, listener, task_root } = match launched {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let mut stdout = BufReader::new(sandbox.stdout);
    let mut first = String::new();
    let ready = tokio::time::timeout(READY_TIMEOUT, stdout.read_line(&mut first)).await;
    let cell = Cell {
        id,
        dir,
        task_root,
        listener,
        stdin: sandbox.stdin.expect("stdin was asked for"),
        stdout: Box::pin(stdout),
        stderr: sandbox.stderr,
        exited: sandbox.exited,
        control: sandbox.control,
    };
    match ready {
        Ok(Ok(_)) if first.trim_end() == "HEARTH_PREWARMED_READY" => {
            let mut cell = cell;
            let named = inner.cells_dir.join(&cell.id);
            std::fs::rename(&cell.dir, &named)?;
            cell.dir = named;
            Ok(cell)
        }
        Err(_) => {
            discard(cell);
            Err(StartFailure::TimedOut(READY_TIMEOUT))
        }
        Ok(_) => {
            // It ended (or said something else) before it was ready.
            tracing::debug!(first = %first.trim_end(), "a pre-warmed runtime did not become ready");
            discard(cell);
            Err(StartFailure::Exited(Exit::Code(-1)))
        }
    }
}

/// Hard-links the tree at `from` into the folder `to` (created if missing, else empty): code
/// appears in a cell's `/var/task` without copying. Symbolic links are recreated as they are.
pub(crate) fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if !to.exists() {
        std::fs::create_dir(to)?;
    }
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            link_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// A sandbox control that also removes the cell's folder when the instance goes.
struct WithCellDir {
    inner: Box<dyn SandboxControl>,
    dir: PathBuf,
}

impl SandboxControl for WithCellDir {
    fn kill(&self) {
        self.inner.kill();
    }
    fn oom_killed(&self) -> bool {
        self.inner.oom_killed()
    }
    fn peak_memory_bytes(&self) -> Option<u64> {
        self.inner.peak_memory_bytes()
    }
    fn memory_bytes(&self) -> Option<u64> {
        self.inner.memory_bytes()
    }
    fn initialised(&self) {
        self.inner.initialised();
    }
}

impl Drop for WithCellDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_types::FunctionSpec;

    fn config(extra: FunctionSpec) -> FunctionConfig {
        FunctionSpec { runtime: "python3".into(), handler: Some("main.handler".into()), ..extra }.validate().unwrap()
    }

    #[test]
    fn only_plain_functions_use_cells() {
        assert_eq!(
            CellKey::for_config(&config(FunctionSpec::default())),
            Some(CellKey { runtime: Runtime::Python3, memory_mb: 128 })
        );
        let env = [("PYTHONPATH".to_owned(), "/x".to_owned())].into();
        assert_eq!(CellKey::for_config(&config(FunctionSpec { environment: env, ..Default::default() })), None);
        let egress = FunctionSpec { network: Some("egress".into()), ..Default::default() };
        assert_eq!(CellKey::for_config(&config(egress)), None);
        let big_tmp = FunctionSpec { ephemeral_storage_mb: Some(1024), ..Default::default() };
        assert_eq!(CellKey::for_config(&config(big_tmp)), None);
        // A `provided` cell execs the function's bootstrap with its whole environment.
        let custom = FunctionSpec {
            runtime: "provided".into(),
            handler: Some("bootstrap".into()),
            environment: [("LD_PRELOAD".to_owned(), "/var/task/lib/x.so".to_owned())].into(),
            ..Default::default()
        };
        let custom = custom.validate().unwrap();
        assert_eq!(CellKey::for_config(&custom), Some(CellKey { runtime: Runtime::Provided, memory_mb: 128 }));
        let wasm = FunctionSpec { runtime: "wasm".into(), handler: Some("main.wasm".into()), ..Default::default() };
        assert_eq!(CellKey::for_config(&wasm.validate().unwrap()), None);
        assert_eq!("nodejs:256".parse::<CellKey>().unwrap(), CellKey { runtime: Runtime::Nodejs, memory_mb: 256 });
        assert!("python3".parse::<CellKey>().is_err());
    }

    #[test]
    fn a_key_at_the_budget_does_not_starve_the_others() {
        let key = |runtime, memory_mb| CellKey { runtime, memory_mb };
        let (py, node, custom) = (key(Runtime::Python3, 100), key(Runtime::Nodejs, 100), key(Runtime::Provided, 100));
        let short = |key, have, want| Shortfall { key, have, want };
        // The pool is full (4 of 400 MB): Python wants 8 and has 2, Node has its 2, the
        // `provided` key wants its first. Python does not fit and has cells: `provided`
        // goes next, one of the keys with several giving up a cell.
        let held = [(py, 2), (node, 2)];
        let wants = [short(py, 2, 8), short(node, 2, 2), short(custom, 0, 1)];
        let (chosen, victims) = choose(&wants, &held, 400).unwrap();
        assert_eq!((chosen, victims.len()), (custom, 1));
        // With room, the key with no cell still comes before the most short.
        assert_eq!(choose(&wants, &held, 1000), Some((custom, vec![])));
        assert_eq!(choose(&[short(py, 2, 8)], &held, 1000), Some((py, vec![])));
        // Full and nobody with several cells to spare: nothing to do.
        assert_eq!(choose(&[short(py, 1, 8), short(custom, 0, 1)], &[(py, 1), (node, 1)], 200), None);
    }

    #[test]
    fn targets_follow_bursts_of_demand() {
        let key = CellKey { runtime: Runtime::Python3, memory_mb: 128 };
        let now = Instant::now();
        let mut st = State::default();
        assert_eq!(target(&mut st, key, false, 8, now), 0, "no demand, not configured");
        assert_eq!(target(&mut st, key, true, 8, now), 1, "configured keys keep one");
        // Two cold starts 50 s ago, then (below) a burst of 5 within a few ms 30 s ago: the
        // target is the busiest 10 s, the 5, not all 7 of the last minute.
        st.demand.entry(key).or_default().extend([now - Duration::from_secs(50), now - Duration::from_secs(49)]);
        assert_eq!(target(&mut st, key, false, 8, now), 2);
        st.demand
            .entry(key)
            .or_default()
            .extend((0..5).map(|i| now - Duration::from_secs(30) + Duration::from_millis(i)));
        assert_eq!(target(&mut st, key, false, 8, now), 5, "a burst of 5 cold starts");
        assert_eq!(target(&mut st, key, false, 3, now), 3, "capped");
        assert_eq!(target(&mut st, key, false, 8, now + Duration::from_secs(120)), 1, "old demand keeps one");
        assert_eq!(target(&mut st, key, false, 8, now + Duration::from_secs(700)), 0, "forgotten after 10 minutes");
    }
}
