//! Finite-difference checks (f64, central differences) of every hand-written backward: the
//! encoder (MLP + normalisation), the cross-entropy, and the whole ASOT-mode loss against every
//! parameter (MLP weights and biases of each layer, and A), with the plan held fixed as the
//! detached OT makes it.

#![allow(clippy::unwrap_used)]

use clot_stages::encode::kernel::{self as enc, LinearRef};
use clot_stages::loss::kernel as ce;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const H: f64 = 1e-6;

fn randn(rng: &mut ChaCha8Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|_| rng.random_range(-1.0..1.0) * scale)
        .collect()
}

/// A random plan: rows sum to 1 on valid rows, 0 on padded rows.
fn plan(rng: &mut ChaCha8Rng, n: usize, k: usize, mask: &[bool]) -> Vec<f64> {
    let mut t = randn(rng, n * k, 1.0);
    for (row, &m) in t.chunks_exact_mut(k).zip(mask) {
        row.iter_mut().for_each(|v| *v = v.abs() + 0.01);
        let s: f64 = row.iter().sum();
        row.iter_mut()
            .for_each(|v| *v = if m { *v / s } else { 0.0 });
    }
    t
}

struct Model {
    widths: Vec<usize>,
    /// weights and biases, layer by layer
    params: Vec<Vec<f64>>,
    a: Vec<f64>,
}

impl Model {
    fn new(rng: &mut ChaCha8Rng, widths: &[usize], k: usize) -> Self {
        let mut params = Vec::new();
        for w in widths.windows(2) {
            params.push(randn(rng, w[0] * w[1], 1.0 / (w[0] as f64).sqrt()));
            params.push(randn(rng, w[1], 0.3));
        }
        let d = *widths.last().unwrap();
        Model {
            widths: widths.to_vec(),
            params,
            a: randn(rng, k * d, 1.0),
        }
    }

    fn layers(&self) -> Vec<LinearRef<'_, f64>> {
        self.widths
            .windows(2)
            .enumerate()
            .map(|(l, w)| LinearRef {
                w: &self.params[2 * l],
                b: &self.params[2 * l + 1],
                fan_in: w[0],
                fan_out: w[1],
            })
            .collect()
    }
}

/// loss of a batch of videos (x, t, mask), and (d params, d A, d X of video 0)
#[allow(clippy::type_complexity)]
fn loss_and_grads(
    m: &Model,
    videos: &[(Vec<f64>, Vec<f64>, Vec<bool>)],
    k: usize,
    tau: f64,
) -> (f64, Vec<Vec<f64>>, Vec<f64>, Vec<f64>) {
    let d = *m.widths.last().unwrap();
    let rows: usize = videos.iter().map(|(_, _, mk)| mk.len()).sum();
    let mut total = 0.0;
    let mut gp: Vec<Vec<f64>> = m.params.iter().map(|p| vec![0.0; p.len()]).collect();
    let mut ga = vec![0.0; m.a.len()];
    let mut dx0 = Vec::new();
    for (v, (x, t, mask)) in videos.iter().enumerate() {
        let n = mask.len();
        let layers = m.layers();
        let cache = enc::forward(&layers, x, n);
        let p = ce::probabilities(&cache.out, &m.a, n, k, d, tau);
        total += ce::loss(&p, t, mask, k, rows);
        let mut df = vec![0.0; n * d];
        ce::backward(
            &cache.out,
            &m.a,
            &p,
            t,
            mask,
            (n, k, d),
            tau,
            rows,
            &mut df,
            &mut ga,
        );
        let (ws, bs): (Vec<_>, Vec<_>) = gp.iter_mut().enumerate().partition(|(i, _)| i % 2 == 0);
        let mut pairs: Vec<(&mut [f64], &mut [f64])> = ws
            .into_iter()
            .zip(bs)
            .map(|((_, w), (_, b))| (w.as_mut_slice(), b.as_mut_slice()))
            .collect();
        let dx = enc::backward(&layers, &cache, &df, n, &mut pairs, v == 0);
        if v == 0 {
            dx0 = dx.unwrap();
        }
    }
    (total, gp, ga, dx0)
}

