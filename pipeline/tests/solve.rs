//! `clot solve` end to end: the reference's settings on the real examples reproduce the golden
//! plan and scores; Parquet input equals `.npy` input; bad input fails with exit 2 and a message
//! that names the file and place; every option has a test of its effect (with and without it, or
//! two values), and flags that would do nothing or are out of range are refused naming the flag.

#![allow(clippy::unwrap_used)]

mod common;

use common::{fails, json, ok};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{CommandFactory, Parser};
use clot_pipeline::cli::{Cli, Command, SolveArgs};
use clot_pipeline::solve::{Solved, solve_input};
use clot_stages::gpu::Compute;

fn npy(path: &Path, shape: (usize, usize), values: &[f32]) {
    clot_datasets::npy::write_npy_f32(path, shape.0, shape.1, values).expect("write npy");
}

fn shared() -> Option<PathBuf> {
    clot_datasets::shared::require(&["data/asot_examples", "golden/golden.json"])
}

#[test]
fn reference_settings_reproduce_the_golden_salat_run() {
    let Some(root) = shared() else { return };
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("golden/golden.json")).expect("golden"),
    )
    .expect("json");
    let g = &golden["P36_webcam01_P36_salat"];
    let ex = root.join("data/asot_examples");
    let tmp = tempfile::tempdir().expect("tmp");
    let s = |p: &Path| p.to_str().expect("utf8 path").to_string();
    let (input, gt, mapping, out) = (
        s(&ex.join("affinity/P36_webcam01_P36_salat.npy")),
        s(&ex.join("gt/P36_webcam01_P36_salat")),
        s(&ex.join("gt/mapping_salat.txt")),
        s(&tmp.path().join("out")),
    );
    let v = json(&[
        "solve",
        &input,
        "--affinity",
        "--eps",
        "0.01",
        "--alpha",
        "0.6",
        "--radius",
        "0.04",
        "--lambda-actions",
        "0.06",
        "--gt",
        &gt,
        "--mapping",
        &mapping,
        "--out",
        &out,
        "--json",
    ]);
    let close = |a: &serde_json::Value, b: &serde_json::Value| {
        (a.as_f64().expect("f") - b.as_f64().expect("f")).abs() < 1e-9
    };
    assert!(close(&v["scores"]["activity"]["mof"], &g["mof"]), "{v}");
    assert!(close(&v["scores"]["activity"]["miou"], &g["miou"]), "{v}");
    assert_eq!(v["videos"][0][2], g["n_segments"]);
    // the written plan is the reference plan
    let (kind, plans) =
        clot_datasets::read_frame_matrix(&tmp.path().join("out/plan.parquet")).expect("plan");
    assert_eq!(kind, "plan");
    let path = root.join("golden/asot_plan_P36_webcam01_P36_salat.npy");
    let reference =
        clot_datasets::npy::parse_npy(&std::fs::read(&path).expect("npy"), &path).expect("parse");
    let err = plans[0]
        .1
        .as_slice()
        .iter()
        .zip(&reference.values)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(err <= 2e-4, "max abs error {err}");
}

#[test]
fn parquet_input_equals_npy_input() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (n, k) = (300, 5);
    let aff: Vec<f32> = (0..n * k)
        .map(|x| (((x / k) * 5 / n) == x % k) as i32 as f32 * 0.6 + ((x as f32) * 0.37).sin() * 0.1)
        .collect();
    let npy_path = tmp.path().join("v1.npy");
    npy(&npy_path, (n, k), &aff);
    let mut schema = clot_schemas::Table::FrameMatrix.schema(k as i32);
    schema.metadata.insert(
        clot_schemas::KEY_MATRIX_KIND.to_string(),
        "affinity".to_string(),
    );
    let schema = Arc::new(schema);
    let m = clot_schemas::F32Matrix::from_vec(aff, k, "v1").expect("matrix");
    let batch = clot_datasets::frame_matrix_batch(Arc::clone(&schema), "v1", &m).expect("batch");
    let pq = tmp.path().join("in.parquet");
    clot_datasets::write_table(&pq, schema, &[batch]).expect("write");
    let a = json(&[
        "solve",
        npy_path.to_str().expect("p"),
        "--affinity",
        "--json",
    ]);
    let b = json(&["solve", pq.to_str().expect("p"), "--json"]);
    assert_eq!(a["videos"], b["videos"]);
    assert_eq!(a["videos"][0][2], 5, "five segments recovered: {a}");
}

