//! What the fuzz targets share: a scene to unpack packages into, and an independent check,
//! against the real file system, of where the links of an unpacked package lead.

use std::fs;
use std::path::{Component, Path, PathBuf};

use hearth_blob::{PackageLimits, PackageSummary, unpack_package, validate_package};

/// Smaller than the server's limits, so runs spend their time on structure, not inflating.
pub const LIMITS: PackageLimits = PackageLimits {
    max_zipped_bytes: 1 << 20,
    max_unzipped_bytes: 8 << 20,
    max_entries: 512,
    max_compression_ratio: 100,
    ratio_min_entry_bytes: 64 << 10,
    max_symlink_target_bytes: PackageLimits::DEFAULT.max_symlink_target_bytes,
};

/// A folder `<tmp>/hearth-fuzz-<pid>/a/b/c/pkg` with sentinels at each level above `pkg`;
/// packages are unpacked into `pkg`, and everything else under the base must stay as it was.
/// (Put `TMPDIR` on a tmpfs: unpacking on a disk is ten times slower.)
pub struct Scene {
    base: PathBuf,
    pkg: PathBuf,
    /// Everything outside `pkg`, as laid.
    laid: Vec<(PathBuf, Option<Vec<u8>>)>,
}

impl Scene {
    /// Lays the folders and sentinels.
    pub fn new() -> Self {
        let base = std::env::temp_dir().join(format!("hearth-fuzz-{}", std::process::id()));
        let pkg = base.join("a/b/c/pkg");
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(pkg.parent().expect("pkg has a parent")).expect("scene folders");
        for dir in ["", "a", "a/b", "a/b/c"] {
            fs::write(base.join(dir).join("sentinel"), "untouched").expect("sentinel");
        }
        let mut scene = Self { base, pkg, laid: vec![] };
        scene.laid = scene.outside();
        scene
    }

    /// Everything under the base outside `pkg`, contents included, never following links.
    fn outside(&self) -> Vec<(PathBuf, Option<Vec<u8>>)> {
        let mut seen = Vec::new();
        let mut stack = vec![self.base.clone()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir).expect("read scene") {
                let path = e.expect("scene entry").path();
                if path == self.pkg {
                    continue;
                }
                let meta = fs::symlink_metadata(&path).expect("stat scene entry");
                if meta.is_dir() {
                    stack.push(path.clone());
                }
                seen.push((path.clone(), meta.is_file().then(|| fs::read(&path).expect("read sentinel"))));
            }
        }
        seen.sort();
        seen
    }

    /// Validates `bytes`; when accepted, unpacks them and checks the result: unpacking
    /// succeeds, writes nothing outside `pkg`, holds as many files and links as the summary
    /// says, and every link leads inside `pkg` once followed through the real folder.
    pub fn check(&self, bytes: &[u8]) -> Option<PackageSummary> {
        let summary = match validate_package(bytes, &LIMITS) {
            Ok(s) => s,
            Err(e) => {
                assert!(!e.code().is_empty() && !e.to_string().is_empty());
                return None;
            }
        };
        let _ = fs::remove_dir_all(&self.pkg);
        let unpacked = unpack_package(bytes, &self.pkg, &LIMITS);
        assert_eq!(self.outside(), self.laid, "a package wrote outside its folder ({unpacked:?})");
        if let Err(e) = unpacked {
            panic!("a package validation accepted ({summary:?}) does not unpack into an empty folder: {e}");
        }
        let root = fs::canonicalize(&self.pkg).expect("pkg exists");
        let mut files = 0;
        let mut stack = vec![self.pkg.clone()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir).expect("read pkg") {
                let path = e.expect("pkg entry").path();
                let meta = fs::symlink_metadata(&path).expect("stat pkg entry");
                if meta.is_dir() {
                    stack.push(path);
                    continue;
                }
                files += 1;
                if meta.file_type().is_symlink()
                    && let Some(to) = resolve(&path)
                {
                    assert!(
                        to.starts_with(&root),
                        "link {} -> {:?} leads to {}, outside the package",
                        path.display(),
                        fs::read_link(&path),
                        to.display()
                    );
                }
            }
        }
        assert_eq!(files, summary.files, "files and links unpacked vs the summary");
        Some(summary)
    }
}

impl Default for Scene {
    fn default() -> Self {
        Self::new()
    }
}

/// Where `path` leads, following every link on the way as the kernel does (the last
/// component included) and taking names that do not exist as plain folders. `None` when
/// following takes more than a few hundred links (a loop).
pub fn resolve(path: &Path) -> Option<PathBuf> {
    let mut budget = 400;
    let mut at = PathBuf::from("/");
    walk(&mut at, path, &mut budget)?;
    Some(at)
}

fn walk(at: &mut PathBuf, path: &Path, budget: &mut u32) -> Option<()> {
    for part in path.components() {
        match part {
            Component::RootDir => *at = PathBuf::from("/"),
            Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                at.pop();
            }
            Component::Normal(name) => {
                let next = at.join(name);
                match fs::read_link(&next) {
                    Ok(target) => {
                        *budget = budget.checked_sub(1)?;
                        walk(at, &target, budget)?;
                    }
                    Err(_) => *at = next,
                }
            }
        }
    }
    Some(())
}
