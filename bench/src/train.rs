//! `clot-bench train [--mode asot|clot]`: the whole Breakfast coffee run (breakfast preset: 15 epochs, validation
//! crops scored every `--val-every` epochs, then the full-length test) by the `clot` binary and
//! by the PyTorch peer `python/<mode>_train_peer.py`, each as a fresh process (start-up and imports
//! included, as the reference's 8.5 s per seed was measured), alternating, per seed. Reports the
//! median wall time of each, the ratio, the full-length evaluation alone, peak memory and clot's
//! time per stage. `--layout DIR --activity A --actions K` runs a standard-layout folder instead
//! (e.g. a large `clot synth` set), `--epochs` and `--threads` set both sides alike (the peer
//! through PEER_EPOCHS and torch's thread count).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

struct Args {
    data: PathBuf,
    /// A standard-layout folder instead of `data/Breakfast` coffee, with its activity and K.
    layout: Option<PathBuf>,
    activity: String,
    actions: usize,
    epochs: Option<usize>,
    threads: Option<usize>,
    /// MLP widths for clot (`D,128,40` for features of another D than the preset's 64; the peer
    /// takes D from the data).
    mlp: Option<String>,
    seeds: u64,
    repeats: usize,
    val_every: usize,
    python: String,
    mode: String,
    json: bool,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        data: clot_datasets::shared::folder().join("data"),
        layout: None,
        activity: "coffee".into(),
        actions: 7,
        epochs: None,
        threads: None,
        mlp: None,
        seeds: 5,
        repeats: 1,
        val_every: 1,
        python: "python3".into(),
        mode: "asot".into(),
        json: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = PathBuf::from(value()?),
            "--layout" => a.layout = Some(PathBuf::from(value()?)),
            "--activity" => a.activity = value()?.clone(),
            "--actions" => a.actions = value()?.parse()?,
            "--epochs" => a.epochs = Some(value()?.parse()?),
            "--threads" => a.threads = Some(value()?.parse()?),
            "--mlp" => a.mlp = Some(value()?.clone()),
            "--seeds" => a.seeds = value()?.parse()?,
            "--repeats" => a.repeats = value()?.parse()?,
            "--val-every" => a.val_every = value()?.parse()?,
            "--python" => a.python = value()?.clone(),
            "--mode" => a.mode = value()?.clone(),
            "--json" => a.json = true,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(args: &[String]) -> Result<()> {
    let a = parse_args(args)?;
    if !matches!(a.mode.as_str(), "asot" | "clot") {
        bail!("--mode must be asot or clot");
    }
    let clot = crate::clot_binary()?;
    let (data_args, root) = crate::dataset_args(a.layout.as_deref(), &a.data)?;
    let out = tempfile::tempdir()?;
    let threads = a.threads.unwrap_or_else(rayon::current_num_threads);
    let epochs = a.epochs.unwrap_or(15);
    let mlp: Vec<String> = a
        .mlp
        .iter()
        .flat_map(|m| ["--mlp".to_string(), m.clone()])
        .collect();
    let (mut ours, mut peer) = (Vec::new(), Vec::new());
    let mut rows = Vec::new();
    for seed in 0..a.seeds {
        for _ in 0..a.repeats {
            let t = Instant::now();
            let o = Command::new(&clot)
                .args(["-q", "train"])
                .args(&data_args)
                .args(["--preset", "breakfast", "--activity", &a.activity])
                .args(["--actions", &a.actions.to_string()])
                .args(["--epochs", &epochs.to_string()])
                .args(["--threads", &threads.to_string()])
                .args(&mlp)
                .args([
                    "--seed",
                    &seed.to_string(),
                    "--val-every",
                    &a.val_every.to_string(),
                ])
                .args(["--mode", &a.mode])
                .arg("--out")
                .arg(out.path().join(format!("seed{seed}")))
                .arg("--json")
                .output()?;
            let wall = t.elapsed().as_secs_f64();
            if !o.status.success() {
                bail!("clot failed: {}", String::from_utf8_lossy(&o.stderr));
            }
            let r: serde_json::Value = serde_json::from_slice(&o.stdout)?;
            ours.push(wall);
            let t = Instant::now();
            let p = Command::new(&a.python)
                .arg(crate::python_script(&format!("{}_train_peer.py", a.mode)))
                .arg(&root)
                .args([&a.activity, &a.actions.to_string(), &seed.to_string()])
                .arg(threads.to_string())
                .env("PEER_EPOCHS", epochs.to_string())
                .arg(a.val_every.to_string())
                .output()
                .with_context(|| format!("running {} (needs torch, numpy, scipy)", a.python))?;
            let pwall = t.elapsed().as_secs_f64();
            if !p.status.success() {
                bail!(
                    "PyTorch peer failed: {}",
                    String::from_utf8_lossy(&p.stderr)
                );
            }
            let pr: serde_json::Value = serde_json::from_slice(&p.stdout)?;
            peer.push(pwall);
            rows.push(serde_json::json!({
                "seed": seed, "clot_wall_s": wall, "peer_wall_s": pwall,
                "clot_train_s": r["train_s"], "clot_eval_s": r["eval_s"],
                "peer_train_s": pr["train_s"], "peer_eval_s": pr["eval_s"], "peer_import_s": pr["import_s"],
                "clot_peak_rss_mib": r["peak_rss_mib"], "peer_peak_rss_mib": pr["peak_rss_mib"],
                "clot_mof": r["scores"]["activity"]["mof"], "peer_mof": pr["mof"],
                "clot_profile": r["profile"],
            }));
        }
    }
    let (mo, mp) = (median(ours), median(peer));
    let col = |k: &str| median(rows.iter().filter_map(|r| r[k].as_f64()).collect());
    let summary = serde_json::json!({
        "threads": threads, "val_every": a.val_every, "mode": a.mode,
        "clot_wall_s": mo, "peer_wall_s": mp, "speedup_wall": mp / mo,
        "clot_train_s": col("clot_train_s"), "peer_train_s": col("peer_train_s"),
        "speedup_train": col("peer_train_s") / col("clot_train_s"),
        "clot_eval_s": col("clot_eval_s"), "peer_eval_s": col("peer_eval_s"),
        "epochs": epochs, "activity": a.activity, "actions": a.actions,
        "peer_import_s": col("peer_import_s"),
        "clot_peak_rss_mib": col("clot_peak_rss_mib"), "peer_peak_rss_mib": col("peer_peak_rss_mib"),
        "runs": rows,
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!(
        "{} / {} (K = {}), breakfast preset ({epochs} epochs + full-length test), mode {}, seeds 0..{}, {} run(s) each, {threads} threads, {} vectors, validation every {} epoch(s)",
        root.display(),
        a.activity,
        a.actions,
        a.mode,
        a.seeds,
        a.repeats,
        clot_stages::ot::simd::instruction_set(),
        a.val_every
    );
    println!("{:<28} {:>10} {:>10} {:>9}", "", "clot", "PyTorch", "ratio");
    let line = |name: &str, o: f64, p: f64| {
        println!("{name:<28} {o:>10.3} {p:>10.3} {:>8.1}×", p / o);
    };
    line("wall per run, s (median)", mo, mp);
    line(
        "training loop, s (median)",
        col("clot_train_s"),
        col("peer_train_s"),
    );
    line(
        "full-length evaluation, s",
        col("clot_eval_s"),
        col("peer_eval_s"),
    );
    line(
        "peak memory, MiB (median)",
        col("clot_peak_rss_mib"),
        col("peer_peak_rss_mib"),
    );
    println!("PyTorch imports alone: {:.3} s", col("peer_import_s"));
    println!("\nper seed: seed, clot MoF, PyTorch MoF, clot s, PyTorch s");
    for r in &rows {
        println!(
            "  {} {:.4} {:.4} {:.3} {:.3}",
            r["seed"],
            r["clot_mof"].as_f64().unwrap_or(f64::NAN),
            r["peer_mof"].as_f64().unwrap_or(f64::NAN),
            r["clot_wall_s"].as_f64().unwrap_or(f64::NAN),
            r["peer_wall_s"].as_f64().unwrap_or(f64::NAN)
        );
    }
    if let Some(profile) = rows.first().and_then(|r| r["clot_profile"].as_array()) {
        println!("\nclot time per stage (seed 0):");
        for p in profile {
            println!(
                "  {:<18} {:>8.4} s {:>6} calls",
                p["stage"].as_str().unwrap_or("?"),
                p["seconds"].as_f64().unwrap_or(f64::NAN),
                p["calls"]
            );
        }
    }
    Ok(())
}
