//! `clot sweep`: many trials over settings, seeds and activities, with results a Parquet reader
//! takes as one table.
//!
//! * [`plan`]: the sweep file → resolved, checked trials with stable ids; shards.
//! * [`pool`]: the worker pool (crossbeam channel, one rayon pool and one stage graph per trial).
//! * [`store`]: the Hive-partitioned results folder, atomic files, what counts as done.
//!
//! A trial is the same code path as `clot train` (resolve, build the graph, fit, evaluate, write),
//! so its results equal the single run's bit for bit at the same thread count. Each dataset the
//! file names is read once per process and its videos shared by all trials.

pub mod plan;
pub mod pool;
pub mod store;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clot_datasets::{Dataset, Video};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{DatasetArgs, SweepArgs};
use crate::commands::{Resolved, load_with_dim};
use plan::{DataKey, SweepFile, Trial};
use store::{TrialRow, sweep_dir, trial_dir, trial_status};

/// Which shard this process runs: `--shard i/n`, else a Slurm job array
/// (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN` of `SLURM_ARRAY_TASK_COUNT`), else a Kubernetes
/// indexed job (`JOB_COMPLETION_INDEX` of `CLOT_SHARDS`), else the whole sweep (0 of 1).
pub fn shard_of(
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(usize, usize)> {
    let parse = |what: &str, v: &str| -> Result<usize> {
        v.trim()
            .parse::<usize>()
            .with_context(|| format!("{what} = `{v}` is not a whole number"))
    };
    let (i, n, from) = if let Some(s) = flag {
        let (i, n) = s
            .split_once('/')
            .with_context(|| format!("--shard `{s}`: expected INDEX/COUNT, e.g. 0/3"))?;
        (
            parse("--shard index", i)?,
            parse("--shard count", n)?,
            "--shard",
        )
    } else if let (Some(id), Some(count)) =
        (env("SLURM_ARRAY_TASK_ID"), env("SLURM_ARRAY_TASK_COUNT"))
    {
        let min = env("SLURM_ARRAY_TASK_MIN")
            .map(|m| parse("SLURM_ARRAY_TASK_MIN", &m))
            .transpose()?
            .unwrap_or(0);
        let id = parse("SLURM_ARRAY_TASK_ID", &id)?;
        (
            id.checked_sub(min)
                .context("SLURM_ARRAY_TASK_ID below SLURM_ARRAY_TASK_MIN")?,
            parse("SLURM_ARRAY_TASK_COUNT", &count)?,
            "the Slurm job array",
        )
    } else if let Some(idx) = env("JOB_COMPLETION_INDEX") {
        let count = env("CLOT_SHARDS").context(
            "JOB_COMPLETION_INDEX is set (a Kubernetes indexed job) but CLOT_SHARDS, the job's \
             completions, is not",
        )?;
        (
            parse("JOB_COMPLETION_INDEX", &idx)?,
            parse("CLOT_SHARDS", &count)?,
            "the Kubernetes indexed job",
        )
    } else {
        return Ok((0, 1));
    };
    if n == 0 || i >= n {
        bail!("shard {i} of {n} (from {from}): the index must be below the count");
    }
    Ok((i, n))
}

/// Reads every dataset the sweep names, once each.
fn load_all(file: &SweepFile, quiet: bool) -> Result<BTreeMap<DataKey, (Dataset, Resolved)>> {
    let mut out = BTreeMap::new();
    for spec in &file.specs {
        if out.contains_key(&spec.data) {
            continue;
        }
        let key = spec.data.clone();
        let args = DatasetArgs {
            dataset: Some(key.dataset.clone()),
            dataset_flag: None,
            data: key.data.clone(),
            preset: key.preset.clone(),
            activity_rule: None,
            activity: Vec::new(),
            zero_non_finite: false,
            skip_bad_videos: false,
        };
        // an explicit mlp sets the D the data must have, as in `clot train`
        let dim = crate::run::explicit_dim(&Default::default(), &spec.settings);
        let (ds, _, r) = load_with_dim(&args, quiet, dim)?;
        out.insert(key, (ds, r));
    }
    Ok(out)
}

fn bar(quiet: bool, len: u64) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {pos}/{len} trials, {msg} [{elapsed}<{eta}]")
    {
        b.set_style(style);
    }
    b
}

