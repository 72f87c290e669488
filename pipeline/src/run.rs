//! `clot run`, `clot train`, `clot eval` and `clot explain`: resolve the configuration, train
//! through the stage graph, evaluate, print, and write the run folder ([`crate::output`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clot_datasets::{DEMO, Dataset, Video};
use clot_stages::choose_k::{self, ChooseK, KEstimate, KRange};
use clot_stages::eval::{PredictionStats, hungarian, prediction_stats};
use serde::Serialize;

use crate::cli::{EvalArgs, ExplainArgs, RunArgs};
use crate::commands::{Resolved, baselines, load_with_dim};
use crate::config::{Actions, Overrides, TrainConfig};
use crate::graphs;
use crate::output::{
    Provenance, Summary, read_checkpoint, write_checkpoint, write_curve, write_k_choice,
    write_predictions, write_summary, write_text, write_video_metrics,
};
use crate::plot::{Line, LinesPlot, SegmentsPlot, curve, lines, segments};
use crate::train::{Scores, StageTime, VideoResult, fit, score_with};

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

/// The layers of a run's settings below the flags: the TOML file's overrides, read once.
pub fn file_overrides(file: Option<&Path>) -> Result<Overrides> {
    file.map(Overrides::from_file)
        .transpose()
        .map(Option::unwrap_or_default)
}

/// The feature dimension an explicit `mlp` (flag, else file) fixes, for the reader to check.
pub fn explicit_dim(file: &Overrides, flags: &Overrides) -> Option<(usize, String)> {
    let (mlp, from) = match (&flags.mlp, &file.mlp) {
        (Some(m), _) => (m, "--mlp"),
        (None, Some(m)) => (m, "mlp in the config file"),
        (None, None) => return None,
    };
    mlp.first().map(|&d| (d, format!("{from} {mlp:?}")))
}

/// A resolved configuration and what the user should be told about how it was resolved.
#[derive(Debug)]
pub struct ResolvedConfig {
    pub cfg: TrainConfig,
    /// How K was estimated, with `--actions auto`.
    pub k_estimate: Option<KEstimate>,
    /// Lines such as where K came from.
    pub notes: Vec<String>,
}

/// What resolving a configuration needs to know of an activity's labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelFacts {
    /// Videos with ground truth.
    pub labelled: usize,
    /// The distinct ground-truth ids present, in id order.
    pub ids: Vec<i32>,
}

impl LabelFacts {
    /// The facts of `videos`.
    pub fn of<'a>(videos: impl IntoIterator<Item = &'a Video>) -> Self {
        let videos: Vec<&Video> = videos.into_iter().collect();
        LabelFacts {
            labelled: videos.iter().filter(|v| v.labels.is_some()).count(),
            ids: crate::commands::classes_present(videos.iter().copied(), None),
        }
    }
}

/// Resolves preset (or, without one, the defaults of [`clot_datasets::GENERIC`] with the MLP
/// D-128-40) → file → flags into one configuration for `activity`. K comes from `actions` (flag or
/// file), else the preset's K for the activity, else the number of ground-truth classes present
/// (said in a note: that reads labels), else it is an error asking for `--actions`.
pub fn resolve_config(
    r: &Resolved,
    ds: &Dataset,
    activity: &str,
    file: &Overrides,
    flags: &Overrides,
) -> Result<ResolvedConfig> {
    let labels = LabelFacts::of(ds.videos.iter().filter(|v| v.activity == activity));
    let estimate = match flags.actions.or(file.actions) {
        Some(Actions::Auto(range)) => {
            Some(estimate_actions(ds, activity, range).with_context(|| {
                format!("choosing K for `{activity}` of {} (--actions auto)", r.spec)
            })?)
        }
        _ => None,
    };
    resolve_with_estimate(r, ds.dim, &labels, activity, file, flags, estimate.as_ref())
}

/// K̂ of `activity` from its videos' features alone ([`clot_stages::choose_k`]); labels are never
/// passed in.
pub fn estimate_actions(ds: &Dataset, activity: &str, range: Option<KRange>) -> Result<KEstimate> {
    let videos: Vec<&Video> = ds
        .videos
        .iter()
        .filter(|v| v.activity == activity)
        .collect();
    let mut lens: Vec<usize> = videos.iter().map(|v| v.frames()).collect();
    lens.sort_unstable();
    // the default range also stops at the shortest video, which a larger K could not train on
    let range = range.unwrap_or_else(|| {
        let r = KRange::default_for(lens.get(lens.len() / 2).copied().unwrap_or(0));
        KRange {
            max: r.max.min(lens.first().copied().unwrap_or(0)).max(r.min),
            ..r
        }
    });
    let features: Vec<&[f32]> = videos.iter().map(|v| v.features.as_slice()).collect();
    Ok(choose_k::estimate(
        &features,
        ds.dim,
        range,
        &ChooseK::default(),
    )?)
}

