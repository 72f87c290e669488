//! Cost terms of the OT problems (SPEC §2). All matrices are row-major f32; no gradient flows
//! through them (the OT solves are detached).
//!
//! * [`cosine_cost`]: C = 1 − F Aᵀ for unit-norm rows, N×K, via `matrixmultiply`'s tuned sgemm;
//!   O(N·K·d).
//! * [`add_temporal_prior`]: C += ρ·|i/N − k/K| (0-based, N the padded length); O(N·K).
//! * [`swd_cost`]: the sliced Wasserstein cost with a circular defining function, in the
//!   `released` variant (sorted order statistics; the public code's behaviour, a diagonal prior
//!   that does not depend on which frame is row i) or the `paper` variant (per-pair mean of 1-D
//!   distances); O(P·(N+K)·d + N·K·P) plus the sorts, O(P·N log²N) by a sorting network up to
//!   4 096 rows and O(P·N log N) above.

use rand::Rng;

use super::simd::{Isa, multiversion};
use crate::linalg::{Op, gemm};
use rand_distr::{Distribution, StandardNormal};

/// C = 1 − F Aᵀ: `f` is N×d, `a` is K×d, both row-major; returns N×K.
pub fn cosine_cost(f: &[f32], a: &[f32], d: usize) -> Vec<f32> {
    let (n, k) = (f.len() / d.max(1), a.len() / d.max(1));
    let mut c = vec![1.0f32; n * k];
    if n == 0 || k == 0 || d == 0 {
        return c;
    }
    // C = −1 · F Aᵀ + 1 · C   (row-major: row stride d for F; A read transposed: rs 1, cs d)
    #[allow(unsafe_code)]
    // SAFETY: the pointers and strides describe exactly the n×d, d×k (Aᵀ) and n×k buffers above,
    // which are live and do not overlap (c is freshly allocated).
    unsafe {
        matrixmultiply::sgemm(
            n,
            d,
            k,
            -1.0,
            f.as_ptr(),
            d as isize,
            1,
            a.as_ptr(),
            1,
            d as isize,
            1.0,
            c.as_mut_ptr(),
            k as isize,
            1,
        );
    }
    c
}

/// `C[i,k] += ρ·|i/N − k/K|` for an N×K cost (`n` the padded length).
pub fn add_temporal_prior(c: &mut [f32], n: usize, k: usize, rho: f32) {
    if rho == 0.0 {
        return;
    }
    for i in 0..n {
        let x = i as f32 / n as f32;
        for j in 0..k {
            c[i * k + j] += rho * (x - j as f32 / k as f32).abs();
        }
    }
}

/// Which SWD formula to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SwdVariant {
    /// The public code: sort each projection over the frames and, separately, over the actions;
    /// `C[i,j] = ‖sorted_X[i,:] − sorted_A[j,:]‖₂`.
    #[default]
    Released,
    /// The paper's formula (p = 1): `C[i,j] = (1/P) Σ_p |x̂_ip − â_jp|`.
    Paper,
}

/// Settings of the SWD cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwdParams {
    pub variant: SwdVariant,
    /// Number of random directions P.
    pub projections: usize,
    /// Radius ρ_s of the circular defining function.
    pub radius: f32,
}

impl Default for SwdParams {
    fn default() -> Self {
        SwdParams {
            variant: SwdVariant::Released,
            projections: 150,
            radius: 2.0,
        }
    }
}

/// `p` random unit directions in `d` dimensions (Gaussian, normalised), row-major P×d.
pub fn random_directions(p: usize, d: usize, rng: &mut impl Rng) -> Vec<f32> {
    let mut out = Vec::with_capacity(p * d);
    for _ in 0..p {
        let v: Vec<f32> = (0..d).map(|_| StandardNormal.sample(rng)).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        out.extend(v.iter().map(|x| x / norm));
    }
    out
}

