//! The cross-entropy kernel of SPEC §2, forward and backward, generic over f32/f64:
//!
//! P = softmax(F Aᵀ / τ),  CE = −(1/rows) Σ_i mask_i Σ_k T_ik log(P_ik + 1e-11)
//!
//! with T the (detached) plan. `rows` is the number of rows of the whole batch, padded ones
//! included: the reference takes the mean over B×N after masking. The backward is the exact
//! gradient of that formula (the 1e-11 included): with g_k = −T_k / (P_k + 1e-11) per row,
//! dZ_j = P_j (g_j − Σ_k g_k P_k). Shapes: F N×d, A K×d, T and P N×K. Cost O(N·K·d).

use crate::linalg::{Op, Real, gemm};

/// The constant inside the log.
pub const LOG_EPS: f64 = 1e-11;

/// Row-wise softmax of Z/τ with Z = F Aᵀ: returns P (N×K).
pub fn probabilities<R: Real>(f: &[R], a: &[R], n: usize, k: usize, d: usize, tau: R) -> Vec<R> {
    let mut z = vec![R::zero(); n * k];
    gemm(
        n,
        d,
        k,
        R::one() / tau,
        f,
        Op::N,
        a,
        Op::T,
        R::zero(),
        &mut z,
    );
    for row in z.chunks_exact_mut(k) {
        let m = row.iter().fold(R::neg_infinity(), |m, &v| m.max(v));
        let mut s = R::zero();
        for v in row.iter_mut() {
            *v = (*v - m).exp();
            s = s + *v;
        }
        row.iter_mut().for_each(|v| *v = *v / s);
    }
    z
}

/// The loss of one video given P: −(1/rows) Σ_i mask_i Σ_k T_ik log(P_ik + 1e-11).
pub fn loss<R: Real>(p: &[R], t: &[R], mask: &[bool], k: usize, rows: usize) -> R {
    let eps = R::c(LOG_EPS);
    let mut total = 0.0f64;
    for ((pr, tr), &m) in p.chunks_exact(k).zip(t.chunks_exact(k)).zip(mask) {
        if m {
            let s: R = pr
                .iter()
                .zip(tr)
                .map(|(&pv, &tv)| tv * (pv + eps).ln())
                .sum();
            total += s.to_f64().unwrap_or(f64::NAN);
        }
    }
    R::c(-total / rows as f64)
}

/// Backward of one video's loss: accumulates dL/dF (N×d) into `df` and dL/dA (K×d) into `da`.
#[allow(clippy::too_many_arguments)]
pub fn backward<R: Real>(
    f: &[R],
    a: &[R],
    p: &[R],
    t: &[R],
    mask: &[bool],
    (n, k, d): (usize, usize, usize),
    tau: R,
    rows: usize,
    df: &mut [R],
    da: &mut [R],
) {
    let eps = R::c(LOG_EPS);
    let scale = R::one() / R::c(rows as f64);
    // dZ for Z = F Aᵀ / τ, row by row
    let mut dz = vec![R::zero(); n * k];
    for (((dzr, pr), tr), &m) in dz
        .chunks_exact_mut(k)
        .zip(p.chunks_exact(k))
        .zip(t.chunks_exact(k))
        .zip(mask)
    {
        if !m {
            continue;
        }
        let mut gp = R::zero();
        for ((o, &pv), &tv) in dzr.iter_mut().zip(pr).zip(tr) {
            let g = -tv / (pv + eps) * scale;
            *o = g;
            gp = gp + g * pv;
        }
        for (o, &pv) in dzr.iter_mut().zip(pr) {
            *o = pv * (*o - gp) / tau;
        }
    }
    // dF += dZ A;  dA += dZᵀ F
    gemm(n, k, d, R::one(), &dz, Op::N, a, Op::N, R::one(), df);
    gemm(k, n, d, R::one(), &dz, Op::T, f, Op::N, R::one(), da);
}
