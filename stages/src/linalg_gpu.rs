//! The dense kernels of [`crate::linalg`] and of the stages' forward and backward passes on the
//! GPU (`linalg.wgsl`): matrix products, bias rows, ReLU, row normalisation, row softmax, the
//! cross-entropy rows and a fixed-order sum, each with its backward where it has one.
//!
//! Contract: a [`GpuMat`] is a row-major f32 matrix in a GPU buffer (at an offset, so that the
//! tensors of a parameter set can share one buffer). [`Ops`] records kernels into one command
//! buffer under error scopes; nothing runs until [`Ops::finish`], which submits it and reads
//! back only the matrices asked for. Shapes are checked when a kernel is recorded (a mismatch is
//! a bug of the caller and panics with the shapes); device limits become [`GpuError`]s.
//!
//! Determinism: every sum runs in a fixed order (each product cell over its inner index in
//! order, each row reduction serially, the scalar sum in a fixed tree), so a result does not
//! depend on scheduling. The CPU reference sums in other orders (sgemm's blocking, f64 row sums),
//! so results agree to rounding: `tests/gpu_parity.rs` states the tolerance per kernel.
//!
//! Cost: a product is O(batch·m·n·k) in 16×16 tiles through workgroup memory; the row kernels
//! are one invocation per row (O(n) serial work each), the elementwise ones one per element.

use std::num::NonZeroU64;
use std::sync::Arc;

use crate::gpu::{Binding, GpuContext, GpuError, Kernel, Submission};
use crate::linalg::Op;

/// Invocations per workgroup of the 1-D entry points ([`Ops::groups`]).
pub const WORKGROUP: usize = 64;
/// The side of a product tile (`TILE` in `linalg.wgsl`).
const TILE: u64 = 16;
/// Offsets of matrices inside a shared buffer are multiples of this many elements (256 bytes,
/// a multiple of every adapter's `min_storage_buffer_offset_alignment`).
pub const ALIGN: usize = 64;

/// The binding layout of `linalg.wgsl`, which other shaders recorded through
/// [`Ops::record_on`] share.
pub const BINDINGS: [Binding; 5] = [
    Binding::Uniform,
    Binding::Read,
    Binding::Read,
    Binding::ReadWrite,
    Binding::ReadWrite,
];
const ENTRIES: [&str; 25] = [
    "gemm",
    "fill_rows",
    "relu",
    "relu_mask",
    "scale_rows",
    "div_rows",
    "scale_by",
    "mul_add",
    "sigmoid_affine",
    "sigmoid_backward",
    "argmax_mask",
    "add_tiled",
    "mul_cols",
    "mask_keys",
    "layer_norm",
    "layer_norm_backward",
    "axpy",
    "col_sum",
    "normalize",
    "normalize_backward",
    "softmax",
    "softmax_backward",
    "ce_rows",
    "ce_backward",
    "reduce_sum",
];

/// `Params` of `linalg.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    k: u32,
    n: u32,
    batch: u32,
    rsa: u32,
    csa: u32,
    rsb: u32,
    csb: u32,
    sa: u32,
    sb: u32,
    sc: u32,
    _p0: u32,
    alpha: f32,
    beta: f32,
    _f0: f32,
    _f1: f32,
    oa: u32,
    ob: u32,
    oc: u32,
    rsc: u32,
}

fn u32_of(what: &str, v: usize) -> Result<u32, GpuError> {
    u32::try_from(v).map_err(|_| {
        GpuError::Unsupported(format!(
            "{what} of {v} elements (above the shaders' u32 indices)"
        ))
    })
}

fn shape(m: usize, n: usize) -> Result<Params, GpuError> {
    Ok(Params {
        m: u32_of("a matrix", m)?,
        n: u32_of("a matrix", n)?,
        ..Params::default()
    })
}

/// A row-major f32 matrix in a GPU buffer, starting `offset` elements in.
#[derive(Debug, Clone)]
pub struct GpuMat {
    pub buf: wgpu::Buffer,
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
}

