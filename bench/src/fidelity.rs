//! `clot-bench fidelity`: clot against its PyTorch peers over many seeds, each seed in both
//! implementations in one run, scored by the same metric code (clot's; the peers write their
//! full-length predictions): mean and standard error of activity- and video-level MoF, F1 and
//! mIoU per implementation and mode, and the paired difference (clot − peer, per seed) with its
//! standard error; also segments per video and clusters used, where a collapse shows. Both train with one thread and no validation passes (neither changes a
//! result); two jobs run at a time.
//!
//! Default: the five Breakfast coffee videos (breakfast preset, K = 7), seeds 0–19, clot and
//! asot mode. `--layout DIR --activity A --actions K` runs a standard-layout folder instead
//! (e.g. the demo written by `clot synth --out DIR`) with the breakfast preset's settings.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use clot_stages::eval::{Metrics, PredictionStats, activity_level, prediction_stats, video_level};
use serde::Serialize;

struct Args {
    data: PathBuf,
    layout: Option<PathBuf>,
    activity: String,
    actions: usize,
    seeds: u64,
    modes: Vec<String>,
    python: String,
    json: bool,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        data: clot_datasets::shared::folder().join("data"),
        layout: None,
        activity: "coffee".into(),
        actions: 7,
        seeds: 20,
        modes: vec!["clot".into(), "asot".into()],
        python: "python3".into(),
        json: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = PathBuf::from(value()?),
            "--layout" => a.layout = Some(PathBuf::from(value()?)),
            "--activity" => a.activity = value()?.clone(),
            "--actions" => a.actions = value()?.parse()?,
            "--seeds" => a.seeds = value()?.parse()?,
            "--mode" => a.modes = value()?.split(',').map(str::to_string).collect(),
            "--python" => a.python = value()?.clone(),
            "--json" => a.json = true,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// The scores of one run: activity-level then video-level MoF, F1, mIoU, then segments per
/// video and clusters used (of K).
type Six = [f64; 8];

/// A job (mode, seed, clot rather than the peer) and its scores.
type Done = ((String, u64, bool), Result<Six>);

fn six(act: &Metrics, vid: &Metrics, ps: &PredictionStats) -> Six {
    [
        act.mof,
        act.f1,
        act.miou,
        vid.mof,
        vid.f1,
        vid.miou,
        ps.segments_per_video,
        ps.clusters as f64,
    ]
}

const NAMES: [&str; 8] = [
    "activity MoF",
    "activity F1",
    "activity mIoU",
    "video MoF",
    "video F1",
    "video mIoU",
    "segments/video",
    "clusters used",
];

fn ours(clot: &Path, train: &[String], mode: &str, seed: u64, dir: &Path) -> Result<Six> {
    let o = Command::new(clot)
        .args(["-q", "train"])
        .args(train)
        .args([
            "--mode",
            mode,
            "--seed",
            &seed.to_string(),
            "--val-every",
            "0",
        ])
        .args(["--threads", "1", "--json", "--out"])
        .arg(dir)
        .output()
        .with_context(|| format!("running {}", clot.display()))?;
    if !o.status.success() {
        bail!("clot train failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    let m = |level: &str, k: &str| v["scores"][level][k].as_f64().unwrap_or(f64::NAN);
    Ok([
        m("activity", "mof"),
        m("activity", "f1"),
        m("activity", "miou"),
        m("video", "mof"),
        m("video", "f1"),
        m("video", "miou"),
        v["predictions"]["segments_per_video"]
            .as_f64()
            .unwrap_or(f64::NAN),
        v["predictions"]["clusters"].as_f64().unwrap_or(f64::NAN),
    ])
}

fn peer(a: &Args, root: &Path, mode: &str, seed: u64, dir: &Path) -> Result<Six> {
    let preds = dir.join("peer.json");
    let o = Command::new(&a.python)
        .arg(crate::python_script(&format!("{mode}_train_peer.py")))
        .arg(root)
        .args([
            &a.activity,
            &a.actions.to_string(),
            &seed.to_string(),
            "1",
            "0",
        ])
        .arg(&preds)
        .output()
        .with_context(|| format!("running {}", a.python))?;
    if !o.status.success() {
        bail!("{mode} peer failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    let text = std::fs::read(&preds)
        .with_context(|| format!("reading the {mode} peer's predictions {}", preds.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&text)?;
    let list = |k: &str| -> Vec<Vec<i32>> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        x.as_array()
                            .map(|r| r.iter().map(|y| y.as_i64().unwrap_or(-9) as i32).collect())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (p, g) = (list("pred"), list("gt"));
    let pairs: Vec<(&[i32], &[i32])> = p.iter().zip(&g).map(|(p, g)| (&p[..], &g[..])).collect();
    let act = activity_level(&pairs, None, 0)?;
    let (vid, _) = video_level(&pairs, None, 0)?;
    let preds: Vec<&[i32]> = p.iter().map(|v| v.as_slice()).collect();
    Ok(six(&act, &vid, &prediction_stats(&preds)))
}

/// Mean and standard error (sample std / √n).
pub(crate) fn mean_se(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, (var / n).sqrt())
}

#[derive(Serialize)]
struct Row {
    mode: String,
    metric: String,
    clot: (f64, f64),
    peer: (f64, f64),
    paired_diff: (f64, f64),
}

pub fn run(args: &[String]) -> Result<()> {
    let a = parse_args(args)?;
    let clot = crate::clot_binary()?;
    let (mut train, root) = crate::dataset_args(a.layout.as_deref(), &a.data)?;
    train.extend(
        [
            "--preset",
            "breakfast",
            "--activity",
            &a.activity,
            "--actions",
            &a.actions.to_string(),
        ]
        .map(str::to_string),
    );
    let tmp = tempfile::tempdir()?;
    let jobs: Vec<(String, u64, bool)> = a
        .modes
        .iter()
        .flat_map(|m| (0..a.seeds).flat_map(move |s| [(m.clone(), s, true), (m.clone(), s, false)]))
        .collect();
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Done>> = Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for _ in 0..2 {
            sc.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                        *n += 1;
                        *n - 1
                    };
                    let Some(job) = jobs.get(i) else { break };
                    let (mode, seed, is_ours) = job;
                    let dir = tmp.path().join(format!("{mode}-{seed}-{is_ours}"));
                    let r = std::fs::create_dir_all(&dir)
                        .map_err(Into::into)
                        .and_then(|_| {
                            if *is_ours {
                                ours(&clot, &train, mode, *seed, &dir)
                            } else {
                                peer(&a, &root, mode, *seed, &dir)
                            }
                        });
                    let who = if *is_ours { "clot" } else { "the peer" };
                    let r = r.with_context(|| format!("{mode} mode, seed {seed}, {who}"));
                    if !a.json {
                        eprintln!(
                            "{mode} seed {seed} {}: done",
                            if *is_ours { "clot" } else { "peer" }
                        );
                    }
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((job.clone(), r));
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut rows = Vec::new();
    for mode in &a.modes {
        let get = |is_ours: bool| -> Result<Vec<Six>> {
            (0..a.seeds)
                .map(|s| {
                    results
                        .iter()
                        .find(|((m, seed, o), _)| m == mode && *seed == s && *o == is_ours)
                        .map(|(_, r)| r.as_ref().copied().map_err(|e| anyhow::anyhow!("{e:#}")))
                        .unwrap_or_else(|| Err(anyhow::anyhow!("missing result")))
                })
                .collect()
        };
        let (o, p) = (get(true)?, get(false)?);
        for (j, name) in NAMES.iter().enumerate() {
            let col = |v: &[Six]| v.iter().map(|x| x[j]).collect::<Vec<_>>();
            let diff: Vec<f64> = o.iter().zip(&p).map(|(x, y)| x[j] - y[j]).collect();
            rows.push(Row {
                mode: mode.clone(),
                metric: name.to_string(),
                clot: mean_se(&col(&o)),
                peer: mean_se(&col(&p)),
                paired_diff: mean_se(&diff),
            });
        }
        if !a.json {
            println!("per seed, activity MoF ({mode}): clot / peer");
            for (s, (x, y)) in o.iter().zip(&p).enumerate() {
                println!("  seed {s:>2}: {:.4} / {:.4}", x[0], y[0]);
            }
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "\n{} seeds (0–{}), mean ± standard error; paired = clot − peer per seed",
        a.seeds,
        a.seeds.saturating_sub(1)
    );
    println!(
        "{:<6} {:<14} {:>17} {:>17} {:>19}",
        "mode", "metric", "clot", "peer", "paired diff"
    );
    for r in &rows {
        println!(
            "{:<6} {:<14} {:>8.4} ± {:.4} {:>8.4} ± {:.4} {:>+9.4} ± {:.4}",
            r.mode,
            r.metric,
            r.clot.0,
            r.clot.1,
            r.peer.0,
            r.peer.1,
            r.paired_diff.0,
            r.paired_diff.1
        );
    }
    Ok(())
}
