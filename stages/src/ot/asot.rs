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
//! not grow with the radius), one `exp` and two `log`s per cell and iteration. Storage is f32 like
//! the reference; row, column and prefix sums are accumulated in f64. All work buffers are allocated
//! once per video before the loop. Videos run in parallel on the rayon pool; the only coupling is
//! the automatic step size, computed from the first gradient of every video of the batch.

use rayon::prelude::*;

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
    /// earlier once the column potentials settle).
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
            sinkhorn_iters: 1000,
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
}

/// Per-video work buffers, allocated once.
struct Work {
    t: Vec<f32>,
    /// log T (−inf on padded rows): the state of the mirror descent, so that entries of T that
    /// underflow to 0 keep their information
    l: Vec<f32>,
    g: Vec<f32>,
    row: Vec<f64>,
    col: Vec<f64>,
    /// prefix sums of T per column, (N+1)×K
    pt: Vec<f64>,
    /// prefix sums of rowsum(T), N+1
    pr: Vec<f64>,
    /// per-column term of the gradient (KL of the action marginal), K
    colterm: Vec<f32>,
    /// per row chunk: the chunk's column sums and row-sum total (K + 1)
    totals: Vec<f64>,
    /// per row chunk: the sums of the chunks before it (exclusive scan of `totals`)
    offsets: Vec<f64>,
}

impl Work {
    fn new(n: usize, k: usize) -> Self {
        Work {
            t: vec![0.0; n * k],
            l: vec![f32::NEG_INFINITY; n * k],
            g: vec![0.0; n * k],
            row: vec![0.0; n],
            col: vec![0.0; k],
            pt: vec![0.0; (n + 1) * k],
            pr: vec![0.0; n + 1],
            colterm: vec![0.0; k],
            totals: vec![0.0; n.div_ceil(ROWS_PER_TASK) * (k + 1)],
            offsets: vec![0.0; n.div_ceil(ROWS_PER_TASK) * (k + 1)],
        }
    }
}

