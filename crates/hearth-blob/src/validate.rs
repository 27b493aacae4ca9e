use std::collections::{HashMap, HashSet};
use std::io::{self, Cursor, Read};

use zip::{CompressionMethod, ZipArchive};

use crate::PackageLimits;
use crate::package_path::{
    LinkProblem, MAX_LINK_DEPTH, MAX_NAME_BYTES, MAX_NAME_PART_BYTES, PackageTree, PathProblem, normalize,
};

/// Why a code package was refused. Every variant names the rule it broke; [`code`](Self::code)
/// is the stable error code the API returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    #[error("the package is {got} bytes, more than the limit of {max} bytes zipped")]
    TooLarge { got: u64, max: u64 },
    #[error("the package is not a zip archive")]
    NotAZip,
    #[error("the zip archive is corrupt or truncated: {0}")]
    Corrupt(String),
    #[error("the zip archive contains no files")]
    Empty,
    #[error("the zip archive has {got} entries, more than the limit of {max}")]
    TooManyEntries { got: usize, max: usize },
    #[error("the package unzips to more than the limit of {max} bytes")]
    UnzippedTooLarge { max: u64 },
    #[error("entry {0:?} climbs out of the package with '..'")]
    PathTraversal(String),
    #[error("entry {0:?} has an absolute path; use paths relative to the package root")]
    AbsolutePath(String),
    #[error("entry name {0:?} is not valid UTF-8 text without NUL bytes")]
    InvalidEntryName(String),
    #[error("entry name {0:?} is too long to unpack (limits: {MAX_NAME_BYTES} bytes, {MAX_NAME_PART_BYTES} a part)")]
    NameTooLong(String),
    #[error("symlink {name:?} points at {target:?}, which leads outside the package once its links are followed")]
    SymlinkEscape { name: String, target: String },
    #[error("symlink {name:?} points at {target:?}, which never resolves: a loop, or more than {max} links deep")]
    SymlinkUnresolvable { name: String, target: String, max: u32 },
    #[error("entry {name:?} is beneath symlink {link:?}; a package may not write through its own links")]
    EntryBeneathSymlink { name: String, link: String },
    #[error("entry {0:?} appears more than once (or is both a file and a directory)")]
    DuplicateEntry(String),
    #[error("entry {0:?} is encrypted; upload an unencrypted zip")]
    EncryptedEntry(String),
    #[error("entry {name:?} uses compression method {method}; use stored or deflate")]
    UnsupportedCompression { name: String, method: String },
    #[error("entry {name:?} expands {ratio}x (limit {max}x) or beyond its declared size: refused as a zip bomb")]
    ZipBomb { name: String, ratio: u64, max: u64 },
}

impl PackageError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "ZipTooLarge",
            Self::NotAZip => "ZipNotAnArchive",
            Self::Corrupt(_) => "ZipCorrupt",
            Self::Empty => "ZipEmpty",
            Self::TooManyEntries { .. } => "ZipTooManyEntries",
            Self::UnzippedTooLarge { .. } => "ZipUnzippedTooLarge",
            Self::PathTraversal(_) => "ZipPathTraversal",
            Self::AbsolutePath(_) => "ZipAbsolutePath",
            Self::InvalidEntryName(_) => "ZipInvalidEntryName",
            Self::NameTooLong(_) => "ZipNameTooLong",
            // One code for every way a link could lead or write outside the package.
            Self::SymlinkEscape { .. } | Self::SymlinkUnresolvable { .. } | Self::EntryBeneathSymlink { .. } => {
                "ZipSymlinkEscape"
            }
            Self::DuplicateEntry(_) => "ZipDuplicateEntry",
            Self::EncryptedEntry(_) => "ZipEncryptedEntry",
            Self::UnsupportedCompression { .. } => "ZipUnsupportedCompression",
            Self::ZipBomb { .. } => "ZipBomb",
        }
    }
}

/// What a valid package holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSummary {
    pub files: usize,
    pub unzipped_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
}

struct Entry {
    index: usize,
    kind: Kind,
    parts: Vec<String>,
    declared: u64,
    name: String,
}

