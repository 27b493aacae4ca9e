//! What the tests share: a cache folder, WAT written to files, the examples built.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_wasm::{LoadError, LoadSource, MemoryBudget, Program, Programs, Run};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub programs: Programs,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let programs = Programs::open(dir.path().join("cache")).unwrap();
        Self { dir, programs }
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// The same cache folder opened again, as by another server.
    pub fn reopen(&self) -> Reopened<'_> {
        Reopened { fixture: self, programs: Programs::open(self.cache_dir()).unwrap() }
    }

    pub fn write_bytes(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.wasm"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    pub fn write_wat(&self, name: &str, wat: &str) -> PathBuf {
        self.write_bytes(name, &wat::parse_str(wat).unwrap())
    }

    /// Loads `wat` as the package `digest-<name>`.
    pub async fn load_wat(&self, name: &str, wat: &str) -> Result<(Program, LoadSource), LoadError> {
        let path = self.write_wat(name, wat);
        self.programs.load(&format!("digest-{name}"), "main.wasm", &path).await
    }
}

pub struct Reopened<'a> {
    fixture: &'a Fixture,
    programs: Programs,
}

impl Reopened<'_> {
    pub async fn load_wat(&self, name: &str, wat: &str) -> Result<(Program, LoadSource), LoadError> {
        let path = self.fixture.write_wat(name, wat);
        self.programs.load(&format!("digest-{name}"), "main.wasm", &path).await
    }
}

/// A run's bounds, and the log lines it writes.
pub fn run_with(memory_mb: u32, timeout: Duration) -> (Run, Arc<Mutex<Vec<String>>>) {
    let logs: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = logs.clone();
    let run = Run {
        env: Arc::new([]),
        args: Arc::new(["main.wasm".into()]),
        timeout,
        memory: MemoryBudget::new(memory_mb),
        log: Arc::new(move |line| sink.lock().unwrap().push(line)),
        cpu: Default::default(),
    };
    (run, logs)
}

pub use hearth_wasm::test_support::example;
