//! The node-local unpack cache: each code package is unpacked once per digest into
//! `<root>/<sha256>/`, read-only, and shared by every instance of every version using it.
//! A package with Python modules then has them compiled in the background (`bytecode.rs`).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hearth_blob::{CodeStore, CodeStoreError, UnpackError, unpack_package};
use hearth_types::{CodeDigest, Runtime};

#[derive(Debug, thiserror::Error)]
pub enum CodeCacheError {
    #[error(transparent)]
    Fetch(#[from] CodeStoreError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error("code cache I/O failed at {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// The prefix of a package being unpacked, beside its final folder.
const UNPACKING: &str = ".unpack-";

pub struct CodeCache {
    root: PathBuf,
    store: CodeStore,
    /// The interpreter that compiles Python packages' bytecode once unpacked (`bytecode.rs`).
    python: Option<PathBuf>,
    /// One unpack at a time per digest; concurrent callers wait for it.
    inflight: Mutex<HashMap<CodeDigest, Arc<tokio::sync::Mutex<()>>>>,
}

impl CodeCache {
    /// The cache at `root`, without the unpacks a killed server left half done (one server
    /// uses a cache folder, as with the pre-warm slots beside it).
    pub fn new(root: PathBuf, store: CodeStore) -> Self {
        remove_unfinished_unpacks(&root);
        Self { root, store, python: None, inflight: Mutex::new(HashMap::new()) }
    }

    /// The same cache, compiling each unpacked package's Python modules with `python` (the
    /// runtime's interpreter) in the background.
    pub fn compiling_python_with(self, python: Option<PathBuf>) -> Self {
        Self { python, ..self }
    }

    /// Where packages are unpacked (one folder per digest).
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The unpacked folder for `digest`, unpacking it first if needed (for a `runtime`
    /// function: a Python one's modules are then compiled in the background).
    pub async fn materialize(&self, digest: &CodeDigest, runtime: Runtime) -> Result<PathBuf, CodeCacheError> {
        let dir = self.root.join(digest.as_str());
        if dir.exists() {
            return Ok(dir);
        }
        let gate = self.inflight.lock().unwrap_or_else(|p| p.into_inner()).entry(digest.clone()).or_default().clone();
        let _held = gate.lock().await;
        if dir.exists() {
            return Ok(dir);
        }
        let bytes = self.store.get(digest).await?;
        let limits = *self.store.limits();
        let (root, final_dir) = (self.root.clone(), dir.clone());
        tokio::task::spawn_blocking(move || -> Result<(), CodeCacheError> {
            let io = |path: &Path| {
                let path = path.display().to_string();
                move |source| CodeCacheError::Io { path, source }
            };
            std::fs::create_dir_all(&root).map_err(io(&root))?;
            // Unpack beside the final place, then rename: readers never see half a tree.
            let tmp = root.join(format!("{UNPACKING}{}", uuid::Uuid::new_v4()));
            unpack_package(&bytes, &tmp, &limits)?;
            make_read_only(&tmp).map_err(io(&tmp))?;
            std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))
        })
        .await
        .map_err(|e| CodeCacheError::Io { path: dir.display().to_string(), source: std::io::Error::other(e) })??;
        self.inflight.lock().unwrap_or_else(|p| p.into_inner()).remove(digest);
        if let Some(python) = self.python.as_ref().filter(|_| runtime == Runtime::Python3) {
            crate::bytecode::compile_in_background(python.clone(), self.root.clone(), dir.clone());
        }
        Ok(dir)
    }
}

/// Removes the `.unpack-*` folders under `root` (they are renamed into place once complete,
/// so one still there was cut short), the bytecode compiler's work folders and the trees its
/// compiled copies replaced (kept while sandboxes of the last server could show them).
fn remove_unfinished_unpacks(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if [UNPACKING, crate::bytecode::COMPILING, crate::bytecode::REPLACED].iter().any(|p| name.starts_with(p)) {
            remove_tree(&entry.path());
        }
    }
}

/// Removes a tree of the cache (read-only: made writable first).
pub(crate) fn remove_tree(path: &Path) {
    let _ = make_writable(path);
    if let Err(e) = std::fs::remove_dir_all(path) {
        tracing::warn!(path = %path.display(), %e, "cannot remove a folder of the code cache");
    }
}

/// Gives the owner write permission on every folder under `dir` (so its entries can go).
fn make_writable(dir: &Path) -> std::io::Result<()> {
    let mode = std::fs::symlink_metadata(dir)?.permissions().mode();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o700))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            make_writable(&entry.path())?;
        }
    }
    Ok(())
}

/// Drops write permission everywhere under `dir` (directories last, so the walk can finish).
pub(crate) fn make_read_only(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        if ft.is_dir() {
            make_read_only(&entry.path())?;
        } else if ft.is_file() {
            let mode = entry.metadata()?.permissions().mode();
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode & 0o555))?;
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unpack cut short by a kill (read-only in part, as unpacks become) is removed when
    /// the next server opens the cache; finished folders stay.
    #[test]
    fn unfinished_unpacks_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cache");
        let cut = root.join(format!("{UNPACKING}1234/lib/deep"));
        for left in [crate::bytecode::COMPILING, crate::bytecode::REPLACED] {
            std::fs::create_dir_all(root.join(format!("{left}5678/x"))).unwrap();
        }
        std::fs::create_dir_all(&cut).unwrap();
        std::fs::write(cut.join("half.py"), "x = 1").unwrap();
        make_read_only(&root.join(format!("{UNPACKING}1234/lib"))).unwrap();
        let done = root.join("abc123");
        std::fs::create_dir_all(&done).unwrap();
        let store = CodeStore::local(&dir.path().join("code"), hearth_blob::PackageLimits::DEFAULT).unwrap();
        let _cache = CodeCache::new(root.clone(), store);
        let left: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("abc123")]);
    }
}
