//! Package validation, storage and unpacking against real archives and a real file system.

use std::os::unix::fs::PermissionsExt;

use bytes::Bytes;
use hearth_blob::fixtures::{RawEntry, deflated_zip, hello_python, hostile_archives, raw_zip};
use hearth_blob::{CodeStore, CodeStoreError, PackageLimits, unpack_package, validate_package};
use hearth_types::CodeDigest;

#[test]
fn every_hostile_archive_is_refused_with_its_code() {
    for (what, bytes, code) in hostile_archives() {
        let err = validate_package(&bytes, &PackageLimits::DEFAULT).expect_err(what);
        assert_eq!(err.code(), code, "{what}: {err}");
    }
}

#[test]
fn benign_archives_pass() {
    let pkg = raw_zip(&[
        RawEntry::file("main.py", b"print(1)"),
        RawEntry::file("lib/util.py", b"x = 1"),
        RawEntry::symlink("lib/link.py", "../main.py"),
    ]);
    let summary = validate_package(&pkg, &PackageLimits::DEFAULT).unwrap();
    assert_eq!(summary.files, 3);
    // Ordinary text compresses well below the bomb ratio.
    let text: String = (0..200_000).map(|i| format!("value_{i} = {}\n", i * 7919 % 1_000_003)).collect();
    validate_package(&deflated_zip(&[("big.py", text.as_bytes())]), &PackageLimits::DEFAULT).unwrap();
}

#[test]
fn links_through_links_that_stay_inside_pass_and_unpack() {
    let pkg = raw_zip(&[
        RawEntry::file("node_modules/x/bin/x.js", b"js"),
        RawEntry::symlink("node_modules/.bin/x", "../x/bin/x.js"),
        RawEntry::file("lib/lib.so.1.2", b"so"),
        RawEntry::symlink("lib/lib.so.1", "lib.so.1.2"),
        RawEntry::symlink("lib/lib.so", "lib.so.1"),
        RawEntry::file("releases/v2/app.py", b"v2"),
        RawEntry::symlink("current", "releases/v2"),
        // `current/..` is `releases`, not the root: read on its own, this looks like a climb out.
        RawEntry::symlink("app", "current/../../releases/v2/app.py"),
    ]);
    validate_package(&pkg, &PackageLimits::DEFAULT).unwrap();
    let dir = tempfile::tempdir().unwrap();
    unpack_package(&pkg, dir.path(), &PackageLimits::DEFAULT).unwrap();
    for (link, content) in [("node_modules/.bin/x", "js"), ("lib/lib.so", "so"), ("app", "v2")] {
        assert_eq!(std::fs::read_to_string(dir.path().join(link)).unwrap(), content, "{link}");
    }
}

/// Found by fuzzing (`fuzz/`, target `package_path`): a name part over 255 bytes, or a link
/// target of 4,096 bytes, passed validation but cannot be created on Linux, so the package
/// was stored and then failed to unpack at every cold start. The longest that can be
/// created pass and unpack; one byte more is refused.
#[test]
fn names_and_link_targets_too_long_to_unpack_are_refused() {
    let part = "p".repeat(255);
    let longest_name = format!("{part}/{part}/{part}/{}/z", "q".repeat(254)); // 1,024 bytes
    let longest_target = format!("{}main.py", "./".repeat(2044)); // 4,095 bytes
    assert_eq!((longest_name.len(), longest_target.len()), (1024, 4095));
    let pkg = raw_zip(&[
        RawEntry::file("main.py", b"x = 1\n"),
        RawEntry::file(&format!("{part}/util.py"), b"y = 2\n"),
        RawEntry::file(&longest_name, b"z"),
        RawEntry::symlink("link", &longest_target),
    ]);
    let dir = tempfile::tempdir().unwrap();
    unpack_package(&pkg, dir.path(), &PackageLimits::DEFAULT).unwrap();
    assert_eq!(std::fs::read_to_string(dir.path().join(&longest_name)).unwrap(), "z");
    assert_eq!(std::fs::read_to_string(dir.path().join("link")).unwrap(), "x = 1\n");

    for (what, entry, code) in [
        ("a 256-byte part", RawEntry::file(&format!("lib/{part}x"), b"x"), "ZipNameTooLong"),
        ("a 1,025-byte name", RawEntry::file(&format!("{longest_name}d"), b"x"), "ZipNameTooLong"),
        ("a 4,096-byte link target", RawEntry::symlink("link", &format!("{longest_target}x")), "ZipBomb"),
    ] {
        let pkg = raw_zip(&[RawEntry::file("main.py", b"x = 1\n"), entry]);
        let err = validate_package(&pkg, &PackageLimits::DEFAULT).expect_err(what);
        assert_eq!(err.code(), code, "{what}: {err}");
    }
}

