//! The parallel decoder kernel (SPEC §2; DETR/FUTR-style, post-norm), forward and backward,
//! generic over f32/f64.
//!
//! Per layer, with positions on the values as the released code does (`pos_values`):
//! ```text
//! q = k = tgt + Q_pos;  v = q (or tgt)
//! tgt = LN1(tgt + Drop(SelfAttn(q, k, v)))
//! tgt = LN2(tgt + Drop(CrossAttn(tgt + Q_pos, F + PE, F + PE (or F))))   padded frames masked
//! tgt = LN3(tgt + Drop(W2 Drop(ReLU(W1 tgt + b1)) + b2))
//! ```
//! then a final LayerNorm and S = normalize(·). tgt starts as Q_seg. Attention is PyTorch's
//! `nn.MultiheadAttention` (packed in-projection, h heads of d/h, dropout on the attention
//! weights, output projection). Dropout masks are given (multipliers 0 or 1/(1−p)), drawn by the
//! caller from the run's RNG, so forward and backward are deterministic functions.
//!
//! Parameters are a flat list in [`layout`] order (PyTorch state-dict names). Shapes: memory N×d,
//! queries K′×d. Cost per layer O(K′·N·d + K′·d²·(3 + 2·4)) for the cross-attention and
//! projections.

use crate::linalg::{
    Op, Real, add_into, gemm, linear, linear_backward, normalize_rows, normalize_rows_backward,
    softmax_rows, softmax_rows_backward,
};

/// Tensors per decoder layer in [`layout`].
pub const PER_LAYER: usize = 18;
/// LayerNorm ε.
pub const LN_EPS: f64 = 1e-5;

/// The decoder's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderShape {
    /// Width d.
    pub d: usize,
    pub heads: usize,
    pub layers: usize,
    /// Segment queries K′.
    pub queries: usize,
    /// FFN width (4d).
    pub ffn: usize,
    /// Add positions to the attention values (the released code does).
    pub pos_values: bool,
}

/// Names and shapes of the decoder's tensors, in the order every function here indexes them.
pub fn layout(s: &DecoderShape) -> Vec<(String, Vec<usize>)> {
    let d = s.d;
    let mut v = Vec::new();
    for l in 0..s.layers {
        let p = format!("decoder.layers.{l}");
        for att in ["self_attn", "multihead_attn"] {
            v.push((format!("{p}.{att}.in_proj_weight"), vec![3 * d, d]));
            v.push((format!("{p}.{att}.in_proj_bias"), vec![3 * d]));
            v.push((format!("{p}.{att}.out_proj.weight"), vec![d, d]));
            v.push((format!("{p}.{att}.out_proj.bias"), vec![d]));
        }
        v.push((format!("{p}.linear1.weight"), vec![s.ffn, d]));
        v.push((format!("{p}.linear1.bias"), vec![s.ffn]));
        v.push((format!("{p}.linear2.weight"), vec![d, s.ffn]));
        v.push((format!("{p}.linear2.bias"), vec![d]));
        for n in 1..=3 {
            v.push((format!("{p}.norm{n}.weight"), vec![d]));
            v.push((format!("{p}.norm{n}.bias"), vec![d]));
        }
    }
    v.push(("decoder.norm.weight".into(), vec![d]));
    v.push(("decoder.norm.bias".into(), vec![d]));
    v.push(("query_embed".into(), vec![s.queries, d]));
    v.push(("query_pos".into(), vec![s.queries, d]));
    v
}

