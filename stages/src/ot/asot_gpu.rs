//! The ASOT solver on wgpu (`asot.wgsl`): the same iterations as the CPU reference
//! ([`super::asot`]), for a batch of videos padded to N rows in one set of dispatches.
//!
//! Contract: [`solve_batch`] takes what [`super::asot::solve_batch`] takes and returns the same
//! B×N×K plans (valid rows sum to 1, padded rows 0), checked the same way: the default problem
//! (KL-relaxed action marginal, exact frame marginal), balanced actions (the action marginal
//! enforced by a Sinkhorn projection after each step) and unbalanced frames (the frame marginal
//! relaxed by a KL term), with the automatic or a fixed step.
//!
//! How it runs: one upload of the costs, then per iteration three dispatches over the whole
//! batch (chunk-local prefix sums per column, their scan over chunks, the fused gradient and
//! update per row; the first iteration with the automatic step adds the per-row max of G and a
//! one-workgroup reduction), all recorded into one command buffer; the step size never comes
//! back to the CPU, the plan comes back once at the end. Unbalanced frames replace the row update
//! by four passes (the step, each chunk's and each video's log-sum-exp, the normalisation to a
//! total mass of 1). Balanced actions follow the step with the log-domain Sinkhorn projection,
//! four passes per Sinkhorn iteration (column log-sum-exps by chunk, their combination into the
//! column potentials, the convergence flag, the row potentials); as on the CPU it stops per
//! video once the column potentials settle, so it is submitted in blocks of
//! [`SINKHORN_BLOCK`] iterations and only the videos' flags come back between blocks (this
//! variant cannot be recorded into a resident training step, [`solve_resident`] refuses it).
//! A batch above the adapter's limit per storage binding runs as groups of whole videos with the
//! same plans ([`solve_batch_within`]).
//! Cost: O(iters · B · N · K) work, one
//! `exp` and one `log` per cell and iteration, like the CPU; storage about 16 bytes per cell.
//!
//! Precision and tolerance: the GPU works in f32 throughout, where the CPU accumulates its row,
//! column and prefix sums in f64, and WGSL's `exp`/`log` are not the CPU's polynomials. The
//! plans therefore agree to rounding, not to the bit. The parity tests (`tests/gpu_parity.rs`)
//! hold the GPU to a max absolute difference of 1e-4 per plan entry (entries lie in [0, 1]; with
//! unbalanced frames a row may carry more than its share, and the bound is 1e-4 of the largest
//! entry) and to the same argmax on at least 99.9 % of frames. Unbalanced frames with λ_f of
//! about 1 or more amplify rounding (at λ_f = 1 the CPU's own plan moves by 5e-3 when the costs
//! change by a relative 1e-6), and no two implementations agree that closely there. Balanced
//! actions on real affinities can be as sensitive: on the salat example (N = 5 292, K = 8,
//! ε = 0.07) the CPU's own plan moves by 1.7e-4 when the affinities change by a relative 1e-7 and
//! by 5.9e-4 at 1e-6 (where it stops its projection moves with the input), and the GPU's is
//! 4.5e-3 from the CPU's (3.8e-4 at ε = 0.01), with the same argmax everywhere and the same
//! marginals (columns within 2e-5); `pipeline/tests/device.rs` holds that case to its
//! segmentation and marginals. The balanced projection stops in f32 once no
//! column potential moves by more than [`SINKHORN_TOL`] relative to max(1, |v|), where the CPU's
//! f64 projection stops at an absolute 1e-7 (f32 potentials cannot settle that finely).

use super::asot::{AsotParams, OtError, StepSize, check, check_finite, check_problem};
use crate::gpu::{Binding, GpuContext, GpuError};
use crate::linalg_gpu::{GpuMat, Ops};

/// Rows per chunk of the prefix sums (the `rows_per_chunk` override constant): the chunk's serial
/// sum bounds the rounding of the window sums, the number of chunks the serial scan.
const ROWS_PER_CHUNK: usize = 128;
const WORKGROUP: usize = 64;

/// Sinkhorn iterations of the balanced projection recorded per submission; between blocks only the
/// videos' convergence flags come back.
pub const SINKHORN_BLOCK: usize = 32;
/// The balanced projection has settled once no column potential moves by more than this,
/// relative to max(1, |v|): a few f32 rounding steps.
pub const SINKHORN_TOL: f32 = 1e-6;

