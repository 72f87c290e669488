//! The loss stage (Phase::Loss, differentiable): CE(T, softmax(F Aᵀ/τ)) over the batch (SPEC §2),
//! the mean over all B×N rows with padded rows masked. Forward writes [`LossValue`] and, in
//! training, the probabilities for backward; backward writes [`EmbeddingGrad`] (dL/dF) on each
//! video and adds dL/dA to [`Grads`]. Kernel in [`kernel`]. Cost O(N·K·d) per video.

pub mod kernel;

use bevy_ecs::prelude::*;
use clot_schemas::{FrameEmbeddings, TransportPlan};
use rayon::prelude::*;

use crate::actions::ACTIONS;
use crate::batch::{Batch, EmbeddingGrad, Input, LossValue, ModelConfig};
use crate::graph::{
    Backward, Failures, Forward, Grad, Phase, Profile, Stage, StageGraph, StageInfo,
};
use crate::params::{Grads, Params};

/// softmax(F Aᵀ/τ) of the last forward pass (transient).
#[derive(Component, Debug, Clone, PartialEq)]
pub struct Probabilities(pub Vec<f32>);

// a bevy system takes one parameter per resource/query it touches
#[allow(clippy::too_many_arguments)]
fn ce_forward(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    params: Res<'_, Params>,
    q: Query<'_, '_, (&FrameEmbeddings, &TransportPlan, &Input)>,
    mut loss: ResMut<'_, LossValue>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
    mut commands: Commands<'_, '_>,
) {
    let _span = profile.span("loss");
    let Some(a) = params.0.get(ACTIONS) else {
        return failures.report("loss", "missing parameter clusters");
    };
    let (k, d) = (cfg.actions, cfg.dim());
    let rows: usize = batch
        .videos
        .iter()
        .filter_map(|&e| q.get(e).ok())
        .map(|(f, _, _)| f.rows())
        .sum();
    let out: Vec<_> = batch
        .videos
        .par_iter()
        .filter_map(|&e| q.get(e).ok().map(|x| (e, x)))
        .map(|(e, (f, t, input))| {
            let p = kernel::probabilities(f.as_slice(), a, f.rows(), k, d, cfg.temperature);
            let l = kernel::loss(&p, t.as_slice(), &input.mask_vec(), k, rows);
            (e, p, l)
        })
        .collect();
    if out.len() != batch.videos.len() {
        return failures.report("loss", "a batch video lacks embeddings, plan or input");
    }
    let total: f64 = out.iter().map(|(_, _, l)| *l as f64).sum();
    if !total.is_finite() {
        return failures.report("loss", format!("the loss is {total}"));
    }
    *loss = LossValue {
        total,
        terms: vec![("ce_frames", total)],
    };
    if batch.train {
        for (e, p, _) in out {
            commands.entity(e).insert(Probabilities(p));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn ce_backward(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    params: Res<'_, Params>,
    mut grads: ResMut<'_, Grads>,
    q: Query<'_, '_, (&FrameEmbeddings, &TransportPlan, &Input, &Probabilities)>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
    mut commands: Commands<'_, '_>,
) {
    let _span = profile.span("loss.backward");
    let Some(a) = params.0.get(ACTIONS) else {
        return failures.report("loss", "missing parameter clusters");
    };
    let (k, d) = (cfg.actions, cfg.dim());
    let rows: usize = batch
        .videos
        .iter()
        .filter_map(|&e| q.get(e).ok())
        .map(|(f, ..)| f.rows())
        .sum();
    let out: Vec<_> = batch
        .videos
        .par_iter()
        .filter_map(|&e| q.get(e).ok().map(|x| (e, x)))
        .map(|(e, (f, t, input, p))| {
            let n = f.rows();
            let mut df = vec![0.0f32; n * d];
            let mut da = vec![0.0f32; k * d];
            kernel::backward(
                f.as_slice(),
                a,
                &p.0,
                t.as_slice(),
                &input.mask_vec(),
                (n, k, d),
                cfg.temperature,
                rows,
                &mut df,
                &mut da,
            );
            (e, df, da)
        })
        .collect();
    let Some(ga) = grads.0.get_mut(ACTIONS) else {
        return failures.report("loss", "no gradient slot for clusters");
    };
    for (e, df, da) in out {
        ga.iter_mut().zip(&da).for_each(|(g, v)| *g += v);
        commands.entity(e).insert(EmbeddingGrad(df));
    }
}

/// The frame-level cross-entropy stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct LossStage;

impl Stage for LossStage {
    fn info(&self) -> StageInfo {
        StageInfo {
            name: "loss",
            phase: Phase::Loss,
            reads: &[
                "FrameEmbeddings",
                "TransportPlan",
                "Input(mask)",
                "Params(clusters)",
            ],
            writes: &["LossValue", "EmbeddingGrad", "Grads(clusters)"],
            grad: Grad::Differentiable,
            about: "CE(T, softmax(F A^T / tau)), mean over the batch's rows, padding masked",
        }
    }

    fn build(&self, graph: &mut StageGraph) {
        graph
            .add_systems(Forward, Phase::Loss, ce_forward)
            .add_systems(Backward, Phase::Loss, ce_backward);
    }
}