impl GpuMat {
    /// `rows × cols` values in a buffer of their own.
    pub fn upload(
        ctx: &GpuContext,
        label: &str,
        data: &[f32],
        rows: usize,
        cols: usize,
    ) -> Result<GpuMat, GpuError> {
        assert_eq!(
            data.len(),
            rows * cols,
            "{label}: {rows}×{cols} needs as many values"
        );
        Ok(GpuMat {
            buf: ctx.upload(label, data)?,
            offset: 0,
            rows,
            cols,
        })
    }

    /// A zeroed `rows × cols` matrix in a buffer of its own.
    pub fn zeros(
        ctx: &GpuContext,
        label: &str,
        rows: usize,
        cols: usize,
    ) -> Result<GpuMat, GpuError> {
        Ok(GpuMat {
            buf: ctx.scratch(label, rows * cols)?,
            offset: 0,
            rows,
            cols,
        })
    }

    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buf,
            offset: (self.offset * 4) as u64,
            size: NonZeroU64::new((self.len().max(1) * 4) as u64),
        })
    }
}

/// A strided view into a matrix for [`Ops::gemm_view`]: item z's element (i, j) is
/// `mat[offset + z·stride + i·rs + j·cs]` (all in elements).
#[derive(Debug, Clone)]
pub struct View {
    pub mat: GpuMat,
    pub offset: usize,
    pub rs: usize,
    pub cs: usize,
    pub stride: usize,
}

/// Records kernels of `linalg.wgsl` (and of other GPU kernels, through [`Ops::submission`]) into
/// one command buffer; [`Ops::finish`] submits it.
#[derive(Debug)]
pub struct Ops<'c> {
    sub: Submission<'c>,
    kernel: Arc<Kernel>,
    /// placeholders for the bindings an entry point does not use
    unused_read: wgpu::Buffer,
    unused_write: wgpu::Buffer,
}

impl<'c> Ops<'c> {
    /// A new recording on `ctx`; `label` names it in errors.
    pub fn new(ctx: &'c GpuContext, label: &str) -> Result<Ops<'c>, GpuError> {
        let kernel = ctx.kernel(
            "linalg.wgsl",
            include_str!("linalg.wgsl"),
            &BINDINGS,
            &ENTRIES,
            &[("workgroup_size", WORKGROUP as f64)],
        )?;
        let (unused_read, unused_write) = ctx.placeholders();
        Ok(Ops {
            sub: ctx.begin(label),
            kernel,
            unused_read,
            unused_write,
        })
    }

    pub fn ctx(&self) -> &'c GpuContext {
        self.sub.ctx()
    }