/// Sinusoidal positions for N frames: `pe[n,2i] = sin(n·10000^(−2i/d))`, `pe[n,2i+1] = cos(…)`.
pub fn positions<R: Real>(n: usize, d: usize) -> Vec<R> {
    // Training asks for the same N×d table at every step, and evaluation for each video's
    // length: row t depends only on t and d, so one f64 table per width d is kept per thread,
    // grown to the longest N asked for, and a call takes its first N rows. The sines and
    // cosines of a row are computed once per thread (they were 2 % of a coffee run's
    // instructions, and a tenth of a long-video evaluation when every length was a new table);
    // the values are the same, computed in f64 and rounded once.
    thread_local! {
        static CACHE: std::cell::RefCell<Vec<PositionTable>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    if d == 0 {
        return Vec::new();
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let at = match c.iter().position(|(width, _)| *width == d) {
            Some(at) => at,
            None => {
                if c.len() >= 4 {
                    c.remove(0);
                }
                c.push((d, Vec::new()));
                c.len() - 1
            }
        };
        let table = &mut c[at].1;
        let have = table.len() / d;
        if have < n {
            table.resize(n * d, 0.0);
            position_rows(&mut table[have * d..], have, d);
        }
        table[..n * d].iter().map(|&x| R::c(x)).collect()
    })
}

/// A cached position table: its width d and its rows (as many as the longest N asked for).
type PositionTable = (usize, Vec<f64>);

/// Rows `first..` of the f64 position table into `pe` (as many rows as it holds, d wide).
fn position_rows(pe: &mut [f64], first: usize, d: usize) {
    for (r, row) in pe.chunks_exact_mut(d).enumerate() {
        let t = first + r;
        for i in (0..d).step_by(2) {
            let freq = (-(i as f64) * (10000f64).ln() / d as f64).exp();
            let x = t as f64 * freq;
            row[i] = x.sin();
            if i + 1 < d {
                row[i + 1] = x.cos();
            }
        }
    }
}

// ---------------------------------------------------------------- LayerNorm

/// LayerNorm cache: normalised input and 1/σ per row ([`layer_norm`] forward, [`layer_norm_backward`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LnCache<R> {
    xhat: Vec<R>,
    rstd: Vec<R>,
}

pub fn layer_norm<R: Real>(x: &[R], g: &[R], b: &[R], d: usize) -> (Vec<R>, LnCache<R>) {
    let mut xhat = x.to_vec();
    let mut rstd = Vec::with_capacity(x.len() / d);
    let mut y = vec![R::zero(); x.len()];
    for (row, yr) in xhat.chunks_exact_mut(d).zip(y.chunks_exact_mut(d)) {
        let mean = row.iter().copied().sum::<R>() / R::c(d as f64);
        let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<R>() / R::c(d as f64);
        let r = R::one() / (var + R::c(LN_EPS)).sqrt();
        for ((v, o), (&gg, &bb)) in row.iter_mut().zip(yr.iter_mut()).zip(g.iter().zip(b)) {
            *v = (*v - mean) * r;
            *o = *v * gg + bb;
        }
        rstd.push(r);
    }
    (y, LnCache { xhat, rstd })
}

pub fn layer_norm_backward<R: Real>(
    c: &LnCache<R>,
    g: &[R],
    dy: &[R],
    d: usize,
    dg: &mut [R],
    db: &mut [R],
) -> Vec<R> {
    let mut dx = vec![R::zero(); dy.len()];
    let dn = R::c(d as f64);
    for (((xr, dyr), dxr), &r) in c
        .xhat
        .chunks_exact(d)
        .zip(dy.chunks_exact(d))
        .zip(dx.chunks_exact_mut(d))
        .zip(&c.rstd)
    {
        let mut m1 = R::zero();
        let mut m2 = R::zero();
        for j in 0..d {
            let dxh = dyr[j] * g[j];
            dg[j] = dg[j] + dyr[j] * xr[j];
            db[j] = db[j] + dyr[j];
            m1 = m1 + dxh;
            m2 = m2 + dxh * xr[j];
        }
        m1 = m1 / dn;
        m2 = m2 / dn;
        for j in 0..d {
            dxr[j] = r * (dyr[j] * g[j] - m1 - xr[j] * m2);
        }
    }
    dx
}

// ---------------------------------------------------------------- attention

