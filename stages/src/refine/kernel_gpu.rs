//! The refinement kernel on the GPU, beside the CPU reference [`super::kernel`]:
//! F_R = normalize(F + softmax(F Sᵀ / (τ_ca·√d)) S), forward and backward, composed of the
//! kernels of [`crate::linalg_gpu`].
//!
//! Contract: the same as [`super::kernel::forward`] and [`super::kernel::backward`] for one
//! video, on [`GpuMat`]s: F is N×d, S is K′×d. Nothing is read back.
//!
//! Tolerance: the products and softmax sums run in another order than on the CPU, so F_R agrees
//! to 1e-5 absolute and dF, dS to 1e-4 relative to their largest entry (`tests/gpu_parity.rs`).
//! Cost O(N·K′·d): two products forward, four backward.

use crate::gpu::GpuError;
use crate::linalg::Op;
use crate::linalg_gpu::{GpuMat, Ops};

/// What backward needs (as [`super::kernel::RefineCache`]).
#[derive(Debug, Clone)]
pub struct GpuRefineCache {
    /// The attention weights, N×K′.
    pub w: GpuMat,
    /// F_R, N×d.
    pub out: GpuMat,
    pub norms: GpuMat,
}

fn scale(tau_ca: f32, d: usize) -> f32 {
    1.0 / (tau_ca * (d as f32).sqrt())
}

/// F_R and the cache.
pub fn forward(
    ops: &mut Ops<'_>,
    f: &GpuMat,
    s: &GpuMat,
    tau_ca: f32,
) -> Result<GpuRefineCache, GpuError> {
    let w = ops.zeros("refine weights", f.rows, s.rows)?;
    ops.gemm(scale(tau_ca, f.cols), f, Op::N, s, Op::T, 0.0, &w)?;
    ops.softmax(&w)?;
    let y = ops.copy(f)?;
    ops.gemm(1.0, &w, Op::N, s, Op::N, 1.0, &y)?;
    let (out, norms) = ops.normalize(&y)?;
    Ok(GpuRefineCache { w, out, norms })
}

/// (dF, dS) from dF_R.
pub fn backward(
    ops: &mut Ops<'_>,
    f: &GpuMat,
    s: &GpuMat,
    cache: &GpuRefineCache,
    dout: &GpuMat,
    tau_ca: f32,
) -> Result<(GpuMat, GpuMat), GpuError> {
    let scale = scale(tau_ca, f.cols);
    let dy = ops.normalize_backward(&cache.out, &cache.norms, dout)?;
    let df = ops.copy(&dy)?;
    let ds = ops.zeros("refine dS", s.rows, s.cols)?;
    // Y = F + W S: dW = dY Sᵀ, dS += Wᵀ dY
    let dw = ops.zeros("refine dW", f.rows, s.rows)?;
    ops.gemm(1.0, &dy, Op::N, s, Op::T, 0.0, &dw)?;
    ops.gemm(1.0, &cache.w, Op::T, &dy, Op::N, 1.0, &ds)?;
    // W = softmax(scale F Sᵀ)
    let dz = ops.softmax_backward(&cache.w, &dw)?;
    ops.gemm(scale, &dz, Op::N, s, Op::N, 1.0, &df)?;
    ops.gemm(scale, &dz, Op::T, f, Op::N, 1.0, &ds)?;
    Ok((df, ds))
}
