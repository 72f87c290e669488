//! The ASOT solver (Xu & Gould, CVPR 2024), exactly as SPEC §3 describes it.
//!
//! For one video with cost C (N×K, row-major), `n` valid rows (the first `n`; the rest is
//! padding), p_i = 1/n and q_k = 1/K, it approximately solves
//!
//! ```text
//! min_{T ≥ 0, T·1 = p}  (1−α)⟨C,T⟩ + (α/2)⟨C_v T C_a, T⟩ + λ_a KL(Tᵀ1 ‖ q) − ε H(T)
//! C_v[i,j] = (1/r)·[0 < |i−j| ≤ a],  a = ⌊N·r⌋,   C_a = 11ᵀ − I
//! ```
//!
//! by projected mirror descent:
//!
//! ```text
//! T = 1/(n·K) on valid rows, 0 on padded rows
//! repeat iters times:
//!   U  = rowsum(T)·1ᵀ − T
//!   GW = (1/r)·(Σ_{|j−i|≤a} U_j − U_i)                (a box filter per column)
//!   G  = α·GW + (1−α)·C + ε·log(T + 1e-12) + λ_a·(log(colsum(T)·K + 1e-12) + 1)
//!   first iteration: step = 4 / max(G) over the whole batch
//!   T  = T ⊙ exp(−step·G);   T = T / rowsum(T) · (1/n)
//! return T·n                                           (valid rows sum to 1, padded rows are 0)
//! ```
//!
//! Choices where SPEC leaves room, following the reference code:
//! * The GW term of padded rows is 0 (the reference zeroes C_v's rows and columns of padded
//!   frames); padded rows still take part in `max(G)` with their cost and entropy terms.
//! * The multiplicative update is carried out on log T (see `update`): the same plan up to
//!   rounding, but the reference's plain product overflows to inf (then NaN) or collapses a row
//!   to 0 when a large automatic step meets a peaked plan.
//! * If the batch's `max(G)` is not positive (possible only for degenerate costs) the automatic step
//!   would be negative or infinite; the solver then fails with [`OtError::Step`] and the caller can
//!   pass [`StepSize::Fixed`].
//!
//! Cost: O(iters · N · K) per video (the GW product is a box filter over prefix sums, so it does
//! not grow with the radius), one `exp` and one `log` per cell and iteration (and one `log` per
//! row). Storage is f32 like the reference; row, column and prefix sums are accumulated in f64.
//! All work buffers are allocated once per video before the loop (about 32 bytes per cell, with
//! rows padded to a multiple of 8 actions, see `iterate`).
//!
//! How it runs: rows are cut into fixed chunks of `ROWS_PER_TASK`, the unit of work on the
//! rayon pool. Each iteration after the first is one pass over the chunks: a chunk's gradient
//! reads its own rows of T and the prefix sums of the previous T, so the gradient, the update and
//! the chunk's new prefix sums run back to back while the chunk is in cache (the prefix sums are
//! double-buffered). The first iteration with the automatic step needs the batch's max(G) first,
//! so it runs as two passes. The chunk loops are compiled for the baseline target, for AVX2 and
//! for AVX-512, and the CPU picks at run time (`simd`); all give the same bits. Results do not
//! depend on the thread count. Videos run in parallel too; the only coupling is the automatic
//! step size, computed from the first gradient of every video of the batch, so once it is known
//! each video runs its remaining iterations as one task.

use rayon::prelude::*;

use super::simd::{Isa, multiversion};

/// How the mirror-descent step is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepSize {
    /// `4 / max(G)` of the first iteration, over the whole batch (the reference's default).
    Auto,
    /// A fixed step.
    Fixed(f32),
}

/// Solver settings. [`AsotParams::default`] is the training configuration of the breakfast preset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AsotParams {
    /// Entropic regularisation ε.
    pub eps: f32,
    /// Weight α of the temporal GW term (1 − α on the linear cost).
    pub alpha: f32,
    /// Radius r of the temporal neighbourhood as a fraction of N.
    pub radius: f32,
    /// λ_a, weight of the KL relaxation of the action marginal.
    pub lambda_actions: f32,
    /// Mirror-descent iterations.
    pub iters: usize,
    pub step: StepSize,
    /// Enforce the action marginal q exactly (drop the KL term and project with Sinkhorn).
    pub balanced_actions: bool,
    /// Relax the frame marginal p with a KL term of weight `lambda_frames` instead of projecting.
    pub unbalanced_frames: bool,
    /// λ_f, used with `unbalanced_frames`.
    pub lambda_frames: f32,
    /// At most this many log-domain Sinkhorn iterations in each balanced projection (it stops
    /// earlier once the column potentials settle, i.e. once the column marginals are met to a
    /// relative 1e-7). Ordinary problems settle in tens to hundreds; a near-degenerate one (as
    /// many actions as valid frames, a steep step) converges sublinearly and can still miss its
    /// column marginals by 1e-3 after 1 000, so the default cap is 10 000.
    pub sinkhorn_iters: usize,
}

impl Default for AsotParams {
    fn default() -> Self {
        AsotParams {
            eps: 0.07,
            alpha: 0.4,
            radius: 0.04,
            lambda_actions: 0.1,
            iters: 25,
            step: StepSize::Auto,
            balanced_actions: false,
            unbalanced_frames: false,
            lambda_frames: 0.1,
            sinkhorn_iters: 10_000,
        }
    }
}

/// Why the solver refused its input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OtError {
    /// Shapes do not fit together.
    #[error("OT problem: {0}")]
    Shape(String),
    /// A cost entry is NaN or infinite.
    #[error("OT cost of video {video}: non-finite value {value} at frame {row}, action {col}")]
    NonFinite {
        video: usize,
        row: usize,
        col: usize,
        value: f32,
    },
    /// A parameter is out of range.
    #[error("OT parameter {name} = {value}: {why}")]
    Param {
        name: &'static str,
        value: f32,
        why: &'static str,
    },
    /// The automatic step size is undefined.
    #[error(
        "automatic step size undefined: max of the first gradient is {0}; use a fixed step size"
    )]
    Step(f32),
    /// The GPU could not run the solve.
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
}

