//! `clot-bench`: side-by-side benchmarks of clot against the Python references, in one run.
//!
//! * `clot-bench io`: reading datasets (`.txt` layout and Parquet) against numpy's `loadtxt` and
//!   pyarrow ([`io`]).
//! * `clot-bench solver`: the ASOT solver against a PyTorch implementation of the same
//!   algorithm ([`solver`]).
//! * `clot-bench modes`: clot, asot and the four ablations over seeds, scores and time per
//!   stage ([`modes`]).
//! * `clot-bench train`: the whole Breakfast coffee training run against a PyTorch script of the
//!   same training ([`train`]).
//! * `clot-bench fidelity`: clot against the PyTorch peers over many seeds, same metric code,
//!   paired differences ([`fidelity`]).
//! * `clot-bench ot1`: one training OT1 call on one thread, part by part, against its
//!   arithmetic bound ([`ot1`]).
//! * `clot-bench gpu-solver`: the ASOT solver on the CPU and on wgpu, side by side
//!   ([`gpu_solver`]).
//! * `clot-bench devices`: whole training runs on the CPU and on wgpu, over seeds ([`devices`]).
//! * `clot-bench trajectory`: a recorded run against the PyTorch peer's replay of the same
//!   draws, step by step ([`trajectory`]).
//! * `clot-bench choose-k`: `--actions auto` on synthetic sets of known K and on coffee
//!   ([`choose_k`]).
//!
//! `clot-bench --help` lists every subcommand's flags; `clot-bench SUB --help` one's.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};

mod choose_k;
mod devices;
mod fidelity;
mod gpu_solver;
mod io;
mod modes;
mod ot1;
mod solver;
mod train;
mod trajectory;

/// Median wall time of `repeats` runs of `f`.
pub(crate) fn median_time(repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let t = (0..repeats.max(1))
        .map(|_| time_once(&mut f))
        .collect::<Result<Vec<_>>>()?;
    Ok(median(t))
}

/// Seconds taken by one call of `f`.
pub(crate) fn time_once<E: Into<anyhow::Error>>(
    f: impl FnOnce() -> std::result::Result<(), E>,
) -> Result<f64> {
    let start = Instant::now();
    f().map_err(Into::into)?;
    Ok(start.elapsed().as_secs_f64())
}