#[test]
fn bad_input_names_file_and_place() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = |name: &str| tmp.path().join(name);
    let mut c = vec![0.5f32; 12];
    c[7] = f32::NAN;
    npy(&p("nan.npy"), (4, 3), &c);
    let e = fails(&["solve", p("nan.npy").to_str().expect("p")]);
    assert!(
        e.contains("nan.npy") && e.contains("frame 2, action 1"),
        "{e}"
    );
    npy(&p("k0.npy"), (4, 0), &[]);
    let e = fails(&["solve", p("k0.npy").to_str().expect("p")]);
    assert!(e.contains("k0.npy"), "{e}");
    npy(&p("n0.npy"), (0, 3), &[]);
    let e = fails(&["solve", p("n0.npy").to_str().expect("p")]);
    assert!(e.contains("n0.npy") && e.contains("N = 0"), "{e}");
    npy(&p("ok.npy"), (4, 3), &[0.5; 12]);
    std::fs::write(p("map.txt"), "0 a\n1 b\n").expect("w");
    std::fs::write(p("gt3"), "a\nb\nb\n").expect("w");
    let e = fails(&[
        "solve",
        p("ok.npy").to_str().expect("p"),
        "--gt",
        p("gt3").to_str().expect("p"),
        "--mapping",
        p("map.txt").to_str().expect("p"),
    ]);
    assert!(
        e.contains("gt3") && e.contains("3 labels") && e.contains("4 frames"),
        "{e}"
    );
    std::fs::write(p("gtx"), "a\nb\nzzz\nb\n").expect("w");
    let e = fails(&[
        "solve",
        p("ok.npy").to_str().expect("p"),
        "--gt",
        p("gtx").to_str().expect("p"),
        "--mapping",
        p("map.txt").to_str().expect("p"),
    ]);
    assert!(e.contains("gtx:3") && e.contains("`zzz`"), "{e}");
    let e = fails(&["solve", p("ok.npy").to_str().expect("p"), "--step", "fast"]);
    assert!(e.contains("--step `fast`"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Every option's effect. Solver options go through clap (`parse`) and `solve_input`, so that the
// plan itself can be compared; scoring and output options go through the binary.

/// `clot solve INPUT FLAGS…` as clap parses it for the binary.
fn parse(input: &Path, flags: &[&str]) -> SolveArgs {
    let mut argv = vec!["clot", "solve", input.to_str().expect("utf8 path")];
    argv.extend_from_slice(flags);
    match Cli::try_parse_from(argv).expect("flags parse").command {
        Command::Solve(a) => a,
        other => panic!("parsed {other:?}"),
    }
}

/// The solved videos of `clot solve INPUT FLAGS…`.
fn solved(input: &Path, flags: &[&str]) -> Vec<Solved> {
    let args = parse(input, flags);
    let compute = Compute::resolve(args.device).expect("device");
    solve_input(&args, &compute).expect("solve")
}

/// The plan (N×K, row-major) of the one video of `clot solve INPUT FLAGS…`.
fn plan(input: &Path, flags: &[&str]) -> Vec<f32> {
    solved(input, flags)[0].plan.as_slice().to_vec()
}

/// The prediction of the one video of `clot solve INPUT FLAGS…`.
fn prediction(input: &Path, flags: &[&str]) -> Vec<i32> {
    solved(input, flags).remove(0).prediction
}

fn segment_count(pred: &[i32]) -> usize {
    clot_stages::eval::segments(pred).len()
}

fn row_sums(plan: &[f32], k: usize) -> Vec<f64> {
    plan.chunks(k)
        .map(|r| r.iter().map(|&x| x as f64).sum())
        .collect()
}

fn col_sums(plan: &[f32], k: usize) -> Vec<f64> {
    let mut s = vec![0f64; k];
    for row in plan.chunks(k) {
        for (c, &x) in s.iter_mut().zip(row) {
            *c += x as f64;
        }
    }
    s
}

/// Largest |x − target| over `xs`.
fn max_dev(xs: &[f64], target: f64) -> f64 {
    xs.iter().map(|x| (x - target).abs()).fold(0.0, f64::max)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Mean entropy of the plan's rows (each row a distribution over the K actions).
fn mean_row_entropy(plan: &[f32], k: usize) -> f64 {
    let rows = plan.len() / k;
    plan.chunks(k)
        .map(|r| {
            let s: f64 = r.iter().map(|&x| x as f64).sum();
            -r.iter()
                .map(|&x| x as f64 / s)
                .filter(|&p| p > 0.0)
                .map(|p| p * p.ln())
                .sum::<f64>()
        })
        .sum::<f64>()
        / rows as f64
}

/// Mean over frames of the plan's largest entry (the prediction's confidence).
fn mean_confidence(plan: &[f32], k: usize) -> f64 {
    let rows = plan.len() / k;
    plan.chunks(k)
        .map(|r| r.iter().copied().fold(0f32, f32::max) as f64)
        .sum::<f64>()
        / rows as f64
}

/// An N×K affinity of K equal blocks in order (1 on the block's action, 0 elsewhere) plus a
/// deterministic ripple of amplitude `ripple`.
fn blocks(n: usize, k: usize, ripple: f32) -> Vec<f32> {
    (0..n * k)
        .map(|x| {
            let (i, j) = (x / k, x % k);
            (i * k / n == j) as i32 as f32 + ripple * ((x as f32) * 0.37).sin()
        })
        .collect()
}

/// The block label of each of N frames in K equal blocks.
fn block_labels(n: usize, k: usize) -> Vec<i32> {
    (0..n).map(|i| (i * k / n) as i32).collect()
}

/// Deterministic noise in [0, 1) (a multiplicative hash of `x`).
fn noise(x: usize) -> f32 {
    ((x as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / (1u64 << 24) as f32
}

/// A noisy cost: 1 − (0.5 on K equal blocks + noise in [0, 1)). The argmin of a frame is its
/// block only a little more often than not, so smoothing shows in the number of segments.
fn noisy_cost(n: usize, k: usize) -> Vec<f32> {
    (0..n * k)
        .map(|x| 1.0 - (0.5 * ((x / k) * k / n == x % k) as i32 as f32 + noise(x)))
        .collect()
}

/// Writes a Parquet `frame_matrix` file of one video `v1` whose `clot.matrix_kind` is `kind`.
fn frame_matrix(path: &Path, kind: &str, k: usize, values: Vec<f32>) {
    let mut schema = clot_schemas::Table::FrameMatrix.schema(k as i32);
    schema
        .metadata
        .insert(clot_schemas::KEY_MATRIX_KIND.to_string(), kind.to_string());
    let schema = Arc::new(schema);
    let m = clot_schemas::F32Matrix::from_vec(values, k, "v1").expect("matrix");
    let batch = clot_datasets::frame_matrix_batch(Arc::clone(&schema), "v1", &m).expect("batch");
    clot_datasets::write_table(path, schema, &[batch]).expect("write");
}

/// Path as `&str` for argument lists.
fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

#[test]
fn affinity_flag_solves_one_minus_the_matrix() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (n, k) = (120, 4);
    let aff = blocks(n, k, 0.1);
    let cost: Vec<f32> = aff.iter().map(|x| 1.0 - x).collect();
    let (a, c) = (tmp.path().join("aff.npy"), tmp.path().join("cost.npy"));
    npy(&a, (n, k), &aff);
    npy(&c, (n, k), &cost);
    // --affinity on A is exactly the solve of the cost 1 − A
    assert_eq!(plan(&a, &["--affinity"]), plan(&c, &[]));
    // and it finds the blocks, where reading A as a cost avoids them
    let truth = block_labels(n, k);
    let hits = |p: &[i32]| p.iter().zip(&truth).filter(|(a, b)| a == b).count();
    assert_eq!(hits(&prediction(&a, &["--affinity"])), n);
    assert_eq!(hits(&prediction(&a, &[])), 0);
}

#[test]
fn cost_and_affinity_flags_override_the_parquet_matrix_kind() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (n, k) = (120, 4);
    let m = blocks(n, k, 0.1);
    let raw = tmp.path().join("v1.npy");
    npy(&raw, (n, k), &m);
    let (as_aff, as_cost) = (plan(&raw, &["--affinity"]), plan(&raw, &[]));
    assert_ne!(as_aff, as_cost);
    let aff_pq = tmp.path().join("aff.parquet");
    frame_matrix(&aff_pq, "affinity", k, m.clone());
    let cost_pq = tmp.path().join("cost.parquet");
    frame_matrix(&cost_pq, "cost", k, m);
    // the file's kind is the default ...
    assert_eq!(plan(&aff_pq, &[]), as_aff);
    assert_eq!(plan(&cost_pq, &[]), as_cost);
    // ... and either flag overrides it, in both directions
    assert_eq!(plan(&aff_pq, &["--cost"]), as_cost);
    assert_eq!(plan(&cost_pq, &["--affinity"]), as_aff);
    // the same through the binary
    let v = json(&["solve", s(&aff_pq), "--cost", "--json"]);
    let w = json(&["solve", s(&raw), "--json"]);
    assert_eq!(v["videos"], w["videos"]);
    let e = fails(&["solve", s(&aff_pq), "--cost", "--affinity"]);
    assert!(e.contains("--cost") && e.contains("--affinity"), "{e}");
}

#[test]
fn eps_flattens_the_plan() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (n, k) = (120, 4);
    let p = tmp.path().join("c.npy");
    npy(&p, (n, k), &noisy_cost(n, k));
    // a fixed step: the automatic one is 4 / max of the first gradient, which depends on ε too
    let h = |eps: &str| mean_row_entropy(&plan(&p, &["--eps", eps, "--step", "1"]), k);
    let (sharp, mid, soft) = (h("0.01"), h("0.1"), h("0.5"));
    assert!(
        sharp < mid && mid < soft && soft > 1.0,
        "mean row entropy: ε=0.01 {sharp}, ε=0.1 {mid}, ε=0.5 {soft}"
    );
}

#[test]
fn alpha_trades_the_cost_for_temporal_smoothness() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (n, k) = (200, 4);
    let (p, q) = (tmp.path().join("p.npy"), tmp.path().join("q.npy"));
    npy(&p, (n, k), &noisy_cost(n, k));
    // another cost: the blocks in reverse order
    let reversed: Vec<f32> = noisy_cost(n, k)
        .chunks(k)
        .rev()
        .flatten()
        .copied()
        .collect();
    npy(&q, (n, k), &reversed);
    // α = 1 leaves no weight on the cost: two different costs give the same plan
    assert_eq!(plan(&p, &["--alpha", "1"]), plan(&q, &["--alpha", "1"]));
    assert_ne!(plan(&p, &["--alpha", "0.4"]), plan(&q, &["--alpha", "0.4"]));
    // a larger α smooths the segmentation of a noisy cost
    let segs = |a: &str| segment_count(&prediction(&p, &["--alpha", a]));
    let (rough, some, smooth) = (segs("0"), segs("0.2"), segs("0.6"));
    assert!(
        smooth < some && some < rough && smooth <= 2 * k,
        "segments: α=0 {rough}, α=0.2 {some}, α=0.6 {smooth}"
    );
}

#[test]
fn radius_widens_the_temporal_smoothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (n, k) = (200, 4);
    let p = tmp.path().join("c.npy");
    npy(&p, (n, k), &noisy_cost(n, k));
    let f = |r: &str| segment_count(&prediction(&p, &["--alpha", "0.6", "--radius", r]));
    // r = 0.005 is a window of one frame each side (⌊200·0.005⌋), r = 0.04 of eight
    let (narrow, wide) = (f("0.005"), f("0.04"));
    assert!(
        wide < narrow && wide <= 2 * k,
        "segments: r=0.04 {wide}, r=0.005 {narrow}"
    );
}