/// Checks a zip against every package rule, decompressing each entry to verify its real
/// size and checksum. Pure: touches no storage.
pub fn validate_package(bytes: &[u8], limits: &PackageLimits) -> Result<PackageSummary, PackageError> {
    if bytes.len() as u64 > limits.max_zipped_bytes {
        return Err(PackageError::TooLarge { got: bytes.len() as u64, max: limits.max_zipped_bytes });
    }
    // Local file header, or the end-of-central-directory record of an empty archive.
    if !(bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")) {
        return Err(PackageError::NotAZip);
    }
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(|e| PackageError::Corrupt(e.to_string()))?;
    if archive.len() > limits.max_entries {
        return Err(PackageError::TooManyEntries { got: archive.len(), max: limits.max_entries });
    }
    if archive.has_duplicate_names() {
        return Err(PackageError::DuplicateEntry("(a name listed twice in the central directory)".into()));
    }
    let entries = read_entries(&mut archive, limits)?;
    if !entries.iter().any(|e| e.kind != Kind::Dir) {
        return Err(PackageError::Empty);
    }
    check_layout(&entries)?;
    let (unzipped_bytes, targets) = decompress_all(&mut archive, &entries, limits)?;
    check_links(&entries, &targets)?;
    Ok(PackageSummary { files: entries.iter().filter(|e| e.kind != Kind::Dir).count(), unzipped_bytes })
}

/// Whether unpacking a package (one [`validate_package`] accepted) puts an executable file,
/// or a symlink, at `path` (e.g. `bootstrap`). Reads only the central directory.
pub fn has_executable(bytes: &[u8], path: &str) -> bool {
    // As unpacking decides it (`unpack.rs`): any execute bit.
    has_entry(bytes, path, |f| f.is_symlink() || f.unix_mode().is_some_and(|m| m & 0o111 != 0))
}

/// Whether the package has a file (or a link, which unpacking keeps inside the package) at
/// `path`. Reads only the central directory.
pub fn has_file(bytes: &[u8], path: &str) -> bool {
    has_entry(bytes, path, |_| true)
}

