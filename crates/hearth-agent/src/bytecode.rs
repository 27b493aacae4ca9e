//! Python bytecode compiled once per code digest. After a package is unpacked into the code
//! cache, the runtime's own interpreter compiles its modules into `__pycache__` as
//! unchecked-hash `.pyc` files (used without comparing the source's mtime or hash: sources
//! in the read-only cache never change), so no cold start compiles what an earlier one did,
//! and `/var/task` being read-only no longer means every start compiles again.
//!
//! In the background, never on a caller's path: the unpacked tree is hard-linked into a work
//! folder, compiled there, made read-only, and exchanged with the live folder in one step
//! (`renameat2(RENAME_EXCHANGE)`), so a start sees either tree whole. Instances already
//! running keep the tree they mounted: the old one is moved aside (`.replaced-*`) and removed
//! when the next server opens the cache, not while a sandbox may still show it.
//!
//! The compiler only parses the package's sources (it runs none of them), one package at a
//! time, in a process of its own: `-I -S`, one worker, the package's regular `.py` files
//! only (a symbolic link is compiled where it points, not once per link), limits on address
//! space, file size and CPU time, a deadline, and (when the server runs as root) the
//! unprivileged uid 65534 over a work folder only it and root can reach. The `.pyc` files
//! name their sources as `/var/task/...`, never the host's path. When it fails or times out,
//! the tree stays as unpacked (the function still runs, compiling as before).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Work folders beside the cached trees.
pub(crate) const COMPILING: &str = ".compile-";
/// Trees replaced by their compiled copies (removed when a server opens the cache).
pub(crate) const REPLACED: &str = ".replaced-";
/// How long a package's compilation may take, and the CPU time it may use.
const DEADLINE: Duration = Duration::from_secs(120);
/// Address space for the compiler.
const ADDRESS_SPACE_BYTES: u64 = 2 << 30;
/// The largest file the compiler may write (more than a package unzips to).
const FILE_BYTES: u64 = 256 << 20;
/// Who compiles when the server is root: nobody.
const COMPILER_ID: u32 = 65534;
/// One package compiles at a time on a node.
static ONE_AT_A_TIME: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Compiles the Python modules of the tree at `live` (a folder of `root`) in the background.
pub(crate) fn compile_in_background(python: PathBuf, root: PathBuf, live: PathBuf) {
    tokio::spawn(async move {
        match compile(&python, &root, &live).await {
            Ok(true) => tracing::debug!(dir = %live.display(), "Python bytecode compiled"),
            Ok(false) => {}
            Err(e) => tracing::warn!(dir = %live.display(), %e, "cannot compile the package's Python modules"),
        }
    });
}