const BINDINGS: [Binding; 9] = [
    Binding::Uniform,
    Binding::Read,
    Binding::Read,
    Binding::ReadWrite,
    Binding::ReadWrite,
    Binding::ReadWrite,
    Binding::ReadWrite,
    Binding::ReadWrite,
    Binding::ReadWrite,
];
const ENTRIES: [&str; 15] = [
    "init",
    "prefix",
    "scan",
    "row_max",
    "reduce_step",
    "update",
    "step_l",
    "ub_chunks",
    "ub_video_sum",
    "ub_finish",
    "sk_cols",
    "sk_colsum",
    "sk_check",
    "sk_rows",
    "sk_finish",
];

/// `Params` of `asot.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    b: u32,
    n: u32,
    k: u32,
    a: u32,
    chunks: u32,
    gw: u32,
    fixed_step: u32,
    colterm: u32,
    alpha: f32,
    lin: f32,
    eps: f32,
    lambda: f32,
    inv_r: f32,
    step: f32,
    state: u32,
    balanced: u32,
    unbalanced: u32,
    lambda_frames: f32,
    sinkhorn_tol: f32,
    row0: u32,
    row_end: u32,
    chunk0: u32,
    chunk_end: u32,
    cell0: u32,
    pt0: u32,
    pad: [u32; 3],
}

/// `Video` of `asot.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Video {
    nv: u32,
    t0: f32,
    l0: f32,
    marginal: f32,
    log_marginal: f32,
    pad: [f32; 3],
}

/// Solves a batch of `b` videos padded to N frames on the GPU: `costs` is B×N×K, `valid[v]` the
/// real frames of video v (a prefix). Returns the B×N×K plans. A batch whose buffers would exceed
/// the adapter's limit per storage binding runs as groups of whole videos
/// ([`solve_batch_within`]).
pub fn solve_batch(
    ctx: &GpuContext,
    costs: &[f32],
    b: usize,
    n: usize,
    k: usize,
    valid: &[usize],
    p: &AsotParams,
) -> Result<Vec<f32>, OtError> {
    solve_batch_within(ctx, costs, b, n, k, valid, p, ctx.max_binding())
}

/// [`solve_batch`] with every buffer of one dispatch held under `limit` bytes: a batch that does
/// not fit runs as groups of whole videos, one after the other. The automatic step couples the
/// batch (4 / the first gradient's max over every video), so with [`StepSize::Auto`] each group
/// first runs one iteration to find its max, and every group then runs with the step the GPU
/// computed for the group holding the batch's max, fixed: the same plans as one dispatch, bit for
/// bit. A video that does not fit alone is solved alone in row windows, each binding its rows
/// and the prefix sums its GW windows read (the same arithmetic, so again the same plan, bit for
/// bit); only a video whose prefix-sum halo (2·⌊N·r⌋ rows) alone exceeds `limit` is a
/// [`GpuError::TooLarge`].
#[allow(clippy::too_many_arguments)]
pub fn solve_batch_within(
    ctx: &GpuContext,
    costs: &[f32],
    b: usize,
    n: usize,
    k: usize,
    valid: &[usize],
    p: &AsotParams,
    limit: u64,
) -> Result<Vec<f32>, OtError> {
    check(costs, b, n, k, valid, p)?;
    // the largest buffer per video: the prefix sums, (N+1)×(K+1) values
    let per_video = ((n + 1) * (k + 1) * 4) as u64;
    // (a video too long for one binding is a group of its own, solved in row windows)
    let group = usize::try_from(limit / per_video)
        .unwrap_or(usize::MAX)
        .max(1);
    let run_group = |costs: &[f32], b: usize, valid: &[usize], p: &AsotParams| {
        solve_group(ctx, costs, b, n, k, valid, p, limit)
    };
    if group >= b {
        return run_group(costs, b, valid, p).map(|(plan, _)| plan);
    }
    let cell = n * k;
    let groups: Vec<std::ops::Range<usize>> = (0..b)
        .step_by(group)
        .map(|first| first..(first + group).min(b))
        .collect();
    let mut fixed = *p;
    if p.step == StepSize::Auto && p.iters > 0 {
        let first = AsotParams { iters: 1, ..*p };
        let (mut max, mut step) = (f32::NEG_INFINITY, f32::NAN);
        for g in &groups {
            let (_, (m, s)) = run_group(
                &costs[g.start * cell..g.end * cell],
                g.len(),
                &valid[g.clone()],
                &first,
            )
            .or_else(|e| match e {
                // a group's own max may be ≤ 0 while the batch's is not
                OtError::Step(m) => Ok((Vec::new(), (m, f32::NAN))),
                e => Err(e),
            })?;
            if m > max {
                (max, step) = (m, s);
            }
        }
        if !(max > 0.0 && step.is_finite()) {
            return Err(OtError::Step(max));
        }
        fixed.step = StepSize::Fixed(step);
    }
    let mut out = Vec::with_capacity(b * cell);
    for g in &groups {
        let (plan, _) = run_group(
            &costs[g.start * cell..g.end * cell],
            g.len(),
            &valid[g.clone()],
            &fixed,
        )?;
        out.extend(plan);
    }
    Ok(out)
}

