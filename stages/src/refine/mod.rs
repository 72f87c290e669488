//! The refine stage (Phase::Refine, differentiable): F_R = normalize(F + softmax(F Sᵀ/(τ_ca√d)) S)
//! (SPEC §2). Over the segment embeddings S, or over the action embeddings A in the "without
//! decoder" graph. Forward writes `RefinedFrames`; backward turns [`RefinedGrad`] into additions
//! to [`EmbeddingGrad`] and to [`SegmentGrad`] (or to dL/dA in [`Grads`]). No parameters.
//! Kernel in [`kernel`]. Cost O(N·K′·d) per video.

pub mod kernel;
#[cfg(feature = "wgpu")]
pub mod kernel_gpu;

use bevy_ecs::prelude::*;
use clot_schemas::{FrameEmbeddings, RefinedFrames, SegmentEmbeddings};
use rayon::prelude::*;

use crate::actions::ACTIONS;
use crate::batch::{Batch, EmbeddingGrad, ModelConfig, RefinedGrad, SegmentGrad};
use crate::graph::{
    Backward, Failures, Forward, Grad, Phase, Profile, Stage, StageGraph, StageInfo, add_cpu_gpu,
};
use crate::linalg::add_into;
use crate::params::{Grads, Params};

/// What the frames attend over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// The decoder's segment embeddings S (CLOT).
    Segments,
    /// The action embeddings A ("without decoder").
    Actions,
}

/// What backward needs (transient).
#[derive(Component, Debug, Clone, PartialEq)]
pub struct RefineCache(pub kernel::RefineCache<f32>);

