//! CPU vs wgpu parity of every GPU kernel and its backward, on seeded inputs with ragged lengths,
//! K up to 64 and N up to 20 000.
//!
//! With no adapter these tests skip with a message, unless `REQUIRE_GPU=1` (CI sets it, with
//! Mesa's software Vulkan installed), where a missing adapter fails them. Tolerances are the ones
//! each kernel's docs state.

#![cfg(feature = "wgpu")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use clot_stages::gpu::{GpuContext, GpuError};
use clot_stages::ot::{AsotParams, OtError, StepSize, asot_gpu, solve_batch};
use rand::{RngExt, SeedableRng};

/// The process's GPU context, or `None` (after saying why) when there is none and
/// `REQUIRE_GPU` is not set.
fn gpu(test: &str) -> Option<Arc<GpuContext>> {
    match GpuContext::shared() {
        Ok(ctx) => {
            eprintln!("{test}: on {}", ctx.describe());
            Some(ctx)
        }
        Err(e) if std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("{test}: REQUIRE_GPU=1 but {e}")
        }
        Err(e) => {
            eprintln!("SKIP {test}: {e}");
            None
        }
    }
}

/// Costs with a temporal structure like OT1's: a video of N frames walks through K actions in
/// order (cost low on the current action), plus seeded noise, in [0, 2].
fn costs(b: usize, n: usize, k: usize, valid: &[usize], seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = vec![0f32; b * n * k];
    for v in 0..b {
        let nv = valid[v];
        for i in 0..n {
            let act = (i * k / nv.max(1)).min(k - 1);
            for j in 0..k {
                let base = if j == act { 0.3 } else { 1.2 };
                out[(v * n + i) * k + j] = base + rng.random_range(-0.3f32..0.3);
            }
        }
    }
    out
}

struct Agreement {
    max_abs: f32,
    /// max(1, the largest CPU entry): plan entries lie in [0, 1] except with unbalanced frames,
    /// whose rows are free to carry more than their share
    scale: f32,
    argmax_same: usize,
    frames: usize,
}

fn compare(cpu: &[f32], gpu: &[f32], n: usize, k: usize, valid: &[usize]) -> Agreement {
    assert_eq!(cpu.len(), gpu.len());
    let mut max_abs = 0f32;
    let scale = cpu.iter().fold(1f32, |m, &x| m.max(x));
    let mut argmax_same = 0;
    let mut frames = 0;
    let argmax = |row: &[f32]| {
        row.iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |(bi, bx), (i, &x)| {
                if x > bx { (i, x) } else { (bi, bx) }
            })
            .0
    };
    for (v, &nv) in valid.iter().enumerate() {
        for i in 0..n {
            let (c, g) = (
                &cpu[(v * n + i) * k..(v * n + i + 1) * k],
                &gpu[(v * n + i) * k..(v * n + i + 1) * k],
            );
            for (a, b) in c.iter().zip(g) {
                assert!(b.is_finite(), "non-finite GPU plan entry");
                max_abs = max_abs.max((a - b).abs());
            }
            if i < nv {
                frames += 1;
                argmax_same += usize::from(argmax(c) == argmax(g));
            } else {
                assert!(
                    g.iter().all(|&x| x == 0.0),
                    "padded row {i} of video {v} is not 0"
                );
            }
        }
    }
    Agreement {
        max_abs,
        scale,
        argmax_same,
        frames,
    }
}

/// The solver's stated tolerance: 1e-4 per plan entry relative to max(1, the largest entry), the
/// same argmax on ≥ 99.9 % of frames.
fn assert_parity(what: &str, a: &Agreement) {
    eprintln!(
        "{what}: max |Δ| = {:.2e} (largest entry {:.3}), argmax agrees on {}/{} frames",
        a.max_abs, a.scale, a.argmax_same, a.frames
    );
    assert!(
        a.max_abs <= 1e-4 * a.scale,
        "{what}: max |Δ| = {:e} against entries up to {}",
        a.max_abs,
        a.scale
    );
    assert!(
        a.argmax_same as f64 >= 0.999 * a.frames as f64,
        "{what}: argmax agrees on only {}/{} frames",
        a.argmax_same,
        a.frames
    );
}

#[test]
fn asot_solver_matches_the_cpu_on_ragged_batches() {
    let Some(ctx) = gpu("asot_solver_matches_the_cpu_on_ragged_batches") else {
        return;
    };
    // (videos, padded N, K, valid rows): OT1-sized crops, a tiny video, K up to 64
    let cases: [(usize, usize, usize, Vec<usize>); 4] = [
        (2, 256, 7, vec![256, 256]),
        (3, 700, 22, vec![700, 333, 1]),
        (4, 300, 64, vec![300, 17, 299, 2]),
        (1, 129, 3, vec![100]),
    ];
    for (seed, (b, n, k, valid)) in cases.iter().enumerate() {
        let c = costs(*b, *n, *k, valid, seed as u64);
        for p in [
            AsotParams::default(),
            AsotParams {
                step: StepSize::Fixed(0.5),
                ..AsotParams::default()
            },
            AsotParams {
                alpha: 0.0,
                ..AsotParams::default()
            },
            AsotParams {
                radius: 0.2,
                eps: 0.05,
                iters: 40,
                ..AsotParams::default()
            },
        ] {
            let cpu = solve_batch(&c, *b, *n, *k, valid, &p).unwrap();
            let gpu = asot_gpu::solve_batch(&ctx, &c, *b, *n, *k, valid, &p).unwrap();
            let what = format!(
                "B={b} N={n} K={k} valid={valid:?} alpha={} r={} eps={} iters={} step={:?}",
                p.alpha, p.radius, p.eps, p.iters, p.step
            );
            assert_parity(&what, &compare(&cpu, &gpu, *n, *k, valid));
        }
    }
}

#[test]
fn asot_solver_matches_the_cpu_on_a_long_video() {
    let Some(ctx) = gpu("asot_solver_matches_the_cpu_on_a_long_video") else {
        return;
    };
    // full-length evaluation: one long video and a shorter one, N = 20 000
    let (b, n, k) = (2, 20_000, 12);
    let valid = vec![20_000, 7_301];
    let c = costs(b, n, k, &valid, 7);
    let p = AsotParams::default();
    let cpu = solve_batch(&c, b, n, k, &valid, &p).unwrap();
    let gpu = asot_gpu::solve_batch(&ctx, &c, b, n, k, &valid, &p).unwrap();
    assert_parity("B=2 N=20000 K=12", &compare(&cpu, &gpu, n, k, &valid));
}