fn check(
    costs: &[f32],
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
    if costs.len() != b * n * k {
        return Err(OtError::Shape(format!(
            "{} cost values for {b} videos of {n}×{k}",
            costs.len()
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
    for (v, video) in costs.chunks(n * k).enumerate() {
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
    rayon::scope(|_| iterate(costs, b, n, k, valid, p))
}

fn iterate(
    costs: &[f32],
    b: usize,
    n: usize,
    k: usize,
    valid: &[usize],
    p: &AsotParams,
) -> Result<Vec<f32>, OtError> {
    let a = (n as f64 * p.radius as f64).floor() as usize;
    let mut works: Vec<Work> = (0..b).map(|_| Work::new(n, k)).collect();
    works
        .par_iter_mut()
        .zip(valid.par_iter())
        .for_each(|(w, &nv)| {
            let init = 1.0 / (nv as f64 * k as f64);
            w.t[..nv * k].fill(init as f32);
            w.l[..nv * k].fill(init.ln() as f32);
            local_prefix(w, n, k);
        });
    let mut step = match p.step {
        StepSize::Fixed(s) => s,
        StepSize::Auto => f32::NAN,
    };
    for it in 0..p.iters {
        // G of padded rows only matters for the automatic step (it takes the batch's max over
        // every row, as the reference does); afterwards only valid rows are computed
        let all_rows = it == 0 && p.step == StepSize::Auto;
        works
            .par_iter_mut()
            .zip(costs.par_chunks(n * k))
            .zip(valid.par_iter())
            .for_each(|((w, c), &nv)| {
                gradient(w, c, n, k, nv, if all_rows { n } else { nv }, a, p);
            });
        if it == 0 && p.step == StepSize::Auto {
            let max = works
                .iter()
                .map(|w| w.g.iter().copied().fold(f32::NEG_INFINITY, f32::max))
                .fold(f32::NEG_INFINITY, f32::max);
            step = 4.0 / max;
            if !(max > 0.0 && step.is_finite()) {
                return Err(OtError::Step(max));
            }
        }
        works
            .par_iter_mut()
            .zip(valid.par_iter())
            .for_each(|(w, &nv)| update(w, n, k, nv, step, p));
    }
    let mut out = Vec::with_capacity(b * n * k);
    for (w, &nv) in works.iter().zip(valid) {
        let scale = nv as f32;
        out.extend(w.t.iter().map(|&x| x * scale));
    }
    Ok(out)
}

/// G for the first `rows` rows (valid rows first, then padding) of one video into `w.g`.
#[allow(clippy::too_many_arguments)]
fn gradient(
    w: &mut Work,
    c: &[f32],
    n: usize,
    k: usize,
    nv: usize,
    rows: usize,
    a: usize,
    p: &AsotParams,
) {
    let Work {
        t,
        g,
        row,
        col,
        pt,
        pr,
        colterm,
        totals,
        offsets,
        ..
    } = w;
    // Prefix sums (f64) are kept per fixed row chunk (`local_prefix`, or fused into `update`),
    // so the result does not depend on the thread count; each chunk's offset is a scan over the
    // chunk totals, and the gradient adds it when it reads a prefix sum.
    let (rows_c, k1) = (ROWS_PER_TASK, k + 1);
    // exclusive scan of the chunk totals; the grand totals are the column sums
    col.fill(0.0);
    let mut total_rows = 0.0f64;
    for (tot, off) in totals.chunks(k1).zip(offsets.chunks_mut(k1)) {
        off[..k].copy_from_slice(&col[..k]);
        for j in 0..k {
            col[j] += tot[j];
        }
        off[k] = total_rows;
        total_rows += tot[k];
    }
    let inv_r = if p.radius > 0.0 { 1.0 / p.radius } else { 0.0 };
    let alpha = p.alpha;
    let lin = 1.0 - p.alpha;
    let eps = p.eps;
    // action-marginal term, one per column
    for (kl, &s) in colterm.iter_mut().zip(col.iter()) {
        *kl = if p.balanced_actions {
            0.0
        } else {
            p.lambda_actions * (((s * k as f64) as f32 + 1e-12).ln() + 1.0)
        };
    }
    let kl = &*colterm;
    let nv_f = nv as f64;
    let (t, row, pt, pr, offsets) = (&*t, &*row, &*pt, &*pr, &*offsets);
    // prefix sum number x (rows 0..x) is the local prefix plus the offset of row x−1's chunk
    let chunk_of = |x: usize| x.saturating_sub(1) / rows_c;
    // rows are independent from here on: chunks of rows run on the rayon pool
    g[..rows * k]
        .par_chunks_mut(ROWS_PER_TASK * k)
        .enumerate()
        .for_each(|(chunk, gs)| {
            let first = chunk * ROWS_PER_TASK;
            // g ← ln(T + 1e-12) for the whole chunk, vectorised; the loop below finishes G in place
            super::simd::ln_plus_into(&t[first * k..first * k + gs.len()], gs, 1e-12);
            for (r, gi) in gs.chunks_mut(k).enumerate() {
                let i = first + r;
                let ci = &c[i * k..(i + 1) * k];
                let ti = &t[i * k..(i + 1) * k];
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
                    let base = ((pr[hi] + ohi[k]) - (pr[lo] + olo[k]) - row[i]) as f32;
                    let (plo, phi) = (&pt[lo * k..(lo + 1) * k], &pt[hi * k..(hi + 1) * k]);
                    for j in 0..k {
                        let colwin = ((phi[j] + ohi[j]) - (plo[j] + olo[j])) as f32;
                        let gw = (base - colwin + ti[j]) * inv_r;
                        gi[j] = alpha * gw + lin * ci[j] + eps * gi[j] + kl[j] + frame_kl;
                    }
                } else {
                    for j in 0..k {
                        gi[j] = lin * ci[j] + eps * gi[j] + kl[j] + frame_kl;
                    }
                }
            }
        });
}

/// Local prefix sums of one row chunk: `ts` holds the chunk's rows of T that may be non-zero
/// (`ts.len() / k` of them); the chunk's remaining rows are padding, where T is 0.
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
            // accumulate and store in one loop (a separate copy of K values per row compiles to a
            // memmove call)
            for ((c, t), &x) in cur
                .iter_mut()
                .zip(tot.iter_mut())
                .zip(&ts[r * k..(r + 1) * k])
            {
                let x = x as f64;
                s += x;
                *t += x;
                *c = *t;
            }
        } else {
            cur.copy_from_slice(&tot[..k]);
        }
        *rw = s;
        tot[k] += s;
        *p = tot[k];
    }
}

/// Local prefix sums of every row chunk of the video, in parallel.
fn local_prefix(w: &mut Work, n: usize, k: usize) {
    let Work {
        t,
        row,
        pt,
        pr,
        totals,
        ..
    } = w;
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
            chunk_prefix(ts, k, pts, prs, rws, tot);
        });
}

/// Rows per rayon task inside one video (the work per row is ~K transcendental calls).
const ROWS_PER_TASK: usize = 512;