/// Prefix sums of T, kept per fixed chunk of [`ROWS_PER_TASK`] rows so that they can be computed
/// in parallel with results that do not depend on the thread count: the prefix sum of rows 0..x is
/// the chunk-local `pt[x]` plus the sum of the chunks before (an exclusive scan of `totals`).
#[derive(Clone)]
struct Prefix {
    /// local prefix sums of T per column, (N+1)×K (row 0 is zero)
    pt: Vec<f64>,
    /// local prefix sums of rowsum(T), N+1
    pr: Vec<f64>,
    /// rowsum(T), N
    row: Vec<f64>,
    /// per row chunk: the chunk's column sums and row-sum total (K + 1)
    totals: Vec<f64>,
}

impl Prefix {
    fn new(n: usize, k: usize) -> Self {
        Prefix {
            pt: vec![0.0; (n + 1) * k],
            pr: vec![0.0; n + 1],
            row: vec![0.0; n],
            totals: vec![0.0; n.div_ceil(ROWS_PER_TASK) * (k + 1)],
        }
    }
}

/// Per-video work buffers, allocated once.
struct Work {
    t: Vec<f32>,
    /// log T (−inf on padded rows): the state of the mirror descent, so that entries of T that
    /// underflow to 0 keep their information
    l: Vec<f32>,
    g: Vec<f32>,
    /// prefix sums of the current T, which the gradient reads
    cur: Prefix,
    /// prefix sums of the next T, which the update writes (then the two swap)
    next: Prefix,
    col: Vec<f64>,
    /// per-column term of the gradient (KL of the action marginal), K
    colterm: Vec<f32>,
    /// per row chunk: the sums of the chunks before it (exclusive scan of `cur.totals`)
    offsets: Vec<f64>,
}

impl Work {
    fn new(n: usize, k: usize) -> Self {
        Work {
            t: vec![0.0; n * k],
            l: vec![f32::NEG_INFINITY; n * k],
            g: vec![0.0; n * k],
            cur: Prefix::new(n, k),
            next: Prefix::new(n, k),
            col: vec![0.0; k],
            colterm: vec![0.0; k],
            offsets: vec![0.0; n.div_ceil(ROWS_PER_TASK) * (k + 1)],
        }
    }
}

pub(crate) fn check(
    costs: &[f32],
    b: usize,
    n: usize,
    k: usize,
    valid: &[usize],
    p: &AsotParams,
) -> Result<(), OtError> {
    check_problem(b, n, k, valid, p)?;
    if costs.len() != b * n * k {
        return Err(OtError::Shape(format!(
            "{} cost values for {b} videos of {n}×{k}",
            costs.len()
        )));
    }
    check_finite(costs, n, k)
}

/// The cost check of [`check`]: the first non-finite entry, by video, frame and action.
pub(crate) fn check_finite(costs: &[f32], n: usize, k: usize) -> Result<(), OtError> {
    for (v, video) in costs.chunks((n * k).max(1)).enumerate() {
        if let Some(i) = video.iter().position(|c| !c.is_finite()) {
            return Err(OtError::NonFinite {
                video: v,
                row: i / k,
                col: i % k,
                value: video[i],
            });
        }
    }
    Ok(())
}

/// The checks of [`check`] that do not read the costs: shapes, valid counts and settings.
pub(crate) fn check_problem(
    b: usize,
    n: usize,
    k: usize,
    valid: &[usize],
    p: &AsotParams,
) -> Result<(), OtError> {
    if k == 0 || n == 0 {
        return Err(OtError::Shape(format!(
            "N = {n} frames and K = {k} actions must both be at least 1"
        )));
    }
    if valid.len() != b {
        return Err(OtError::Shape(format!(
            "{} valid-frame counts for {b} videos",
            valid.len()
        )));
    }
    if let Some((v, &c)) = valid.iter().enumerate().find(|(_, c)| **c == 0 || **c > n) {
        return Err(OtError::Shape(format!(
            "video {v} has {c} valid frames; need 1..={n}"
        )));
    }
    let params = [
        ("eps", p.eps, p.eps >= 0.0, "must be ≥ 0"),
        (
            "alpha",
            p.alpha,
            (0.0..=1.0).contains(&p.alpha),
            "must lie in [0, 1]",
        ),
        (
            "radius",
            p.radius,
            p.radius > 0.0 || p.alpha == 0.0,
            "must be > 0 when alpha > 0",
        ),
        (
            "lambda_actions",
            p.lambda_actions,
            p.lambda_actions >= 0.0,
            "must be ≥ 0",
        ),
        (
            "lambda_frames",
            p.lambda_frames,
            p.lambda_frames >= 0.0,
            "must be ≥ 0",
        ),
    ];
    for (name, value, ok, why) in params {
        if !ok || !value.is_finite() {
            return Err(OtError::Param { name, value, why });
        }
    }
    if let StepSize::Fixed(s) = p.step
        && !(s.is_finite() && s > 0.0)
    {
        {
            return Err(OtError::Param {
                name: "step",
                value: s,
                why: "must be finite and > 0",
            });
        }
    }
    Ok(())
}

/// Solves one video: `cost` is N×K, the first `valid` rows are real frames.
pub fn solve(
    cost: &[f32],
    n: usize,
    k: usize,
    valid: usize,
    p: &AsotParams,
) -> Result<Vec<f32>, OtError> {
    solve_batch(cost, 1, n, k, &[valid], p)
}

/// Solves a batch of `b` videos padded to N frames: `costs` is B×N×K, `valid[v]` the real frames of
/// video v (a prefix). Returns the B×N×K plans.
pub fn solve_batch(
    costs: &[f32],
    b: usize,
    n: usize,
    k: usize,
    valid: &[usize],
    p: &AsotParams,
) -> Result<Vec<f32>, OtError> {
    check(costs, b, n, k, valid, p)?;
    // Run on a pool thread: the ~3 parallel sections per iteration then fork from a worker
    // instead of parking the calling thread each time (a quarter of the time on small problems).
    rayon::scope(|_| iterate(costs, b, n, k, valid, p, Isa::detect()))
}

