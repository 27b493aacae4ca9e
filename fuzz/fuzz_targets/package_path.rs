//! Entry names and symlink targets (`hearth_blob`'s `package_path.rs`), as a package of
//! entries, one per line: `name` (a file), `name/` (a folder) or `name -> target` (a link).
//!
//! - `normalize` never yields an empty, `.` or `..` part, one holding a separator or NUL, or
//!   one too long to create, accepts its own output unchanged, and refuses only for the
//!   reason it gives;
//! - a `PackageTree` gives each link the same verdict whatever order they are checked in
//!   (the memo of resolved links must not change answers), and the same as validation;
//! - packaged (`fixtures::raw_zip`) and accepted, the package unpacks with every link
//!   leading inside, followed through the real folder (`Scene::check`).
#![no_main]

use std::sync::LazyLock;

use hearth_blob::PackageError;
use hearth_blob::fixtures::{RawEntry, raw_zip};
use hearth_blob::fuzzing::{MAX_NAME_BYTES, MAX_NAME_PART_BYTES, PackageTree, PathProblem, normalize};
use hearth_fuzz::Scene;
use libfuzzer_sys::fuzz_target;

static SCENE: LazyLock<Scene> = LazyLock::new(Scene::new);

fn check_normalize(name: &str) {
    match normalize(name) {
        Ok(parts) => {
            assert!(!parts.is_empty() && name.len() <= MAX_NAME_BYTES);
            for p in &parts {
                assert!(!matches!(*p, "" | "." | ".."), "{name:?} -> part {p:?}");
                assert!(!p.contains(['/', '\\', '\0']) && p.len() <= MAX_NAME_PART_BYTES, "{name:?} -> part {p:?}");
            }
            assert!(!name.starts_with(['/', '\\']));
            let again = parts.join("/");
            assert_eq!(normalize(&again).as_deref(), Ok(&parts[..]), "{name:?} is not idempotent");
        }
        Err(PathProblem::Traversal) => assert!(name.split(['/', '\\']).any(|p| p == "..")),
        Err(PathProblem::Absolute) => {
            let first = name.split(['/', '\\']).find(|p| !matches!(*p, "" | ".")).unwrap_or_default().as_bytes();
            let drive = first.len() >= 2 && first[1] == b':' && first[0].is_ascii_alphabetic();
            assert!(name.starts_with(['/', '\\']) || drive, "{name:?}: absolute?");
        }
        Err(PathProblem::Malformed) => {
            assert!(name.contains('\0') || name.split(['/', '\\']).all(|p| p.is_empty() || p == "."))
        }
        Err(PathProblem::TooLong) => {
            assert!(name.len() > MAX_NAME_BYTES || name.split(['/', '\\']).any(|p| p.len() > MAX_NAME_PART_BYTES))
        }
    }
}

/// Each link's verdict, checking the links in `order` (indices into `links`).
fn verdicts(entries: &[(Vec<&str>, Option<&str>)], order: impl Iterator<Item = usize>) -> Vec<bool> {
    let mut tree = PackageTree::new();
    let nodes: Vec<(usize, bool)> = entries.iter().map(|(parts, t)| (tree.insert(parts, *t), t.is_some())).collect();
    let links: Vec<usize> = nodes.iter().filter(|(_, link)| *link).map(|(n, _)| *n).collect();
    let mut out = vec![false; links.len()];
    for i in order {
        out[i] = tree.check_link(links[i]).is_ok();
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.split('\n').filter(|l| !l.is_empty()).take(64).collect();
    let mut raw = Vec::new();
    let mut entries = Vec::new();
    for line in &lines {
        let (name, target) = match line.split_once(" -> ") {
            Some((name, target)) => (name, Some(target)),
            None => (*line, None),
        };
        check_normalize(name);
        if let Some(target) = target {
            check_normalize(target);
        }
        raw.push(match target {
            Some(t) => RawEntry::symlink(name, t),
            None => RawEntry::file(name, if name.ends_with('/') { b"" } else { b"x" }),
        });
        if let Ok(parts) = normalize(name) {
            // A name ending in a separator is a folder, whatever its mode (as unpacking does).
            entries.push((parts, target.filter(|_| !name.ends_with(['/', '\\']))));
        }
    }
    let zip = raw_zip(&raw);
    let verdict = hearth_blob::validate_package(&zip, &hearth_fuzz::LIMITS);
    // The tree's precondition (no entry beneath a link, names unique) holds once validation
    // got past the layout, i.e. when it accepted or refused a link.
    let layout_ok =
        matches!(verdict, Ok(_) | Err(PackageError::SymlinkEscape { .. } | PackageError::SymlinkUnresolvable { .. }));
    if layout_ok {
        let n = entries.iter().filter(|(_, t)| t.is_some()).count();
        let forward = verdicts(&entries, 0..n);
        let backward = verdicts(&entries, (0..n).rev());
        assert_eq!(forward, backward, "a link's verdict depends on the order links are checked in");
        assert_eq!(forward.iter().all(|ok| *ok), verdict.is_ok(), "the tree and validation disagree");
    }
    if verdict.is_ok() {
        SCENE.check(&zip).expect("accepted twice");
    }
});
