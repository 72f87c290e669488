//! Where tests and benchmarks find the shared reference data (`data/`, `golden/`): the folder
//! named by `$CLOT_SHARED`, else `shared/` beside the checkout. A fresh clone has none, so tests
//! that need it skip with a message instead of failing, unless `CLOT_REQUIRE_SHARED=1` (CI sets
//! it), which makes a missing folder a failure.

use std::path::PathBuf;

/// `$CLOT_SHARED`, else `../shared` beside the workspace (whether or not it exists).
pub fn folder() -> PathBuf {
    std::env::var_os("CLOT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// The shared folder if it holds every path in `needs` (relative to it); otherwise prints a
/// `SKIP:` line naming what is missing and returns `None`, or, with `CLOT_REQUIRE_SHARED=1`,
/// panics naming it (a test that must not skip).
pub fn require(needs: &[&str]) -> Option<PathBuf> {
    let root = folder();
    match needs.iter().find(|p| !root.join(p).exists()) {
        None => Some(root),
        Some(missing) if std::env::var("CLOT_REQUIRE_SHARED").is_ok_and(|v| v == "1") => {
            panic!(
                "CLOT_REQUIRE_SHARED=1 but {} is absent (set CLOT_SHARED)",
                root.join(missing).display()
            )
        }
        Some(missing) => {
            eprintln!(
                "SKIP: {} is absent (a fresh clone has no shared data; set CLOT_SHARED)",
                root.join(missing).display()
            );
            None
        }
    }
}