/// [`resolve_config_from`], with `auto` replaced by the estimate's K when there is one (and the
/// estimate kept in the result).
pub(crate) fn resolve_with_estimate(
    r: &Resolved,
    dim: usize,
    labels: &LabelFacts,
    activity: &str,
    file: &Overrides,
    flags: &Overrides,
    est: Option<&KEstimate>,
) -> Result<ResolvedConfig> {
    let Some(est) = est else {
        return resolve_config_from(r, dim, labels, activity, file, flags);
    };
    let fixed = |o: &Overrides| Overrides {
        actions: match o.actions {
            Some(Actions::Auto(_)) => Some(Actions::Fixed(est.k)),
            other => other,
        },
        ..o.clone()
    };
    let mut resolved = resolve_config_from(r, dim, labels, activity, &fixed(file), &fixed(flags))?;
    resolved.notes.insert(
        0,
        format!(
            "K = {} estimated from the features alone ({}; {} segments of {} frames, {:.1} s). The \
             labels were not read.",
            est.k, est.method, est.points, est.frames, est.seconds
        ),
    );
    resolved.k_estimate = Some(est.clone());
    Ok(resolved)
}

/// [`resolve_config`] from the feature dimension and the activity's label facts alone (what a
/// sweep knows of a Parquet dataset before it reads any features).
pub fn resolve_config_from(
    r: &Resolved,
    dim: usize,
    labels: &LabelFacts,
    activity: &str,
    file: &Overrides,
    flags: &Overrides,
) -> Result<ResolvedConfig> {
    let preset = r.preset.or_else(|| {
        (r.spec == DEMO)
            .then(|| clot_datasets::preset(DEMO).ok())
            .flatten()
    });
    let base = preset.unwrap_or(&clot_datasets::GENERIC);
    let exclude = flags.exclude.or(file.exclude).or(base.exclude);
    let mut notes = Vec::new();
    let k = match flags.actions.or(file.actions) {
        Some(Actions::Fixed(k)) => k,
        Some(auto @ Actions::Auto(_)) => bail!(
            "--actions {auto} needs the videos' features, which this step has not read: in a \
             sweep, estimate K once with `clot train --actions {auto}` and put the K it prints in \
             the grid"
        ),
        None => match preset.and_then(|p| p.actions_for(activity).ok()) {
            Some(k) => k,
            None => {
                if labels.labelled == 0 {
                    bail!(
                        "{} has no ground truth to take K from: pass --actions K (the number of \
                         actions to find)",
                        r.spec
                    );
                }
                let k = labels.ids.iter().filter(|&&g| Some(g) != exclude).count();
                notes.push(format!(
                    "K = {k}: the number of ground-truth classes present in `{activity}` \
                     ({} labelled videos). This reads the labels; pass --actions to choose K \
                     without them.",
                    labels.labelled
                ));
                k
            }
        },
    };
    let mut cfg = TrainConfig::from_preset(base, k);
    if preset.is_none() {
        cfg.mlp = crate::config::generic_mlp(dim);
    }
    file.apply(&mut cfg);
    flags.apply(&mut cfg);
    cfg.validate(dim)?;
    Ok(ResolvedConfig {
        cfg,
        notes,
        k_estimate: None,
    })
}