/// Whether an entry that is not a folder (a name ending in a separator is one) is at
/// `path`, as unpacking names it, and passes `check`.
fn has_entry(bytes: &[u8], path: &str, check: impl Fn(&zip::read::ZipFile<'_, Cursor<&[u8]>>) -> bool) -> bool {
    let Ok(mut archive) = ZipArchive::new(Cursor::new(bytes)) else { return false };
    (0..archive.len()).any(|i| {
        archive.by_index_raw(i).is_ok_and(|f| {
            let named = std::str::from_utf8(f.name_raw())
                .ok()
                .and_then(|n| normalize(n).ok())
                .is_some_and(|parts| parts.join("/") == path);
            named && !f.is_dir() && check(&f)
        })
    })
}

/// Pass 1: names, flags, declared sizes. Nothing is decompressed.
fn read_entries(archive: &mut ZipArchive<Cursor<&[u8]>>, limits: &PackageLimits) -> Result<Vec<Entry>, PackageError> {
    let mut entries = Vec::with_capacity(archive.len());
    let mut declared_total: u64 = 0;
    for index in 0..archive.len() {
        let f = archive.by_index_raw(index).map_err(|e| PackageError::Corrupt(e.to_string()))?;
        let name = std::str::from_utf8(f.name_raw())
            .map_err(|_| PackageError::InvalidEntryName(String::from_utf8_lossy(f.name_raw()).into_owned()))?
            .to_owned();
        let parts = match normalize(&name) {
            Ok(p) => p.into_iter().map(str::to_owned).collect(),
            Err(PathProblem::Absolute) => return Err(PackageError::AbsolutePath(name)),
            Err(PathProblem::Traversal) => return Err(PackageError::PathTraversal(name)),
            Err(PathProblem::Malformed) => return Err(PackageError::InvalidEntryName(name)),
            Err(PathProblem::TooLong) => return Err(PackageError::NameTooLong(name)),
        };
        if f.encrypted() {
            return Err(PackageError::EncryptedEntry(name));
        }
        let method = f.compression();
        if !matches!(method, CompressionMethod::Stored | CompressionMethod::Deflated) {
            return Err(PackageError::UnsupportedCompression { name, method: format!("{method:?}") });
        }
        let (declared, compressed) = (f.size(), f.compressed_size());
        declared_total = declared_total.saturating_add(declared);
        if declared_total > limits.max_unzipped_bytes {
            return Err(PackageError::UnzippedTooLarge { max: limits.max_unzipped_bytes });
        }
        let ratio = declared / compressed.max(1);
        if declared >= limits.ratio_min_entry_bytes && ratio > limits.max_compression_ratio {
            return Err(PackageError::ZipBomb { name, ratio, max: limits.max_compression_ratio });
        }
        // In the order unpacking decides (`unpack.rs`): a name ending in a separator is a
        // folder whatever its mode says.
        let kind = if f.is_dir() {
            Kind::Dir
        } else if f.is_symlink() {
            Kind::Symlink
        } else {
            Kind::File
        };
        entries.push(Entry { index, kind, parts, declared, name });
    }
    Ok(entries)
}

/// Normalised paths must be unique, no path may be both a file and a directory, and no
/// entry may be beneath a symlink (whatever the link points at: with links resolved by
/// [`check_links`] alone, `link -> sub` then `link/x` would write wherever `sub` leads).
fn check_layout(entries: &[Entry]) -> Result<(), PackageError> {
    let mut files: HashSet<String> = HashSet::new();
    let mut dirs: HashSet<String> = HashSet::new();
    let mut links: HashSet<String> = HashSet::new();
    for e in entries {
        let path = e.parts.join("/");
        for depth in 1..e.parts.len() {
            dirs.insert(e.parts[..depth].join("/"));
        }
        // A directory may be listed more than once ("a/" and "a//"); a file may not.
        let fresh = match e.kind {
            Kind::Dir => {
                dirs.insert(path.clone());
                !files.contains(&path)
            }
            Kind::File => files.insert(path.clone()),
            Kind::Symlink => links.insert(path.clone()) && files.insert(path.clone()),
        };
        if !fresh {
            return Err(PackageError::DuplicateEntry(e.name.clone()));
        }
    }
    for e in entries {
        if let Some(link) = (1..e.parts.len()).map(|depth| e.parts[..depth].join("/")).find(|p| links.contains(p)) {
            return Err(PackageError::EntryBeneathSymlink { name: e.name.clone(), link });
        }
    }
    if let Some(both) = files.intersection(&dirs).next() {
        return Err(PackageError::DuplicateEntry(both.clone()));
    }
    Ok(())
}

/// Pass 2: decompress every entry, counting real bytes (headers may lie) and letting the
/// zip reader verify each CRC. Returns the total and each symlink's target by entry index.
fn decompress_all(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    entries: &[Entry],
    limits: &PackageLimits,
) -> Result<(u64, HashMap<usize, String>), PackageError> {
    let mut total: u64 = 0;
    let mut targets = HashMap::new();
    for e in entries.iter().filter(|e| e.kind != Kind::Dir) {
        let mut f = archive.by_index(e.index).map_err(|err| PackageError::Corrupt(format!("{}: {err}", e.name)))?;
        let cap = match e.kind {
            Kind::Symlink => limits.max_symlink_target_bytes,
            _ => e.declared,
        };
        let mut limited = (&mut f).take(cap + 1);
        let n = if e.kind == Kind::Symlink {
            let mut target = Vec::new();
            limited.read_to_end(&mut target).map_err(|err| corrupt(&e.name, err))?;
            let target = String::from_utf8(target).map_err(|_| PackageError::InvalidEntryName(e.name.clone()))?;
            let n = target.len() as u64;
            targets.insert(e.index, target);
            n
        } else {
            io::copy(&mut limited, &mut io::sink()).map_err(|err| corrupt(&e.name, err))?
        };
        if n > cap {
            return Err(PackageError::ZipBomb { name: e.name.clone(), ratio: 0, max: limits.max_compression_ratio });
        }
        total += n;
        if total > limits.max_unzipped_bytes {
            return Err(PackageError::UnzippedTooLarge { max: limits.max_unzipped_bytes });
        }
    }
    Ok((total, targets))
}

/// Pass 3: every symlink must lead inside the package, followed as the kernel will follow
/// it once unpacked (the rule is [`PackageTree`]'s).
fn check_links(entries: &[Entry], targets: &HashMap<usize, String>) -> Result<(), PackageError> {
    let mut tree = PackageTree::new();
    let mut links = Vec::new();
    for e in entries {
        let parts: Vec<&str> = e.parts.iter().map(String::as_str).collect();
        let target = targets.get(&e.index).map(String::as_str);
        let node = tree.insert(&parts, target);
        if let Some(target) = target {
            links.push((node, e, target));
        }
    }
    for (node, e, target) in links {
        let (name, target) = (e.name.clone(), target.to_owned());
        match tree.check_link(node) {
            Ok(()) => {}
            Err(LinkProblem::Escapes) => return Err(PackageError::SymlinkEscape { name, target }),
            Err(LinkProblem::Unresolvable) => {
                return Err(PackageError::SymlinkUnresolvable { name, target, max: MAX_LINK_DEPTH });
            }
        }
    }
    Ok(())
}

fn corrupt(name: &str, err: io::Error) -> PackageError {
    PackageError::Corrupt(format!("{name}: {err}"))
}