/// One dispatch (or, for one video above `limit`, one per row window): the plans, and the first
/// iteration's max of G with the step the GPU took from it (NaN with a fixed step).
#[allow(clippy::too_many_arguments)]
fn solve_group(
    ctx: &GpuContext,
    costs: &[f32],
    b: usize,
    n: usize,
    k: usize,
    valid: &[usize],
    p: &AsotParams,
    limit: u64,
) -> Result<(Vec<f32>, (f32, f32)), OtError> {
    // bound in row windows if one video does not fit a binding ([`spans`])
    let cost = ctx.upload_windowed("asot cost", costs)?;
    let solver = Solver::new(ctx, cost, b, n, k, valid, p, Some(limit))?;
    let out = solver.run(ctx, |_| {}, &[])?;
    let [plan, cols] = <[Vec<f32>; 2]>::try_from(out).map_err(|_| readback_error(ctx))?;
    let auto = (cols[solver.state + 1], cols[solver.state]);
    let auto = if p.step == StepSize::Auto {
        auto
    } else {
        (f32::NAN, f32::NAN)
    };
    Ok((solver.finish(plan, &cols)?, auto))
}

/// The cost of OT2/OT3 and of OT1 without its SWD term, C = 1 − F Aᵀ + ρ·|i/N − j/K|
/// (`cost.wgsl`), built on the GPU and solved there without a round trip: `f` is B×N×d (videos
/// padded to N rows), `a` K×d. Returns the B×N×K costs (as the CPU's `cosine_cost` and
/// `add_temporal_prior` give them, to rounding) and the plans.
#[allow(clippy::too_many_arguments)]
pub fn solve_embeddings(
    ctx: &GpuContext,
    f: &[f32],
    a: &[f32],
    (b, n, d, k): (usize, usize, usize, usize),
    rho: f32,
    valid: &[usize],
    p: &AsotParams,
) -> Result<(Vec<f32>, Vec<f32>), OtError> {
    check_problem(b, n, k, valid, p)?;
    if f.len() != b * n * d || a.len() != k * d || d == 0 {
        return Err(OtError::Shape(format!(
            "{} embedding values for {b} videos of {n}×{d} and {} action values for {k}×{d}",
            f.len(),
            a.len()
        )));
    }
    let cells = b * n * k;
    let cost = ctx.scratch("asot cost", cells)?;
    let cost_kernel = super::cost_gpu::kernel(ctx)?;
    let cost_params = super::cost_gpu::Params::new(b, n, k, d, rho)
        .ok_or_else(|| too_big(ctx, b, n, k, "cells"))?;
    let uniform = ctx.uniform("cost params", &cost_params);
    let fb = ctx.upload("frame embeddings", f)?;
    let ab = ctx.upload("action embeddings", a)?;
    let cost_bound = ctx.bind(&cost_kernel, &[&uniform, &fb, &ab, &cost]);
    let solver = Solver::new(ctx, cost, b, n, k, valid, p, None)?;
    let build_cost = |pass: &mut wgpu::ComputePass<'_>| {
        ctx.dispatch(
            pass,
            &cost_kernel,
            &cost_bound,
            "cosine_prior",
            cells as u64,
        );
    };
    let out = solver.run(ctx, build_cost, &[(&solver.cost, cells)])?;
    let [plan, cols, costs] = <[Vec<f32>; 3]>::try_from(out).map_err(|_| readback_error(ctx))?;
    // the CPU checks its costs before solving; here they exist only now
    check_finite(&costs, n, k)?;
    let plans = solver.finish(plan, &cols)?;
    Ok((costs, plans))
}