#[derive(Debug, Serialize)]
struct RunReport<'a> {
    dataset: &'a str,
    activity: &'a str,
    /// Where the kernels ran (`cpu`, `wgpu`) and the adapter.
    device: &'a str,
    adapter: &'a str,
    videos: usize,
    frames: usize,
    config: &'a TrainConfig,
    train_s: f64,
    eval_s: f64,
    scores: Option<&'a Scores>,
    baseline_equal_split_mof: Option<f64>,
    baseline_kmeans_mof: Option<f64>,
    final_loss: Option<f64>,
    /// Segments and clusters of the predictions (collapse shows here).
    predictions: PredictionStats,
    /// Set when the predictions look collapsed ([`collapse_warning`]).
    collapse_warning: Option<String>,
    /// Set when the training loss diverged ([`divergence_warning`]).
    divergence_warning: Option<String>,
    profile: &'a [StageTime],
    /// Peak resident memory of this process so far (Linux `VmHWM`), MiB.
    peak_rss_mib: Option<f64>,
    /// Videos predicted but not scored (no ground truth).
    unscored_videos: usize,
    /// Videos left out by --skip-bad-videos: (video, why).
    skipped_videos: &'a [(String, String)],
    /// How settings were resolved (e.g. where K came from).
    notes: &'a [String],
    /// With `--actions auto`: K̂, the range, the method and the score of every K tried.
    k_choice: Option<&'a KEstimate>,
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
    let file = file_overrides(a.config.as_deref())?;
    let (mut ds, report, r) = load_with_dim(&a.dataset, quiet, explicit_dim(&file, &a.overrides))?;
    let activity = match a.dataset.activity.as_slice() {
        [one] => one.clone(),
        [] => pick_activity(&ds)?,
        many => bail!("train one activity at a time, got {}", many.join(", ")),
    };
    ds.retain_activities(std::slice::from_ref(&activity));
    if ds.videos.is_empty() {
        bail!("no videos of activity `{activity}` in {}", r.spec);
    }
    let ResolvedConfig {
        cfg,
        notes,
        k_estimate,
    } = resolve_config(&r, &ds, &activity, &file, &a.overrides)?;
    let videos: Vec<&Video> = ds.videos.iter().collect();
    if !quiet {
        for n in &notes {
            eprintln!("note: {n}");
        }
        let diff = cfg.differences_from_defaults();
        if !diff.is_empty() {
            eprintln!(
                "settings that differ from the defaults: {}",
                diff.join(", ")
            );
        }
    }
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "{}-{}-{}-seed{}",
            ds.name, activity, cfg.mode, cfg.seed
        ))
    });
    let batches = videos.len().div_ceil(cfg.batch_videos) * cfg.epochs;
    let progress = crate::progress::bar(
        quiet,
        batches as u64,
        "{bar:30} {pos}/{len} batches {msg} [{elapsed}<{eta}]",
    );
    let start = Instant::now();
    let (trained, results, eval_s) = match &a.record_draws {
        None => fit(&cfg, &videos, &progress)?,
        Some(path) => {
            let (t, r, e, log) = crate::train::fit_recording(&cfg, &videos, &progress)?;
            let names: Vec<&str> = videos.iter().map(|v| v.name.as_str()).collect();
            crate::output::write_draws(path, &log, &cfg, &names)?;
            (t, r, e)
        }
    };
    progress.finish_and_clear();
    let wall = start.elapsed().as_secs_f64();
    let scores = score_with(&results, cfg.exclude, cfg.f1_seed, cfg.f1_rng)?;
    let unscored = results.iter().filter(|r| r.ground_truth.is_none()).count();
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
        &RunOutput {
            prov: &prov,
            mapping: &ds.mapping,
            results: &results,
            scores: scores.as_ref(),
            trained: Some(&trained),
            wall,
            plot_videos: a.plot_videos,
            skipped_videos: report.skipped.len(),
            k_estimate: k_estimate.as_ref(),
        },
    )?;
    let frames: usize = videos.iter().map(|v| v.frames()).sum();
    let ps = prediction_stats(
        &results
            .iter()
            .map(|r| r.prediction.as_slice())
            .collect::<Vec<_>>(),
    );
    if a.json {
        let report = RunReport {
            dataset: &ds.name,
            activity: &activity,
            device: &prov.device.0,
            adapter: &prov.device.1,
            videos: videos.len(),
            frames,
            config: &cfg,
            train_s: trained.seconds,
            eval_s,
            scores: scores.as_ref(),
            baseline_equal_split_mof: base.as_ref().map(|b| b.equal_split_mof),
            baseline_kmeans_mof: base.as_ref().map(|b| b.kmeans_mof),
            final_loss: trained.curve.last().map(|c| c.loss),
            predictions: ps,
            collapse_warning: collapse_warning(&ps, cfg.actions),
            divergence_warning: divergence_warning(&trained.curve),
            profile: &trained.profile,
            peak_rss_mib: peak_rss_mib(),
            unscored_videos: unscored,
            skipped_videos: &report.skipped,
            notes: &notes,
            k_choice: k_estimate.as_ref(),
            out: out.display().to_string(),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} / {}: {} videos, {} frames, K = {}{}, mode {}, seed {}{}",
        ds.name,
        activity,
        videos.len(),
        frames,
        cfg.actions,
        match &k_estimate {
            Some(e) => format!(
                " (estimated without labels over {}, {:.1} s)",
                e.range, e.seconds
            ),
            None => String::new(),
        },
        cfg.mode,
        cfg.seed,
        match prov.device.0.as_str() {
            "cpu" => String::new(),
            _ if crate::graphs::build(&cfg.mode, &cfg.without)
                .is_ok_and(|g| g.resident_on_gpu()) =>
            {
                format!(", every stage of the training step on {}", prov.device.1)
            }
            _ => format!(", OT solves on {}", prov.device.1),
        }
    );
    println!(
        "trained {} epochs ({} steps) in {:.2} s, final loss {:.4}; evaluated in {:.2} s",
        cfg.epochs,
        trained.curve.len(),
        trained.seconds,
        trained.curve.last().map_or(f64::NAN, |c| c.loss),
        eval_s
    );
    print_scores(scores.as_ref(), unscored, results.len());
    if let Some(b) = base {
        println!(
            "baselines (activity MoF): equal split {:.3}, k-means on raw features {:.3}",
            b.equal_split_mof, b.kmeans_mof
        );
    }
    println!(
        "predictions: {:.1} segments and {:.1} clusters per video, {} of K = {} clusters used, \
         the largest holds {:.0} % of the frames",
        ps.segments_per_video,
        ps.clusters_per_video,
        ps.clusters,
        cfg.actions,
        100.0 * ps.largest_cluster_share
    );
    for w in [
        collapse_warning(&ps, cfg.actions),
        divergence_warning(&trained.curve),
    ]
    .into_iter()
    .flatten()
    {
        eprintln!("warning: {w}");
    }
    if a.profile {
        print_profile(&trained.profile, trained.seconds + eval_s);
    }
    println!("wrote {}", out.display());
    Ok(())
}