/// x̂[i,p] = ‖x_i − ρ_s θ_p‖, each row then L2-normalised. `x` is M×d, `theta` P×d (unit
/// rows); returns M×P. Computed as √(‖x_i‖² + ρ_s² − 2ρ_s⟨x_i, θ_p⟩) with one sgemm.
fn circular_projection(x: &[f32], theta: &[f32], d: usize, radius: f32) -> Vec<f32> {
    let p = theta.len() / d;
    let m = x.len() / d;
    let mut out = vec![0f32; m * p];
    gemm(
        m,
        d,
        p,
        -2.0 * radius,
        x,
        Op::N,
        theta,
        Op::T,
        0.0,
        &mut out,
    );
    let mut tt = squared_norms(theta, d);
    tt.iter_mut().for_each(|t| *t *= radius * radius);
    let base = squared_norms(x, d);
    for (row, &b) in out.chunks_exact_mut(p).zip(&base) {
        for (r, &t) in row.iter_mut().zip(&tt) {
            *r = (b + t + *r).max(0.0).sqrt();
        }
    }
    let norms = squared_norms(&out, p);
    for (row, &s) in out.chunks_exact_mut(p).zip(&norms) {
        let norm = s.sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
    }
    out
}

/// Σ_q x_iq² of each row of an M×w matrix, each a serial sum in order (the bits of
/// `row.iter().map(|v| v * v).sum()`), eight rows side by side so that the additions of
/// different rows overlap instead of waiting on one another.
fn squared_norms(x: &[f32], w: usize) -> Vec<f32> {
    const ROWS: usize = 8;
    let w = w.max(1);
    let mut out = vec![0f32; x.len() / w];
    for (xb, ob) in x.chunks(ROWS * w).zip(out.chunks_mut(ROWS)) {
        let mut acc = [0f32; ROWS];
        let rows = ob.len();
        // full blocks: eight columns of the eight rows at a time, transposed in a local tile
        // (eight contiguous loads per row instead of one strided load per element); the
        // columns left over, and every column of a short last block, one at a time. The same
        // serial order of additions per row either way.
        let mut tiled = 0;
        if rows == ROWS {
            tiled = w - w % ROWS;
            for blk in 0..tiled / ROWS {
                let mut t = [[0f32; ROWS]; ROWS];
                for (r, xr) in xb.chunks_exact(w).enumerate() {
                    let xs = &xr.as_chunks::<ROWS>().0[blk];
                    for (qq, &v) in xs.iter().enumerate() {
                        t[qq][r] = v;
                    }
                }
                for tq in &t {
                    for r in 0..ROWS {
                        acc[r] += tq[r] * tq[r];
                    }
                }
            }
        }
        for q in tiled..w {
            for r in 0..rows {
                let v = xb[r * w + q];
                acc[r] += v * v;
            }
        }
        ob.copy_from_slice(&acc[..rows]);
    }
    out
}

/// Pairwise Euclidean distances between the rows of `u` (N×P) and `v` (K×P), from the
/// differences: √(Σ_p (u_ip − v_jp)²). Not the ‖u‖² + ‖v‖² − 2⟨u, v⟩ shortcut (what
/// `torch.cdist` does for more than 25 rows): the sorted SWD rows are near-unit vectors whose
/// distances are ~0.01, where the shortcut cancels ~1 against ~1 and loses about 1 % in float32
/// (1.5e-4 absolute on coffee's first batch; the differences are within 5e-8 of float64). Cost
/// O(N·K·P), as the matrix product.
fn pairwise_distances(u: &[f32], v: &[f32], p: usize) -> Vec<f32> {
    let mut c = pairwise_sums(u, v, p, Metric::Squared);
    c.iter_mut().for_each(|x| *x = x.sqrt());
    c
}

/// What [`pairwise_sums`] adds up per projection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Metric {
    /// (u − v)²
    Squared,
    /// |u − v|
    Abs,
}

/// Actions per block of [`pairwise_sums`]: one vector of f32 sums.
const PAIR_ACTIONS: usize = 8;
/// Rows of `u` per pass of [`pairwise_sums`]: independent chains of additions in flight.
const PAIR_ROWS: usize = 4;

/// `C[i,j] = Σ_p f(u_ip − v_jp)` for the rows of `u` (N×P) and `v` (K×P), each sum taken over p
/// in order from 0 (the bits of a plain serial sum), but many sums at a time: `v` is transposed
/// into blocks of [`PAIR_ACTIONS`] actions (P × 8, padded with zeros) so that a block's sums run
/// in vector lanes, and [`PAIR_ROWS`] rows of `u` advance together, instead of one add latency
/// per element. Returns N×K.
fn pairwise_sums(u: &[f32], v: &[f32], p: usize, metric: Metric) -> Vec<f32> {
    pairwise_sums_isa(Isa::detect(), u, v, p, metric)
}