/// What [`solve_resident`] leaves on the GPU.
#[derive(Debug, Clone)]
pub struct ResidentSolve {
    /// B·N×K costs.
    pub cost: GpuMat,
    /// B·N×K plans, valid rows summing to 1, padded rows 0 (as [`solve_batch`] returns them).
    pub plan: GpuMat,
    /// 1×2: the automatic step and the first gradient's max it came from, for [`check_step`]
    /// once read back with the step's other scalars.
    pub state: GpuMat,
}

/// The cost of [`solve_embeddings`] and its solve, recorded into `ops` from embeddings already
/// on the GPU (`f` B·N×d, videos padded to N rows; `a` K×d), with nothing read back: the
/// resident training step's OT. `extra` (a B·N×K term and its weight, e.g. OT1's SWD term) is
/// added to the cost before the solve. The step-size check the CPU makes before returning waits
/// for [`check_step`] on [`ResidentSolve::state`]. Balanced actions are refused
/// ([`GpuError::Unsupported`]): their projection's length depends on the data.
#[allow(clippy::too_many_arguments)]
pub fn solve_resident(
    ops: &mut Ops<'_>,
    f: &GpuMat,
    a: &GpuMat,
    (b, n, k): (usize, usize, usize),
    rho: f32,
    valid: &[usize],
    p: &AsotParams,
    extra: Option<(&GpuMat, f32)>,
) -> Result<ResidentSolve, OtError> {
    check_problem(b, n, k, valid, p)?;
    if p.balanced_actions {
        // its projection stops on the data, which a step with nothing read back cannot wait for
        return Err(GpuError::Unsupported(
            "the balanced-actions solver inside a resident training step (`clot solve` runs it)"
                .into(),
        )
        .into());
    }
    let d = f.cols;
    if f.rows != b * n || a.rows != k || a.cols != d || d == 0 {
        return Err(OtError::Shape(format!(
            "{}×{} embeddings for {b} videos of {n} rows and {}×{} actions for K = {k}",
            f.rows, f.cols, a.rows, a.cols
        )));
    }
    let ctx = ops.ctx();
    // the cost kernel binds whole buffers: give each operand one of its own
    let f = if f.offset == 0 {
        f.clone()
    } else {
        ops.copy(f)?
    };
    let a = ops.copy(a)?;
    let cells = b * n * k;
    let cost = ctx.scratch("asot cost", cells)?;
    let cost_kernel = super::cost_gpu::kernel(ctx)?;
    let cost_params = super::cost_gpu::Params::new(b, n, k, d, rho)
        .ok_or_else(|| too_big(ctx, b, n, k, "cells"))?;
    let uniform = ctx.uniform("cost params", &cost_params);
    let cost_bound = ctx.bind(&cost_kernel, &[&uniform, &f.buf, &a.buf, &cost]);
    {
        let mut pass = ops
            .submission()
            .encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("cost"),
                timestamp_writes: None,
            });
        ctx.dispatch(
            &mut pass,
            &cost_kernel,
            &cost_bound,
            "cosine_prior",
            cells as u64,
        );
    }
    let cost_mat = GpuMat {
        buf: cost.clone(),
        offset: 0,
        rows: b * n,
        cols: k,
    };
    if let Some((term, weight)) = extra {
        ops.axpy(weight, term, &cost_mat)?;
    }
    let solver = Solver::new(ctx, cost, b, n, k, valid, p, None)?;
    solver.record(ctx, &mut ops.submission().encoder, |_| {});
    let plan = GpuMat {
        buf: solver.t.clone(),
        offset: 0,
        rows: b * n,
        cols: k,
    };
    // valid rows sum to 1/nv in the solver: scale each video's rows by nv
    let scale: Vec<f32> = valid
        .iter()
        .flat_map(|&nv| std::iter::repeat_n(nv as f32, n))
        .collect();
    let scale = GpuMat::upload(ctx, "plan scale", &scale, b * n, 1)?;
    ops.scale_rows(&plan, &scale)?;
    Ok(ResidentSolve {
        cost: cost_mat,
        plan,
        state: GpuMat {
            buf: solver.cols.clone(),
            offset: solver.state,
            rows: 1,
            cols: 2,
        },
    })
}

