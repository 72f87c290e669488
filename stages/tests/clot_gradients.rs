//! Finite-difference checks (f64) of CLOT's stages: feature dispatching, every decoder sub-layer
//! (LayerNorm, multi-head attention with masked keys and dropout, the FFN path via the whole
//! layer), the whole decoder with and without positions on the values, the cross-attention
//! refinement, and the whole CLOT loss (three cross-entropies) against every parameter group.

#![allow(clippy::unwrap_used)]

use clot_stages::decode::kernel::{
    self as dec, DecoderShape, LayerDrops, MhaParams, draw_drops, layer_norm, layer_norm_backward,
    layout, mha, mha_backward,
};
use clot_stages::dispatch::kernel as fd;
use clot_stages::linalg::normalize_rows;
use clot_stages::refine::kernel as refine;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const H: f64 = 1e-6;

mod common;

use common::{Model, Setup, clot_loss, plan, randn};

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Central differences of `f` over every entry of `x` against `analytic`.
fn check(name: &str, x: &mut [f64], analytic: &[f64], f: &mut dyn FnMut(&[f64]) -> f64) {
    assert_eq!(x.len(), analytic.len(), "{name}");
    let mut worst = 0.0f64;
    for i in 0..x.len() {
        let old = x[i];
        x[i] = old + H;
        let up = f(x);
        x[i] = old - H;
        let down = f(x);
        x[i] = old;
        let fdv = (up - down) / (2.0 * H);
        let err = (fdv - analytic[i]).abs() / (1e-5 + fdv.abs().max(analytic[i].abs()));
        worst = worst.max(err);
        assert!(
            err < 1e-4,
            "{name}[{i}]: finite difference {fdv}, backward {}",
            analytic[i]
        );
    }
    eprintln!(
        "{name}: {} entries, worst relative error {worst:.1e}",
        x.len()
    );
}

#[test]
fn dispatch_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (n, k, d) = (9, 4, 5);
    let mut e = randn(&mut rng, n * d, 1.0);
    let mut a = randn(&mut rng, k * d, 1.0);
    let mut ab = vec![1.3, -0.2];
    let w = randn(&mut rng, n * d, 1.0);
    let (out, cache) = fd::forward(&e, &a, (n, k, d), ab[0], ab[1]);
    assert_eq!(out.len(), n * d);
    let (de, da, dal, dbe) = fd::backward(&e, &a, &cache, &w, (n, k, d), ab[0]);
    let (e0, a0, ab0) = (e.clone(), a.clone(), ab.clone());
    check("dispatch dE", &mut e, &de, &mut |x| {
        dot(&fd::forward(x, &a0, (n, k, d), ab0[0], ab0[1]).0, &w)
    });
    check("dispatch dA", &mut a, &da, &mut |x| {
        dot(&fd::forward(&e0, x, (n, k, d), ab0[0], ab0[1]).0, &w)
    });
    check("dispatch dα dβ", &mut ab, &[dal, dbe], &mut |x| {
        dot(&fd::forward(&e0, &a0, (n, k, d), x[0], x[1]).0, &w)
    });
}

#[test]
fn refine_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (n, kk, d, tau) = (8, 3, 6, 0.1);
    let mut f = randn(&mut rng, n * d, 0.5);
    let mut s = randn(&mut rng, kk * d, 0.5);
    let w = randn(&mut rng, n * d, 1.0);
    let c = refine::forward(&f, &s, (n, kk, d), tau);
    let (df, ds) = refine::backward(&f, &s, &c, &w, (n, kk, d), tau);
    let (f0, s0) = (f.clone(), s.clone());
    check("refine dF", &mut f, &df, &mut |x| {
        dot(&refine::forward(x, &s0, (n, kk, d), tau).out, &w)
    });
    check("refine dS", &mut s, &ds, &mut |x| {
        dot(&refine::forward(&f0, x, (n, kk, d), tau).out, &w)
    });
}

#[test]
fn layer_norm_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (rows, d) = (4, 6);
    let mut x = randn(&mut rng, rows * d, 1.0);
    let mut g = randn(&mut rng, d, 1.0);
    let mut b = randn(&mut rng, d, 1.0);
    let w = randn(&mut rng, rows * d, 1.0);
    let (_, c) = layer_norm(&x, &g, &b, d);
    let (mut dg, mut db) = (vec![0.0; d], vec![0.0; d]);
    let dx = layer_norm_backward(&c, &g, &w, d, &mut dg, &mut db);
    let (x0, g0, b0) = (x.clone(), g.clone(), b.clone());
    check("layernorm dx", &mut x, &dx, &mut |v| {
        dot(&layer_norm(v, &g0, &b0, d).0, &w)
    });
    check("layernorm dγ", &mut g, &dg, &mut |v| {
        dot(&layer_norm(&x0, v, &b0, d).0, &w)
    });
    check("layernorm dβ", &mut b, &db, &mut |v| {
        dot(&layer_norm(&x0, &g0, v, d).0, &w)
    });
}

