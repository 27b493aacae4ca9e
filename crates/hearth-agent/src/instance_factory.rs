//! The one place instances come from: given a spec, a stem cell of the pool when one fits
//! and is ready, otherwise a runtime process launched for it. Every way of starting an
//! instance (a container image, WebAssembly, an HTTP application, a remote node) plugs in
//! here; callers above (the gateway's launcher) only reserve memory and ask.

use std::sync::Arc;
use std::time::Duration;

use crate::driver::SandboxDriver;
use crate::instance::Instance;
use crate::instance_start::{InstanceSpec, StartFailure, start_instance_logged};
use crate::log_capture::LogOutput;
use crate::runtimes::Runtimes;
use crate::stem_cells::{CellKey, StemCells};

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
    init_timeout: Duration,
}

impl InstanceFactory {
    /// `stem_cells`: the pool of pre-warmed sandboxes, if any; `init_timeout`: how long a
    /// runtime may take to ask for its first event.
    pub fn new(
        driver: Arc<dyn SandboxDriver>,
        runtimes: Runtimes,
        stem_cells: Option<StemCells>,
        init_timeout: Duration,
    ) -> Self {
        Self { driver, runtimes, stem_cells, init_timeout }
    }

    /// The language runtimes this node has.
    pub fn runtimes(&self) -> &Runtimes {
        &self.runtimes
    }

    /// An instance of `spec`, ready for its first event, its output sent to `output`. From
    /// a stem cell (which brings its own id) when the function can use one and one is ready.
    pub async fn start(&self, spec: &InstanceSpec, output: Option<LogOutput>) -> Result<Instance, StartFailure> {
        if let Some(pool) = &self.stem_cells
            && let Some(started) = pool.specialize(spec, self.init_timeout, output.clone()).await
        {
            return started.map(Instance::made_from_stem_cell);
        }
        start_instance_logged(self.driver.as_ref(), &self.runtimes, spec, self.init_timeout, output).await
    }

    /// Stem cells ready per key, and the pool's memory budget in MB (none without a pool).
    pub fn stem_cells(&self) -> (Vec<(CellKey, usize)>, u32) {
        self.stem_cells.as_ref().map_or((vec![], 0), StemCells::status)
    }
}