/// The automatic step's check, as the CPU makes it: `state` is (step, max of the first
/// gradient); an error when the max is not positive (the step is undefined).
pub fn check_step(p: &AsotParams, state: &[f32]) -> Result<(), OtError> {
    if p.step == StepSize::Auto && p.iters > 0 {
        let (step, max) = (state[0], state[1]);
        if !(max > 0.0 && step.is_finite()) {
            return Err(OtError::Step(max));
        }
    }
    Ok(())
}

fn readback_error(ctx: &GpuContext) -> OtError {
    OtError::from(GpuError::Device {
        adapter: ctx.describe(),
        why: "the read-back returned the wrong number of buffers".into(),
    })
}

fn too_big(ctx: &GpuContext, b: usize, n: usize, k: usize, what: &str) -> OtError {
    OtError::from(GpuError::TooLarge {
        what: format!("the ASOT solve of {b} videos × {n} frames × {k} actions ({what})"),
        bytes: u64::MAX,
        limit: ctx.max_binding(),
        adapter: ctx.describe(),
    })
}

/// A row window of one solve: its bind group and how many rows and row chunks it covers.
struct Window {
    bound: wgpu::BindGroup,
    rows: usize,
    chunks: usize,
}

/// The part of a solve one window binds: flat rows (v·N + i) and prefix-sum rows (v·(N+1) + x).
#[derive(Debug, Clone, PartialEq)]
struct Span {
    rows: std::ops::Range<usize>,
    chunks: std::ops::Range<usize>,
    pt: std::ops::Range<usize>,
}

impl Span {
    fn whole(b: usize, n: usize) -> Span {
        Span {
            rows: 0..b * n,
            chunks: 0..b * n.div_ceil(ROWS_PER_CHUNK),
            pt: 0..b * (n + 1),
        }
    }
}

/// Prefix-sum windows start at a multiple of this many rows, so that every window's byte offset
/// is a multiple of 256 (the largest storage offset alignment WebGPU allows), whatever K is; row
/// windows start at multiples of [`ROWS_PER_CHUNK`] (a multiple of it).
const PT_ALIGN_ROWS: usize = 64;

/// The windows of a solve of `b` videos of `n` frames and `k` actions (window half-width `a`)
/// with at most `limit` bytes per binding: one covering everything when every buffer fits, else,
/// for a single video, row windows of whole chunks, each binding its rows of the costs and the
/// plan and its rows of the prefix sums with the `a` rows either side that its GW windows read.
/// A [`GpuError::TooLarge`] when several videos do not fit (they are grouped by the caller) or
/// one video's halo alone does not.
fn spans(
    ctx: &GpuContext,
    (b, n, k, a): (usize, usize, usize, usize),
    limit: u64,
) -> Result<Vec<Span>, OtError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let (cell_row, pt_row) = (k * 4, (k + 1) * 4);
    let fits = b * n * cell_row <= limit && b * (n + 1) * pt_row <= limit;
    if fits {
        return Ok(vec![Span::whole(b, n)]);
    }
    let halo = 2 * a + 1 + PT_ALIGN_ROWS;
    let rows = (limit / pt_row).saturating_sub(halo).min(limit / cell_row) / ROWS_PER_CHUNK
        * ROWS_PER_CHUNK;
    if b != 1 || rows == 0 {
        let what = if b == 1 {
            format!(
                "the ASOT solve of one video of {n} frames × {k} actions, in row windows (each \
                 needs the prefix sums of {halo} rows around its own)"
            )
        } else {
            format!("the ASOT solve of {b} videos of {n} frames × {k} actions in one dispatch")
        };
        return Err(GpuError::TooLarge {
            what,
            bytes: ((n + 1) * pt_row) as u64,
            limit: limit as u64,
            adapter: ctx.describe(),
        }
        .into());
    }
    Ok((0..n)
        .step_by(rows)
        .map(|r0| {
            let r1 = (r0 + rows).min(n);
            let p0 = r0.saturating_sub(a) / PT_ALIGN_ROWS * PT_ALIGN_ROWS;
            Span {
                rows: r0..r1,
                chunks: r0 / ROWS_PER_CHUNK..r1.div_ceil(ROWS_PER_CHUNK),
                pt: p0..(r1 + a + 1).min(n + 1),
            }
        })
        .collect())
}

