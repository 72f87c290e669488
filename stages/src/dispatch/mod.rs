//! The dispatch stage (Phase::Dispatch, differentiable): F = normalize(FD(E, A)) with learnable
//! scalars α (`dispatch.sim_alpha`, init 1) and β (`dispatch.sim_beta`, init 0), SPEC §2.
//!
//! Forward replaces the video's `FrameEmbeddings` (E, from the encoder) with F and keeps a
//! [`DispatchCache`]; backward turns [`EmbeddingGrad`] (dL/dF) into dL/dE for the encoder and adds
//! dL/dA, dL/dα, dL/dβ to [`Grads`]. Kernel in [`kernel`]. Cost O(N·K·d) per video.

pub mod kernel;

use bevy_ecs::prelude::*;
use clot_schemas::FrameEmbeddings;
use rayon::prelude::*;

use crate::actions::ACTIONS;
use crate::batch::{Batch, EmbeddingGrad, ModelConfig};
use crate::graph::{
    Backward, Failures, Forward, Grad, Phase, Profile, Stage, StageGraph, StageInfo,
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
        graph
            .add_systems(Forward, Phase::Dispatch, dispatch)
            .add_systems(Backward, Phase::Dispatch, dispatch_backward);
    }
}
