//! The predict stage (Phase::Predict, detached): the label of each real frame is the argmax of the
//! final plan (`TransportPlan`, or `RefinedPlan` in CLOT; ties go to the lower action, as `argmax`
//! does) with the plan's mass on it. Writes [`Prediction`]. Cost O(N·K).

use bevy_ecs::prelude::*;
use std::ops::Deref;

use clot_schemas::{F32Matrix, Labels, RefinedPlan, TransportPlan};

use crate::batch::{Batch, Input, Prediction};
use crate::graph::{Forward, Grad, Phase, Stage, StageGraph, StageInfo};
use crate::linalg::argmax;

/// Row-wise argmax of the first `valid` rows of an N×K plan.
pub fn argmax_rows(plan: &[f32], k: usize, valid: usize) -> Vec<i32> {
    plan.chunks_exact(k.max(1))
        .take(valid)
        .map(|row| argmax(row) as i32)
        .collect()
}

fn predict<P: Component + Deref<Target = F32Matrix>>(
    batch: Res<'_, Batch>,
    q: Query<'_, '_, (&P, &Input)>,
    mut commands: Commands<'_, '_>,
) {
    if batch.train {
        return;
    }
    for &e in &batch.videos {
        if let Ok((t, input)) = q.get(e) {
            let k = t.cols();
            let labels = argmax_rows(t.as_slice(), k, input.mask.count_valid());
            let confidence = labels
                .iter()
                .enumerate()
                .map(|(r, &l)| t.as_slice()[r * k + l as usize])
                .collect();
            commands.entity(e).insert(Prediction {
                labels: Labels::from_vec(labels),
                confidence,
            });
        }
    }
}

/// The predict stage: from T (`refined: false`, the ASOT mode and "without refinement") or from
/// T_R (CLOT).
#[derive(Debug, Clone, Copy, Default)]
pub struct PredictStage {
    pub refined: bool,
}

impl Stage for PredictStage {
    fn info(&self) -> StageInfo {
        StageInfo {
            name: "predict",
            phase: Phase::Predict,
            reads: if self.refined {
                &["RefinedPlan", "Input(mask)"]
            } else {
                &["TransportPlan", "Input(mask)"]
            },
            writes: &["Prediction"],
            grad: Grad::Detached,
            about: if self.refined {
                "label = argmax of T_R (evaluation batches)"
            } else {
                "label = argmax of T (evaluation batches)"
            },
        }
    }

    fn resident(&self) -> bool {
        // reads the final plan, which a resident OT stage reads back at evaluation
        true
    }

    fn build(&self, graph: &mut StageGraph) {
        if self.refined {
            graph.add_systems(Forward, Phase::Predict, predict::<RefinedPlan>);
        } else {
            graph.add_systems(Forward, Phase::Predict, predict::<TransportPlan>);
        }
    }
}
