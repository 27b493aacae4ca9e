use std::fs;
use std::io::{self, Cursor};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use zip::ZipArchive;

use crate::package_path::normalize;
use crate::{PackageError, PackageLimits, validate_package};

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error(transparent)]
    Invalid(#[from] PackageError),
    #[error("cannot write {path}: {source}")]
    Io { path: String, source: io::Error },
}

/// Validates `bytes` and unpacks them under `dest` (created if missing). Files keep only
/// their executable bit (0755 or 0644); symlinks are recreated (they are known to point
/// inside the package). `dest` should be empty: existing files are overwritten.
pub fn unpack_package(bytes: &[u8], dest: &Path, limits: &PackageLimits) -> Result<(), UnpackError> {
    validate_package(bytes, limits)?;
    let io_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| UnpackError::Io { path, source }
    };
    fs::create_dir_all(dest).map_err(io_err(dest))?;
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(|e| PackageError::Corrupt(e.to_string()))?;
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).map_err(|e| PackageError::Corrupt(e.to_string()))?;
        let name = String::from_utf8_lossy(f.name_raw()).into_owned();
        let parts = normalize(&name).map_err(|_| PackageError::PathTraversal(name.clone()))?;
        let target = parts.iter().fold(dest.to_path_buf(), |p, part| p.join(part));
        if f.is_dir() {
            fs::create_dir_all(&target).map_err(io_err(&target))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        if f.is_symlink() {
            let mut link = String::new();
            io::Read::read_to_string(&mut f, &mut link).map_err(io_err(&target))?;
            let _ = fs::remove_file(&target);
            std::os::unix::fs::symlink(&link, &target).map_err(io_err(&target))?;
            continue;
        }
        let executable = f.unix_mode().is_some_and(|m| m & 0o111 != 0);
        let mut out = fs::File::create(&target).map_err(io_err(&target))?;
        io::copy(&mut f, &mut out).map_err(io_err(&target))?;
        let mode = if executable { 0o755 } else { 0o644 };
        fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(io_err(&target))?;
    }
    Ok(())
}
