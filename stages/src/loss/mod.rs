//! The loss stages (Phase::Loss, differentiable): one cross-entropy per level (SPEC §2),
//!
//! * [`Frames`]: CE(T, softmax(F Aᵀ/τ)), the mean over the batch's B×N rows, padding masked;
//! * [`Segments`]: CE(T_S, softmax(S Aᵀ/τ)), over the B×K′ segment rows;
//! * [`Refined`]: CE(T_R, softmax(F_R Aᵀ/τ)), over B×N rows, padding masked.
//!
//! Each adds its term to [`LossValue`] in the forward pass and, in backward, writes the gradient
//! of its embeddings ([`EmbeddingGrad`], [`SegmentGrad`], [`RefinedGrad`]) and adds dL/dA to
//! [`Grads`]. The three run in the fixed order of the [`LossLevel`] sets. Kernel in [`kernel`].
//! Cost O(rows·K·d) each.

pub mod kernel;
#[cfg(feature = "wgpu")]
pub mod kernel_gpu;

use std::marker::PhantomData;
use std::ops::Deref;

use bevy_ecs::prelude::*;
use clot_schemas::{
    F32Matrix, FrameEmbeddings, RefinedFrames, RefinedPlan, SegmentEmbeddings, SegmentPlan,
    TransportPlan,
};
use rayon::prelude::*;

use crate::actions::ACTIONS;
use crate::batch::{Batch, EmbeddingGrad, Input, LossValue, ModelConfig, RefinedGrad, SegmentGrad};
use crate::graph::{
    Backward, Failures, Forward, Grad, LossLevel, Phase, Profile, Stage, StageGraph, StageInfo,
    add_cpu_gpu,
};
use crate::params::{Grads, Params};

/// One level of the loss: which embeddings, plan and gradient component it uses.
pub trait Level: Send + Sync + 'static {
    type Emb: Component + Deref<Target = F32Matrix>;
    type Plan: Component + Deref<Target = F32Matrix>;
    type GradOut: Component;
    /// Stage name.
    const NAME: &'static str;
    /// Whether rows are frames (masked by the input mask) or segments (all valid).
    const FRAMES: bool;
    const SET: LossLevel;
    const INFO: StageInfo;
    fn grad(v: Vec<f32>) -> Self::GradOut;
}

/// Frame level: F against T.
#[derive(Debug, Clone, Copy, Default)]
pub struct Frames;
/// Segment level: S against T_S.
#[derive(Debug, Clone, Copy, Default)]
pub struct Segments;
/// Refined level: F_R against T_R.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refined;

impl Level for Frames {
    type Emb = FrameEmbeddings;
    type Plan = TransportPlan;
    type GradOut = EmbeddingGrad;
    const NAME: &'static str = "loss";
    const FRAMES: bool = true;
    const SET: LossLevel = LossLevel::Frames;
    const INFO: StageInfo = StageInfo {
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
    };
    fn grad(v: Vec<f32>) -> EmbeddingGrad {
        EmbeddingGrad(v)
    }
}

impl Level for Segments {
    type Emb = SegmentEmbeddings;
    type Plan = SegmentPlan;
    type GradOut = SegmentGrad;
    const NAME: &'static str = "loss-segments";
    const FRAMES: bool = false;
    const SET: LossLevel = LossLevel::Segments;
    const INFO: StageInfo = StageInfo {
        name: "loss-segments",
        phase: Phase::Loss,
        reads: &["SegmentEmbeddings", "SegmentPlan", "Params(clusters)"],
        writes: &["LossValue", "SegmentGrad", "Grads(clusters)"],
        grad: Grad::Differentiable,
        about: "CE(T_S, softmax(S A^T / tau)), mean over the batch's segment rows",
    };
    fn grad(v: Vec<f32>) -> SegmentGrad {
        SegmentGrad(v)
    }
}

impl Level for Refined {
    type Emb = RefinedFrames;
    type Plan = RefinedPlan;
    type GradOut = RefinedGrad;
    const NAME: &'static str = "loss-refined";
    const FRAMES: bool = true;
    const SET: LossLevel = LossLevel::Refined;
    const INFO: StageInfo = StageInfo {
        name: "loss-refined",
        phase: Phase::Loss,
        reads: &[
            "RefinedFrames",
            "RefinedPlan",
            "Input(mask)",
            "Params(clusters)",
        ],
        writes: &["LossValue", "RefinedGrad", "Grads(clusters)"],
        grad: Grad::Differentiable,
        about: "CE(T_R, softmax(F_R A^T / tau)), mean over the batch's rows, padding masked",
    };
    fn grad(v: Vec<f32>) -> RefinedGrad {
        RefinedGrad(v)
    }
}