/// T ← T ⊙ exp(−step·G), then the projection onto the frame marginal (and, when balanced, onto
/// both marginals with a log-domain Sinkhorn projection). The product is formed in the log domain,
/// L ← L − step·G, and T = exp(L − max) normalised: the same plan as the reference's
/// `T * exp(−step·G)` up to rounding, without its overflow to inf (then NaN) for large steps and
/// without rows collapsing to 0 when every entry underflows.
fn update(w: &mut Work, n: usize, k: usize, nv: usize, step: f32, p: &AsotParams) {
    if p.balanced_actions || p.unbalanced_frames {
        update_relaxed(w, n, k, nv, step, p);
        local_prefix(w, n, k);
        return;
    }
    let Work {
        t,
        l,
        g,
        row,
        pt,
        pr,
        totals,
        ..
    } = w;
    t[nv * k..n * k].fill(0.0);
    let target = 1.0 / nv as f64;
    let chunk = ROWS_PER_TASK * k;
    let (ts, ls, gs) = (
        t[..nv * k].par_chunks_mut(chunk),
        l[..nv * k].par_chunks_mut(chunk),
        g[..nv * k].par_chunks(chunk),
    );
    let (pts, prs, rws, tots) = (
        pt[k..].par_chunks_mut(chunk),
        pr[1..].par_chunks_mut(ROWS_PER_TASK),
        row.par_chunks_mut(ROWS_PER_TASK),
        totals.par_chunks_mut(k + 1),
    );
    ts.zip(ls)
        .zip(gs)
        .zip(pts.zip(prs).zip(rws).zip(tots))
        .for_each(|(((ts, ls), gs), (((pts, prs), rws), tot))| {
            normalise_chunk(ts, ls, gs, k, step, target);
            // the next gradient's prefix sums, while this chunk is in cache
            chunk_prefix(ts, k, pts, prs, rws, tot);
        });
}

/// The balanced-actions and unbalanced-frames variants of [`update`].
fn update_relaxed(w: &mut Work, n: usize, k: usize, nv: usize, step: f32, p: &AsotParams) {
    let Work {
        t, l, g, row, col, ..
    } = w;
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
        let (log_p, log_q) = (target.ln(), (1.0 / k as f64).ln());
        row[..nv].fill(0.0);
        col.fill(0.0);
        for _ in 0..p.sinkhorn_iters.max(1) {
            // columns: v_j = log q − LSE_i (L_ij + u_i); stop once v no longer moves
            let mut moved = 0f64;
            for j in 0..k {
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
                let li = &l[i * k..(i + 1) * k];
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
            for j in 0..k {
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
fn normalise_chunk(ts: &mut [f32], ls: &mut [f32], gs: &[f32], k: usize, step: f32, target: f64) {
    // L ← L − step·G, then T ← exp(L − max of the row), vectorised over the chunk
    let mut maxes = [0f32; ROWS_PER_TASK];
    for (r, ((ti, li), gi)) in ts
        .chunks_mut(k)
        .zip(ls.chunks_mut(k))
        .zip(gs.chunks(k))
        .enumerate()
    {
        let mut m = f32::NEG_INFINITY;
        for (lv, &gr) in li.iter_mut().zip(gi) {
            *lv -= step * gr;
            m = m.max(*lv);
        }
        for (x, &lv) in ti.iter_mut().zip(li.iter()) {
            *x = lv - m;
        }
        maxes[r] = m;
    }
    super::simd::exp(ts);
    // row sums, then their logs vectorised (one `ln` per row would cost as much as the
    // `exp`s of a short row)
    let mut sums = [0f32; ROWS_PER_TASK];
    let rows = ts.len() / k;
    for (r, ti) in ts.chunks(k).enumerate() {
        sums[r] = ti.iter().sum();
    }
    let mut logs = sums;
    super::simd::ln_plus(&mut logs[..rows], 0.0);
    let log_target = target.ln() as f32;
    for (r, (ti, li)) in ts.chunks_mut(k).zip(ls.chunks_mut(k)).enumerate() {
        // s ≥ 1 (the largest entry is exp(0)), so target/s cannot overflow; shift the logs alike:
        // L ← L − m + log(target) − log(s), where T = exp(L − m)·target/s
        let f = (target / sums[r] as f64) as f32;
        ti.iter_mut().for_each(|x| *x *= f);
        let shift = log_target - logs[r] - maxes[r];
        li.iter_mut().for_each(|x| *x += shift);
    }
}

/// Sinkhorn stops when no column potential moves by more than this.
const SINKHORN_TOL: f64 = 1e-7;
