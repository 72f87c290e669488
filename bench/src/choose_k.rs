//! `clot-bench choose-k`: how well `--actions auto` finds K, through the `clot` binary.
//!
//! For every K of `--ks` (default 4, 7, 10, 14, 20) and `--sets` generator seeds from
//! `--first-seed` (default 0; a later first seed gives sets no setting was chosen on), a
//! synthetic set of standard difficulty (the demo generator with K − 1 steps plus background) is
//! written, trained once with `--actions auto` and once with the true K (the same run when
//! K̂ = K). It prints K̂ − K, both MoFs and both wall times per set, then the share of sets with
//! |K̂ − K| ≤ 1, the distribution of K̂ − K and the mean MoF difference. With `--data DIR` it also runs the
//! Breakfast coffee videos with `auto`, the preset's K and the number of classes present. With
//! `--seed-spread` each set is also trained with the true K and training seed 1, and the share of
//! sets whose MoF moves by at most 0.02 with the seed alone is printed beside the share that K̂
//! moves by at most 0.02: the yardstick for the second.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

struct Args {
    ks: Vec<usize>,
    sets: u64,
    first_seed: u64,
    data: Option<PathBuf>,
    extra: Vec<String>,
    json: bool,
    seed_spread: bool,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        ks: vec![4, 7, 10, 14, 20],
        sets: 5,
        first_seed: 0,
        data: None,
        extra: Vec::new(),
        json: false,
        seed_spread: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--ks" => {
                a.ks = value()?
                    .split(',')
                    .map(|k| k.trim().parse().with_context(|| format!("--ks: `{k}`")))
                    .collect::<Result<_>>()?
            }
            "--sets" => a.sets = value()?.parse()?,
            "--first-seed" => a.first_seed = value()?.parse()?,
            "--data" => a.data = Some(PathBuf::from(value()?)),
            "--json" => a.json = true,
            "--seed-spread" => a.seed_spread = true,
            "--" => a.extra = it.by_ref().cloned().collect(),
            other => bail!(
                "unknown flag {other} (flags: --ks 4,7 --sets N --first-seed S --data DIR \
                 --seed-spread --json -- CLOT FLAGS)"
            ),
        }
    }
    Ok(a)
}

/// One `clot run … --json`: its report.
fn run_json(
    clot: &Path,
    data: &[String],
    actions: &str,
    extra: &[String],
    out: &Path,
) -> Result<Value> {
    let mut cmd = Command::new(clot);
    cmd.arg("run")
        .args(data)
        .args([
            "--actions",
            actions,
            "--json",
            "--plot-videos",
            "0",
            "--out",
        ])
        .arg(out)
        .args(extra);
    let o = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !o.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    serde_json::from_slice(&o.stdout).with_context(|| format!("parsing the report of {cmd:?}"))
}

fn num(v: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, p| &v[*p])
        .as_f64()
        .unwrap_or(f64::NAN)
}

#[derive(Debug, serde::Serialize)]
struct SetResult {
    k: usize,
    seed: u64,
    k_hat: usize,
    mof_auto: f64,
    mof_true: f64,
    choose_s: f64,
    wall_auto_s: f64,
    wall_true_s: f64,
    /// With `--seed-spread`: MoF with the true K and training seed 1 (the others use clot's
    /// default seed, 0), the yardstick for the MoF difference K̂ makes.
    mof_true_seed1: Option<f64>,
}