/// A warning when the predictions look collapsed (a known failure of OT-based methods): fewer
/// than half of the K clusters used, or one cluster holding more than half of the frames (with
/// K > 2).
pub fn collapse_warning(ps: &PredictionStats, k: usize) -> Option<String> {
    if ps.too_few_clusters(k) {
        Some(format!(
            "the predictions use {} of K = {k} clusters: the run has collapsed (try another \
             seed, a smaller λ_a, or a smaller K)",
            ps.clusters
        ))
    } else if k > 2 && ps.largest_cluster_share > 0.5 {
        Some(format!(
            "one cluster holds {:.0} % of the frames: the run may have collapsed",
            100.0 * ps.largest_cluster_share
        ))
    } else {
        None
    }
}

/// A warning when the training loss diverged: a step's loss is not finite, or the last epoch's
/// mean loss is above the first epoch's (the pseudo-label losses fall as training runs).
pub fn divergence_warning(curve: &[crate::train::CurvePoint]) -> Option<String> {
    if let Some(p) = curve.iter().find(|p| !p.loss.is_finite()) {
        return Some(format!(
            "the loss is {} at epoch {}, batch {}: training diverged (try a smaller --lr)",
            p.loss,
            p.epoch + 1,
            p.batch + 1
        ));
    }
    let (first, last) = (curve.first()?.epoch, curve.last()?.epoch);
    if first == last {
        return None;
    }
    let mean = |e: usize| {
        let v: Vec<f64> = curve
            .iter()
            .filter(|p| p.epoch == e)
            .map(|p| p.loss)
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let (a, b) = (mean(first), mean(last));
    (b > a).then(|| {
        format!(
            "the mean loss rose from {a:.4} in the first epoch to {b:.4} in the last: training \
             diverged (try a smaller --lr)"
        )
    })
}

fn print_scores(scores: Option<&Scores>, unscored: usize, videos: usize) {
    match scores {
        Some(s) => {
            println!("\n{:<10} {:>7} {:>7} {:>7}", "level", "MoF", "F1", "mIoU");
            for (name, m) in [("activity", &s.activity), ("video", &s.video)] {
                println!("{:<10} {:>7.4} {:>7.4} {:>7.4}", name, m.mof, m.f1, m.miou);
            }
            if unscored > 0 {
                println!(
                    "(scored over the {} of {videos} videos with ground truth; {unscored} \
                     without it are predicted, not scored)",
                    videos - unscored
                );
            }
            println!();
        }
        None => println!("no ground truth: predictions written, no metrics"),
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

/// What a run folder is written from.
struct RunOutput<'a> {
    prov: &'a Provenance,
    mapping: &'a clot_datasets::Mapping,
    results: &'a [VideoResult],
    scores: Option<&'a Scores>,
    trained: Option<&'a crate::train::Trained>,
    wall: f64,
    plot_videos: usize,
    skipped_videos: usize,
    k_estimate: Option<&'a KEstimate>,
}

/// Writes the run folder: predictions, configuration, curve and checkpoint (after training),
/// metrics and summary (with ground truth), and the pictures.
fn write_run(out: &Path, o: &RunOutput<'_>) -> Result<()> {
    let prov = o.prov;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_predictions(&out.join("predictions.parquet"), prov, o.results)?;
    write_text(&out.join("config.toml"), &toml::to_string(&prov.config)?)?;
    let c = &prov.config;
    let title = format!(
        "{} / {} · mode {}{} · seed {}",
        prov.dataset,
        prov.activity,
        c.mode,
        if c.without.is_empty() {
            String::new()
        } else {
            format!(" without {}", c.without.join(", "))
        },
        c.seed
    );
    if let Some(t) = o.trained {
        write_curve(&out.join("training_curve.parquet"), prov, &t.curve)?;
        write_checkpoint(&out.join("checkpoint.safetensors"), &t.params, c)?;
        curve(&out.join("curve.png"), &title, &t.curve)?;
    }
    if let Some(est) = o.k_estimate {
        write_k_choice(&out.join("k_choice.parquet"), prov, est)?;
        k_curve_plot(
            &out.join("k_choice.png"),
            &title,
            "",
            &[KCurve::of(est, "ln W".into())],
        )?;
    }
    let run = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let class_name = |id: i32| o.mapping.name(id).map(str::to_string);
    let matching = match o.scores {
        Some(s) => {
            write_video_metrics(&out.join("video_metrics.parquet"), prov, o.results, s)?;
            write_summary(
                &out.join("summary.parquet"),
                prov,
                &Summary {
                    run: &run,
                    videos: o.results.len(),
                    skipped_videos: o.skipped_videos,
                    scores: s,
                    wall_s: o.wall,
                    k_estimate: o.k_estimate,
                },
            )?;
            let (pred, gt): (Vec<i32>, Vec<i32>) = o
                .results
                .iter()
                .filter_map(|r| r.ground_truth.as_ref().map(|g| (&r.prediction, g)))
                .flat_map(|(p, g)| p.iter().copied().zip(g.iter().copied()))
                .unzip();
            Some(hungarian(&pred, &gt, c.exclude, "activity")?)
        }
        None => None,
    };
    let matched = matching.as_ref().map(|m| move |p: i32| m.gt_of(p));
    segments(
        &out.join("segments.png"),
        &SegmentsPlot {
            title,
            subtitle: o.scores.map(|s| {
                format!(
                    "activity MoF {:.3} · F1 {:.3} · mIoU {:.3} (Hungarian matching over all videos)",
                    s.activity.mof, s.activity.f1, s.activity.miou
                )
            }),
            results: o.results,
            class_name: &class_name,
            matched: matched.as_ref().map(|f| f as &dyn Fn(i32) -> Option<i32>),
            max_videos: o.plot_videos,
        },
    )?;
    Ok(())
}

/// One score curve of `--actions auto` for [`k_curve_plot`]: ln W per K (the curve the knee is
/// read from) and the K chosen.
pub(crate) struct KCurve {
    pub label: String,
    pub chosen: usize,
    pub method: String,
    /// (K, ln W)
    pub points: Vec<(f64, f64)>,
}

impl KCurve {
    pub(crate) fn of(est: &KEstimate, label: String) -> Self {
        KCurve {
            label,
            chosen: est.k,
            method: est.method.clone(),
            points: est.curve.iter().map(|s| (s.k as f64, s.log_w)).collect(),
        }
    }
}

/// ln W of the segment means against K, each curve's K̂ (its knee) marked by a vertical line, to
/// `png_path` (and SVG beside it).
pub(crate) fn k_curve_plot(
    png_path: &Path,
    title: &str,
    place: &str,
    curves: &[KCurve],
) -> Result<()> {
    let (lo, hi) = curves
        .iter()
        .flat_map(|c| &c.points)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, g)| {
            (lo.min(g), hi.max(g))
        });
    // "knee of … over K = 2-10 (fit; frames …)": the words before the parenthesis in the
    // subtitle, the details as the legend's title (a long subtitle is cut off)
    let (method, detail) = curves
        .first()
        .map_or(("", ""), |c| match c.method.split_once(" (") {
            Some((m, d)) => (m, d.strip_suffix(')').unwrap_or(d)),
            None => (c.method.as_str(), ""),
        });
    let chosen = match curves {
        [one] => format!("chosen K = {} · {method}", one.chosen),
        _ => format!("one curve per K range · {method}"),
    };
    let mut lines_ = Vec::new();
    for c in curves {
        lines_.push(Line {
            label: c.label.clone(),
            points: c.points.clone(),
        });
        lines_.push(Line {
            label: format!("chosen K = {}", c.chosen),
            points: vec![(c.chosen as f64, lo), (c.chosen as f64, hi)],
        });
    }
    lines(
        png_path,
        &LinesPlot {
            title: format!("{title} · choosing K without labels"),
            subtitle: Some(if place.is_empty() {
                chosen
            } else {
                format!("{place} · {chosen}")
            }),
            x_label: "K (actions)".into(),
            y_label: "ln W (within-cluster sum of squares of the segment means)".into(),
            legend_title: if detail.is_empty() {
                "curve".into()
            } else {
                detail.to_string()
            },
            lines: lines_,
        },
    )
}