/// One `nn.MultiheadAttention`'s parameters.
#[derive(Debug, Clone, Copy)]
pub struct MhaParams<'a, R> {
    pub w_in: &'a [R],
    pub b_in: &'a [R],
    pub w_out: &'a [R],
    pub b_out: &'a [R],
}

/// Attention cache.
#[derive(Debug, Clone, PartialEq)]
pub struct MhaCache<R> {
    q: Vec<R>,
    k: Vec<R>,
    v: Vec<R>,
    /// softmax weights per head, h × Lq × Lk
    attn: Vec<R>,
    /// after dropout
    attn_d: Vec<R>,
    ctx: Vec<R>,
}

fn head<R: Real>(x: &[R], rows: usize, d: usize, h: usize, hd: usize) -> Vec<R> {
    let mut out = Vec::with_capacity(rows * hd);
    for r in 0..rows {
        out.extend_from_slice(&x[r * d + h * hd..r * d + (h + 1) * hd]);
    }
    out
}

fn put_head<R: Real>(dst: &mut [R], src: &[R], rows: usize, d: usize, h: usize, hd: usize) {
    for r in 0..rows {
        for j in 0..hd {
            let o = &mut dst[r * d + h * hd + j];
            *o = *o + src[r * hd + j];
        }
    }
}

/// Multi-head attention of `lq` queries over `lk` keys; `key_valid[j]` false masks key j;
/// `drop` (h×lq×lk multipliers) applies dropout to the weights.
#[allow(clippy::too_many_arguments)]
pub fn mha<R: Real>(
    p: &MhaParams<'_, R>,
    xq: &[R],
    xk: &[R],
    xv: &[R],
    (lq, lk, d, heads): (usize, usize, usize, usize),
    key_valid: &[bool],
    drop: Option<&[R]>,
) -> (Vec<R>, MhaCache<R>) {
    let hd = d / heads;
    let q = linear(xq, &p.w_in[..d * d], &p.b_in[..d], lq, d, d);
    let k = linear(xk, &p.w_in[d * d..2 * d * d], &p.b_in[d..2 * d], lk, d, d);
    let v = linear(xv, &p.w_in[2 * d * d..], &p.b_in[2 * d..], lk, d, d);
    let scale = R::one() / R::c(hd as f64).sqrt();
    let mut attn = vec![R::zero(); heads * lq * lk];
    let mut attn_d = vec![R::zero(); heads * lq * lk];
    let mut ctx = vec![R::zero(); lq * d];
    for h in 0..heads {
        let (qh, kh, vh) = (
            head(&q, lq, d, h, hd),
            head(&k, lk, d, h, hd),
            head(&v, lk, d, h, hd),
        );
        let a = &mut attn[h * lq * lk..(h + 1) * lq * lk];
        gemm(lq, hd, lk, scale, &qh, Op::N, &kh, Op::T, R::zero(), a);
        for row in a.chunks_exact_mut(lk) {
            for (x, &ok) in row.iter_mut().zip(key_valid) {
                if !ok {
                    *x = R::neg_infinity();
                }
            }
        }
        softmax_rows(a, lk);
        let ad = &mut attn_d[h * lq * lk..(h + 1) * lq * lk];
        ad.copy_from_slice(a);
        if let Some(m) = drop {
            ad.iter_mut()
                .zip(&m[h * lq * lk..(h + 1) * lq * lk])
                .for_each(|(x, &f)| *x = *x * f);
        }
        let mut ch = vec![R::zero(); lq * hd];
        gemm(
            lq,
            lk,
            hd,
            R::one(),
            ad,
            Op::N,
            &vh,
            Op::N,
            R::zero(),
            &mut ch,
        );
        put_head(&mut ctx, &ch, lq, d, h, hd);
    }
    let out = linear(&ctx, p.w_out, p.b_out, lq, d, d);
    (
        out,
        MhaCache {
            q,
            k,
            v,
            attn,
            attn_d,
            ctx,
        },
    )
}