/// A cost on which action 0 is cheapest for every frame.
fn skewed_cost(n: usize, k: usize) -> Vec<f32> {
    (0..n * k)
        .map(|x| {
            let j = x % k;
            0.2 * j as f32 + 0.05 * ((x as f32) * 0.37).sin() + 0.5
        })
        .collect()
}

#[test]
fn lambda_actions_pulls_the_action_marginal_toward_uniform() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (n, k) = (120, 4);
    let p = tmp.path().join("c.npy");
    npy(&p, (n, k), &skewed_cost(n, k));
    let dev = |l: &str| {
        max_dev(
            &col_sums(&plan(&p, &["--lambda-actions", l]), k),
            (n / k) as f64,
        )
    };
    // (much larger weights make 25 steps of the automatic size oscillate)
    let (free, mild, strong) = (dev("0"), dev("0.1"), dev("0.5"));
    assert!(
        free > mild && mild > strong,
        "max |column sum − N/K|: λ=0 {free}, λ=0.1 {mild}, λ=0.5 {strong}"
    );
}

#[test]
fn balanced_actions_gives_every_action_n_over_k() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (n, k) = (120, 4);
    let p = tmp.path().join("c.npy");
    npy(&p, (n, k), &skewed_cost(n, k));
    let target = (n / k) as f64;
    let relaxed = max_dev(&col_sums(&plan(&p, &[]), k), target);
    let balanced = plan(&p, &["--balanced-actions"]);
    let exact = max_dev(&col_sums(&balanced, k), target);
    assert!(
        exact < 1e-3 * target,
        "balanced: column sums off by {exact}"
    );
    assert!(relaxed > 1.0, "relaxed: column sums off by only {relaxed}");
    // rows still sum to 1
    assert!(max_dev(&row_sums(&balanced, k), 1.0) < 1e-4);
    // its KL weight means nothing then: refused
    let e = fails(&[
        "solve",
        s(&p),
        "--balanced-actions",
        "--lambda-actions",
        "1",
    ]);
    assert!(
        e.contains("--lambda-actions") && e.contains("--balanced-actions"),
        "{e}"
    );
}

