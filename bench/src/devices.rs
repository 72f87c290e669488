//! `clot-bench devices`: whole training runs with `--device cpu` and `--device wgpu` side by side,
//! over seeds, in clot and asot mode: the first steps' losses (max relative difference over the
//! seeds), the mean metrics of each device with their standard errors, and the wall time per run.
//!
//! Default: the Breakfast coffee videos under `--data` (the breakfast preset), seeds 0–4, the
//! first 10 steps. Runs go one at a time with `--threads` threads each (default 1), so that the
//! times compare. On a software adapter (lavapipe) the wgpu times only show that the path works.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use arrow_array::Array;

use crate::fidelity::mean_se;
use crate::time_once;

struct Args {
    data: PathBuf,
    layout: Option<PathBuf>,
    activity: String,
    actions: usize,
    seeds: u64,
    steps: usize,
    threads: usize,
    modes: Vec<String>,
    /// `--mlp` and `--epochs` for `clot train` (the preset's when absent).
    mlp: Option<String>,
    epochs: Option<usize>,
    json: bool,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        data: clot_datasets::shared::folder().join("data"),
        layout: None,
        activity: "coffee".into(),
        actions: 7,
        seeds: 5,
        steps: 10,
        threads: 1,
        modes: vec!["clot".into(), "asot".into()],
        mlp: None,
        epochs: None,
        json: false,
    };
    let mut it = args.iter().cloned();
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = PathBuf::from(val()?),
            "--layout" => a.layout = Some(PathBuf::from(val()?)),
            "--activity" => a.activity = val()?,
            "--actions" => a.actions = val()?.parse()?,
            "--seeds" => a.seeds = val()?.parse()?,
            "--steps" => a.steps = val()?.parse()?,
            "--threads" => a.threads = val()?.parse()?,
            "--mode" => a.modes = val()?.split(',').map(str::to_string).collect(),
            "--mlp" => a.mlp = Some(val()?),
            "--epochs" => a.epochs = Some(val()?.parse()?),
            "--json" => a.json = true,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// What one run gave.
struct Run {
    losses: Vec<f64>,
    metrics: [f64; 3],
    seconds: f64,
    adapter: String,
}

fn train(
    clot: &Path,
    data: &[String],
    a: &Args,
    mode: &str,
    seed: u64,
    device: &str,
    out: &Path,
) -> Result<Run> {
    let mut cmd = Command::new(clot);
    cmd.args(["-q", "--threads", &a.threads.to_string(), "train"])
        .args(data)
        .args(["--preset", "breakfast", "--activity", &a.activity])
        .args(["--actions", &a.actions.to_string(), "--mode", mode])
        .args(["--seed", &seed.to_string(), "--device", device, "--json"])
        .arg("--out")
        .arg(out);
    if let Some(mlp) = &a.mlp {
        cmd.args(["--mlp", mlp]);
    }
    if let Some(e) = a.epochs {
        cmd.args(["--epochs", &e.to_string()]);
    }
    let mut output = None;
    let seconds = time_once(|| -> Result<()> {
        output = Some(cmd.output()?);
        Ok(())
    })?;
    let output = output.context("no output")?;
    if !output.status.success() {
        bail!(
            "clot train failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let m = |k: &str| v["scores"]["activity"][k].as_f64().unwrap_or(f64::NAN);
    let file = std::fs::File::open(out.join("training_curve.parquet"))?;
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
    let mut losses = Vec::new();
    for b in reader {
        let b = b?;
        let col = b
            .column_by_name("loss")
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<arrow_array::Float64Array>()
                    .cloned()
            })
            .context("training_curve.parquet has no f64 loss column")?;
        losses.extend((0..col.len()).map(|i| col.value(i)));
    }
    Ok(Run {
        losses,
        metrics: [m("mof"), m("f1"), m("miou")],
        seconds,
        adapter: v["adapter"].as_str().unwrap_or("").to_string(),
    })
}