#[test]
fn attention_gradients_with_masked_keys_and_dropout() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (lq, lk, d, h) = (3, 7, 8, 2);
    let mut prm: Vec<Vec<f64>> = vec![
        randn(&mut rng, 3 * d * d, 0.5),
        randn(&mut rng, 3 * d, 0.1),
        randn(&mut rng, d * d, 0.5),
        randn(&mut rng, d, 0.1),
    ];
    let xq = randn(&mut rng, lq * d, 1.0);
    let xk = randn(&mut rng, lk * d, 1.0);
    let xv = randn(&mut rng, lk * d, 1.0);
    let valid: Vec<bool> = (0..lk).map(|j| j < 5).collect();
    let drop: Vec<f64> = (0..h * lq * lk)
        .map(|i| if i % 5 == 0 { 0.0 } else { 1.0 / 0.9 })
        .collect();
    let w = randn(&mut rng, lq * d, 1.0);
    let run = |p: &[Vec<f64>], q: &[f64], k: &[f64], v: &[f64]| {
        let mp = MhaParams {
            w_in: &p[0],
            b_in: &p[1],
            w_out: &p[2],
            b_out: &p[3],
        };
        mha(&mp, q, k, v, (lq, lk, d, h), &valid, Some(&drop))
    };
    let (_, c) = run(&prm, &xq, &xk, &xv);
    let mut g: Vec<Vec<f64>> = prm.iter().map(|t| vec![0.0; t.len()]).collect();
    let (dq, dk, dv) = {
        let mp = MhaParams {
            w_in: &prm[0],
            b_in: &prm[1],
            w_out: &prm[2],
            b_out: &prm[3],
        };
        let [a, b, cc, dd] = g.get_disjoint_mut([0, 1, 2, 3]).unwrap();
        mha_backward(
            &mp,
            &c,
            &xq,
            &xk,
            &xv,
            &w,
            (lq, lk, d, h),
            Some(&drop),
            [a, b, cc, dd],
        )
    };
    assert!(
        dk[5 * d..].iter().chain(&dv[5 * d..]).all(|&x| x == 0.0),
        "masked keys get no gradient"
    );
    let (mut q, mut k, mut v) = (xq.clone(), xk.clone(), xv.clone());
    let p0 = prm.clone();
    check("attention dq", &mut q, &dq, &mut |x| {
        dot(&run(&p0, x, &xk, &xv).0, &w)
    });
    check("attention dk", &mut k, &dk, &mut |x| {
        dot(&run(&p0, &xq, x, &xv).0, &w)
    });
    check("attention dv", &mut v, &dv, &mut |x| {
        dot(&run(&p0, &xq, &xk, x).0, &w)
    });
    for (i, name) in [
        "in_proj_weight",
        "in_proj_bias",
        "out_proj.weight",
        "out_proj.bias",
    ]
    .iter()
    .enumerate()
    {
        let mut t = prm[i].clone();
        let others = prm.clone();
        check(&format!("attention {name}"), &mut t, &g[i], &mut |x| {
            let mut p = others.clone();
            p[i] = x.to_vec();
            dot(&run(&p, &xq, &xk, &xv).0, &w)
        });
        prm[i] = t;
    }
}

fn decoder_params(rng: &mut ChaCha8Rng, s: &DecoderShape) -> Vec<Vec<f64>> {
    layout(s)
        .iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            if name.contains("norm") && name.ends_with("weight") {
                (0..n).map(|_| 1.0 + rng.random_range(-0.2..0.2)).collect()
            } else {
                randn(rng, n, 0.4)
            }
        })
        .collect()
}

