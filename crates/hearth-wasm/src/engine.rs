//! The one wasmtime engine of the process, made on first use: Cranelift, epoch
//! interruption, the pooling allocator, and the linkers (WASI preview 1 for modules, WASI
//! preview 2 and `wasi:http` for components). One per process, not per server: the pool
//! reserves address space for every slot up front (terabytes of it, none of it memory), and
//! servers that share a process (tests, benchmarks) share the pool.

use std::sync::OnceLock;

use wasmtime::component::ResourceTable;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::failure::LoadError;
use crate::limits::{Limiter, MAX_INSTANCES_PER_RUN, MAX_MEMORIES_PER_RUN, MAX_TABLES_PER_RUN};
use crate::outgoing::NoOutgoingRequests;
use crate::ticker::Ticker;

/// Instances that may run at once in the process (each request is one); past it a run
/// fails as busy rather than waiting.
pub const MAX_CONCURRENT_RUNS: u32 = 1000;
/// The largest linear memory any function may have: all of wasm32's 4 GiB.
const MAX_MEMORY_BYTES: usize = 4 << 30;
/// Pages of each linear memory kept resident between runs (zeroed in place, not unmapped
/// and faulted in again: page faults are slow on virtual machines). Not with
/// `PAGEMAP_SCAN`: it finds only the written pages that are present, so one swapped out or
/// being migrated when the run ends would keep its contents for the next run of the slot,
/// which may be another function's.
const KEEP_RESIDENT_BYTES: usize = 1 << 20;

/// Store data of a WASI preview 1 module's run.
pub(crate) struct ModuleState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: Limiter,
}

/// Store data of a component's run (a `wasi:cli` command or a `wasi:http` proxy).
pub(crate) struct ComponentState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) hooks: NoOutgoingRequests,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) modules: wasmtime::Linker<ModuleState>,
    pub(crate) components: wasmtime::component::Linker<ComponentState>,
    pub(crate) ticker: Ticker,
    /// Names compiled artefacts: they load only into an engine with the same settings.
    pub(crate) compatibility: String,
}

/// The process's engine, made on first call.
pub(crate) fn shared() -> Result<&'static Shared, LoadError> {
    static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
    SHARED.get_or_init(|| make().map_err(|e| format!("{e:#}"))).as_ref().map_err(|e| LoadError::Cache(e.clone()))
}

fn make() -> wasmtime::Result<Shared> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(MAX_CONCURRENT_RUNS)
        .total_core_instances(4 * MAX_CONCURRENT_RUNS)
        .total_memories(2 * MAX_CONCURRENT_RUNS)
        .total_tables(4 * MAX_CONCURRENT_RUNS)
        .total_stacks(MAX_CONCURRENT_RUNS)
        .max_memory_size(MAX_MEMORY_BYTES)
        // One run takes few slots: a component with hundreds of core instances or memories
        // could otherwise hold the pool for everyone.
        .max_core_instances_per_component(MAX_INSTANCES_PER_RUN as u32)
        .max_memories_per_component(MAX_MEMORIES_PER_RUN as u32)
        .max_tables_per_component(MAX_TABLES_PER_RUN as u32)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(64 << 10)
        .pagemap_scan(Enabled::No);
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .wasm_component_model(true)
        .cranelift_opt_level(OptLevel::Speed)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)?;
    let mut modules = wasmtime::Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut modules, |s: &mut ModuleState| &mut s.wasi)?;
    let mut components = wasmtime::component::Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut components)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut components)?;
    let compatibility = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        format!("{:016x}", h.finish())
    };
    let ticker = Ticker::start(engine.clone())?;
    Ok(Shared { engine, modules, components, ticker, compatibility })
}