pub fn run(args: &[String]) -> Result<()> {
    let a = parse_args(args)?;
    let clot = crate::clot_binary()?;
    let (data, _) = crate::dataset_args(a.layout.as_deref(), &a.data)?;
    let tmp = tempfile::tempdir()?;
    let mut rows = Vec::new();
    let mut adapter = String::new();
    for mode in &a.modes {
        let (mut cpu, mut gpu) = (Vec::new(), Vec::new());
        for seed in 0..a.seeds {
            for (device, into) in [("cpu", &mut cpu), ("wgpu", &mut gpu)] {
                let out = tmp.path().join(format!("{mode}-{seed}-{device}"));
                let r = train(&clot, &data, &a, mode, seed, device, &out)
                    .with_context(|| format!("{mode} mode, seed {seed}, --device {device}"))?;
                if device == "wgpu" {
                    adapter = r.adapter.clone();
                }
                if !a.json {
                    eprintln!("{mode} seed {seed} {device}: {:.2} s", r.seconds);
                }
                into.push(r);
            }
        }
        let worst_loss = cpu
            .iter()
            .zip(&gpu)
            .flat_map(|(c, g)| c.losses.iter().zip(&g.losses).take(a.steps))
            .map(|(x, y)| (x - y).abs() / x.abs().max(1e-12))
            .fold(0f64, f64::max);
        let metric = |runs: &[Run], j: usize| {
            mean_se(&runs.iter().map(|r| r.metrics[j]).collect::<Vec<_>>())
        };
        let secs = |runs: &[Run]| crate::median(runs.iter().map(|r| r.seconds).collect());
        rows.push(serde_json::json!({
            "mode": mode,
            "loss_max_rel_diff_first_steps": worst_loss,
            "cpu": {"mof": metric(&cpu, 0), "f1": metric(&cpu, 1), "miou": metric(&cpu, 2), "median_s": secs(&cpu)},
            "wgpu": {"mof": metric(&gpu, 0), "f1": metric(&gpu, 1), "miou": metric(&gpu, 2), "median_s": secs(&gpu)},
            "max_abs_metric_diff": (0..3).map(|j| (metric(&cpu, j).0 - metric(&gpu, j).0).abs()).fold(0f64, f64::max),
        }));
    }
    if a.json {
        let v = serde_json::json!({"adapter": adapter, "seeds": a.seeds, "steps": a.steps, "threads": a.threads, "rows": rows});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{} / {}: seeds 0–{}, {} thread(s) per run, wgpu on {adapter}; mean ± s.e. over seeds",
        a.layout
            .as_ref()
            .map_or("Breakfast".into(), |p| p.display().to_string()),
        a.activity,
        a.seeds.saturating_sub(1),
        a.threads
    );
    println!(
        "{:<6} {:<6} {:>17} {:>17} {:>17} {:>10} {:>22}",
        "mode",
        "device",
        "MoF",
        "F1",
        "mIoU",
        "median s",
        format!("loss Δ, first {} steps", a.steps)
    );
    for r in &rows {
        for device in ["cpu", "wgpu"] {
            let d = &r[device];
            let f = |k: &str| {
                let x = &d[k];
                format!(
                    "{:.4} ± {:.4}",
                    x[0].as_f64().unwrap_or(f64::NAN),
                    x[1].as_f64().unwrap_or(f64::NAN)
                )
            };
            let loss = if device == "wgpu" {
                format!(
                    "{:.1e}",
                    r["loss_max_rel_diff_first_steps"]
                        .as_f64()
                        .unwrap_or(f64::NAN)
                )
            } else {
                String::new()
            };
            println!(
                "{:<6} {:<6} {:>17} {:>17} {:>17} {:>10.2} {:>22}",
                r["mode"].as_str().unwrap_or(""),
                device,
                f("mof"),
                f("f1"),
                f("miou"),
                d["median_s"].as_f64().unwrap_or(f64::NAN),
                loss
            );
        }
    }
    Ok(())
}
