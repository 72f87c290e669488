//! The refinement kernel on the GPU, beside the CPU reference [`super::kernel`]:
//! F_R = normalize(F + softmax(F Sᵀ / (τ_ca·√d)) S), forward and backward, composed of the
//! kernels of [`crate::linalg_gpu`].
//!
//! Contract: the same as [`super::kernel::forward`] and [`super::kernel::backward`] applied to
//! each of a batch of videos, on [`GpuMat`]s: F is B·N×d, S is B·K′×d (each video's segments) or
//! K′×d (A, shared). Nothing is read back.
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

/// The items of S: `batch` stacked K′×d blocks (the decoder's segments, one per video) or one
/// block every video shares (A).
fn stacked(s: &GpuMat, batch: usize, kk: usize) -> bool {
    batch > 1 && s.rows == batch * kk
}

/// F_R and the cache for `batch` videos of the same padded length: F is B·N×d, S holds `kk`
/// rows per video (stacked) or `kk` rows shared by all.
pub fn forward(
    ops: &mut Ops<'_>,
    f: &GpuMat,
    s: &GpuMat,
    (batch, kk): (usize, usize),
    tau_ca: f32,
) -> Result<GpuRefineCache, GpuError> {
    let (d, n) = (f.cols, f.rows / batch.max(1));
    let w = ops.zeros("refine weights", f.rows, kk)?;
    ops.gemm_batched(
        batch,
        (n, d, kk),
        scale(tau_ca, d),
        f,
        Op::N,
        s,
        Op::T,
        0.0,
        &w,
    )?;
    ops.softmax(&w)?;
    let y = ops.copy(f)?;
    ops.gemm_batched(batch, (n, kk, d), 1.0, &w, Op::N, s, Op::N, 1.0, &y)?;
    let (out, norms) = ops.normalize(&y)?;
    Ok(GpuRefineCache { w, out, norms })
}

/// (dF, dS) from dF_R; dS has the shape of S (a shared S gets the sum over the videos).
pub fn backward(
    ops: &mut Ops<'_>,
    f: &GpuMat,
    s: &GpuMat,
    cache: &GpuRefineCache,
    dout: &GpuMat,
    (batch, kk): (usize, usize),
    tau_ca: f32,
) -> Result<(GpuMat, GpuMat), GpuError> {
    let (d, n) = (f.cols, f.rows / batch.max(1));
    let scale = scale(tau_ca, d);
    let dy = ops.normalize_backward(&cache.out, &cache.norms, dout)?;
    let df = ops.copy(&dy)?;
    let ds = ops.zeros("refine dS", s.rows, s.cols)?;
    // Y = F + W S: dW = dY Sᵀ, dS += Wᵀ dY
    let dw = ops.zeros("refine dW", f.rows, kk)?;
    ops.gemm_batched(batch, (n, d, kk), 1.0, &dy, Op::N, s, Op::T, 0.0, &dw)?;
    // W = softmax(scale F Sᵀ)
    let dz = ops.softmax_backward(&cache.w, &dw)?;
    ops.gemm_batched(batch, (n, kk, d), scale, &dz, Op::N, s, Op::N, 1.0, &df)?;
    if stacked(s, batch, kk) {
        ops.gemm_batched(
            batch,
            (kk, n, d),
            1.0,
            &cache.w,
            Op::T,
            &dy,
            Op::N,
            1.0,
            &ds,
        )?;
        ops.gemm_batched(batch, (kk, n, d), scale, &dz, Op::T, f, Op::N, 1.0, &ds)?;
    } else {
        // one S for every video: its gradient sums over all rows
        ops.gemm(1.0, &cache.w, Op::T, &dy, Op::N, 1.0, &ds)?;
        ops.gemm(scale, &dz, Op::T, f, Op::N, 1.0, &ds)?;
    }
    Ok((df, ds))
}
