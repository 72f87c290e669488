//! The OT1 stage (Phase::Solve1, detached): pseudo-labels T = ASOT(1 − F Aᵀ + ρ·R(N,K)) for all
//! videos of the batch in one batched solve (the automatic step couples the batch, as in the
//! reference). Training batches use the train settings (ε, α, λ_a), evaluation the eval ones.
//! Reads `FrameEmbeddings`, [`Input`] (the mask) and A; writes `TransportPlan`. Cost: the cost
//! matrix O(N·K·d), the solver O(iters·N·K) per video.

use bevy_ecs::prelude::*;
use clot_schemas::{FrameEmbeddings, TransportPlan};

use crate::actions::ACTIONS;
use crate::batch::{Batch, Input, ModelConfig};
use crate::graph::{Failures, Forward, Grad, Phase, Profile, Stage, StageGraph, StageInfo};
use crate::ot::cost::{add_temporal_prior, cosine_cost};
use crate::ot::solve_batch;
use crate::params::Params;

fn solve1(
    batch: Res<'_, Batch>,
    cfg: Res<'_, ModelConfig>,
    params: Res<'_, Params>,
    q: Query<'_, '_, (&FrameEmbeddings, &Input)>,
    failures: Res<'_, Failures>,
    profile: Res<'_, Profile>,
    mut commands: Commands<'_, '_>,
) {
    let _span = profile.span("ot1");
    let Some(a) = params.0.get(ACTIONS) else {
        return failures.report("ot1", "missing parameter clusters");
    };
    let (k, d) = (cfg.actions, cfg.dim());
    let mut costs = Vec::new();
    let mut valid = Vec::new();
    let mut n = 0;
    for &e in &batch.videos {
        let Ok((f, input)) = q.get(e) else {
            return failures.report("ot1", format!("entity {e:?} has no frame embeddings"));
        };
        n = f.rows();
        let mut c = cosine_cost(f.as_slice(), a, d);
        add_temporal_prior(&mut c, n, k, cfg.rho);
        costs.extend_from_slice(&c);
        valid.push(input.mask.count_valid());
    }
    match solve_batch(&costs, valid.len(), n, k, &valid, cfg.ot(batch.train)) {
        Ok(plans) => {
            for (&e, t) in batch.videos.iter().zip(plans.chunks_exact(n * k)) {
                match TransportPlan::from_vec(t.to_vec(), k, "OT1 plan") {
                    Ok(t) => {
                        commands.entity(e).insert(t);
                    }
                    Err(err) => failures.report("ot1", err),
                }
            }
        }
        Err(err) => failures.report("ot1", err),
    }
}

/// The OT1 stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct Solve1Stage;

impl Stage for Solve1Stage {
    fn info(&self) -> StageInfo {
        StageInfo {
            name: "ot1",
            phase: Phase::Solve1,
            reads: &["FrameEmbeddings", "Input(mask)", "Params(clusters)"],
            writes: &["TransportPlan"],
            grad: Grad::Detached,
            about: "T = ASOT(1 - F A^T + rho R), batched; train or eval settings",
        }
    }

    fn build(&self, graph: &mut StageGraph) {
        graph.add_systems(Forward, Phase::Solve1, solve1);
    }
}