/// Backward of [`mha`]: (dxq, dxk, dxv); parameter gradients accumulate into `g` (w_in, b_in,
/// w_out, b_out).
#[allow(clippy::too_many_arguments)]
pub fn mha_backward<R: Real>(
    p: &MhaParams<'_, R>,
    c: &MhaCache<R>,
    xq: &[R],
    xk: &[R],
    xv: &[R],
    dout: &[R],
    (lq, lk, d, heads): (usize, usize, usize, usize),
    drop: Option<&[R]>,
    g: [&mut [R]; 4],
) -> (Vec<R>, Vec<R>, Vec<R>) {
    let [gw_in, gb_in, gw_out, gb_out] = g;
    let hd = d / heads;
    let scale = R::one() / R::c(hd as f64).sqrt();
    let dctx =
        linear_backward(&c.ctx, p.w_out, dout, lq, d, d, gw_out, gb_out, true).unwrap_or_default();
    let mut dq = vec![R::zero(); lq * d];
    let mut dk = vec![R::zero(); lk * d];
    let mut dv = vec![R::zero(); lk * d];
    for h in 0..heads {
        let (qh, kh, vh) = (
            head(&c.q, lq, d, h, hd),
            head(&c.k, lk, d, h, hd),
            head(&c.v, lk, d, h, hd),
        );
        let dch = head(&dctx, lq, d, h, hd);
        let a = &c.attn[h * lq * lk..(h + 1) * lq * lk];
        let ad = &c.attn_d[h * lq * lk..(h + 1) * lq * lk];
        // ctx_h = Ad V_h
        let mut dad = vec![R::zero(); lq * lk];
        gemm(
            lq,
            hd,
            lk,
            R::one(),
            &dch,
            Op::N,
            &vh,
            Op::T,
            R::zero(),
            &mut dad,
        );
        let mut dvh = vec![R::zero(); lk * hd];
        gemm(
            lk,
            lq,
            hd,
            R::one(),
            ad,
            Op::T,
            &dch,
            Op::N,
            R::zero(),
            &mut dvh,
        );
        if let Some(m) = drop {
            dad.iter_mut()
                .zip(&m[h * lq * lk..(h + 1) * lq * lk])
                .for_each(|(x, &f)| *x = *x * f);
        }
        let ds = softmax_rows_backward(a, &dad, lk);
        let mut dqh = vec![R::zero(); lq * hd];
        gemm(
            lq,
            lk,
            hd,
            scale,
            &ds,
            Op::N,
            &kh,
            Op::N,
            R::zero(),
            &mut dqh,
        );
        let mut dkh = vec![R::zero(); lk * hd];
        gemm(
            lk,
            lq,
            hd,
            scale,
            &ds,
            Op::T,
            &qh,
            Op::N,
            R::zero(),
            &mut dkh,
        );
        put_head(&mut dq, &dqh, lq, d, h, hd);
        put_head(&mut dk, &dkh, lk, d, h, hd);
        put_head(&mut dv, &dvh, lk, d, h, hd);
    }
    let (gwq, rest) = gw_in.split_at_mut(d * d);
    let (gwk, gwv) = rest.split_at_mut(d * d);
    let (gbq, rest) = gb_in.split_at_mut(d);
    let (gbk, gbv) = rest.split_at_mut(d);
    let dxq =
        linear_backward(xq, &p.w_in[..d * d], &dq, lq, d, d, gwq, gbq, true).unwrap_or_default();
    let dxk = linear_backward(xk, &p.w_in[d * d..2 * d * d], &dk, lk, d, d, gwk, gbk, true)
        .unwrap_or_default();
    let dxv = linear_backward(xv, &p.w_in[2 * d * d..], &dv, lk, d, d, gwv, gbv, true)
        .unwrap_or_default();
    (dxq, dxk, dxv)
}

// ---------------------------------------------------------------- the decoder