/// `clot sweep`.
pub fn sweep(a: &SweepArgs, quiet: bool) -> Result<()> {
    let quiet = quiet || a.json;
    let file = SweepFile::read(&a.file)?;
    let datasets = load_all(&file, quiet)?;
    let all = plan::resolve(&file.specs, &datasets)?;
    let (index, count) = shard_of(a.shard.as_deref(), &|k| std::env::var(k).ok())?;
    let total = all.len();
    let trials = plan::shard(all, index, count);
    let dir = sweep_dir(&a.out, &file.name);
    if a.dry_run {
        print_plan(&file.name, &trials, total, (index, count), &dir, a.json)?;
        return Ok(());
    }
    // what this shard has already written
    let mut todo: Vec<Trial> = Vec::new();
    let mut earlier = 0;
    for t in trials {
        let path = trial_dir(&a.out, &file.name, &t.id).join("trial.parquet");
        match (trial_status(&path).as_deref(), a.resume) {
            (Some("ok"), true) => earlier += 1,
            (Some(_), false) => bail!(
                "{} already holds results of this sweep (trial {}); pass --resume to run only \
                 what is missing, or choose another --out",
                dir.display(),
                t.id
            ),
            _ => todo.push(t),
        }
    }
    let videos_of = |t: &Trial| -> Vec<&Video> {
        datasets
            .get(&t.data)
            .map(|(ds, _)| {
                ds.videos
                    .iter()
                    .filter(|v| v.activity == t.activity)
                    .collect()
            })
            .unwrap_or_default()
    };
    let jobs = a.jobs.unwrap_or_else(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / a.threads_per_trial.max(1)).max(1)
    });
    let cfg = pool::PoolConfig {
        jobs,
        threads_per_trial: a.threads_per_trial,
        predictions: a.predictions,
    };
    let progress = bar(quiet, todo.len() as u64);
    let start = Instant::now();
    let rows = pool::run_all(&a.out, &file.name, &todo, &videos_of, cfg, &progress)?;
    progress.finish_and_clear();
    let wall = start.elapsed().as_secs_f64();
    let failed: Vec<&TrialRow> = rows.iter().filter(|r| r.status != "ok").collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_rows(&todo, &rows);
        println!(
            "sweep {}: {} trials in this shard ({index}/{count} of {total}): {} ran in {:.1} s \
             ({:.1} trials/min, {jobs} jobs × {} threads), {earlier} done earlier, {} failed → {}",
            file.name,
            todo.len() + earlier,
            rows.len(),
            wall,
            rows.len() as f64 / wall.max(1e-9) * 60.0,
            a.threads_per_trial,
            failed.len(),
            dir.display()
        );
    }
    if !failed.is_empty() {
        let first = failed[0];
        bail!(
            "{} of {} trials failed (recorded in their trial.parquet); first: trial {} ({}): {}",
            failed.len(),
            rows.len(),
            first.trial,
            first.activity,
            first.error.as_deref().unwrap_or("?")
        );
    }
    Ok(())
}

fn print_rows(trials: &[Trial], rows: &[TrialRow]) {
    if rows.is_empty() {
        return;
    }
    println!(
        "{:<16} {:<14} {:<6} {:>5} {:>7} {:>7} {:>7}  status",
        "trial", "activity", "mode", "seed", "MoF", "F1", "mIoU"
    );
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
    for (t, r) in trials.iter().zip(rows) {
        println!(
            "{:<16} {:<14} {:<6} {:>5} {:>7} {:>7} {:>7}  {}",
            r.trial,
            r.activity,
            t.cfg.mode,
            t.cfg.seed,
            f(r.mof),
            f(r.f1),
            f(r.miou),
            r.error
                .as_deref()
                .map_or("ok".to_string(), |e| format!("failed: {e}"))
        );
    }
}

fn print_plan(
    name: &str,
    trials: &[Trial],
    total: usize,
    (index, count): (usize, usize),
    dir: &Path,
    json: bool,
) -> Result<()> {
    if json {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            trial: &'a str,
            dataset: &'a str,
            activity: &'a str,
            config: &'a crate::config::TrainConfig,
        }
        let rows: Vec<Row<'_>> = trials
            .iter()
            .map(|t| Row {
                trial: &t.id,
                dataset: &t.dataset_name,
                activity: &t.activity,
                config: &t.cfg,
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "sweep {name}: {} trials (shard {index}/{count} of {total}) → {}",
        trials.len(),
        dir.display()
    );
    for t in trials {
        let diff = t.cfg.differences_from_defaults();
        println!(
            "  {}  {} / {}  {}",
            t.id,
            t.dataset_name,
            t.activity,
            diff.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_come_from_the_flag_slurm_or_kubernetes() {
        let none = |_: &str| None;
        assert_eq!(shard_of(None, &none).unwrap(), (0, 1));
        assert_eq!(shard_of(Some("1/3"), &none).unwrap(), (1, 3));
        assert!(
            shard_of(Some("3/3"), &none)
                .unwrap_err()
                .to_string()
                .contains("below")
        );
        assert!(
            shard_of(Some("x"), &none)
                .unwrap_err()
                .to_string()
                .contains("INDEX/COUNT")
        );
        let slurm = |k: &str| match k {
            "SLURM_ARRAY_TASK_ID" => Some("5".into()),
            "SLURM_ARRAY_TASK_MIN" => Some("4".into()),
            "SLURM_ARRAY_TASK_COUNT" => Some("3".into()),
            _ => None,
        };
        assert_eq!(shard_of(None, &slurm).unwrap(), (1, 3));
        let k8s = |k: &str| match k {
            "JOB_COMPLETION_INDEX" => Some("2".into()),
            "CLOT_SHARDS" => Some("4".into()),
            _ => None,
        };
        assert_eq!(shard_of(None, &k8s).unwrap(), (2, 4));
        let half = |k: &str| (k == "JOB_COMPLETION_INDEX").then(|| "0".to_string());
        assert!(
            shard_of(None, &half)
                .unwrap_err()
                .to_string()
                .contains("CLOT_SHARDS")
        );
    }
}