/// A cost on which even frames are cheaper than odd ones.
fn uneven_rows_cost(n: usize, k: usize) -> Vec<f32> {
    (0..n * k)
        .map(|x| {
            let (i, j) = (x / k, x % k);
            0.5 * (i % 2) as f32 + (i * k / n != j) as i32 as f32 * 0.3
        })
        .collect()
}

#[test]
fn unbalanced_frames_frees_the_row_sums_and_lambda_frames_tightens_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (n, k) = (120, 4);
    let p = tmp.path().join("c.npy");
    npy(&p, (n, k), &uneven_rows_cost(n, k));
    let rows = |flags: &[&str]| row_sums(&plan(&p, flags), k);
    let balanced = max_dev(&rows(&[]), 1.0);
    assert!(balanced < 1e-4, "rows off by {balanced} without the flag");
    let loose = rows(&["--unbalanced-frames", "--lambda-frames", "0.01"]);
    // (much larger weights make 25 steps of the automatic size oscillate)
    let tight = rows(&["--unbalanced-frames", "--lambda-frames", "0.2"]);
    // the total mass stays N, but cheap (even) frames now take more than expensive (odd) ones
    for r in [&loose, &tight] {
        assert!((r.iter().sum::<f64>() - n as f64).abs() < 1e-2);
    }
    assert!(loose[0] > 1.1 && loose[1] < 0.9, "{:?}", &loose[..4]);
    let (dl, dt) = (max_dev(&loose, 1.0), max_dev(&tight, 1.0));
    assert!(dt < dl, "max |row sum − 1|: λ_f=0.2 {dt}, λ_f=0.01 {dl}");
    // the default λ_f sits between them
    let default = max_dev(&rows(&["--unbalanced-frames"]), 1.0);
    assert!(dt < default && default < dl, "λ_f=0.1: {default}");
    // without --unbalanced-frames, --lambda-frames would mean nothing: refused
    let e = fails(&["solve", s(&p), "--lambda-frames", "1"]);
    assert!(
        e.contains("--lambda-frames") && e.contains("--unbalanced-frames"),
        "{e}"
    );
    // with --balanced-actions the rows are projected to 1 anyway: refused
    let e = fails(&["solve", s(&p), "--unbalanced-frames", "--balanced-actions"]);
    assert!(
        e.contains("--unbalanced-frames") && e.contains("--balanced-actions"),
        "{e}"
    );
}