fn emit(
    out: Vec<(Entity, kernel::RefineCache<f32>)>,
    d: usize,
    train: bool,
    failures: &Failures,
    commands: &mut Commands<'_, '_>,
) {
    for (e, c) in out {
        match RefinedFrames::from_vec(c.out.clone(), d, "refined frames") {
            Ok(r) => {
                let mut ec = commands.entity(e);
                ec.insert(r);
                if train {
                    ec.insert(RefineCache(c));
                }
            }
            Err(err) => failures.report("refine", err),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn refine_segments(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    q: Query<'_, '_, (&FrameEmbeddings, &SegmentEmbeddings)>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
    mut commands: Commands<'_, '_>,
) {
    let _span = profile.span("refine");
    let d = cfg.dim();
    let out: Vec<_> = batch
        .par_items(&q)
        .map(|(e, (f, s))| {
            (
                e,
                kernel::forward(
                    f.as_slice(),
                    s.as_slice(),
                    (f.rows(), s.rows(), d),
                    cfg.clot.tau_ca,
                ),
            )
        })
        .collect();
    emit(out, d, batch.train, &failures, &mut commands);
}

#[allow(clippy::too_many_arguments)]
fn refine_actions(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    params: Res<'_, Params>,
    q: Query<'_, '_, &FrameEmbeddings>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
    mut commands: Commands<'_, '_>,
) {
    let _span = profile.span("refine");
    let Some(a) = params.0.get(ACTIONS) else {
        return failures.report("refine", "missing parameter clusters");
    };
    let (k, d) = (cfg.actions, cfg.dim());
    let out: Vec<_> = batch
        .par_items(&q)
        .map(|(e, f)| {
            (
                e,
                kernel::forward(f.as_slice(), a, (f.rows(), k, d), cfg.clot.tau_ca),
            )
        })
        .collect();
    emit(out, d, batch.train, &failures, &mut commands);
}

#[allow(clippy::type_complexity)]
fn refine_segments_backward(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    q: Query<
        '_,
        '_,
        (
            &FrameEmbeddings,
            &SegmentEmbeddings,
            &RefineCache,
            &RefinedGrad,
            &EmbeddingGrad,
            &SegmentGrad,
        ),
    >,
    profile: Res<'_, Profile>,
    mut commands: Commands<'_, '_>,
) {
    let _span = profile.span("refine.backward");
    let d = cfg.dim();
    let out: Vec<_> = batch
        .par_items(&q)
        .map(|(e, (f, s, c, gr, gf, gs))| {
            let (mut df, mut ds) = kernel::backward(
                f.as_slice(),
                s.as_slice(),
                &c.0,
                &gr.0,
                (f.rows(), s.rows(), d),
                cfg.clot.tau_ca,
            );
            add_into(&mut df, &gf.0);
            add_into(&mut ds, &gs.0);
            (e, df, ds)
        })
        .collect();
    for (e, df, ds) in out {
        commands
            .entity(e)
            .insert((EmbeddingGrad(df), SegmentGrad(ds)));
    }
}

#[allow(clippy::too_many_arguments)]
fn refine_actions_backward(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    params: Res<'_, Params>,
    mut grads: ResMut<'_, Grads>,
    q: Query<'_, '_, (&FrameEmbeddings, &RefineCache, &RefinedGrad, &EmbeddingGrad)>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
    mut commands: Commands<'_, '_>,
) {
    let _span = profile.span("refine.backward");
    let Some(a) = params.0.get(ACTIONS) else {
        return failures.report("refine", "missing parameter clusters");
    };
    let (k, d) = (cfg.actions, cfg.dim());
    let out: Vec<_> = batch
        .par_items(&q)
        .map(|(e, (f, c, gr, gf))| {
            let (mut df, da) = kernel::backward(
                f.as_slice(),
                a,
                &c.0,
                &gr.0,
                (f.rows(), k, d),
                cfg.clot.tau_ca,
            );
            add_into(&mut df, &gf.0);
            (e, df, da)
        })
        .collect();
    let Some(ga) = grads.0.get_mut(ACTIONS) else {
        return failures.report("refine", "no gradient slot for clusters");
    };
    for (e, df, da) in out {
        add_into(ga, &da);
        commands.entity(e).insert(EmbeddingGrad(df));
    }
}

/// S of a refinement on the resident GPU batch (the segments, or A) and its rows per video.
#[cfg(feature = "wgpu")]
fn gpu_over(
    over: Over,
    model: &crate::gpu::resident::GpuModel,
    gb: &crate::gpu::resident::GpuBatch,
) -> Result<(crate::linalg_gpu::GpuMat, usize), String> {
    match over {
        Over::Segments => gb
            .segments
            .as_ref()
            .map(|s| (s.out.clone(), s.queries))
            .ok_or_else(|| "no segment embeddings on the GPU".into()),
        Over::Actions => model
            .params
            .get(ACTIONS)
            .map(|a| {
                let k = a.rows;
                (a, k)
            })
            .ok_or_else(|| "missing parameter clusters".into()),
    }
}

/// The refinement's forward on the resident GPU batch.
#[cfg(feature = "wgpu")]
#[allow(clippy::type_complexity)]
fn refine_gpu(
    over: Over,
) -> impl FnMut(
    Res<'_, ModelConfig>,
    Res<'_, crate::gpu::resident::GpuModel>,
    ResMut<'_, crate::gpu::resident::GpuBatch>,
    Res<'_, Failures>,
    Res<'_, Profile>,
) {
    move |cfg, model, mut gb, failures, profile| {
        let _span = profile.span("refine");
        let (f, (s, kk)) = match (gb.frames(), gpu_over(over, &model, &gb)) {
            (Ok(f), Ok(s)) => (f.clone(), s),
            (Err(e), _) | (_, Err(e)) => return failures.report("refine", e),
        };
        let b = gb.valid.len();
        let done = crate::gpu::resident::submit(&model, "refine", &failures, |ops| {
            kernel_gpu::forward(ops, &f, &s, (b, kk), cfg.clot.tau_ca)
        });
        if done.is_some() {
            gb.refined = done;
        }
    }
}

/// The refinement's backward on the resident GPU batch: dL/dF_R there adds to dL/dF and to
/// dL/dS (or to the resident dL/dA).
#[cfg(feature = "wgpu")]
#[allow(clippy::type_complexity)]
fn refine_backward_gpu(
    over: Over,
) -> impl FnMut(
    Res<'_, ModelConfig>,
    Res<'_, crate::gpu::resident::GpuModel>,
    Res<'_, crate::gpu::resident::GpuBatch>,
    Res<'_, Failures>,
    Res<'_, Profile>,
) {
    move |cfg, model, gb, failures, profile| {
        let _span = profile.span("refine.backward");
        let (f, (s, kk)) = match (gb.frames(), gpu_over(over, &model, &gb)) {
            (Ok(f), Ok(s)) => (f.clone(), s),
            (Err(e), _) | (_, Err(e)) => return failures.report("refine", e),
        };
        let (Some(cache), Some(dout), Some(df)) =
            (&gb.refined, &gb.levels[2].grad, &gb.levels[0].grad)
        else {
            return failures.report("refine", "no forward results or gradients on the GPU");
        };
        let ds_into = match over {
            Over::Segments => gb.levels[1].grad.clone(),
            Over::Actions => model.grads.get(ACTIONS),
        };
        let Some(ds_into) = ds_into else {
            return failures.report("refine", "no gradient for what the frames attend over");
        };
        let b = gb.valid.len();
        crate::gpu::resident::submit(&model, "refine", &failures, |ops| {
            let (dfr, ds) =
                kernel_gpu::backward(ops, &f, &s, cache, dout, (b, kk), cfg.clot.tau_ca)?;
            ops.axpy(1.0, &dfr, df)?;
            ops.axpy(1.0, &ds, &ds_into)
        });
    }
}

/// The refinement stage.
#[derive(Debug, Clone, Copy)]
pub struct RefineStage(pub Over);

impl Stage for RefineStage {
    fn info(&self) -> StageInfo {
        match self.0 {
            Over::Segments => StageInfo {
                name: "refine",
                phase: Phase::Refine,
                reads: &["FrameEmbeddings", "SegmentEmbeddings"],
                writes: &[
                    "RefinedFrames",
                    "RefineCache",
                    "EmbeddingGrad",
                    "SegmentGrad",
                ],
                grad: Grad::Differentiable,
                about: "F_R = normalize(F + softmax(F S^T / (tau_ca sqrt d)) S)",
            },
            Over::Actions => StageInfo {
                name: "refine",
                phase: Phase::Refine,
                reads: &["FrameEmbeddings", "Params(clusters)"],
                writes: &[
                    "RefinedFrames",
                    "RefineCache",
                    "EmbeddingGrad",
                    "Grads(clusters)",
                ],
                grad: Grad::Differentiable,
                about: "F_R = normalize(F + softmax(F A^T / (tau_ca sqrt d)) A) (no decoder: attends over A)",
            },
        }
    }

    fn build(&self, graph: &mut StageGraph) {
        let over = self.0;
        match over {
            Over::Segments => {
                add_cpu_gpu!(
                    graph,
                    Forward,
                    Phase::Refine,
                    refine_segments,
                    refine_gpu(over)
                );
                add_cpu_gpu!(
                    graph,
                    Backward,
                    Phase::Refine,
                    refine_segments_backward,
                    refine_backward_gpu(over)
                );
            }
            Over::Actions => {
                add_cpu_gpu!(
                    graph,
                    Forward,
                    Phase::Refine,
                    refine_actions,
                    refine_gpu(over)
                );
                add_cpu_gpu!(
                    graph,
                    Backward,
                    Phase::Refine,
                    refine_actions_backward,
                    refine_backward_gpu(over)
                );
            }
        }
    }

    fn resident(&self) -> bool {
        true
    }
}