/// The median (the upper one of an even count); NaN for no values.
pub(crate) fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(f64::total_cmp);
    t.get(t.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The `clot` binary beside this one (the same profile's build), or an error saying how to build
/// it.
pub(crate) fn clot_binary() -> Result<PathBuf> {
    let clot = std::env::current_exe()?.with_file_name("clot");
    if !clot.is_file() {
        bail!(
            "{} not found: build it first (cargo build --release -p clot-pipeline)",
            clot.display()
        );
    }
    Ok(clot)
}

/// The `clot train` data flags and the folder the Python peers read: the standard-layout folder
/// `layout` itself, else the Breakfast set under `data` (checked to be there).
pub(crate) fn dataset_args(
    layout: Option<&std::path::Path>,
    data: &std::path::Path,
) -> Result<(Vec<String>, PathBuf)> {
    let utf8 = |p: &std::path::Path| -> Result<String> {
        p.to_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", p.display()))
    };
    match layout {
        Some(dir) => Ok((vec![utf8(dir)?], dir.to_path_buf())),
        None => {
            if !data.join("Breakfast").is_dir() {
                bail!("{} has no Breakfast folder (give --data)", data.display());
            }
            let args = vec![
                "--data".into(),
                utf8(data)?,
                "--dataset".into(),
                "Breakfast".into(),
            ];
            Ok((args, data.join("Breakfast")))
        }
    }
}

/// A script in `bench/python`.
pub(crate) fn python_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

/// A subcommand's entry point: its flags (everything after its name).
type Run = fn(&[String]) -> Result<()>;

/// Each subcommand, its flags as `--help` prints them, and what runs it: the one list that both
/// dispatch and help read.
const SUBCOMMANDS: &[(&str, &str, Run)] = &[
    (
        "io",
        "[--videos N] [--median-len N] [--dim D] [--repeats R] [--data DIR] [--python EXE] [--json]",
        io::run,
    ),
    (
        "solver",
        "[--max-n N] [--repeats R] [--shared DIR] [--python EXE] [--json]",
        solver::run,
    ),
    (
        "train",
        "[--mode asot|clot] [--data DIR | --layout DIR --activity A --actions K] [--epochs E] \
         [--threads T] [--mlp D,128,40] [--seeds N] [--repeats R] [--val-every E] [--python EXE] \
         [--json]",
        train::run,
    ),
    (
        "modes",
        "[--data DIR] [--seeds N] [--json] [-- <clot train flags>]",
        modes::run,
    ),
    (
        "fidelity",
        "[--data DIR | --layout DIR --activity A --actions K] [--seeds N] [--mode clot,asot] \
         [--python EXE] [--json]",
        fidelity::run,
    ),
    (
        "ot1",
        "[--videos B] [--rows N] [--actions K] [--dim D] [--projections P] [--repeats R] [--json]",
        ot1::run,
    ),
    (
        "gpu-solver",
        "[--max-cells C] [--only 'B=1 N=1000000 K=48'] [--repeats R] [--json]",
        gpu_solver::run,
    ),
    (
        "devices",
        "[--data DIR | --layout DIR --activity A --actions K] [--seeds N] [--steps S] \
         [--threads T] [--mode clot,asot] [--mlp D,128,40] [--epochs E] [--json]",
        devices::run,
    ),
    (
        "trajectory",
        "[--data DIR] [--mode clot,asot] [--seed S] [--python EXE] [--json] \
         [--root DIR -- <clot train flags>]",
        trajectory::run,
    ),
    (
        "choose-k",
        "[--ks 4,7,10,14,20] [--sets N] [--first-seed S] [--data DIR] [--seed-spread] [--json] \
         [-- <clot run flags>]",
        choose_k::run,
    ),
];

/// The usage text: every subcommand, or only `only`'s.
fn usage(only: Option<&str>) -> String {
    let lines: Vec<String> = SUBCOMMANDS
        .iter()
        .filter(|(name, ..)| only.is_none_or(|o| o == *name))
        .map(|(name, flags, _)| format!("  clot-bench {name} {flags}"))
        .collect();
    format!("usage:\n{}", lines.join("\n"))
}

/// Whether `args` (a subcommand's flags) ask for help: `--help` or `-h` before any `--` (what
/// follows `--` goes to `clot`).
fn wants_help(args: &[String]) -> bool {
    args.iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--help" || a == "-h")
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sub = args.first().map(String::as_str);
    if matches!(sub, Some("--help" | "-h" | "help")) {
        println!("{}", usage(None));
        return Ok(());
    }
    let Some(sub) = sub else {
        bail!("no subcommand given\n{}", usage(None))
    };
    let Some((name, _, run)) = SUBCOMMANDS.iter().find(|(name, ..)| *name == sub) else {
        bail!("unknown subcommand `{sub}`\n{}", usage(None))
    };
    if wants_help(&args[1..]) {
        println!("{}", usage(Some(name)));
        return Ok(());
    }
    run(&args[1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_has_one_usage_line_and_help_stops_at_the_separator() {
        let names: Vec<&str> = SUBCOMMANDS.iter().map(|(n, ..)| *n).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        let ot1 = usage(Some("ot1"));
        assert_eq!(ot1.lines().count(), 2, "{ot1}");
        assert!(ot1.contains("clot-bench ot1 [--videos B]"), "{ot1}");
        assert_eq!(usage(None).lines().count(), 1 + SUBCOMMANDS.len());
        let args = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(wants_help(&args(&["--sets", "2", "-h"])));
        assert!(wants_help(&args(&["--help"])));
        // after `--` the flags are clot's: `clot run --help` is not ours to answer
        assert!(!wants_help(&args(&["--sets", "2", "--", "--help"])));
        assert!(!wants_help(&args(&["--json"])));
    }
}
