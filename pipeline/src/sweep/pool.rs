//! Running trials: `jobs` workers take trials from a crossbeam channel; each worker has its own
//! rayon pool of `threads_per_trial` threads and runs a trial exactly as `clot train` does
//! ([`crate::train::fit`], then [`crate::train::score`]), in its own stage graph (`World`). The
//! videos are shared by reference between trials (their Arrow buffers are immutable), never
//! copied. A trial that fails (an error, a diverging loss, a panic) is recorded with its error and
//! the others go on.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use clot_datasets::Video;
use indicatif::ProgressBar;

use super::plan::Trial;
use super::store::{TrialRow, trial_dir, write_trial};
use crate::output::{
    Provenance, write_curve, write_k_choice, write_predictions, write_video_metrics,
};
use crate::train::{fit, score_with};

/// How to run the trials.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    pub jobs: usize,
    pub threads_per_trial: usize,
    /// Also write per-frame predictions.
    pub predictions: bool,
}

/// Runs one trial on its videos (or records why they could not be read) and writes its files;
/// never panics out (a panic becomes a failed trial).
pub fn run_trial(
    out: &Path,
    sweep: &str,
    trial: &Trial,
    videos: std::result::Result<&[&Video], &anyhow::Error>,
    predictions: bool,
) -> Result<TrialRow> {
    let (videos, load_error): (&[&Video], _) = match videos {
        Ok(v) => (v, None),
        Err(e) => (&[], Some(format!("{e:#}"))),
    };
    let start = Instant::now();
    let dir = trial_dir(out, sweep, &trial.id);
    let prov = Provenance::new(&trial.cfg, &trial.dataset_name, &trial.activity);
    let mut row = TrialRow {
        sweep: sweep.to_string(),
        trial: trial.id.clone(),
        status: "ok".into(),
        error: None,
        dataset: trial.dataset_name.clone(),
        activity: trial.activity.clone(),
        preset: trial.data.preset.clone(),
        videos: videos.len() as u32,
        unscored_videos: videos.iter().filter(|v| v.labels.is_none()).count() as u32,
        frames: videos.iter().map(|v| v.frames() as u64).sum(),
        k_range: trial.k_estimate.as_ref().map(|e| e.range.to_string()),
        mof: None,
        f1: None,
        miou: None,
        video_mof: None,
        video_f1: None,
        video_miou: None,
        clusters: None,
        collapsed: None,
        final_loss: None,
        final_ot_objective: None,
        train_s: 0.0,
        eval_s: 0.0,
        wall_s: 0.0,
        peak_rss_mib: None,
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<()> {
        if let Some(e) = &load_error {
            bail!("{e}");
        }
        let (trained, results, eval_s) = fit(&trial.cfg, videos, &ProgressBar::hidden())?;
        row.train_s = trained.seconds;
        row.eval_s = eval_s;
        row.final_loss = trained.curve.last().map(|c| c.loss);
        if let Some(bad) = trained.curve.iter().find(|c| !c.loss.is_finite()) {
            bail!(
                "the training loss diverged ({} at epoch {}, step {})",
                bad.loss,
                bad.epoch,
                bad.step
            );
        }
        let preds: Vec<&[i32]> = results.iter().map(|r| r.prediction.as_slice()).collect();
        let stats = clot_stages::eval::prediction_stats(&preds);
        row.clusters = Some(stats.clusters as u32);
        row.collapsed = Some(stats.too_few_clusters(trial.cfg.actions));
        let objectives: Vec<f64> = results.iter().filter_map(|r| r.ot_objective).collect();
        row.final_ot_objective = (!objectives.is_empty() && objectives.len() == results.len())
            .then(|| objectives.iter().sum::<f64>() / objectives.len() as f64);
        write_curve(&dir.join("training_curve.parquet"), &prov, &trained.curve)?;
        if let Some(est) = &trial.k_estimate {
            write_k_choice(&dir.join("k_choice.parquet"), &prov, est)?;
        }
        if predictions {
            write_predictions(&dir.join("predictions.parquet"), &prov, &results)?;
        }
        if let Some(s) = score_with(
            &results,
            trial.cfg.exclude,
            trial.cfg.f1_seed,
            trial.cfg.f1_rng,
        )? {
            row.mof = Some(s.activity.mof);
            row.f1 = Some(s.activity.f1);
            row.miou = Some(s.activity.miou);
            row.video_mof = Some(s.video.mof);
            row.video_f1 = Some(s.video.f1);
            row.video_miou = Some(s.video.miou);
            write_video_metrics(&dir.join("video_metrics.parquet"), &prov, &results, &s)?;
        }
        Ok(())
    }));
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(panic) => Some(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)")
        )),
    };
    if let Some(e) = failure {
        row.status = "failed".into();
        row.error = Some(e);
    }
    row.wall_s = start.elapsed().as_secs_f64();
    row.peak_rss_mib = crate::run::peak_rss_mib();
    // written last: a trial is done when this file is in place
    write_trial(&dir.join("trial.parquet"), &prov, &row)?;
    Ok(row)
}

