//! Helpers the agent's and the server's tests share (feature `test-support`).

use std::os::unix::fs::PermissionsExt;

/// A file on the host that any process may open for writing, in a folder no instance's root
/// shows: only the sandbox keeps an attack from it (ENOENT).
pub struct Sentinel {
    _dir: tempfile::TempDir,
    pub path: String,
}

impl Sentinel {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("hearth-sentinel").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("sentinel");
        std::fs::write(&path, "sentinel\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        Self { path: path.display().to_string(), _dir: dir }
    }

    /// Unchanged since it was made.
    pub fn assert_untouched(&self) {
        assert_eq!(std::fs::read_to_string(&self.path).unwrap(), "sentinel\n", "{} was written", self.path);
    }
}

/// Whether a test that needs root (the sandbox exists only when Hearth runs as root) may go
/// on. Without root it fails, unless `HEARTH_TEST_ALLOW_UNPRIVILEGED=1` says to skip it: a
/// run without root never passes these tests silently.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("this test").to_owned();
    let allowed = std::env::var("HEARTH_TEST_ALLOW_UNPRIVILEGED").is_ok_and(|v| v == "1");
    assert!(
        allowed,
        "{test} needs root: the sandbox it tests exists only when Hearth runs as root. Run the tests as root, or set \
         HEARTH_TEST_ALLOW_UNPRIVILEGED=1 to skip the tests that need it"
    );
    eprintln!("{test}: skipped without root (HEARTH_TEST_ALLOW_UNPRIVILEGED=1)");
    false
}
