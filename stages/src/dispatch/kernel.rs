//! The feature-dispatching kernel (SPEC §2, as the released code computes it), forward and
//! backward, generic over f32/f64:
//!
//! s_kt = sigmoid(β + α⟨A_k, E_t⟩),  m_kt = [k = argmax_k s_kt] (no gradient),
//! c_k = (Σ_t m_kt s_kt E_t + A_k) / (Σ_t m_kt + 1),  FD_t = E_t + Σ_k s_kt c_k.
//!
//! Like the released code, aggregation and redistribution run over every row, padded ones
//! included. Only N×K and K×d matrices are formed: the aggregation is (M∘S)ᵀE and the
//! redistribution S C, two N×K×d matrix products; never a K×N×d tensor. Shapes: E N×d, A K×d.

use crate::linalg::{Op, Real, argmax, gemm};

/// What backward needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchCache<R> {
    /// s, N×K (frames in rows).
    pub s: Vec<R>,
    /// The argmax action of each frame.
    pub winner: Vec<usize>,
    /// c, K×d.
    pub c: Vec<R>,
    /// Σ_t m_kt + 1 per action.
    pub denom: Vec<R>,
}

fn sigmoid<R: Real>(x: R) -> R {
    R::one() / (R::one() + (-x).exp())
}

/// FD(E, A) (N×d) and the cache.
pub fn forward<R: Real>(
    e: &[R],
    a: &[R],
    (n, k, d): (usize, usize, usize),
    alpha: R,
    beta: R,
) -> (Vec<R>, DispatchCache<R>) {
    let mut s = vec![R::zero(); n * k];
    gemm(n, d, k, alpha, e, Op::N, a, Op::T, R::zero(), &mut s);
    s.iter_mut().for_each(|v| *v = sigmoid(beta + *v));
    let winner: Vec<usize> = s.chunks_exact(k).map(argmax).collect();
    // (M∘S) as N×K, then c = ((M∘S)ᵀ E + A) / denom
    let mut ms = vec![R::zero(); n * k];
    let mut denom = vec![R::one(); k];
    for (t, &w) in winner.iter().enumerate() {
        ms[t * k + w] = s[t * k + w];
        denom[w] = denom[w] + R::one();
    }
    let mut c = a.to_vec();
    gemm(k, n, d, R::one(), &ms, Op::T, e, Op::N, R::one(), &mut c);
    for (row, &q) in c.chunks_exact_mut(d).zip(&denom) {
        row.iter_mut().for_each(|v| *v = *v / q);
    }
    let mut out = e.to_vec();
    gemm(n, k, d, R::one(), &s, Op::N, &c, Op::N, R::one(), &mut out);
    (
        out,
        DispatchCache {
            s,
            winner,
            c,
            denom,
        },
    )
}

/// Gradients of FD: returns (dE, dA, dα, dβ) from dFD (N×d).
#[allow(clippy::type_complexity)]
pub fn backward<R: Real>(
    e: &[R],
    a: &[R],
    cache: &DispatchCache<R>,
    dout: &[R],
    (n, k, d): (usize, usize, usize),
    alpha: R,
) -> (Vec<R>, Vec<R>, R, R) {
    let DispatchCache {
        s,
        winner,
        c,
        denom,
    } = cache;
    // direct path
    let mut de = dout.to_vec();
    // redistribution: ds = G Cᵀ (N×K); dC = Sᵀ G (K×d)
    let mut ds = vec![R::zero(); n * k];
    gemm(n, d, k, R::one(), dout, Op::N, c, Op::T, R::zero(), &mut ds);
    let mut dc = vec![R::zero(); k * d];
    gemm(k, n, d, R::one(), s, Op::T, dout, Op::N, R::zero(), &mut dc);
    // through c_k = (Σ m s E + A_k)/denom_k
    for (row, &q) in dc.chunks_exact_mut(d).zip(denom) {
        row.iter_mut().for_each(|v| *v = *v / q);
    }
    let mut da = dc.clone();
    // dE_t += s_{w t} dc_w / denom (already divided); ds_{w t} += ⟨dc_w, E_t⟩
    let mut msk = vec![R::zero(); n * k];
    for (t, &w) in winner.iter().enumerate() {
        msk[t * k + w] = s[t * k + w];
        let dcw = &dc[w * d..(w + 1) * d];
        let et = &e[t * d..(t + 1) * d];
        let dot: R = dcw.iter().zip(et).map(|(&x, &y)| x * y).sum();
        ds[t * k + w] = ds[t * k + w] + dot;
    }
    gemm(
        n,
        k,
        d,
        R::one(),
        &msk,
        Op::N,
        &dc,
        Op::N,
        R::one(),
        &mut de,
    );
    // through the sigmoid: dz = ds s (1 − s); z = β + α ⟨A_k, E_t⟩
    let mut dalpha = R::zero();
    let mut dbeta = R::zero();
    let mut dz = ds;
    let mut dots = vec![R::zero(); n * k];
    gemm(n, d, k, R::one(), e, Op::N, a, Op::T, R::zero(), &mut dots);
    for ((g, &sv), &dot) in dz.iter_mut().zip(s).zip(&dots) {
        *g = *g * sv * (R::one() - sv);
        dalpha = dalpha + *g * dot;
        dbeta = dbeta + *g;
    }
    gemm(n, k, d, alpha, &dz, Op::N, a, Op::N, R::one(), &mut de);
    gemm(k, n, d, alpha, &dz, Op::T, e, Op::N, R::one(), &mut da);
    (de, da, dalpha, dbeta)
}