/// What one invocation of a solver pass covers (asot.wgsl).
#[derive(Debug, Clone, Copy)]
enum Threads {
    /// A row of a video (B·N).
    Rows,
    /// A column, or the row sums, of a row chunk (B·C·(K+1)).
    ChunkColumns,
    /// An action of a row chunk (B·C·K).
    ChunkActions,
    /// A row chunk (B·C).
    Chunks,
    /// A column, or the row sums, of a video (B·(K+1)).
    Columns,
    /// An action of a video (B·K).
    Actions,
    /// A video (B).
    Videos,
    /// One workgroup.
    One,
}

fn compute_pass(encoder: &mut wgpu::CommandEncoder) -> wgpu::ComputePass<'_> {
    encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("asot"),
        timestamp_writes: None,
    })
}

/// One solve's buffers and bindings on the GPU, with the cost already there.
struct Solver {
    kernel: std::sync::Arc<crate::gpu::Kernel>,
    /// One bind group per row window (one covering everything unless a video is split).
    windows: Vec<Window>,
    cost: wgpu::Buffer,
    t: wgpu::Buffer,
    cols: wgpu::Buffer,
    aux: wgpu::Buffer,
    shape: (usize, usize, usize, usize),
    valid: Vec<usize>,
    state: usize,
    p: AsotParams,
}

impl Solver {
    /// `split`: the bytes one binding may hold, when a single video too long for one binding may
    /// be solved in row windows (its buffers then only need to fit the device's largest buffer,
    /// `cost` too); `None` binds every buffer whole (the caller has checked them).
    #[allow(clippy::too_many_arguments)]
    fn new(
        ctx: &GpuContext,
        cost: wgpu::Buffer,
        b: usize,
        n: usize,
        k: usize,
        valid: &[usize],
        p: &AsotParams,
        split: Option<u64>,
    ) -> Result<Solver, OtError> {
        let cells = b
            .checked_mul(n)
            .and_then(|x| x.checked_mul(k))
            .ok_or_else(|| too_big(ctx, b, n, k, "cells"))?;
        let to_u32 =
            |x: usize, what: &str| u32::try_from(x).map_err(|_| too_big(ctx, b, n, k, what));
        let chunks = n.div_ceil(ROWS_PER_CHUNK);
        let a = (n as f64 * p.radius as f64).floor() as usize;
        let colterm = b * chunks * (k + 1);
        let state = colterm + b * k;
        let params = Params {
            b: to_u32(b, "videos")?,
            n: to_u32(n, "frames")?,
            k: to_u32(k, "actions")?,
            a: to_u32(a.min(n), "radius")?,
            chunks: to_u32(chunks, "chunks")?,
            gw: u32::from(a > 0 && p.alpha > 0.0),
            fixed_step: u32::from(matches!(p.step, StepSize::Fixed(_))),
            colterm: to_u32(colterm, "column sums")?,
            alpha: p.alpha,
            lin: 1.0 - p.alpha,
            eps: p.eps,
            lambda: p.lambda_actions,
            inv_r: if p.radius > 0.0 { 1.0 / p.radius } else { 0.0 },
            step: match p.step {
                StepSize::Fixed(s) => s,
                StepSize::Auto => 0.0,
            },
            state: to_u32(state, "column sums")?,
            balanced: u32::from(p.balanced_actions),
            unbalanced: u32::from(p.unbalanced_frames),
            lambda_frames: p.lambda_frames,
            sinkhorn_tol: SINKHORN_TOL,
            row0: 0,
            row_end: to_u32(b * n, "frames")?,
            chunk0: 0,
            chunk_end: to_u32(b * chunks, "chunks")?,
            cell0: 0,
            pt0: 0,
            pad: [0; 3],
        };
        to_u32(cells, "cells")?;
        to_u32((b * (n + 1)).saturating_mul(k + 1), "prefix sums")?;
        let videos: Vec<Video> = valid
            .iter()
            .map(|&nv| {
                let init = 1.0 / (nv as f64 * k as f64);
                let target = 1.0 / nv as f64;
                Video {
                    nv: nv as u32,
                    t0: init as f32,
                    l0: init.ln() as f32,
                    marginal: target as f32,
                    log_marginal: target.ln() as f32,
                    pad: [0.0; 3],
                }
            })
            .collect();
        let kernel = ctx.kernel(
            "ot/asot.wgsl",
            include_str!("asot.wgsl"),
            &BINDINGS,
            &ENTRIES,
            &[
                ("workgroup_size", WORKGROUP as f64),
                ("rows_per_chunk", ROWS_PER_CHUNK as f64),
            ],
        )?;
        let vids = ctx.upload("asot videos", &videos)?;
        let spans = match split {
            Some(limit) => spans(ctx, (b, n, k, a), limit)?,
            None => vec![Span::whole(b, n)],
        };
        let big = |label: &str, len: usize| {
            if spans.len() > 1 {
                ctx.scratch_windowed(label, len)
            } else {
                ctx.scratch(label, len)
            }
        };
        let t = big("asot plan", cells)?;
        let l = big("asot log plan", cells)?;
        let pt = big("asot prefix sums", b * (n + 1) * (k + 1))?;
        let rows = ctx.scratch("asot rows", b * n * 2)?;
        let cols = ctx.scratch("asot column sums", state + 2)?;
        // the variants' state (asot.wgsl's layout of `aux`)
        let aux = if p.balanced_actions {
            b + 2 * b * k + 2 * b * chunks * k
        } else if p.unbalanced_frames {
            b + 2 * b * chunks + 2 * b
        } else {
            1
        };
        let aux = ctx.scratch("asot projection state", aux)?;
        let whole = |buf: &wgpu::Buffer| 0..buf.size();
        let windows = spans
            .iter()
            .map(|span| {
                let params = Params {
                    row0: span.rows.start as u32,
                    row_end: span.rows.end as u32,
                    chunk0: span.chunks.start as u32,
                    chunk_end: span.chunks.end as u32,
                    cell0: (span.rows.start * k) as u32,
                    pt0: (span.pt.start * (k + 1)) as u32,
                    ..params
                };
                let cells = (span.rows.start * k * 4) as u64..(span.rows.end * k * 4) as u64;
                let pts = (span.pt.start * (k + 1) * 4) as u64..(span.pt.end * (k + 1) * 4) as u64;
                let uniform = ctx.uniform("asot params", &params);
                let bound = ctx.bind_parts(
                    &kernel,
                    &[
                        (&uniform, whole(&uniform)),
                        (&cost, cells.clone()),
                        (&vids, whole(&vids)),
                        (&t, cells.clone()),
                        (&l, cells),
                        (&rows, whole(&rows)),
                        (&pt, pts),
                        (&cols, whole(&cols)),
                        (&aux, whole(&aux)),
                    ],
                );
                Window {
                    bound,
                    rows: span.rows.len(),
                    chunks: span.chunks.len(),
                }
            })
            .collect();
        Ok(Solver {
            kernel,
            windows,
            cost,
            t,
            cols,
            aux,
            shape: (b, n, k, chunks),
            valid: valid.to_vec(),
            state,
            p: *p,
        })
    }

