//! Programs compiled once per code digest: Cranelift output is kept on disk
//! (`<dir>/<digest>-<module>-<engine>.cwasm`, written whole and renamed into place) and
//! memory-mapped when loaded; a program already loaded on the node is shared by every
//! instance of it. Concurrent loads of one program wait for one compile.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{ExternType, Module, Precompiled};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::engine::{Shared, shared};
use crate::failure::{LoadError, describe};
use crate::program::{Kind, Program};

/// The largest module Hearth compiles (a package's unpacked limit).
pub const MAX_MODULE_BYTES: u64 = 250 * 1024 * 1024;

/// Where a loaded program came from: what a cold start cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadSource {
    /// Never seen on this node: compiled with Cranelift.
    Compiled,
    /// Compiled before: mapped from the on-disk cache.
    DiskCache,
    /// Already loaded for another instance.
    Memory,
}

impl LoadSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compiled => "compile",
            Self::DiskCache => "disk-cache",
            Self::Memory => "memory",
        }
    }
}

type Slot = Arc<tokio::sync::Mutex<Weak<Kind>>>;

/// Programs whose failure to compile or link is remembered at most (then forgotten, and
/// each compiled once more).
const FAILURES_REMEMBERED: usize = 4096;
/// Compiled artefacts up to this size are mapped on the caller's thread.
const MAP_IN_PLACE_BYTES: u64 = 1024 * 1024;

/// The node's compiled programs.
pub struct Programs {
    dir: PathBuf,
    slots: Mutex<HashMap<String, Slot>>,
    /// Programs that do not compile or link: the same bytes never will on this engine, so
    /// a cold start of them fails at once instead of compiling again.
    failed: Mutex<HashMap<String, LoadError>>,
    /// Compiles at once: one per CPU, whatever number of functions cold-start together.
    compiles: tokio::sync::Semaphore,
}

