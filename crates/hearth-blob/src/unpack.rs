use std::fs;
use std::io::{self, Cursor};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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
    #[error("refusing to write beneath {path}: it is a symlink or not a directory, and unpacking never follows links")]
    NotADirectory { path: String },
}

/// Validates `bytes` and unpacks them under `dest` (created if missing). Files keep only
/// their executable bit (0755 or 0644); symlinks are recreated (they are known to point
/// inside the package). `dest` should be empty: existing files and links are replaced.
///
/// Nothing is written outside `dest`, even for a package that validation would wrongly
/// pass or a `dest` that already holds links: every folder beneath `dest` is checked, name
/// by name, to be a real directory (a link there is refused, never followed), a file or link
/// already at an entry's name is unlinked rather than written through, and files are
/// created with `O_CREAT | O_EXCL`, which fails on a link instead of following it. (Someone
/// else writing in `dest` at the same time could still race these checks; `dest` is meant to
/// be the caller's own.)
pub fn unpack_package(bytes: &[u8], dest: &Path, limits: &PackageLimits) -> Result<(), UnpackError> {
    validate_package(bytes, limits)?;
    write_entries(bytes, dest)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> UnpackError {
    let path = path.display().to_string();
    move |source| UnpackError::Io { path, source }
}

/// Writes every entry of the zip under `dest`, without following any link beneath `dest`
/// (see [`unpack_package`]). Checks none of the package rules.
fn write_entries(bytes: &[u8], dest: &Path) -> Result<(), UnpackError> {
    fs::create_dir_all(dest).map_err(io_err(dest))?;
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(|e| PackageError::Corrupt(e.to_string()))?;
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).map_err(|e| PackageError::Corrupt(e.to_string()))?;
        let name = String::from_utf8_lossy(f.name_raw()).into_owned();
        let parts = normalize(&name).map_err(|_| PackageError::PathTraversal(name.clone()))?;
        let mut target = dest.to_path_buf();
        for dir in &parts[..parts.len() - 1] {
            target.push(dir);
            real_dir(&target)?;
        }
        target.push(parts[parts.len() - 1]);
        if f.is_dir() {
            real_dir(&target)?;
            continue;
        }
        unlink(&target)?;
        if f.is_symlink() {
            let mut link = String::new();
            io::Read::read_to_string(&mut f, &mut link).map_err(io_err(&target))?;
            std::os::unix::fs::symlink(&link, &target).map_err(io_err(&target))?;
            continue;
        }
        let executable = f.unix_mode().is_some_and(|m| m & 0o111 != 0);
        // O_EXCL: fails, rather than follows, if a link appeared at `target` meanwhile.
        let mut out =
            fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&target).map_err(io_err(&target))?;
        io::copy(&mut f, &mut out).map_err(io_err(&target))?;
        let mode = if executable { 0o755 } else { 0o644 };
        out.set_permissions(fs::Permissions::from_mode(mode)).map_err(io_err(&target))?;
    }
    Ok(())
}