    /// `before` (what fills the cost buffer, if anything), then every iteration; reads back the
    /// plan, the column sums with the step, then `extra`. One command buffer, except with balanced
    /// actions, whose projections are submitted in blocks (their length depends on the data).
    fn run(
        &self,
        ctx: &GpuContext,
        before: impl FnOnce(&mut wgpu::ComputePass<'_>),
        extra: &[(&wgpu::Buffer, usize)],
    ) -> Result<Vec<Vec<f32>>, OtError> {
        let (b, n, k, _) = self.shape;
        let mut outputs = vec![(&self.t, b * n * k), (&self.cols, self.state + 2)];
        outputs.extend_from_slice(extra);
        let label = "ASOT solve";
        let mut sub = ctx.begin(label);
        if !self.p.balanced_actions {
            self.record(ctx, &mut sub.encoder, before);
            return Ok(sub.finish(&outputs)?);
        }
        {
            let mut pass = compute_pass(&mut sub.encoder);
            before(&mut pass);
            self.dispatch(ctx, &mut pass, "init", Threads::Rows);
        }
        let cap = self.p.sinkhorn_iters.max(1);
        for it in 0..self.p.iters {
            self.step(ctx, &mut compute_pass(&mut sub.encoder), it);
            let mut done = 0;
            while done < cap {
                let block = SINKHORN_BLOCK.min(cap - done);
                {
                    let mut pass = compute_pass(&mut sub.encoder);
                    for _ in 0..block {
                        self.sinkhorn_iteration(ctx, &mut pass);
                    }
                }
                done += block;
                if done < cap {
                    let flags = sub.finish(&[(&self.aux, b)])?;
                    sub = ctx.begin(label);
                    if flags.first().is_some_and(|f| f.iter().all(|&x| x != 0.0)) {
                        break;
                    }
                }
            }
            self.dispatch(
                ctx,
                &mut compute_pass(&mut sub.encoder),
                "sk_finish",
                Threads::Rows,
            );
        }
        Ok(sub.finish(&outputs)?)
    }

    /// Records `before`, then every iteration, into `encoder` (not for balanced actions, whose
    /// projection [`Solver::run`] submits in blocks).
    fn record(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        before: impl FnOnce(&mut wgpu::ComputePass<'_>),
    ) {
        debug_assert!(!self.p.balanced_actions);
        let mut pass = compute_pass(encoder);
        before(&mut pass);
        self.dispatch(ctx, &mut pass, "init", Threads::Rows);
        for it in 0..self.p.iters {
            if self.p.unbalanced_frames {
                self.step(ctx, &mut pass, it);
                self.dispatch(ctx, &mut pass, "ub_chunks", Threads::Chunks);
                self.dispatch(ctx, &mut pass, "ub_video_sum", Threads::Videos);
                self.dispatch(ctx, &mut pass, "ub_finish", Threads::Rows);
            } else {
                self.prefix_sums(ctx, &mut pass, it);
                self.dispatch(ctx, &mut pass, "update", Threads::Rows);
            }
        }
    }

    /// The prefix sums and column terms of iteration `it`, and in the first iteration with the
    /// automatic step the step itself.
    fn prefix_sums(&self, ctx: &GpuContext, pass: &mut wgpu::ComputePass<'_>, it: usize) {
        self.dispatch(ctx, pass, "prefix", Threads::ChunkColumns);
        self.dispatch(ctx, pass, "scan", Threads::Columns);
        if it == 0 && self.p.step == StepSize::Auto {
            self.dispatch(ctx, pass, "row_max", Threads::Rows);
            self.dispatch(ctx, pass, "reduce_step", Threads::One);
        }
    }

    /// A variant's iteration up to its projection: the prefix sums, then L ← L − step·G.
    fn step(&self, ctx: &GpuContext, pass: &mut wgpu::ComputePass<'_>, it: usize) {
        self.prefix_sums(ctx, pass, it);
        self.dispatch(ctx, pass, "step_l", Threads::Rows);
    }

    /// One Sinkhorn iteration of the balanced projection (a video whose flag says it settled
    /// skips it).
    fn sinkhorn_iteration(&self, ctx: &GpuContext, pass: &mut wgpu::ComputePass<'_>) {
        self.dispatch(ctx, pass, "sk_cols", Threads::ChunkActions);
        self.dispatch(ctx, pass, "sk_colsum", Threads::Actions);
        self.dispatch(ctx, pass, "sk_check", Threads::Videos);
        self.dispatch(ctx, pass, "sk_rows", Threads::Rows);
    }

    fn dispatch(
        &self,
        ctx: &GpuContext,
        pass: &mut wgpu::ComputePass<'_>,
        entry: &str,
        threads: Threads,
    ) {
        let (b, _, k, _) = self.shape;
        let count = |w: &Window| match threads {
            Threads::Rows => w.rows,
            Threads::ChunkColumns => w.chunks * (k + 1),
            Threads::ChunkActions => w.chunks * k,
            Threads::Chunks => w.chunks,
            Threads::Columns => b * (k + 1),
            Threads::Actions => b * k,
            Threads::Videos => b,
            // one workgroup
            Threads::One => 1,
        };
        // the passes over rows or chunks run once per window; the others once, as they touch
        // no windowed buffer (any window's bind group serves)
        let windowed = matches!(
            threads,
            Threads::Rows | Threads::ChunkColumns | Threads::ChunkActions | Threads::Chunks
        );
        let windows = if windowed {
            &self.windows[..]
        } else {
            &self.windows[..1]
        };
        for w in windows {
            ctx.dispatch(pass, &self.kernel, &w.bound, entry, count(w) as u64);
        }
    }

    /// The plans from what came back: the step checked as the CPU checks it, valid rows scaled
    /// to sum to 1.
    fn finish(&self, mut plan: Vec<f32>, cols: &[f32]) -> Result<Vec<f32>, OtError> {
        let (_, n, k, _) = self.shape;
        check_step(&self.p, &cols[self.state..self.state + 2])?;
        for (video, &nv) in plan.chunks_mut(n * k).zip(&self.valid) {
            let scale = nv as f32;
            video.iter_mut().for_each(|x| *x *= scale);
        }
        Ok(plan)
    }
}
