//! The parallel decoder on the GPU, beside the CPU reference [`super::kernel`]: the same
//! post-norm layers (self-attention over the K′ queries, cross-attention over the frames with
//! padded frames masked, the FFN, dropout from given multipliers, LayerNorms), the final
//! LayerNorm and the normalisation, forward and backward, for a batch of B videos at once,
//! composed of the kernels of [`crate::linalg_gpu`].
//!
//! Contract: as [`super::kernel::forward`] and [`super::kernel::backward`] applied to each video:
//! the memory F is B·N×d, the key mask B×N (1 real, 0 padding), S comes out B·K′×d; parameters
//! and gradients are matrices in [`super::kernel::layout`] order (the tensors of a resident
//! parameter set), and the backward accumulates every parameter's gradient summed over the
//! videos, and returns dL/dF. Attention heads are strided views of the projections
//! ([`crate::linalg_gpu::View`]), so every head of every video is one product per head.
//! Dropout multipliers are drawn on the CPU ([`super::kernel::draw_drops`], the run's stream)
//! and uploaded once per step ([`upload_drops`]).
//!
//! Tolerance: sums in other orders than sgemm's, WGSL's `exp`: S agrees with the CPU to 1e-5,
//! the gradients to 1e-4 relative to their largest entry (`tests/gpu_parity.rs`). Cost per
//! layer O(B·K′·N·d + B·K′·d²), about forty dispatches per layer forward and eighty backward.

use super::kernel::{DecoderShape, LayerDrops, PER_LAYER};
use crate::gpu::{GpuContext, GpuError};
use crate::linalg::Op;
use crate::linalg_gpu::{GpuMat, Ops, View};

/// One layer's dropout multipliers for the batch: attention weights head-major
/// (rows ordered head, video, query; a column per key), the others stacked per video.
#[derive(Debug, Clone)]
pub struct GpuDrops {
    pub self_attn: GpuMat,
    pub res1: GpuMat,
    pub cross_attn: GpuMat,
    pub res2: GpuMat,
    pub ffn: GpuMat,
    pub res3: GpuMat,
}

/// The multipliers of every video (batch order) and layer, in [`GpuDrops`]' layout.
pub fn upload_drops(
    ctx: &GpuContext,
    drops: &[&[LayerDrops<f32>]],
    s: &DecoderShape,
    n: usize,
) -> Result<Vec<GpuDrops>, GpuError> {
    let (b, h, kq, d) = (drops.len(), s.heads, s.queries, s.d);
    let head_major = |get: &dyn Fn(&LayerDrops<f32>) -> &Vec<f32>, l: usize, keys: usize| {
        let block = kq * keys;
        let mut out = Vec::with_capacity(h * b * block);
        for head in 0..h {
            for v in drops {
                out.extend_from_slice(&get(&v[l])[head * block..(head + 1) * block]);
            }
        }
        out
    };
    let stacked = |get: &dyn Fn(&LayerDrops<f32>) -> &Vec<f32>, l: usize| {
        drops
            .iter()
            .flat_map(|v| get(&v[l]).iter().copied())
            .collect::<Vec<f32>>()
    };
    (0..s.layers)
        .map(|l| {
            Ok(GpuDrops {
                self_attn: GpuMat::upload(
                    ctx,
                    "dropout",
                    &head_major(&|x| &x.self_attn, l, kq),
                    h * b * kq,
                    kq,
                )?,
                res1: GpuMat::upload(ctx, "dropout", &stacked(&|x| &x.res1, l), b * kq, d)?,
                cross_attn: GpuMat::upload(
                    ctx,
                    "dropout",
                    &head_major(&|x| &x.cross_attn, l, n),
                    h * b * kq,
                    n,
                )?,
                res2: GpuMat::upload(ctx, "dropout", &stacked(&|x| &x.res2, l), b * kq, d)?,
                ffn: GpuMat::upload(ctx, "dropout", &stacked(&|x| &x.ffn, l), b * kq, s.ffn)?,
                res3: GpuMat::upload(ctx, "dropout", &stacked(&|x| &x.res3, l), b * kq, d)?,
            })
        })
        .collect()
}

/// One attention's cache.
#[derive(Debug, Clone)]
pub struct GpuMhaCache {
    /// The in-projection's q, k and v weights (d×d each), split off the packed matrix.
    w: [GpuMat; 3],
    q: GpuMat,
    k: GpuMat,
    v: GpuMat,
    /// softmax weights, head-major: H·B·Lq × Lk
    attn: GpuMat,
    attn_d: GpuMat,
    ctx: GpuMat,
}

