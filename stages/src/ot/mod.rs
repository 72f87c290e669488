//! Optimal transport: the ASOT solver used by OT1, OT2 and OT3, and the cost terms.
//!
//! * [`asot`]: fused KOT + temporal Gromov-Wasserstein, KL-relaxed action marginal, entropic
//!   projected mirror descent (SPEC §3), batched over videos.
//! * [`asot_gpu`] (feature `wgpu`): the same solver as WGSL kernels (`asot.wgsl`).
//! * [`cost`]: the cosine cost 1 − F Aᵀ, the temporal prior ρ·|i/N − k/K| and the sliced
//!   Wasserstein cost (SPEC §2).

pub mod asot;
#[cfg(feature = "wgpu")]
pub mod asot_gpu;
pub mod cost;
#[cfg(feature = "wgpu")]
pub mod cost_gpu;
pub mod simd;
#[cfg(feature = "wgpu")]
pub mod swd_gpu;

pub use asot::{AsotParams, OtError, StepSize, objective, solve, solve_batch};
pub mod stage;

/// [`solve_batch`] on the resolved device: the CPU reference or the WGSL kernels
/// ([`asot_gpu`]).
pub fn solve_batch_on(
    compute: &crate::gpu::Compute,
    costs: &[f32],
    b: usize,
    n: usize,
    k: usize,
    valid: &[usize],
    p: &AsotParams,
) -> Result<Vec<f32>, OtError> {
    match compute {
        crate::gpu::Compute::Cpu => solve_batch(costs, b, n, k, valid, p),
        #[cfg(feature = "wgpu")]
        crate::gpu::Compute::Wgpu(ctx) => asot_gpu::solve_batch(ctx, costs, b, n, k, valid, p),
    }
}
