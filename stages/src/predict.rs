//! The predict stage (Phase::Write, detached): the label of each real frame is the argmax of the
//! final plan (`TransportPlan`; ties go to the lower action, as `argmax` does). Writes
//! [`Prediction`]. Cost O(N·K).

use bevy_ecs::prelude::*;
use clot_schemas::{Labels, TransportPlan};

use crate::batch::{Batch, Input, Prediction};
use crate::graph::{Forward, Grad, Phase, Stage, StageGraph, StageInfo};

/// Row-wise argmax of the first `valid` rows of an N×K plan.
pub fn argmax_rows(plan: &[f32], k: usize, valid: usize) -> Vec<i32> {
    plan.chunks_exact(k.max(1))
        .take(valid)
        .map(|row| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best as i32
        })
        .collect()
}

fn predict(
    batch: Res<'_, Batch>,
    q: Query<'_, '_, (&TransportPlan, &Input)>,
    mut commands: Commands<'_, '_>,
) {
    if batch.train {
        return;
    }
    for &e in &batch.videos {
        if let Ok((t, input)) = q.get(e) {
            let labels = argmax_rows(t.as_slice(), t.cols(), input.mask.count_valid());
            commands
                .entity(e)
                .insert(Prediction(Labels::from_vec(labels)));
        }
    }
}

/// The predict stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct PredictStage;

impl Stage for PredictStage {
    fn info(&self) -> StageInfo {
        StageInfo {
            name: "predict",
            phase: Phase::Write,
            reads: &["TransportPlan", "Input(mask)"],
            writes: &["Prediction"],
            grad: Grad::Detached,
            about: "label = argmax of the final plan (evaluation batches)",
        }
    }

    fn build(&self, graph: &mut StageGraph) {
        graph.add_systems(Forward, Phase::Write, predict);
    }
}
