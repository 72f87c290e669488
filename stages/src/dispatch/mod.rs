//! The dispatch stage (Phase::Dispatch, differentiable): F = normalize(FD(E, A)) with learnable
//! scalars α (`dispatch.sim_alpha`, init 1) and β (`dispatch.sim_beta`, init 0), SPEC §2.
//!
//! Forward replaces the video's `FrameEmbeddings` (E, from the encoder) with F and keeps a
//! [`DispatchCache`]; backward turns [`EmbeddingGrad`] (dL/dF) into dL/dE for the encoder and adds
//! dL/dA, dL/dα, dL/dβ to [`Grads`]. Kernel in [`kernel`]. Cost O(N·K·d) per video.

pub mod kernel;
#[cfg(feature = "wgpu")]
pub mod kernel_gpu;

use bevy_ecs::prelude::*;
use clot_schemas::FrameEmbeddings;
use rayon::prelude::*;

use crate::actions::ACTIONS;
use crate::batch::{Batch, EmbeddingGrad, ModelConfig};
use crate::graph::{
    Backward, Failures, Forward, Grad, Phase, Profile, Stage, StageGraph, StageInfo, add_cpu_gpu,
};
use crate::linalg::{normalize_rows, normalize_rows_backward};
use crate::params::{Grads, ParamSet, Params};

/// Parameter name of α.
pub const ALPHA: &str = "dispatch.sim_alpha";
/// Parameter name of β.
pub const BETA: &str = "dispatch.sim_beta";

/// Adds α = 1 and β = 0.
pub fn init_params(params: &mut ParamSet) {
    params.push(ALPHA, vec![1], vec![1.0]);
    params.push(BETA, vec![1], vec![0.0]);
}

/// What backward needs (transient).
#[derive(Component, Debug, Clone, PartialEq)]
pub struct DispatchCache {
    e: Vec<f32>,
    f: Vec<f32>,
    norms: Vec<f32>,
    cache: kernel::DispatchCache<f32>,
}

/// A and the similarity's α and β (`None` if one is missing: callers report [`MISSING`]).
fn weights(p: &ParamSet) -> Option<(&[f32], f32, f32)> {
    Some((
        p.get(ACTIONS)?,
        *p.get(ALPHA)?.first()?,
        *p.get(BETA)?.first()?,
    ))
}

const MISSING: &str = "missing parameter clusters or dispatch.sim_alpha/beta";