/// softmax(· Aᵀ/τ) of the last forward pass at level `L` (transient).
#[derive(Component, Debug, Clone, PartialEq)]
pub struct Probabilities<L: Level>(pub Vec<f32>, PhantomData<L>);

fn row_mask<L: Level>(input: &Input, rows: usize) -> Vec<bool> {
    if L::FRAMES {
        input.mask_vec()
    } else {
        vec![true; rows]
    }
}

#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn ce_forward<L: Level>(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    params: Res<'_, Params>,
    q: Query<'_, '_, (&L::Emb, &L::Plan, &Input)>,
    mut loss: ResMut<'_, LossValue>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
    mut commands: Commands<'_, '_>,
) {
    let _span = profile.span(L::NAME);
    let Some(a) = params.0.get(ACTIONS) else {
        return failures.report(L::NAME, "missing parameter clusters");
    };
    let (k, d) = (cfg.actions, cfg.dim());
    let rows: usize = batch.par_items(&q).map(|(_, (f, _, _))| f.rows()).sum();
    let out: Vec<_> = batch
        .par_items(&q)
        .map(|(e, (f, t, input))| {
            let p = kernel::probabilities(f.as_slice(), a, f.rows(), k, d, cfg.temperature);
            let l = kernel::loss(&p, t.as_slice(), &row_mask::<L>(input, f.rows()), k, rows);
            (e, p, l)
        })
        .collect();
    if out.len() != batch.videos.len() {
        return failures.report(L::NAME, "a batch video lacks embeddings, plan or input");
    }
    let total: f64 = out.iter().map(|(_, _, l)| *l as f64).sum();
    if !total.is_finite() {
        return failures.report(L::NAME, format!("the loss is {total}"));
    }
    loss.add(L::NAME, total);
    if batch.train {
        for (e, p, _) in out {
            commands
                .entity(e)
                .insert(Probabilities::<L>(p, PhantomData));
        }
    }
}

#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn ce_backward<L: Level>(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    params: Res<'_, Params>,
    mut grads: ResMut<'_, Grads>,
    q: Query<'_, '_, (&L::Emb, &L::Plan, &Input, &Probabilities<L>)>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
    mut commands: Commands<'_, '_>,
) {
    let _span = profile.span(match L::FRAMES {
        true if L::NAME == "loss" => "loss.backward",
        true => "loss-refined.backward",
        false => "loss-segments.backward",
    });
    let Some(a) = params.0.get(ACTIONS) else {
        return failures.report(L::NAME, "missing parameter clusters");
    };
    let (k, d) = (cfg.actions, cfg.dim());
    let rows: usize = batch.par_items(&q).map(|(_, (f, ..))| f.rows()).sum();
    let out: Vec<_> = batch
        .par_items(&q)
        .map(|(e, (f, t, input, p))| {
            let n = f.rows();
            let mut df = vec![0.0f32; n * d];
            let mut da = vec![0.0f32; k * d];
            kernel::backward(
                f.as_slice(),
                a,
                &p.0,
                t.as_slice(),
                &row_mask::<L>(input, n),
                (n, k, d),
                cfg.temperature,
                rows,
                &mut df,
                &mut da,
            );
            (e, df, da)
        })
        .collect();
    if out.len() != batch.videos.len() {
        return failures.report(L::NAME, "a batch video lacks its forward cache");
    }
    let Some(ga) = grads.0.get_mut(ACTIONS) else {
        return failures.report(L::NAME, "no gradient slot for clusters");
    };
    for (e, df, da) in out {
        ga.iter_mut().zip(&da).for_each(|(g, v)| *g += v);
        commands.entity(e).insert(L::grad(df));
    }
}

