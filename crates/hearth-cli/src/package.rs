//! Turning a folder into a code package, the same way every time (sorted entries, fixed
//! timestamps), so unchanged code has an unchanged digest.

use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use hearth_blob::PackageLimits;
use walkdir::WalkDir;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::manifest::MANIFEST_FILE;

/// Folders never worth shipping. (Also left out: the manifest at the folder's top, since a
/// setting changed in it is not a code change, and the server has its contents already.)
const SKIPPED_DIRS: &[&str] = &[".git", "__pycache__", ".hg", ".svn"];

pub struct Package {
    pub bytes: Vec<u8>,
    /// Files zipped (None when a ready zip was given).
    pub files: Option<usize>,
}

/// A folder is zipped; a zip is sent as it is; a single WebAssembly module becomes a package
/// holding it as `main.wasm` (the `wasm` runtime's default handler), and a single
/// executable one holding it as `bootstrap` (what `provided` runs).
pub fn package(path: &Path) -> Result<Package> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let pkg = if meta.is_dir() {
        zip_dir(path)?
    } else {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        match single_file_entry(&bytes, meta.permissions().mode()) {
            Some((name, mode)) => zip_one(name, mode, &bytes)?,
            None => Package { bytes, files: None },
        }
    };
    let max = PackageLimits::DEFAULT.max_zipped_bytes;
    if pkg.bytes.len() as u64 > max {
        bail!("{} zips to {} bytes, more than the {} MiB limit", path.display(), pkg.bytes.len(), max / (1024 * 1024));
    }
    Ok(pkg)
}

/// The entry a single file that is not a zip becomes: a module (`\0asm`) or an executable.
fn single_file_entry(bytes: &[u8], mode: u32) -> Option<(&'static str, u32)> {
    if bytes.starts_with(b"PK") {
        return None;
    }
    if bytes.starts_with(b"\0asm") {
        return Some(("main.wasm", 0o644));
    }
    (mode & 0o111 != 0).then_some(("bootstrap", 0o755))
}

fn zip_one(name: &str, mode: u32, data: &[u8]) -> Result<Package> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    w.start_file(name, options.unix_permissions(mode))?;
    w.write_all(data)?;
    Ok(Package { bytes: w.finish()?.into_inner(), files: Some(1) })
}

fn zip_dir(root: &Path) -> Result<Package> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let base = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    let mut files = 0;
    let walk = WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !(e.file_type().is_dir() && SKIPPED_DIRS.iter().any(|s| e.file_name() == *s)));
    for entry in walk {
        let entry = entry.with_context(|| format!("cannot read {}", root.display()))?;
        let rel = entry.path().strip_prefix(root)?;
        if rel.as_os_str().is_empty() || rel == Path::new(MANIFEST_FILE) {
            continue;
        }
        let Some(name) = rel.to_str() else {
            bail!("{} has a name that is not UTF-8; rename it", entry.path().display());
        };
        let ft = entry.file_type();
        if ft.is_dir() {
            w.add_directory(format!("{name}/"), base.unix_permissions(0o755))?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            w.add_symlink(name, target.to_string_lossy(), base)?;
            files += 1;
        } else {
            let mode = entry.metadata()?.permissions().mode();
            let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
            w.start_file(name, base.unix_permissions(mode))?;
            let data =
                std::fs::read(entry.path()).with_context(|| format!("cannot read {}", entry.path().display()))?;
            w.write_all(&data)?;
            files += 1;
        }
    }
    if files == 0 {
        bail!("{} has no files to deploy", root.display());
    }
    Ok(Package { bytes: w.finish()?.into_inner(), files: Some(files) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_module_or_executable_is_packaged_under_the_name_its_runtime_runs() {
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("hello.wasm");
        std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
        let exe = dir.path().join("server");
        std::fs::write(&exe, b"\x7fELF...").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        for (path, name, executable) in [(&module, "main.wasm", false), (&exe, "bootstrap", true)] {
            let p = package(path).unwrap();
            assert_eq!(p.bytes, package(path).unwrap().bytes, "deterministic");
            let out = tempfile::tempdir().unwrap();
            hearth_blob::unpack_package(&p.bytes, out.path(), &PackageLimits::DEFAULT).unwrap();
            assert_eq!(std::fs::read(out.path().join(name)).unwrap(), std::fs::read(path).unwrap());
            let mode = std::fs::metadata(out.path().join(name)).unwrap().permissions().mode();
            assert_eq!(mode & 0o111 != 0, executable, "{name}");
        }
        // A zip is sent as it is; a plain file that is neither is too (the server says why).
        let zip = dir.path().join("code.zip");
        std::fs::write(&zip, package(&module).unwrap().bytes).unwrap();
        assert_eq!(package(&zip).unwrap().bytes, std::fs::read(&zip).unwrap());
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello").unwrap();
        assert_eq!(package(&text).unwrap().files, None);
    }

    #[test]
    fn same_folder_same_bytes_and_valid() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.py"), "def handler(e, c):\n    return 1\n").unwrap();
        std::fs::create_dir_all(dir.path().join("lib/__pycache__")).unwrap();
        std::fs::write(dir.path().join("lib/__pycache__/x.pyc"), "junk").unwrap();
        std::fs::write(dir.path().join("bootstrap"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(dir.path().join("bootstrap"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let a = package(dir.path()).unwrap();
        let b = package(dir.path()).unwrap();
        assert_eq!(a.bytes, b.bytes, "deterministic");
        assert_eq!(a.files, Some(2), "__pycache__ skipped");
        let out = tempfile::tempdir().unwrap();
        hearth_blob::unpack_package(&a.bytes, out.path(), &PackageLimits::DEFAULT).unwrap();
        let mode = std::fs::metadata(out.path().join("bootstrap")).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "executable bit kept");
        // The manifest at the top is not code: editing a setting keeps the digest.
        std::fs::write(dir.path().join(MANIFEST_FILE), "name = \"x\"\n").unwrap();
        std::fs::write(dir.path().join("lib").join(MANIFEST_FILE), "not the manifest").unwrap();
        let with_manifest = package(dir.path()).unwrap();
        assert_eq!(with_manifest.files, Some(3), "only the top-level hearth.toml is left out");
        std::fs::write(dir.path().join(MANIFEST_FILE), "name = \"y\"\n").unwrap();
        assert_eq!(package(dir.path()).unwrap().bytes, with_manifest.bytes);
    }
}
