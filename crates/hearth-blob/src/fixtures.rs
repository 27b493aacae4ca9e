//! Archives for tests, hostile and benign. A raw writer builds zips with exactly the names,
//! flags and modes a test needs, bypassing any checks a zip library would make.

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// One entry for [`raw_zip`]: stored (uncompressed).
pub struct RawEntry {
    pub name: Vec<u8>,
    pub data: Vec<u8>,
    /// General-purpose flags (bit 0 = encrypted).
    pub flags: u16,
    /// Unix mode, e.g. `0o100644` or `0o120777` for a symlink.
    pub unix_mode: u32,
}

impl RawEntry {
    pub fn file(name: &str, data: &[u8]) -> Self {
        Self { name: name.as_bytes().to_vec(), data: data.to_vec(), flags: 0, unix_mode: 0o100644 }
    }

    pub fn symlink(name: &str, target: &str) -> Self {
        Self { name: name.as_bytes().to_vec(), data: target.as_bytes().to_vec(), flags: 0, unix_mode: 0o120777 }
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A stored-only zip written byte by byte.
pub fn raw_zip(entries: &[RawEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = out.len() as u32;
        let (crc, size, name_len) = (crc32(&e.data), e.data.len() as u32, e.name.len() as u16);
        out.extend_from_slice(b"PK\x03\x04");
        for v in [20u16, e.flags, 0, 0, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, size, size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&e.name);
        out.extend_from_slice(&e.data);

        central.extend_from_slice(b"PK\x01\x02");
        // version made by: 3 = Unix, spec 3.0
        for v in [0x031Eu16, 20, e.flags, 0, 0, 0] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, size, size] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [name_len, 0, 0, 0, 0] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(&(e.unix_mode << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(&e.name);
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06");
    let n = entries.len() as u16;
    for v in [0u16, 0, n, n] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// A deflated zip made with the zip library: `(name, data)` pairs.
pub fn deflated_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, data) in files {
        w.start_file(*name, opts).expect("start entry");
        w.write_all(data).expect("write entry");
    }
    w.finish().expect("finish zip").into_inner()
}

/// A small valid Python package.
pub fn hello_python() -> Vec<u8> {
    deflated_zip(&[(
        "main.py",
        b"def handler(event, context):\n    return {\"statusCode\": 200, \"body\": \"Hello FaaS\"}\n",
    )])
}

/// Every hostile archive with the code it must be refused with.
pub fn hostile_archives() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let mut many = ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    for i in 0..10_001 {
        many.start_file(format!("f{i}"), stored).expect("start entry");
    }
    let many = many.finish().expect("finish zip").into_inner();
    let valid = hello_python();
    let mut encrypted = RawEntry::file("secret.py", b"x = 1\n");
    encrypted.flags = 1;
    vec![
        ("path traversal", raw_zip(&[RawEntry::file("../../evil.py", b"x")]), "ZipPathTraversal"),
        ("nested traversal", raw_zip(&[RawEntry::file("lib/../../evil.py", b"x")]), "ZipPathTraversal"),
        ("absolute path", raw_zip(&[RawEntry::file("/etc/cron.d/evil", b"x")]), "ZipAbsolutePath"),
        ("symlink escape", raw_zip(&[RawEntry::symlink("shadow", "../../../etc/shadow")]), "ZipSymlinkEscape"),
        ("absolute symlink", raw_zip(&[RawEntry::symlink("shadow", "/etc/shadow")]), "ZipSymlinkEscape"),
        // Each target stays inside when read on its own; followed as the kernel does, `s2`
        // is the root, so `esc` climbs four levels above it.
        (
            "chained symlinks",
            raw_zip(&[RawEntry::symlink("s2", "."), RawEntry::symlink("esc", "s2/s2/s2/s2/../../../..")]),
            "ZipSymlinkEscape",
        ),
        (
            "symlink chain climbing out after several hops",
            raw_zip(&[
                RawEntry::file("a/b/c/main.py", b"x = 1\n"),
                RawEntry::symlink("hop1", "a/b/c"),
                RawEntry::symlink("a/b/c/hop2", "../../.."),
                RawEntry::symlink("out", "hop1/hop2/hop1/hop2/.."),
            ]),
            "ZipSymlinkEscape",
        ),
        (
            "entry beneath a symlinked directory",
            raw_zip(&[
                RawEntry::file("sub/main.py", b"x = 1\n"),
                RawEntry::symlink("link", "sub"),
                RawEntry::file("link/evil.py", b"x = 2\n"),
            ]),
            "ZipSymlinkEscape",
        ),
        (
            "entry beneath a symlink to '..' chains",
            raw_zip(&[
                RawEntry::symlink("s2", "."),
                RawEntry::symlink("up", "s2/s2/.."),
                RawEntry::file("up/evil.py", b"x = 2\n"),
            ]),
            "ZipSymlinkEscape",
        ),
        ("symlink loop", raw_zip(&[RawEntry::symlink("a", "b/x"), RawEntry::symlink("b", "a/y")]), "ZipSymlinkEscape"),
        // `\` separates entry names but not link targets: `x\y` is one name to the kernel.
        ("symlink target with a backslash", raw_zip(&[RawEntry::symlink("esc", "x\\y/../..")]), "ZipSymlinkEscape"),
        ("zip bomb", deflated_zip(&[("zeros.bin", &vec![0u8; 20 * 1024 * 1024])]), "ZipBomb"),
        ("10,001 entries", many, "ZipTooManyEntries"),
        ("truncated zip", valid[..valid.len() - 30].to_vec(), "ZipCorrupt"),
        ("not a zip", b"#!/bin/sh\necho this is not a zip archive\n".to_vec(), "ZipNotAnArchive"),
        (
            "duplicate entry",
            raw_zip(&[RawEntry::file("main.py", b"a"), RawEntry::file("./main.py", b"b")]),
            "ZipDuplicateEntry",
        ),
        ("encrypted entry", raw_zip(&[encrypted]), "ZipEncryptedEntry"),
        // Linux cannot create a name part over 255 bytes: it would fail at every cold start.
        (
            "name part over 255 bytes",
            raw_zip(&[RawEntry::file(&format!("lib/{}.py", "n".repeat(253)), b"x = 1\n")]),
            "ZipNameTooLong",
        ),
    ]
}

/// A real S3-compatible server for tests: moto (installed into `.venv` by
/// `scripts/test-deps.sh`, or at `$HEARTH_TEST_MOTO_SERVER`) on a free loopback port.
/// Killed on drop.
pub struct S3TestServer {
    child: std::process::Child,
    pub endpoint: String,
}

impl S3TestServer {
    /// Starts the server and waits (up to 60 s) until it accepts connections.
    pub fn start() -> Self {
        let bin = std::env::var("HEARTH_TEST_MOTO_SERVER")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server"));
        assert!(
            bin.exists(),
            "{} is missing: run scripts/test-deps.sh (the README's test command does)",
            bin.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let child = std::process::Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto_server");
        let server = Self { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "moto did not accept connections within 60 s");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        server
    }

    /// Settings that reach this server.
    pub fn settings(&self) -> crate::S3Settings {
        crate::S3Settings {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            allow_http: true,
            ..Default::default()
        }
    }
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