/// Compiles the tree at `live` and puts the compiled tree in its place; `false` when it has
/// no Python module.
pub(crate) async fn compile(python: &Path, root: &Path, live: &Path) -> std::io::Result<bool> {
    let _turn = ONE_AT_A_TIME.acquire().await.map_err(std::io::Error::other)?;
    let (root, live) = (root.to_path_buf(), live.to_path_buf());
    // `<root>/.compile-<uuid>/<uuid>`: the outer folder is the server's alone (0700); the
    // compiler starts in the inner one (`fchdir` to a descriptor opened before it drops
    // privileges) and never names a path above it.
    let outer = root.join(format!("{COMPILING}{}", uuid::Uuid::new_v4()));
    let work = outer.join(uuid::Uuid::new_v4().to_string());
    let as_root = nix::unistd::geteuid().is_root();
    let prepared = {
        let (live, outer, work) = (live.clone(), outer.clone(), work.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<Vec<PathBuf>> {
            let sources = python_sources(&live, &live)?;
            if sources.is_empty() {
                return Ok(sources);
            }
            std::fs::create_dir(&outer)?;
            std::fs::set_permissions(&outer, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
            crate::stem_cells::link_tree(&live, &work)?;
            if as_root {
                chown_tree(&work, COMPILER_ID, false)?;
            }
            Ok(sources)
        })
        .await
        .map_err(std::io::Error::other)?
    };
    let sources = match prepared {
        Ok(sources) if !sources.is_empty() => sources,
        other => {
            discard(&outer);
            return other.map(|_| false);
        }
    };
    if let Err(e) = run_compiler(python, &work, &sources, as_root).await {
        discard(&outer);
        return Err(e);
    }
    tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
        let owned = if as_root { chown_tree(&work, 0, true) } else { Ok(()) };
        let swapped = owned.and_then(|()| crate::code_cache::make_read_only(&work)).and_then(|()| {
            nix::fcntl::renameat2(
                nix::fcntl::AT_FDCWD,
                &work,
                nix::fcntl::AT_FDCWD,
                &live,
                nix::fcntl::RenameFlags::RENAME_EXCHANGE,
            )
            .map_err(std::io::Error::from)
        });
        if let Err(e) = swapped {
            discard(&outer);
            return Err(e);
        }
        // `work` now names the tree as unpacked, which running sandboxes may still show.
        std::fs::rename(&work, root.join(format!("{REPLACED}{}", uuid::Uuid::new_v4())))?;
        std::fs::remove_dir(&outer)?;
        Ok(true)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The regular `.py` files under `dir`, relative to `top` (not through symbolic links).
fn python_sources(top: &Path, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = vec![];
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            found.extend(python_sources(top, &path)?);
        } else if kind.is_file()
            && path.extension().is_some_and(|e| e == "py")
            && !path.to_string_lossy().contains('\n')
        {
            found.push(path.strip_prefix(top).map_err(std::io::Error::other)?.to_path_buf());
        }
    }
    Ok(found)
}

/// Gives the tree at `dir` to `id`: its folders only (the compiler writes `__pycache__` in
/// them, and reads the files), or everything (`files`: the compiler's output, given back).
fn chown_tree(dir: &Path, id: u32, files: bool) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(id), Some(id))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            chown_tree(&entry.path(), id, files)?;
        } else if files {
            std::os::unix::fs::lchown(entry.path(), Some(id), Some(id))?;
        }
    }
    Ok(())
}

/// `python -I -S -m compileall` over `sources` (relative to `dir`), within the limits above.
/// Modules that do not compile (a syntax error) are left out; the others are compiled.
async fn run_compiler(python: &Path, dir: &Path, sources: &[PathBuf], as_root: bool) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut command = tokio::process::Command::new(python);
    command
        .args(["-I", "-S", "-m", "compileall", "-q", "-j", "1", "--invalidation-mode", "unchecked-hash"])
        .args(["-p", "/var/task", "-i", "-"])
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        // Its own process group, so whatever it starts goes with it on a timeout.
        .process_group(0)
        .kill_on_drop(true);
    if as_root {
        command.uid(COMPILER_ID).gid(COMPILER_ID);
    }
    let folder = std::fs::File::open(dir)?;
    let folder_fd = std::os::fd::AsRawFd::as_raw_fd(&folder);
    // SAFETY: only system calls (fchdir, setrlimit) between fork and exec; `folder` is open
    // until the child has started.
    unsafe {
        command.pre_exec(move || {
            use nix::sys::resource::{Resource, setrlimit};
            nix::unistd::fchdir(std::os::fd::BorrowedFd::borrow_raw(folder_fd))?;
            let cpu = DEADLINE.as_secs();
            setrlimit(Resource::RLIMIT_AS, ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES)?;
            setrlimit(Resource::RLIMIT_FSIZE, FILE_BYTES, FILE_BYTES)?;
            setrlimit(Resource::RLIMIT_CPU, cpu, cpu)?;
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    drop(folder);
    let mut list = Vec::new();
    for source in sources {
        list.extend_from_slice(source.as_os_str().as_encoded_bytes());
        list.push(b'\n');
    }
    let mut stdin = child.stdin.take().expect("piped");
    let finished = async {
        // A compiler that died early closes its end: its exit status says why.
        let _ = stdin.write_all(&list).await;
        drop(stdin);
        child.wait().await
    };
    match tokio::time::timeout(DEADLINE, finished).await {
        Ok(status) => {
            // A failing module makes the status 1; the rest are compiled all the same.
            let status = status?;
            if !status.success() {
                tracing::debug!(dir = %dir.display(), %status, "some modules did not compile");
            }
            Ok(())
        }
        Err(_) => {
            if let Some(pid) = child.id() {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::SIGKILL);
            }
            let _ = child.wait().await;
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("compileall took over {DEADLINE:?}")))
        }
    }
}