pub fn run(args: &[String]) -> Result<()> {
    let a = parse_args(args)?;
    if a.seed_spread
        && a.extra
            .iter()
            .any(|x| x == "--seed" || x.starts_with("--seed="))
    {
        bail!("--seed-spread trains with seeds 0 and 1 itself: drop --seed from the clot flags");
    }
    let clot = crate::clot_binary()?;
    let dir = tempfile::tempdir()?;
    let mut rows = Vec::new();
    if !a.json {
        println!(
            "{:>3} {:>4} {:>4} {:>6} {:>9} {:>9} {:>9} {:>10} {:>10}",
            "K", "seed", "K̂", "K̂−K", "MoF K̂", "MoF K", "choose s", "wall K̂ s", "wall K s"
        );
    }
    for &k in &a.ks {
        for seed in a.first_seed..a.first_seed + a.sets {
            let file = dir.path().join(format!("K{k}_s{seed}.parquet"));
            let synth = Command::new(&clot)
                .args(["synth", "--quiet", "--actions", &(k - 1).to_string()])
                .args(["--seed", &seed.to_string(), "--out"])
                .arg(&file)
                .output()?;
            if !synth.status.success() {
                bail!(
                    "clot synth for K = {k}, seed {seed} failed: {}",
                    String::from_utf8_lossy(&synth.stderr)
                );
            }
            let data = vec![file.display().to_string()];
            let t = std::time::Instant::now();
            let auto = run_json(&clot, &data, "auto", &a.extra, &dir.path().join("auto"))?;
            let wall_auto = t.elapsed().as_secs_f64();
            let k_hat = auto["config"]["actions"].as_u64().unwrap_or(0) as usize;
            let (truth, wall_true) = if k_hat == k {
                (auto.clone(), f64::NAN)
            } else {
                let t = std::time::Instant::now();
                let r = run_json(
                    &clot,
                    &data,
                    &k.to_string(),
                    &a.extra,
                    &dir.path().join("true"),
                )?;
                (r, t.elapsed().as_secs_f64())
            };
            let seed1 = if a.seed_spread {
                let mut extra = a.extra.clone();
                extra.extend(["--seed".to_string(), "1".to_string()]);
                let dir = dir.path().join("seed1");
                let r = run_json(&clot, &data, &k.to_string(), &extra, &dir)?;
                Some(num(&r, &["scores", "activity", "mof"]))
            } else {
                None
            };
            let r = SetResult {
                k,
                seed,
                k_hat,
                mof_auto: num(&auto, &["scores", "activity", "mof"]),
                mof_true: num(&truth, &["scores", "activity", "mof"]),
                choose_s: num(&auto, &["k_choice", "seconds"]),
                wall_auto_s: wall_auto,
                wall_true_s: wall_true,
                mof_true_seed1: seed1,
            };
            if !a.json {
                println!(
                    "{:>3} {:>4} {:>4} {:>+6} {:>9.4} {:>9.4} {:>9.2} {:>10.2} {:>10.2}",
                    r.k,
                    r.seed,
                    r.k_hat,
                    r.k_hat as i64 - r.k as i64,
                    r.mof_auto,
                    r.mof_true,
                    r.choose_s,
                    r.wall_auto_s,
                    r.wall_true_s
                );
                if let Some(m) = r.mof_true_seed1 {
                    println!("{:>24} MoF K, training seed 1: {m:.4}", "");
                }
            }
            rows.push(r);
        }
    }
    let n = rows.len().max(1) as f64;
    let within = rows.iter().filter(|r| r.k_hat.abs_diff(r.k) <= 1).count();
    let mut diffs: Vec<i64> = rows.iter().map(|r| r.k_hat as i64 - r.k as i64).collect();
    diffs.sort_unstable();
    let mof_gap: Vec<f64> = rows.iter().map(|r| r.mof_true - r.mof_auto).collect();
    let mean_gap = mof_gap.iter().sum::<f64>() / n;
    let close = mof_gap.iter().filter(|g| g.abs() <= 0.02).count();
    // how far the training seed alone moves MoF at the true K: the noise the K̂ difference is
    // measured against
    let spread: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.mof_true_seed1.map(|m| (m - r.mof_true).abs()))
        .collect();
    let spread_close = spread.iter().filter(|g| **g <= 0.02).count();
    let spread_sets = spread.len();
    let spread_median = crate::median(spread);
    let coffee = match &a.data {
        Some(d) => Some(coffee(&clot, d, &a.extra, dir.path())?),
        None => None,
    };
    if a.json {
        let v = serde_json::json!({
            "sets": rows, "within_one": within, "k_hat_minus_k": diffs,
            "mean_mof_true_minus_auto": mean_gap, "mof_within_0_02": close, "coffee": coffee,
            "seed_spread_within_0_02": a.seed_spread.then_some(spread_close),
            "seed_spread_median": a.seed_spread.then_some(spread_median),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "\n|K̂ − K| ≤ 1 on {within} of {} sets ({:.0} %); K̂ − K sorted: {diffs:?}",
        rows.len(),
        100.0 * within as f64 / n
    );
    println!(
        "MoF with K minus MoF with K̂: mean {mean_gap:+.4}; within 0.02 on {close} of {} sets",
        rows.len()
    );
    if a.seed_spread {
        println!(
            "at the true K, training seeds 0 and 1: MoF within 0.02 on {spread_close} of \
             {spread_sets} sets, \
             median |difference| {spread_median:.4}",
        );
    }
    if let Some(c) = coffee {
        println!("\ncoffee (Breakfast, 5 videos):");
        for (what, k, mof) in c {
            println!("  {what:<28} K = {k:>2}  activity MoF {mof:.4}");
        }
    }
    Ok(())
}

/// The coffee videos with `auto`, the preset's K (7) and the classes present (5).
fn coffee(
    clot: &Path,
    data: &Path,
    extra: &[String],
    dir: &Path,
) -> Result<Vec<(String, usize, f64)>> {
    let (args, _) = crate::dataset_args(None, data)?;
    let mut out = Vec::new();
    for (what, actions) in [
        ("auto", "auto"),
        ("preset K", "7"),
        ("classes present", "5"),
    ] {
        let r = run_json(
            clot,
            &args,
            actions,
            extra,
            &dir.join(format!("coffee-{what}")),
        )?;
        out.push((
            what.to_string(),
            r["config"]["actions"].as_u64().unwrap_or(0) as usize,
            num(&r, &["scores", "activity", "mof"]),
        ));
    }
    Ok(out)
}
