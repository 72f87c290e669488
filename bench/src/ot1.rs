//! `clot-bench ot1`: one OT1 call of training (cosine cost, temporal prior, the `released` SWD
//! cost and the batched ASOT solve) on one thread, against its arithmetic bound.
//!
//! The shapes default to coffee's training batch: B = 2 videos of N = 256 sampled frames,
//! K = 7 actions, d = 40, P = 150 projections, 25 iterations (the breakfast preset). Inputs are
//! seeded unit rows. Each part is timed on its own (median of `--repeats` calls), then the whole
//! call as the OT1 stage runs it.
//!
//! The bound is the call's arithmetic at this core's best measured rates:
//! * the solver: one `exp` and one `ln` per cell and iteration (the `clot-bench solver` bound),
//!   timed with clot's vectorised polynomials on in-cache data, for B·N·K·iters cells (K not
//!   padded);
//! * everything else as flops (compare-exchanges of the sorts counted as one each) at the rate of
//!   an in-cache 256×256×256 sgemm on one thread: the projections 2·(N+K)·d·P and the cosine
//!   2·N·K·d per video, the distances 3·N·K·P, the sorts P·N·log₂N, the row norms and square
//!   roots 4·(N+K)·P.
//!
//! No solver or cost arithmetic is skipped by the bound, and none is added: it is the floor
//! for this algorithm at these rates, not for a cheaper algorithm.

use anyhow::{Result, bail};
use clot_stages::linalg::{Op, gemm};
use clot_stages::ot::cost::{
    SwdParams, add_temporal_prior, cosine_cost, random_directions, swd_cost,
};
use clot_stages::ot::{AsotParams, solve_batch};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::median_time;

struct Args {
    videos: usize,
    rows: usize,
    actions: usize,
    dim: usize,
    projections: usize,
    repeats: usize,
    json: bool,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        videos: 2,
        rows: 256,
        actions: 7,
        dim: 40,
        projections: 150,
        repeats: 200,
        json: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--json" {
            a.json = true;
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        let n: usize = value
            .parse()
            .map_err(|e| anyhow::anyhow!("{flag} {value}: {e}"))?;
        if n == 0 {
            bail!("{flag} must be at least 1");
        }
        match flag.as_str() {
            "--videos" => a.videos = n,
            "--rows" => a.rows = n,
            "--actions" => a.actions = n,
            "--dim" => a.dim = n,
            "--projections" => a.projections = n,
            "--repeats" => a.repeats = n,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// Flops per second of an in-cache 256×256×256 sgemm on this thread.
fn sgemm_rate() -> Result<f64> {
    let n = 256;
    let a: Vec<f32> = (0..n * n).map(|i| (i as f32 * 0.37).sin()).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i as f32 * 0.11).cos()).collect();
    let mut c = vec![0f32; n * n];
    let s = median_time(50, || {
        gemm(n, n, n, 1.0, &a, Op::N, &b, Op::N, 0.0, &mut c);
        std::hint::black_box(&mut c);
        Ok(())
    })?;
    Ok(2.0 * (n * n * n) as f64 / s)
}

pub fn run(args: &[String]) -> Result<()> {
    let a = parse_args(args)?;
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    one.install(|| measure(&a))
}