impl Programs {
    /// Opens (creating) the cache folder and removes files a killed server left half written.
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().ends_with(".partial") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self { dir, slots: Mutex::default(), failed: Mutex::default(), compiles: tokio::sync::Semaphore::new(cpus) })
    }

    /// The program in `module` (a file of the package whose digest is `code_digest`, at
    /// `name` in it), compiled or loaded as needed.
    pub async fn load(&self, code_digest: &str, name: &str, module: &Path) -> Result<(Program, LoadSource), LoadError> {
        let shared = shared()?;
        let key =
            format!("{code_digest}-{}-{}", &hex::encode(Sha256::digest(name.as_bytes()))[..16], shared.compatibility);
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.retain(|_, s| Arc::strong_count(s) > 1 || s.try_lock().is_ok_and(|w| w.strong_count() > 0));
            slots.entry(key.clone()).or_default().clone()
        };
        let mut loaded = slot.lock().await;
        if let Some(kind) = loaded.upgrade() {
            return Ok((Program(kind), LoadSource::Memory));
        }
        if let Some(failure) = self.failed.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Err(failure.clone());
        }
        let artefact = self.dir.join(format!("{key}.cwasm"));
        // A small artefact maps in well under 100 µs: in place, not a hand-off to another
        // thread and back (most of a cached cold start); a large one registers much code.
        let mapped = match std::fs::metadata(&artefact).map(|m| m.len()) {
            Err(_) => None,
            Ok(size) => {
                let mapped = match size <= MAP_IN_PLACE_BYTES {
                    true => map(shared, &artefact),
                    false => blocking(move || map(shared, &artefact)).await,
                };
                mapped
                    .inspect_err(
                        |e| tracing::warn!(%e, key, "a cached compiled module did not load; compiling it again"),
                    )
                    .ok()
            }
        };
        let (mapped, source) = match mapped {
            Some(mapped) => (mapped, LoadSource::DiskCache),
            None => match self.compile(shared, &key, module).await {
                Ok(mapped) => (mapped, LoadSource::Compiled),
                Err(e) => return Err(self.remember(&key, e)),
            },
        };
        let kind = Arc::new(link(shared, mapped).map_err(|e| self.remember(&key, e))?);
        *loaded = Arc::downgrade(&kind);
        Ok((Program(kind), source))
    }

    /// Remembers a failure that the same bytes would meet again.
    fn remember(&self, key: &str, failure: LoadError) -> LoadError {
        if matches!(failure, LoadError::NotWasm(_) | LoadError::Compile(_) | LoadError::Link(_)) {
            let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            if failed.len() >= FAILURES_REMEMBERED {
                failed.clear();
            }
            failed.insert(key.to_owned(), failure.clone());
        }
        failure
    }

    async fn compile(&self, shared: &'static Shared, key: &str, module: &Path) -> Result<Mapped, LoadError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let _turn = self.compiles.acquire().await.map_err(|_| LoadError::Cache("the compiler is closed".into()))?;
        let module = module.to_owned();
        let artefact = self.dir.join(format!("{key}.cwasm"));
        let partial =
            self.dir.join(format!("{key}.{}-{}.partial", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
        blocking(move || {
            let bytes = read_module(&module)?;
            let compiled = match header(&bytes) {
                Some(Precompiled::Module) => shared.engine.precompile_module(&bytes),
                Some(Precompiled::Component) => shared.engine.precompile_component(&bytes),
                None => return Err(LoadError::NotWasm(module.display().to_string())),
            }
            .map_err(|e| LoadError::Compile(describe(&e)))?;
            let cache = |e: std::io::Error| LoadError::Cache(format!("{}: {e}", artefact.display()));
            std::fs::write(&partial, &compiled).map_err(cache)?;
            std::fs::rename(&partial, &artefact).map_err(cache)?;
            // Freshly compiled, it fails to map only when it does not fit the engine's
            // limits (two memories, a table over the pool's size...): it never will.
            map(shared, &artefact).map_err(|e| match e {
                LoadError::Cache(why) => LoadError::Link(why),
                other => other,
            })
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, LoadError> + Send + 'static,
) -> Result<T, LoadError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| LoadError::Cache(format!("the compile task failed: {e}")))?
}

fn read_module(path: &Path) -> Result<Vec<u8>, LoadError> {
    let read = |e: std::io::Error| LoadError::Read { path: path.display().to_string(), reason: e.to_string() };
    let meta = std::fs::metadata(path).map_err(read)?;
    if !meta.is_file() || meta.len() > MAX_MODULE_BYTES {
        return Err(LoadError::NotWasm(path.display().to_string()));
    }
    std::fs::read(path).map_err(read)
}

/// What the first eight bytes say: a core module (version 1) or a component.
fn header(bytes: &[u8]) -> Option<Precompiled> {
    match bytes.get(..8)? {
        [0, b'a', b's', b'm', 1, 0, 0, 0] => Some(Precompiled::Module),
        [0, b'a', b's', b'm', 0x0d, 0, 0x01, 0] => Some(Precompiled::Component),
        _ => None,
    }
}

/// A compiled artefact, mapped.
enum Mapped {
    Module(Module),
    Component(Component),
}

/// Maps an artefact this cache wrote.
fn map(shared: &Shared, artefact: &Path) -> Result<Mapped, LoadError> {
    let cache = |e: wasmtime::Error| LoadError::Cache(format!("{}: {}", artefact.display(), describe(&e)));
    // SAFETY: the file was written by `Programs::compile` with this engine's settings (its
    // name carries the engine's compatibility hash), in the server's own data directory.
    let detected = wasmtime::Engine::detect_precompiled_file(artefact)
        .map_err(cache)?
        .ok_or_else(|| LoadError::Cache(format!("{}: not a compiled module or component", artefact.display())))?;
    match detected {
        Precompiled::Module => {
            Ok(Mapped::Module(unsafe { Module::deserialize_file(&shared.engine, artefact) }.map_err(cache)?))
        }
        Precompiled::Component => {
            Ok(Mapped::Component(unsafe { Component::deserialize_file(&shared.engine, artefact) }.map_err(cache)?))
        }
    }
}

/// Links a mapped program: what it imports must be what Hearth provides, and it must export
/// what Hearth runs.
fn link(shared: &Shared, mapped: Mapped) -> Result<Kind, LoadError> {
    let link = |e: wasmtime::Error| LoadError::Link(describe(&e));
    match mapped {
        Mapped::Module(module) => {
            let start = module
                .get_export_index("_start")
                .filter(|_| matches!(module.get_export("_start"), Some(ExternType::Func(_))));
            let Some(start) = start else {
                return Err(LoadError::Link(
                    "the module exports no _start function: build a WASI command (a program with main, for wasm32-wasip1)"
                        .into(),
                ));
            };
            Ok(Kind::Module(shared.modules.instantiate_pre(&module).map_err(link)?, start))
        }
        Mapped::Component(component) => {
            let pre = shared.components.instantiate_pre(&component).map_err(link)?;
            if let Ok(proxy) = ProxyPre::new(pre.clone()) {
                return Ok(Kind::Http(proxy));
            }
            CommandPre::new(pre).map(Kind::Command).map_err(|_| {
                LoadError::Link(
                    "the component exports neither wasi:http/incoming-handler (an HTTP function) nor wasi:cli/run (an event function)"
                        .into(),
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_modules_from_components_and_refuse_the_rest() {
        assert_eq!(header(b"\0asm\x01\0\0\0rest"), Some(Precompiled::Module));
        assert_eq!(header(b"\0asm\x0d\0\x01\0"), Some(Precompiled::Component));
        assert_eq!(header(b"\x7fELF\x02\x01\x01\0"), None);
        assert_eq!(header(b"\0asm"), None);
    }
}
