//! Language runtimes shipped inside the binary, and how each runtime's process is launched.

use std::path::{Path, PathBuf};

use hearth_types::Runtime;

const PYTHON_BOOTSTRAP: &str = include_str!("../runtimes/python/bootstrap.py");
const NODE_BOOTSTRAP: &str = include_str!("../runtimes/nodejs/bootstrap.mjs");
/// What a stem cell of a `provided` function runs until it becomes the function's `bootstrap`.
const PROVIDED_CELL: &str = include_str!("../runtimes/provided/cell.py");

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("runtime {0} is not available on this node yet")]
    Unavailable(Runtime),
    #[error("no {what} interpreter found on this node: {hint}")]
    NoInterpreter { what: &'static str, hint: &'static str },
    #[error("the package has no executable `bootstrap` at its root; a `provided` function must ship one")]
    NoBootstrap,
    #[error("cannot install runtime files in {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl RuntimeError {
    /// The error type a caller sees when an instance cannot be started for this reason.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::NoBootstrap => crate::error_type::INVALID_ENTRYPOINT,
            _ => crate::error_type::UNAVAILABLE,
        }
    }
}

/// The installed runtimes of this node.
#[derive(Debug, Clone)]
pub struct Runtimes {
    dir: PathBuf,
    python: Option<PathBuf>,
    node: Option<PathBuf>,
}

impl Runtimes {
    /// Writes the embedded bootstraps under `dir` and finds the interpreters.
    pub fn install(dir: &Path) -> Result<Self, RuntimeError> {
        let py_dir = dir.join("python");
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| RuntimeError::Io { path, source }
        };
        std::fs::create_dir_all(&py_dir).map_err(io(&py_dir))?;
        let boot = py_dir.join("bootstrap.py");
        std::fs::write(&boot, PYTHON_BOOTSTRAP).map_err(io(&boot))?;
        let node_dir = dir.join("nodejs");
        std::fs::create_dir_all(&node_dir).map_err(io(&node_dir))?;
        let boot = node_dir.join("bootstrap.mjs");
        std::fs::write(&boot, NODE_BOOTSTRAP).map_err(io(&boot))?;
        let provided_dir = dir.join("provided");
        std::fs::create_dir_all(&provided_dir).map_err(io(&provided_dir))?;
        let cell = provided_dir.join("cell.py");
        std::fs::write(&cell, PROVIDED_CELL).map_err(io(&cell))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            python: find(&["/usr/bin/python3", "/usr/local/bin/python3"]),
            node: find(&["/usr/bin/node", "/usr/local/bin/node"]),
        })
    }

    /// The same runtimes as if Node.js were not installed (what a node without it refuses).
    pub fn without_node(self) -> Self {
        Self { node: None, ..self }
    }

    /// The Python interpreter functions run on, if the node has one.
    pub fn python(&self) -> Option<&Path> {
        self.python.as_deref()
    }

    /// Where the bootstraps are installed on the host.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Program and arguments that start `runtime` for code unpacked at `host_task_root`;
    /// paths in them are as the sandbox shows them (`task_root`, `runtime_root`).
    pub fn command(
        &self,
        runtime: Runtime,
        host_task_root: &Path,
        task_root: &Path,
        runtime_root: &Path,
    ) -> Result<(PathBuf, Vec<String>), RuntimeError> {
        self.check(runtime)?;
        match runtime {
            Runtime::Python3 => {
                let python = self.python.clone().expect("checked");
                let boot = runtime_root.join("python/bootstrap.py");
                // -u: unbuffered output, so log lines reach the platform as they are printed.
                Ok((python, vec!["-u".into(), boot.display().to_string()]))
            }
            Runtime::Nodejs => {
                let node = self.node.clone().expect("checked");
                Ok((node, vec![runtime_root.join("nodejs/bootstrap.mjs").display().to_string()]))
            }
            Runtime::Provided => {
                self.check_code(runtime, host_task_root)?;
                Ok((task_root.join("bootstrap"), vec![]))
            }
            other => Err(RuntimeError::Unavailable(other)),
        }
    }

    /// Program and arguments of a stem cell of `runtime` (its code not there yet): the
    /// interpreter with its bootstrap for Python and Node; for `provided`, Python running a
    /// shim that execs the function's `bootstrap` once it is linked in (so `provided` cells
    /// need Python on the node).
    pub fn cell_command(&self, runtime: Runtime, runtime_root: &Path) -> Result<(PathBuf, Vec<String>), RuntimeError> {
        match runtime {
            Runtime::Provided => {
                let python = self.python.clone().ok_or(RuntimeError::NoInterpreter {
                    what: "python3",
                    hint: "install Debian's python3 (apt-get install python3) for pre-warmed `provided` sandboxes",
                })?;
                let shim = runtime_root.join("provided/cell.py");
                Ok((python, vec!["-I".into(), "-S".into(), shim.display().to_string()]))
            }
            // Their commands do not look at the code.
            Runtime::Python3 | Runtime::Nodejs => self.command(runtime, Path::new(""), Path::new(""), runtime_root),
            other => Err(RuntimeError::Unavailable(other)),
        }
    }

    /// Whether this node can keep stem cells of `runtime`.
    pub fn prewarmable(&self, runtime: Runtime) -> bool {
        self.cell_command(runtime, Path::new("/")).is_ok()
    }

    /// Whether the code unpacked at `host_task_root` can start as `runtime`: a `provided`
    /// function needs an executable `bootstrap` at its root.
    pub fn check_code(&self, runtime: Runtime, host_task_root: &Path) -> Result<(), RuntimeError> {
        if runtime == Runtime::Provided && !is_executable(&host_task_root.join("bootstrap")) {
            return Err(RuntimeError::NoBootstrap);
        }
        Ok(())
    }

    /// Whether this node can start `runtime` at all (its interpreter is installed; `wasm`
    /// runs in the server's own engine): what a deploy can be told before anything runs.
    pub fn check(&self, runtime: Runtime) -> Result<(), RuntimeError> {
        match runtime {
            Runtime::Python3 if self.python.is_none() => Err(RuntimeError::NoInterpreter {
                what: "python3",
                hint: "install Debian's python3 (apt-get install python3)",
            }),
            Runtime::Nodejs if self.node.is_none() => {
                Err(RuntimeError::NoInterpreter { what: "node", hint: "install Node.js 20 or later as /usr/bin/node" })
            }
            Runtime::Python3 | Runtime::Nodejs | Runtime::Provided | Runtime::Wasm => Ok(()),
        }
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A system interpreter, never a version-manager shim (a pyenv shim is a shell script
/// that costs ~170 ms per start).
fn find(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| is_executable(p)).and_then(|p| std::fs::canonicalize(p).ok())
}
