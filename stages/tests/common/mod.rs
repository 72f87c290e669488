//! Shared by the CLOT gradient tests: the whole CLOT loss of one video composed from the stage
//! kernels in f64, with its hand-written gradient.

#![allow(dead_code, clippy::unwrap_used)]

use clot_stages::decode::kernel::{self as dec, DecoderShape, LayerDrops};
use clot_stages::dispatch::kernel as fd;
use clot_stages::encode::kernel::{self as enc, LinearRef};
use clot_stages::linalg::{normalize_rows, normalize_rows_backward};
use clot_stages::loss::kernel as ce;
use clot_stages::refine::kernel as refine;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

pub fn randn(rng: &mut ChaCha8Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|_| rng.random_range(-1.0..1.0) * scale)
        .collect()
}

/// Parameters of the whole CLOT model for the loss check.
#[derive(Clone, Debug)]
pub struct Model {
    pub mlp: Vec<Vec<f64>>,
    pub a: Vec<f64>,
    pub ab: Vec<f64>,
    pub dec: Vec<Vec<f64>>,
}

pub struct Setup {
    pub widths: Vec<usize>,
    pub k: usize,
    pub s: DecoderShape,
    pub x: Vec<f64>,
    pub valid: Vec<bool>,
    pub t1: Vec<f64>,
    pub t2: Vec<f64>,
    pub t3: Vec<f64>,
    pub drops: Option<Vec<LayerDrops<f64>>>,
    /// rows the frame-level means divide by (B·N in a batch) and the segment-level ones (B·K′)
    pub rows: usize,
    pub seg_rows: usize,
}

pub fn plan(rng: &mut ChaCha8Rng, rows: usize, k: usize, valid: &[bool]) -> Vec<f64> {
    let mut t = randn(rng, rows * k, 1.0);
    for (r, row) in t.chunks_exact_mut(k).enumerate() {
        row.iter_mut().for_each(|v| *v = v.abs() + 0.01);
        let s: f64 = row.iter().sum();
        let ok = valid.get(r).copied().unwrap_or(true);
        row.iter_mut()
            .for_each(|v| *v = if ok { *v / s } else { 0.0 });
    }
    t
}