    /// The recording, for kernels of other shaders to record into the same command buffer.
    pub fn submission(&mut self) -> &mut Submission<'c> {
        &mut self.sub
    }

    /// A zeroed matrix (wgpu zero-fills new buffers).
    pub fn zeros(&self, label: &str, rows: usize, cols: usize) -> Result<GpuMat, GpuError> {
        GpuMat::zeros(self.ctx(), label, rows, cols)
    }

    /// Submits everything recorded and reads back each of `outputs` (row-major).
    pub fn finish(self, outputs: &[&GpuMat]) -> Result<Vec<Vec<f32>>, GpuError> {
        let Ops { mut sub, .. } = self;
        // a read-back copies from offset 0 of its buffer: stage matrices at an offset first
        let mut staged = Vec::with_capacity(outputs.len());
        for m in outputs {
            if m.offset == 0 {
                staged.push((*m).clone());
            } else {
                let dst = GpuMat::zeros(sub.ctx(), "read-back", m.rows, m.cols)?;
                sub.encoder.copy_buffer_to_buffer(
                    &m.buf,
                    (m.offset * 4) as u64,
                    &dst.buf,
                    0,
                    (m.len() * 4) as u64,
                );
                staged.push(dst);
            }
        }
        let wanted: Vec<(&wgpu::Buffer, usize)> =
            staged.iter().map(|m| (&m.buf, m.len())).collect();
        sub.finish(&wanted)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        entry: &str,
        params: Params,
        a: Option<&GpuMat>,
        b: Option<&GpuMat>,
        c: &GpuMat,
        dd: Option<&GpuMat>,
        groups: [u32; 3],
    ) {
        let kernel = Arc::clone(&self.kernel);
        self.record_on(&kernel, entry, &params, [a, b, Some(c), dd], groups);
    }

    /// Records `entry` of another shader whose bind group 0 follows `linalg.wgsl`'s layout
    /// (a uniform `params`, two read-only and two read-write storage buffers; placeholders
    /// where `buffers` has `None`), over `groups` workgroups.
    pub fn record_on<T: bytemuck::Pod>(
        &mut self,
        kernel: &Kernel,
        entry: &str,
        params: &T,
        buffers: [Option<&GpuMat>; 4],
        groups: [u32; 3],
    ) {
        let ctx = self.sub.ctx();
        let uniform = ctx.uniform("kernel params", params);
        fn bound<'a>(m: Option<&'a GpuMat>, spare: &'a wgpu::Buffer) -> wgpu::BindingResource<'a> {
            match m {
                Some(m) => m.binding(),
                None => spare.as_entire_binding(),
            }
        }
        let [a, b, c, dd] = buffers;
        let entries = [
            uniform.as_entire_binding(),
            bound(a, &self.unused_read),
            bound(b, &self.unused_read),
            bound(c, &self.unused_write),
            bound(dd, &self.unused_write),
        ];
        let entries: Vec<wgpu::BindGroupEntry<'_>> = entries
            .into_iter()
            .enumerate()
            .map(|(i, resource)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource,
            })
            .collect();
        let group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: kernel.layout(),
            entries: &entries,
        });
        let mut pass = self
            .sub
            .encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(entry),
                timestamp_writes: None,
            });
        pass.set_pipeline(kernel.pipeline(entry));
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    }

    /// Records a 1-D entry point over every element of `c` (shape from `c`).
    fn each(
        &mut self,
        entry: &str,
        a: Option<&GpuMat>,
        b: Option<&GpuMat>,
        c: &GpuMat,
    ) -> Result<(), GpuError> {
        let groups = self.groups(c.len());
        self.record(entry, shape(c.rows, c.cols)?, a, b, c, None, groups);
        Ok(())
    }

    /// Records a row kernel: one invocation per row of `over` (shape from `over`), with
    /// `buffers` bound as a, b, c, dd.
    fn each_row(
        &mut self,
        entry: &str,
        over: &GpuMat,
        buffers: [Option<&GpuMat>; 4],
    ) -> Result<(), GpuError> {
        let groups = self.groups(over.rows);
        let params = shape(over.rows, over.cols)?;
        let kernel = Arc::clone(&self.kernel);
        self.record_on(&kernel, entry, &params, buffers, groups);
        Ok(())
    }

    /// Workgroups for `threads` invocations of a 1-D entry point (2-D past the device's limit).
    pub fn groups(&self, threads: usize) -> [u32; 3] {
        let groups = (threads as u64).div_ceil(WORKGROUP as u64).max(1);
        let max = u64::from(self.ctx().limits.max_compute_workgroups_per_dimension).max(1);
        let x = groups.min(max);
        [x as u32, groups.div_ceil(x) as u32, 1]
    }

    /// `c (m×n) = alpha·op(a)·op(b) + beta·c`, shapes from the matrices (as [`crate::linalg::gemm`]).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &mut self,
        alpha: f32,
        a: &GpuMat,
        ta: Op,
        b: &GpuMat,
        tb: Op,
        beta: f32,
        c: &GpuMat,
    ) -> Result<(), GpuError> {
        let (m, k) = match ta {
            Op::N => (a.rows, a.cols),
            Op::T => (a.cols, a.rows),
        };
        let (kb, n) = match tb {
            Op::N => (b.rows, b.cols),
            Op::T => (b.cols, b.rows),
        };
        assert_eq!(k, kb, "gemm: op(a) is {m}×{k} but op(b) is {kb}×{n}");
        self.gemm_batched(1, (m, k, n), alpha, a, ta, b, tb, beta, c)
    }

    /// `batch` products `c_z (m×n) = alpha·op(a_z)·op(b_z) + beta·c_z`, one dispatch: the
    /// items of `c` are stacked (c is batch·m × n); `a` (and `b`) are stacked the same way when
    /// they hold `batch` items in their stored shape (batch·rows × cols), or shared by every
    /// item when they hold one.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_batched(
        &mut self,
        batch: usize,
        (m, k, n): (usize, usize, usize),
        alpha: f32,
        a: &GpuMat,
        ta: Op,
        b: &GpuMat,
        tb: Op,
        beta: f32,
        c: &GpuMat,
    ) -> Result<(), GpuError> {
        // stored (untransposed) shapes of one item
        let (ar, ac) = if ta == Op::N { (m, k) } else { (k, m) };
        let (br, bc) = if tb == Op::N { (k, n) } else { (n, k) };
        let stride = |x: &GpuMat, rows: usize, cols: usize, what: &str| {
            assert_eq!(
                x.cols, cols,
                "gemm: {what} has {} columns, not {cols}",
                x.cols
            );
            if x.rows == rows * batch {
                rows * cols
            } else {
                assert_eq!(
                    x.rows, rows,
                    "gemm: {what} is neither {batch} items nor one"
                );
                0
            }
        };
        let view = |x: &'_ GpuMat, t: Op, cols: usize, stride: usize| {
            let (rs, cs) = match t {
                Op::N => (cols, 1),
                Op::T => (1, cols),
            };
            View {
                mat: x.clone(),
                offset: 0,
                rs,
                cs,
                stride,
            }
        };
        let (sa, sb) = (stride(a, ar, ac, "a"), stride(b, br, bc, "b"));
        assert_eq!(
            (c.rows, c.cols),
            (m * batch, n),
            "gemm: c must be {batch}·{m}×{n}"
        );
        self.gemm_view(
            batch,
            (m, k, n),
            alpha,
            &view(a, ta, ac, sa),
            &view(b, tb, bc, sb),
            beta,
            &View {
                mat: c.clone(),
                offset: 0,
                rs: n,
                cs: 1,
                stride: m * n,
            },
        )
    }

    /// The general product: `batch` items `c_z = alpha·A_z·B_z + beta·c_z` where each operand is
    /// a [`View`] into a matrix (element offset, row and column strides, item stride), e.g. one
    /// attention head's columns. `c`'s column stride must be 1. Every index a view reaches is
    /// checked against its matrix.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_view(
        &mut self,
        batch: usize,
        (m, k, n): (usize, usize, usize),
        alpha: f32,
        a: &View,
        b: &View,
        beta: f32,
        c: &View,
    ) -> Result<(), GpuError> {
        if m == 0 || n == 0 || batch == 0 {
            return Ok(());
        }
        let reach = |v: &View, rows: usize, cols: usize| {
            v.offset
                + (batch - 1) * v.stride
                + rows.saturating_sub(1) * v.rs
                + cols.saturating_sub(1) * v.cs
        };
        assert!(
            reach(a, m, k) < a.mat.len().max(1),
            "gemm: a's view reaches past it"
        );
        assert!(
            reach(b, k, n) < b.mat.len().max(1),
            "gemm: b's view reaches past it"
        );
        assert!(c.cs == 1 && reach(c, m, n) < c.mat.len(), "gemm: c's view");
        let max = u64::from(self.ctx().limits.max_compute_workgroups_per_dimension);
        let (gx, gy) = ((n as u64).div_ceil(TILE), (m as u64).div_ceil(TILE));
        if gx > max || gy > max || batch as u64 > max {
            return Err(GpuError::Unsupported(format!(
                "{batch} matrix products of {m}×{n} (more than {max} tiles of {TILE} along one \
                 side, or items)"
            )));
        }
        let params = Params {
            k: u32_of("a matrix product", k)?,
            batch: u32_of("a batch", batch)?,
            rsa: u32_of("a stride", a.rs)?,
            csa: u32_of("a stride", a.cs)?,
            rsb: u32_of("a stride", b.rs)?,
            csb: u32_of("a stride", b.cs)?,
            sa: u32_of("a stride", a.stride)?,
            sb: u32_of("a stride", b.stride)?,
            sc: u32_of("a stride", c.stride)?,
            oa: u32_of("an offset", a.offset)?,
            ob: u32_of("an offset", b.offset)?,
            oc: u32_of("an offset", c.offset)?,
            rsc: u32_of("a stride", c.rs)?,
            alpha,
            beta,
            ..shape(m, n)?
        };
        self.record(
            "gemm",
            params,
            Some(&a.mat),
            Some(&b.mat),
            &c.mat,
            None,
            [gx as u32, gy as u32, batch as u32],
        );
        Ok(())
    }

    /// y (rows×out) = x (rows×in) Wᵀ + b, W stored out×in (as [`crate::linalg::linear`]).
    pub fn linear(&mut self, x: &GpuMat, w: &GpuMat, b: &GpuMat) -> Result<GpuMat, GpuError> {
        assert_eq!(
            b.len(),
            w.rows,
            "linear: the bias must have one value per output"
        );
        let y = self.zeros("linear", x.rows, w.rows)?;
        self.record(
            "fill_rows",
            shape(y.rows, y.cols)?,
            Some(b),
            None,
            &y,
            None,
            self.groups(y.len()),
        );
        self.gemm(1.0, x, Op::N, w, Op::T, 1.0, &y)?;
        Ok(y)
    }

    /// c = max(c, 0) in place.
    pub fn relu(&mut self, c: &GpuMat) -> Result<(), GpuError> {
        self.each("relu", None, None, c)?;
        Ok(())
    }

    /// ReLU's backward in place: `grad` = 0 where the ReLU's output `out` is not positive.
    pub fn relu_mask(&mut self, out: &GpuMat, grad: &GpuMat) -> Result<(), GpuError> {
        assert_eq!(out.len(), grad.len(), "relu_mask: shapes differ");
        self.each("relu_mask", Some(out), None, grad)?;
        Ok(())
    }

    /// `c[i, j] *= scale[i]` in place (`scale` has one value per row).
    pub fn scale_rows(&mut self, c: &GpuMat, scale: &GpuMat) -> Result<(), GpuError> {
        assert_eq!(scale.len(), c.rows, "scale_rows: one factor per row");
        self.each("scale_rows", Some(scale), None, c)?;
        Ok(())
    }

    /// `c[i, j] /= div[i]` in place (`div` has one value per row).
    pub fn div_rows(&mut self, c: &GpuMat, div: &GpuMat) -> Result<(), GpuError> {
        assert_eq!(div.len(), c.rows, "div_rows: one divisor per row");
        self.each("div_rows", Some(div), None, c)?;
        Ok(())
    }

    /// c = s·c with the scalar `s` (1×1) read on the GPU.
    pub fn scale_by(&mut self, c: &GpuMat, s: &GpuMat) -> Result<(), GpuError> {
        assert_eq!(s.len(), 1, "scale_by: a 1×1 scalar");
        self.each("scale_by", Some(s), None, c)?;
        Ok(())
    }

    /// c += x ∘ y, elementwise.
    pub fn mul_add(&mut self, x: &GpuMat, y: &GpuMat, c: &GpuMat) -> Result<(), GpuError> {
        assert!(
            x.len() == c.len() && y.len() == c.len(),
            "mul_add: shapes differ"
        );
        self.each("mul_add", Some(x), Some(y), c)?;
        Ok(())
    }

    /// c = sigmoid(β + α·c) in place, with α and β 1×1 scalars read on the GPU.
    pub fn sigmoid_affine(
        &mut self,
        c: &GpuMat,
        alpha: &GpuMat,
        beta: &GpuMat,
    ) -> Result<(), GpuError> {
        assert!(
            alpha.len() == 1 && beta.len() == 1,
            "sigmoid_affine: 1×1 scalars"
        );
        self.each("sigmoid_affine", Some(alpha), Some(beta), c)?;
        Ok(())
    }

    /// The sigmoid's backward in place: grad = grad ∘ s ∘ (1 − s), `s` the sigmoid's output.
    pub fn sigmoid_backward(&mut self, s: &GpuMat, grad: &GpuMat) -> Result<(), GpuError> {
        assert_eq!(s.len(), grad.len(), "sigmoid_backward: shapes differ");
        self.each("sigmoid_backward", Some(s), None, grad)?;
        Ok(())
    }

    /// (masked, onehot): per row, `x` on its first largest entry and 0 elsewhere, and the same
    /// as 1 or 0 (as [`crate::linalg::argmax`] picks).
    pub fn argmax_mask(&mut self, x: &GpuMat) -> Result<(GpuMat, GpuMat), GpuError> {
        let masked = self.zeros("argmax masked", x.rows, x.cols)?;
        let onehot = self.zeros("argmax one-hot", x.rows, x.cols)?;
        self.each_row(
            "argmax_mask",
            x,
            [Some(x), None, Some(&masked), Some(&onehot)],
        )?;
        Ok((masked, onehot))
    }

    /// A matrix of `rows × cols` copies of `value`.
    pub fn filled(
        &mut self,
        label: &str,
        rows: usize,
        cols: usize,
        value: f32,
    ) -> Result<GpuMat, GpuError> {
        GpuMat::upload(self.ctx(), label, &vec![value; rows * cols], rows, cols)
    }

    /// `c[i] += x[i mod x.len()]`: `x` added to every block of its size in `c` (a bias, the
    /// positions of every video).
    pub fn add_tiled(&mut self, x: &GpuMat, c: &GpuMat) -> Result<(), GpuError> {
        assert!(
            !x.is_empty() && c.len().is_multiple_of(x.len()),
            "add_tiled: block size"
        );
        let params = Params {
            k: u32_of("a block", x.len())?,
            ..shape(c.rows, c.cols)?
        };
        self.record(
            "add_tiled",
            params,
            Some(x),
            None,
            c,
            None,
            self.groups(c.len()),
        );
        Ok(())
    }

    /// `times` copies of `x` stacked (times·rows × cols), one dispatch: a shared matrix (A, the
    /// segment queries) given to every video of a batch.
    pub fn tile(&mut self, x: &GpuMat, times: usize) -> Result<GpuMat, GpuError> {
        let out = self.zeros("tiled", times * x.rows, x.cols)?;
        self.add_tiled(x, &out)?;
        Ok(out)
    }

    /// x ∘ g with `g` one value per column (1×cols), in a new matrix.
    pub fn mul_cols(&mut self, x: &GpuMat, g: &GpuMat) -> Result<GpuMat, GpuError> {
        assert_eq!(g.len(), x.cols, "mul_cols: one factor per column");
        let y = self.zeros("scaled columns", x.rows, x.cols)?;
        self.record(
            "mul_cols",
            shape(x.rows, x.cols)?,
            Some(x),
            Some(g),
            &y,
            None,
            self.groups(x.len()),
        );
        Ok(y)
    }

    /// Scores of masked keys set to −∞ in place: `scores` holds blocks of `batch`·`per` rows of
    /// `keys` columns (row r belongs to video (r / per) mod batch); `valid` is batch×keys, 1 for a
    /// real key, 0 for padding.
    pub fn mask_keys(
        &mut self,
        scores: &GpuMat,
        valid: &GpuMat,
        (batch, per): (usize, usize),
    ) -> Result<(), GpuError> {
        assert_eq!(valid.len(), batch * scores.cols, "mask_keys: batch × keys");
        let params = Params {
            k: u32_of("queries", per)?,
            batch: u32_of("a batch", batch)?,
            ..shape(scores.rows, scores.cols)?
        };
        self.record(
            "mask_keys",
            params,
            Some(valid),
            None,
            scores,
            None,
            self.groups(scores.len()),
        );
        Ok(())
    }

    /// (x̂, 1/σ): LayerNorm's normalisation of each row (ε = 1e-5), before γ and β.
    pub fn layer_norm(&mut self, x: &GpuMat) -> Result<(GpuMat, GpuMat), GpuError> {
        let xhat = self.zeros("layer norm", x.rows, x.cols)?;
        let rstd = self.zeros("layer norm 1/sigma", x.rows, 1)?;
        self.each_row("layer_norm", x, [Some(x), None, Some(&xhat), Some(&rstd)])?;
        Ok((xhat, rstd))
    }

    /// LayerNorm's backward to its input from x̂, 1/σ and `gdy` = dL/dy ∘ γ.
    pub fn layer_norm_backward(
        &mut self,
        xhat: &GpuMat,
        rstd: &GpuMat,
        gdy: &GpuMat,
    ) -> Result<GpuMat, GpuError> {
        let dx = self.zeros("layer norm grad", xhat.rows, xhat.cols)?;
        self.each_row(
            "layer_norm_backward",
            xhat,
            [Some(xhat), Some(rstd), Some(&dx), Some(gdy)],
        )?;
        Ok(dx)
    }

    /// y += alpha·x, elementwise.
    pub fn axpy(&mut self, alpha: f32, x: &GpuMat, y: &GpuMat) -> Result<(), GpuError> {
        assert_eq!(x.len(), y.len(), "axpy: shapes differ");
        let params = Params {
            alpha,
            ..shape(y.rows, y.cols)?
        };
        self.record("axpy", params, Some(x), None, y, None, self.groups(y.len()));
        Ok(())
    }

    /// `out[j] += Σ_i x[i, j]`, rows in order (a bias's gradient; `out` has `x.cols` values).
    pub fn col_sum_into(&mut self, x: &GpuMat, out: &GpuMat) -> Result<(), GpuError> {
        assert_eq!(out.len(), x.cols, "col_sum: one output per column");
        self.record(
            "col_sum",
            shape(x.rows, x.cols)?,
            Some(x),
            None,
            out,
            None,
            self.groups(x.cols),
        );
        Ok(())
    }

    /// Copies `src` over `dst` (same shape; either may sit at an offset).
    pub fn copy_into(&mut self, src: &GpuMat, dst: &GpuMat) {
        assert_eq!(
            (src.rows, src.cols),
            (dst.rows, dst.cols),
            "copy_into: shapes differ"
        );
        self.sub.encoder.copy_buffer_to_buffer(
            &src.buf,
            (src.offset * 4) as u64,
            &dst.buf,
            (dst.offset * 4) as u64,
            (src.len() * 4) as u64,
        );
    }

    /// A copy of `x` in a buffer of its own.
    pub fn copy(&mut self, x: &GpuMat) -> Result<GpuMat, GpuError> {
        let y = self.zeros("copy", x.rows, x.cols)?;
        self.copy_into(x, &y);
        Ok(y)
    }

    /// (y, norms): rows divided by max(‖row‖, 1e-12), and the norms before the clamp (rows×1),
    /// as [`crate::linalg::normalize_rows`].
    pub fn normalize(&mut self, x: &GpuMat) -> Result<(GpuMat, GpuMat), GpuError> {
        let y = self.zeros("normalized", x.rows, x.cols)?;
        let norms = self.zeros("norms", x.rows, 1)?;
        self.each_row("normalize", x, [Some(x), None, Some(&y), Some(&norms)])?;
        Ok((y, norms))
    }

    /// dL/dx from y, the norms and dL/dy (as [`crate::linalg::normalize_rows_backward`]).
    pub fn normalize_backward(
        &mut self,
        y: &GpuMat,
        norms: &GpuMat,
        dy: &GpuMat,
    ) -> Result<GpuMat, GpuError> {
        assert_eq!(
            (y.rows, y.cols),
            (dy.rows, dy.cols),
            "normalize_backward: shapes differ"
        );
        assert_eq!(norms.len(), y.rows, "normalize_backward: one norm per row");
        let dx = self.zeros("normalize grad", y.rows, y.cols)?;
        self.each_row(
            "normalize_backward",
            y,
            [Some(y), Some(dy), Some(&dx), Some(norms)],
        )?;
        Ok(dx)
    }

    /// Row-wise softmax in place (as [`crate::linalg::softmax_rows`]).
    pub fn softmax(&mut self, z: &GpuMat) -> Result<(), GpuError> {
        self.each_row("softmax", z, [None, None, Some(z), None])?;
        Ok(())
    }

    /// dZ = W ∘ (dW − rowsum(dW ∘ W)) (as [`crate::linalg::softmax_rows_backward`]).
    pub fn softmax_backward(&mut self, w: &GpuMat, dw: &GpuMat) -> Result<GpuMat, GpuError> {
        assert_eq!(
            (w.rows, w.cols),
            (dw.rows, dw.cols),
            "softmax_backward: shapes differ"
        );
        let dz = self.zeros("softmax grad", w.rows, w.cols)?;
        self.each_row("softmax_backward", w, [Some(w), Some(dw), Some(&dz), None])?;
        Ok(dz)
    }

    /// Per row i: mask_i · Σ_j T_ij log(P_ij + 1e-11) (rows×1; `mask` holds 1 or 0 per row).
    pub fn ce_rows(&mut self, p: &GpuMat, t: &GpuMat, mask: &GpuMat) -> Result<GpuMat, GpuError> {
        assert_eq!(
            (p.rows, p.cols),
            (t.rows, t.cols),
            "ce_rows: P and T differ in shape"
        );
        assert_eq!(mask.len(), p.rows, "ce_rows: one mask value per row");
        let out = self.zeros("cross-entropy rows", p.rows, 1)?;
        self.each_row("ce_rows", p, [Some(p), Some(t), Some(&out), Some(mask)])?;
        Ok(out)
    }

    /// The cross-entropy's gradient to the logits Z of P = softmax(Z/τ), for a loss scaled by
    /// `scale` (1/rows): as [`crate::loss::kernel::backward`] computes dZ.
    pub fn ce_backward(
        &mut self,
        p: &GpuMat,
        t: &GpuMat,
        mask: &GpuMat,
        tau: f32,
        scale: f32,
    ) -> Result<GpuMat, GpuError> {
        assert_eq!(
            (p.rows, p.cols),
            (t.rows, t.cols),
            "ce_backward: P and T differ in shape"
        );
        assert_eq!(mask.len(), p.rows, "ce_backward: one mask value per row");
        let dz = self.zeros("cross-entropy grad", p.rows, p.cols)?;
        let params = Params {
            alpha: tau,
            beta: scale,
            ..shape(p.rows, p.cols)?
        };
        self.record(
            "ce_backward",
            params,
            Some(p),
            Some(t),
            &dz,
            Some(mask),
            self.groups(p.rows),
        );
        Ok(dz)
    }

    /// alpha · Σ of every value of `x` (1×1), in a fixed order.
    pub fn sum(&mut self, x: &GpuMat, alpha: f32) -> Result<GpuMat, GpuError> {
        let out = self.zeros("sum", 1, 1)?;
        let params = Params {
            alpha,
            ..shape(x.len(), 1)?
        };
        self.record("reduce_sum", params, Some(x), None, &out, None, [1, 1, 1]);
        Ok(out)
    }
}