/// The value of the ASOT objective (the module docs' problem) at a returned plan of one video:
/// `plan` is N×K as [`solve`] returns it (valid rows sum to 1; it is scaled by 1/n internally, so
/// that rows sum to p_i = 1/n), `cost` the N×K cost it was solved for. With the KL term as
/// Σ_k c_k·log(c_k·K) over the column sums c (the term whose gradient the solver follows; 0
/// with `balanced_actions`) and H(T) = Σ(−T log T + T). A label-free signal of how well the
/// embeddings fit the actions: lower is a better fit. Cost: O(N·K) (the GW term by prefix sums).
pub fn objective(
    cost: &[f32],
    plan: &[f32],
    n: usize,
    k: usize,
    valid: usize,
    p: &AsotParams,
) -> f64 {
    let nv = valid.min(n);
    if nv == 0 || k == 0 || plan.len() < n * k || cost.len() < n * k {
        return f64::NAN;
    }
    let scale = 1.0 / nv as f64;
    let t = |i: usize, j: usize| plan[i * k + j] as f64 * scale;
    let (alpha, eps) = (p.alpha as f64, p.eps as f64);
    let mut linear = 0.0;
    let mut entropy = 0.0;
    let mut cols = vec![0.0f64; k];
    for i in 0..nv {
        for j in 0..k {
            let x = t(i, j);
            linear += cost[i * k + j] as f64 * x;
            if x > 0.0 {
                entropy += -x * x.ln() + x;
            }
            cols[j] += x;
        }
    }
    // ⟨C_v T C_a, T⟩ = (1/r) Σ_i Σ_{0<|i−j|≤a} Σ_k U_jk T_ik with U = rowsum(T)·1ᵀ − T
    let a = (n as f64 * p.radius as f64).floor() as usize;
    let mut gw = 0.0;
    if a > 0 && p.radius > 0.0 && alpha > 0.0 {
        // prefix sums over the valid rows of U, per column
        let mut pre = vec![0.0f64; (nv + 1) * k];
        for i in 0..nv {
            let row: f64 = (0..k).map(|j| t(i, j)).sum();
            for j in 0..k {
                pre[(i + 1) * k + j] = pre[i * k + j] + row - t(i, j);
            }
        }
        for i in 0..nv {
            let (lo, hi) = (i.saturating_sub(a), (i + a).min(nv - 1) + 1);
            let row: f64 = (0..k).map(|j| t(i, j)).sum();
            for j in 0..k {
                let window = pre[hi * k + j] - pre[lo * k + j] - (row - t(i, j));
                gw += window * t(i, j);
            }
        }
        gw /= p.radius as f64;
    }
    let kl = if p.balanced_actions {
        0.0
    } else {
        cols.iter()
            .filter(|&&c| c > 0.0)
            .map(|&c| c * (c * k as f64).ln())
            .sum::<f64>()
    };
    (1.0 - alpha) * linear + alpha / 2.0 * gw + p.lambda_actions as f64 * kl - eps * entropy
}

fn iterate(
    costs: &[f32],
    b: usize,
    n: usize,
    k: usize,
    valid: &[usize],
    p: &AsotParams,
    isa: Isa,
) -> Result<Vec<f32>, OtError> {
    let a = (n as f64 * p.radius as f64).floor() as usize;
    // Rows are stored padded to a whole number of vector blocks: the K actions, then columns where
    // T is 0 and log T is −inf (and stay so), so that every row loop runs whole blocks. Sums gain
    // exact zeros and maxima −inf, so the plan is the same; only G of the padding is never used.
    let actions = k;
    let k = actions.next_multiple_of(LANES);
    let costs = pad_columns(costs, actions, k);
    let mut works: Vec<Work> = (0..b).map(|_| Work::new(n, k)).collect();
    works
        .par_iter_mut()
        .zip(valid.par_iter())
        .for_each(|(w, &nv)| {
            let init = 1.0 / (nv as f64 * actions as f64);
            for (t, l) in w.t.chunks_mut(k).zip(w.l.chunks_mut(k)).take(nv) {
                t[..actions].fill(init as f32);
                l[..actions].fill(init.ln() as f32);
            }
            local_prefix(isa, &w.t, &mut w.cur, n, k);
            // chunks wholly in the padding are never rewritten: both buffers start equal
            w.next.clone_from(&w.cur);
        });
    let relaxed = p.balanced_actions || p.unbalanced_frames;
    let mut step = match p.step {
        StepSize::Fixed(s) => s,
        StepSize::Auto => f32::NAN,
    };
    for it in 0..p.iters {
        let auto_step = it == 0 && p.step == StepSize::Auto;
        if !relaxed && !auto_step {
            // The usual iterations: gradient, update and the next prefix sums in one pass per
            // row chunk, while the chunk is in cache. With the step known the videos no longer
            // couple, so each video runs all its remaining iterations as one task (one fork-join
            // per solve instead of one per iteration; a video's row chunks still fork inside).
            let rest = p.iters - it;
            works
                .par_iter_mut()
                .zip(costs.par_chunks(n * k))
                .zip(valid.par_iter())
                .for_each(|((w, c), &nv)| {
                    let grad = Gradient { c, a, actions, p };
                    for _ in 0..rest {
                        update(isa, w, Some(grad), n, k, nv, step);
                    }
                });
            break;
        }
        // G of padded rows only matters for the automatic step (it takes the batch's max over
        // every row, as the reference does); afterwards only valid rows are computed
        works
            .par_iter_mut()
            .zip(costs.par_chunks(n * k))
            .zip(valid.par_iter())
            .for_each(|((w, c), &nv)| {
                let rows = if auto_step { n } else { nv };
                gradient(isa, w, Gradient { c, a, actions, p }, n, k, nv, rows);
            });
        if auto_step {
            let max = works
                .iter()
                .flat_map(|w| w.g.chunks(k))
                .map(|row| lane_max(&row[..actions]))
                .fold(f32::NEG_INFINITY, f32::max);
            step = 4.0 / max;
            if !(max > 0.0 && step.is_finite()) {
                return Err(OtError::Step(max));
            }
        }
        works
            .par_iter_mut()
            .zip(valid.par_iter())
            .for_each(|(w, &nv)| {
                if relaxed {
                    update_relaxed(w, n, k, actions, nv, step, p);
                    local_prefix(isa, &w.t, &mut w.cur, n, k);
                } else {
                    update(isa, w, None, n, k, nv, step);
                }
            });
    }
    let mut out = Vec::with_capacity(b * n * actions);
    for (w, &nv) in works.iter().zip(valid) {
        let scale = nv as f32;
        if k == actions {
            out.extend(w.t.iter().map(|&x| x * scale));
        } else {
            for row in w.t.chunks(k) {
                out.extend(row[..actions].iter().map(|&x| x * scale));
            }
        }
    }
    Ok(out)
}

