//! Dense row-major matrix products for the differentiable stages, generic over f32 (training) and
//! f64 (finite-difference gradient checks), through `matrixmultiply`'s tuned sgemm/dgemm.
//!
//! Shapes are row-major: an m×k matrix is `m*k` values with row stride k. Every product accumulates
//! into its output (`c = alpha·op(a)·op(b) + beta·c`), so backward passes can sum gradients of
//! several uses without temporaries. Cost O(m·n·k).

use num_traits::Float;

/// A float the stages compute in: f32 or f64.
pub trait Real: Float + Default + Send + Sync + std::fmt::Debug + std::iter::Sum + 'static {
    /// `c = alpha·a·b + beta·c` with explicit strides (matrixmultiply's convention).
    #[allow(clippy::too_many_arguments)]
    fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: &[Self],
        rsa: isize,
        csa: isize,
        b: &[Self],
        rsb: isize,
        csb: isize,
        beta: Self,
        c: &mut [Self],
    );

    /// From an f64 constant.
    fn c(x: f64) -> Self {
        <Self as num_traits::NumCast>::from(x).unwrap_or_else(Self::nan)
    }
}

macro_rules! real_impl {
    ($t:ty, $f:path) => {
        impl Real for $t {
            fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: &[Self],
                rsa: isize,
                csa: isize,
                b: &[Self],
                rsb: isize,
                csb: isize,
                beta: Self,
                c: &mut [Self],
            ) {
                assert!(c.len() >= m * n, "gemm output too small");
                if m == 0 || n == 0 {
                    return;
                }
                // the last element each operand's strides reach must be inside the slice
                let reach = |rows: usize, cols: usize, rs: isize, cs: isize| {
                    if rows == 0 || cols == 0 {
                        0
                    } else {
                        (rows - 1) * rs as usize + (cols - 1) * cs as usize + 1
                    }
                };
                assert!(a.len() >= reach(m, k, rsa, csa), "gemm: a too small");
                assert!(b.len() >= reach(k, n, rsb, csb), "gemm: b too small");
                #[allow(unsafe_code)]
                // SAFETY: the asserts above keep every index the strides reach inside `a`, `b`
                // and `c`; `c` is a unique borrow, so it cannot overlap `a` or `b`.
                unsafe {
                    $f(
                        m,
                        k,
                        n,
                        alpha,
                        a.as_ptr(),
                        rsa,
                        csa,
                        b.as_ptr(),
                        rsb,
                        csb,
                        beta,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
            }
        }
    };
}

real_impl!(f32, matrixmultiply::sgemm);
real_impl!(f64, matrixmultiply::dgemm);

/// Whether an operand is used as stored or transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// As stored.
    N,
    /// Transposed.
    T,
}

/// `c (m×n) = alpha·op(a)·op(b) + beta·c`, where op(a) is m×k and op(b) is k×n; `a` and `b` are
/// stored row-major in their own (untransposed) shapes.
#[allow(clippy::too_many_arguments)]
pub fn gemm<R: Real>(
    m: usize,
    k: usize,
    n: usize,
    alpha: R,
    a: &[R],
    ta: Op,
    b: &[R],
    tb: Op,
    beta: R,
    c: &mut [R],
) {
    let (rsa, csa) = match ta {
        Op::N => (k as isize, 1),
        Op::T => (1, m as isize),
    };
    let (rsb, csb) = match tb {
        Op::N => (n as isize, 1),
        Op::T => (1, k as isize),
    };
    R::gemm_raw(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c);
}

/// Rows divided by max(‖row‖₂, 1e-12), in place; returns the norms (before the clamp) for backward.
pub fn normalize_rows<R: Real>(x: &mut [R], d: usize) -> Vec<R> {
    let floor = R::c(1e-12);
    x.chunks_exact_mut(d)
        .map(|row| {
            let norm = row.iter().map(|&v| v * v).sum::<R>().sqrt();
            let s = norm.max(floor);
            row.iter_mut().for_each(|v| *v = *v / s);
            norm
        })
        .collect()
}

/// Backward of [`normalize_rows`]: given y = x / max(‖x‖, 1e-12), the norms and dL/dy, returns
/// dL/dx. Where ‖x‖ > 1e-12: dx = (dy − y·⟨y, dy⟩)/‖x‖; below the clamp: dx = dy / 1e-12.
pub fn normalize_rows_backward<R: Real>(y: &[R], norms: &[R], dy: &[R], d: usize) -> Vec<R> {
    let floor = R::c(1e-12);
    let mut dx = vec![R::zero(); y.len()];
    for (((yr, dyr), dxr), &norm) in y
        .chunks_exact(d)
        .zip(dy.chunks_exact(d))
        .zip(dx.chunks_exact_mut(d))
        .zip(norms)
    {
        if norm > floor {
            let dot: R = yr.iter().zip(dyr).map(|(&a, &b)| a * b).sum();
            for ((o, &yv), &g) in dxr.iter_mut().zip(yr).zip(dyr) {
                *o = (g - yv * dot) / norm;
            }
        } else {
            for (o, &g) in dxr.iter_mut().zip(dyr) {
                *o = g / floor;
            }
        }
    }
    dx
}

