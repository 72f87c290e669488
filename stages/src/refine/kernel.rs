//! The cross-attention refinement kernel (SPEC §2), forward and backward, generic over f32/f64:
//!
//! F_R = normalize(F + softmax(F Sᵀ / (τ_ca·√d)) S)
//!
//! F is N×d (frames), S is K′×d (segments, or A in the "without decoder" graph). No parameters;
//! gradients reach F and S. Cost O(N·K′·d).

use crate::linalg::{
    Op, Real, gemm, normalize_rows, normalize_rows_backward, softmax_rows, softmax_rows_backward,
};

/// What backward needs.
#[derive(Debug, Clone, PartialEq)]
pub struct RefineCache<R> {
    /// The attention weights, N×K′.
    pub w: Vec<R>,
    /// F_R, N×d.
    pub out: Vec<R>,
    pub norms: Vec<R>,
}

/// F_R and the cache.
pub fn forward<R: Real>(
    f: &[R],
    s: &[R],
    (n, kk, d): (usize, usize, usize),
    tau_ca: R,
) -> RefineCache<R> {
    let scale = R::one() / (tau_ca * R::c(d as f64).sqrt());
    let mut w = vec![R::zero(); n * kk];
    gemm(n, d, kk, scale, f, Op::N, s, Op::T, R::zero(), &mut w);
    softmax_rows(&mut w, kk);
    let mut out = f.to_vec();
    gemm(n, kk, d, R::one(), &w, Op::N, s, Op::N, R::one(), &mut out);
    let norms = normalize_rows(&mut out, d);
    RefineCache { w, out, norms }
}

/// (dF, dS) from dF_R.
pub fn backward<R: Real>(
    f: &[R],
    s: &[R],
    cache: &RefineCache<R>,
    dout: &[R],
    (n, kk, d): (usize, usize, usize),
    tau_ca: R,
) -> (Vec<R>, Vec<R>) {
    let scale = R::one() / (tau_ca * R::c(d as f64).sqrt());
    let dy = normalize_rows_backward(&cache.out, &cache.norms, dout, d);
    let mut df = dy.clone();
    let mut ds = vec![R::zero(); kk * d];
    // Y = F + W S: dW = dY Sᵀ, dS += Wᵀ dY
    let mut dw = vec![R::zero(); n * kk];
    gemm(n, d, kk, R::one(), &dy, Op::N, s, Op::T, R::zero(), &mut dw);
    gemm(
        kk,
        n,
        d,
        R::one(),
        &cache.w,
        Op::T,
        &dy,
        Op::N,
        R::one(),
        &mut ds,
    );
    // W = softmax(scale F Sᵀ)
    let dz = softmax_rows_backward(&cache.w, &dw, kk);
    gemm(n, kk, d, scale, &dz, Op::N, s, Op::N, R::one(), &mut df);
    gemm(kk, n, d, scale, &dz, Op::T, f, Op::N, R::one(), &mut ds);
    (df, ds)
}
