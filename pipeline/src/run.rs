//! `clot run`, `clot train`, `clot eval` and `clot explain`: resolve the configuration, train
//! through the stage graph, evaluate, print, and write the run folder ([`crate::output`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clot_datasets::{DEMO, Dataset, Video};
use clot_stages::eval::hungarian;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::cli::{EvalArgs, ExplainArgs, RunArgs};
use crate::commands::{Resolved, baselines, load};
use crate::config::{Overrides, TrainConfig};
use crate::graphs;
use crate::output::{
    Provenance, read_checkpoint, write_checkpoint, write_curve, write_predictions, write_summary,
    write_text, write_video_metrics,
};
use crate::plot::segments_png;
use crate::train::{Scores, StageTime, VideoResult, fit, score};

/// The one activity a run trains on: the flag's, or the dataset's only one.
fn pick_activity(ds: &Dataset) -> Result<String> {
    let s = ds.summary();
    match s.activities.len() {
        0 => bail!("dataset {} has no videos", ds.name),
        1 => Ok(s.activities.keys().next().cloned().unwrap_or_default()),
        _ => bail!(
            "dataset {} has several activities ({}); choose one with --activity",
            ds.name,
            s.activities.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Resolves preset → file → flags into one configuration for `activity`.
pub fn resolve_config(
    r: &Resolved,
    ds: &Dataset,
    activity: &str,
    file: Option<&Path>,
    flags: &Overrides,
) -> Result<TrainConfig> {
    let preset = match r.preset {
        Some(p) => p,
        None if r.spec == DEMO => clot_datasets::preset(DEMO)?,
        None => bail!(
            "give a --preset for {} (one of: breakfast, yti, 50salads-eval, 50salads-mid, desktop-assembly, demo)",
            r.spec
        ),
    };
    let k = match preset.actions_for(activity) {
        Ok(k) => k,
        Err(_) => {
            let mut ids: Vec<i32> = ds
                .videos
                .iter()
                .filter_map(|v| v.labels.as_ref())
                .flat_map(|l| l.as_slice().iter().copied())
                .filter(|&g| Some(g) != preset.exclude)
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        }
    };
    let mut cfg = TrainConfig::from_preset(preset, k);
    if let Some(f) = file {
        Overrides::from_file(f)?.apply(&mut cfg);
    }
    flags.apply(&mut cfg);
    cfg.validate(ds.dim)?;
    Ok(cfg)
}

fn bar(quiet: bool, len: u64) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {pos}/{len} batches {msg} [{elapsed}<{eta}]")
    {
        b.set_style(style);
    }
    b
}

#[derive(Debug, Serialize)]
struct RunReport<'a> {
    dataset: &'a str,
    activity: &'a str,
    videos: usize,
    frames: usize,
    config: &'a TrainConfig,
    train_s: f64,
    eval_s: f64,
    scores: Option<&'a Scores>,
    baseline_equal_split_mof: Option<f64>,
    baseline_kmeans_mof: Option<f64>,
    final_loss: Option<f64>,
    profile: &'a [StageTime],
    /// Peak resident memory of this process so far (Linux `VmHWM`), MiB.
    peak_rss_mib: Option<f64>,
    out: String,
}

/// Peak resident set size of this process in MiB (Linux; `None` elsewhere).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// `clot run` / `clot train`.
pub fn run(a: &RunArgs, quiet: bool) -> Result<()> {
    let quiet = quiet || a.json;
    let (mut ds, _, r) = load(&a.dataset, quiet)?;
    let activity = match a.dataset.activity.as_slice() {
        [one] => one.clone(),
        [] => pick_activity(&ds)?,
        many => bail!("train one activity at a time, got {}", many.join(", ")),
    };
    ds.retain_activities(std::slice::from_ref(&activity));
    if ds.videos.is_empty() {
        bail!("no videos of activity `{activity}` in {}", r.spec);
    }
    let cfg = resolve_config(&r, &ds, &activity, a.config.as_deref(), &a.overrides)?;
    let videos: Vec<&Video> = ds.videos.iter().collect();
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "{}-{}-{}-seed{}",
            ds.name, activity, cfg.mode, cfg.seed
        ))
    });
    let batches = videos.len().div_ceil(cfg.batch_videos) * cfg.epochs;
    let progress = bar(quiet, batches as u64);
    let start = Instant::now();
    let (trained, results, eval_s) = fit(&cfg, &videos, &progress)?;
    progress.finish_and_clear();
    let wall = start.elapsed().as_secs_f64();
    let scores = score(&results, cfg.exclude, cfg.f1_seed)?;
    let base = if scores.is_some() {
        let one = Resolved {
            preset: r
                .preset
                .or(clot_datasets::preset(DEMO).ok().filter(|_| r.spec == DEMO)),
            ..r.clone()
        };
        baselines(&ds, &one, Some(cfg.actions), cfg.seed)?
            .into_iter()
            .next()
    } else {
        None
    };
    let prov = Provenance::new(&cfg, &ds.name, &activity);
    write_run(
        &out,
        &prov,
        &results,
        scores.as_ref(),
        Some(&trained),
        wall,
        a.plot_videos,
    )?;
    let frames: usize = videos.iter().map(|v| v.frames()).sum();
    if a.json {
        let report = RunReport {
            dataset: &ds.name,
            activity: &activity,
            videos: videos.len(),
            frames,
            config: &cfg,
            train_s: trained.seconds,
            eval_s,
            scores: scores.as_ref(),
            baseline_equal_split_mof: base.as_ref().map(|b| b.equal_split_mof),
            baseline_kmeans_mof: base.as_ref().map(|b| b.kmeans_mof),
            final_loss: trained.curve.last().map(|c| c.loss),
            profile: &trained.profile,
            peak_rss_mib: peak_rss_mib(),
            out: out.display().to_string(),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} / {}: {} videos, {} frames, K = {}, mode {}, seed {}",
        ds.name,
        activity,
        videos.len(),
        frames,
        cfg.actions,
        cfg.mode,
        cfg.seed
    );
    println!(
        "trained {} epochs ({} steps) in {:.2} s, final loss {:.4}; evaluated in {:.2} s",
        cfg.epochs,
        trained.curve.len(),
        trained.seconds,
        trained.curve.last().map_or(f64::NAN, |c| c.loss),
        eval_s
    );
    print_scores(scores.as_ref());
    if let Some(b) = base {
        println!(
            "baselines (activity MoF): equal split {:.3}, k-means on raw features {:.3}",
            b.equal_split_mof, b.kmeans_mof
        );
    }
    if a.profile {
        print_profile(&trained.profile, trained.seconds + eval_s);
    }
    println!("wrote {}", out.display());
    Ok(())
}

