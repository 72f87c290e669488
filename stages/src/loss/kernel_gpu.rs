//! The cross-entropy kernel on the GPU, beside the CPU reference [`super::kernel`]:
//! P = softmax(F Aᵀ / τ), CE = −(1/rows) Σ_i mask_i Σ_k T_ik log(P_ik + 1e-11), and its exact
//! gradient, composed of the kernels of [`crate::linalg_gpu`].
//!
//! Contract: the same as [`super::kernel::probabilities`], [`super::kernel::loss`] and
//! [`super::kernel::backward`] for one video, on [`GpuMat`]s: F is N×d, A is K×d, T and P are
//! N×K, the mask is N×1 (1 for a real frame, 0 for padding). The loss stays on the GPU as a 1×1
//! matrix (a training step reads back only such scalars).
//!
//! Tolerance: P agrees with the CPU to 1e-6 absolute, the loss to 1e-5 relative (the CPU sums
//! the rows in f64, the GPU in f32 in a fixed tree), dF and dA to 1e-4 relative to their largest
//! entry (`tests/gpu_parity.rs`). Cost O(N·K·d).

use crate::gpu::GpuError;
use crate::linalg::Op;
use crate::linalg_gpu::{GpuMat, Ops};

/// P = softmax(F Aᵀ / τ), N×K.
pub fn probabilities(
    ops: &mut Ops<'_>,
    f: &GpuMat,
    a: &GpuMat,
    tau: f32,
) -> Result<GpuMat, GpuError> {
    let p = ops.zeros("probabilities", f.rows, a.rows)?;
    ops.gemm(1.0 / tau, f, Op::N, a, Op::T, 0.0, &p)?;
    ops.softmax(&p)?;
    Ok(p)
}

/// The loss of one video given P (1×1).
pub fn loss(
    ops: &mut Ops<'_>,
    p: &GpuMat,
    t: &GpuMat,
    mask: &GpuMat,
    rows: usize,
) -> Result<GpuMat, GpuError> {
    let per_row = ops.ce_rows(p, t, mask)?;
    ops.sum(&per_row, -1.0 / rows as f32)
}

/// Backward of one video's loss: accumulates dL/dF (N×d) into `df` and dL/dA (K×d) into `da`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    ops: &mut Ops<'_>,
    f: &GpuMat,
    a: &GpuMat,
    p: &GpuMat,
    t: &GpuMat,
    mask: &GpuMat,
    tau: f32,
    rows: usize,
    df: &GpuMat,
    da: &GpuMat,
) -> Result<(), GpuError> {
    let dz = ops.ce_backward(p, t, mask, tau, 1.0 / rows as f32)?;
    ops.gemm(1.0, &dz, Op::N, a, Op::N, 1.0, df)?;
    ops.gemm(1.0, &dz, Op::T, f, Op::N, 1.0, da)?;
    Ok(())
}
