//! The encoder kernel: E = normalize(MLP(X)), forward and backward, generic over f32/f64.
//!
//! MLP = Linear → ReLU → … → Linear (no ReLU after the last), weights stored PyTorch-style
//! (`out×in`, y = x Wᵀ + b). Shapes: X is N×D, E is N×d. Cost: O(N · Σ fan_in·fan_out) per pass,
//! through sgemm/dgemm.

use crate::linalg::{Real, linear, linear_backward, normalize_rows, normalize_rows_backward};

/// One Linear layer's parameters, borrowed: `w` is out×in, `b` has `out` entries.
#[derive(Debug, Clone, Copy)]
pub struct LinearRef<'a, R> {
    pub w: &'a [R],
    pub b: &'a [R],
    pub fan_in: usize,
    pub fan_out: usize,
}

/// What the backward pass needs from the forward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpCache<R> {
    /// The input of each layer (X, then the post-ReLU activations), N×fan_in each.
    pub acts: Vec<Vec<R>>,
    /// The output E = normalize(MLP(X)), N×d.
    pub out: Vec<R>,
    /// ‖MLP(X)_i‖ before normalisation, N.
    pub norms: Vec<R>,
}

/// Forward pass over the N rows of `x` (N×fan_in of the first layer).
pub fn forward<R: Real>(layers: &[LinearRef<'_, R>], x: &[R], n: usize) -> MlpCache<R> {
    let mut acts = Vec::with_capacity(layers.len());
    let mut h = x.to_vec();
    for (l, layer) in layers.iter().enumerate() {
        let mut y = linear(&h, layer.w, layer.b, n, layer.fan_in, layer.fan_out);
        if l + 1 < layers.len() {
            y.iter_mut().for_each(|v| *v = v.max(R::zero()));
        }
        acts.push(std::mem::replace(&mut h, y));
    }
    let d = layers.last().map_or(0, |l| l.fan_out);
    let norms = normalize_rows(&mut h, d.max(1));
    MlpCache {
        acts,
        out: h,
        norms,
    }
}

/// Backward pass: from dL/dE (N×d) accumulates dL/dW and dL/db into `grads` (one `(dw, db)` per
/// layer, same shapes as the parameters). Returns dL/dX when `want_dx`.
pub fn backward<R: Real>(
    layers: &[LinearRef<'_, R>],
    cache: &MlpCache<R>,
    de: &[R],
    n: usize,
    grads: &mut [(&mut [R], &mut [R])],
    want_dx: bool,
) -> Option<Vec<R>> {
    let d = layers.last().map_or(1, |l| l.fan_out);
    let mut dy = normalize_rows_backward(&cache.out, &cache.norms, de, d);
    for l in (0..layers.len()).rev() {
        let layer = layers[l];
        let input = &cache.acts[l];
        let (dw, db) = &mut grads[l];
        let mut dx = linear_backward(
            input,
            layer.w,
            &dy,
            n,
            layer.fan_in,
            layer.fan_out,
            dw,
            db,
            l > 0 || want_dx,
        )?;
        if l > 0 {
            for (g, &a) in dx.iter_mut().zip(input) {
                if a <= R::zero() {
                    *g = R::zero();
                }
            }
        }
        dy = dx;
    }
    Some(dy)
}
