//! `clot sweep`: many trials over settings, seeds and activities, with results a Parquet reader
//! takes as one table.
//!
//! * [`plan`]: the sweep file → resolved, checked trials with stable ids; shards.
//! * [`pool`]: the worker pool (crossbeam channel, one rayon pool and one stage graph per trial).
//! * [`store`]: the Hive-partitioned results folder, atomic files, what counts as done.
//!
//! A trial is the same code path as `clot train` (resolve, build the graph, fit, evaluate, write),
//! so its results equal the single run's bit for bit at the same thread count. Each dataset the
//! file names is read once per process and its videos shared by all trials; a Parquet dataset is
//! planned from its index and labels, and each activity's row groups are read once, when its
//! first trial starts, and let go after its last (trials run activity by activity).

pub mod plan;
pub mod pool;
pub mod report;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clot_datasets::{Dataset, Video};
use clot_stages::choose_k::{KEstimate, KRange};

use crate::cli::{DatasetArgs, SweepArgs};
use crate::commands::{Resolved, load_with_dim, resolve};
use plan::{DataFacts, DataKey, SweepFile, Trial};
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

/// Where a dataset's videos come from while trials run.
#[derive(Debug)]
enum Source {
    /// A folder or the demo, read whole (planning needs its frames and labels anyway).
    InMemory(Dataset),
    /// A Parquet file: each activity's row groups are read when its first trial starts and let go
    /// after its last, so memory holds only the activities being trained.
    Parquet {
        path: std::path::PathBuf,
        zero_non_finite: bool,
    },
}

/// Reads what planning needs of every dataset the sweep names, once each: a folder or the demo
/// whole, a Parquet file's index and label column only.
fn load_all(file: &SweepFile, quiet: bool) -> Result<BTreeMap<DataKey, (DataFacts, Source)>> {
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
        let r = resolve(&args, dim.clone())?;
        let path = Path::new(&r.spec);
        let entry = if r.spec.ends_with(".parquet") && path.is_file() {
            let facts = parquet_facts(path, r.clone(), dim)?;
            let source = Source::Parquet {
                path: path.to_path_buf(),
                zero_non_finite: r.opts.zero_non_finite,
            };
            (facts, source)
        } else {
            let (ds, _, r) = load_with_dim(&args, quiet, dim)?;
            (DataFacts::of(&ds, r), Source::InMemory(ds))
        };
        out.insert(key, entry);
    }
    Ok(out)
}

/// A Parquet dataset's facts from its index and its label column (no feature pages read).
fn parquet_facts(path: &Path, r: Resolved, dim: Option<(usize, String)>) -> Result<DataFacts> {
    let sel = clot_datasets::ParquetSelection {
        features: false,
        labels: true,
        ..clot_datasets::ParquetSelection::default()
    };
    let (index, parts) = clot_datasets::read_parquet_videos(path, &sel)
        .with_context(|| format!("reading dataset {}", path.display()))?;
    if let Some((d, why)) = dim.filter(|(d, _)| *d != index.dim) {
        bail!(
            "reading dataset {}: feature dimension {}, expected {d} ({why})",
            path.display(),
            index.dim
        );
    }
    let mut activities: BTreeMap<String, plan::ActivityFacts> = BTreeMap::new();
    for p in &parts {
        let a = activities.entry(p.activity.clone()).or_default();
        a.videos.push((p.name.clone(), p.frames));
        if let Some(l) = &p.labels {
            a.labels.labelled += 1;
            a.labels.ids.extend_from_slice(l.as_slice());
            a.labels.ids.sort_unstable();
            a.labels.ids.dedup();
        }
    }
    Ok(DataFacts {
        resolved: r,
        name: index.name,
        dim: index.dim,
        activities,
    })
}

