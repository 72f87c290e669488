//! The ASOT solver on wgpu (`asot.wgsl`): the same iterations as the CPU reference
//! ([`super::asot`]), for a batch of videos padded to N rows in one set of dispatches.
//!
//! Contract: [`solve_batch`] takes what [`super::asot::solve_batch`] takes and returns the same
//! B×N×K plans (valid rows sum to 1, padded rows 0), checked the same way. Implemented: the
//! default problem (KL-relaxed action marginal, exact frame marginal) with the automatic or a
//! fixed step. `balanced_actions` and `unbalanced_frames` are refused with
//! [`GpuError::Unsupported`] rather than solved differently.
//!
//! How it runs: one upload of the costs, then per iteration three dispatches over the whole
//! batch (chunk-local prefix sums per column, their scan over chunks, the fused gradient and
//! update per row; the first iteration with the automatic step adds the per-row max of G and a
//! one-workgroup reduction), all recorded into one command buffer; the step size never comes
//! back to the CPU, the plan comes back once at the end. A batch above the adapter's limit per
//! storage binding runs as groups of whole videos with the same plans ([`solve_batch_within`]).
//! Cost: O(iters · B · N · K) work, one
//! `exp` and one `log` per cell and iteration, like the CPU; storage about 16 bytes per cell.
//!
//! Precision and tolerance: the GPU works in f32 throughout, where the CPU accumulates its row,
//! column and prefix sums in f64, and WGSL's `exp`/`log` are not the CPU's polynomials. The
//! plans therefore agree to rounding, not to the bit. The parity tests (`tests/gpu_parity.rs`)
//! hold the GPU to a max absolute difference of 1e-4 per plan entry (entries lie in [0, 1]) and
//! to the same argmax on at least 99.9 % of frames.

use super::asot::{AsotParams, OtError, StepSize, check, check_finite, check_problem};
use crate::gpu::{Binding, GpuContext, GpuError};
use crate::linalg_gpu::{GpuMat, Ops};

/// Rows per chunk of the prefix sums (the `rows_per_chunk` override constant): the chunk's serial
/// sum bounds the rounding of the window sums, the number of chunks the serial scan.
const ROWS_PER_CHUNK: usize = 128;
const WORKGROUP: usize = 64;

const BINDINGS: [Binding; 8] = [
    Binding::Uniform,
    Binding::Read,
    Binding::Read,
    Binding::ReadWrite,
    Binding::ReadWrite,
    Binding::ReadWrite,
    Binding::ReadWrite,
    Binding::ReadWrite,
];
const ENTRIES: [&str; 6] = ["init", "prefix", "scan", "row_max", "reduce_step", "update"];

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
    pad: u32,
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
/// bit. One video is never split (its rows couple through the prefix sums); a video that does not
/// fit alone is a [`GpuError::TooLarge`].
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
    let group = usize::try_from(limit / per_video).unwrap_or(usize::MAX);
    if group == 0 {
        return Err(GpuError::TooLarge {
            what: format!("the ASOT solve of one video of {n} frames × {k} actions"),
            bytes: per_video,
            limit,
            adapter: ctx.describe(),
        }
        .into());
    }
    if group >= b {
        return solve_group(ctx, costs, b, n, k, valid, p).map(|(plan, _)| plan);
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
            let (_, (m, s)) = solve_group(
                ctx,
                &costs[g.start * cell..g.end * cell],
                g.len(),
                n,
                k,
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
        let (plan, _) = solve_group(
            ctx,
            &costs[g.start * cell..g.end * cell],
            g.len(),
            n,
            k,
            &valid[g.clone()],
            &fixed,
        )?;
        out.extend(plan);
    }
    Ok(out)
}