fn decoder_case(pos_values: bool, layers: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(5 + layers as u64);
    let s = DecoderShape {
        d: 8,
        heads: 2,
        layers,
        queries: 3,
        ffn: 12,
        pos_values,
    };
    let n = 6;
    let mut prm = decoder_params(&mut rng, &s);
    let mut mem = randn(&mut rng, n * s.d, 1.0);
    let valid: Vec<bool> = (0..n).map(|t| t < 5).collect();
    let mut u = || rng.random::<f64>();
    let drops: Vec<LayerDrops<f64>> = (0..layers)
        .map(|_| draw_drops(&s, n, 0.1, &mut u))
        .collect();
    let w = randn(&mut rng, s.queries * s.d, 1.0);
    let run = |p: &[Vec<f64>], m: &[f64]| {
        let refs: Vec<&[f64]> = p.iter().map(|t| t.as_slice()).collect();
        dec::forward(&refs, &s, m, &valid, Some(&drops)).out
    };
    let refs: Vec<&[f64]> = prm.iter().map(|t| t.as_slice()).collect();
    let c = dec::forward(&refs, &s, &mem, &valid, Some(&drops));
    let (g, dmem) = dec::backward(&refs, &s, &c, &w, &valid, Some(&drops));
    let p0 = prm.clone();
    check(
        &format!("decoder dmemory (pos_values {pos_values})"),
        &mut mem,
        &dmem,
        &mut |x| dot(&run(&p0, x), &w),
    );
    let mem0 = mem.clone();
    for (i, (name, _)) in layout(&s).iter().enumerate() {
        let mut t = prm[i].clone();
        let others = prm.clone();
        check(name, &mut t, &g[i], &mut |x| {
            let mut p = others.clone();
            p[i] = x.to_vec();
            dot(&run(&p, &mem0), &w)
        });
        prm[i] = t;
    }
}

#[test]
fn decoder_gradients_every_tensor_positions_on_values() {
    decoder_case(true, 1);
}

#[test]
fn decoder_gradients_two_layers_positions_off_values() {
    decoder_case(false, 2);
}

#[test]
fn whole_clot_loss_against_every_parameter_group() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let widths = vec![6, 10, 8];
    let (k, n) = (3, 7);
    let s = DecoderShape {
        d: 8,
        heads: 2,
        layers: 1,
        queries: 3,
        ffn: 16,
        pos_values: true,
    };
    let valid: Vec<bool> = (0..n).map(|t| t < 6).collect();
    let mut mlp = Vec::new();
    for w in widths.windows(2) {
        mlp.push(randn(&mut rng, w[0] * w[1], 1.0 / (w[0] as f64).sqrt()));
        mlp.push(randn(&mut rng, w[1], 0.2));
    }
    let mut a = randn(&mut rng, k * 8, 1.0);
    normalize_rows(&mut a, 8);
    let m = Model {
        mlp,
        a,
        ab: vec![1.0, 0.0],
        dec: decoder_params(&mut rng, &s),
    };
    let mut u = || rng.random::<f64>();
    let drops = Some(vec![draw_drops(&s, n, 0.1, &mut u)]);
    let st = Setup {
        widths,
        k,
        s,
        x: randn(&mut rng, n * 6, 1.0),
        t1: plan(&mut rng, n, k, &valid),
        t2: plan(&mut rng, 3, k, &[]),
        t3: plan(&mut rng, n, k, &valid),
        valid,
        drops,
        rows: n,
        seg_rows: 3,
    };
    let (_, g) = clot_loss(&m, &st, true);
    let g = g.unwrap();
    let flat_check = |name: &str,
                      get: &dyn Fn(&Model) -> Vec<f64>,
                      set: &dyn Fn(&mut Model, &[f64]),
                      an: Vec<f64>| {
        let mut x = get(&m);
        check(name, &mut x, &an, &mut |v| {
            let mut mm = m.clone();
            set(&mut mm, v);
            clot_loss(&mm, &st, false).0
        });
    };
    for l in 0..m.mlp.len() {
        flat_check(
            &format!("loss vs mlp tensor {l}"),
            &|mm| mm.mlp[l].clone(),
            &|mm, v| mm.mlp[l] = v.to_vec(),
            g.mlp[l].clone(),
        );
    }
    flat_check(
        "loss vs clusters (A)",
        &|mm| mm.a.clone(),
        &|mm, v| mm.a = v.to_vec(),
        g.a.clone(),
    );
    flat_check(
        "loss vs dispatch α, β",
        &|mm| mm.ab.clone(),
        &|mm, v| mm.ab = v.to_vec(),
        g.ab.clone(),
    );
    for (i, (name, _)) in layout(&st.s).iter().enumerate() {
        flat_check(
            &format!("loss vs {name}"),
            &|mm| mm.dec[i].clone(),
            &|mm, v| mm.dec[i] = v.to_vec(),
            g.dec[i].clone(),
        );
    }
}