#[test]
fn iters_runs_more_mirror_descent_steps() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (n, k) = (120, 4);
    let p = tmp.path().join("c.npy");
    npy(&p, (n, k), &noisy_cost(n, k));
    let c = |it: &str| mean_confidence(&plan(&p, &["--iters", it]), k);
    let (one, few, many) = (c("1"), c("5"), c("50"));
    assert!(
        one < few && few < many,
        "mean confidence: 1 iteration {one}, 5 {few}, 50 {many}"
    );
}

#[test]
fn step_is_automatic_or_fixed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (n, k) = (120, 4);
    let cost = noisy_cost(n, k);
    let p = tmp.path().join("c.npy");
    npy(&p, (n, k), &cost);
    let base = ["--alpha", "0", "--eps", "0.07", "--lambda-actions", "0.1"];
    let with = |extra: &[&str]| {
        let mut f = base.to_vec();
        f.extend_from_slice(extra);
        plan(&p, &f)
    };
    // auto = 4 / max of the first gradient; with α = 0 and the uniform start that gradient is
    // C + ε·ln(1/(N·K)) + λ_a, so the same fixed step gives the same plan
    let max_c = cost.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let g1 = max_c + 0.07 * (1.0 / (n * k) as f64).ln() + 0.1;
    let step = format!("{}", 4.0 / g1);
    let auto = with(&[]);
    assert_eq!(auto, with(&["--step", "auto"]));
    let d = max_abs_diff(&auto, &with(&["--step", &step]));
    assert!(d < 1e-3, "fixed step {step} vs auto: {d}");
    // a tiny step barely leaves the uniform start; a larger one sharpens the plan further
    let tiny = with(&["--step", "1e-6"]);
    assert!(max_abs_diff(&tiny, &vec![1.0 / k as f32; n * k]) < 1e-4);
    assert!(max_abs_diff(&auto, &vec![1.0 / k as f32; n * k]) > 0.1);
    let (small, large) = (with(&["--step", "0.5"]), with(&["--step", "20"]));
    assert!(mean_confidence(&small, k) < mean_confidence(&large, k));
}

#[test]
fn rho_orders_a_flat_cost_along_the_diagonal() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (n, k) = (100, 5);
    let p = tmp.path().join("flat.npy");
    npy(&p, (n, k), &vec![0.5; n * k]);
    // a flat cost has no preference: one segment of action 0
    let flat = prediction(&p, &[]);
    assert!(flat.iter().all(|&x| x == 0), "{flat:?}");
    // the prior |i/N − k/K| makes it the diagonal: K segments in order
    let ordered = prediction(&p, &["--rho", "1"]);
    assert!(ordered.windows(2).all(|w| w[0] <= w[1]), "{ordered:?}");
    assert_eq!(segment_count(&ordered), k);
    assert_eq!((ordered[0], ordered[n - 1]), (0, k as i32 - 1));
}

/// A 60-frame video predicted as three blocks 0/1/2 of 20 frames (α = 0 and λ_a = 0: every frame
/// takes the argmax of its affinity), a mapping a/b/c/bg (bg = −1) and its folder.
struct Scored {
    _tmp: tempfile::TempDir,
    input: PathBuf,
    mapping: PathBuf,
    dir: PathBuf,
}