/// [`pairwise_sums`] on the instruction set `isa`.
fn pairwise_sums_isa(isa: Isa, u: &[f32], v: &[f32], p: usize, metric: Metric) -> Vec<f32> {
    let p = p.max(1);
    let k = v.len() / p;
    let mut vt = vec![[0f32; PAIR_ACTIONS]; k.div_ceil(PAIR_ACTIONS) * p];
    for (j, vr) in v.chunks_exact(p).enumerate() {
        for (q, &x) in vr.iter().enumerate() {
            vt[(j / PAIR_ACTIONS) * p + q][j % PAIR_ACTIONS] = x;
        }
    }
    let mut c = vec![0f32; u.len() / p * k];
    if k > 0 {
        pairwise_on(isa, u, &vt, p, k, metric, &mut c);
    }
    c
}

multiversion! {
    /// The loops of [`pairwise_sums`].
    fn pairwise_on(u: &[f32], vt: &[[f32; PAIR_ACTIONS]], p: usize, k: usize, metric: Metric, c: &mut [f32]) {
        let n = u.len() / p;
        for (blk, vb) in vt.chunks_exact(p).enumerate() {
            let (first, width) = (blk * PAIR_ACTIONS, (k - blk * PAIR_ACTIONS).min(PAIR_ACTIONS));
            for i in (0..n).step_by(PAIR_ROWS) {
                let rows = (n - i).min(PAIR_ROWS);
                // a short last pass repeats its last row (computed, not stored)
                let row = |r: usize| &u[(i + r.min(rows - 1)) * p..][..p];
                let us: [&[f32]; PAIR_ROWS] = std::array::from_fn(row);
                let mut acc = [[0f32; PAIR_ACTIONS]; PAIR_ROWS];
                for (q, y) in vb.iter().enumerate() {
                    for (a, ur) in acc.iter_mut().zip(&us) {
                        let x = ur[q];
                        for l in 0..PAIR_ACTIONS {
                            let d = x - y[l];
                            a[l] += match metric {
                                Metric::Squared => d * d,
                                Metric::Abs => d.abs(),
                            };
                        }
                    }
                }
                for (r, a) in acc.iter().take(rows).enumerate() {
                    c[(i + r) * k + first..][..width].copy_from_slice(&a[..width]);
                }
            }
        }
    }
}

/// The SWD cost between frames `f` (N×d) and actions `a` (K×d), with `theta` from
/// [`random_directions`]; returns N×K.
pub fn swd_cost(f: &[f32], a: &[f32], d: usize, theta: &[f32], params: &SwdParams) -> Vec<f32> {
    let p = theta.len() / d.max(1);
    let (n, k) = (f.len() / d.max(1), a.len() / d.max(1));
    let mut xf = circular_projection(f, theta, d, params.radius);
    let mut xa = circular_projection(a, theta, d, params.radius);
    match params.variant {
        SwdVariant::Released => {
            sort_columns(&mut xf, n, p);
            sort_columns(&mut xa, k, p);
            pairwise_distances(&xf, &xa, p)
        }
        SwdVariant::Paper => {
            let inv = 1.0 / p.max(1) as f32;
            let mut c = pairwise_sums(&xf, &xa, p, Metric::Abs);
            c.iter_mut().for_each(|x| *x *= inv);
            c
        }
    }
}

/// Sorts each column of an M×P row-major matrix in place, ascending in `f32::total_cmp`'s order.
/// Each value is sorted as the u32 key that orders as `total_cmp` does (sign bit flipped for
/// positives, all bits for negatives), which compares as plain integers. Equal keys are equal
/// bits, so any correct sort gives the same matrix; which one runs is a matter of speed only:
/// up to [`NETWORK_MAX_ROWS`] rows a sorting network, eight columns at a time in vector lanes,
/// above that a quicksort per column.
fn sort_columns(x: &mut [f32], m: usize, p: usize) {
    if m < 2 || p == 0 {
        return;
    }
    if m <= NETWORK_MAX_ROWS {
        sort_columns_network(Isa::detect(), x, m, p);
        return;
    }
    let mut col = vec![0u32; m];
    for q in 0..p {
        for i in 0..m {
            col[i] = sort_key(x[i * p + q]);
        }
        col.sort_unstable();
        for i in 0..m {
            x[i * p + q] = key_value(col[i]);
        }
    }
}