/// LayerNorm's cache: x̂ and 1/σ.
#[derive(Debug, Clone)]
struct GpuLn {
    xhat: GpuMat,
    rstd: GpuMat,
}

#[derive(Debug, Clone)]
struct GpuLayerCache {
    qk: GpuMat,
    sa_v: GpuMat,
    sa: GpuMhaCache,
    ln1: GpuLn,
    q2: GpuMat,
    ca: GpuMhaCache,
    ln2: GpuLn,
    x2: GpuMat,
    h: GpuMat,
    hd: GpuMat,
    ln3: GpuLn,
}

/// Everything backward needs.
#[derive(Debug, Clone)]
pub struct GpuDecoderCache {
    layers: Vec<GpuLayerCache>,
    mk: GpuMat,
    mv: GpuMat,
    lnf: GpuLn,
    /// S (unit rows), B·K′×d
    pub out: GpuMat,
    norms: GpuMat,
}

/// Sizes of one attention: videos, queries and keys per video, width, heads.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    lq: usize,
    lk: usize,
    d: usize,
    heads: usize,
}

/// Head `h` of a B·L×d projection, item stride L·d: rows by columns (`t` false) or transposed.
fn head(m: &GpuMat, h: usize, hd: usize, rows: usize, t: bool) -> View {
    let d = m.cols;
    View {
        mat: m.clone(),
        offset: h * hd,
        rs: if t { 1 } else { d },
        cs: if t { d } else { 1 },
        stride: rows * d,
    }
}

/// Head `h`'s block of a head-major H·B·Lq × Lk matrix (`t`: transposed).
fn block(m: &GpuMat, h: usize, dims: Dims, t: bool) -> View {
    let (lq, lk) = (dims.lq, dims.lk);
    View {
        mat: m.clone(),
        offset: h * dims.batch * lq * lk,
        rs: if t { 1 } else { lk },
        cs: if t { lk } else { 1 },
        stride: lq * lk,
    }
}

/// Rows `first..first+rows` of a matrix as their own matrix (a copy).
fn rows_of(ops: &mut Ops<'_>, m: &GpuMat, first: usize, rows: usize) -> Result<GpuMat, GpuError> {
    let src = GpuMat {
        offset: m.offset + first * m.cols,
        rows,
        ..m.clone()
    };
    let out = ops.zeros("rows", rows, m.cols)?;
    ops.copy_into(&src, &out);
    Ok(out)
}

/// x ∘ mask (a new matrix), or x itself without a mask.
fn dropped(ops: &mut Ops<'_>, x: &GpuMat, mask: Option<&GpuMat>) -> Result<GpuMat, GpuError> {
    match mask {
        Some(m) => {
            let out = ops.zeros("dropped", x.rows, x.cols)?;
            ops.mul_add(x, m, &out)?;
            Ok(out)
        }
        None => Ok(x.clone()),
    }
}

/// a + b in a new matrix.
fn plus(ops: &mut Ops<'_>, a: &GpuMat, b: &GpuMat) -> Result<GpuMat, GpuError> {
    let out = ops.copy(a)?;
    ops.axpy(1.0, b, &out)?;
    Ok(out)
}

/// LayerNorm with γ and β.
fn layer_norm(
    ops: &mut Ops<'_>,
    x: &GpuMat,
    g: &GpuMat,
    b: &GpuMat,
) -> Result<(GpuMat, GpuLn), GpuError> {
    let (xhat, rstd) = ops.layer_norm(x)?;
    let y = ops.mul_cols(&xhat, g)?;
    ops.add_tiled(b, &y)?;
    Ok((y, GpuLn { xhat, rstd }))
}

/// LayerNorm's backward: dx, with dγ and dβ accumulated into `dg`, `db`.
fn layer_norm_backward(
    ops: &mut Ops<'_>,
    c: &GpuLn,
    g: &GpuMat,
    dy: &GpuMat,
    (dg, db): (&GpuMat, &GpuMat),
) -> Result<GpuMat, GpuError> {
    let gdy = ops.mul_cols(dy, g)?;
    let dx = ops.layer_norm_backward(&c.xhat, &c.rstd, &gdy)?;
    let prod = ops.zeros("dy * xhat", dy.rows, dy.cols)?;
    ops.mul_add(dy, &c.xhat, &prod)?;
    ops.col_sum_into(&prod, dg)?;
    ops.col_sum_into(dy, db)?;
    Ok(dx)
}