impl Scored {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().to_path_buf();
        let input = dir.join("v1.npy");
        npy(&input, (60, 3), &blocks(60, 3, 0.0));
        let mapping = dir.join("mapping.txt");
        std::fs::write(&mapping, "0 a\n1 b\n2 c\n-1 bg\n").expect("write");
        Scored {
            _tmp: tmp,
            input,
            mapping,
            dir,
        }
    }

    /// Writes a ground-truth file of `runs` (label, frames).
    fn gt(&self, name: &str, runs: &[(&str, usize)]) -> PathBuf {
        let text: String = runs
            .iter()
            .flat_map(|(l, c)| std::iter::repeat_n(format!("{l}\n"), *c))
            .collect();
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    /// `clot solve` with `flags` (after --affinity, α = 0, λ_a = 0) as JSON.
    fn json(&self, flags: &[&str]) -> serde_json::Value {
        let mut a = vec![
            "solve",
            s(&self.input),
            "--affinity",
            "--alpha",
            "0",
            "--lambda-actions",
            "0",
            "--json",
        ];
        a.extend_from_slice(flags);
        json(&a)
    }
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn gt_and_mapping_score_the_prediction() {
    let t = Scored::new();
    let unscored = t.json(&[]);
    assert!(unscored["scores"].is_null(), "{unscored}");
    let right = t.gt("right", &[("a", 20), ("b", 20), ("c", 20)]);
    let v = t.json(&["--gt", s(&right), "--mapping", s(&t.mapping)]);
    for level in ["activity", "video"] {
        assert_eq!(f(&v["scores"][level]["mof"]), 1.0, "{v}");
        assert_eq!(f(&v["scores"][level]["miou"]), 1.0, "{v}");
    }
    assert_eq!(v["scores"]["per_video"][0][0], "v1");
    // a ground truth with its middle third split in two scores 50 of 60 frames
    let split = t.gt("split", &[("a", 20), ("b", 10), ("c", 30)]);
    let v = t.json(&["--gt", s(&split), "--mapping", s(&t.mapping)]);
    assert!(
        (f(&v["scores"]["activity"]["mof"]) - 50.0 / 60.0).abs() < 1e-12,
        "{v}"
    );
    // the text output prints the score table
    let text = ok(&[
        "solve",
        s(&t.input),
        "--affinity",
        "--gt",
        s(&right),
        "--mapping",
        s(&t.mapping),
    ]);
    assert!(text.contains("MoF") && text.contains("activity"), "{text}");
}

#[test]
fn scoring_flags_without_gt_are_refused() {
    let t = Scored::new();
    let input = s(&t.input);
    let right = t.gt("right", &[("a", 20), ("b", 20), ("c", 20)]);
    for (flags, named) in [
        (vec!["--mapping", s(&t.mapping)], "--mapping"),
        (vec!["--exclude", "-1"], "--exclude"),
        (vec!["--f1-seed", "3"], "--f1-seed"),
        // explicitly passing the default is still a flag that would do nothing
        (vec!["--f1-seed", "0"], "--f1-seed"),
        (vec!["--f1-rng", "numpy"], "--f1-rng"),
    ] {
        let mut a = vec!["solve", input];
        a.extend_from_slice(&flags);
        let e = fails(&a);
        assert!(e.contains(named) && e.contains("--gt"), "{flags:?}: {e}");
    }
    // and --gt needs its mapping
    let e = fails(&["solve", input, "--gt", s(&right)]);
    assert!(e.contains("--mapping"), "{e}");
}

#[test]
fn exclude_drops_the_excluded_frames_from_the_metrics() {
    let t = Scored::new();
    // ten background frames inside the second block, which predicts action 1 there
    let gt = t.gt(
        "bg",
        &[("a", 20), ("b", 5), ("bg", 10), ("b", 5), ("c", 20)],
    );
    let base = ["--gt", s(&gt), "--mapping", s(&t.mapping)];
    let all = t.json(&base);
    let mut flags = base.to_vec();
    flags.extend_from_slice(&["--exclude", "-1"]);
    let kept = t.json(&flags);
    // 50 of 60 frames match with the background; 50 of the 50 remaining without it
    let mof = |v: &serde_json::Value| f(&v["scores"]["activity"]["mof"]);
    assert!((mof(&all) - 50.0 / 60.0).abs() < 1e-12, "{all}");
    assert_eq!(mof(&kept), 1.0, "{kept}");
    assert_eq!(f(&kept["scores"]["video"]["mof"]), 1.0, "{kept}");
    assert!(f(&kept["scores"]["activity"]["miou"]) > f(&all["scores"]["activity"]["miou"]));
    // excluding a class that is not there changes nothing
    let mut flags = base.to_vec();
    flags.extend_from_slice(&["--exclude", "7"]);
    assert_eq!(t.json(&flags)["scores"], all["scores"]);
}

#[test]
fn f1_seed_changes_the_sampled_f1_but_not_mof() {
    let t = Scored::new();
    // the first ground-truth segment (30 frames) is longer than prediction 0 (20 frames), so
    // about a third of its samples miss and whether a draw of 15 is a hit depends on the seed
    let gt = t.gt("gt", &[("a", 30), ("b", 10), ("c", 20)]);
    let run = |seed: &str| {
        t.json(&[
            "--gt",
            s(&gt),
            "--mapping",
            s(&t.mapping),
            "--f1-seed",
            seed,
        ])
    };
    let (x, y) = (run("0"), run("1"));
    let (sx, sy) = (&x["scores"], &y["scores"]);
    assert_eq!((&sx["f1_seed"], &sy["f1_seed"]), (&0.into(), &1.into()));
    for level in ["activity", "video"] {
        assert_eq!(sx[level]["mof"], sy[level]["mof"], "{level}");
        assert_eq!(sx[level]["miou"], sy[level]["miou"], "{level}");
        assert_ne!(sx[level]["f1"], sy[level]["f1"], "{level}");
    }
    // the default seed is 0
    assert_eq!(
        t.json(&["--gt", s(&gt), "--mapping", s(&t.mapping)])["scores"],
        x["scores"]
    );
}

#[test]
fn out_writes_readable_plan_and_segmentation() {
    let t = Scored::new();
    let work = tempfile::tempdir().expect("tmp");
    // without --out nothing is written (the command runs in an empty folder)
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_clot"))
        .args(["solve", s(&t.input), "--affinity"])
        .current_dir(work.path())
        .status()
        .expect("run clot");
    assert!(status.success());
    assert_eq!(std::fs::read_dir(work.path()).expect("ls").count(), 0);
    let out = work.path().join("solved");
    let gt = t.gt("right", &[("a", 20), ("b", 20), ("c", 20)]);
    let text = ok(&[
        "solve",
        s(&t.input),
        "--affinity",
        "--gt",
        s(&gt),
        "--mapping",
        s(&t.mapping),
        "--out",
        s(&out),
    ]);
    assert!(
        text.contains("plan.parquet") && text.contains("segmentation.parquet"),
        "{text}"
    );
    // the plan reads back as the solved plan, bit for bit
    let (kind, plans) = clot_datasets::read_frame_matrix(&out.join("plan.parquet")).expect("plan");
    assert_eq!(kind, "plan");
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].0, "v1");
    assert_eq!(
        plans[0].1.as_slice(),
        plan(&t.input, &["--affinity"]).as_slice()
    );
    // the segmentation is a Parquet file of the clot `predictions` table
    let seg = out.join("segmentation.parquet");
    let bytes = std::fs::read(&seg).expect("read segmentation");
    assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
    let e = clot_datasets::read_frame_matrix(&seg).expect_err("not a frame matrix");
    assert!(e.to_string().contains("predictions"), "{e}");
    // --json reports where it wrote
    let v = t.json(&["--out", s(&out)]);
    assert_eq!(v["out"], s(&out));
}