/// Found by fuzzing (`fuzz/`, target `package_path`): an entry with a link's mode and a
/// folder's name (`lib/`) was checked as a link and counted as a file, while unpacking makes
/// it a folder. Validation now takes it as unpacking does.
#[test]
fn an_entry_with_a_link_mode_and_a_folder_name_is_a_folder() {
    for target in ["..", "/etc", "lib"] {
        let pkg = raw_zip(&[RawEntry::symlink("lib/", target), RawEntry::file("lib/util.py", b"x = 1\n")]);
        let summary = validate_package(&pkg, &PackageLimits::DEFAULT).expect(target);
        assert_eq!(summary.files, 1, "{target}");
        let dir = tempfile::tempdir().unwrap();
        unpack_package(&pkg, dir.path(), &PackageLimits::DEFAULT).unwrap();
        assert!(std::fs::symlink_metadata(dir.path().join("lib")).unwrap().is_dir(), "{target}");
        assert_eq!(std::fs::read_to_string(dir.path().join("lib/util.py")).unwrap(), "x = 1\n");
    }
}

#[test]
fn size_limits_are_enforced() {
    let limits = PackageLimits { max_zipped_bytes: 100, ..PackageLimits::DEFAULT };
    assert_eq!(validate_package(&hello_python(), &limits).unwrap_err().code(), "ZipTooLarge");
    let limits = PackageLimits { max_unzipped_bytes: 10, ..PackageLimits::DEFAULT };
    let pkg = raw_zip(&[RawEntry::file("a", &[1; 20])]);
    assert_eq!(validate_package(&pkg, &limits).unwrap_err().code(), "ZipUnzippedTooLarge");
}

#[test]
fn a_header_that_lies_about_size_is_caught() {
    let mut pkg = deflated_zip(&[("data.bin", &[7u8; 4096])]);
    // Patch the declared uncompressed size (local header offset 22, central directory
    // offset 24 after its signature) down to 16 bytes.
    let cd = pkg.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    pkg[22..26].copy_from_slice(&16u32.to_le_bytes());
    pkg[cd + 24..cd + 28].copy_from_slice(&16u32.to_le_bytes());
    let err = validate_package(&pkg, &PackageLimits::DEFAULT).unwrap_err();
    assert!(matches!(err.code(), "ZipBomb" | "ZipCorrupt"), "{err}");
}

#[tokio::test]
async fn packages_are_content_addressed_and_hostile_ones_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = CodeStore::local(dir.path(), PackageLimits::DEFAULT).unwrap();
    for (what, bytes, _) in hostile_archives() {
        assert!(matches!(store.put(Bytes::from(bytes)).await, Err(CodeStoreError::Invalid(_))), "{what}");
    }
    assert_eq!(walk_files(dir.path()), 0, "nothing stored for refused packages");
    let pkg = Bytes::from(hello_python());
    let a = store.put(pkg.clone()).await.unwrap();
    let b = store.put(pkg.clone()).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(walk_files(dir.path()), 1, "same bytes stored once");
    assert_eq!(store.get(&a.sha256).await.unwrap(), pkg);
    assert!(store.contains(&a.sha256).await.unwrap());
    let missing = CodeDigest::of(b"nothing");
    assert!(matches!(store.get(&missing).await, Err(CodeStoreError::NotFound(_))));
}

