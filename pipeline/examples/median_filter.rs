//! A user stage added to the CLOT graph with one call: a sliding-window median filter over each
//! video's predicted labels (a common post-processing of action segmentations), run in the
//! public `Phase::Write` set after the prediction.
//!
//! ```sh
//! cargo run --release -p clot-pipeline --example median_filter
//! ```
//! It trains the CLOT graph on the built-in demo data with and without the filter and prints both
//! scores.

use bevy_ecs::prelude::*;
use clot_pipeline::config::TrainConfig;
use clot_pipeline::train::{fit_with, score};
use clot_stages::prelude::*;

/// Replaces each frame's label by the most frequent label in a centred window of `window`
/// frames (ties to the smaller label).
#[derive(Debug, Clone, Copy)]
pub struct MedianFilter {
    pub window: usize,
}

/// The filter on one label sequence.
pub fn filter_labels(labels: &[i32], window: usize) -> Vec<i32> {
    let half = window / 2;
    (0..labels.len())
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + half + 1).min(labels.len());
            let mut counts: Vec<(i32, usize)> = Vec::new();
            for &l in &labels[lo..hi] {
                match counts.iter_mut().find(|(x, _)| *x == l) {
                    Some(c) => c.1 += 1,
                    None => counts.push((l, 1)),
                }
            }
            counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            counts[0].0
        })
        .collect()
}

impl Stage for MedianFilter {
    fn info(&self) -> StageInfo {
        StageInfo {
            name: "median-filter",
            phase: Phase::Write,
            reads: &["Prediction"],
            writes: &["Prediction"],
            grad: Grad::Detached,
            about: "majority label in a sliding window over each video's predictions",
        }
    }

    /// It reads only `Prediction`, which stays on the host: a graph with it still runs its
    /// training step resident on the GPU with `--device wgpu`.
    fn resident(&self) -> bool {
        true
    }

    fn build(&self, graph: &mut StageGraph) {
        let window = self.window;
        graph.add_systems(
            Forward,
            Phase::Write,
            move |batch: Res<'_, Batch>,
                  q: Query<'_, '_, &Prediction>,
                  mut commands: Commands<'_, '_>| {
                for &e in &batch.videos {
                    if let Ok(p) = q.get(e) {
                        let labels = filter_labels(p.labels.as_slice(), window);
                        commands.entity(e).insert(Prediction {
                            labels: Labels::from_vec(labels),
                            confidence: p.confidence.clone(),
                        });
                    }
                }
            },
        );
    }
}

#[allow(dead_code)]
fn main() -> anyhow::Result<()> {
    let (ds, _) = clot_datasets::open("demo", &clot_datasets::ReadOptions::default())?;
    let videos: Vec<_> = ds.videos.iter().collect();
    let cfg = TrainConfig::from_preset(clot_datasets::preset("demo")?, 7);
    let bar = indicatif::ProgressBar::hidden();
    for window in [0, 31] {
        let (_, results, _) = fit_with(&cfg, &videos, &bar, |g| {
            if window > 0 {
                g.add_stage(MedianFilter { window });
            }
        })?;
        if let Some(s) = score(&results, cfg.exclude, cfg.f1_seed)? {
            println!(
                "median filter {window:>2}: activity MoF {:.4} F1 {:.4} mIoU {:.4}",
                s.activity.mof, s.activity.f1, s.activity.miou
            );
        }
    }
    Ok(())
}
