//! CPU vs wgpu parity of every GPU kernel, on seeded inputs with ragged lengths.
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
    argmax_same: usize,
    frames: usize,
}

fn compare(cpu: &[f32], gpu: &[f32], n: usize, k: usize, valid: &[usize]) -> Agreement {
    assert_eq!(cpu.len(), gpu.len());
    let mut max_abs = 0f32;
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
        argmax_same,
        frames,
    }
}

/// The solver's stated tolerance: 1e-4 per plan entry, the same argmax on ≥ 99.9 % of frames.
fn assert_parity(what: &str, a: &Agreement) {
    eprintln!(
        "{what}: max |Δ| = {:.2e}, argmax agrees on {}/{} frames",
        a.max_abs, a.argmax_same, a.frames
    );
    assert!(a.max_abs <= 1e-4, "{what}: max |Δ| = {:e}", a.max_abs);
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
fn asot_solver_refuses_what_the_gpu_does_not_implement_and_bad_input() {
    let Some(ctx) = gpu("asot_solver_refuses_what_the_gpu_does_not_implement_and_bad_input") else {
        return;
    };
    let (b, n, k) = (1, 16, 3);
    let c = costs(b, n, k, &[16], 1);
    for p in [
        AsotParams {
            balanced_actions: true,
            ..AsotParams::default()
        },
        AsotParams {
            unbalanced_frames: true,
            ..AsotParams::default()
        },
    ] {
        let e = asot_gpu::solve_batch(&ctx, &c, b, n, k, &[16], &p).unwrap_err();
        assert!(matches!(e, OtError::Gpu(GpuError::Unsupported(_))), "{e}");
        assert!(e.to_string().contains("--device cpu"), "{e}");
    }
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
        // groups of 2, 2 and 1 videos; and one video per dispatch
        for limit in [2 * per_video + 7, per_video] {
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
    // a video that does not fit alone is an error naming the sizes and the adapter
    let e = asot_gpu::solve_batch_within(&ctx, &c, b, n, k, &valid, &AsotParams::default(), 100)
        .unwrap_err();
    assert!(matches!(e, OtError::Gpu(GpuError::TooLarge { .. })), "{e}");
    assert!(e.to_string().contains("400 frames × 9 actions"), "{e}");
}