/// Runs `trials` on the pool; `videos_of(trial)` gives a trial's videos (an error fails that
/// trial) and `release(trial)` is called when it has ended. Returns one row per trial in the
/// order given. `bar` counts finished trials.
pub fn run_all(
    out: &Path,
    sweep: &str,
    trials: &[Trial],
    videos_of: &(dyn Fn(&Trial) -> Result<Arc<Vec<Video>>> + Sync),
    release: &(dyn Fn(&Trial) + Sync),
    cfg: PoolConfig,
    bar: &ProgressBar,
) -> Result<Vec<TrialRow>> {
    let (tx, rx) = crossbeam::channel::unbounded::<usize>();
    for i in 0..trials.len() {
        tx.send(i).map_err(|e| anyhow!("queueing trials: {e}"))?;
    }
    drop(tx);
    let rows: Mutex<Vec<Option<TrialRow>>> = Mutex::new(vec![None; trials.len()]);
    let (done, failed, running) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let show = |bar: &ProgressBar| {
        bar.set_message(format!(
            "{} done, {} failed, {} running",
            done.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            running.load(Ordering::Relaxed)
        ));
    };
    let errors: Mutex<Vec<anyhow::Error>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..cfg.jobs.max(1) {
            let rx = rx.clone();
            let (rows, errors) = (&rows, &errors);
            let (done, failed, running, show) = (&done, &failed, &running, &show);
            scope.spawn(move || {
                let pool = match rayon::ThreadPoolBuilder::new()
                    .num_threads(cfg.threads_per_trial.max(1))
                    .build()
                {
                    Ok(p) => p,
                    Err(e) => {
                        if let Ok(mut es) = errors.lock() {
                            es.push(anyhow!("starting a trial's thread pool: {e}"));
                        }
                        return;
                    }
                };
                for i in rx.iter() {
                    let t = &trials[i];
                    running.fetch_add(1, Ordering::Relaxed);
                    show(bar);
                    let videos = videos_of(t);
                    let r = match &videos {
                        Ok(vs) => {
                            let refs: Vec<&Video> = vs.iter().collect();
                            pool.install(|| run_trial(out, sweep, t, Ok(&refs), cfg.predictions))
                        }
                        Err(e) => run_trial(out, sweep, t, Err(e), cfg.predictions),
                    };
                    drop(videos);
                    release(t);
                    running.fetch_sub(1, Ordering::Relaxed);
                    match r {
                        Ok(row) => {
                            if row.status == "ok" {
                                done.fetch_add(1, Ordering::Relaxed);
                            } else {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                            if let Ok(mut rs) = rows.lock() {
                                rs[i] = Some(row);
                            }
                        }
                        // the trial's files could not be written: stop taking trials
                        Err(e) => {
                            if let Ok(mut es) = errors.lock() {
                                es.push(e.context(format!("trial {}", t.id)));
                            }
                            return;
                        }
                    }
                    bar.inc(1);
                    show(bar);
                }
            });
        }
    });
    if let Some(e) = errors
        .into_inner()
        .map_err(|_| anyhow!("a worker panicked"))?
        .pop()
    {
        return Err(e);
    }
    rows.into_inner()
        .map_err(|_| anyhow!("a worker panicked"))?
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| anyhow!("a trial was not run"))
}