/// Dropout multipliers of one layer (absent at evaluation).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerDrops<R> {
    /// h×K′×K′
    pub self_attn: Vec<R>,
    /// K′×d
    pub res1: Vec<R>,
    /// h×K′×N
    pub cross_attn: Vec<R>,
    /// K′×d
    pub res2: Vec<R>,
    /// K′×ffn
    pub ffn: Vec<R>,
    /// K′×d
    pub res3: Vec<R>,
}

/// Draws one layer's dropout multipliers (probability `p`) with `uniform`, which returns values
/// in [0, 1).
pub fn draw_drops<R: Real>(
    s: &DecoderShape,
    n: usize,
    p: f64,
    uniform: &mut dyn FnMut() -> f64,
) -> LayerDrops<R> {
    let keep = R::c(1.0 / (1.0 - p));
    let mut mk = |len: usize| -> Vec<R> {
        (0..len)
            .map(|_| if uniform() < p { R::zero() } else { keep })
            .collect()
    };
    let (kq, d) = (s.queries, s.d);
    LayerDrops {
        self_attn: mk(s.heads * kq * kq),
        res1: mk(kq * d),
        cross_attn: mk(s.heads * kq * n),
        res2: mk(kq * d),
        ffn: mk(kq * s.ffn),
        res3: mk(kq * d),
    }
}

#[derive(Debug, Clone, PartialEq)]
struct LayerCache<R> {
    qk: Vec<R>,
    sa_v: Vec<R>,
    sa: MhaCache<R>,
    ln1: LnCache<R>,
    q2: Vec<R>,
    ca: MhaCache<R>,
    ln2: LnCache<R>,
    x2: Vec<R>,
    h: Vec<R>,
    hd: Vec<R>,
    ln3: LnCache<R>,
}

/// Everything backward needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderCache<R> {
    layers: Vec<LayerCache<R>>,
    mk: Vec<R>,
    mv: Vec<R>,
    lnf: LnCache<R>,
    /// S (unit rows), K′×d
    pub out: Vec<R>,
    norms: Vec<R>,
}

fn mha_params<'a, R>(p: &[&'a [R]], base: usize) -> MhaParams<'a, R> {
    MhaParams {
        w_in: p[base],
        b_in: p[base + 1],
        w_out: p[base + 2],
        b_out: p[base + 3],
    }
}

fn mul<R: Real>(x: &[R], m: Option<&Vec<R>>) -> Vec<R> {
    match m {
        Some(m) => x.iter().zip(m).map(|(&a, &b)| a * b).collect(),
        None => x.to_vec(),
    }
}

fn plus<R: Real>(a: &[R], b: &[R]) -> Vec<R> {
    a.iter().zip(b).map(|(&x, &y)| x + y).collect()
}