fn check(name: &str, analytic: &[f64], mut f: impl FnMut(usize, f64) -> f64) {
    let mut worst = 0.0f64;
    for (i, &g) in analytic.iter().enumerate() {
        let fd = (f(i, H) - f(i, -H)) / (2.0 * H);
        let err = (fd - g).abs() / (1e-6 + fd.abs().max(g.abs()));
        worst = worst.max(err);
        assert!(
            err < 1e-5,
            "{name}[{i}]: finite difference {fd}, backward {g}"
        );
    }
    eprintln!(
        "{name}: {} entries, worst relative error {worst:.2e}",
        analytic.len()
    );
}

fn batch(rng: &mut ChaCha8Rng, dims: &[usize], k: usize) -> Vec<(Vec<f64>, Vec<f64>, Vec<bool>)> {
    // two videos padded to 9 rows: one with 2 padded rows, one full
    [7usize, 9]
        .iter()
        .map(|&valid| {
            let n = 9;
            let mask: Vec<bool> = (0..n).map(|i| i < valid).collect();
            let x = randn(rng, n * dims[0], 1.0);
            let t = plan(rng, n, k, &mask);
            (x, t, mask)
        })
        .collect()
}

#[test]
fn whole_asot_loss_against_every_parameter() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (widths, k, tau) = (vec![6, 8, 5], 4, 0.1);
    let mut m = Model::new(&mut rng, &widths, k);
    let videos = batch(&mut rng, &widths, k);
    let (_, gp, ga, _) = loss_and_grads(&m, &videos, k, tau);
    for (p, g) in gp.iter().enumerate() {
        let name = format!(
            "mlp.{}.{}",
            2 * (p / 2),
            if p % 2 == 0 { "weight" } else { "bias" }
        );
        check(&name, g, |i, h| {
            let old = m.params[p][i];
            m.params[p][i] = old + h;
            let l = loss_and_grads(&m, &videos, k, tau).0;
            m.params[p][i] = old;
            l
        });
    }
    check("clusters", &ga, |i, h| {
        let old = m.a[i];
        m.a[i] = old + h;
        let l = loss_and_grads(&m, &videos, k, tau).0;
        m.a[i] = old;
        l
    });
}

#[test]
fn encoder_backward_against_its_input() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (widths, k, tau) = (vec![5, 7, 7, 4], 3, 0.2);
    let m = Model::new(&mut rng, &widths, k);
    let mut videos = batch(&mut rng, &widths, k);
    let (_, _, _, dx) = loss_and_grads(&m, &videos, k, tau);
    check("dX (3-layer encoder)", &dx, |i, h| {
        let old = videos[0].0[i];
        videos[0].0[i] = old + h;
        let l = loss_and_grads(&m, &videos, k, tau).0;
        videos[0].0[i] = old;
        l
    });
}

#[test]
fn cross_entropy_backward_against_embeddings() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (n, k, d, tau) = (6, 5, 4, 0.1);
    let mask = vec![true, true, true, true, false, false];
    let mut f = randn(&mut rng, n * d, 1.0);
    let a = randn(&mut rng, k * d, 1.0);
    let t = plan(&mut rng, n, k, &mask);
    let loss = |f: &[f64]| ce::loss(&ce::probabilities(f, &a, n, k, d, tau), &t, &mask, k, n);
    let p = ce::probabilities(&f, &a, n, k, d, tau);
    let (mut df, mut da) = (vec![0.0; n * d], vec![0.0; k * d]);
    ce::backward(&f, &a, &p, &t, &mask, (n, k, d), tau, n, &mut df, &mut da);
    assert!(
        df[4 * d..].iter().all(|&g| g == 0.0),
        "padded rows get no gradient"
    );
    check("dF (cross-entropy)", &df, |i, h| {
        let old = f[i];
        f[i] = old + h;
        let l = loss(&f);
        f[i] = old;
        l
    });
}