/// Width of the row blocks: the f32 lanes of an AVX2 vector (`lane_sum`'s tree assumes 8).
const LANES: usize = 8;

/// The costs (rows of `actions` values) with each row padded by zeros to `k` values; borrowed
/// when no padding is needed.
fn pad_columns(costs: &[f32], actions: usize, k: usize) -> std::borrow::Cow<'_, [f32]> {
    if k == actions {
        return std::borrow::Cow::Borrowed(costs);
    }
    let mut out = vec![0.0; costs.len() / actions * k];
    for (o, c) in out.chunks_mut(k).zip(costs.chunks(actions)) {
        o[..actions].copy_from_slice(c);
    }
    std::borrow::Cow::Owned(out)
}

/// What the gradient needs besides the work buffers: the video's cost (rows padded like T), the
/// window half-width a = ⌊N·r⌋, the number of actions K (the columns before the padding) and the
/// settings.
#[derive(Clone, Copy)]
struct Gradient<'a> {
    c: &'a [f32],
    a: usize,
    actions: usize,
    p: &'a AsotParams,
}

/// The gradient's read-only view of one video once [`prepare`] has run.
struct GradientView<'a> {
    g: Gradient<'a>,
    prefix: &'a Prefix,
    offsets: &'a [f64],
    colterm: &'a [f32],
    n: usize,
    k: usize,
    nv: usize,
}

/// The exclusive scan of the chunk totals of `w.cur` (the grand totals are the column sums) and
/// the per-column term of the gradient. Serial: O(chunks · K).
fn prepare(w: &mut Work, k: usize, grad: &Gradient<'_>) {
    let (p, actions) = (grad.p, grad.actions);
    let Work {
        cur,
        col,
        colterm,
        offsets,
        ..
    } = w;
    let k1 = k + 1;
    col.fill(0.0);
    let mut total_rows = 0.0f64;
    for (tot, off) in cur.totals.chunks(k1).zip(offsets.chunks_mut(k1)) {
        off[..k].copy_from_slice(&col[..k]);
        for j in 0..k {
            col[j] += tot[j];
        }
        off[k] = total_rows;
        total_rows += tot[k];
    }
    // action-marginal term, one per column
    for (kl, &s) in colterm.iter_mut().zip(col.iter()) {
        *kl = if p.balanced_actions {
            0.0
        } else {
            p.lambda_actions * (((s * actions as f64) as f32 + 1e-12).ln() + 1.0)
        };
    }
}

impl GradientView<'_> {
    /// G of the rows `first..` (as many as `gs` holds) from those rows of T (`ts`). `k` is the
    /// view's row width, passed in so that a caller can make it a compile-time constant
    /// (`step_chunk_on` does for the common widths).
    #[inline(always)]
    fn rows(&self, k: usize, first: usize, ts: &[f32], gs: &mut [f32]) {
        debug_assert_eq!(k, self.k);
        let (k1, n, nv) = (k + 1, self.n, self.nv);
        let Gradient { c, a, p, .. } = self.g;
        let Prefix { pt, pr, row, .. } = self.prefix;
        let offsets = self.offsets;
        let kl = self.colterm;
        let inv_r = if p.radius > 0.0 { 1.0 / p.radius } else { 0.0 };
        let (alpha, lin, eps) = (p.alpha, 1.0 - p.alpha, p.eps);
        let nv_f = nv as f64;
        // prefix sum number x (rows 0..x) is the local prefix plus the offset of row x−1's chunk
        let chunk_of = |x: usize| x.saturating_sub(1) / ROWS_PER_TASK;
        // g ← ln(T + 1e-12) for the whole chunk, vectorised; the loop below finishes G in place
        super::simd::ln_plus_into_inline(ts, gs, 1e-12);
        let kl = &kl[..k];
        for (r, (gi, ti)) in gs.chunks_exact_mut(k).zip(ts.chunks_exact(k)).enumerate() {
            let i = first + r;
            let ci = &c[i * k..(i + 1) * k][..k];
            let (gi, ti) = (&mut gi[..k], &ti[..k]);
            let frame_kl = if p.unbalanced_frames && i < nv {
                p.lambda_frames * (((row[i] * nv_f) as f32 + 1e-12).ln() + 1.0)
            } else {
                0.0
            };
            if a > 0 && alpha > 0.0 && i < nv {
                let lo = i.saturating_sub(a);
                let hi = (i + a).min(n - 1) + 1;
                // Σ_window U_j − U_i with U = rowsum − T, i.e.
                // (Σ_window rowsum − rowsum_i) − (Σ_window T_j − T_ij): the window sums come from
                // f64 prefix sums; what is left is added in f32, as the reference does it all
                let (olo, ohi) = (
                    &offsets[chunk_of(lo) * k1..][..k1],
                    &offsets[chunk_of(hi) * k1..][..k1],
                );
                let base = ((pr[hi] - pr[lo]) + (ohi[k] - olo[k]) - row[i]) as f32;
                let (plo, phi) = (&pt[lo * k..(lo + 1) * k], &pt[hi * k..(hi + 1) * k]);
                let win = Window {
                    base,
                    inv_r,
                    alpha,
                    rest: Rest { lin, eps, frame_kl },
                };
                // in blocks of 8 as arrays (one vector operation per block; a plain loop over a
                // short row would run the vector loop's scalar remainder), then the rest
                let (g8, gr) = gi.as_chunks_mut::<LANES>();
                let (t8, tr) = ti.as_chunks::<LANES>();
                let (c8, cr) = ci.as_chunks::<LANES>();
                let (k8, kr) = kl.as_chunks::<LANES>();
                let (h8, hr) = phi.as_chunks::<LANES>();
                let (l8, lr) = plo.as_chunks::<LANES>();
                let (oh8, ohr) = ohi[..k].as_chunks::<LANES>();
                let (ol8, olr) = olo[..k].as_chunks::<LANES>();
                for (b, g) in g8.iter_mut().enumerate() {
                    let (t, c, kl, h, l, oh, ol) =
                        (&t8[b], &c8[b], &k8[b], &h8[b], &l8[b], &oh8[b], &ol8[b]);
                    // into a local array first: it cannot alias the inputs, so no runtime checks
                    let mut out = [0f32; LANES];
                    for j in 0..LANES {
                        let colwin = ((h[j] - l[j]) + (oh[j] - ol[j])) as f32;
                        out[j] = win.cell(colwin, t[j], c[j], kl[j], g[j]);
                    }
                    *g = out;
                }
                for (j, g) in gr.iter_mut().enumerate() {
                    let colwin = ((hr[j] - lr[j]) + (ohr[j] - olr[j])) as f32;
                    *g = win.cell(colwin, tr[j], cr[j], kr[j], *g);
                }
            } else {
                let rest = Rest { lin, eps, frame_kl };
                let (g8, gr) = gi.as_chunks_mut::<LANES>();
                let (c8, cr) = ci.as_chunks::<LANES>();
                let (k8, kr) = kl.as_chunks::<LANES>();
                for (b, g) in g8.iter_mut().enumerate() {
                    let (c, kl) = (&c8[b], &k8[b]);
                    let mut out = [0f32; LANES];
                    for j in 0..LANES {
                        out[j] = rest.cell(c[j], kl[j], g[j]);
                    }
                    *g = out;
                }
                for (j, g) in gr.iter_mut().enumerate() {
                    *g = rest.cell(cr[j], kr[j], *g);
                }
            }
        }
    }
}