#[test]
fn asot_solver_splits_a_long_video_into_row_windows_with_the_same_plan() {
    let Some(ctx) = gpu("asot_solver_splits_a_long_video_into_row_windows_with_the_same_plan")
    else {
        return;
    };
    // full-length videos above a (here artificial) limit per binding: the prefix sums of the
    // first video are 20 001 × 13 values (1.04 MB); a 300 kB binding holds windows of 4 096 rows
    // with their halo of 2·800 + 1 + 64 rows
    let (b, n, k) = (2, 20_000, 12);
    let valid = vec![20_000, 7_301];
    let c = costs(b, n, k, &valid, 21);
    for p in [
        AsotParams::default(),
        AsotParams {
            step: StepSize::Fixed(0.5),
            radius: 0.01,
            ..AsotParams::default()
        },
        AsotParams {
            unbalanced_frames: true,
            ..AsotParams::default()
        },
        AsotParams {
            balanced_actions: true,
            iters: 5,
            ..AsotParams::default()
        },
    ] {
        let whole = asot_gpu::solve_batch(&ctx, &c, b, n, k, &valid, &p).unwrap();
        let split = asot_gpu::solve_batch_within(&ctx, &c, b, n, k, &valid, &p, 300_000).unwrap();
        let what = format!(
            "windows of a 300 kB binding, r={} step={:?} balanced={} unbalanced={}",
            p.radius, p.step, p.balanced_actions, p.unbalanced_frames
        );
        let same = whole
            .iter()
            .zip(&split)
            .filter(|(a, b)| a.to_bits() == b.to_bits())
            .count();
        assert_eq!(
            same,
            whole.len(),
            "{what}: plans differ from the unsplit solve"
        );
        let cpu = solve_batch(&c, b, n, k, &valid, &p).unwrap();
        assert_parity(&what, &compare(&cpu, &split, n, k, &valid));
    }
}

#[test]
fn asot_solver_variants_match_the_cpu() {
    let Some(ctx) = gpu("asot_solver_variants_match_the_cpu") else {
        return;
    };
    // balanced actions (Sinkhorn after each step), unbalanced frames (a KL term on the row sums),
    // and both; ragged batches with more valid frames than actions (the CPU's projection itself
    // converges only sublinearly when there are about as many actions as frames). λ_f stays
    // below 1: from about 1 up the iteration amplifies rounding (at λ_f = 1 with the automatic
    // step the CPU's own plan moves by 5e-3 when the costs change by a relative 1e-6), so no two
    // implementations agree to 1e-4 there
    let cases: [(usize, usize, usize, Vec<usize>); 3] = [
        (2, 256, 7, vec![256, 200]),
        (3, 700, 22, vec![700, 333, 90]),
        (1, 2_000, 48, vec![1_500]),
    ];
    let variants = [
        ("balanced", true, false, 0.1),
        ("unbalanced", false, true, 0.1),
        ("unbalanced λ_f = 0.5", false, true, 0.5),
        ("both", true, true, 0.1),
    ];
    for (seed, (b, n, k, valid)) in cases.iter().enumerate() {
        let c = costs(*b, *n, *k, valid, 100 + seed as u64);
        for (name, balanced, unbalanced, lambda_frames) in variants {
            for step in [StepSize::Auto, StepSize::Fixed(0.5)] {
                let p = AsotParams {
                    balanced_actions: balanced,
                    unbalanced_frames: unbalanced,
                    lambda_frames,
                    step,
                    ..AsotParams::default()
                };
                let cpu = solve_batch(&c, *b, *n, *k, valid, &p).unwrap();
                let gpu = asot_gpu::solve_batch(&ctx, &c, *b, *n, *k, valid, &p).unwrap();
                let what = format!("{name}, B={b} N={n} K={k} valid={valid:?} step={step:?}");
                assert_parity(&what, &compare(&cpu, &gpu, *n, *k, valid));
            }
        }
    }
}

