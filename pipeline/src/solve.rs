//! `clot solve`: the ASOT solver on a user's matrix, with optional scoring and Parquet output.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arrow_array::{ArrayRef, Float32Array, Int32Array, RecordBatch, StringArray, UInt32Array};
use clot_datasets::mapping::{Mapping, parse_labels};
use clot_datasets::npy::parse_npy;
use clot_datasets::{frame_matrix_batch, read_frame_matrix, write_table};
use clot_schemas::{F32Matrix, KEY_ADAPTER, KEY_DEVICE, KEY_MATRIX_KIND, Table};
use clot_stages::eval::{F1Rng, Metrics, activity_level_with, segmental_extras, video_level_with};
use clot_stages::gpu::Compute;
use clot_stages::ot::cost::add_temporal_prior;
use clot_stages::ot::{AsotParams, StepSize, solve_batch_on};
use serde::Serialize;

use crate::cli::SolveArgs;

/// One solved video.
#[derive(Debug, Clone)]
pub struct Solved {
    pub name: String,
    pub plan: F32Matrix,
    pub prediction: Vec<i32>,
    pub confidence: Vec<f32>,
}

/// Scores of a solved input with ground truth.
#[derive(Debug, Clone, Serialize)]
pub struct Scores {
    pub activity: Metrics,
    pub video: Metrics,
    pub per_video: Vec<(String, Metrics)>,
    pub segmental_f1_10_25_50: [f64; 3],
    pub edit: f64,
    pub f1_seed: u64,
    /// The sampled F1's random stream.
    pub f1_rng: F1Rng,
}

/// `value` of `flag` must be finite and satisfy `ok`, described by `range` in the error.
fn check(flag: &str, value: f32, ok: bool, range: &str) -> Result<()> {
    if !value.is_finite() {
        bail!("{flag} must be a finite number, got {value}");
    }
    if !ok {
        bail!("{flag} must be {range}, got {value}");
    }
    Ok(())
}

/// Flags that only mean something together. clap enforces these on the command line; this
/// guards callers that build [`SolveArgs`] themselves.
fn check_combinations(a: &SolveArgs) -> Result<()> {
    if a.affinity && a.cost {
        bail!("--affinity and --cost exclude each other");
    }
    if a.balanced_actions && a.unbalanced_frames {
        bail!("--balanced-actions and --unbalanced-frames exclude each other");
    }
    match (&a.gt, &a.mapping) {
        (Some(gt), None) => bail!("--gt {} needs --mapping", gt.display()),
        (None, Some(mapping)) => bail!("--mapping {} needs --gt", mapping.display()),
        _ => {}
    }
    if a.gt.is_none() {
        if let Some(x) = a.exclude {
            bail!("--exclude {x} needs --gt");
        }
        if a.f1_seed != 0 {
            bail!("--f1-seed {} needs --gt", a.f1_seed);
        }
        if a.f1_rng != F1Rng::ChaCha8 {
            bail!("--f1-rng {} needs --gt", a.f1_rng);
        }
    }
    Ok(())
}

/// The solver settings, range-checked before anything is read or solved: each error names its
/// flag and value.
fn params(a: &SolveArgs) -> Result<AsotParams> {
    check_combinations(a)?;
    check("--eps", a.eps, a.eps > 0.0, "> 0")?;
    check(
        "--alpha",
        a.alpha,
        (0.0..=1.0).contains(&a.alpha),
        "in [0, 1]",
    )?;
    check("--radius", a.radius, a.radius >= 0.0, "≥ 0")?;
    if a.radius == 0.0 && a.alpha > 0.0 {
        bail!(
            "--radius must be > 0 when --alpha > 0 (got --radius 0 with --alpha {}); \
             pass --alpha 0 to drop the temporal term",
            a.alpha
        );
    }
    check(
        "--lambda-actions",
        a.lambda_actions,
        a.lambda_actions >= 0.0,
        "≥ 0",
    )?;
    check(
        "--lambda-frames",
        a.lambda_frames,
        a.lambda_frames >= 0.0,
        "≥ 0",
    )?;
    check("--rho", a.rho, a.rho >= 0.0, "≥ 0")?;
    if a.iters == 0 {
        bail!("--iters must be ≥ 1, got 0");
    }
    let step = match a.step.as_str() {
        "auto" => StepSize::Auto,
        s => {
            let v: f32 = s
                .parse()
                .with_context(|| format!("--step `{s}`: expected `auto` or a number > 0"))?;
            check("--step", v, v > 0.0, "`auto` or a number > 0")?;
            StepSize::Fixed(v)
        }
    };
    Ok(AsotParams {
        eps: a.eps,
        alpha: a.alpha,
        radius: a.radius,
        lambda_actions: a.lambda_actions,
        iters: a.iters,
        step,
        balanced_actions: a.balanced_actions,
        unbalanced_frames: a.unbalanced_frames,
        lambda_frames: a.lambda_frames,
        ..AsotParams::default()
    })
}

