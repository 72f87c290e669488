//! `clot-bench trajectory`: one run of clot, recorded (`clot train --record-draws`), replayed by
//! the PyTorch peer with the same draws (`python/trajectory_peer.py`), and the two compared step
//! by step ([`clot_pipeline::trajectory`]): per-step losses and parameters over the whole run,
//! every stage output and gradient of the first steps, the evaluation's predictions, and the
//! first step and quantity where they separate.
//!
//! Default: the five Breakfast coffee videos, breakfast preset, seed 0, clot and asot mode.
//! `-- <clot train flags>` replaces the data flags (then `--root` names the standard-layout
//! folder the peer reads).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clot_pipeline::trajectory::record_and_replay;

/// Loss terms closer than this (relative) and parameters closer than [`PARAM_TOL`] have not
/// separated.
pub const LOSS_TOL: f64 = 1e-4;
pub const PARAM_TOL: f64 = 1e-5;

struct Args {
    data: PathBuf,
    root: Option<PathBuf>,
    modes: Vec<String>,
    seed: u64,
    python: String,
    json: bool,
    train: Vec<String>,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        data: clot_datasets::shared::folder().join("data"),
        root: None,
        modes: vec!["clot".into(), "asot".into()],
        seed: 0,
        python: "python3".into(),
        json: false,
        train: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = PathBuf::from(value()?),
            "--root" => a.root = Some(PathBuf::from(value()?)),
            "--mode" => a.modes = value()?.split(',').map(str::to_string).collect(),
            "--seed" => a.seed = value()?.parse()?,
            "--python" => a.python = value()?.clone(),
            "--json" => a.json = true,
            "--" => {
                a.train = it.by_ref().cloned().collect();
                break;
            }
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

pub fn run(args: &[String]) -> Result<()> {
    let a = parse_args(args)?;
    let clot = crate::clot_binary()?;
    let (data_args, root) = if a.train.is_empty() {
        let (mut v, breakfast) = crate::dataset_args(None, &a.data)?;
        v.extend(["--activity", "coffee", "--preset", "breakfast"].map(str::to_string));
        (v, a.root.clone().unwrap_or(breakfast))
    } else {
        let root = a
            .root
            .clone()
            .context("with `-- <clot train flags>`, give --root (the folder the peer reads)")?;
        (a.train.clone(), root)
    };
    let mut out = serde_json::Map::new();
    for mode in &a.modes {
        let dir = tempfile::tempdir()?;
        let mut train = data_args.clone();
        train.extend([
            "--mode".into(),
            mode.clone(),
            "--seed".into(),
            a.seed.to_string(),
        ]);
        let script = crate::python_script("trajectory_peer.py");
        let c = record_and_replay(&clot, &a.python, &script, &train, &root, dir.path())?;
        let sep = c.separation(LOSS_TOL, PARAM_TOL);
        if a.json {
            let mut v = serde_json::to_value(&c)?;
            v["separation"] = serde_json::json!(sep);
            out.insert(mode.clone(), v);
            continue;
        }
        println!("== {mode} mode, seed {} ==", a.seed);
        print!("{}", c.table());
        match sep {
            None => println!(
                "the trajectories do not separate over {} steps (loss terms within {LOSS_TOL:e} relative, well-conditioned parameters within {PARAM_TOL:e})\n",
                c.steps.len()
            ),
            Some((step, what)) => println!("first separation: step {step}, {what}\n"),
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}
