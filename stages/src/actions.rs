//! The action embeddings A (K×d, the `clusters` parameter) and the stage that re-normalises them
//! to unit rows before every training step (SPEC §2; no gradient flows through the
//! re-normalisation). Cost O(K·d).

use bevy_ecs::prelude::*;

use crate::batch::Batch;
use crate::graph::{Failures, Forward, Grad, Phase, Stage, StageGraph, StageInfo, add_cpu_gpu};
use crate::linalg::normalize_rows;
use crate::params::Params;

/// The parameter name of A (the reference's `clusters`).
pub const ACTIONS: &str = "clusters";

fn renormalise(batch: Res<'_, Batch>, mut params: ResMut<'_, Params>, failures: Res<'_, Failures>) {
    if !batch.train {
        return;
    }
    let Some(d) = params
        .0
        .index(ACTIONS)
        .and_then(|i| params.0.tensors[i].shape.get(1).copied())
    else {
        return failures.report("actions", "missing parameter clusters (K×d)");
    };
    if let Some(a) = params.0.get_mut(ACTIONS) {
        normalize_rows(a, d);
    }
}

/// [`renormalise`] on the resident GPU parameters.
#[cfg(feature = "wgpu")]
fn renormalise_gpu(
    batch: Res<'_, Batch>,
    model: Res<'_, crate::gpu::resident::GpuModel>,
    failures: Res<'_, Failures>,
) {
    if !batch.train {
        return;
    }
    let Some(a) = model.params.get(ACTIONS) else {
        return failures.report("actions", "missing parameter clusters (K×d)");
    };
    crate::gpu::resident::submit(&model, "actions", &failures, |ops| {
        let (unit, _) = ops.normalize(&a)?;
        ops.copy_into(&unit, &a);
        Ok::<_, crate::gpu::GpuError>(())
    });
}

/// Re-normalises A before each training step.
#[derive(Debug, Clone, Copy, Default)]
pub struct ActionsStage;

impl Stage for ActionsStage {
    fn info(&self) -> StageInfo {
        StageInfo {
            name: "actions",
            phase: Phase::Load,
            reads: &["Batch"],
            writes: &["Params(clusters)"],
            grad: Grad::Detached,
            about: "re-normalise the action embeddings A to unit rows before each training step",
        }
    }

    fn build(&self, graph: &mut StageGraph) {
        add_cpu_gpu!(graph, Forward, Phase::Load, renormalise, renormalise_gpu);
    }

    fn resident(&self) -> bool {
        true
    }
}
