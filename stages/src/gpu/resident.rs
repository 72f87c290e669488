//! The resident training step: what stays on the GPU across the stages of a batch and across
//! steps, when every stage of the graph can run that way ([`StageGraph::resident_on_gpu`]: every
//! built-in graph, not one with a user stage that reads host components) and the device is wgpu.
//!
//! * [`GpuModel`] (a resource): the parameters, their gradients and Adam's moments, uploaded once
//!   by [`make_resident`] and updated in place by every step. While it exists the CPU's
//!   `Params`, `Grads` and `Adam` are stale; [`sync_to_host`] reads the GPU's back into them.
//! * [`GpuBatch`] (a resource): the current batch on the GPU, one padded matrix per quantity
//!   (the sampled frames X and the mask, E with the encoder's activations, F after dispatch, S
//!   with the decoder's cache, F_R, and per loss level the plan, the probabilities and the
//!   gradient), written by the stages in phase order and replaced by the next batch. A batch is
//!   one upload of X and the mask (plus the SWD directions and dropout multipliers, drawn on the
//!   CPU from the run's streams so that both devices draw the same), and each stage one set of
//!   dispatches over all its videos.
//!
//! Per training step only the losses and the solvers' step checks come back (one small read per
//! loss level, for the progress bar and the errors a CPU run would give); at evaluation the plans
//! and costs come back for the predictions and the OT objective. Each stage submits its own
//! command buffer: the queue keeps them in order, so no stage waits for another.
//!
//! Every quantity is one buffer bound whole, so a batch needs each of them within the device's
//! storage binding ([`GpuContext::max_binding`]); one that is not fails its stage with a
//! [`GpuError::TooLarge`], which the failure marks ([`crate::graph::StageError::over_limit`]) so
//! that a caller can run that batch on the host path instead (the pipeline does, for one long
//! video at evaluation).

use std::sync::Arc;

use bevy_ecs::prelude::*;

use super::{Compute, ComputeDevice, GpuContext, GpuError};
use crate::dispatch::kernel_gpu::GpuDispatchCache;
use crate::encode::kernel_gpu::GpuMlpCache;
use crate::graph::{Failures, LossLevel, StageGraph};
use crate::linalg_gpu::GpuMat;
use crate::linalg_gpu::Ops;
use crate::optim::Adam;
use crate::optim_gpu::{GpuAdam, GpuParamSet};
use crate::params::{Grads, Params};
use crate::refine::kernel_gpu::GpuRefineCache;

/// Parameters, gradients and Adam's state on the GPU (a resource).
#[derive(Resource, Debug)]
pub struct GpuModel {
    pub ctx: Arc<GpuContext>,
    pub params: GpuParamSet,
    pub grads: GpuParamSet,
    pub adam: GpuAdam,
}

/// The current batch on the GPU (a resource; see the module docs). Rows are the B videos'
/// padded rows in batch order, `rows` per video.
#[derive(Resource, Debug, Default)]
pub struct GpuBatch {
    /// Padded rows per video.
    pub rows: usize,
    /// Real rows of each video (a prefix of its rows).
    pub valid: Vec<usize>,
    /// 1 for a real row, 0 for padding, B·N×1.
    pub mask: Option<GpuMat>,
    /// The encoder's input, activations and output E (B·N×d).
    pub encode: Option<GpuMlpCache>,
    /// Feature dispatching: F = normalize(FD(E, A)) and what its backward needs.
    pub dispatch: Option<GpuDispatched>,
    /// The decoder's segment embeddings S, B·K′×d, and what its backward needs.
    pub segments: Option<GpuSegments>,
    /// Refinement: F_R (B·N×d) and what its backward needs.
    pub refined: Option<GpuRefineCache>,
    /// Per loss level (frames, segments, refined frames): the plan, the probabilities, and in
    /// backward the gradient of the level's embeddings (dL/dF, dL/dS, dL/dF_R).
    pub levels: [GpuLevel; 3],
    /// The automatic steps of this batch's solves, by stage, checked when the loss comes back.
    pub step_states: Vec<(&'static str, GpuMat)>,
}

/// What a loss level keeps on the GPU.
#[derive(Debug, Default, Clone)]
pub struct GpuLevel {
    pub plan: Option<GpuMat>,
    pub probs: Option<GpuMat>,
    pub grad: Option<GpuMat>,
}

/// The dispatch stage's output on the GPU.
#[derive(Debug, Clone)]
pub struct GpuDispatched {
    pub cache: GpuDispatchCache,
    /// F, B·N×d, and the norms of FD's rows.
    pub out: GpuMat,
    pub norms: GpuMat,
}

/// The decoder's output on the GPU: S (B·K′×d) and its backward's cache.
#[derive(Debug, Clone)]
pub struct GpuSegments {
    pub out: GpuMat,
    /// K′ per video.
    pub queries: usize,
    pub cache: crate::decode::kernel_gpu::GpuDecoderCache,
    /// The step's dropout multipliers (training).
    pub drops: Option<Vec<crate::decode::kernel_gpu::GpuDrops>>,
}

/// The level index of [`GpuBatch::levels`].
pub fn level_index(level: LossLevel) -> usize {
    match level {
        LossLevel::Frames => 0,
        LossLevel::Segments => 1,
        LossLevel::Refined => 2,
    }
}

impl GpuBatch {
    /// The frame embeddings the stages after dispatch see: F when dispatch ran, else E.
    pub fn frames(&self) -> Result<&GpuMat, String> {
        if let Some(d) = &self.dispatch {
            return Ok(&d.out);
        }
        self.encode
            .as_ref()
            .map(|c| &c.out)
            .ok_or_else(|| "no frame embeddings on the GPU (the encode stage did not run)".into())
    }

