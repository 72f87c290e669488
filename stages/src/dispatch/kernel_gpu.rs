//! The feature-dispatching kernel on the GPU, beside the CPU reference [`super::kernel`]:
//! FD(E, A) forward and backward for a batch of B videos padded to N rows, composed of the
//! kernels of [`crate::linalg_gpu`]; α and β are read on the GPU (1×1 matrices of the resident
//! parameters), so nothing comes back.
//!
//! Contract: as [`super::kernel::forward`] and [`super::kernel::backward`] applied to each video
//! (the aggregation c_k sums over the video's own rows, padded ones included, as the CPU does);
//! E is B·N×d, A is K×d. The backward accumulates dA, dα and dβ into the gradient matrices given.
//!
//! Tolerance: the products sum in another order than sgemm, and WGSL's `exp` is not the CPU's:
//! FD agrees to 1e-5 and the gradients to 1e-4 relative to their largest entry
//! (`tests/gpu_parity.rs`). A frame whose two best similarities tie to rounding may pick another
//! winner than on the CPU; the tests use inputs without such ties. Cost O(B·N·K·d): three
//! products forward, seven backward.

use crate::gpu::GpuError;
use crate::linalg::Op;
use crate::linalg_gpu::{GpuMat, Ops};

/// What backward needs (as [`super::kernel::DispatchCache`]).
#[derive(Debug, Clone)]
pub struct GpuDispatchCache {
    /// s, B·N×K.
    pub s: GpuMat,
    /// s on each frame's winning action, 0 elsewhere, B·N×K.
    pub winner_s: GpuMat,
    /// c, B·K×d.
    pub c: GpuMat,
    /// Σ_t m_kt + 1, B·K×1.
    pub denom: GpuMat,
}

/// FD(E, A) (B·N×d) and the cache, for `batch` videos of the same padded length.
pub fn forward(
    ops: &mut Ops<'_>,
    e: &GpuMat,
    a: &GpuMat,
    batch: usize,
    alpha: &GpuMat,
    beta: &GpuMat,
) -> Result<(GpuMat, GpuDispatchCache), GpuError> {
    let (k, d) = (a.rows, a.cols);
    let n = e.rows / batch.max(1);
    let s = ops.zeros("dispatch s", e.rows, k)?;
    ops.gemm(1.0, e, Op::N, a, Op::T, 0.0, &s)?;
    ops.sigmoid_affine(&s, alpha, beta)?;
    let (winner_s, onehot) = ops.argmax_mask(&s)?;
    // c = ((M∘S)ᵀ E + A) / denom per video
    let c = ops.tile(a, batch)?;
    ops.gemm_batched(batch, (k, n, d), 1.0, &winner_s, Op::T, e, Op::N, 1.0, &c)?;
    let denom = ops.filled("dispatch denominators", batch, k, 1.0)?;
    let ones = ops.filled("ones", 1, n, 1.0)?;
    ops.gemm_batched(
        batch,
        (1, n, k),
        1.0,
        &ones,
        Op::N,
        &onehot,
        Op::N,
        1.0,
        &denom,
    )?;
    let denom = GpuMat {
        rows: batch * k,
        cols: 1,
        ..denom
    };
    ops.div_rows(&c, &denom)?;
    let out = ops.copy(e)?;
    ops.gemm_batched(batch, (n, k, d), 1.0, &s, Op::N, &c, Op::N, 1.0, &out)?;
    Ok((
        out,
        GpuDispatchCache {
            s,
            winner_s,
            c,
            denom,
        },
    ))
}

/// dL/dE from dL/dFD; dA, dα and dβ accumulate into `da` (K×d), `dalpha` and `dbeta` (1×1).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    ops: &mut Ops<'_>,
    e: &GpuMat,
    a: &GpuMat,
    cache: &GpuDispatchCache,
    dout: &GpuMat,
    batch: usize,
    alpha: &GpuMat,
    (da, dalpha, dbeta): (&GpuMat, &GpuMat, &GpuMat),
) -> Result<GpuMat, GpuError> {
    let (k, d) = (a.rows, a.cols);
    let n = e.rows / batch.max(1);
    let GpuDispatchCache {
        s,
        winner_s,
        c,
        denom,
    } = cache;
    // direct path
    let de = ops.copy(dout)?;
    // redistribution: ds = G Cᵀ (N×K), dC = Sᵀ G (K×d), per video
    let ds = ops.zeros("dispatch ds", e.rows, k)?;
    ops.gemm_batched(batch, (n, d, k), 1.0, dout, Op::N, c, Op::T, 0.0, &ds)?;
    let dc = ops.zeros("dispatch dc", batch * k, d)?;
    ops.gemm_batched(batch, (k, n, d), 1.0, s, Op::T, dout, Op::N, 0.0, &dc)?;
    ops.div_rows(&dc, denom)?;
    // dA += Σ_videos dc
    let ones = ops.filled("ones", 1, batch, 1.0)?;
    let dc_rows = GpuMat {
        rows: batch,
        cols: k * d,
        ..dc.clone()
    };
    let da_row = GpuMat {
        rows: 1,
        cols: k * d,
        ..da.clone()
    };
    ops.gemm(1.0, &ones, Op::N, &dc_rows, Op::N, 1.0, &da_row)?;
    // the winner's path: ds_tw += ⟨dc_w, E_t⟩, dE_t += s_wt dc_w
    let dots = ops.zeros("dispatch dots", e.rows, k)?;
    ops.gemm_batched(batch, (n, d, k), 1.0, e, Op::N, &dc, Op::T, 0.0, &dots)?;
    let (_, onehot) = ops.argmax_mask(s)?;
    ops.mul_add(&onehot, &dots, &ds)?;
    ops.gemm_batched(batch, (n, k, d), 1.0, winner_s, Op::N, &dc, Op::N, 1.0, &de)?;
    // through the sigmoid: dz = ds s (1 − s), z = β + α ⟨A_k, E_t⟩
    let dz = ds;
    ops.sigmoid_backward(s, &dz)?;
    let sim = ops.zeros("dispatch similarities", e.rows, k)?;
    ops.gemm(1.0, e, Op::N, a, Op::T, 0.0, &sim)?;
    let prod = ops.zeros("dz ∘ similarities", e.rows, k)?;
    ops.mul_add(&dz, &sim, &prod)?;
    let g_alpha = ops.sum(&prod, 1.0)?;
    let g_beta = ops.sum(&dz, 1.0)?;
    ops.axpy(1.0, &g_alpha, dalpha)?;
    ops.axpy(1.0, &g_beta, dbeta)?;
    // dE += α dz A;  dA += α dzᵀ E
    ops.scale_by(&dz, alpha)?;
    ops.gemm(1.0, &dz, Op::N, a, Op::N, 1.0, &de)?;
    ops.gemm(1.0, &dz, Op::T, e, Op::N, 1.0, da)?;
    Ok(de)
}