fn measure(a: &Args) -> Result<()> {
    let (b, n, k, d, p) = (a.videos, a.rows, a.actions, a.dim, a.projections);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    // unit rows, as the encoder's normalised embeddings and A are
    let frames: Vec<Vec<f32>> = (0..b).map(|_| random_directions(n, d, &mut rng)).collect();
    let actions = random_directions(k, d, &mut rng);
    let thetas: Vec<Vec<f32>> = (0..b).map(|_| random_directions(p, d, &mut rng)).collect();
    let swd = SwdParams {
        projections: p,
        ..SwdParams::default()
    };
    let params = AsotParams {
        alpha: 0.3,
        lambda_actions: 0.12,
        ..AsotParams::default()
    };
    let (rho, weight) = (0.15f32, 1.0f32);
    let costs = |with_swd: bool| -> Vec<f32> {
        let mut all = Vec::with_capacity(b * n * k);
        for (f, theta) in frames.iter().zip(&thetas) {
            let mut c = cosine_cost(f, &actions, d);
            add_temporal_prior(&mut c, n, k, rho);
            if with_swd {
                let s = swd_cost(f, &actions, d, theta, &swd);
                c.iter_mut().zip(&s).for_each(|(x, y)| *x += weight * y);
            }
            all.extend_from_slice(&c);
        }
        all
    };
    let valid = vec![n; b];
    let full = costs(true);
    let reps = a.repeats;
    let t_cosine = median_time(reps, || {
        std::hint::black_box(costs(false));
        Ok(())
    })?;
    let t_swd = median_time(reps, || {
        for (f, theta) in frames.iter().zip(&thetas) {
            std::hint::black_box(swd_cost(f, &actions, d, theta, &swd));
        }
        Ok(())
    })?;
    let t_solver = median_time(reps, || {
        solve_batch(&full, b, n, k, &valid, &params)?;
        Ok(())
    })?;
    let t_call = median_time(reps, || {
        solve_batch(&costs(true), b, n, k, &valid, &params)?;
        Ok(())
    })?;
    let rate = sgemm_rate()?;
    let exp_ln = crate::solver::exp_ln_seconds();
    let log2n = (n as f64).log2().ceil();
    let (bf, nf, kf, df, pf) = (b as f64, n as f64, k as f64, d as f64, p as f64);
    let flops = bf
        * (2.0 * (nf + kf) * df * pf
            + 2.0 * nf * kf * df
            + 3.0 * nf * kf * pf
            + pf * (nf * log2n + kf * kf.log2().ceil())
            + 4.0 * (nf + kf) * pf);
    let cells = bf * nf * kf * params.iters as f64;
    let bound_solver = cells * exp_ln;
    let bound_rest = flops / rate;
    let bound = bound_solver + bound_rest;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "videos": b, "rows": n, "actions": k, "dim": d, "projections": p,
                "instruction_set": clot_stages::ot::simd::instruction_set(),
                "iters": params.iters,
                "call_s": t_call, "cosine_prior_s": t_cosine, "swd_s": t_swd, "solver_s": t_solver,
                "bound_s": bound, "bound_solver_s": bound_solver, "bound_rest_s": bound_rest,
                "sgemm_flops_per_s": rate, "exp_ln_s": exp_ln,
                "times_bound": t_call / bound,
            })
        );
        return Ok(());
    }
    println!(
        "OT1, one call of {b} videos × {n} frames × K = {k}, d = {d}, P = {p}, {} iterations, 1 thread, {} vectors, median of {reps}",
        params.iters,
        clot_stages::ot::simd::instruction_set()
    );
    println!(
        "{:<34}{:>12}{:>12}{:>10}",
        "part", "measured", "bound", "× bound"
    );
    let row = |name: &str, t: f64, bnd: Option<f64>| match bnd {
        Some(x) => println!(
            "{name:<34}{:>9.1} µs{:>9.1} µs{:>9.1}×",
            t * 1e6,
            x * 1e6,
            t / x
        ),
        None => println!("{name:<34}{:>9.1} µs", t * 1e6),
    };
    row("cosine cost + temporal prior", t_cosine, None);
    row("SWD cost (projections, sorts, distances)", t_swd, None);
    row("costs together", t_cosine + t_swd, Some(bound_rest));
    row("solver", t_solver, Some(bound_solver));
    row("whole call", t_call, Some(bound));
    println!(
        "bound: solver {cells:.0} cell-iterations × {:.2} ns (1 exp + 1 ln); the rest {:.2} Mflop at {:.1} Gflop/s (in-cache 256³ sgemm, this thread)",
        exp_ln * 1e9,
        flops / 1e6,
        rate / 1e9
    );
    Ok(())
}
