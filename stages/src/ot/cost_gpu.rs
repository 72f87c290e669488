//! The cosine cost and the temporal prior as a WGSL kernel (`cost.wgsl`), beside the CPU
//! [`super::cost::cosine_cost`] and [`super::cost::add_temporal_prior`]: C = 1 − F Aᵀ +
//! ρ·|i/N − j/K| for a batch of videos padded to N rows, one invocation per cell, the dot product
//! serial over d. [`super::asot_gpu::solve_embeddings`] dispatches it in front of the solver, so
//! that the cost never leaves the GPU before the solve.
//!
//! Tolerance: the CPU's matrix product sums in another order, so the costs agree to rounding:
//! at most 1e-5 absolute for unit-norm embeddings (`tests/gpu_parity.rs`). Cost: O(B·N·K·d).

use std::sync::Arc;

use crate::gpu::{Binding, GpuContext, GpuError, Kernel};

const WORKGROUP: usize = 64;

/// `Params` of `cost.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    b: u32,
    n: u32,
    k: u32,
    d: u32,
    rho: f32,
    pad: [u32; 3],
}

impl Params {
    /// `None` when an index would not fit the shader's u32 arithmetic.
    pub(crate) fn new(b: usize, n: usize, k: usize, d: usize, rho: f32) -> Option<Params> {
        let cells = b.checked_mul(n)?.checked_mul(k.max(d))?;
        u32::try_from(cells).ok()?;
        Some(Params {
            b: b as u32,
            n: n as u32,
            k: k as u32,
            d: d as u32,
            rho,
            pad: [0; 3],
        })
    }
}

/// The compiled kernel (once per process).
pub(crate) fn kernel(ctx: &GpuContext) -> Result<Arc<Kernel>, GpuError> {
    ctx.kernel(
        "ot/cost.wgsl",
        include_str!("cost.wgsl"),
        &[
            Binding::Uniform,
            Binding::Read,
            Binding::Read,
            Binding::ReadWrite,
        ],
        &["cosine_prior"],
        &[("workgroup_size", WORKGROUP as f64)],
    )
}
