//! The SWD term of OT1's cost on the GPU (`swd.wgsl`), beside the CPU [`super::cost::swd_cost`]:
//! for a batch of B videos padded to N rows, the circular projections of frames and actions on
//! each video's P directions, the released variant's sort of every projection over the frames
//! and, separately, over the actions (a bitonic network, one dispatch per step over all columns),
//! and the pairwise distances. Nothing comes back.
//!
//! Contract: as [`super::cost::swd_cost`] applied to each video: F is B·N×d (padded rows
//! included, as the CPU includes them), A is K×d, the directions B·P×d (drawn on the CPU from
//! the run's RNG, so that a GPU run draws what a CPU run draws). Returns B·N×K.
//!
//! Tolerance: the projections' products sum in another order than sgemm, and a projection near
//! the circle's centre loses digits in √(‖x‖² + ρ² − 2ρ⟨x, θ⟩) on both devices: the term agrees
//! with the CPU to 1e-4 relative to its largest entry (`tests/gpu_parity.rs`). Cost:
//! O(B·(N+K)·P·d) for the projections, O(B·P·N log²N) for the sorts, O(B·N·K·P) for the
//! distances; log₂N·(log₂N+1)/2 dispatches per sort.

use std::sync::Arc;

use super::cost::{SwdParams, SwdVariant};
use crate::gpu::{GpuContext, GpuError, Kernel};
use crate::linalg::Op;
use crate::linalg_gpu::{BINDINGS, GpuMat, Ops, WORKGROUP};

const ENTRIES: [&str; 6] = [
    "row_sq_norms",
    "circular",
    "gather",
    "bitonic",
    "scatter",
    "pairwise",
];

/// `Params` of `swd.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    per: u32,
    n2: u32,
    size: u32,
    stride: u32,
    k: u32,
    variant: u32,
    radius2: f32,
    scale: f32,
    pad: [f32; 2],
}

fn kernel(ctx: &GpuContext) -> Result<Arc<Kernel>, GpuError> {
    ctx.kernel(
        "ot/swd.wgsl",
        include_str!("swd.wgsl"),
        &BINDINGS,
        &ENTRIES,
        &[("workgroup_size", WORKGROUP as f64)],
    )
}

fn u32_of(v: usize) -> Result<u32, GpuError> {
    u32::try_from(v)
        .map_err(|_| GpuError::Unsupported(format!("an SWD term of {v} values (above u32)")))
}

/// The circular projections of `x` (B·per × d, one block per video) on each video's directions
/// `theta` (B·P×d), rows normalised: B·per × P.
fn project(
    ops: &mut Ops<'_>,
    kernel: &Kernel,
    x: &GpuMat,
    theta: &GpuMat,
    (batch, per, p): (usize, usize, usize),
    radius: f32,
) -> Result<GpuMat, GpuError> {
    let d = x.cols;
    let sq = |ops: &mut Ops<'_>, m: &GpuMat| -> Result<GpuMat, GpuError> {
        let out = ops.zeros("squared norms", m.rows, 1)?;
        let params = Params {
            rows: u32_of(m.rows)?,
            cols: u32_of(m.cols)?,
            ..Params::default()
        };
        let groups = ops.groups(m.rows);
        ops.record_on(
            kernel,
            "row_sq_norms",
            &params,
            [Some(m), None, Some(&out), None],
            groups,
        );
        Ok(out)
    };
    let xn = sq(ops, x)?;
    let tn = sq(ops, theta)?;
    let out = ops.zeros("circular projections", x.rows, p)?;
    ops.gemm_batched(
        batch,
        (per, d, p),
        -2.0 * radius,
        x,
        Op::N,
        theta,
        Op::T,
        0.0,
        &out,
    )?;
    let params = Params {
        rows: u32_of(x.rows)?,
        cols: u32_of(p)?,
        per: u32_of(per)?,
        radius2: radius * radius,
        ..Params::default()
    };
    let groups = ops.groups(out.len());
    ops.record_on(
        kernel,
        "circular",
        &params,
        [Some(&xn), Some(&tn), Some(&out), None],
        groups,
    );
    let (unit, _) = ops.normalize(&out)?;
    Ok(unit)
}

/// Sorts each column of every video's block of `x` (B·per × P) ascending, in place.
fn sort_columns(
    ops: &mut Ops<'_>,
    kernel: &Kernel,
    x: &GpuMat,
    per: usize,
) -> Result<(), GpuError> {
    if per < 2 {
        return Ok(());
    }
    let (p, batch) = (x.cols, x.rows / per);
    let n2 = per.next_power_of_two();
    let columns = ops.zeros("sort columns", batch * p, n2)?;
    let base = Params {
        rows: u32_of(x.rows)?,
        cols: u32_of(p)?,
        per: u32_of(per)?,
        n2: u32_of(n2)?,
        ..Params::default()
    };
    let groups = ops.groups(columns.len());
    ops.record_on(
        kernel,
        "gather",
        &base,
        [Some(x), None, None, Some(&columns)],
        groups,
    );
    let pairs = ops.groups(columns.len() / 2);
    let mut size = 2;
    while size <= n2 {
        let mut stride = size / 2;
        while stride >= 1 {
            let params = Params {
                size: u32_of(size)?,
                stride: u32_of(stride)?,
                ..base
            };
            ops.record_on(
                kernel,
                "bitonic",
                &params,
                [None, None, None, Some(&columns)],
                pairs,
            );
            stride /= 2;
        }
        size *= 2;
    }
    let groups = ops.groups(x.len());
    ops.record_on(
        kernel,
        "scatter",
        &base,
        [Some(&columns), None, Some(x), None],
        groups,
    );
    Ok(())
}

/// The SWD term of each video's OT1 cost (see the module docs): B·N×K.
pub fn swd_cost(
    ops: &mut Ops<'_>,
    f: &GpuMat,
    a: &GpuMat,
    theta: &GpuMat,
    batch: usize,
    params: &SwdParams,
) -> Result<GpuMat, GpuError> {
    let kernel = kernel(ops.ctx())?;
    let (k, d) = (a.rows, a.cols);
    let (n, p) = (f.rows / batch.max(1), theta.rows / batch.max(1));
    assert_eq!(
        theta.cols, d,
        "swd: directions of width {} for d = {d}",
        theta.cols
    );
    // one copy of A per video, so that frames and actions project alike
    let stacked = ops.tile(a, batch)?;
    let xf = project(ops, &kernel, f, theta, (batch, n, p), params.radius)?;
    let xa = project(ops, &kernel, &stacked, theta, (batch, k, p), params.radius)?;
    if params.variant == SwdVariant::Released {
        sort_columns(ops, &kernel, &xf, n)?;
        sort_columns(ops, &kernel, &xa, k)?;
    }
    let out = ops.zeros("swd cost", f.rows, k)?;
    let pw = Params {
        rows: u32_of(f.rows)?,
        cols: u32_of(p)?,
        per: u32_of(n)?,
        k: u32_of(k)?,
        variant: u32::from(params.variant == SwdVariant::Paper),
        scale: 1.0 / p.max(1) as f32,
        ..Params::default()
    };
    let groups = ops.groups(out.len());
    ops.record_on(
        &kernel,
        "pairwise",
        &pw,
        [Some(&xf), Some(&xa), Some(&out), None],
        groups,
    );
    Ok(out)
}
