//! The resident training step: what stays on the GPU across the stages of a batch and across
//! steps, when every stage of the graph can run that way ([`StageGraph::resident_on_gpu`]; the
//! asot graph today) and the device is wgpu.
//!
//! * [`GpuModel`] (a resource): the parameters, their gradients and Adam's moments, uploaded once
//!   by [`make_resident`] and updated in place by every step. While it exists the CPU's
//!   `Params`, `Grads` and `Adam` are stale; [`sync_to_host`] reads the GPU's back into them.
//! * [`GpuBatch`] (a resource): the current batch on the GPU, one padded B·N-row matrix per
//!   quantity (the sampled frames X, the mask, E with the encoder's activations, the plan T, the
//!   probabilities P, dL/dE), written by the stages in phase order and replaced by the next
//!   batch. A batch is one upload of X and the mask, and each stage one set of dispatches over
//!   all its videos.
//!
//! Per training step only the loss and the solver's step check come back (one read of three
//! floats, for the progress bar and the error a CPU run would give); at evaluation the plans
//! and costs come back for the predictions and the OT objective. Each stage submits its own
//! command buffer: the queue keeps them in order, so no stage waits for another.

use std::sync::Arc;

use bevy_ecs::prelude::*;

use super::{Compute, ComputeDevice, GpuContext, GpuError};
use crate::encode::kernel_gpu::GpuMlpCache;
use crate::graph::StageGraph;
use crate::linalg_gpu::GpuMat;
use crate::optim::Adam;
use crate::optim_gpu::{GpuAdam, GpuParamSet};
use crate::params::{Grads, Params};

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
    /// OT1's plan T, B·N×K.
    pub plan: Option<GpuMat>,
    /// OT1's automatic step and the max it came from (checked with the loss).
    pub step_state: Option<GpuMat>,
    /// softmax(E Aᵀ/τ), B·N×K (training).
    pub probs: Option<GpuMat>,
    /// dL/dE, B·N×d (backward).
    pub dframes: Option<GpuMat>,
}

impl GpuBatch {
    /// The embeddings E of the batch, or why there are none.
    pub fn frames(&self) -> Result<&GpuMat, String> {
        self.encode
            .as_ref()
            .map(|c| &c.out)
            .ok_or_else(|| "no frame embeddings on the GPU (the encode stage did not run)".into())
    }
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
    let ops = crate::linalg_gpu::Ops::new(&model.ctx, "parameters to the host")?;
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
