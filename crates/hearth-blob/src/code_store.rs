use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use hearth_types::{CodeDigest, CodeRef};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::{PackageError, PackageLimits, validate_package};

#[derive(Debug, thiserror::Error)]
pub enum CodeStoreError {
    #[error(transparent)]
    Invalid(#[from] PackageError),
    #[error("code package {0} is not in the code store")]
    NotFound(CodeDigest),
    #[error("code store failed: {0}")]
    Backend(#[from] object_store::Error),
}

/// Content-addressed package storage on any `object_store` backend: a package lives at
/// `packages/sha256/<digest>.zip` and is never rewritten.
#[derive(Clone)]
pub struct CodeStore {
    objects: Arc<dyn ObjectStore>,
    limits: PackageLimits,
}

impl CodeStore {
    pub fn new(objects: Arc<dyn ObjectStore>, limits: PackageLimits) -> Self {
        Self { objects, limits }
    }

    /// A store on the local file system under `root` (created if missing).
    pub fn local(root: &Path, limits: PackageLimits) -> Result<Self, CodeStoreError> {
        std::fs::create_dir_all(root)
            .map_err(|e| object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) })?;
        Ok(Self::new(Arc::new(LocalFileSystem::new_with_prefix(root)?), limits))
    }

    /// Removes what uploads to a local store under `root` left half done when their server
    /// was killed: the local backend writes a package to `<name>#<n>` and links it to its
    /// name only once complete, so such a file is never a package. Call it only while
    /// holding the data directory's lock (no upload can be in progress). Returns how many.
    pub fn remove_unfinished_uploads(root: &Path) -> std::io::Result<usize> {
        let mut removed = 0;
        let mut folders = vec![root.to_path_buf()];
        while let Some(folder) = folders.pop() {
            let entries = match std::fs::read_dir(&folder) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    folders.push(entry.path());
                } else if entry.file_name().as_encoded_bytes().contains(&b'#') {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    pub fn limits(&self) -> &PackageLimits {
        &self.limits
    }

    fn key(digest: &CodeDigest) -> ObjectPath {
        ObjectPath::from(format!("packages/sha256/{digest}.zip"))
    }

    /// Validates and stores a package. Storing the same bytes twice is a no-op.
    pub async fn put(&self, bytes: Bytes) -> Result<CodeRef, CodeStoreError> {
        let limits = self.limits;
        let checked = bytes.clone();
        tokio::task::spawn_blocking(move || validate_package(&checked, &limits))
            .await
            .map_err(|e| PackageError::Corrupt(format!("validation aborted: {e}")))??;
        let digest = CodeDigest::of(&bytes);
        let code = CodeRef { sha256: digest.clone(), size_bytes: bytes.len() as u64 };
        let key = Self::key(&digest);
        if self.objects.head(&key).await.is_ok() {
            return Ok(code);
        }
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.objects.put_opts(&key, PutPayload::from_bytes(bytes), opts).await {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(code),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get(&self, digest: &CodeDigest) -> Result<Bytes, CodeStoreError> {
        match self.objects.get(&Self::key(digest)).await {
            Ok(r) => Ok(r.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => Err(CodeStoreError::NotFound(digest.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// The stored package with this digest, if any.
    pub async fn stat(&self, digest: &CodeDigest) -> Result<Option<CodeRef>, CodeStoreError> {
        match self.objects.head(&Self::key(digest)).await {
            Ok(meta) => Ok(Some(CodeRef { sha256: digest.clone(), size_bytes: meta.size })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn contains(&self, digest: &CodeDigest) -> Result<bool, CodeStoreError> {
        match self.objects.head(&Self::key(digest)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