/// y = x Wᵀ + b's backward: dW += dyᵀ x, db += Σ dy, returns dx = dy W.
fn linear_backward(
    ops: &mut Ops<'_>,
    x: &GpuMat,
    w: &GpuMat,
    dy: &GpuMat,
    (dw, db): (&GpuMat, &GpuMat),
) -> Result<GpuMat, GpuError> {
    ops.gemm(1.0, dy, Op::T, x, Op::N, 1.0, dw)?;
    ops.col_sum_into(dy, db)?;
    let dx = ops.zeros("linear grad", x.rows, x.cols)?;
    ops.gemm(1.0, dy, Op::N, w, Op::N, 0.0, &dx)?;
    Ok(dx)
}

/// The packed in-projection split into its q, k and v parts: (W, b) each.
fn split_in(
    ops: &mut Ops<'_>,
    w_in: &GpuMat,
    b_in: &GpuMat,
    d: usize,
) -> Result<[(GpuMat, GpuMat); 3], GpuError> {
    let b_rows = GpuMat {
        rows: 3,
        cols: d,
        ..b_in.clone()
    };
    let part = |ops: &mut Ops<'_>, i: usize| -> Result<(GpuMat, GpuMat), GpuError> {
        let w = rows_of(ops, w_in, i * d, d)?;
        let b = rows_of(ops, &b_rows, i, 1)?;
        Ok((w, b))
    };
    Ok([part(ops, 0)?, part(ops, 1)?, part(ops, 2)?])
}

/// Multi-head attention (as [`super::kernel::mha`]) for every video and head at once.
#[allow(clippy::too_many_arguments)]
fn mha(
    ops: &mut Ops<'_>,
    p: [&GpuMat; 4],
    (xq, xk, xv): (&GpuMat, &GpuMat, &GpuMat),
    dims: Dims,
    key_valid: Option<&GpuMat>,
    drop: Option<&GpuMat>,
) -> Result<(GpuMat, GpuMhaCache), GpuError> {
    let Dims {
        batch,
        lq,
        lk,
        d,
        heads,
    } = dims;
    let hd = d / heads;
    let [(wq, bq), (wk, bk), (wv, bv)] = split_in(ops, p[0], p[1], d)?;
    let q = ops.linear(xq, &wq, &bq)?;
    let k = ops.linear(xk, &wk, &bk)?;
    let v = ops.linear(xv, &wv, &bv)?;
    let scale = 1.0 / (hd as f32).sqrt();
    let attn = ops.zeros("attention", heads * batch * lq, lk)?;
    for h in 0..heads {
        let a = head(&q, h, hd, lq, false);
        let b = head(&k, h, hd, lk, true);
        let c = block(&attn, h, dims, false);
        ops.gemm_view(batch, (lq, hd, lk), scale, &a, &b, 0.0, &c)?;
    }
    if let Some(valid) = key_valid {
        ops.mask_keys(&attn, valid, (batch, lq))?;
    }
    ops.softmax(&attn)?;
    let attn_d = match drop {
        Some(m) => dropped(ops, &attn, Some(m))?,
        None => ops.copy(&attn)?,
    };
    let ctx = ops.zeros("attention context", batch * lq, d)?;
    for h in 0..heads {
        let a = block(&attn_d, h, dims, false);
        let b = head(&v, h, hd, lk, false);
        let c = head(&ctx, h, hd, lq, false);
        ops.gemm_view(batch, (lq, lk, hd), 1.0, &a, &b, 0.0, &c)?;
    }
    let out = ops.linear(&ctx, p[2], p[3])?;
    Ok((
        out,
        GpuMhaCache {
            w: [wq, wk, wv],
            q,
            k,
            v,
            attn,
            attn_d,
            ctx,
        },
    ))
}