    /// The embeddings of a loss level: F, S or F_R.
    pub fn embeddings(&self, level: LossLevel) -> Result<&GpuMat, String> {
        match level {
            LossLevel::Frames => self.frames(),
            LossLevel::Segments => self
                .segments
                .as_ref()
                .map(|s| &s.out)
                .ok_or_else(|| "no segment embeddings on the GPU".into()),
            LossLevel::Refined => self
                .refined
                .as_ref()
                .map(|r| &r.out)
                .ok_or_else(|| "no refined frames on the GPU".into()),
        }
    }

    /// The videos' valid rows at a level: the mask's at a frame level, every row of S.
    pub fn valid_rows(&self, level: LossLevel) -> Vec<usize> {
        match (level, &self.segments) {
            (LossLevel::Segments, Some(s)) => vec![s.queries; self.valid.len()],
            _ => self.valid.clone(),
        }
    }

    pub fn level(&self, level: LossLevel) -> &GpuLevel {
        &self.levels[level_index(level)]
    }

    pub fn level_mut(&mut self, level: LossLevel) -> &mut GpuLevel {
        &mut self.levels[level_index(level)]
    }
}

/// Records a stage's kernels with `record` into one submission on the model's device and submits
/// it (nothing read back); a failure is reported for `stage` and gives `None`.
pub fn submit<T, E>(
    model: &GpuModel,
    stage: &'static str,
    failures: &Failures,
    record: impl FnOnce(&mut Ops<'_>) -> Result<T, E>,
) -> Option<T>
where
    E: std::fmt::Display + From<GpuError> + 'static,
{
    let run = || -> Result<T, E> {
        let mut ops = Ops::new(&model.ctx, stage)?;
        let out = record(&mut ops)?;
        ops.finish(&[])?;
        Ok(out)
    };
    run().map_err(|e| failures.report(stage, e)).ok()
}

/// Moves `graph`'s model to the GPU when its device is wgpu and every stage runs resident:
/// uploads `Params` and `Adam` into a [`GpuModel`] (gradients start at zero) and adds an empty
/// [`GpuBatch`]. Returns whether the graph is now resident (true at once when it already was).
pub fn make_resident(graph: &mut StageGraph) -> Result<bool, GpuError> {
    if graph.world.contains_resource::<GpuModel>() {
        return Ok(true);
    }
    let ctx = match graph.world.get_resource::<ComputeDevice>().map(|d| &d.0) {
        Some(Compute::Wgpu(ctx)) if graph.resident_on_gpu() => Arc::clone(ctx),
        _ => return Ok(false),
    };
    let w = &graph.world;
    let (Some(params), Some(adam)) = (w.get_resource::<Params>(), w.get_resource::<Adam>()) else {
        return Ok(false);
    };
    let gp = GpuParamSet::upload(&ctx, "parameters", &params.0)?;
    let grads = gp.zeros_like(&ctx, "gradients")?;
    let adam = GpuAdam::upload(&ctx, adam)?;
    graph.world.insert_resource(GpuModel {
        ctx,
        params: gp,
        grads,
        adam,
    });
    graph.world.insert_resource(GpuBatch::default());
    Ok(true)
}

/// Reads the GPU's parameters and Adam's state back into `Params` and `Adam` (gradients are zero
/// between steps). Does nothing on a graph that is not resident.
pub fn sync_to_host(graph: &mut StageGraph) -> Result<(), GpuError> {
    let Some(model) = graph.world.get_resource::<GpuModel>() else {
        return Ok(());
    };
    let ops = Ops::new(&model.ctx, "parameters to the host")?;
    let out = ops.finish(&[
        &model.params.flat(),
        &model.adam.m.flat(),
        &model.adam.v.flat(),
    ])?;
    let params = model.params.to_param_set(&out[0]);
    let (m, v, t) = (
        model.adam.m.to_param_set(&out[1]),
        model.adam.v.to_param_set(&out[2]),
        model.adam.t,
    );
    let zeros = params.zeros_like();
    graph.world.insert_resource(Params(params));
    graph.world.insert_resource(Grads(zeros));
    if let Some(mut adam) = graph.world.get_resource_mut::<Adam>() {
        adam.m = m;
        adam.v = v;
        adam.t = t;
    }
    Ok(())
}