/// Reads the input as (video name, matrix) pairs and whether it holds affinities.
fn read_input(path: &Path) -> Result<(bool, Vec<(String, F32Matrix)>)> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let m = parse_npy(&bytes, path)?;
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("video")
                .to_string();
            let what = format!("{}", path.display());
            Ok((
                false,
                vec![(name, F32Matrix::from_vec(m.values, m.cols, &what)?)],
            ))
        }
        Some("parquet") => {
            let (kind, videos) = read_frame_matrix(path)?;
            match kind.as_str() {
                "cost" | "affinity" => Ok((kind == "affinity", videos)),
                k => bail!(
                    "{}: holds `{k}` matrices; clot solve needs costs or affinities",
                    path.display()
                ),
            }
        }
        _ => bail!("{}: expected a .npy or .parquet file", path.display()),
    }
}

/// Solves every video of the input on `compute`.
pub fn solve_input(a: &SolveArgs, compute: &Compute) -> Result<Vec<Solved>> {
    let p = params(a)?;
    let (is_affinity, videos) = read_input(&a.input)?;
    // --cost and --affinity override the file's `clot.matrix_kind` (clap makes them exclusive)
    let affinity = !a.cost && (a.affinity || is_affinity);
    let mut out = Vec::with_capacity(videos.len());
    for (name, m) in videos {
        let (n, k) = (m.rows(), m.cols());
        let mut cost: Vec<f32> = if affinity {
            m.as_slice().iter().map(|x| 1.0 - x).collect()
        } else {
            m.as_slice().to_vec()
        };
        add_temporal_prior(&mut cost, n, k, a.rho);
        let plan = solve_batch_on(compute, &cost, 1, n, k, &[n], &p).with_context(|| {
            format!(
                "{}: video `{name}` (on {})",
                a.input.display(),
                compute.adapter()
            )
        })?;
        let mut prediction = Vec::with_capacity(n);
        let mut confidence = Vec::with_capacity(n);
        for row in plan.chunks(k) {
            let (j, v) = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (j, &v)| if v > b.1 { (j, v) } else { b },
                );
            prediction.push(j as i32);
            confidence.push(v);
        }
        let plan = F32Matrix::from_vec(plan, k, &name)?;
        out.push(Solved {
            name,
            plan,
            prediction,
            confidence,
        });
    }
    Ok(out)
}