/// Backward of [`mha`]: (dxq, dxk, dxv); the parameters' gradients accumulate into `g`.
#[allow(clippy::too_many_arguments)]
fn mha_backward(
    ops: &mut Ops<'_>,
    p: [&GpuMat; 4],
    c: &GpuMhaCache,
    (xq, xk, xv): (&GpuMat, &GpuMat, &GpuMat),
    dout: &GpuMat,
    dims: Dims,
    drop: Option<&GpuMat>,
    g: [&GpuMat; 4],
) -> Result<(GpuMat, GpuMat, GpuMat), GpuError> {
    let Dims {
        batch,
        lq,
        lk,
        d,
        heads,
    } = dims;
    let hd = d / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let dctx = linear_backward(ops, &c.ctx, p[2], dout, (g[2], g[3]))?;
    let dad = ops.zeros("attention grad", heads * batch * lq, lk)?;
    let (dq, dk, dv) = (
        ops.zeros("dq", batch * lq, d)?,
        ops.zeros("dk", batch * lk, d)?,
        ops.zeros("dv", batch * lk, d)?,
    );
    for h in 0..heads {
        // ctx_h = Ad V_h: dAd = dctx_h V_hᵀ, dV_h = Adᵀ dctx_h
        let dch = head(&dctx, h, hd, lq, false);
        ops.gemm_view(
            batch,
            (lq, hd, lk),
            1.0,
            &dch,
            &head(&c.v, h, hd, lk, true),
            0.0,
            &block(&dad, h, dims, false),
        )?;
        ops.gemm_view(
            batch,
            (lk, lq, hd),
            1.0,
            &block(&c.attn_d, h, dims, true),
            &dch,
            0.0,
            &head(&dv, h, hd, lk, false),
        )?;
    }
    let dad = dropped(ops, &dad, drop)?;
    let ds = ops.softmax_backward(&c.attn, &dad)?;
    for h in 0..heads {
        ops.gemm_view(
            batch,
            (lq, lk, hd),
            scale,
            &block(&ds, h, dims, false),
            &head(&c.k, h, hd, lk, false),
            0.0,
            &head(&dq, h, hd, lq, false),
        )?;
        ops.gemm_view(
            batch,
            (lk, lq, hd),
            scale,
            &block(&ds, h, dims, true),
            &head(&c.q, h, hd, lq, false),
            0.0,
            &head(&dk, h, hd, lk, false),
        )?;
    }
    // the in-projection: gradients of the three parts into one packed temporary each
    let [wq, wk, wv] = &c.w;
    let gw = ops.zeros("in-projection grad", 3 * d, d)?;
    let gb = ops.zeros("in-projection bias grad", 1, 3 * d)?;
    let part = |ops: &mut Ops<'_>, i: usize, x: &GpuMat, w: &GpuMat, dy: &GpuMat| {
        // dW_i = dyᵀ x into rows i·d.. of the packed gradient, db_i into its columns i·d..
        let dyt = View {
            mat: dy.clone(),
            offset: 0,
            rs: 1,
            cs: d,
            stride: 0,
        };
        let xv = View {
            mat: x.clone(),
            offset: 0,
            rs: d,
            cs: 1,
            stride: 0,
        };
        let into = View {
            mat: gw.clone(),
            offset: i * d * d,
            rs: d,
            cs: 1,
            stride: 0,
        };
        ops.gemm_view(1, (d, x.rows, d), 1.0, &dyt, &xv, 0.0, &into)?;
        let gbi = ops.zeros("bias grad", 1, d)?;
        ops.col_sum_into(dy, &gbi)?;
        let dst = GpuMat {
            offset: gb.offset + i * d,
            rows: 1,
            cols: d,
            ..gb.clone()
        };
        ops.copy_into(&gbi, &dst);
        let dx = ops.zeros("in-projection input grad", x.rows, d)?;
        ops.gemm(1.0, dy, Op::N, w, Op::N, 0.0, &dx)?;
        Ok::<_, GpuError>(dx)
    };
    let dxq = part(ops, 0, xq, wq, &dq)?;
    let dxk = part(ops, 1, xk, wk, &dk)?;
    let dxv = part(ops, 2, xv, wv, &dv)?;
    ops.axpy(1.0, &gw, g[0])?;
    ops.axpy(1.0, &gb, g[1])?;
    Ok((dxq, dxk, dxv))
}

/// The four tensors of layer `o`'s attention starting at index `base` of `p`.
fn four(p: &[GpuMat], base: usize) -> [&GpuMat; 4] {
    [&p[base], &p[base + 1], &p[base + 2], &p[base + 3]]
}

