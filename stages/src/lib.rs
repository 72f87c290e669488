//! The stage framework and the numeric stages of clot. Each stage is one module: a CPU reference
//! kernel (wgpu versions come behind the `wgpu` feature) and the systems that run it in a
//! [`graph::StageGraph`].
//!
//! Framework: [`graph`] (phases, schedules, `Stage`, `StageInfo`), [`batch`] (the batch, run
//! settings and per-batch components), [`params`] (named tensors: parameters, gradients).
//!
//! Stages, in forward order: [`load`] (sampling, standardisation), [`actions`] (A re-normalised),
//! [`encode`] (MLP), [`dispatch`] (feature dispatching), [`ot::stage`] (OT1 with the SWD term,
//! OT2, OT3), [`decode`] (the parallel decoder), [`refine`] (cross-attention refinement), [`loss`]
//! (the three cross-entropies), [`predict`] (argmax of the final plan), and [`optim`] (Adam, in
//! the Step schedule). Each differentiable stage has a `kernel` module with its forward and
//! hand-written backward, generic over f32/f64 and checked against finite differences.
//!
//! Also: [`ot`] (the ASOT solver and cost terms), [`eval`] (Hungarian matching, MoF, F1, mIoU),
//! [`kmeans`] (k-means++, initialises A), [`choose_k`] (K from the videos alone, `--actions auto`),
//! [`baselines`], [`sample`] and [`linalg`] (kernels; with the `wgpu` feature also `linalg_gpu`,
//! their WGSL versions, `optim_gpu`, Adam and the parameter set on the GPU, and each
//! differentiable stage's `kernel_gpu`),
//! [`record`] (the draw log that lets another implementation replay a run).

#![cfg_attr(test, allow(clippy::unwrap_used))]
// Docs link to the GPU items (`gpu::GpuContext`, `gpu::resident`, `ot::asot_gpu`, the
// `kernel_gpu` modules), which exist only with the `wgpu` feature: a CPU-only doc build keeps the
// text and drops those links instead of failing.
#![cfg_attr(not(feature = "wgpu"), allow(rustdoc::broken_intra_doc_links))]

pub mod actions;
pub mod baselines;
pub mod batch;
pub mod choose_k;
pub mod decode;
pub mod dispatch;
pub mod encode;
pub mod eval;
pub mod gpu;
pub mod graph;
pub mod kmeans;
pub mod linalg;
#[cfg(feature = "wgpu")]
pub mod linalg_gpu;
pub mod load;
pub mod loss;
pub mod numpy_rng;
pub mod optim;
#[cfg(feature = "wgpu")]
pub mod optim_gpu;
pub mod ot;
pub mod params;
pub mod predict;
pub mod record;
pub mod refine;
pub mod sample;

/// One import for users writing or assembling stages.
pub mod prelude {
    pub use crate::batch::{Batch, Input, LossValue, ModelConfig, Prediction, RunRng, VideoIndex};
    pub use crate::graph::{
        Backward, Device, Failures, Forward, Grad, Phase, Stage, StageError, StageGraph, StageInfo,
        Step,
    };
    pub use crate::params::{Grads, ParamSet, Params};
    pub use clot_schemas::prelude::*;
}