/// Up to this many rows [`sort_columns`] uses the sorting network. Measured on one core (P = 150,
/// release build): 256 rows (training's crops) 112 µs against 496 µs for the quicksorts, 2 500
/// rows 4.8 ms against 6.2 ms; at 10 000 rows the network's log² and its padding to 16 384 rows
/// lose (40 ms against 36 ms).
const NETWORK_MAX_ROWS: usize = 4096;

/// The u32 that orders as `f32::total_cmp` orders the float.
#[inline(always)]
fn sort_key(v: f32) -> u32 {
    let b = v.to_bits();
    if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
}

/// The float of a [`sort_key`].
#[inline(always)]
fn key_value(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7FFF_FFFF } else { !k })
}

/// Columns per tile of the sorting network: one vector of u32 keys per row.
const TILE: usize = 8;

multiversion! {
    /// [`sort_columns`] by a bitonic network, [`TILE`] columns at a time: the tile's keys are
    /// gathered into rows of one vector each (M rows, padded to a power of two with the largest
    /// key, which sorts to the end), so that the whole network runs on L1-resident data with one
    /// vector min and max per compare-exchange. Each merge of blocks of `size` rows first pairs
    /// row i with its mirror (size − 1 − i), then halves with strides size/4 … 1, all ascending
    /// (the form of the network without direction flips). O(P/8 · M·log²M).
    fn sort_columns_network(x: &mut [f32], m: usize, p: usize) {
        let m2 = m.next_power_of_two();
        let mut tile = vec![[u32::MAX; TILE]; m2];
        for q0 in (0..p).step_by(TILE) {
            let w = (p - q0).min(TILE);
            for (i, row) in tile[..m].iter_mut().enumerate() {
                for (t, &v) in row.iter_mut().zip(&x[i * p + q0..i * p + q0 + w]) {
                    *t = sort_key(v);
                }
            }
            tile[m..].fill([u32::MAX; TILE]);
            let mut size = 2;
            while size <= m2 {
                for block in tile.chunks_exact_mut(size) {
                    let (lo, hi) = block.split_at_mut(size / 2);
                    for (a, b) in lo.iter_mut().zip(hi.iter_mut().rev()) {
                        compare_exchange(a, b);
                    }
                }
                let mut stride = size / 4;
                while stride >= 1 {
                    for block in tile.chunks_exact_mut(2 * stride) {
                        let (lo, hi) = block.split_at_mut(stride);
                        for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                            compare_exchange(a, b);
                        }
                    }
                    stride /= 2;
                }
                size *= 2;
            }
            for (i, row) in tile[..m].iter().enumerate() {
                for (v, &t) in x[i * p + q0..i * p + q0 + w].iter_mut().zip(row) {
                    *v = key_value(t);
                }
            }
        }
    }
}