#[test]
fn json_prints_the_same_report_as_json() {
    let t = Scored::new();
    let text = ok(&[
        "solve",
        s(&t.input),
        "--affinity",
        "--alpha",
        "0",
        "--lambda-actions",
        "0",
    ]);
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("v1"))
        .expect("a row for v1")
        .split_whitespace()
        .collect();
    assert_eq!(row, ["v1", "60", "3"]);
    let v = t.json(&[]);
    assert_eq!(v["videos"], serde_json::json!([["v1", 60, 3]]));
}

#[test]
fn out_of_range_settings_are_refused_before_solving_naming_the_flag() {
    let tmp = tempfile::tempdir().expect("tmp");
    // a NaN in the matrix: an error about the flag shows it was checked before the solver ran
    let mut c = vec![0.5f32; 12];
    c[5] = f32::NAN;
    let p = tmp.path().join("nan.npy");
    npy(&p, (4, 3), &c);
    for (flags, message) in [
        (&["--eps", "0"][..], "--eps must be > 0, got 0"),
        (&["--eps", "-0.1"], "--eps must be > 0, got -0.1"),
        (&["--eps", "inf"], "--eps must be a finite number, got inf"),
        (&["--alpha", "1.5"], "--alpha must be in [0, 1], got 1.5"),
        (&["--alpha", "-0.5"], "--alpha must be in [0, 1], got -0.5"),
        (&["--radius", "-1"], "--radius must be ≥ 0, got -1"),
        (&["--radius", "0"], "--radius must be > 0 when --alpha > 0"),
        (
            &["--lambda-actions", "-1"],
            "--lambda-actions must be ≥ 0, got -1",
        ),
        (
            &["--unbalanced-frames", "--lambda-frames", "-2"],
            "--lambda-frames must be ≥ 0, got -2",
        ),
        (&["--rho", "-0.5"], "--rho must be ≥ 0, got -0.5"),
        (&["--rho", "NaN"], "--rho must be a finite number, got NaN"),
        (&["--iters", "0"], "--iters must be ≥ 1, got 0"),
        (
            &["--step", "0"],
            "--step must be `auto` or a number > 0, got 0",
        ),
        (
            &["--step", "-1"],
            "--step must be `auto` or a number > 0, got -1",
        ),
        (
            &["--step", "fast"],
            "--step `fast`: expected `auto` or a number > 0",
        ),
    ] {
        let mut a = vec!["solve", s(&p)];
        a.extend_from_slice(flags);
        let e = fails(&a);
        assert!(
            e.contains(message),
            "{flags:?}: expected `{message}` in {e}"
        );
    }
    // the boundaries themselves are accepted (on a good matrix)
    let good = tmp.path().join("ok.npy");
    npy(&good, (4, 3), &[0.5; 12]);
    ok(&[
        "solve",
        s(&good),
        "--alpha",
        "0",
        "--radius",
        "0",
        "--lambda-actions",
        "0",
        "--rho",
        "0",
    ]);
    ok(&[
        "solve",
        s(&good),
        "--alpha",
        "1",
        "--iters",
        "1",
        "--step",
        "0.5",
    ]);
}