/// S = normalize(Decoder(Q_seg, memory = F + PE)) for a batch: `mem` is B·N×d, `valid` B×N,
/// `pe` the N×d positions, `p` the tensors in layout order, `drops` one entry per layer in
/// training.
pub fn forward(
    ops: &mut Ops<'_>,
    p: &[GpuMat],
    s: &DecoderShape,
    (mem, valid, pe): (&GpuMat, &GpuMat, &GpuMat),
    batch: usize,
    drops: Option<&[GpuDrops]>,
) -> Result<GpuDecoderCache, GpuError> {
    let (kq, d) = (s.queries, s.d);
    let n = mem.rows / batch.max(1);
    let base = s.layers * PER_LAYER;
    let qpos = &p[base + 3];
    let mk = ops.copy(mem)?;
    ops.add_tiled(pe, &mk)?;
    let mv = if s.pos_values {
        mk.clone()
    } else {
        mem.clone()
    };
    let mut tgt = ops.tile(&p[base + 2], batch)?;
    let self_dims = Dims {
        batch,
        lq: kq,
        lk: kq,
        d,
        heads: s.heads,
    };
    let cross_dims = Dims { lk: n, ..self_dims };
    let mut layers = Vec::with_capacity(s.layers);
    for l in 0..s.layers {
        let o = l * PER_LAYER;
        let dr = drops.map(|v| &v[l]);
        let x0 = tgt;
        let qk = ops.copy(&x0)?;
        ops.add_tiled(qpos, &qk)?;
        let sa_v = if s.pos_values { qk.clone() } else { x0.clone() };
        let (sa_out, sa) = mha(
            ops,
            four(p, o),
            (&qk, &qk, &sa_v),
            self_dims,
            None,
            dr.map(|x| &x.self_attn),
        )?;
        let sa_out_d = dropped(ops, &sa_out, dr.map(|x| &x.res1))?;
        let r1 = plus(ops, &x0, &sa_out_d)?;
        let (x1, ln1) = layer_norm(ops, &r1, &p[o + 12], &p[o + 13])?;
        let q2 = ops.copy(&x1)?;
        ops.add_tiled(qpos, &q2)?;
        let (ca_out, ca) = mha(
            ops,
            four(p, o + 4),
            (&q2, &mk, &mv),
            cross_dims,
            Some(valid),
            dr.map(|x| &x.cross_attn),
        )?;
        let ca_out_d = dropped(ops, &ca_out, dr.map(|x| &x.res2))?;
        let r2 = plus(ops, &x1, &ca_out_d)?;
        let (x2, ln2) = layer_norm(ops, &r2, &p[o + 14], &p[o + 15])?;
        let h = ops.linear(&x2, &p[o + 8], &p[o + 9])?;
        ops.relu(&h)?;
        let hd = dropped(ops, &h, dr.map(|x| &x.ffn))?;
        let ff = ops.linear(&hd, &p[o + 10], &p[o + 11])?;
        let ff_d = dropped(ops, &ff, dr.map(|x| &x.res3))?;
        let r3 = plus(ops, &x2, &ff_d)?;
        let (x3, ln3) = layer_norm(ops, &r3, &p[o + 16], &p[o + 17])?;
        layers.push(GpuLayerCache {
            qk,
            sa_v,
            sa,
            ln1,
            q2,
            ca,
            ln2,
            x2,
            h,
            hd,
            ln3,
        });
        tgt = x3;
    }
    let (y, lnf) = layer_norm(ops, &tgt, &p[base], &p[base + 1])?;
    let (out, norms) = ops.normalize(&y)?;
    Ok(GpuDecoderCache {
        layers,
        mk,
        mv,
        lnf,
        out,
        norms,
    })
}

/// Σ over the B videos of a B·R×d matrix, added into `into` (R×d).
fn add_video_sum(
    ops: &mut Ops<'_>,
    x: &GpuMat,
    batch: usize,
    into: &GpuMat,
) -> Result<(), GpuError> {
    let ones = ops.filled("ones", 1, batch, 1.0)?;
    let per = x.len() / batch.max(1);
    let rows = GpuMat {
        rows: batch,
        cols: per,
        ..x.clone()
    };
    let dst = GpuMat {
        rows: 1,
        cols: per,
        ..into.clone()
    };
    ops.gemm(1.0, &ones, Op::N, &rows, Op::N, 1.0, &dst)
}