/// Removes a work folder (read-only in part once compiled).
fn discard(work: &Path) {
    if work.exists() {
        crate::code_cache::remove_tree(work);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python() -> PathBuf {
        PathBuf::from("/usr/bin/python3")
    }

    /// Runs `import NAME; print(NAME.VALUE)` with `dir` on the path, writing no bytecode.
    fn value_of(dir: &Path, module: &str) -> String {
        let code = format!("import sys; sys.path.insert(0, {:?}); import {module}; print({module}.VALUE)", dir);
        let out = std::process::Command::new(python()).args(["-I", "-S", "-B", "-c", &code]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    #[tokio::test]
    async fn a_tree_is_compiled_once_and_exchanged_whole() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cache");
        let live = root.join("digest");
        std::fs::create_dir_all(live.join("pkg")).unwrap();
        std::fs::write(live.join("main.py"), "VALUE = 1\n").unwrap();
        std::fs::write(live.join("pkg/__init__.py"), "").unwrap();
        std::fs::write(live.join("pkg/deep.py"), "VALUE = 'deep'\n").unwrap();
        std::fs::write(live.join("broken.py"), "def (:\n").unwrap();
        crate::code_cache::make_read_only(&live).unwrap();
        assert!(compile(&python(), &root, &live).await.unwrap());

        // The live folder holds the compiled tree: hash-based pycs that are not checked
        // (flags 0b01 in the header: hash-based, check_source off), for every module that
        // compiles.
        let cached: Vec<PathBuf> =
            std::fs::read_dir(live.join("__pycache__")).unwrap().map(|e| e.unwrap().path()).collect();
        let main = cached.iter().find(|p| p.file_name().unwrap().to_string_lossy().starts_with("main.")).unwrap();
        let header = std::fs::read(main).unwrap();
        assert_eq!(u32::from_le_bytes(header[4..8].try_into().unwrap()), 0b01, "unchecked-hash pyc");
        assert!(live.join("pkg/__pycache__").is_dir(), "sub-packages too");
        assert!(!cached.iter().any(|p| p.to_string_lossy().contains("broken")), "{cached:?}");
        // Python uses them without looking at the source: a changed source is not seen.
        assert_eq!(value_of(&live, "main"), "1");
        std::fs::set_permissions(live.join("main.py"), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        // (Another size, so a timestamp-based pyc would be found stale.)
        std::fs::write(live.join("main.py"), "VALUE = 22222\n").unwrap();
        assert_eq!(value_of(&live, "main"), "1", "the compiled module, not the source");
        // The tree as unpacked is aside, whole, no bytecode in it; no work folder is left.
        let names: Vec<String> =
            std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        let aside = root.join(names.iter().find(|n| n.starts_with(REPLACED)).unwrap());
        assert!(aside.join("pkg/deep.py").is_file() && !aside.join("__pycache__").exists());
        assert!(!aside.join("pkg/__pycache__").exists());
        // The pycs name their sources as the sandbox shows them, not by the host's path.
        let pyc = std::fs::read(main).unwrap();
        let text = String::from_utf8_lossy(&pyc);
        assert!(text.contains("/var/task/main.py") && !text.contains(COMPILING), "{text}");

        // A tree without Python is left alone.
        let plain = root.join("plain");
        std::fs::create_dir_all(&plain).unwrap();
        std::fs::write(plain.join("index.mjs"), "export const handler = () => 1;\n").unwrap();
        assert!(!compile(&python(), &root, &plain).await.unwrap());
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 3, "no work folder left");
    }
}