/// A server killed while writing a package leaves the local backend's staging file
/// (`<digest>.zip#<n>`); the next start removes it and nothing else.
#[tokio::test]
async fn unfinished_uploads_are_removed_and_packages_kept() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(CodeStore::remove_unfinished_uploads(&dir.path().join("missing")).unwrap(), 0);
    let store = CodeStore::local(dir.path(), PackageLimits::DEFAULT).unwrap();
    let kept = store.put(Bytes::from(hello_python())).await.unwrap();
    let folder = dir.path().join("packages/sha256");
    std::fs::write(folder.join(format!("{}.zip#1", CodeDigest::of(b"cut short"))), b"half a package").unwrap();
    std::fs::write(folder.join(format!("{}.zip#2", kept.sha256)), b"another").unwrap();
    assert_eq!(CodeStore::remove_unfinished_uploads(dir.path()).unwrap(), 2);
    assert_eq!(walk_files(dir.path()), 1, "only the package is left");
    assert!(store.contains(&kept.sha256).await.unwrap());
}

#[test]
fn unpack_recreates_files_modes_and_links() {
    let mut exe = RawEntry::file("bootstrap", b"#!/bin/sh\n");
    exe.unix_mode = 0o104755; // setuid must not survive
    let pkg = raw_zip(&[exe, RawEntry::file("lib/a.txt", b"A"), RawEntry::symlink("lib/b.txt", "a.txt")]);
    let dir = tempfile::tempdir().unwrap();
    unpack_package(&pkg, dir.path(), &PackageLimits::DEFAULT).unwrap();
    let mode = std::fs::metadata(dir.path().join("bootstrap")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755);
    assert_eq!(std::fs::read_to_string(dir.path().join("lib/b.txt")).unwrap(), "A");
    let (_, bomb, _) = hostile_archives().into_iter().find(|(w, ..)| *w == "symlink escape").unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    assert!(unpack_package(&bomb, dir2.path(), &PackageLimits::DEFAULT).is_err());
    assert_eq!(walk_files(dir2.path()), 0);
}

fn walk_files(root: &std::path::Path) -> usize {
    let mut n = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn an_executable_is_found_where_unpacking_puts_it() {
    let mut boot = RawEntry::file("bootstrap", b"#!/bin/sh\n");
    boot.unix_mode = 0o100755;
    let mut nested = RawEntry::file("bin/tool", b"#!/bin/sh\n");
    nested.unix_mode = 0o100700;
    let pkg = raw_zip(&[boot, nested, RawEntry::file("main.py", b"x = 1"), RawEntry::symlink("run", "bin/tool")]);
    assert!(hearth_blob::has_executable(&pkg, "bootstrap"));
    assert!(hearth_blob::has_executable(&pkg, "bin/tool"));
    assert!(hearth_blob::has_executable(&pkg, "run"), "a symlink: its target decides at start");
    assert!(!hearth_blob::has_executable(&pkg, "main.py"), "mode 0644");
    assert!(!hearth_blob::has_executable(&pkg, "tool"), "only at its own path");
    let plain = raw_zip(&[RawEntry::file("bootstrap", b"#!/bin/sh\n")]);
    assert!(!hearth_blob::has_executable(&plain, "bootstrap"), "no execute bit");
    let dotted = {
        let mut e = RawEntry::file("./bootstrap", b"#!/bin/sh\n");
        e.unix_mode = 0o100755;
        raw_zip(&[e])
    };
    assert!(hearth_blob::has_executable(&dotted, "bootstrap"), "names are normalised as unpacking does");
    assert!(!hearth_blob::has_executable(b"not a zip", "bootstrap"));
}
