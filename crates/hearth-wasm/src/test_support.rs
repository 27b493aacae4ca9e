//! For tests of crates that run the repository's examples: the examples, built (the
//! WebAssembly ones for their wasm32 targets, the Rust ones for this machine).

use std::path::{Path, PathBuf};

/// The example `name` (a folder of `examples/`) built for `target` with `cargo build
/// --release`, as its manifest says; the path of `file` in its target folder.
pub fn example(name: &str, target: &str, file: &str) -> PathBuf {
    build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name), target, file)
}

/// The crate at `root` (a workspace of its own) built for `target` in release; the path of
/// `file` in its target folder.
pub fn build(root: &Path, target: &str, file: &str) -> PathBuf {
    let name = root.display();
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--release", "--locked", "--target", target])
        .current_dir(root)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "building {name} for {target} failed: is the target installed (rustup target add {target})?"
    );
    root.join("target").join(target).join("release").join(file)
}

/// The executable `name` of the Rust examples' workspace (`examples/Cargo.toml`:
/// `rust-hello`, `rust-http`), built in release for this machine.
pub fn rust_example(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--release", "--locked", "--bin", name])
        .current_dir(&root)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the Rust example {name} in {} failed", root.display());
    root.join("target/release").join(name)
}

/// `examples/wasm-hello`, the event function (a WASI preview 1 command).
pub fn hello_module() -> Vec<u8> {
    std::fs::read(example("wasm-hello", "wasm32-wasip1", "wasm-hello.wasm")).expect("built")
}

/// `examples/wasm-http`, the `wasi:http` component.
pub fn http_component() -> Vec<u8> {
    std::fs::read(example("wasm-http", "wasm32-wasip2", "wasm_http.wasm")).expect("built")
}

/// `examples/wasm-c/hello.c` built with Debian's clang and wasi-libc (`clang
/// --target=wasm32-wasi`) into `out`.
pub fn c_module(out: &Path) -> Vec<u8> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/wasm-c/hello.c");
    let module = out.join("hello-c.wasm");
    let status = std::process::Command::new("clang")
        .args(["--target=wasm32-wasi", "-O2", "-o"])
        .arg(&module)
        .arg(&source)
        .status()
        .expect("clang runs: install Debian's clang, lld, wasi-libc and libclang-rt-14-dev-wasm32 (scripts/test-deps.sh does)");
    assert!(status.success(), "clang --target=wasm32-wasi failed for {}", source.display());
    std::fs::read(module).expect("built")
}
