//! The optimizer stage: Adam with L2 weight decay added to the gradient (PyTorch's `Adam`, not
//! `AdamW`), bias-corrected exactly as `torch.optim.Adam` computes it:
//! g += wd·θ; m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²;
//! θ −= (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε).
//! Runs in the `Step` schedule, then zeroes the gradients. Cost O(#params).

use bevy_ecs::prelude::*;

use crate::graph::{Grad, Phase, Stage, StageGraph, StageInfo, Step, add_cpu_gpu};
use crate::params::{Grads, ParamSet, Params};

/// Adam's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub lr: f32,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            weight_decay: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Adam's state: first and second moments per parameter and the step count (a resource).
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct Adam {
    pub config: AdamConfig,
    pub m: ParamSet,
    pub v: ParamSet,
    pub t: u32,
}

impl Adam {
    /// Fresh state for `params`.
    pub fn new(config: AdamConfig, params: &ParamSet) -> Self {
        Adam {
            config,
            m: params.zeros_like(),
            v: params.zeros_like(),
            t: 0,
        }
    }

    /// One step on `params` with `grads` (weight decay is added to a copy of the gradient).
    pub fn step(&mut self, params: &mut ParamSet, grads: &ParamSet) {
        self.t += 1;
        let c = self.config;
        let bc1 = 1.0 - (c.beta1 as f64).powi(self.t as i32);
        let bc2 = 1.0 - (c.beta2 as f64).powi(self.t as i32);
        let step = (c.lr as f64 / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        for (((p, g), m), v) in params
            .tensors
            .iter_mut()
            .zip(&grads.tensors)
            .zip(&mut self.m.tensors)
            .zip(&mut self.v.tensors)
        {
            for (((p, &g), m), v) in p
                .data
                .iter_mut()
                .zip(&g.data)
                .zip(m.data.iter_mut())
                .zip(v.data.iter_mut())
            {
                let g = g + c.weight_decay * *p;
                *m = c.beta1 * *m + (1.0 - c.beta1) * g;
                *v = c.beta2 * *v + (1.0 - c.beta2) * g * g;
                let denom = v.sqrt() / bc2_sqrt + c.eps;
                *p -= step * *m / denom;
            }
        }
    }
}

fn adam_step(
    mut params: ResMut<'_, Params>,
    mut grads: ResMut<'_, Grads>,
    mut adam: ResMut<'_, Adam>,
) {
    adam.step(&mut params.0, &grads.0);
    grads.0.zero();
}

/// [`adam_step`] on the resident GPU model (which zeroes its gradients).
#[cfg(feature = "wgpu")]
fn adam_step_gpu(
    mut model: ResMut<'_, crate::gpu::resident::GpuModel>,
    failures: Res<'_, crate::graph::Failures>,
) {
    let model = &mut *model;
    let ctx = std::sync::Arc::clone(&model.ctx);
    let mut run = || {
        let mut ops = crate::linalg_gpu::Ops::new(&ctx, "adam")?;
        model
            .adam
            .step(ops.submission(), &model.params, &model.grads)?;
        ops.finish(&[])
    };
    if let Err(e) = run() {
        failures.report("adam", e);
    }
}

/// The Adam stage (Step schedule).
#[derive(Debug, Clone, Copy, Default)]
pub struct AdamStage;

impl Stage for AdamStage {
    fn info(&self) -> StageInfo {
        StageInfo {
            name: "adam",
            phase: Phase::Optimize,
            reads: &["Grads"],
            writes: &["Params", "Adam"],
            grad: Grad::Detached,
            about: "Adam with L2 weight decay; zeroes the gradients",
        }
    }

    fn build(&self, graph: &mut StageGraph) {
        add_cpu_gpu!(graph, Step, Phase::Optimize, adam_step, adam_step_gpu);
    }

    fn resident(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two steps by hand, as torch.optim.Adam(lr=0.1, weight_decay=0.01) computes them.
    #[test]
    fn matches_torch_adam_by_hand() {
        let mut p = ParamSet::default();
        p.push("w", vec![1], vec![1.0]);
        let mut g = p.zeros_like();
        g.tensors[0].data[0] = 0.5;
        let cfg = AdamConfig {
            lr: 0.1,
            weight_decay: 0.01,
            ..AdamConfig::default()
        };
        let mut adam = Adam::new(cfg, &p);
        adam.step(&mut p, &g);
        // g' = 0.51; m = 0.051; v = 0.00026010; step 1: p -= 0.1·(0.051/0.1)/(sqrt(v)/sqrt(0.001)+1e-8) = 0.1
        assert!((p.tensors[0].data[0] - 0.9).abs() < 1e-6);
        adam.step(&mut p, &g);
        let (g2, b1, b2) = (0.5f64 + 0.01 * 0.9, 0.9f64, 0.999f64);
        let m = b1 * 0.051 + (1.0 - b1) * g2;
        let v = b2 * 0.51f64.powi(2) * 0.001 + (1.0 - b2) * g2 * g2;
        let want = 0.9 - (0.1 / (1.0 - b1 * b1)) * m / (v.sqrt() / (1.0 - b2 * b2).sqrt() + 1e-8);
        assert!((p.tensors[0].data[0] as f64 - want).abs() < 1e-6);
    }
}