fn dispatch(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    params: Res<'_, Params>,
    q: Query<'_, '_, &FrameEmbeddings>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
    mut commands: Commands<'_, '_>,
) {
    let _span = profile.span("dispatch");
    let Some((a, alpha, beta)) = weights(&params.0) else {
        return failures.report("dispatch", MISSING);
    };
    let (k, d) = (cfg.actions, cfg.dim());
    let out: Vec<_> = batch
        .par_items(&q)
        .map(|(ent, e)| {
            let n = e.rows();
            let (mut f, cache) = kernel::forward(e.as_slice(), a, (n, k, d), alpha, beta);
            let norms = normalize_rows(&mut f, d);
            (ent, e.as_slice().to_vec(), f, norms, cache)
        })
        .collect();
    for (ent, e, f, norms, cache) in out {
        match FrameEmbeddings::from_vec(f.clone(), d, "dispatched frame embeddings") {
            Ok(fe) => {
                let mut ec = commands.entity(ent);
                ec.insert(fe);
                if batch.train {
                    ec.insert(DispatchCache { e, f, norms, cache });
                }
            }
            Err(err) => failures.report("dispatch", err),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn dispatch_backward(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    params: Res<'_, Params>,
    mut grads: ResMut<'_, Grads>,
    q: Query<'_, '_, (&DispatchCache, &EmbeddingGrad)>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
    mut commands: Commands<'_, '_>,
) {
    let _span = profile.span("dispatch.backward");
    let Some((a, alpha, _)) = weights(&params.0) else {
        return failures.report("dispatch", MISSING);
    };
    let (k, d) = (cfg.actions, cfg.dim());
    let out: Vec<_> = batch
        .par_items(&q)
        .map(|(ent, (c, g))| {
            let n = c.f.len() / d;
            let dfd = normalize_rows_backward(&c.f, &c.norms, &g.0, d);
            (
                ent,
                kernel::backward(&c.e, a, &c.cache, &dfd, (n, k, d), alpha),
            )
        })
        .collect();
    let mut acc = (vec![0.0f32; k * d], 0.0f32, 0.0f32);
    for (ent, (de, da, dal, dbe)) in out {
        acc.0.iter_mut().zip(&da).for_each(|(x, y)| *x += y);
        acc.1 += dal;
        acc.2 += dbe;
        commands.entity(ent).insert(EmbeddingGrad(de));
    }
    for (name, v) in [(ACTIONS, acc.0), (ALPHA, vec![acc.1]), (BETA, vec![acc.2])] {
        match grads.0.get_mut(name) {
            Some(g) => g.iter_mut().zip(&v).for_each(|(x, y)| *x += y),
            None => return failures.report("dispatch", format!("no gradient slot for {name}")),
        }
    }
}

/// A, α and β of the resident parameters (or gradients), as GPU matrices.
#[cfg(feature = "wgpu")]
fn gpu_weights(
    set: &crate::optim_gpu::GpuParamSet,
) -> Option<(
    crate::linalg_gpu::GpuMat,
    crate::linalg_gpu::GpuMat,
    crate::linalg_gpu::GpuMat,
)> {
    Some((set.get(ACTIONS)?, set.get(ALPHA)?, set.get(BETA)?))
}

/// [`dispatch`] on the resident GPU batch: F for the stages after it stays there.
#[cfg(feature = "wgpu")]
fn dispatch_gpu(
    model: Res<'_, crate::gpu::resident::GpuModel>,
    mut gb: ResMut<'_, crate::gpu::resident::GpuBatch>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
) {
    let _span = profile.span("dispatch");
    let Some((a, alpha, beta)) = gpu_weights(&model.params) else {
        return failures.report("dispatch", MISSING);
    };
    let Some(e) = gb.encode.as_ref().map(|c| c.out.clone()) else {
        return failures.report("dispatch", "no frame embeddings on the GPU");
    };
    let b = gb.valid.len();
    let done = crate::gpu::resident::submit(&model, "dispatch", &failures, |ops| {
        let (fd, cache) = kernel_gpu::forward(ops, &e, &a, b, &alpha, &beta)?;
        let (out, norms) = ops.normalize(&fd)?;
        Ok::<_, crate::gpu::GpuError>(crate::gpu::resident::GpuDispatched { cache, out, norms })
    });
    if done.is_some() {
        gb.dispatch = done;
    }
}

/// [`dispatch_backward`] on the resident GPU batch: dL/dF there becomes dL/dE.
#[cfg(feature = "wgpu")]
fn dispatch_backward_gpu(
    model: Res<'_, crate::gpu::resident::GpuModel>,
    mut gb: ResMut<'_, crate::gpu::resident::GpuBatch>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
) {
    let _span = profile.span("dispatch.backward");
    let (Some((a, alpha, _)), Some((da, dalpha, dbeta))) =
        (gpu_weights(&model.params), gpu_weights(&model.grads))
    else {
        return failures.report("dispatch", MISSING);
    };
    let (Some(enc), Some(d), Some(df)) = (&gb.encode, &gb.dispatch, &gb.levels[0].grad) else {
        return failures.report("dispatch", "no forward results or gradient on the GPU");
    };
    let b = gb.valid.len();
    let done = crate::gpu::resident::submit(&model, "dispatch", &failures, |ops| {
        let dfd = ops.normalize_backward(&d.out, &d.norms, df)?;
        let grads = (&da, &dalpha, &dbeta);
        kernel_gpu::backward(ops, &enc.out, &a, &d.cache, &dfd, b, &alpha, grads)
    });
    if done.is_some() {
        gb.levels[0].grad = done;
    }
}

/// The feature-dispatching stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct DispatchStage;

impl Stage for DispatchStage {
    fn info(&self) -> StageInfo {
        StageInfo {
            name: "dispatch",
            phase: Phase::Dispatch,
            reads: &["FrameEmbeddings(E)", "Params(clusters, dispatch.*)"],
            writes: &[
                "FrameEmbeddings(F)",
                "DispatchCache",
                "EmbeddingGrad(dE)",
                "Grads(clusters, dispatch.*)",
            ],
            grad: Grad::Differentiable,
            about: "F = normalize(E + sum_k s_kt c_k), s = sigmoid(beta + alpha <A_k, E_t>)",
        }
    }

    fn build(&self, graph: &mut StageGraph) {
        add_cpu_gpu!(graph, Forward, Phase::Dispatch, dispatch, dispatch_gpu);
        add_cpu_gpu!(
            graph,
            Backward,
            Phase::Dispatch,
            dispatch_backward,
            dispatch_backward_gpu
        );
    }

    fn resident(&self) -> bool {
        true
    }
}