/// Makes sure `path` is a real directory: created if missing, refused if it is a link (not
/// followed) or anything else.
fn real_dir(path: &Path) -> Result<(), UnpackError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(UnpackError::NotADirectory { path: path.display().to_string() }),
        // mkdir never follows a link at its last name: a link appearing meanwhile fails it.
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(path).map_err(io_err(path)),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Removes a file or link at `path` (the link itself, not what it points at), so the entry
/// can be created afresh. A directory there is an error.
fn unlink(path: &Path) -> Result<(), UnpackError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::fixtures::{RawEntry, raw_zip};

    /// A folder holding `pkg` (where packages go) and `outside/sentinel`.
    struct Scene {
        root: tempfile::TempDir,
    }

    impl Scene {
        fn new() -> Self {
            let root = tempfile::tempdir().unwrap();
            fs::create_dir_all(root.path().join("pkg")).unwrap();
            fs::create_dir_all(root.path().join("outside")).unwrap();
            fs::write(root.path().join("outside/sentinel"), "untouched").unwrap();
            Self { root }
        }

        fn pkg(&self) -> PathBuf {
            self.root.path().join("pkg")
        }

        /// Everything outside `pkg`, with file contents, never following links.
        fn outside(&self) -> Vec<(PathBuf, Option<Vec<u8>>)> {
            let mut seen = Vec::new();
            let mut stack = vec![self.root.path().to_path_buf()];
            while let Some(dir) = stack.pop() {
                for e in fs::read_dir(&dir).unwrap() {
                    let path = e.unwrap().path();
                    if path == self.pkg() {
                        continue;
                    }
                    let meta = fs::symlink_metadata(&path).unwrap();
                    if meta.is_dir() {
                        stack.push(path.clone());
                    }
                    let data = meta.is_file().then(|| fs::read(&path).unwrap());
                    seen.push((path, data));
                }
            }
            seen.sort();
            seen
        }

        /// Writes `entries` unvalidated; asserts nothing outside `pkg` changed.
        fn write(&self, entries: &[RawEntry]) -> Result<(), UnpackError> {
            let before = self.outside();
            let result = write_entries(&raw_zip(entries), &self.pkg());
            assert_eq!(self.outside(), before, "written outside the package folder ({result:?})");
            assert_eq!(fs::read_to_string(self.root.path().join("outside/sentinel")).unwrap(), "untouched");
            result
        }
    }

    fn evil(name: &str) -> RawEntry {
        RawEntry::file(name, b"owned")
    }

    #[test]
    fn entries_beneath_a_link_in_the_package_are_never_written_through_it() {
        let up = |target: &str| RawEntry::symlink("link", target);
        for entries in [
            vec![up(".."), evil("link/evil")],
            vec![up("../outside"), evil("link/sentinel")],
            vec![RawEntry::symlink("s2", "."), up("s2/s2/../.."), evil("link/outside/sentinel")],
            vec![RawEntry::symlink("s2", "."), up("s2/s2/s2/s2/../../../.."), RawEntry::file("link/x/evil/", b"")],
            vec![RawEntry::file("sub/a", b"a"), up("sub"), evil("link/evil")],
        ] {
            let scene = Scene::new();
            let err = scene.write(&entries).unwrap_err();
            assert!(matches!(err, UnpackError::NotADirectory { .. }), "{err}");
        }
        // The entry first, the link after: the link cannot replace the directory.
        let scene = Scene::new();
        assert!(scene.write(&[evil("link/evil"), up("..")]).is_err());
    }

    #[test]
    fn links_already_in_the_folder_are_never_followed() {
        let scene = Scene::new();
        std::os::unix::fs::symlink("../outside", scene.pkg().join("lib")).unwrap();
        let err = scene.write(&[evil("lib/sentinel")]).unwrap_err();
        assert!(matches!(err, UnpackError::NotADirectory { .. }), "{err}");
        assert!(scene.write(&[RawEntry::file("lib/", b"")]).is_err());

        // A link at an entry's own name is replaced, not written through.
        std::os::unix::fs::symlink("../outside/sentinel", scene.pkg().join("main.py")).unwrap();
        std::os::unix::fs::symlink("../outside/sentinel", scene.pkg().join("alias")).unwrap();
        scene.write(&[RawEntry::file("main.py", b"print(1)"), RawEntry::symlink("alias", "main.py")]).unwrap();
        assert!(fs::symlink_metadata(scene.pkg().join("main.py")).unwrap().is_file());
        assert_eq!(fs::read_link(scene.pkg().join("alias")).unwrap(), Path::new("main.py"));
        assert_eq!(fs::read_to_string(scene.pkg().join("alias")).unwrap(), "print(1)");
    }

    #[test]
    fn links_are_recreated_as_links() {
        let scene = Scene::new();
        scene
            .write(&[
                RawEntry::file("node_modules/x/bin/x.js", b"js"),
                RawEntry::symlink("node_modules/.bin/x", "../x/bin/x.js"),
                RawEntry::file("lib/lib.so.1.2", b"so"),
                RawEntry::symlink("lib/lib.so.1", "lib.so.1.2"),
                RawEntry::symlink("lib/lib.so", "lib.so.1"),
            ])
            .unwrap();
        assert_eq!(fs::read_to_string(scene.pkg().join("node_modules/.bin/x")).unwrap(), "js");
        assert_eq!(fs::read_to_string(scene.pkg().join("lib/lib.so")).unwrap(), "so");
        assert_eq!(fs::read_link(scene.pkg().join("lib/lib.so")).unwrap(), Path::new("lib.so.1"));
    }
}