/// K̂ of `activity` for `actions = "auto"`, as `clot train --actions auto` estimates it: from the
/// activity's features alone (a Parquet dataset's activity is read for it and let go after).
/// Every shard computes the same K̂ (the estimate is seeded and thread-count independent), so
/// trial ids agree across shards.
fn estimate_k(source: &Source, activity: &str, range: Option<KRange>) -> Result<KEstimate> {
    let what = || format!("choosing K for `{activity}` (actions = \"auto\")");
    match source {
        Source::InMemory(ds) => {
            crate::run::estimate_actions(ds, activity, range).with_context(what)
        }
        Source::Parquet {
            path,
            zero_non_finite,
        } => {
            let sel = clot_datasets::ParquetSelection {
                activities: vec![activity.to_string()],
                zero_non_finite: *zero_non_finite,
                ..clot_datasets::ParquetSelection::default()
            };
            let (ds, _) = clot_datasets::read_parquet_selected(path, &sel)
                .with_context(|| format!("reading activity `{activity}` of {}", path.display()))?;
            crate::run::estimate_actions(&ds, activity, range).with_context(what)
        }
    }
}

/// The videos of the activities whose trials are running, each read once and shared by its
/// trials; an activity is let go when its last trial has ended.
struct ActivityCache<'a> {
    sources: &'a BTreeMap<DataKey, (DataFacts, Source)>,
    slots: Mutex<HashMap<(DataKey, String), Slot>>,
    /// Activities read (a Parquet activity's row groups, or a slice of an in-memory dataset).
    reads: std::sync::atomic::AtomicUsize,
}

type Loaded = Arc<std::sync::OnceLock<std::result::Result<Arc<Vec<Video>>, String>>>;

struct Slot {
    videos: Loaded,
    /// Trials of this activity not yet ended.
    remaining: usize,
}

impl<'a> ActivityCache<'a> {
    fn new(sources: &'a BTreeMap<DataKey, (DataFacts, Source)>, trials: &[Trial]) -> Self {
        let mut slots: HashMap<(DataKey, String), Slot> = HashMap::new();
        for t in trials {
            slots
                .entry((t.data.clone(), t.activity.clone()))
                .or_insert_with(|| Slot {
                    videos: Arc::default(),
                    remaining: 0,
                })
                .remaining += 1;
        }
        ActivityCache {
            sources,
            slots: Mutex::new(slots),
            reads: Default::default(),
        }
    }

    fn get(&self, t: &Trial) -> Result<Arc<Vec<Video>>> {
        let cell = {
            let slots = self
                .slots
                .lock()
                .map_err(|_| anyhow::anyhow!("cache poisoned"))?;
            let slot = slots
                .get(&(t.data.clone(), t.activity.clone()))
                .context("internal: a trial's activity is not in the cache")?;
            Arc::clone(&slot.videos)
        };
        // the first trial of an activity reads it; the others wait for that read
        let loaded = cell.get_or_init(|| self.read(t).map(Arc::new).map_err(|e| format!("{e:#}")));
        loaded.clone().map_err(|e| anyhow::anyhow!(e))
    }

    fn read(&self, t: &Trial) -> Result<Vec<Video>> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (_, source) = self
            .sources
            .get(&t.data)
            .context("internal: a sweep dataset was not read")?;
        Ok(match source {
            Source::InMemory(ds) => ds
                .videos
                .iter()
                .filter(|v| v.activity == t.activity)
                .cloned() // Arrow-backed: the feature buffers are shared, not copied
                .collect(),
            Source::Parquet {
                path,
                zero_non_finite,
            } => {
                let sel = clot_datasets::ParquetSelection {
                    activities: vec![t.activity.clone()],
                    zero_non_finite: *zero_non_finite,
                    ..clot_datasets::ParquetSelection::default()
                };
                clot_datasets::read_parquet_selected(path, &sel)
                    .with_context(|| {
                        format!("reading activity `{}` of {}", t.activity, path.display())
                    })?
                    .0
                    .videos
            }
        })
    }

    fn release(&self, t: &Trial) {
        if let Ok(mut slots) = self.slots.lock() {
            let key = (t.data.clone(), t.activity.clone());
            if let Some(slot) = slots.get_mut(&key) {
                slot.remaining = slot.remaining.saturating_sub(1);
                if slot.remaining == 0 {
                    slots.remove(&key);
                }
            }
        }
    }
}