/// `a[j], b[j] ← min, max` in every lane.
#[inline(always)]
fn compare_exchange(a: &mut [u32; TILE], b: &mut [u32; TILE]) {
    let (x, y) = (*a, *b);
    for j in 0..TILE {
        a[j] = x[j].min(y[j]);
        b[j] = x[j].max(y[j]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn cosine_cost_matches_naive() {
        let (n, k, d) = (5, 3, 4);
        let f: Vec<f32> = (0..n * d).map(|i| (i as f32 * 0.37).sin()).collect();
        let a: Vec<f32> = (0..k * d).map(|i| (i as f32 * 0.71).cos()).collect();
        let c = cosine_cost(&f, &a, d);
        for i in 0..n {
            for j in 0..k {
                let dot: f32 = (0..d).map(|t| f[i * d + t] * a[j * d + t]).sum();
                assert!((c[i * k + j] - (1.0 - dot)).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn temporal_prior_values() {
        let mut c = vec![0f32; 4 * 2];
        add_temporal_prior(&mut c, 4, 2, 0.5);
        assert_eq!(c, vec![0.0, 0.25, 0.125, 0.125, 0.25, 0.0, 0.375, 0.125]);
    }

    #[test]
    fn swd_variants() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let d = 3;
        let theta = random_directions(150, d, &mut rng);
        assert!((theta[..3].iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
        let f = vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let a = vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let paper = swd_cost(
            &f,
            &a,
            d,
            &theta,
            &SwdParams {
                variant: SwdVariant::Paper,
                ..SwdParams::default()
            },
        );
        // identical points cost 0, different ones more
        assert!(paper[0] < 1e-6 && paper[3] < 1e-6 && paper[1] > 1e-3);
        let rel = swd_cost(&f, &a, d, &theta, &SwdParams::default());
        // the released variant does not depend on which frame is row i
        let f2 = vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        assert_eq!(rel, swd_cost(&f2, &a, d, &theta, &SwdParams::default()));
        assert!(rel.iter().all(|x| x.is_finite() && *x >= 0.0));
    }

    /// The integer keys sort as `f32::total_cmp` does, signs, zeros and infinities included.
    #[test]
    fn sort_columns_orders_as_total_cmp() {
        let vals = [
            3.5f32,
            -0.0,
            0.0,
            -2.25,
            f32::INFINITY,
            1e-30,
            -1e-30,
            f32::NEG_INFINITY,
            7.0,
            -7.0,
        ];
        // two columns: the values and their negations
        let mut x: Vec<f32> = vals.iter().flat_map(|&v| [v, -v]).collect();
        sort_columns(&mut x, vals.len(), 2);
        for q in 0..2 {
            let mut want: Vec<f32> = vals.iter().map(|&v| if q == 0 { v } else { -v }).collect();
            want.sort_by(f32::total_cmp);
            let got: Vec<f32> = (0..vals.len()).map(|i| x[i * 2 + q]).collect();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "column {q}");
        }
    }

    /// The sorting network and the quicksort give the same columns as sorting each column with
    /// `total_cmp`, for row counts around powers of two and on both sides of the switch.
    #[test]
    fn sort_columns_equals_sorting_each_column() {
        use rand::RngExt;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let p = 11;
        for m in [
            1,
            2,
            3,
            4,
            5,
            7,
            8,
            9,
            12,
            16,
            31,
            256,
            257,
            NETWORK_MAX_ROWS,
            NETWORK_MAX_ROWS + 1,
        ] {
            let mut x: Vec<f32> = (0..m * p)
                .map(|_| match rng.random_range(0..10) {
                    0 => -0.0,
                    1 => 0.0,
                    2 => 1.5,
                    _ => rng.random_range(-3.0f32..3.0),
                })
                .collect();
            let mut want = x.clone();
            for q in 0..p {
                let mut col: Vec<f32> = (0..m).map(|i| want[i * p + q]).collect();
                col.sort_by(f32::total_cmp);
                for i in 0..m {
                    want[i * p + q] = col[i];
                }
            }
            sort_columns(&mut x, m, p);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&x), bits(&want), "m = {m}");
        }
    }

    /// Every instruction set's build of the side-by-side sums and of the sorting network gives
    /// the same bits.
    #[test]
    fn every_instruction_set_gives_the_same_costs() {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let p = 150;
        let u: Vec<f32> = (0..37 * p).map(|i| (i as f32 * 0.37).sin()).collect();
        let v: Vec<f32> = (0..11 * p).map(|i| (i as f32 * 0.11).cos()).collect();
        for metric in [Metric::Squared, Metric::Abs] {
            let all: Vec<Vec<u32>> = Isa::available()
                .into_iter()
                .map(|isa| bits(&pairwise_sums_isa(isa, &u, &v, p, metric)))
                .collect();
            assert!(all.iter().all(|c| *c == all[0]));
        }
        for m in [5, 37, 256, 300] {
            let x: Vec<f32> = (0..m * p)
                .map(|i| (i as f32 * 0.618).fract() - 0.5)
                .collect();
            let all: Vec<Vec<u32>> = Isa::available()
                .into_iter()
                .map(|isa| {
                    let mut y = x.clone();
                    sort_columns_network(isa, &mut y, m, p);
                    bits(&y)
                })
                .collect();
            assert!(all.iter().all(|c| *c == all[0]), "m = {m}");
        }
    }

    /// The side-by-side sums are the plain serial sums, bit for bit.
    #[test]
    fn blocked_sums_are_serial_sums() {
        let (n, p) = (13, 150);
        let u: Vec<f32> = (0..n * p).map(|i| (i as f32 * 0.37).sin()).collect();
        for k in [1, 7, 8, 12] {
            let v: Vec<f32> = (0..k * p).map(|i| (i as f32 * 0.11).cos()).collect();
            for metric in [Metric::Squared, Metric::Abs] {
                let f = |d: f32| {
                    if metric == Metric::Abs {
                        d.abs()
                    } else {
                        d * d
                    }
                };
                let c = pairwise_sums(&u, &v, p, metric);
                for i in 0..n {
                    for j in 0..k {
                        let ur = &u[i * p..(i + 1) * p];
                        let vr = &v[j * p..(j + 1) * p];
                        let s: f32 = ur.iter().zip(vr).map(|(x, y)| f(x - y)).sum();
                        assert_eq!(c[i * k + j].to_bits(), s.to_bits(), "K = {k}: {i},{j}");
                    }
                }
            }
        }
        let norms = squared_norms(&u, p);
        for (row, got) in u.chunks(p).zip(norms) {
            assert_eq!(
                got.to_bits(),
                row.iter().map(|v| v * v).sum::<f32>().to_bits()
            );
        }
    }

    /// Near-unit rows ~0.01 apart, as the sorted SWD rows are: the distances keep float32's
    /// relative precision (the ‖u‖² + ‖v‖² − 2⟨u, v⟩ shortcut is off by about 1 % here).
    #[test]
    fn pairwise_distances_of_close_rows_are_accurate() {
        let p = 150;
        let u: Vec<f32> = (0..p).map(|i| (i as f32 * 0.37).sin() / 8.7).collect();
        let v: Vec<f32> = u
            .iter()
            .enumerate()
            .map(|(i, x)| x + 1e-3 * (i as f32 * 1.3).cos())
            .collect();
        let want = u
            .iter()
            .zip(&v)
            .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let got = pairwise_distances(&u, &v, p)[0] as f64;
        assert!((got - want).abs() < 1e-5 * want, "{got} vs {want}");
    }

    /// The sgemm forms equal the direct sums.
    #[test]
    fn swd_fast_forms_match_direct_sums() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (n, k, d) = (37, 5, 8);
        let theta = random_directions(20, d, &mut rng);
        let unit = |m: usize, s: f32| {
            let mut v: Vec<f32> = (0..m * d).map(|i| (i as f32 * s).sin()).collect();
            crate::linalg::normalize_rows(&mut v, d);
            v
        };
        let (f, a) = (unit(n, 0.37), unit(k, 0.91));
        let direct = |x: &[f32]| -> Vec<f32> {
            let mut out = Vec::new();
            for xi in x.chunks_exact(d) {
                let row: Vec<f32> = theta
                    .chunks_exact(d)
                    .map(|t| {
                        xi.iter()
                            .zip(t)
                            .map(|(a, b)| (a - 2.0 * b).powi(2))
                            .sum::<f32>()
                            .sqrt()
                    })
                    .collect();
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                out.extend(row.iter().map(|v| v / norm));
            }
            out
        };
        let fast = circular_projection(&f, &theta, d, 2.0);
        for (x, y) in fast.iter().zip(direct(&f)) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
        let (mut xf, mut xa) = (direct(&f), direct(&a));
        sort_columns(&mut xf, n, 20);
        sort_columns(&mut xa, k, 20);
        let c = swd_cost(
            &f,
            &a,
            d,
            &theta,
            &SwdParams {
                projections: 20,
                ..SwdParams::default()
            },
        );
        for i in 0..n {
            for j in 0..k {
                let want: f32 = (0..20)
                    .map(|q| (xf[i * 20 + q] - xa[j * 20 + q]).powi(2))
                    .sum::<f32>()
                    .sqrt();
                assert!(
                    (c[i * k + j] - want).abs() < 1e-3,
                    "{i},{j}: {} vs {want}",
                    c[i * k + j]
                );
            }
        }
    }
}
