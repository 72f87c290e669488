//! Helpers shared by the `clot` binary's integration tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::process::{Command, Output};

/// Runs `clot` with `args`.
pub fn clot(args: &[&str]) -> Output {
    clot_env(args, &[])
}

/// Runs `clot` with `args` and the environment variables `env` set.
pub fn clot_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clot"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run clot")
}

/// Runs `clot`, asserts success, returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = clot(args);
    assert!(
        out.status.success(),
        "clot {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// Runs `clot`, asserts success, parses stdout as JSON.
pub fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).expect("json")
}

/// Runs `clot`, asserts exit code 2, returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = clot(args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "clot {args:?} should fail with 2: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("utf8")
}

/// The shared reference folder (`$CLOT_SHARED`, else `../shared` beside the checkout) when it has
/// `golden/` and `data/`; `None` (with a SKIP line) in a fresh clone.
pub fn shared() -> Option<std::path::PathBuf> {
    clot_datasets::shared::require(&["golden", "data"])
}

/// Whether python3 has `modules`; skips (returns false) or, with `CLOT_REQUIRE_PYTHON=1`, fails.
pub fn python_has(modules: &str) -> bool {
    let required = std::env::var("CLOT_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
    let probe = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            !required,
            "CLOT_REQUIRE_PYTHON=1 but python3 with {modules} is missing"
        );
        eprintln!("SKIP: python3 with {modules} not found");
        return false;
    }
    true
}

/// A path as `&str` (test paths are UTF-8).
pub fn s(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// All rows of a Parquet file as one batch.
pub fn read(path: &std::path::Path) -> arrow_array::RecordBatch {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .expect("parquet")
        .build()
        .expect("reader");
    let batches: Vec<arrow_array::RecordBatch> = r.map(|b| b.expect("batch")).collect();
    arrow_select::concat::concat_batches(&batches[0].schema(), &batches).expect("concat")
}

/// The text elements of an SVG, trimmed.
pub fn svg_texts(path: &std::path::Path) -> Vec<String> {
    let svg = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

/// Whether a wgpu adapter is there (this process opens the same one the binary will). Without
/// one: skips (false, with a SKIP line), or fails with `REQUIRE_GPU=1` (CI, on Mesa's software
/// Vulkan). Always false in a build without the `wgpu` feature.
pub fn gpu_available(test: &str) -> bool {
    let required = std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1");
    #[cfg(feature = "wgpu")]
    let found = clot_stages::gpu::GpuContext::shared().map(|ctx| ctx.describe());
    #[cfg(not(feature = "wgpu"))]
    let found: Result<String, &str> = Err("built without the `wgpu` feature");
    match found {
        Ok(adapter) => {
            eprintln!("{test}: on {adapter}");
            true
        }
        Err(e) => {
            assert!(!required, "{test}: REQUIRE_GPU=1 but {e}");
            eprintln!("SKIP {test}: {e}");
            false
        }
    }
}
