//! The load stage (Phase::Load, detached): samples each batch video's frames (train strata,
//! validation linspace or every frame; SPEC §1), standardises them per video when the preset
//! says so, pads the batch to one length with a mask, and puts an [`Input`] on each video entity.
//! Sampling draws from the run's RNG in batch order, so a seed fixes every batch. Cost O(S·D) per
//! video.

use bevy_ecs::prelude::*;
use clot_schemas::{FrameFeatures, Labels, Mask};

use crate::batch::{Batch, Input, ModelConfig, RunRng};
use crate::graph::{Failures, Forward, Grad, Phase, Profile, Stage, StageGraph, StageInfo};
use crate::sample::{gather_rows, sample_indices, standardise};

fn load(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    mut rng: ResMut<'_, RunRng>,
    videos: Query<'_, '_, &FrameFeatures>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
    mut commands: Commands<'_, '_>,
) {
    let _span = profile.span("load");
    let mut picks = Vec::with_capacity(batch.videos.len());
    for &e in &batch.videos {
        let Ok(f) = videos.get(e) else {
            failures.report("load", format!("entity {e:?} has no frame features"));
            return;
        };
        if f.rows() == 0 {
            failures.report("load", format!("entity {e:?} has no frames"));
            return;
        }
        picks.push((e, f, sample_indices(f.rows(), batch.sampling, &mut rng.0)));
    }
    let len = picks
        .iter()
        .map(|(_, _, (idx, _))| idx.len())
        .max()
        .unwrap_or(0);
    for (e, f, (mut idx, valid)) in picks {
        let last = idx.last().copied().unwrap_or(0);
        idx.resize(len, last);
        let d = f.cols();
        let mut x = gather_rows(f.as_slice(), d, &idx);
        if cfg.standardise {
            standardise(&mut x, d, valid);
        }
        let frames = Labels::from_vec(idx.iter().map(|&i| i as i32).collect());
        match FrameFeatures::from_vec(x, d, "sampled frames") {
            Ok(x) => {
                commands.entity(e).insert(Input {
                    x,
                    mask: Mask::prefix(valid, len),
                    frames,
                });
            }
            Err(err) => failures.report("load", err),
        }
    }
}

/// The load stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadStage;

impl Stage for LoadStage {
    fn info(&self) -> StageInfo {
        StageInfo {
            name: "load",
            phase: Phase::Load,
            reads: &["FrameFeatures", "Batch", "RunRng"],
            writes: &["Input"],
            grad: Grad::Detached,
            about: "sample frames (train strata / validation linspace / all), standardise, pad + mask",
        }
    }

    fn resident(&self) -> bool {
        // sampling stays on the host; the encode stage uploads the batch
        true
    }

    fn build(&self, graph: &mut StageGraph) {
        graph.add_systems(Forward, Phase::Load, load);
    }
}
