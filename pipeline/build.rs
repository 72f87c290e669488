//! Records the git revision the binary is built from (`CLOT_GIT_REVISION`, "unknown" outside a
//! checkout), for the `clot.git_revision` metadata of every table a run or sweep writes.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let rev = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CLOT_GIT_REVISION={rev}");
    // build again when HEAD moves (a commit, a checkout)
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        for p in ["HEAD", "refs/heads", "packed-refs"] {
            println!("cargo:rerun-if-changed={dir}/{p}");
        }
    }
}