#[test]
fn every_solve_flag_has_a_help_line_under_its_heading() {
    let cmd = Cli::command();
    let solve = cmd.find_subcommand("solve").expect("solve");
    let headings = ["Input", "Solver", "Scoring", "Output"];
    let mut seen = Vec::new();
    for arg in solve.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || arg.is_global_set() {
            continue;
        }
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        assert!(!help.trim().is_empty(), "{id} has no help line");
        let heading = arg.get_help_heading().unwrap_or("");
        assert!(headings.contains(&heading), "{id} is under `{heading}`");
        seen.push((heading, id.to_string()));
    }
    let under = |h: &str| -> Vec<&str> {
        seen.iter()
            .filter(|(x, _)| *x == h)
            .map(|(_, id)| id.as_str())
            .collect()
    };
    assert_eq!(under("Input"), ["input", "affinity", "cost"]);
    assert_eq!(
        under("Scoring"),
        ["gt", "mapping", "exclude", "f1_seed", "f1_rng"]
    );
    assert_eq!(under("Output"), ["out", "json"]);
    assert!(under("Solver").contains(&"lambda_frames"));
    let text = ok(&["solve", "--help"]);
    for h in headings {
        assert!(
            text.contains(&format!("{h}:")),
            "no `{h}:` heading in\n{text}"
        );
    }
    assert!(
        text.contains("weight of the KL relaxation of the frame marginal"),
        "{text}"
    );
}

#[test]
fn library_callers_get_the_same_refusals_as_the_command_line() {
    let t = Scored::new();
    let gt = t.gt("right", &[("a", 20), ("b", 20), ("c", 20)]);
    let refused = |edit: &dyn Fn(&mut SolveArgs), named: &str| {
        let mut a = parse(&t.input, &[]);
        edit(&mut a);
        let e = format!("{:#}", clot_pipeline::solve::solve(&a).expect_err(named));
        assert!(e.contains(named), "expected `{named}` in {e}");
    };
    refused(&|a| a.mapping = Some(t.mapping.clone()), "--mapping");
    refused(&|a| a.gt = Some(gt.clone()), "--gt");
    refused(&|a| a.exclude = Some(-1), "--exclude -1 needs --gt");
    refused(&|a| a.f1_seed = 4, "--f1-seed 4 needs --gt");
    refused(
        &|a| a.f1_rng = clot_stages::eval::F1Rng::Numpy,
        "--f1-rng numpy needs --gt",
    );
    refused(
        &|a| (a.cost, a.affinity) = (true, true),
        "--affinity and --cost",
    );
    refused(
        &|a| (a.balanced_actions, a.unbalanced_frames) = (true, true),
        "--balanced-actions and --unbalanced-frames",
    );
    refused(&|a| a.alpha = 2.0, "--alpha must be in [0, 1], got 2");
    refused(&|a| a.iters = 0, "--iters must be ≥ 1, got 0");
}

/// `--f1-rng numpy` prints the sampled F1 that ASOT's own evaluation prints for seed 0
/// (golden.json's `f1_sampled_seed0`), exactly, on both real examples.
#[test]
fn numpy_f1_rng_prints_the_reference_f1_on_both_examples() {
    let Some(root) = shared() else { return };
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("golden/golden.json")).expect("golden"),
    )
    .expect("json");
    let ex = root.join("data/asot_examples");
    let s = |p: &Path| p.to_str().expect("utf8 path").to_string();
    for (video, mapping) in [
        ("P36_webcam01_P36_salat", "mapping_salat.txt"),
        ("2020-04-19_14-03-25", "mapping_da.txt"),
    ] {
        let g = &golden[video];
        let num = |k: &str| g[k].as_f64().expect(k).to_string();
        let (input, gt, mapping) = (
            s(&ex.join(format!("affinity/{video}.npy"))),
            s(&ex.join(format!("gt/{video}"))),
            s(&ex.join(format!("gt/{mapping}"))),
        );
        let (eps, alpha, radius, lambda) = (
            num("eps"),
            num("alpha"),
            num("radius"),
            num("lambda_actions"),
        );
        let mut args = vec![
            "solve",
            &input,
            "--affinity",
            "--eps",
            &eps,
            "--alpha",
            &alpha,
            "--radius",
            &radius,
            "--lambda-actions",
            &lambda,
            "--gt",
            &gt,
            "--mapping",
            &mapping,
            "--f1-rng",
            "numpy",
        ];
        let text = ok(&args);
        args.push("--json");
        let v = json(&args);
        let want = g["f1_sampled_seed0"].as_f64().expect("f1");
        assert_eq!(
            v["scores"]["activity"]["f1"].as_f64(),
            Some(want),
            "{video}: {v}"
        );
        assert_eq!(v["scores"]["f1_rng"], "numpy", "{video}");
        assert!(text.contains(&format!("{want:.4}")), "{video}: {text}");
        assert!(text.contains("numpy RNG"), "{video}: {text}");
        // clot's own stream samples the same F1 differently
        args.truncate(args.len() - 3);
        args.push("--json");
        let own = json(&args);
        assert_ne!(
            own["scores"]["activity"]["f1"].as_f64(),
            Some(want),
            "{video}"
        );
        assert_eq!(
            own["scores"]["activity"]["mof"],
            v["scores"]["activity"]["mof"]
        );
    }
}