/// Ground truth for each solved video, checked against its length.
fn ground_truth(a: &SolveArgs, solved: &[Solved]) -> Result<Option<Vec<Vec<i32>>>> {
    let (Some(gt), Some(mapping)) = (&a.gt, &a.mapping) else {
        return Ok(None);
    };
    let map = Mapping::read(mapping)?;
    let lookup = map.lookup();
    let mut out = Vec::with_capacity(solved.len());
    for s in solved {
        let path = if gt.is_dir() {
            gt.join(&s.name)
        } else {
            gt.clone()
        };
        if gt.is_file() && solved.len() > 1 {
            bail!(
                "--gt {} is one file but the input has {} videos; pass a folder",
                gt.display(),
                solved.len()
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading ground truth {}", path.display()))?;
        let labels = parse_labels(&text, &lookup, None, &path, mapping)?;
        if labels.len() != s.prediction.len() {
            bail!(
                "{}: {} labels, but the matrix of video `{}` has {} frames",
                path.display(),
                labels.len(),
                s.name,
                s.prediction.len()
            );
        }
        out.push(labels);
    }
    Ok(Some(out))
}

/// Scores the solved videos against their ground truth.
pub fn score(
    solved: &[Solved],
    gts: &[Vec<i32>],
    exclude: Option<i32>,
    f1_seed: u64,
    f1_rng: F1Rng,
) -> Result<Scores> {
    let pairs: Vec<(&[i32], &[i32])> = solved
        .iter()
        .map(|s| s.prediction.as_slice())
        .zip(gts.iter().map(|g| g.as_slice()))
        .collect();
    let activity = activity_level_with(&pairs, exclude, f1_seed, f1_rng)?;
    let (video, per) = video_level_with(&pairs, exclude, f1_seed, f1_rng)?;
    let (segmental, edit) = segmental_extras(&pairs, exclude)?;
    Ok(Scores {
        activity,
        video,
        per_video: solved.iter().map(|s| s.name.clone()).zip(per).collect(),
        segmental_f1_10_25_50: segmental,
        edit,
        f1_seed,
        f1_rng,
    })
}

fn write_outputs(
    dir: &Path,
    solved: &[Solved],
    gts: Option<&Vec<Vec<i32>>>,
    compute: &Compute,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let k = solved.first().map_or(1, |s| s.plan.cols()) as i32;
    let device = [
        (KEY_DEVICE.to_string(), compute.name().to_string()),
        (KEY_ADAPTER.to_string(), compute.adapter()),
    ];
    let mut schema = Table::FrameMatrix.schema(k);
    schema
        .metadata
        .insert(KEY_MATRIX_KIND.to_string(), "plan".to_string());
    schema.metadata.extend(device.clone());
    let schema = Arc::new(schema);
    let batches = solved
        .iter()
        .map(|s| frame_matrix_batch(Arc::clone(&schema), &s.name, &s.plan))
        .collect::<Result<Vec<_>, _>>()?;
    write_table(&dir.join("plan.parquet"), schema, &batches)?;
    let mut schema = Table::Predictions.schema(0);
    schema.metadata.extend(device);
    let schema = Arc::new(schema);
    let mut batches = Vec::new();
    for (i, s) in solved.iter().enumerate() {
        let n = s.prediction.len();
        let gt: Int32Array = match gts {
            Some(g) => Int32Array::from(g[i].clone()),
            None => Int32Array::new_null(n),
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                s.name.as_str(),
                n,
            ))),
            Arc::new(UInt32Array::from_iter_values(0..n as u32)),
            Arc::new(Int32Array::from(s.prediction.clone())),
            Arc::new(gt),
            Arc::new(Float32Array::from(s.confidence.clone())),
        ];
        batches.push(RecordBatch::try_new(Arc::clone(&schema), columns)?);
    }
    write_table(&dir.join("segmentation.parquet"), schema, &batches)?;
    Ok(())
}

/// `clot solve`.
pub fn solve(a: &SolveArgs) -> Result<()> {
    let compute = Compute::resolve(a.device)?;
    let solved = solve_input(a, &compute)?;
    let gts = ground_truth(a, &solved)?;
    let scores = match &gts {
        Some(g) => Some(score(&solved, g, a.exclude, a.f1_seed, a.f1_rng)?),
        None => None,
    };
    if let Some(dir) = &a.out {
        write_outputs(dir, &solved, gts.as_ref(), &compute)?;
    }
    let segs: Vec<(String, usize, usize)> = solved
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.prediction.len(),
                clot_stages::eval::segments(&s.prediction).len(),
            )
        })
        .collect();
    if a.json {
        let v = serde_json::json!({
            "videos": segs,
            "scores": scores,
            "out": a.out,
            "device": compute.name(),
            "adapter": compute.adapter(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("solved on {}\n", compute.adapter());
    println!("{:<36} {:>8} {:>9}", "video", "frames", "segments");
    for (name, n, s) in &segs {
        println!("{name:<36} {n:>8} {s:>9}");
    }
    if let Some(s) = scores {
        println!("\n{:<14} {:>8} {:>8} {:>8}", "level", "MoF", "F1", "mIoU");
        println!(
            "{:<14} {:>8.4} {:>8.4} {:>8.4}",
            "activity", s.activity.mof, s.activity.f1, s.activity.miou
        );
        println!(
            "{:<14} {:>8.4} {:>8.4} {:>8.4}",
            "video", s.video.mof, s.video.f1, s.video.miou
        );
        let f = s.segmental_f1_10_25_50;
        println!(
            "\nextras: segmental F1@10/25/50 = {:.1} / {:.1} / {:.1}, Edit = {:.1} (F1 sampled with seed {}, {} RNG)",
            f[0], f[1], f[2], s.edit, s.f1_seed, s.f1_rng
        );
    }
    if let Some(dir) = &a.out {
        println!(
            "\nwrote {} and {}",
            dir.join("plan.parquet").display(),
            dir.join("segmentation.parquet").display()
        );
    }
    Ok(())
}
