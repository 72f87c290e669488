//! The encoder kernel on the GPU, beside the CPU reference [`super::kernel`]: E =
//! normalize(MLP(X)) forward and backward, composed of the kernels of [`crate::linalg_gpu`].
//!
//! Contract: the same as [`super::kernel::forward`] and [`super::kernel::backward`], on
//! [`GpuMat`]s: X is N×D (the rows of every video of a batch at once, since the MLP is row-wise),
//! each layer's W is out×in and b is 1×out, E is N×d. The backward accumulates dW and db into the
//! gradient matrices given (the tensors of a [`crate::optim_gpu::GpuParamSet`]), as the CPU
//! accumulates into its gradient set. Nothing is read back.
//!
//! Tolerance: the products sum in another order than sgemm, so E agrees with the CPU to 1e-5
//! absolute and the gradients to 1e-4 relative to their largest entry (`tests/gpu_parity.rs`).
//! Cost: O(N · Σ fan_in·fan_out) per pass, one product per layer forward, two backward.

use crate::gpu::GpuError;
use crate::linalg::Op;
use crate::linalg_gpu::{GpuMat, Ops};
use crate::optim_gpu::GpuParamSet;

use super::{bias_name, weight_name};

/// One Linear layer on the GPU: `w` out×in, `b` 1×out.
#[derive(Debug, Clone)]
pub struct GpuLinear {
    pub w: GpuMat,
    pub b: GpuMat,
}

/// The MLP layers for `widths` (input first) in a resident parameter set (or its gradients),
/// or the name of a missing or mis-sized tensor (as [`super::layers`]).
pub fn layers(set: &GpuParamSet, widths: &[usize]) -> Result<Vec<GpuLinear>, String> {
    widths
        .windows(2)
        .enumerate()
        .map(|(l, w)| {
            let get = |name: String, rows: usize, cols: usize| match set.get(&name) {
                Some(m) if m.len() == rows * cols => Ok(GpuMat { rows, cols, ..m }),
                Some(m) => Err(format!(
                    "{name} has {} values, expected {}",
                    m.len(),
                    rows * cols
                )),
                None => Err(format!("missing parameter {name}")),
            };
            Ok(GpuLinear {
                w: get(weight_name(l), w[1], w[0])?,
                b: get(bias_name(l), 1, w[1])?,
            })
        })
        .collect()
}

/// What the backward pass needs from the forward pass (as [`super::kernel::MlpCache`]).
#[derive(Debug, Clone)]
pub struct GpuMlpCache {
    /// The input of each layer (X, then the post-ReLU activations).
    pub acts: Vec<GpuMat>,
    /// E, N×d.
    pub out: GpuMat,
    /// ‖MLP(X)_i‖ before normalisation, N×1.
    pub norms: GpuMat,
}

/// Forward pass over the rows of `x`.
pub fn forward(
    ops: &mut Ops<'_>,
    layers: &[GpuLinear],
    x: &GpuMat,
) -> Result<GpuMlpCache, GpuError> {
    let mut acts = Vec::with_capacity(layers.len());
    let mut h = x.clone();
    for (l, layer) in layers.iter().enumerate() {
        assert_eq!(h.cols, layer.w.cols, "encode layer {l}: input width");
        let y = ops.linear(&h, &layer.w, &layer.b)?;
        if l + 1 < layers.len() {
            ops.relu(&y)?;
        }
        acts.push(std::mem::replace(&mut h, y));
    }
    let (out, norms) = ops.normalize(&h)?;
    Ok(GpuMlpCache { acts, out, norms })
}

/// Backward pass: from dL/dE accumulates dL/dW and dL/db into `grads` (one per layer, shaped as
/// the layers); returns dL/dX when `want_dx`.
pub fn backward(
    ops: &mut Ops<'_>,
    layers: &[GpuLinear],
    cache: &GpuMlpCache,
    de: &GpuMat,
    grads: &[GpuLinear],
    want_dx: bool,
) -> Result<Option<GpuMat>, GpuError> {
    assert_eq!(
        layers.len(),
        grads.len(),
        "encode backward: one gradient per layer"
    );
    let mut dy = ops.normalize_backward(&cache.out, &cache.norms, de)?;
    for l in (0..layers.len()).rev() {
        let (layer, grad, input) = (&layers[l], &grads[l], &cache.acts[l]);
        // dW += dYᵀ X;  db += Σ_rows dY
        ops.gemm(1.0, &dy, Op::T, input, Op::N, 1.0, &grad.w)?;
        ops.col_sum_into(&dy, &grad.b)?;
        if l == 0 && !want_dx {
            return Ok(None);
        }
        let dx = ops.zeros("encode grad", input.rows, input.cols)?;
        ops.gemm(1.0, &dy, Op::N, &layer.w, Op::N, 0.0, &dx)?;
        if l > 0 {
            ops.relu_mask(input, &dx)?;
        }
        dy = dx;
    }
    Ok(Some(dy))
}
