//! `hearth fn code pull`: a function's code package unpacked into a folder on this machine.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use hearth_blob::{PackageLimits, unpack_package};

use super::client;
use crate::output::{print_json, size};

pub async fn pull(name: &str, dir: Option<PathBuf>, version: Option<&str>, force: bool, json: bool) -> Result<()> {
    let dir = dir.unwrap_or_else(|| name.into());
    check_folder(&dir, force)?;
    let zip = client()?.get_code(name, version).await?;
    unpack_into(&zip, &dir, force)?;
    if json {
        return print_json(&serde_json::json!({"function": name, "dir": dir, "bytes": zip.len()}));
    }
    println!("Pulled {name} ({}) into {}", size(zip.len() as u64), dir.display());
    Ok(())
}

/// A folder that is not empty is written into only with `--force`.
fn check_folder(dir: &Path, force: bool) -> Result<()> {
    let occupied = std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false);
    if occupied && !force {
        bail!("{} is not empty; choose another folder or pass --force to overwrite files in it", dir.display());
    }
    Ok(())
}

/// Unpacks a pulled package into `dir`, never writing outside it. The package is checked
/// against the package rules again here: it comes from a server (which may have stored it
/// under older, looser rules) and it decides names on this machine's disk. With `--force`,
/// links already in `dir` are never followed: a file or link at an entry's name is replaced
/// (the link itself, not what it points at), and an entry beneath a link fails the pull.
pub(crate) fn unpack_into(zip: &[u8], dir: &Path, force: bool) -> Result<()> {
    check_folder(dir, force)?;
    unpack_package(zip, dir, &PackageLimits::DEFAULT).with_context(|| format!("cannot unpack into {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use hearth_blob::fixtures::{RawEntry, hello_python, hostile_archives, raw_zip};

    use super::*;

    /// A folder holding `pulled` (the pull's target) and `outside/sentinel`.
    struct Scene {
        root: tempfile::TempDir,
    }

    impl Scene {
        fn new() -> Self {
            let root = tempfile::tempdir().unwrap();
            fs::create_dir_all(root.path().join("pulled")).unwrap();
            fs::create_dir_all(root.path().join("outside")).unwrap();
            fs::write(root.path().join("outside/sentinel"), "untouched").unwrap();
            Self { root }
        }

        fn pulled(&self) -> PathBuf {
            self.root.path().join("pulled")
        }

        /// Everything outside `pulled`, with file contents, never following links.
        fn outside(&self) -> Vec<(PathBuf, Option<Vec<u8>>)> {
            let mut seen = Vec::new();
            let mut stack = vec![self.root.path().to_path_buf()];
            while let Some(dir) = stack.pop() {
                for e in fs::read_dir(&dir).unwrap() {
                    let path = e.unwrap().path();
                    if path == self.pulled() {
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

        /// `hearth fn code pull --force` of `zip`; asserts nothing outside `pulled` changed.
        fn pull(&self, zip: &[u8]) -> Result<()> {
            let before = self.outside();
            let result = unpack_into(zip, &self.pulled(), true);
            assert_eq!(self.outside(), before, "written outside the pull's folder ({result:?})");
            assert_eq!(fs::read_to_string(self.root.path().join("outside/sentinel")).unwrap(), "untouched");
            result
        }
    }

    #[test]
    fn a_hostile_package_writes_nothing_outside_the_folder() {
        for (what, zip, _) in hostile_archives() {
            let scene = Scene::new();
            assert!(scene.pull(&zip).is_err(), "{what}");
        }
    }

    #[test]
    fn a_link_left_by_one_pull_is_not_written_through_by_the_next() {
        // `esc` leads to `outside` (`s2` is the folder itself); then an ordinary package
        // writes `esc/sentinel`.
        let scene = Scene::new();
        let chained = raw_zip(&[RawEntry::symlink("s2", "."), RawEntry::symlink("esc", "s2/s2/s2/../outside")]);
        let first = scene.pull(&chained);
        let second = scene.pull(&raw_zip(&[RawEntry::file("esc/sentinel", b"owned")]));
        assert!(first.is_err(), "the chained links are refused");
        second.unwrap();
        assert_eq!(fs::read_to_string(scene.pulled().join("esc/sentinel")).unwrap(), "owned");
    }

    #[test]
    fn force_never_follows_links_already_in_the_folder() {
        let scene = Scene::new();
        std::os::unix::fs::symlink("../outside", scene.pulled().join("lib")).unwrap();
        let err = scene.pull(&raw_zip(&[RawEntry::file("lib/sentinel", b"owned")])).unwrap_err();
        assert!(format!("{err:#}").contains("never follows links"), "{err:#}");
        // A link at an entry's name is replaced by the entry.
        std::os::unix::fs::symlink("../outside/sentinel", scene.pulled().join("main.py")).unwrap();
        scene.pull(&hello_python()).unwrap();
        assert!(fs::symlink_metadata(scene.pulled().join("main.py")).unwrap().is_file());
        // Without --force, a folder that is not empty is refused before anything is written.
        assert!(unpack_into(&hello_python(), &scene.pulled(), false).is_err());
    }
}
