//! The benchmarks run: the real `hearth-bench` binary, briefly, prints every figure it
//! promises with a baseline measured in the same run. (The test also has cargo build the
//! binary with the workspace's test features, so `scripts/test` runs the soak with it
//! without a second build of the dependencies.)

use std::collections::HashMap;
use std::process::Command;

#[test]
fn the_wasm_benchmark_prints_every_figure_beside_its_baseline() {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth-bench"))
        .args(["wasm", "--cold-starts", "2", "--requests", "1000", "--json"])
        .output()
        .expect("hearth-bench runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "hearth-bench wasm failed: {stderr}");
    let figures: HashMap<String, serde_json::Value> = String::from_utf8(out.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|line| {
            let figure: serde_json::Value = serde_json::from_str(line).expect("one JSON figure per line");
            (figure["name"].as_str().expect("a name").to_owned(), figure)
        })
        .collect();
    for name in [
        "cold_start.wasm.compile.p50",
        "cold_start.wasm.cache.p50",
        "cold_start.wasm.cache.p99",
        "warm.wasm.c1.p50",
        "throughput.wasm.c64",
        "memory.wasm.loaded_module",
    ] {
        let figure = figures.get(name).unwrap_or_else(|| panic!("no {name} in {figures:?}"));
        for field in ["value", "baseline_value", "ratio"] {
            let v = figure[field].as_f64().unwrap_or_else(|| panic!("{name}.{field} is not a number: {figure}"));
            assert!(v.is_finite() && v > 0.0, "{name}.{field} = {v}: {figure}");
        }
        assert!(!figure["baseline"].as_str().unwrap_or_default().is_empty(), "{name} names no baseline");
    }
}