/// The CLOT loss of one (padded) video and its gradients, composed from the stage kernels.
pub fn clot_loss(m: &Model, st: &Setup, want: bool) -> (f64, Option<Model>) {
    let (k, d) = (st.k, st.s.d);
    let n = st.valid.len();
    let tau = 0.1;
    let layers: Vec<LinearRef<'_, f64>> = st
        .widths
        .windows(2)
        .enumerate()
        .map(|(l, w)| LinearRef {
            w: &m.mlp[2 * l],
            b: &m.mlp[2 * l + 1],
            fan_in: w[0],
            fan_out: w[1],
        })
        .collect();
    let enc_c = enc::forward(&layers, &st.x, n);
    let (mut f, fd_c) = fd::forward(&enc_c.out, &m.a, (n, k, d), m.ab[0], m.ab[1]);
    let fnorm = normalize_rows(&mut f, d);
    let p1 = ce::probabilities(&f, &m.a, n, k, d, tau);
    let refs: Vec<&[f64]> = m.dec.iter().map(|t| t.as_slice()).collect();
    let dc = dec::forward(&refs, &st.s, &f, &st.valid, st.drops.as_deref());
    let kq = st.s.queries;
    let p2 = ce::probabilities(&dc.out, &m.a, kq, k, d, tau);
    let rc = refine::forward(&f, &dc.out, (n, kq, d), 0.1);
    let p3 = ce::probabilities(&rc.out, &m.a, n, k, d, tau);
    let all = vec![true; kq];
    let (rows, seg_rows) = (st.rows, st.seg_rows);
    let loss = ce::loss(&p1, &st.t1, &st.valid, k, rows)
        + ce::loss(&p2, &st.t2, &all, k, seg_rows)
        + ce::loss(&p3, &st.t3, &st.valid, k, rows);
    if !want {
        return (loss, None);
    }
    let mut da = vec![0.0; k * d];
    let mut df = vec![0.0; n * d];
    let mut ds = vec![0.0; kq * d];
    let mut dfr = vec![0.0; n * d];
    ce::backward(
        &rc.out,
        &m.a,
        &p3,
        &st.t3,
        &st.valid,
        (n, k, d),
        tau,
        rows,
        &mut dfr,
        &mut da,
    );
    ce::backward(
        &dc.out,
        &m.a,
        &p2,
        &st.t2,
        &all,
        (kq, k, d),
        tau,
        seg_rows,
        &mut ds,
        &mut da,
    );
    ce::backward(
        &f,
        &m.a,
        &p1,
        &st.t1,
        &st.valid,
        (n, k, d),
        tau,
        rows,
        &mut df,
        &mut da,
    );
    let (df_r, ds_r) = refine::backward(&f, &dc.out, &rc, &dfr, (n, kq, d), 0.1);
    df.iter_mut().zip(&df_r).for_each(|(a, b)| *a += b);
    ds.iter_mut().zip(&ds_r).for_each(|(a, b)| *a += b);
    let (gdec, dmem) = dec::backward(&refs, &st.s, &dc, &ds, &st.valid, st.drops.as_deref());
    df.iter_mut().zip(&dmem).for_each(|(a, b)| *a += b);
    let dfd = normalize_rows_backward(&f, &fnorm, &df, d);
    let (de, da_fd, dal, dbe) = fd::backward(&enc_c.out, &m.a, &fd_c, &dfd, (n, k, d), m.ab[0]);
    da.iter_mut().zip(&da_fd).for_each(|(a, b)| *a += b);
    let mut gm: Vec<Vec<f64>> = m.mlp.iter().map(|t| vec![0.0; t.len()]).collect();
    {
        let (w0, rest) = gm.split_at_mut(1);
        let (b0, rest) = rest.split_at_mut(1);
        let (w1, b1) = rest.split_at_mut(1);
        let mut pairs = vec![
            (&mut w0[0][..], &mut b0[0][..]),
            (&mut w1[0][..], &mut b1[0][..]),
        ];
        enc::backward(&layers, &enc_c, &de, n, &mut pairs, false);
    }
    (
        loss,
        Some(Model {
            mlp: gm,
            a: da,
            ab: vec![dal, dbe],
            dec: gdec,
        }),
    )
}

/// Puts a training batch of two ragged videos (9 and 13 frames of random features, padded to 13
/// by full-length sampling) into `g` with `params` and the model settings, then runs the forward
/// and backward passes. Returns the videos.
pub fn run_ragged_batch(
    g: &mut clot_stages::graph::StageGraph,
    params: clot_stages::params::ParamSet,
    widths: &[usize],
    k: usize,
    clot: clot_stages::batch::ClotConfig,
    rng: &mut ChaCha8Rng,
) -> Vec<bevy_ecs::entity::Entity> {
    use clot_stages::batch::{Batch, LossValue, ModelConfig, RunRng};
    use rand::SeedableRng;
    let w = &mut g.world;
    w.insert_resource(ModelConfig {
        actions: k,
        widths: widths.to_vec(),
        temperature: 0.1,
        rho: 0.2,
        standardise: false,
        ot_train: clot_stages::ot::AsotParams::default(),
        ot_eval: clot_stages::ot::AsotParams::default(),
        clot,
        eval_seed: 0,
    });
    w.insert_resource(RunRng(ChaCha8Rng::seed_from_u64(0)));
    w.insert_resource(clot_stages::params::Grads(params.zeros_like()));
    w.insert_resource(clot_stages::params::Params(params));
    w.insert_resource(LossValue::default());
    let videos: Vec<_> = [9usize, 13]
        .iter()
        .map(|&n| {
            let x: Vec<f32> = (0..n * widths[0])
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            w.spawn(clot_schemas::FrameFeatures::from_vec(x, widths[0], "v").unwrap())
                .id()
        })
        .collect();
    w.insert_resource(Batch {
        videos: videos.clone(),
        sampling: clot_stages::sample::Sampling::Full,
        train: true,
    });
    g.forward().unwrap();
    g.backward().unwrap();
    videos
}