/// The terms of G that do not involve the temporal window: (1 − α)·C + ε·log(T + 1e-12) + the
/// marginal KL terms.
#[derive(Clone, Copy)]
struct Rest {
    lin: f32,
    eps: f32,
    frame_kl: f32,
}

impl Rest {
    /// G of one cell from its cost, its action-marginal term and log(T + 1e-12).
    #[inline(always)]
    fn cell(&self, c: f32, kl: f32, log_t: f32) -> f32 {
        self.lin * c + self.eps * log_t + kl + self.frame_kl
    }
}

/// One row's window: the GW term is (base − colwin + T_ij) / r with base = Σ_window rowsum −
/// rowsum_i and colwin = Σ_window T_·j.
#[derive(Clone, Copy)]
struct Window {
    base: f32,
    inv_r: f32,
    alpha: f32,
    rest: Rest,
}

impl Window {
    #[inline(always)]
    fn cell(&self, colwin: f32, t: f32, c: f32, kl: f32, log_t: f32) -> f32 {
        let gw = (self.base - colwin + t) * self.inv_r;
        self.alpha * gw + self.rest.cell(c, kl, log_t)
    }
}

/// G for the first `rows` rows (valid rows first, then padding) of one video into `w.g`.
fn gradient(
    isa: Isa,
    w: &mut Work,
    grad: Gradient<'_>,
    n: usize,
    k: usize,
    nv: usize,
    rows: usize,
) {
    prepare(w, k, &grad);
    let Work {
        t,
        g,
        cur,
        colterm,
        offsets,
        ..
    } = w;
    let view = GradientView {
        g: grad,
        prefix: cur,
        offsets,
        colterm,
        n,
        k,
        nv,
    };
    // rows are independent: chunks of rows run on the rayon pool
    g[..rows * k]
        .par_chunks_mut(ROWS_PER_TASK * k)
        .zip(t[..rows * k].par_chunks(ROWS_PER_TASK * k))
        .enumerate()
        .for_each(|(chunk, (gs, ts))| gradient_rows_on(isa, &view, chunk * ROWS_PER_TASK, ts, gs));
}

multiversion! {
    fn gradient_rows_on(view: &GradientView<'_>, first: usize, ts: &[f32], gs: &mut [f32]) {
        view.rows(view.k, first, ts, gs);
    }
}

