//! `clot-bench modes`: every graph of SPEC §4 (clot, asot and the four ablations) on the same
//! data and seeds, through the `clot` binary: activity- and video-level MoF, F1 and mIoU as
//! mean ± std over seeds, next to the reference scores in `golden/` when the data is the
//! Breakfast coffee set; and the time per epoch of each stage for clot and asot.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

struct Args {
    data: Option<PathBuf>,
    seeds: u64,
    extra: Vec<String>,
    json: bool,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        data: None,
        seeds: 5,
        extra: Vec::new(),
        json: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = Some(PathBuf::from(value()?)),
            "--seeds" => a.seeds = value()?.parse()?,
            "--json" => a.json = true,
            "--" => a.extra = it.by_ref().cloned().collect(),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

const GRAPHS: &[(&str, &str, &str)] = &[
    ("clot", "clot", ""),
    ("asot", "asot", ""),
    ("without swd", "clot", "swd"),
    ("without dispatch", "clot", "dispatch"),
    ("without decoder", "clot", "decoder"),
    ("without refine", "clot", "refine"),
];

const METRICS: &[(&str, &str, &str)] = &[
    ("activity", "mof", "test_mof_full"),
    ("activity", "f1", "test_f1_full"),
    ("activity", "miou", "test_miou_full"),
    ("video", "mof", "test_mof_per"),
    ("video", "f1", "test_f1_per"),
    ("video", "miou", "test_miou_per"),
];

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

pub fn run(args: &[String]) -> Result<()> {
    let a = parse_args(args)?;
    let clot = crate::clot_binary()?;
    let out = tempfile::tempdir()?;
    let dataset: Vec<String> = match &a.data {
        Some(d) => [
            "--data",
            &d.display().to_string(),
            "--dataset",
            "Breakfast",
            "--preset",
            "breakfast",
            "--activity",
            "coffee",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        None => vec!["demo".into()],
    };
    let mut table = Vec::new();
    for (label, mode, without) in GRAPHS {
        let mut runs = Vec::new();
        for seed in 0..a.seeds {
            let mut cmd = Command::new(&clot);
            cmd.args(["-q", "train"]).args(&dataset);
            cmd.args(["--mode", mode, "--seed", &seed.to_string(), "--json"]);
            if !without.is_empty() {
                cmd.args(["--without", without]);
            }
            cmd.args(&a.extra);
            cmd.arg("--out")
                .arg(out.path().join(format!("{mode}-{without}-{seed}")));
            let o = cmd.output()?;
            if !o.status.success() {
                bail!(
                    "{label} seed {seed}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            runs.push(serde_json::from_slice::<serde_json::Value>(&o.stdout)?);
        }
        table.push((label, runs));
    }
    let golden = a.data.as_ref().map(|d| d.join("../golden"));
    let read_golden = |name: &str| -> Option<serde_json::Value> {
        let p = golden.as_ref()?.join(name);
        serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
    };
    let refs = [
        ("reference ASOT", read_golden("asot_coffee_seeds.json")),
        ("reference CLOT", read_golden("clot_coffee_seeds.json")),
    ];
    let mut json_rows = Vec::new();
    println!(
        "| graph | act MoF | act F1 | act mIoU | video MoF | video F1 | video mIoU | train s/seed |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (label, runs) in &table {
        let mut cells = Vec::new();
        let mut row = serde_json::Map::new();
        row.insert("graph".into(), label.to_string().into());
        for (level, m, _) in METRICS {
            let v: Vec<f64> = runs
                .iter()
                .filter_map(|r| r["scores"][level][m].as_f64())
                .collect();
            let (mu, sd) = mean_std(&v);
            cells.push(format!("{mu:.3} ± {sd:.3}"));
            row.insert(
                format!("{level}_{m}"),
                serde_json::json!({"mean": mu, "std": sd, "seeds": v}),
            );
        }
        let t: Vec<f64> = runs.iter().filter_map(|r| r["train_s"].as_f64()).collect();
        let (tm, _) = mean_std(&t);
        row.insert("train_s".into(), tm.into());
        println!("| {label} | {} | {tm:.2} |", cells.join(" | "));
        json_rows.push(serde_json::Value::Object(row));
    }
    for (label, g) in &refs {
        if let Some(g) = g {
            let cells: Vec<String> = METRICS
                .iter()
                .map(|(_, _, key)| {
                    let s = &g["summary"][key];
                    match (s["mean"].as_f64(), s["std"].as_f64()) {
                        (Some(m), Some(sd)) => format!("{m:.3} ± {sd:.3}"),
                        _ => "–".into(),
                    }
                })
                .collect();
            println!("| {label} | {} | |", cells.join(" | "));
        }
    }
    // time per epoch and stage, clot vs asot, from seed 0's profile
    println!("\ntime per epoch (training; seed 0), ms:");
    let per_epoch = |runs: &[serde_json::Value]| -> Vec<(String, f64)> {
        let epochs = runs[0]["config"]["epochs"].as_f64().unwrap_or(1.0);
        runs[0]["profile"]
            .as_array()
            .map(|p| {
                p.iter()
                    .map(|s| {
                        (
                            s["stage"].as_str().unwrap_or("?").to_string(),
                            s["seconds"].as_f64().unwrap_or(0.0) * 1e3 / epochs,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (c, s) = (per_epoch(&table[0].1), per_epoch(&table[1].1));
    println!("{:<24} {:>9} {:>9}", "stage", "clot", "asot");
    for (name, v) in &c {
        let other = s
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| format!("{v:9.2}"))
            .unwrap_or_else(|| format!("{:>9}", "–"));
        println!("{name:<24} {v:9.2} {other}");
    }
    let total = |runs: &[serde_json::Value]| {
        runs[0]["train_s"].as_f64().unwrap_or(0.0) * 1e3
            / runs[0]["config"]["epochs"].as_f64().unwrap_or(1.0)
    };
    println!(
        "{:<24} {:9.2} {:9.2}",
        "whole epoch (wall)",
        total(&table[0].1),
        total(&table[1].1)
    );
    if a.json {
        println!("{}", serde_json::to_string_pretty(&json_rows)?);
    }
    Ok(())
}