/// One dispatch: the plans, and the first iteration's max of G with the step the GPU took from it
/// (NaN with a fixed step).
fn solve_group(
    ctx: &GpuContext,
    costs: &[f32],
    b: usize,
    n: usize,
    k: usize,
    valid: &[usize],
    p: &AsotParams,
) -> Result<(Vec<f32>, (f32, f32)), OtError> {
    let cost = ctx.upload("asot cost", costs)?;
    let solver = Solver::new(ctx, cost, b, n, k, valid, p)?;
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
    let solver = Solver::new(ctx, cost, b, n, k, valid, p)?;
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
/// for [`check_step`] on [`ResidentSolve::state`].
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
    let solver = Solver::new(ctx, cost, b, n, k, valid, p)?;
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

/// One solve's buffers and bindings on the GPU, with the cost already there.
struct Solver {
    kernel: std::sync::Arc<crate::gpu::Kernel>,
    bound: wgpu::BindGroup,
    cost: wgpu::Buffer,
    t: wgpu::Buffer,
    cols: wgpu::Buffer,
    shape: (usize, usize, usize, usize),
    valid: Vec<usize>,
    state: usize,
    p: AsotParams,
}

impl Solver {
    fn new(
        ctx: &GpuContext,
        cost: wgpu::Buffer,
        b: usize,
        n: usize,
        k: usize,
        valid: &[usize],
        p: &AsotParams,
    ) -> Result<Solver, OtError> {
        if p.balanced_actions {
            return Err(
                GpuError::Unsupported("the ASOT solver with balanced actions".into()).into(),
            );
        }
        if p.unbalanced_frames {
            return Err(
                GpuError::Unsupported("the ASOT solver with unbalanced frames".into()).into(),
            );
        }
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
            pad: 0,
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
        let uniform = ctx.uniform("asot params", &params);
        let vids = ctx.upload("asot videos", &videos)?;
        let t = ctx.scratch("asot plan", cells)?;
        let l = ctx.scratch("asot log plan", cells)?;
        let rows = ctx.scratch("asot rows", b * n * 2)?;
        let pt = ctx.scratch("asot prefix sums", b * (n + 1) * (k + 1))?;
        let cols = ctx.scratch("asot column sums", state + 2)?;
        let bound = ctx.bind(
            &kernel,
            &[&uniform, &cost, &vids, &t, &l, &rows, &pt, &cols],
        );
        Ok(Solver {
            kernel,
            bound,
            cost,
            t,
            cols,
            shape: (b, n, k, chunks),
            valid: valid.to_vec(),
            state,
            p: *p,
        })
    }

    /// One command buffer: `before` (what fills the cost buffer, if anything), then every
    /// iteration. Reads back the plan, the column sums with the step, then `extra`.
    fn run(
        &self,
        ctx: &GpuContext,
        before: impl FnOnce(&mut wgpu::ComputePass<'_>),
        extra: &[(&wgpu::Buffer, usize)],
    ) -> Result<Vec<Vec<f32>>, OtError> {
        let (b, n, k, _) = self.shape;
        let mut outputs = vec![(&self.t, b * n * k), (&self.cols, self.state + 2)];
        outputs.extend_from_slice(extra);
        let record = |encoder: &mut wgpu::CommandEncoder| self.record(ctx, encoder, before);
        Ok(ctx.run_and_read("ASOT solve", record, &outputs)?)
    }

    /// Records `before`, then every iteration, into `encoder`.
    fn record(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        before: impl FnOnce(&mut wgpu::ComputePass<'_>),
    ) {
        let (b, n, k, chunks) = self.shape;
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("asot"),
            timestamp_writes: None,
        });
        before(&mut pass);
        let (kernel, bound) = (&self.kernel, &self.bound);
        let row_threads = (b * n) as u64;
        ctx.dispatch(&mut pass, kernel, bound, "init", row_threads);
        for it in 0..self.p.iters {
            let prefix_threads = (b * chunks * (k + 1)) as u64;
            ctx.dispatch(&mut pass, kernel, bound, "prefix", prefix_threads);
            ctx.dispatch(&mut pass, kernel, bound, "scan", (b * (k + 1)) as u64);
            if it == 0 && self.p.step == StepSize::Auto {
                ctx.dispatch(&mut pass, kernel, bound, "row_max", row_threads);
                // one workgroup
                ctx.dispatch(&mut pass, kernel, bound, "reduce_step", 1);
            }
            ctx.dispatch(&mut pass, kernel, bound, "update", row_threads);
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