/// `clot eval`.
pub fn eval(a: &EvalArgs, quiet: bool) -> Result<()> {
    let quiet = quiet || a.json;
    let (params, mut cfg) = read_checkpoint(&a.checkpoint)?;
    if let Some(d) = a.device {
        cfg.device = d;
    }
    let dim = cfg
        .mlp
        .first()
        .map(|&d| (d, format!("checkpoint {}", a.checkpoint.display())));
    let (mut ds, report, _) = load_with_dim(&a.dataset, quiet, dim)?;
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
    let scores = score_with(&results, cfg.exclude, cfg.f1_seed, cfg.f1_rng)?;
    if let Some(out) = &a.out {
        let prov = Provenance::new(&cfg, &ds.name, &activity);
        write_run(
            out,
            &RunOutput {
                prov: &prov,
                mapping: &ds.mapping,
                results: &results,
                scores: scores.as_ref(),
                trained: None,
                wall,
                plot_videos: a.plot_videos,
                skipped_videos: report.skipped.len(),
                k_estimate: None,
            },
        )?;
    }
    let unscored = results.iter().filter(|r| r.ground_truth.is_none()).count();
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
        print_scores(scores.as_ref(), unscored, results.len());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::CurvePoint;

    fn curve(losses: &[(usize, f64)]) -> Vec<CurvePoint> {
        losses
            .iter()
            .enumerate()
            .map(|(i, &(epoch, loss))| CurvePoint {
                epoch,
                batch: i,
                step: i as u64 + 1,
                loss,
                loss_frames: loss,
                loss_segments: None,
                loss_refined: None,
                val_mof: None,
            })
            .collect()
    }

    #[test]
    fn divergence_is_a_rising_or_non_finite_loss() {
        assert_eq!(
            divergence_warning(&curve(&[(0, 2.0), (0, 1.8), (1, 1.2)])),
            None
        );
        let up = divergence_warning(&curve(&[(0, 1.0), (1, 1.5), (1, 1.7)])).unwrap();
        assert!(up.contains("1.0000") && up.contains("1.6000"), "{up}");
        let nan = divergence_warning(&curve(&[(0, 1.0), (0, f64::NAN)])).unwrap();
        assert!(nan.contains("NaN") && nan.contains("batch 2"), "{nan}");
        assert_eq!(divergence_warning(&curve(&[(0, 3.0)])), None);
        assert_eq!(divergence_warning(&[]), None);
    }

    #[test]
    fn collapse_is_few_clusters_or_one_big_one() {
        let ps = |clusters, largest| PredictionStats {
            segments_per_video: 5.0,
            clusters_per_video: 4.0,
            clusters,
            largest_cluster_share: largest,
        };
        assert_eq!(collapse_warning(&ps(6, 0.3), 7), None);
        assert!(
            collapse_warning(&ps(3, 0.3), 7)
                .unwrap()
                .contains("3 of K = 7")
        );
        assert!(collapse_warning(&ps(6, 0.8), 7).unwrap().contains("80 %"));
        assert_eq!(collapse_warning(&ps(1, 1.0), 2), None);
    }
}