/// Σ f(xs[j]) in eight independent lanes, then a fixed tree: no serial chain of additions (which
/// would cost an add latency per element), the same order on every call.
#[inline(always)]
fn lane_sum<T: Copy + Default + std::ops::Add<Output = T>>(xs: &[f32], f: impl Fn(f32) -> T) -> T {
    let mut acc = [T::default(); LANES];
    let (blocks, rest) = xs.as_chunks::<LANES>();
    for b in blocks {
        for j in 0..LANES {
            acc[j] = acc[j] + f(b[j]);
        }
    }
    for (a, &x) in acc.iter_mut().zip(rest) {
        *a = *a + f(x);
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// xs[j] ← f(xs[j]) in blocks of 8 (see `GradientView::rows`), then the rest.
#[inline(always)]
fn row_map(xs: &mut [f32], f: impl Fn(f32) -> f32) {
    let (blocks, rest) = xs.as_chunks_mut::<LANES>();
    for b in blocks {
        *b = b.map(&f);
    }
    for x in rest {
        *x = f(*x);
    }
}

/// dst[j] ← f(src[j]) in blocks of 8 (see `GradientView::rows`), then the rest.
#[inline(always)]
fn row_map_from(dst: &mut [f32], src: &[f32], f: impl Fn(f32) -> f32) {
    let (d8, dr) = dst.as_chunks_mut::<LANES>();
    let (s8, sr) = src.as_chunks::<LANES>();
    for (d, s) in d8.iter_mut().zip(s8) {
        *d = s.map(&f);
    }
    for (d, &s) in dr.iter_mut().zip(sr) {
        *d = f(s);
    }
}

/// Largest entry of a row, in eight lanes (no NaN can occur: costs are checked finite).
#[inline(always)]
fn lane_max(xs: &[f32]) -> f32 {
    let max = |m: f32, x: f32| if x > m { x } else { m };
    let mut acc = [f32::NEG_INFINITY; LANES];
    let (blocks, rest) = xs.as_chunks::<LANES>();
    for b in blocks {
        for j in 0..LANES {
            acc[j] = max(acc[j], b[j]);
        }
    }
    for (a, &x) in acc.iter_mut().zip(rest) {
        *a = max(*a, x);
    }
    acc.iter().copied().fold(f32::NEG_INFINITY, max)
}

/// Local prefix sums of one row chunk: `ts` holds the chunk's rows of T that may be non-zero
/// (`ts.len() / k` of them); the chunk's remaining rows are padding, where T is 0.
#[inline(always)]
fn chunk_prefix(
    ts: &[f32],
    k: usize,
    pts: &mut [f64],
    prs: &mut [f64],
    rws: &mut [f64],
    tot: &mut [f64],
) {
    tot.fill(0.0);
    let live = ts.len() / k;
    for (r, ((cur, p), rw)) in pts
        .chunks_mut(k)
        .zip(prs.iter_mut())
        .zip(rws.iter_mut())
        .enumerate()
    {
        let mut s = 0.0f64;
        if r < live {
            let ti = &ts[r * k..(r + 1) * k];
            // accumulate and store in one loop, in blocks of 8 (see `GradientView::rows`)
            let (c8, cr) = cur.as_chunks_mut::<LANES>();
            let (s8, sr) = tot[..k].as_chunks_mut::<LANES>();
            let (x8, xr) = ti.as_chunks::<LANES>();
            for (b, c) in c8.iter_mut().enumerate() {
                let (t, x) = (&mut s8[b], &x8[b]);
                let mut sum = *t;
                for j in 0..LANES {
                    sum[j] += x[j] as f64;
                }
                (*t, *c) = (sum, sum);
            }
            for (j, c) in cr.iter_mut().enumerate() {
                sr[j] += xr[j] as f64;
                *c = sr[j];
            }
            s = lane_sum(ti, |x| x as f64);
        } else {
            cur.copy_from_slice(&tot[..k]);
        }
        *rw = s;
        tot[k] += s;
        *p = tot[k];
    }
}

/// Local prefix sums of every row chunk of T (N×K) into `prefix`, in parallel.
fn local_prefix(isa: Isa, t: &[f32], prefix: &mut Prefix, n: usize, k: usize) {
    let Prefix {
        pt,
        pr,
        row,
        totals,
    } = prefix;
    let rows_c = ROWS_PER_TASK;
    pt[..k].fill(0.0);
    pr[0] = 0.0;
    let t = &t[..n * k];
    let pts = pt[k..].par_chunks_mut(rows_c * k);
    let prs = pr[1..].par_chunks_mut(rows_c);
    let rws = row.par_chunks_mut(rows_c);
    let tots = totals.par_chunks_mut(k + 1);
    pts.zip(prs)
        .zip(rws)
        .zip(tots)
        .enumerate()
        .for_each(|(c, (((pts, prs), rws), tot))| {
            let ts = &t[c * rows_c * k..((c + 1) * rows_c * k).min(n * k)];
            chunk_prefix_on(isa, ts, k, (pts, prs, rws, tot));
        });
}

multiversion! {
    fn chunk_prefix_on(ts: &[f32], k: usize, p: (&mut [f64], &mut [f64], &mut [f64], &mut [f64])) {
        chunk_prefix(ts, k, p.0, p.1, p.2, p.3);
    }
}

/// Rows per rayon task inside one video: a chunk of a 5 000-frame video is a few microseconds of
/// work, so that the threads share even one video evenly. Results depend on it (the prefix sums
/// are kept per chunk), not on the thread count.
const ROWS_PER_TASK: usize = 128;

/// T ← T ⊙ exp(−step·G), then the projection onto the frame marginal, and the prefix sums of the
/// new T into `w.next` (then swapped into `w.cur`). With `fused`, G of each chunk of rows is
/// computed first, in the same pass (the gradient of a row reads only its own row of T and the
/// prefix sums of the current T, which stay untouched until the swap); without, `w.g` holds it.
///
/// The product is formed in the log domain, L ← L − step·G, and T = exp(L − max) normalised: the
/// same plan as the reference's `T * exp(−step·G)` up to rounding, without its overflow to inf
/// (then NaN) for large steps and without rows collapsing to 0 when every entry underflows.
fn update(
    isa: Isa,
    w: &mut Work,
    fused: Option<Gradient<'_>>,
    n: usize,
    k: usize,
    nv: usize,
    step: f32,
) {
    if let Some(grad) = fused {
        prepare(w, k, &grad);
    }
    let Work {
        t,
        l,
        g,
        cur,
        next,
        colterm,
        offsets,
        ..
    } = w;
    t[nv * k..n * k].fill(0.0);
    let target = 1.0 / nv as f64;
    let view = fused.map(|g| GradientView {
        g,
        prefix: cur,
        offsets,
        colterm,
        n,
        k,
        nv,
    });
    let chunk = ROWS_PER_TASK * k;
    let (ts, ls, gs) = (
        t[..nv * k].par_chunks_mut(chunk),
        l[..nv * k].par_chunks_mut(chunk),
        g[..nv * k].par_chunks_mut(chunk),
    );
    let Prefix {
        pt,
        pr,
        row,
        totals,
    } = next;
    let (pts, prs, rws, tots) = (
        pt[k..].par_chunks_mut(chunk),
        pr[1..].par_chunks_mut(ROWS_PER_TASK),
        row.par_chunks_mut(ROWS_PER_TASK),
        totals.par_chunks_mut(k + 1),
    );
    ts.zip(ls)
        .zip(gs)
        .zip(pts.zip(prs).zip(rws).zip(tots))
        .enumerate()
        .for_each(|(c, (((ts, ls), gs), (((pts, prs), rws), tot)))| {
            let first = c * ROWS_PER_TASK;
            let view = view.as_ref();
            step_chunk_on(
                isa, view, first, ts, ls, gs, pts, prs, rws, tot, k, step, target,
            );
        });
    std::mem::swap(cur, next);
}

multiversion! {
    /// One row chunk of [`update`]: G of the chunk (when fused), the update, and the chunk's
    /// prefix sums of the new T for the next gradient, while the chunk is in cache.
    fn step_chunk_on(
        view: Option<&GradientView<'_>>,
        first: usize,
        ts: &mut [f32],
        ls: &mut [f32],
        gs: &mut [f32],
        pts: &mut [f64],
        prs: &mut [f64],
        rws: &mut [f64],
        tot: &mut [f64],
        k: usize,
        step: f32,
        target: f64,
    ) {
        // the common widths as constants: the row loops then unroll and lose their bounds
        // checks and iterator bookkeeping, which otherwise cost more than the arithmetic of a
        // short row (same operations in the same order, so the same bits). The body is written
        // out in each arm, so that every copy is compiled for each instruction set too.
        macro_rules! with_width {
            ($k:expr) => {{
                let k: usize = $k;
                if let Some(view) = view {
                    view.rows(k, first, ts, gs);
                }
                normalise_chunk(ts, ls, gs, k, step, target);
                chunk_prefix(ts, k, pts, prs, rws, tot);
            }};
        }
        #[cfg(test)]
        let k_known = if tests::RUNTIME_WIDTH.load(std::sync::atomic::Ordering::Relaxed) {
            0
        } else {
            k
        };
        #[cfg(not(test))]
        let k_known = k;
        match k_known {
            8 => with_width!(8),
            16 => with_width!(16),
            24 => with_width!(24),
            32 => with_width!(32),
            _ => with_width!(k),
        }
    }
}

/// The balanced-actions and unbalanced-frames variants of [`update`] (the caller recomputes the
/// prefix sums).
fn update_relaxed(
    w: &mut Work,
    n: usize,
    k: usize,
    actions: usize,
    nv: usize,
    step: f32,
    p: &AsotParams,
) {
    let Work {
        t, l, g, cur, col, ..
    } = w;
    let row = &mut cur.row;
    t[nv * k..n * k].fill(0.0);
    let target = 1.0 / nv as f64;
    l[..nv * k]
        .par_chunks_mut(ROWS_PER_TASK * k)
        .zip(g[..nv * k].par_chunks(ROWS_PER_TASK * k))
        .for_each(|(ls, gs)| {
            for (li, &gr) in ls.iter_mut().zip(gs) {
                *li -= step * gr;
            }
        });
    if p.balanced_actions {
        // Find the row and column potentials u, v with T = exp(L + u + v), rows summing to 1/n
        // and columns to 1/K.
        let (log_p, log_q) = (target.ln(), (1.0 / actions as f64).ln());
        row[..nv].fill(0.0);
        col.fill(0.0);
        for _ in 0..p.sinkhorn_iters.max(1) {
            // columns: v_j = log q − LSE_i (L_ij + u_i); stop once v no longer moves
            let mut moved = 0f64;
            for j in 0..actions {
                let m = (0..nv)
                    .map(|i| l[i * k + j] as f64 + row[i])
                    .fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = (0..nv)
                    .map(|i| (l[i * k + j] as f64 + row[i] - m).exp())
                    .sum();
                let v = if m.is_finite() {
                    log_q - (m + s.ln())
                } else {
                    0.0
                };
                moved = moved.max((v - col[j]).abs());
                col[j] = v;
            }
            // rows: u_i = log p − LSE_j (L_ij + v_j)
            for i in 0..nv {
                let li = &l[i * k..i * k + actions];
                let m = li
                    .iter()
                    .zip(col.iter())
                    .map(|(&x, &v)| x as f64 + v)
                    .fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = li
                    .iter()
                    .zip(col.iter())
                    .map(|(&x, &v)| (x as f64 + v - m).exp())
                    .sum();
                row[i] = if m.is_finite() {
                    log_p - (m + s.ln())
                } else {
                    0.0
                };
            }
            if moved < SINKHORN_TOL {
                break;
            }
        }
        for i in 0..nv {
            for j in 0..actions {
                let x = l[i * k + j] as f64 + row[i] + col[j];
                l[i * k + j] = x as f32;
                t[i * k + j] = x.exp() as f32;
            }
        }
    } else if p.unbalanced_frames {
        // only the total mass is fixed (to 1)
        let m = l[..nv * k]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0f64;
        for (x, &li) in t[..nv * k].iter_mut().zip(&l[..nv * k]) {
            *x = (li - m).exp();
            total += *x as f64;
        }
        let s = if total > 0.0 { 1.0 / total } else { 0.0 };
        t[..nv * k]
            .iter_mut()
            .for_each(|x| *x = (*x as f64 * s) as f32);
        let shift = (s.ln() as f32) - m;
        l[..nv * k].iter_mut().for_each(|x| *x += shift);
    }
}

/// One chunk of rows of the standard update: L ← L − step·G, T = exp(L − max) normalised to
/// `target` per row, and L shifted to log T.
#[inline(always)]
fn normalise_chunk(ts: &mut [f32], ls: &mut [f32], gs: &[f32], k: usize, step: f32, target: f64) {
    // L ← L − step·G, then T ← exp(L − max of the row), vectorised over the chunk
    for (lv, &gr) in ls.iter_mut().zip(gs.iter()) {
        *lv -= step * gr;
    }
    let mut maxes = [0f32; ROWS_PER_TASK];
    for (r, (ti, li)) in ts.chunks_mut(k).zip(ls.chunks(k)).enumerate() {
        let m = lane_max(li);
        row_map_from(ti, li, |x| x - m);
        maxes[r] = m;
    }
    super::simd::exp_inline(ts);
    // row sums, then their logs vectorised (one `ln` per row would cost as much as the
    // `exp`s of a short row)
    let mut sums = [0f32; ROWS_PER_TASK];
    let rows = ts.len() / k;
    for (r, ti) in ts.chunks(k).enumerate() {
        sums[r] = lane_sum(ti, |x| x);
    }
    let mut logs = sums;
    super::simd::ln_plus_inline(&mut logs[..rows], 0.0);
    let log_target = target.ln() as f32;
    for (r, (ti, li)) in ts.chunks_mut(k).zip(ls.chunks_mut(k)).enumerate() {
        // s ≥ 1 (the largest entry is exp(0)), so target/s cannot overflow; shift the logs alike:
        // L ← L − m + log(target) − log(s), where T = exp(L − m)·target/s
        let f = (target / sums[r] as f64) as f32;
        row_map(ti, |x| x * f);
        let shift = log_target - logs[r] - maxes[r];
        row_map(li, |x| x + shift);
    }
}

/// Sinkhorn stops when no column potential moves by more than this.
const SINKHORN_TOL: f64 = 1e-7;

#[cfg(test)]
mod tests {
    use super::*;

    /// Set: the chunk loop takes the run-time width path whatever K is (for the test that
    /// compares it with the constant widths).
    pub(super) static RUNTIME_WIDTH: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);

    /// Whether two plans are the same bits.
    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    #[test]
    fn objective_equals_a_dense_evaluation_and_falls_as_the_solver_runs() {
        let (n, k, nv) = (40, 5, 33);
        let cost: Vec<f32> = (0..n * k)
            .map(|x| ((x * 37 % 101) as f32 / 101.0) * 2.0)
            .collect();
        let p = AsotParams {
            radius: 0.1,
            alpha: 0.5,
            ..AsotParams::default()
        };
        let plan = solve(&cost, n, k, nv, &p).expect("solve");
        // dense: C_v with a = ⌊N r⌋ over the valid rows, C_a = 11ᵀ − I
        let a = (n as f64 * 0.1f64).floor() as usize;
        let t = |i: usize, j: usize| plan[i * k + j] as f64 / nv as f64;
        let mut gw = 0.0;
        for i in 0..nv {
            for m in 0..nv {
                let d = i.abs_diff(m);
                if d == 0 || d > a {
                    continue;
                }
                for j in 0..k {
                    let tca: f64 = (0..k).filter(|&l| l != j).map(|l| t(m, l)).sum();
                    gw += tca * t(i, j) / p.radius as f64;
                }
            }
        }
        let mut lin = 0.0;
        let mut h = 0.0;
        let mut cols = vec![0.0; k];
        for i in 0..nv {
            for j in 0..k {
                lin += cost[i * k + j] as f64 * t(i, j);
                h += -t(i, j) * t(i, j).ln() + t(i, j);
                cols[j] += t(i, j);
            }
        }
        let kl: f64 = cols.iter().map(|c| c * (c * k as f64).ln()).sum();
        let (al, la, ep) = (p.alpha as f64, p.lambda_actions as f64, p.eps as f64);
        let dense = (1.0 - al) * lin + al / 2.0 * gw + la * kl - ep * h;
        let fast = objective(&cost, &plan, n, k, nv, &p);
        assert!(
            (fast - dense).abs() < 1e-9 * dense.abs().max(1.0),
            "{fast} vs {dense}"
        );
        // mirror descent lowers the objective from the uniform start
        let start = solve(&cost, n, k, nv, &AsotParams { iters: 0, ..p }).expect("start");
        assert!(objective(&cost, &start, n, k, nv, &p) > fast);
    }

    #[test]
    fn constant_row_widths_give_the_plan_of_the_run_time_width() {
        // widths 8, 16, 24 and 32 (K padded to whole blocks) run a copy of the chunk loop with
        // the width as a constant; it must be the same arithmetic, bit for bit
        let (b, n) = (2, 300);
        let valid = [300, 77];
        for k in [3, 8, 12, 16, 20, 24, 29, 32] {
            let costs: Vec<f32> = (0..b * n * k)
                .map(|x| ((x as f32 * 0.618_034).fract() - 0.5) * 2.0 + ((x / k) % 5) as f32 * 0.1)
                .collect();
            let p = AsotParams::default();
            let solve = |runtime: bool| {
                RUNTIME_WIDTH.store(runtime, std::sync::atomic::Ordering::Relaxed);
                let plan = iterate(&costs, b, n, k, &valid, &p, Isa::detect()).expect("solve");
                RUNTIME_WIDTH.store(false, std::sync::atomic::Ordering::Relaxed);
                plan
            };
            assert!(same_bits(&solve(false), &solve(true)), "K = {k}");
        }
    }

    /// The AVX2 and AVX-512 builds of the hot loops must give the portable build's bits, in every
    /// variant.
    #[test]
    fn every_instruction_set_gives_the_same_plan() {
        let (b, n, k) = (3, 700, 22);
        let costs: Vec<f32> = (0..b * n * k)
            .map(|x| ((x as f32 * 0.618_034).fract() - 0.5) * 2.0 + ((x / k) % 7) as f32 * 0.1)
            .collect();
        let valid = [700, 333, 1];
        let variants = [
            AsotParams::default(),
            AsotParams {
                step: StepSize::Fixed(0.5),
                ..AsotParams::default()
            },
            AsotParams {
                balanced_actions: true,
                ..AsotParams::default()
            },
            AsotParams {
                unbalanced_frames: true,
                ..AsotParams::default()
            },
        ];
        for p in &variants {
            let plans: Vec<Vec<f32>> = Isa::available()
                .into_iter()
                .map(|isa| iterate(&costs, b, n, k, &valid, p, isa).expect("solve"))
                .collect();
            for other in &plans[1..] {
                assert!(same_bits(other, &plans[0]), "{p:?}");
            }
        }
    }
}