/// `clot sweep`.
pub fn sweep(a: &SweepArgs, quiet: bool) -> Result<()> {
    let quiet = quiet || a.json;
    let file = SweepFile::read(&a.file)?;
    let sources = load_all(&file, quiet)?;
    let facts: BTreeMap<DataKey, DataFacts> = sources
        .iter()
        .map(|(k, (f, _))| (k.clone(), f.clone()))
        .collect();
    let mut estimates: BTreeMap<(DataKey, String, String), Arc<KEstimate>> = BTreeMap::new();
    let mut estimate = |data: &DataKey, activity: &str, range: Option<KRange>| {
        let key = (
            data.clone(),
            activity.to_string(),
            range.map_or_else(String::new, |r| r.to_string()),
        );
        if let Some(est) = estimates.get(&key) {
            return Ok(Arc::clone(est));
        }
        let (_, source) = sources
            .get(data)
            .context("internal: a sweep dataset was not read")?;
        let est = Arc::new(estimate_k(source, activity, range)?);
        if !quiet {
            eprintln!(
                "note: K = {} for `{activity}` of {}, estimated from the features alone ({}; \
                 {:.1} s). The labels were not read.",
                est.k, data.dataset, est.method, est.seconds
            );
        }
        estimates.insert(key, Arc::clone(&est));
        Ok(est)
    };
    let all = plan::resolve(&file.specs, &facts, &mut estimate)?;
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
    // one activity after another, so that each is read once and held only while it trains
    todo.sort_by(|x, y| (&x.data, &x.activity).cmp(&(&y.data, &y.activity)));
    let cache = ActivityCache::new(&sources, &todo);
    let jobs = a.jobs.unwrap_or_else(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / a.threads_per_trial.max(1)).max(1)
    });
    let cfg = pool::PoolConfig {
        jobs,
        threads_per_trial: a.threads_per_trial,
        predictions: a.predictions,
    };
    let progress = crate::progress::bar(
        quiet,
        todo.len() as u64,
        "{bar:30} {pos}/{len} trials, {msg} [{elapsed}<{eta}]",
    );
    let start = Instant::now();
    let rows = pool::run_all(
        &a.out,
        &file.name,
        &todo,
        &|t| cache.get(t),
        &|t| cache.release(t),
        cfg,
        &progress,
    )?;
    progress.finish_and_clear();
    let wall = start.elapsed().as_secs_f64();
    let failed: Vec<&TrialRow> = rows.iter().filter(|r| r.status != "ok").collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_rows(&todo, &rows);
        println!(
            "sweep {}: {} trials in this shard ({index}/{count} of {total}): {} ran in {:.1} s \
             ({:.1} trials/min, {jobs} jobs × {} threads, {} activity reads), {earlier} done \
             earlier, {} failed → {}",
            file.name,
            todo.len() + earlier,
            rows.len(),
            wall,
            rows.len() as f64 / wall.max(1e-9) * 60.0,
            a.threads_per_trial,
            cache.reads.load(std::sync::atomic::Ordering::Relaxed),
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
            /// With `actions = "auto"`: K̂, the range, the method and the curve.
            k_choice: Option<&'a KEstimate>,
        }
        let rows: Vec<Row<'_>> = trials
            .iter()
            .map(|t| Row {
                trial: &t.id,
                dataset: &t.dataset_name,
                activity: &t.activity,
                config: &t.cfg,
                k_choice: t.k_estimate.as_deref(),
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
        let mut diff = t.cfg.differences_from_defaults();
        if let Some(est) = &t.k_estimate {
            diff.push(format!(
                "K = {} estimated without labels over {}",
                est.k, est.range
            ));
        }
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