fn print_scores(scores: Option<&Scores>) {
    match scores {
        Some(s) => {
            println!("\n{:<10} {:>7} {:>7} {:>7}", "level", "MoF", "F1", "mIoU");
            for (name, m) in [("activity", &s.activity), ("video", &s.video)] {
                println!("{:<10} {:>7.4} {:>7.4} {:>7.4}", name, m.mof, m.f1, m.miou);
            }
            println!();
        }
        None => println!("(no ground truth: predictions written, not scored)"),
    }
}

fn print_profile(profile: &[StageTime], total: f64) {
    println!(
        "{:<18} {:>9} {:>7} {:>7}",
        "stage", "seconds", "calls", "share"
    );
    for p in profile {
        println!(
            "{:<18} {:>9.4} {:>7} {:>6.1}%",
            p.stage,
            p.seconds,
            p.calls,
            100.0 * p.seconds / total.max(1e-12)
        );
    }
}

/// Writes the run folder.
fn write_run(
    out: &Path,
    prov: &Provenance,
    results: &[VideoResult],
    scores: Option<&Scores>,
    trained: Option<&crate::train::Trained>,
    wall: f64,
    plot_videos: usize,
) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_predictions(&out.join("predictions.parquet"), prov, results)?;
    write_text(&out.join("config.toml"), &toml::to_string(&prov.config)?)?;
    if let Some(t) = trained {
        write_curve(&out.join("training_curve.parquet"), prov, &t.curve)?;
        write_checkpoint(&out.join("checkpoint.safetensors"), &t.params, &prov.config)?;
    }
    if let Some(s) = scores {
        write_video_metrics(&out.join("video_metrics.parquet"), prov, results, s)?;
        let run = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        write_summary(
            &out.join("summary.parquet"),
            prov,
            &run,
            results.len(),
            s,
            wall,
        )?;
        let pred: Vec<i32> = results
            .iter()
            .flat_map(|r| r.prediction.iter().copied())
            .collect();
        let gt: Vec<i32> = results
            .iter()
            .flat_map(|r| r.ground_truth.iter().flatten().copied())
            .collect();
        let m = hungarian(&pred, &gt, prov.config.exclude, "activity")?;
        segments_png(
            &out.join("segments.png"),
            results,
            &|p| m.gt_of(p),
            plot_videos,
        )?;
    }
    Ok(())
}

/// `clot eval`.
pub fn eval(a: &EvalArgs, quiet: bool) -> Result<()> {
    let quiet = quiet || a.json;
    let (params, cfg) = read_checkpoint(&a.checkpoint)?;
    let (mut ds, _, _) = load(&a.dataset, quiet)?;
    let activity = match a.dataset.activity.as_slice() {
        [one] => one.clone(),
        [] => pick_activity(&ds)?,
        many => bail!("evaluate one activity at a time, got {}", many.join(", ")),
    };
    ds.retain_activities(std::slice::from_ref(&activity));
    let videos: Vec<&Video> = ds.videos.iter().collect();
    if videos.is_empty() {
        bail!("no videos of activity `{activity}`");
    }
    if ds.dim != cfg.mlp[0] {
        bail!(
            "checkpoint {} expects D = {}, dataset {} has D = {}",
            a.checkpoint.display(),
            cfg.mlp[0],
            ds.name,
            ds.dim
        );
    }
    let t = Instant::now();
    let results = crate::train::evaluate(&cfg, params, &videos)?;
    let wall = t.elapsed().as_secs_f64();
    let scores = score(&results, cfg.exclude, cfg.f1_seed)?;
    if let Some(out) = &a.out {
        let prov = Provenance::new(&cfg, &ds.name, &activity);
        write_run(out, &prov, &results, scores.as_ref(), None, wall, 6)?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&scores)?);
    } else {
        println!(
            "{} / {}: {} videos, evaluated in {:.2} s",
            ds.name,
            activity,
            videos.len(),
            wall
        );
        print_scores(scores.as_ref());
    }
    Ok(())
}

/// `clot explain`.
pub fn explain(a: &ExplainArgs) -> Result<()> {
    let g = graphs::build(&a.mode, &a.without)?;
    let without = if a.without.is_empty() {
        String::new()
    } else {
        format!(" without {}", a.without.join(", "))
    };
    println!(
        "mode {}{without}: forward phases in order; backward runs them mirrored\n",
        a.mode
    );
    print!("{}", g.explain());
    Ok(())
}
