//! The one place instances come from: given a spec, a stem cell of the pool when one fits
//! and is ready, otherwise a runtime process launched for it. Every way of starting an
//! instance (a container image, WebAssembly, an HTTP application, a remote node) plugs in
//! here; callers above (the gateway's launcher) only reserve memory and ask.

use std::sync::Arc;
use std::time::Duration;

use hearth_types::{Runtime, StartSource};
use hearth_wasm::{LoadSource, Programs};

use crate::driver::SandboxDriver;
use crate::instance::Instance;
use crate::instance_start::{InstanceSpec, StartFailure, start_instance_logged};
use crate::log_capture::LogOutput;
use crate::runtimes::{RuntimeError, Runtimes};
use crate::stem_cells::{CellKey, StemCells};
use crate::wasm_instance::WasmInstance;

/// A fresh instance id: 12 hexadecimal characters, used in cgroup names, log streams and
/// listings.
pub fn new_instance_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// Starts instances on this node. Cheap to clone.
#[derive(Clone)]
pub struct InstanceFactory {
    driver: Arc<dyn SandboxDriver>,
    runtimes: Runtimes,
    stem_cells: Option<StemCells>,
    /// Compiled WebAssembly programs (none when their cache folder cannot be made).
    wasm: Option<Arc<Programs>>,
    init_timeout: Duration,
}

impl InstanceFactory {
    /// `stem_cells`: the pool of pre-warmed sandboxes, if any; `wasm_dir`: where compiled
    /// WebAssembly programs are kept; `init_timeout`: how long a runtime may take to ask for
    /// its first event.
    pub fn new(
        driver: Arc<dyn SandboxDriver>,
        runtimes: Runtimes,
        stem_cells: Option<StemCells>,
        wasm_dir: std::path::PathBuf,
        init_timeout: Duration,
    ) -> Self {
        let wasm = Programs::open(wasm_dir.clone())
            .inspect_err(|e| tracing::error!(%e, dir = %wasm_dir.display(), "cannot open the WebAssembly cache; wasm functions will not start"))
            .ok()
            .map(Arc::new);
        Self { driver, runtimes, stem_cells, wasm, init_timeout }
    }

    /// The language runtimes this node has.
    pub fn runtimes(&self) -> &Runtimes {
        &self.runtimes
    }

    /// An instance of `spec`, ready for its first event, its output sent to `output`. From
    /// a stem cell (which brings its own id) when the function can use one and one is ready.
    pub async fn start(&self, spec: &InstanceSpec, output: Option<LogOutput>) -> Result<Instance, StartFailure> {
        if spec.config.runtime == Runtime::Wasm {
            return self.start_wasm(spec, output).await;
        }
        if let Some(pool) = &self.stem_cells
            && let Some(started) = pool.specialize(spec, self.init_timeout, output.clone()).await
        {
            return started.map(Instance::made_from_stem_cell);
        }
        start_instance_logged(self.driver.as_ref(), &self.runtimes, spec, self.init_timeout, output).await
    }

    /// A WebAssembly instance: the program at the handler's path in the package, compiled
    /// once per code digest (the code folder is named after it) and loaded once per node.
    async fn start_wasm(&self, spec: &InstanceSpec, output: Option<LogOutput>) -> Result<Instance, StartFailure> {
        let programs = self.wasm.as_ref().ok_or(RuntimeError::Unavailable(Runtime::Wasm))?;
        let digest = spec.code_dir.file_name().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
        let module = spec.code_dir.join(&spec.config.handler);
        let (program, loaded) = programs.load(&digest, &spec.config.handler, &module).await?;
        let source = match loaded {
            LoadSource::Compiled => StartSource::WasmCompile,
            LoadSource::DiskCache => StartSource::WasmDiskCache,
            LoadSource::Memory => StartSource::WasmMemory,
        };
        let wasm = WasmInstance::new(program, spec, output.map(|o| o.sink));
        Ok(Instance::wasm(spec.instance_id.clone(), spec.config.concurrency, wasm, source))
    }

    /// Stem cells ready per key, and the pool's memory budget in MB (none without a pool).
    pub fn stem_cells(&self) -> (Vec<(CellKey, usize)>, u32) {
        self.stem_cells.as_ref().map_or((vec![], 0), StemCells::status)
    }
}