/// [`ce_forward`] on the resident GPU batch: the whole batch's rows of the level at once; the
/// loss comes back (one scalar, with the step checks of the solves not checked yet).
#[cfg(feature = "wgpu")]
#[allow(clippy::too_many_arguments)]
fn ce_forward_gpu<L: Level>(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    model: Res<'_, crate::gpu::resident::GpuModel>,
    mut gb: ResMut<'_, crate::gpu::resident::GpuBatch>,
    mut loss: ResMut<'_, LossValue>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
) {
    let _span = profile.span(L::NAME);
    let Some(a) = model.params.get(ACTIONS) else {
        return failures.report(L::NAME, "missing parameter clusters");
    };
    let f = match gb.embeddings(L::SET) {
        Ok(f) => f.clone(),
        Err(e) => return failures.report(L::NAME, e),
    };
    let Some(t) = gb.level(L::SET).plan.clone() else {
        return failures.report(L::NAME, "no plan on the GPU");
    };
    let states = std::mem::take(&mut gb.step_states);
    let rows = f.rows;
    let run = || {
        let mut ops = crate::linalg_gpu::Ops::new(&model.ctx, L::NAME)?;
        let mask = match (&gb.mask, L::FRAMES) {
            (Some(m), true) => m.clone(),
            _ => ops.filled("all rows", rows, 1, 1.0)?,
        };
        let p = kernel_gpu::probabilities(&mut ops, &f, &a, cfg.temperature)?;
        let l = kernel_gpu::loss(&mut ops, &p, &t, &mask, rows)?;
        let mut wanted = vec![&l];
        wanted.extend(states.iter().map(|(_, s)| s));
        let out = ops.finish(&wanted)?;
        Ok::<_, crate::gpu::GpuError>((p, out))
    };
    let (p, out) = match run() {
        Ok(r) => r,
        Err(e) => return failures.report(L::NAME, e),
    };
    for ((stage, _), state) in states.iter().zip(&out[1..]) {
        if let Err(e) = crate::ot::asot_gpu::check_step(cfg.ot(batch.train), state) {
            return failures.report(stage, e);
        }
    }
    let total = f64::from(out[0][0]);
    if !total.is_finite() {
        return failures.report(L::NAME, format!("the loss is {total}"));
    }
    loss.add(L::NAME, total);
    if batch.train {
        gb.level_mut(L::SET).probs = Some(p);
    }
}

/// [`ce_backward`] on the resident GPU batch: the gradient of the level's embeddings stays in
/// the batch, dL/dA goes into the resident gradients.
#[cfg(feature = "wgpu")]
fn ce_backward_gpu<L: Level>(
    cfg: Res<'_, ModelConfig>,
    model: Res<'_, crate::gpu::resident::GpuModel>,
    mut gb: ResMut<'_, crate::gpu::resident::GpuBatch>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
) {
    let _span = profile.span(match L::SET {
        LossLevel::Frames => "loss.backward",
        LossLevel::Refined => "loss-refined.backward",
        LossLevel::Segments => "loss-segments.backward",
    });
    let (Some(a), Some(da)) = (model.params.get(ACTIONS), model.grads.get(ACTIONS)) else {
        return failures.report(L::NAME, "missing parameter clusters");
    };
    let level = gb.level(L::SET);
    let (Ok(f), Some(t), Some(p)) = (gb.embeddings(L::SET), &level.plan, &level.probs) else {
        return failures.report(L::NAME, "no forward results on the GPU for backward");
    };
    let done = crate::gpu::resident::submit(&model, L::NAME, &failures, |ops| {
        let mask = match (&gb.mask, L::FRAMES) {
            (Some(m), true) => m.clone(),
            _ => ops.filled("all rows", f.rows, 1, 1.0)?,
        };
        let df = ops.zeros("dL/dF", f.rows, f.cols)?;
        let tau = cfg.temperature;
        kernel_gpu::backward(ops, f, &a, p, t, &mask, tau, f.rows, &df, &da)?;
        Ok::<_, crate::gpu::GpuError>(df)
    });
    if done.is_some() {
        gb.level_mut(L::SET).grad = done;
    }
}

/// The cross-entropy stage of level `L`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LossStage<L>(pub L);

impl<L: Level> Stage for LossStage<L> {
    fn info(&self) -> StageInfo {
        L::INFO
    }

    fn build(&self, graph: &mut StageGraph) {
        add_cpu_gpu!(
            graph,
            Forward,
            Phase::Loss,
            ce_forward::<L>,
            ce_forward_gpu::<L>,
            in_set L::SET
        );
        add_cpu_gpu!(
            graph,
            Backward,
            Phase::Loss,
            ce_backward::<L>,
            ce_backward_gpu::<L>,
            in_set L::SET
        );
    }

    fn resident(&self) -> bool {
        true
    }
}