/// y (rows×out) = x (rows×in) Wᵀ + b, with W stored `out×in` (PyTorch's `nn.Linear`).
pub fn linear<R: Real>(
    x: &[R],
    w: &[R],
    b: &[R],
    rows: usize,
    fan_in: usize,
    fan_out: usize,
) -> Vec<R> {
    // the bias in every row (a flat_map would grow the vector element by element)
    let mut y: Vec<R> = Vec::with_capacity(rows * fan_out);
    for _ in 0..rows {
        y.extend_from_slice(b);
    }
    gemm(
        rows,
        fan_in,
        fan_out,
        R::one(),
        x,
        Op::N,
        w,
        Op::T,
        R::one(),
        &mut y,
    );
    y
}

/// Backward of [`linear`]: accumulates dW (out×in) and db, returns dx (rows×in) when asked.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward<R: Real>(
    x: &[R],
    w: &[R],
    dy: &[R],
    rows: usize,
    fan_in: usize,
    fan_out: usize,
    dw: &mut [R],
    db: &mut [R],
    want_dx: bool,
) -> Option<Vec<R>> {
    gemm(
        fan_out,
        rows,
        fan_in,
        R::one(),
        dy,
        Op::T,
        x,
        Op::N,
        R::one(),
        dw,
    );
    for row in dy.chunks_exact(fan_out) {
        for (g, &v) in db.iter_mut().zip(row) {
            *g = *g + v;
        }
    }
    want_dx.then(|| {
        let mut dx = vec![R::zero(); rows * fan_in];
        gemm(
            rows,
            fan_out,
            fan_in,
            R::one(),
            dy,
            Op::N,
            w,
            Op::N,
            R::zero(),
            &mut dx,
        );
        dx
    })
}

/// Row-wise softmax in place.
pub fn softmax_rows<R: Real>(z: &mut [R], cols: usize) {
    for row in z.chunks_exact_mut(cols) {
        let m = row.iter().fold(R::neg_infinity(), |m, &v| m.max(v));
        let mut s = R::zero();
        for v in row.iter_mut() {
            *v = (*v - m).exp();
            s = s + *v;
        }
        row.iter_mut().for_each(|v| *v = *v / s);
    }
}

/// Backward of a row-wise softmax W: dZ = W ∘ (dW − rowsum(dW ∘ W)).
pub fn softmax_rows_backward<R: Real>(w: &[R], dw: &[R], cols: usize) -> Vec<R> {
    let mut dz = vec![R::zero(); w.len()];
    for ((o, wr), dr) in dz
        .chunks_exact_mut(cols)
        .zip(w.chunks_exact(cols))
        .zip(dw.chunks_exact(cols))
    {
        let dot: R = wr.iter().zip(dr).map(|(&a, &b)| a * b).sum();
        for ((o, &a), &g) in o.iter_mut().zip(wr).zip(dr) {
            *o = a * (g - dot);
        }
    }
    dz
}

/// The index of the largest entry of `row` (the first one on ties, as `argmax` does).
pub fn argmax<R: PartialOrd + Copy>(row: &[R]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

/// a += b, elementwise.
pub fn add_into<R: Real>(a: &mut [R], b: &[R]) {
    a.iter_mut().zip(b).for_each(|(x, &y)| *x = *x + y);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f64], ta: Op, b: &[f64], tb: Op) -> Vec<f64> {
        let at = |i: usize, p: usize| match ta {
            Op::N => a[i * k + p],
            Op::T => a[p * m + i],
        };
        let bt = |p: usize, j: usize| match tb {
            Op::N => b[p * n + j],
            Op::T => b[j * k + p],
        };
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
            }
        }
        c
    }

    #[test]
    fn gemm_all_transposes_match_naive() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
        for ta in [Op::N, Op::T] {
            for tb in [Op::N, Op::T] {
                let mut c = vec![1.0; m * n];
                gemm(m, k, n, 2.0, &a, ta, &b, tb, 0.5, &mut c);
                let want = naive(m, k, n, &a, ta, &b, tb);
                for (x, w) in c.iter().zip(&want) {
                    assert!((x - (2.0 * w + 0.5)).abs() < 1e-12, "{ta:?}{tb:?}");
                }
            }
        }
    }

    #[test]
    fn normalize_backward_matches_finite_differences() {
        let d = 4;
        let x: Vec<f64> = vec![0.3, -1.2, 0.5, 2.0, 0.1, 0.2, -0.3, 0.05];
        let w: Vec<f64> = (0..8).map(|i| (i as f64 * 0.7).sin()).collect();
        let f = |x: &[f64]| {
            let mut y = x.to_vec();
            normalize_rows(&mut y, d);
            y.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>()
        };
        let mut y = x.clone();
        let norms = normalize_rows(&mut y, d);
        let dx = normalize_rows_backward(&y, &norms, &w, d);
        for i in 0..x.len() {
            let (mut p, mut q) = (x.clone(), x.clone());
            p[i] += 1e-6;
            q[i] -= 1e-6;
            let fd = (f(&p) - f(&q)) / 2e-6;
            assert!((fd - dx[i]).abs() < 1e-8, "{i}: {fd} vs {}", dx[i]);
        }
    }
}