/// Backward: from dS (B·K′×d) accumulates every tensor's gradient (summed over the videos) into
/// `g` (layout order) and returns dL/dmemory (B·N×d).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    ops: &mut Ops<'_>,
    p: &[GpuMat],
    s: &DecoderShape,
    c: &GpuDecoderCache,
    ds: &GpuMat,
    batch: usize,
    drops: Option<&[GpuDrops]>,
    g: &[GpuMat],
) -> Result<GpuMat, GpuError> {
    let (kq, d) = (s.queries, s.d);
    let n = c.mk.rows / batch.max(1);
    let base = s.layers * PER_LAYER;
    let self_dims = Dims {
        batch,
        lq: kq,
        lk: kq,
        d,
        heads: s.heads,
    };
    let cross_dims = Dims { lk: n, ..self_dims };
    let dln = ops.normalize_backward(&c.out, &c.norms, ds)?;
    let mut dx = layer_norm_backward(ops, &c.lnf, &p[base], &dln, (&g[base], &g[base + 1]))?;
    let dqpos = ops.zeros("dQ_pos", batch * kq, d)?;
    let dmk = ops.zeros("dmk", batch * n, d)?;
    let dmv = ops.zeros("dmv", batch * n, d)?;
    for l in (0..s.layers).rev() {
        let o = l * PER_LAYER;
        let lc = &c.layers[l];
        let dr = drops.map(|v| &v[l]);
        // tgt = LN3(x2 + Drop(FFN(x2)))
        let dr3 = layer_norm_backward(ops, &lc.ln3, &p[o + 16], &dx, (&g[o + 16], &g[o + 17]))?;
        let dx2 = ops.copy(&dr3)?;
        let dff = dropped(ops, &dr3, dr.map(|x| &x.res3))?;
        let dhd = linear_backward(ops, &lc.hd, &p[o + 10], &dff, (&g[o + 10], &g[o + 11]))?;
        let dh = dropped(ops, &dhd, dr.map(|x| &x.ffn))?;
        ops.relu_mask(&lc.h, &dh)?;
        let d2 = linear_backward(ops, &lc.x2, &p[o + 8], &dh, (&g[o + 8], &g[o + 9]))?;
        ops.axpy(1.0, &d2, &dx2)?;
        // x2 = LN2(x1 + Drop(CrossAttn(x1 + Q_pos, mk, mv)))
        let dr2 = layer_norm_backward(ops, &lc.ln2, &p[o + 14], &dx2, (&g[o + 14], &g[o + 15]))?;
        let dx1 = ops.copy(&dr2)?;
        let dca = dropped(ops, &dr2, dr.map(|x| &x.res2))?;
        let (dq2, dk2, dv2) = mha_backward(
            ops,
            four(p, o + 4),
            &lc.ca,
            (&lc.q2, &c.mk, &c.mv),
            &dca,
            cross_dims,
            dr.map(|x| &x.cross_attn),
            four(g, o + 4),
        )?;
        ops.axpy(1.0, &dq2, &dx1)?;
        ops.axpy(1.0, &dq2, &dqpos)?;
        ops.axpy(1.0, &dk2, &dmk)?;
        ops.axpy(1.0, &dv2, &dmv)?;
        // x1 = LN1(x0 + Drop(SelfAttn(qk, qk, v)))
        let dr1 = layer_norm_backward(ops, &lc.ln1, &p[o + 12], &dx1, (&g[o + 12], &g[o + 13]))?;
        let dx0 = ops.copy(&dr1)?;
        let dsa = dropped(ops, &dr1, dr.map(|x| &x.res1))?;
        let (dqa, dka, dva) = mha_backward(
            ops,
            four(p, o),
            &lc.sa,
            (&lc.qk, &lc.qk, &lc.sa_v),
            &dsa,
            self_dims,
            dr.map(|x| &x.self_attn),
            four(g, o),
        )?;
        let dqk = plus(ops, &dqa, &dka)?;
        if s.pos_values {
            ops.axpy(1.0, &dva, &dqk)?;
        } else {
            ops.axpy(1.0, &dva, &dx0)?;
        }
        ops.axpy(1.0, &dqk, &dx0)?;
        ops.axpy(1.0, &dqk, &dqpos)?;
        dx = dx0;
    }
    add_video_sum(ops, &dx, batch, &g[base + 2])?;
    add_video_sum(ops, &dqpos, batch, &g[base + 3])?;
    // mk = mem + PE; mv = mk or mem
    plus(ops, &dmk, &dmv)
}