/// S = normalize(Decoder(Q_seg, memory = F + PE)) for one video: `mem` is N×d, `valid[t]` marks
/// real frames; `drops` has one entry per layer in training. `p` holds the tensors in
/// [`layout`] order.
pub fn forward<R: Real>(
    p: &[&[R]],
    s: &DecoderShape,
    mem: &[R],
    valid: &[bool],
    drops: Option<&[LayerDrops<R>]>,
) -> DecoderCache<R> {
    let (kq, d, n) = (s.queries, s.d, valid.len());
    let base = s.layers * PER_LAYER;
    let qpos = p[base + 3];
    let pe = positions::<R>(n, d);
    let mk = plus(mem, &pe);
    let mv = if s.pos_values {
        mk.clone()
    } else {
        mem.to_vec()
    };
    let all = vec![true; kq];
    let mut tgt = p[base + 2].to_vec();
    let mut layers = Vec::with_capacity(s.layers);
    for l in 0..s.layers {
        let o = l * PER_LAYER;
        let dr = drops.map(|v| &v[l]);
        let x0 = tgt;
        let qk = plus(&x0, qpos);
        let sa_v = if s.pos_values { qk.clone() } else { x0.clone() };
        let (sa_out, sa) = mha(
            &mha_params(p, o),
            &qk,
            &qk,
            &sa_v,
            (kq, kq, d, s.heads),
            &all,
            dr.map(|x| x.self_attn.as_slice()),
        );
        let r1 = plus(&x0, &mul(&sa_out, dr.map(|x| &x.res1)));
        let (x1, ln1) = layer_norm(&r1, p[o + 12], p[o + 13], d);
        let q2 = plus(&x1, qpos);
        let (ca_out, ca) = mha(
            &mha_params(p, o + 4),
            &q2,
            &mk,
            &mv,
            (kq, n, d, s.heads),
            valid,
            dr.map(|x| x.cross_attn.as_slice()),
        );
        let r2 = plus(&x1, &mul(&ca_out, dr.map(|x| &x.res2)));
        let (x2, ln2) = layer_norm(&r2, p[o + 14], p[o + 15], d);
        let mut h = linear(&x2, p[o + 8], p[o + 9], kq, d, s.ffn);
        h.iter_mut().for_each(|v| *v = v.max(R::zero()));
        let hd = mul(&h, dr.map(|x| &x.ffn));
        let ff = linear(&hd, p[o + 10], p[o + 11], kq, s.ffn, d);
        let r3 = plus(&x2, &mul(&ff, dr.map(|x| &x.res3)));
        let (x3, ln3) = layer_norm(&r3, p[o + 16], p[o + 17], d);
        layers.push(LayerCache {
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
    let (mut out, lnf) = layer_norm(&tgt, p[base], p[base + 1], d);
    let norms = normalize_rows(&mut out, d);
    DecoderCache {
        layers,
        mk,
        mv,
        lnf,
        out,
        norms,
    }
}

fn four<R>(g: &mut [Vec<R>], o: usize) -> [&mut [R]; 4] {
    let (a, rest) = g[o..o + 4].split_at_mut(1);
    let (b, rest) = rest.split_at_mut(1);
    let (c, dd) = rest.split_at_mut(1);
    [&mut a[0], &mut b[0], &mut c[0], &mut dd[0]]
}

fn two<R>(g: &mut [Vec<R>], o: usize) -> (&mut [R], &mut [R]) {
    let (a, b) = g[o..o + 2].split_at_mut(1);
    (&mut a[0], &mut b[0])
}

/// Backward: from dS (K′×d) returns the gradient of every tensor (in [`layout`] order) and
/// dL/dmemory (N×d).
pub fn backward<R: Real>(
    p: &[&[R]],
    s: &DecoderShape,
    c: &DecoderCache<R>,
    ds: &[R],
    valid: &[bool],
    drops: Option<&[LayerDrops<R>]>,
) -> (Vec<Vec<R>>, Vec<R>) {
    let (kq, d, n) = (s.queries, s.d, valid.len());
    let base = s.layers * PER_LAYER;
    let mut g: Vec<Vec<R>> = p.iter().map(|t| vec![R::zero(); t.len()]).collect();
    let dln = normalize_rows_backward(&c.out, &c.norms, ds, d);
    let mut dx = {
        let (gg, gb) = two(&mut g, base);
        layer_norm_backward(&c.lnf, p[base], &dln, d, gg, gb)
    };
    let mut dqpos = vec![R::zero(); kq * d];
    let mut dmk = vec![R::zero(); n * d];
    let mut dmv = vec![R::zero(); n * d];
    for l in (0..s.layers).rev() {
        let o = l * PER_LAYER;
        let lc = &c.layers[l];
        let dr = drops.map(|v| &v[l]);
        // tgt = LN3(x2 + Drop(FFN(x2)))
        let dr3 = {
            let (gg, gb) = two(&mut g, o + 16);
            layer_norm_backward(&lc.ln3, p[o + 16], &dx, d, gg, gb)
        };
        let mut dx2 = dr3.clone();
        let dff = mul(&dr3, dr.map(|x| &x.res3));
        let dhd = {
            let (gw, gb) = two(&mut g, o + 10);
            linear_backward(&lc.hd, p[o + 10], &dff, kq, s.ffn, d, gw, gb, true).unwrap_or_default()
        };
        let mut dh = mul(&dhd, dr.map(|x| &x.ffn));
        dh.iter_mut().zip(&lc.h).for_each(|(gv, &hv)| {
            if hv <= R::zero() {
                *gv = R::zero();
            }
        });
        {
            let (gw, gb) = two(&mut g, o + 8);
            let d2 = linear_backward(&lc.x2, p[o + 8], &dh, kq, d, s.ffn, gw, gb, true)
                .unwrap_or_default();
            add_into(&mut dx2, &d2);
        }
        // x2 = LN2(x1 + Drop(CrossAttn(x1 + Q_pos, mk, mv)))
        let dr2 = {
            let (gg, gb) = two(&mut g, o + 14);
            layer_norm_backward(&lc.ln2, p[o + 14], &dx2, d, gg, gb)
        };
        let mut dx1 = dr2.clone();
        let dca = mul(&dr2, dr.map(|x| &x.res2));
        let (dq2, dk2, dv2) = mha_backward(
            &mha_params(p, o + 4),
            &lc.ca,
            &lc.q2,
            &c.mk,
            &c.mv,
            &dca,
            (kq, n, d, s.heads),
            dr.map(|x| x.cross_attn.as_slice()),
            four(&mut g, o + 4),
        );
        add_into(&mut dx1, &dq2);
        add_into(&mut dqpos, &dq2);
        add_into(&mut dmk, &dk2);
        add_into(&mut dmv, &dv2);
        // x1 = LN1(x0 + Drop(SelfAttn(qk, qk, v)))
        let dr1 = {
            let (gg, gb) = two(&mut g, o + 12);
            layer_norm_backward(&lc.ln1, p[o + 12], &dx1, d, gg, gb)
        };
        let mut dx0 = dr1.clone();
        let dsa = mul(&dr1, dr.map(|x| &x.res1));
        let (dqa, dka, dva) = mha_backward(
            &mha_params(p, o),
            &lc.sa,
            &lc.qk,
            &lc.qk,
            &lc.sa_v,
            &dsa,
            (kq, kq, d, s.heads),
            dr.map(|x| x.self_attn.as_slice()),
            four(&mut g, o),
        );
        let mut dqk = plus(&dqa, &dka);
        if s.pos_values {
            add_into(&mut dqk, &dva);
        } else {
            add_into(&mut dx0, &dva);
        }
        add_into(&mut dx0, &dqk);
        add_into(&mut dqpos, &dqk);
        dx = dx0;
    }
    add_into(&mut g[base + 2], &dx);
    add_into(&mut g[base + 3], &dqpos);
    // mk = mem + PE; mv = mk or mem
    let mut dmem = dmk;
    add_into(&mut dmem, &dmv);
    (g, dmem)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cached table is the formula, rounded once, for every shape asked for (more shapes
    /// than the cache holds, and back).
    #[test]
    fn positions_are_the_formula_whatever_was_asked_before() {
        let direct = |n: usize, d: usize| -> Vec<f32> {
            let mut v = vec![0f32; n * d];
            for t in 0..n {
                for i in 0..d {
                    let freq = (-((i - i % 2) as f64) * (10000f64).ln() / d as f64).exp();
                    let x = t as f64 * freq;
                    v[t * d + i] = if i % 2 == 0 { x.sin() } else { x.cos() } as f32;
                }
            }
            v
        };
        for (n, d) in [
            (5, 4),
            (300, 40),
            (7, 3),
            (1, 2),
            (2, 6),
            (300, 40),
            (5, 4),
            (12, 4),
            (0, 4),
            (3, 5),
            (900, 40),
            (299, 40),
        ] {
            assert_eq!(positions::<f32>(n, d), direct(n, d), "{n}×{d}");
        }
        let p64 = positions::<f64>(9, 8);
        assert_eq!(p64[8 + 1], (1.0f64).cos());
    }
}