#[test]
fn asot_solver_refuses_bad_input_as_the_cpu_does() {
    let Some(ctx) = gpu("asot_solver_refuses_bad_input_as_the_cpu_does") else {
        return;
    };
    let (b, n, k) = (1, 16, 3);
    let c = costs(b, n, k, &[16], 1);
    // the same input checks as the CPU: a NaN cost names its video, frame and action
    let mut bad = c.clone();
    bad[5] = f32::NAN;
    let e = asot_gpu::solve_batch(&ctx, &bad, b, n, k, &[16], &AsotParams::default()).unwrap_err();
    let cpu = solve_batch(&bad, b, n, k, &[16], &AsotParams::default()).unwrap_err();
    assert!(
        matches!(
            e,
            OtError::NonFinite {
                video: 0,
                row: 1,
                col: 2,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.to_string(), cpu.to_string());
    // an undefined automatic step (every G ≤ 0) is the CPU's error too
    let neg = vec![-5.0f32; n * k];
    let p = AsotParams {
        alpha: 0.0,
        lambda_actions: 0.0,
        ..AsotParams::default()
    };
    let cpu = solve_batch(&neg, b, n, k, &[16], &p).unwrap_err();
    let gpu = asot_gpu::solve_batch(&ctx, &neg, b, n, k, &[16], &p).unwrap_err();
    assert!(matches!(cpu, OtError::Step(_)), "{cpu}");
    assert!(matches!(gpu, OtError::Step(_)), "{gpu}");
}

#[test]
fn asot_solver_on_the_gpu_is_reproducible() {
    let Some(ctx) = gpu("asot_solver_on_the_gpu_is_reproducible") else {
        return;
    };
    let (b, n, k) = (3, 500, 9);
    let valid = vec![500, 250, 31];
    let c = costs(b, n, k, &valid, 3);
    let p = AsotParams::default();
    let first = asot_gpu::solve_batch(&ctx, &c, b, n, k, &valid, &p).unwrap();
    let second = asot_gpu::solve_batch(&ctx, &c, b, n, k, &valid, &p).unwrap();
    assert!(
        first
            .iter()
            .zip(&second)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
}

#[test]
fn cost_kernel_and_solve_match_the_cpu_from_embeddings() {
    let Some(ctx) = gpu("cost_kernel_and_solve_match_the_cpu_from_embeddings") else {
        return;
    };
    use clot_stages::ot::cost::{add_temporal_prior, cosine_cost};
    // unit-norm embeddings like the encoder's, ragged videos padded to N rows; K up to 64
    for (seed, (b, n, d, k, rho, valid)) in [
        (2, 256, 40, 7, 0.15f32, vec![256, 256]),
        (3, 500, 32, 64, 0.0, vec![500, 77, 1]),
        (1, 3000, 40, 12, 0.3, vec![3000]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(100 + seed as u64);
        let mut unit = |rows: usize| {
            let mut x: Vec<f32> = (0..rows * d)
                .map(|_| rng.random_range(-1f32..1.0))
                .collect();
            for r in x.chunks_mut(d) {
                let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
                r.iter_mut().for_each(|v| *v /= norm);
            }
            x
        };
        let f = unit(b * n);
        let a = unit(k);
        let mut cpu_costs = Vec::with_capacity(b * n * k);
        for v in 0..b {
            let mut c = cosine_cost(&f[v * n * d..(v + 1) * n * d], &a, d);
            add_temporal_prior(&mut c, n, k, rho);
            cpu_costs.extend(c);
        }
        let p = AsotParams::default();
        let (gpu_costs, gpu_plans) =
            asot_gpu::solve_embeddings(&ctx, &f, &a, (b, n, d, k), rho, &valid, &p).unwrap();
        let cost_err = cpu_costs
            .iter()
            .zip(&gpu_costs)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        eprintln!("cost B={b} N={n} d={d} K={k} rho={rho}: max |Δ| = {cost_err:.2e}");
        assert!(cost_err <= 1e-5, "cost: max |Δ| = {cost_err:e}");
        let cpu_plans = solve_batch(&cpu_costs, b, n, k, &valid, &p).unwrap();
        let what = format!("embeddings B={b} N={n} d={d} K={k}");
        assert_parity(&what, &compare(&cpu_plans, &gpu_plans, n, k, &valid));
    }
    // shapes that do not fit are an error naming them
    let e = asot_gpu::solve_embeddings(
        &ctx,
        &[0.0; 9],
        &[0.0; 4],
        (1, 5, 2, 2),
        0.0,
        &[5],
        &AsotParams::default(),
    )
    .unwrap_err();
    assert!(matches!(e, OtError::Shape(_)), "{e}");
}

#[test]
fn asot_solver_splits_a_batch_above_the_limit_into_groups_with_the_same_plans() {
    let Some(ctx) =
        gpu("asot_solver_splits_a_batch_above_the_limit_into_groups_with_the_same_plans")
    else {
        return;
    };
    let (b, n, k) = (5, 400, 9);
    let valid = vec![400, 120, 399, 1, 250];
    let c = costs(b, n, k, &valid, 11);
    let per_video = ((n + 1) * (k + 1) * 4) as u64;
    for p in [
        AsotParams::default(),
        AsotParams {
            step: StepSize::Fixed(0.7),
            ..AsotParams::default()
        },
    ] {
        let whole = asot_gpu::solve_batch(&ctx, &c, b, n, k, &valid, &p).unwrap();
        // groups of 2, 2 and 1 videos; one video per dispatch; one video per dispatch, each in
        // two row windows (256 and 144 rows)
        for limit in [2 * per_video + 7, per_video, per_video - 1] {
            let split = asot_gpu::solve_batch_within(&ctx, &c, b, n, k, &valid, &p, limit).unwrap();
            assert!(
                whole
                    .iter()
                    .zip(&split)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "limit {limit}, {:?}",
                p.step
            );
        }
    }
    // a video whose windows cannot hold even the prefix sums their GW windows read is an error
    // naming the sizes and the adapter
    let e = asot_gpu::solve_batch_within(&ctx, &c, b, n, k, &valid, &AsotParams::default(), 100)
        .unwrap_err();
    assert!(matches!(e, OtError::Gpu(GpuError::TooLarge { .. })), "{e}");
    assert!(e.to_string().contains("400 frames × 9 actions"), "{e}");
}

// ---- the dense kernels of the differentiable stages (linalg_gpu and the stages' kernel_gpu) ----

mod dense {
    use super::gpu;
    use clot_stages::encode::kernel as enc;
    use clot_stages::encode::kernel_gpu as enc_gpu;
    use clot_stages::linalg::{self, Op};
    use clot_stages::linalg_gpu::{GpuMat, Ops};
    use clot_stages::loss::kernel as ce;
    use clot_stages::loss::kernel_gpu as ce_gpu;
    use clot_stages::optim::{Adam, AdamConfig};
    use clot_stages::optim_gpu::{GpuAdam, GpuParamSet};
    use clot_stages::params::ParamSet;
    use clot_stages::refine::kernel as refine;
    use clot_stages::refine::kernel_gpu as refine_gpu;
    use rand::{RngExt, SeedableRng};

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..len).map(|_| rng.random_range(-1f32..1.0)).collect()
    }

    fn unit_rows(rows: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut x = values(rows * d, seed);
        linalg::normalize_rows(&mut x, d);
        x
    }

    /// max |a − b| / max(max |a|, floor): the error relative to the largest entry.
    fn rel(what: &str, cpu: &[f32], gpu: &[f32], floor: f32) -> f32 {
        assert_eq!(cpu.len(), gpu.len(), "{what}: lengths");
        assert!(
            gpu.iter().all(|v| v.is_finite()),
            "{what}: non-finite GPU value"
        );
        let scale = cpu.iter().fold(floor, |m, v| m.max(v.abs()));
        let err = cpu
            .iter()
            .zip(gpu)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        err / scale
    }

    fn check(what: &str, cpu: &[f32], gpu: &[f32], tol: f32) {
        let e = rel(what, cpu, gpu, 1e-30);
        eprintln!("{what}: max |Δ| / max |cpu| = {e:.2e}");
        assert!(e <= tol, "{what}: relative error {e:e} above {tol:e}");
    }

    /// The products, for every transpose, against the standard rounding bound of a k-term sum:
    /// |Δ_ij| ≤ 2·k·u·Σ_p |a_ip·b_pj| (u = 2⁻²⁴), with matrices at offsets inside a shared buffer.
    #[test]
    fn products_match_the_cpu_within_the_rounding_bound() {
        let Some(ctx) = gpu("products_match_the_cpu_within_the_rounding_bound") else {
            return;
        };
        let u = f32::EPSILON / 2.0;
        for (seed, (m, k, n)) in [
            (37, 53, 19),
            (1, 300, 5),
            (513, 7, 64),
            (16, 16, 16),
            (3, 1, 2),
        ]
        .into_iter()
        .enumerate()
        {
            for ta in [Op::N, Op::T] {
                for tb in [Op::N, Op::T] {
                    let a = values(m * k, 10 * seed as u64);
                    let b = values(k * n, 10 * seed as u64 + 1);
                    let c0 = values(m * n, 10 * seed as u64 + 2);
                    let (ar, ac) = if ta == Op::N { (m, k) } else { (k, m) };
                    let (br, bc) = if tb == Op::N { (k, n) } else { (n, k) };
                    // a and b share a buffer at aligned offsets, as parameter tensors do
                    let mut set = ParamSet::default();
                    set.push("a", vec![ar, ac], a.clone());
                    set.push("b", vec![br, bc], b.clone());
                    let shared = GpuParamSet::upload(&ctx, "operands", &set).unwrap();
                    let ga = shared.get("a").unwrap();
                    let gb = shared.get("b").unwrap();
                    let gc = GpuMat::upload(&ctx, "c", &c0, m, n).unwrap();
                    let mut ops = Ops::new(&ctx, "gemm").unwrap();
                    ops.gemm(0.75, &ga, ta, &gb, tb, 0.5, &gc).unwrap();
                    let got = ops.finish(&[&gc]).unwrap().remove(0);
                    let mut want = c0.clone();
                    linalg::gemm(m, k, n, 0.75, &a, ta, &b, tb, 0.5, &mut want);
                    let at = |i: usize, p: usize| {
                        if ta == Op::N {
                            a[i * k + p]
                        } else {
                            a[p * m + i]
                        }
                    };
                    let bt = |p: usize, j: usize| {
                        if tb == Op::N {
                            b[p * n + j]
                        } else {
                            b[j * k + p]
                        }
                    };
                    for i in 0..m {
                        for j in 0..n {
                            let mag: f32 = (0..k).map(|p| (at(i, p) * bt(p, j)).abs()).sum::<f32>()
                                * 0.75
                                + 0.5 * c0[i * n + j].abs();
                            let bound = 2.0 * (k + 2) as f32 * u * mag + 1e-30;
                            let d = (got[i * n + j] - want[i * n + j]).abs();
                            assert!(
                                d <= bound,
                                "{m}×{k}×{n} {ta:?}{tb:?} ({i},{j}): |Δ| {d:e} > {bound:e}"
                            );
                        }
                    }
                }
            }
        }
        // beta = 0 ignores what c held, NaN included, as BLAS does
        let gc = GpuMat::upload(&ctx, "c", &[f32::NAN; 4], 2, 2).unwrap();
        let ga = GpuMat::upload(&ctx, "a", &[1.0, 2.0, 3.0, 4.0], 2, 2).unwrap();
        let mut ops = Ops::new(&ctx, "gemm beta 0").unwrap();
        ops.gemm(1.0, &ga, Op::N, &ga, Op::N, 0.0, &gc).unwrap();
        assert_eq!(ops.finish(&[&gc]).unwrap()[0], vec![7.0, 10.0, 15.0, 22.0]);
    }

    /// The row kernels against linalg.rs: normalisation and softmax with their backwards, to
    /// 1e-6 relative; ReLU, its mask, axpy and column sums exactly (same operations in the same
    /// order); the fixed-order sum to 1e-6 relative.
    #[test]
    fn row_kernels_match_the_cpu() {
        let Some(ctx) = gpu("row_kernels_match_the_cpu") else {
            return;
        };
        for (seed, (rows, cols)) in [(300, 40), (7, 64), (1, 3), (1000, 12)]
            .into_iter()
            .enumerate()
        {
            let s = 100 + 10 * seed as u64;
            let mut x = values(rows * cols, s);
            x[..cols].iter_mut().for_each(|v| *v = 0.0); // a zero row: below the clamp
            let dy = values(rows * cols, s + 1);
            let gx = GpuMat::upload(&ctx, "x", &x, rows, cols).unwrap();
            let gdy = GpuMat::upload(&ctx, "dy", &dy, rows, cols).unwrap();
            let mut ops = Ops::new(&ctx, "rows").unwrap();
            let (gy, gnorms) = ops.normalize(&gx).unwrap();
            let gdx = ops.normalize_backward(&gy, &gnorms, &gdy).unwrap();
            let gw = ops.copy(&gx).unwrap();
            ops.softmax(&gw).unwrap();
            let gdz = ops.softmax_backward(&gw, &gdy).unwrap();
            let gr = ops.copy(&gx).unwrap();
            ops.relu(&gr).unwrap();
            let gm = ops.copy(&gdy).unwrap();
            ops.relu_mask(&gr, &gm).unwrap();
            let gacc = GpuMat::upload(&ctx, "acc", &dy[..cols], 1, cols).unwrap();
            ops.col_sum_into(&gx, &gacc).unwrap();
            ops.axpy(-0.5, &gx, &gdy).unwrap();
            let gsum = ops.sum(&gx, 0.25).unwrap();
            let out = ops
                .finish(&[&gy, &gnorms, &gdx, &gw, &gdz, &gr, &gm, &gacc, &gdy, &gsum])
                .unwrap();
            let what = |k: &str| format!("{k} {rows}×{cols}");

            let mut y = x.clone();
            let norms = linalg::normalize_rows(&mut y, cols);
            check(&what("normalize"), &y, &out[0], 1e-6);
            check(&what("norms"), &norms, &out[1], 1e-6);
            // the zero row's gradient is dy / 1e-12: compare the rows above the clamp relatively
            let dx = linalg::normalize_rows_backward(&y, &norms, &dy, cols);
            check(
                &what("normalize backward"),
                &dx[cols..],
                &out[2][cols..],
                1e-5,
            );
            check(
                &what("normalize backward (clamped row)"),
                &dx[..cols],
                &out[2][..cols],
                1e-6,
            );
            let mut w = x.clone();
            linalg::softmax_rows(&mut w, cols);
            check(&what("softmax"), &w, &out[3], 1e-6);
            let dz = linalg::softmax_rows_backward(&w, &dy, cols);
            check(&what("softmax backward"), &dz, &out[4], 1e-5);
            let r: Vec<f32> = x.iter().map(|v| v.max(0.0)).collect();
            assert_eq!(r, out[5], "{}", what("relu"));
            let m: Vec<f32> = dy
                .iter()
                .zip(&r)
                .map(|(&g, &a)| if a <= 0.0 { 0.0 } else { g })
                .collect();
            assert_eq!(m, out[6], "{}", what("relu mask"));
            let mut acc = dy[..cols].to_vec();
            for row in x.chunks_exact(cols) {
                for (g, &v) in acc.iter_mut().zip(row) {
                    *g += v;
                }
            }
            assert_eq!(acc, out[7], "{}", what("column sums"));
            let axpy: Vec<f32> = dy.iter().zip(&x).map(|(&y, &x)| y + -0.5 * x).collect();
            assert_eq!(axpy, out[8], "{}", what("axpy"));
            let total: f64 = x.iter().map(|&v| f64::from(v)).sum::<f64>() * 0.25;
            let abs: f64 = x.iter().map(|&v| f64::from(v.abs())).sum::<f64>() * 0.25;
            let d = (f64::from(out[9][0]) - total).abs();
            assert!(d <= 1e-6 * abs, "{}: {} vs {total}", what("sum"), out[9][0]);
        }
    }

    /// The MLP's forward and backward as the encode stage runs them: widths of the reference
    /// (15 → 128 → 40) and a deeper one, gradients accumulated into a resident gradient set that
    /// already holds values, dX included.
    #[test]
    fn encoder_matches_the_cpu() {
        let Some(ctx) = gpu("encoder_matches_the_cpu") else {
            return;
        };
        for (seed, (n, widths)) in [
            (512usize, vec![15usize, 128, 40]),
            (3, vec![64, 32, 16, 8]),
            (1000, vec![2048, 40]),
            (20_000, vec![15, 128, 40]),
        ]
        .into_iter()
        .enumerate()
        {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7 + seed as u64);
            let mut params = ParamSet::default();
            clot_stages::encode::init_params(&mut params, &widths, &mut rng);
            let mut grads = params.zeros_like();
            for (i, t) in grads.tensors.iter_mut().enumerate() {
                t.data = values(t.data.len(), 50 + i as u64);
            }
            let x = values(n * widths[0], 20 + seed as u64);
            let de = values(n * widths[widths.len() - 1], 30 + seed as u64);

            let gp = GpuParamSet::upload(&ctx, "params", &params).unwrap();
            let gg = GpuParamSet::upload(&ctx, "grads", &grads).unwrap();
            let glayers = enc_gpu::layers(&gp, &widths).unwrap();
            let ggrads = enc_gpu::layers(&gg, &widths).unwrap();
            let gx = GpuMat::upload(&ctx, "x", &x, n, widths[0]).unwrap();
            let gde = GpuMat::upload(&ctx, "dE", &de, n, *widths.last().unwrap()).unwrap();
            let mut ops = Ops::new(&ctx, "encode").unwrap();
            let cache = enc_gpu::forward(&mut ops, &glayers, &gx).unwrap();
            let gdx = enc_gpu::backward(&mut ops, &glayers, &cache, &gde, &ggrads, true)
                .unwrap()
                .unwrap();
            let out = ops
                .finish(&[&cache.out, &cache.norms, &gdx, &gg.flat()])
                .unwrap();

            let layers = clot_stages::encode::layers(&params, &widths).unwrap();
            let cpu = enc::forward(&layers, &x, n);
            let mut want = grads.clone();
            let mut pairs: Vec<(&mut [f32], &mut [f32])> = want
                .tensors
                .chunks_exact_mut(2)
                .map(|c| {
                    let (w, b) = c.split_at_mut(1);
                    (w[0].data.as_mut_slice(), b[0].data.as_mut_slice())
                })
                .collect();
            let dx = enc::backward(&layers, &cpu, &de, n, &mut pairs, true).unwrap();
            let what = format!("encode N={n} widths={widths:?}");
            check(&format!("{what} E"), &cpu.out, &out[0], 1e-5);
            check(&format!("{what} norms"), &cpu.norms, &out[1], 1e-5);
            check(&format!("{what} dX"), &dx, &out[2], 1e-4);
            let got = gg.to_param_set(&out[3]);
            for (w, g) in want.tensors.iter().zip(&got.tensors) {
                assert_eq!(w.name, g.name);
                check(&format!("{what} d{}", w.name), &w.data, &g.data, 1e-4);
            }
        }
    }

    /// Refinement forward and backward for OT3-sized and full-length shapes, over per-video
    /// segments (stacked) and over one shared S (A in the "without decoder" graph).
    #[test]
    fn refinement_matches_the_cpu() {
        let Some(ctx) = gpu("refinement_matches_the_cpu") else {
            return;
        };
        for (seed, (b, n, kk, d, tau, shared)) in [
            (1usize, 256usize, 7usize, 40usize, 0.1f32, false),
            (2, 256, 7, 40, 0.1, false),
            (3, 200, 5, 16, 0.1, true),
            (1, 2000, 64, 32, 0.07, false),
            (1, 20_000, 12, 40, 0.1, false),
            (2, 1, 2, 8, 1.0, false),
        ]
        .into_iter()
        .enumerate()
        {
            let s0 = 200 + 10 * seed as u64;
            let f = unit_rows(b * n, d, s0);
            let items = if shared { 1 } else { b };
            let s = unit_rows(items * kk, d, s0 + 1);
            let dout = values(b * n * d, s0 + 2);
            let gf = GpuMat::upload(&ctx, "F", &f, b * n, d).unwrap();
            let gs = GpuMat::upload(&ctx, "S", &s, items * kk, d).unwrap();
            let gdout = GpuMat::upload(&ctx, "dF_R", &dout, b * n, d).unwrap();
            let mut ops = Ops::new(&ctx, "refine").unwrap();
            let cache = refine_gpu::forward(&mut ops, &gf, &gs, (b, kk), tau).unwrap();
            let (gdf, gds) =
                refine_gpu::backward(&mut ops, &gf, &gs, &cache, &gdout, (b, kk), tau).unwrap();
            let out = ops.finish(&[&cache.w, &cache.out, &gdf, &gds]).unwrap();
            let (mut w, mut fr, mut df) = (Vec::new(), Vec::new(), Vec::new());
            let mut ds = vec![0f32; items * kk * d];
            for v in 0..b {
                let fv = &f[v * n * d..(v + 1) * n * d];
                let so = if shared { 0 } else { v * kk * d };
                let sv = &s[so..so + kk * d];
                let cpu = refine::forward(fv, sv, (n, kk, d), tau);
                let (dfv, dsv) = refine::backward(
                    fv,
                    sv,
                    &cpu,
                    &dout[v * n * d..(v + 1) * n * d],
                    (n, kk, d),
                    tau,
                );
                w.extend(cpu.w);
                fr.extend(cpu.out);
                df.extend(dfv);
                ds[so..so + kk * d]
                    .iter_mut()
                    .zip(&dsv)
                    .for_each(|(x, y)| *x += y);
            }
            let what = format!("refine B={b} N={n} K'={kk} d={d} tau={tau} shared={shared}");
            check(&format!("{what} W"), &w, &out[0], 1e-5);
            check(&format!("{what} F_R"), &fr, &out[1], 1e-5);
            check(&format!("{what} dF"), &df, &out[2], 1e-4);
            check(&format!("{what} dS"), &ds, &out[3], 1e-4);
        }
    }

    /// The cross-entropy, its value and gradients, on a padded video (masked rows) with a plan
    /// that has exact zeros.
    #[test]
    fn cross_entropy_matches_the_cpu() {
        let Some(ctx) = gpu("cross_entropy_matches_the_cpu") else {
            return;
        };
        for (seed, (n, valid, k, d, tau, rows)) in [
            (256usize, 256usize, 7usize, 40usize, 0.1f32, 512usize),
            (700, 333, 64, 32, 0.05, 1400),
            (20_000, 15_000, 12, 40, 0.1, 20_000),
            (3, 1, 2, 8, 1.0, 3),
        ]
        .into_iter()
        .enumerate()
        {
            let s0 = 300 + 10 * seed as u64;
            let f = unit_rows(n, d, s0);
            let a = unit_rows(k, d, s0 + 1);
            let mut t: Vec<f32> = values(n * k, s0 + 2).iter().map(|v| v.max(0.0)).collect();
            for (i, row) in t.chunks_exact_mut(k).enumerate() {
                let s: f32 = row.iter().sum::<f32>().max(1e-6);
                row.iter_mut().for_each(|v| *v /= s * n as f32);
                if i >= valid {
                    row.iter_mut().for_each(|v| *v = 0.0);
                }
            }
            let mask: Vec<bool> = (0..n).map(|i| i < valid).collect();
            let maskf: Vec<f32> = mask.iter().map(|&m| f32::from(u8::from(m))).collect();
            let df0 = values(n * d, s0 + 3);
            let da0 = values(k * d, s0 + 4);

            let gf = GpuMat::upload(&ctx, "F", &f, n, d).unwrap();
            let ga = GpuMat::upload(&ctx, "A", &a, k, d).unwrap();
            let gt = GpuMat::upload(&ctx, "T", &t, n, k).unwrap();
            let gm = GpuMat::upload(&ctx, "mask", &maskf, n, 1).unwrap();
            let gdf = GpuMat::upload(&ctx, "dF", &df0, n, d).unwrap();
            let gda = GpuMat::upload(&ctx, "dA", &da0, k, d).unwrap();
            let mut ops = Ops::new(&ctx, "cross-entropy").unwrap();
            let gp = ce_gpu::probabilities(&mut ops, &gf, &ga, tau).unwrap();
            let gl = ce_gpu::loss(&mut ops, &gp, &gt, &gm, rows).unwrap();
            ce_gpu::backward(&mut ops, &gf, &ga, &gp, &gt, &gm, tau, rows, &gdf, &gda).unwrap();
            let out = ops.finish(&[&gp, &gl, &gdf, &gda]).unwrap();

            let p = ce::probabilities(&f, &a, n, k, d, tau);
            let l = ce::loss(&p, &t, &mask, k, rows);
            let (mut df, mut da) = (df0.clone(), da0.clone());
            ce::backward(
                &f,
                &a,
                &p,
                &t,
                &mask,
                (n, k, d),
                tau,
                rows,
                &mut df,
                &mut da,
            );
            let what = format!("cross-entropy N={n} valid={valid} K={k} d={d} tau={tau}");
            let dp = p
                .iter()
                .zip(&out[0])
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            eprintln!("{what} P: max |Δ| = {dp:.2e}");
            assert!(dp <= 1e-6, "{what} P: max |Δ| = {dp:e}");
            check(&format!("{what} loss"), &[l], &out[1], 1e-5);
            check(&format!("{what} dF"), &df, &out[2], 1e-4);
            check(&format!("{what} dA"), &da, &out[3], 1e-4);
        }
    }

    /// Feature dispatching forward and backward for a batch of videos (the aggregation per
    /// video), with α and β read on the GPU and gradients accumulated into slots that hold values.
    #[test]
    fn dispatch_matches_the_cpu() {
        let Some(ctx) = gpu("dispatch_matches_the_cpu") else {
            return;
        };
        use clot_stages::dispatch::kernel as disp;
        use clot_stages::dispatch::kernel_gpu as disp_gpu;
        for (seed, (b, n, k, d, alpha, beta)) in [
            (2usize, 256usize, 7usize, 40usize, 1.0f32, 0.0f32),
            (3, 100, 64, 32, 2.5, -0.3),
            (1, 5, 2, 8, 0.7, 0.2),
            (1, 20_000, 12, 40, 1.0, 0.0),
        ]
        .into_iter()
        .enumerate()
        {
            let s0 = 700 + 10 * seed as u64;
            let e = unit_rows(b * n, d, s0);
            let a = unit_rows(k, d, s0 + 1);
            let dout = values(b * n * d, s0 + 2);
            let da0 = values(k * d, s0 + 3);
            let mut set = ParamSet::default();
            set.push("clusters", vec![k, d], a.clone());
            set.push("alpha", vec![1], vec![alpha]);
            set.push("beta", vec![1], vec![beta]);
            let gp = GpuParamSet::upload(&ctx, "params", &set).unwrap();
            let mut gset = set.clone();
            gset.tensors[0].data = da0.clone();
            gset.tensors[1].data = vec![0.25];
            gset.tensors[2].data = vec![-0.5];
            let gg = GpuParamSet::upload(&ctx, "grads", &gset).unwrap();
            let ge = GpuMat::upload(&ctx, "E", &e, b * n, d).unwrap();
            let gdout = GpuMat::upload(&ctx, "dFD", &dout, b * n, d).unwrap();
            let (ga, gal, gbe) = (
                gp.get("clusters").unwrap(),
                gp.get("alpha").unwrap(),
                gp.get("beta").unwrap(),
            );
            let mut ops = Ops::new(&ctx, "dispatch").unwrap();
            let (gout, cache) = disp_gpu::forward(&mut ops, &ge, &ga, b, &gal, &gbe).unwrap();
            let gde = disp_gpu::backward(
                &mut ops,
                &ge,
                &ga,
                &cache,
                &gdout,
                b,
                &gal,
                (
                    &gg.get("clusters").unwrap(),
                    &gg.get("alpha").unwrap(),
                    &gg.get("beta").unwrap(),
                ),
            )
            .unwrap();
            let out = ops.finish(&[&gout, &gde, &gg.flat()]).unwrap();
            let (mut fd, mut de) = (Vec::new(), Vec::new());
            let (mut da, mut dal, mut dbe) = (da0.clone(), 0.25f32, -0.5f32);
            for v in 0..b {
                let ev = &e[v * n * d..(v + 1) * n * d];
                let (f, c) = disp::forward(ev, &a, (n, k, d), alpha, beta);
                let (g, gda, gal, gbe) = disp::backward(
                    ev,
                    &a,
                    &c,
                    &dout[v * n * d..(v + 1) * n * d],
                    (n, k, d),
                    alpha,
                );
                fd.extend(f);
                de.extend(g);
                da.iter_mut().zip(&gda).for_each(|(x, y)| *x += y);
                dal += gal;
                dbe += gbe;
            }
            let got = gg.to_param_set(&out[2]);
            let what = format!("dispatch B={b} N={n} K={k} d={d} alpha={alpha} beta={beta}");
            check(&format!("{what} FD"), &fd, &out[0], 1e-5);
            check(&format!("{what} dE"), &de, &out[1], 1e-4);
            check(&format!("{what} dA"), &da, &got.tensors[0].data, 1e-4);
            check(
                &format!("{what} dalpha"),
                &[dal],
                &got.tensors[1].data,
                1e-4,
            );
            check(&format!("{what} dbeta"), &[dbe], &got.tensors[2].data, 1e-4);
        }
    }

    /// OT1's SWD term for a batch (each video its own directions), both variants, with a
    /// column length that is not a power of two and a full-length video.
    #[test]
    fn swd_term_matches_the_cpu() {
        let Some(ctx) = gpu("swd_term_matches_the_cpu") else {
            return;
        };
        use clot_stages::ot::cost::{SwdParams, SwdVariant, random_directions, swd_cost};
        use clot_stages::ot::swd_gpu;
        for (seed, (b, n, k, d, p)) in [
            (2usize, 256usize, 7usize, 40usize, 150usize),
            (3, 300, 5, 16, 33),
            (1, 3000, 12, 40, 150),
            (1, 20_000, 12, 40, 16),
            (2, 1, 2, 8, 4),
        ]
        .into_iter()
        .enumerate()
        {
            let s0 = 800 + 10 * seed as u64;
            let f = unit_rows(b * n, d, s0);
            let a = unit_rows(k, d, s0 + 1);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s0 + 2);
            let theta: Vec<f32> = (0..b)
                .flat_map(|_| random_directions(p, d, &mut rng))
                .collect();
            for variant in [SwdVariant::Released, SwdVariant::Paper] {
                let params = SwdParams {
                    variant,
                    projections: p,
                    ..SwdParams::default()
                };
                let gf = GpuMat::upload(&ctx, "F", &f, b * n, d).unwrap();
                let ga = GpuMat::upload(&ctx, "A", &a, k, d).unwrap();
                let gt = GpuMat::upload(&ctx, "theta", &theta, b * p, d).unwrap();
                let mut ops = Ops::new(&ctx, "swd").unwrap();
                let gc = swd_gpu::swd_cost(&mut ops, &gf, &ga, &gt, b, &params).unwrap();
                let got = ops.finish(&[&gc]).unwrap().remove(0);
                let want: Vec<f32> = (0..b)
                    .flat_map(|v| {
                        swd_cost(
                            &f[v * n * d..(v + 1) * n * d],
                            &a,
                            d,
                            &theta[v * p * d..(v + 1) * p * d],
                            &params,
                        )
                    })
                    .collect();
                let what = format!("swd {variant:?} B={b} N={n} K={k} d={d} P={p}");
                check(&what, &want, &got, 1e-4);
            }
        }
    }

    /// The parallel decoder forward and backward for a batch of padded videos (masked keys), one
    /// and two layers, with and without dropout and positions on the values.
    #[test]
    fn decoder_matches_the_cpu() {
        let Some(ctx) = gpu("decoder_matches_the_cpu") else {
            return;
        };
        use clot_stages::decode::kernel::{self as dec, DecoderShape};
        use clot_stages::decode::kernel_gpu as dec_gpu;
        for (seed, (b, n, valid, kq, d, heads, layers, drop, pos_values)) in [
            (
                2usize,
                64usize,
                vec![64usize, 40],
                7usize,
                40usize,
                4usize,
                1usize,
                true,
                true,
            ),
            (3, 33, vec![33, 1, 20], 5, 16, 2, 2, false, false),
            (1, 256, vec![256], 12, 40, 4, 1, true, false),
            (1, 20_000, vec![20_000], 12, 40, 4, 1, false, true),
        ]
        .into_iter()
        .enumerate()
        {
            let shape = DecoderShape {
                d,
                heads,
                layers,
                queries: kq,
                ffn: 4 * d,
                pos_values,
            };
            let s0 = 900 + 10 * seed as u64;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s0);
            let mut params = ParamSet::default();
            clot_stages::decode::init_params(&mut params, &shape, &mut rng);
            // LayerNorm γ, β and the attention biases away from their 1 / 0 start
            for t in params.tensors.iter_mut() {
                if t.name.contains("norm") || t.name.contains("bias") {
                    let v = values(t.data.len(), s0 + t.data.len() as u64);
                    t.data.iter_mut().zip(v).for_each(|(x, r)| *x += 0.3 * r);
                }
            }
            let mut grads = params.zeros_like();
            for (i, t) in grads.tensors.iter_mut().enumerate() {
                t.data = values(t.data.len(), s0 + 100 + i as u64);
            }
            let mem = unit_rows(b * n, d, s0 + 1);
            let ds = values(b * kq * d, s0 + 2);
            let masks: Vec<Vec<bool>> = valid
                .iter()
                .map(|&v| (0..n).map(|i| i < v).collect())
                .collect();
            let drops: Option<Vec<Vec<dec::LayerDrops<f32>>>> = drop.then(|| {
                let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(s0 + 3);
                let mut u = || r.random_range(0f64..1.0);
                (0..b)
                    .map(|_| {
                        (0..layers)
                            .map(|_| dec::draw_drops(&shape, n, 0.1, &mut u))
                            .collect()
                    })
                    .collect()
            });

            let gp = GpuParamSet::upload(&ctx, "params", &params).unwrap();
            let gg = GpuParamSet::upload(&ctx, "grads", &grads).unwrap();
            let names: Vec<String> = dec::layout(&shape).into_iter().map(|(n, _)| n).collect();
            let pm: Vec<GpuMat> = names.iter().map(|n| gp.get(n).unwrap()).collect();
            let gm: Vec<GpuMat> = names.iter().map(|n| gg.get(n).unwrap()).collect();
            let gmem = GpuMat::upload(&ctx, "memory", &mem, b * n, d).unwrap();
            let maskf: Vec<f32> = masks
                .iter()
                .flatten()
                .map(|&m| f32::from(u8::from(m)))
                .collect();
            let gvalid = GpuMat::upload(&ctx, "valid", &maskf, b, n).unwrap();
            let pe = dec::positions::<f32>(n, d);
            let gpe = GpuMat::upload(&ctx, "positions", &pe, n, d).unwrap();
            let gds = GpuMat::upload(&ctx, "dS", &ds, b * kq, d).unwrap();
            let gdrops = drops.as_ref().map(|dr| {
                let refs: Vec<&[dec::LayerDrops<f32>]> = dr.iter().map(|v| v.as_slice()).collect();
                dec_gpu::upload_drops(&ctx, &refs, &shape, n).unwrap()
            });
            let mut ops = Ops::new(&ctx, "decoder").unwrap();
            let cache = dec_gpu::forward(
                &mut ops,
                &pm,
                &shape,
                (&gmem, &gvalid, &gpe),
                b,
                gdrops.as_deref(),
            )
            .unwrap();
            let gdmem = dec_gpu::backward(
                &mut ops,
                &pm,
                &shape,
                &cache,
                &gds,
                b,
                gdrops.as_deref(),
                &gm,
            )
            .unwrap();
            let out = ops.finish(&[&cache.out, &gdmem, &gg.flat()]).unwrap();

            let p = clot_stages::decode::tensors(&params, &shape).unwrap();
            let (mut sv, mut dmem) = (Vec::new(), Vec::new());
            let mut want = grads.clone();
            for v in 0..b {
                let dr = drops.as_ref().map(|x| x[v].as_slice());
                let c = dec::forward(&p, &shape, &mem[v * n * d..(v + 1) * n * d], &masks[v], dr);
                let (g, dm) = dec::backward(
                    &p,
                    &shape,
                    &c,
                    &ds[v * kq * d..(v + 1) * kq * d],
                    &masks[v],
                    dr,
                );
                sv.extend_from_slice(&c.out);
                dmem.extend(dm);
                for (name, gv) in names.iter().zip(&g) {
                    let dst = want.get_mut(name).unwrap();
                    dst.iter_mut().zip(gv).for_each(|(x, y)| *x += y);
                }
            }
            let what = format!(
                "decoder B={b} N={n} valid={valid:?} K'={kq} d={d} h={heads} L={layers} \
                 drop={drop} pos_values={pos_values}"
            );
            check(&format!("{what} S"), &sv, &out[0], 1e-5);
            check(&format!("{what} dmem"), &dmem, &out[1], 1e-4);
            let got = gg.to_param_set(&out[2]);
            for (w, g) in want.tensors.iter().zip(&got.tensors) {
                check(&format!("{what} d{}", w.name), &w.data, &g.data, 1e-4);
            }
        }
    }

    /// Three Adam steps on a parameter set with odd tensor lengths (gaps in the shared buffer),
    /// from a state with moments, as torch's Adam computes them on the CPU.
    #[test]
    fn adam_matches_the_cpu_and_zeroes_the_gradients() {
        let Some(ctx) = gpu("adam_matches_the_cpu_and_zeroes_the_gradients") else {
            return;
        };
        let mut params = ParamSet::default();
        params.push("w", vec![5, 13], values(65, 400));
        params.push("b", vec![5], values(5, 401));
        params.push("clusters", vec![3, 70], values(210, 402));
        let cfg = AdamConfig {
            lr: 1e-2,
            weight_decay: 1e-3,
            ..AdamConfig::default()
        };
        let mut cpu = Adam::new(cfg, &params);
        let mut cpu_params = params.clone();
        let grads_at = |step: u64| {
            let mut g = params.zeros_like();
            for (i, t) in g.tensors.iter_mut().enumerate() {
                t.data = values(t.data.len(), 500 + 10 * step + i as u64);
            }
            g
        };
        // one CPU step first, so that the GPU starts from a state with moments and t = 1
        cpu.step(&mut cpu_params, &grads_at(0));
        let gp = GpuParamSet::upload(&ctx, "params", &cpu_params).unwrap();
        let mut gadam = GpuAdam::upload(&ctx, &cpu).unwrap();
        for step in 1..4 {
            let g = grads_at(step);
            let gg = GpuParamSet::upload(&ctx, "grads", &g).unwrap();
            let mut ops = Ops::new(&ctx, "adam").unwrap();
            gadam.step(ops.submission(), &gp, &gg).unwrap();
            let out = ops.finish(&[&gg.flat()]).unwrap();
            assert!(
                out[0].iter().all(|&v| v == 0.0),
                "step {step}: gradients not zeroed"
            );
            cpu.step(&mut cpu_params, &g);
        }
        let ops = Ops::new(&ctx, "read").unwrap();
        let out = ops
            .finish(&[&gp.flat(), &gadam.m.flat(), &gadam.v.flat()])
            .unwrap();
        assert_eq!(gadam.t, cpu.t);
        for (name, want, got) in [
            ("params", &cpu_params, gp.to_param_set(&out[0])),
            ("m", &cpu.m, gadam.m.to_param_set(&out[1])),
            ("v", &cpu.v, gadam.v.to_param_set(&out[2])),
        ] {
            for (w, g) in want.tensors.iter().zip(&got.tensors) {
                assert_eq!((&w.name, &w.shape), (&g.name, &g.shape));
                check(&format!("adam {name} {}", w.name), &w.data, &g.data, 1e-6);
            }
        }
    }

    /// The same inputs give the same bits, twice (every sum in a fixed order).
    #[test]
    fn dense_kernels_are_reproducible() {
        let Some(ctx) = gpu("dense_kernels_are_reproducible") else {
            return;
        };
        let widths = [15, 128, 40];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut params = ParamSet::default();
        clot_stages::encode::init_params(&mut params, &widths, &mut rng);
        let x = values(700 * 15, 600);
        let de = values(700 * 40, 601);
        let run = || {
            let gp = GpuParamSet::upload(&ctx, "params", &params).unwrap();
            let gg = gp.zeros_like(&ctx, "grads").unwrap();
            let layers = enc_gpu::layers(&gp, &widths).unwrap();
            let grads = enc_gpu::layers(&gg, &widths).unwrap();
            let gx = GpuMat::upload(&ctx, "x", &x, 700, 15).unwrap();
            let gde = GpuMat::upload(&ctx, "dE", &de, 700, 40).unwrap();
            let mut ops = Ops::new(&ctx, "encode").unwrap();
            let cache = enc_gpu::forward(&mut ops, &layers, &gx).unwrap();
            enc_gpu::backward(&mut ops, &layers, &cache, &gde, &grads, false).unwrap();
            let sum = ops.sum(&cache.out, 1.0).unwrap();
            ops.finish(&[&cache.out, &gg.flat(), &sum]).unwrap()
        };
        let (a, b) = (run(), run());
        for (x, y) in a.iter().zip(&b) {
            assert!(x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()));
        }
    }
}
