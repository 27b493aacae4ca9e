//! The node-local unpack cache: each code package is unpacked once per digest into
//! `<root>/<sha256>/`, read-only, and shared by every instance of every version using it.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hearth_blob::{CodeStore, CodeStoreError, UnpackError, unpack_package};
use hearth_types::CodeDigest;

#[derive(Debug, thiserror::Error)]
pub enum CodeCacheError {
    #[error(transparent)]
    Fetch(#[from] CodeStoreError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error("code cache I/O failed at {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

pub struct CodeCache {
    root: PathBuf,
    store: CodeStore,
    /// One unpack at a time per digest; concurrent callers wait for it.
    inflight: Mutex<HashMap<CodeDigest, Arc<tokio::sync::Mutex<()>>>>,
}

impl CodeCache {
    pub fn new(root: PathBuf, store: CodeStore) -> Self {
        Self { root, store, inflight: Mutex::new(HashMap::new()) }
    }

    /// Where packages are unpacked (one folder per digest).
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The unpacked folder for `digest`, unpacking it first if needed.
    pub async fn materialize(&self, digest: &CodeDigest) -> Result<PathBuf, CodeCacheError> {
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
            let tmp = root.join(format!(".unpack-{}", uuid::Uuid::new_v4()));
            unpack_package(&bytes, &tmp, &limits)?;
            make_read_only(&tmp).map_err(io(&tmp))?;
            std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))
        })
        .await
        .map_err(|e| CodeCacheError::Io { path: dir.display().to_string(), source: std::io::Error::other(e) })??;
        self.inflight.lock().unwrap_or_else(|p| p.into_inner()).remove(digest);
        Ok(dir)
    }
}

/// Drops write permission everywhere under `dir` (directories last, so the walk can finish).
fn make_read_only(dir: &Path) -> std::io::Result<()> {
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
