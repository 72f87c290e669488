//! `clot-bench io`: reading a dataset. Generates a synthetic dataset (or uses `--data DIR`),
//! writes it in the standard layout and as Parquet, then times, each as the median of
//! `--repeats` runs:
//! * clot reading the `.txt` layout (parse + labels + validation) on 1 and on all rayon threads;
//! * clot reading the Parquet dataset;
//! * numpy's `loadtxt` on the same `.txt` files, and pyarrow reading the same Parquet file
//!   (`bench/python/io_peer.py`, run as a subprocess).
//!
//! Prints a table with throughput and the ratios; `--json` prints the figures as JSON.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::median_time;
use clot_datasets::{
    Dataset, ParquetCompression, ReadOptions, SynthConfig, generate, read_parquet, read_standard,
    write_parquet, write_standard,
};

pub struct Args {
    videos: usize,
    median_len: usize,
    dim: usize,
    repeats: usize,
    data: Option<PathBuf>,
    json: bool,
    python: String,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        videos: 60,
        median_len: 1000,
        dim: 64,
        repeats: 5,
        data: None,
        json: false,
        python: "python3".into(),
    };
    let mut it = args.iter().cloned();
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--videos" => a.videos = val()?.parse()?,
            "--median-len" => a.median_len = val()?.parse()?,
            "--dim" => a.dim = val()?.parse()?,
            "--repeats" => a.repeats = val()?.parse()?,
            "--data" => a.data = Some(PathBuf::from(val()?)),
            "--python" => a.python = val()?,
            "--json" => a.json = true,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            total += if p.is_dir() {
                dir_bytes(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            };
        }
    }
    total
}

/// Runs the benchmark with the arguments after `io`.
pub fn run(args: &[String]) -> Result<()> {
    let a = parse_args(args)?;
    let tmp = tempfile::tempdir()?;
    let (dir, ds): (PathBuf, Dataset) = match &a.data {
        Some(d) => (d.clone(), read_standard(d, &ReadOptions::default())?.0),
        None => {
            let cfg = SynthConfig {
                videos: a.videos,
                median_len: a.median_len,
                dim: a.dim,
                ..SynthConfig::demo()
            };
            let ds = generate(&cfg)?;
            let dir = tmp.path().join("synth");
            write_standard(&ds, &dir)?;
            (dir, ds)
        }
    };
    let pq = tmp.path().join("data.parquet");
    write_parquet(&ds, &pq, ParquetCompression::Snappy)?;
    let frames = ds.frames();
    let values = frames * ds.dim;
    let text_bytes = dir_bytes(&dir.join("features"));
    let pq_bytes = std::fs::metadata(&pq)?.len();
    // warm the page cache for everyone
    read_standard(&dir, &ReadOptions::default())?;

    let threads = rayon::current_num_threads();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let txt_1 = one.install(|| {
        median_time(a.repeats, || {
            read_standard(&dir, &ReadOptions::default())
                .map(|_| ())
                .map_err(Into::into)
        })
    })?;
    let txt_n = median_time(a.repeats, || {
        read_standard(&dir, &ReadOptions::default())
            .map(|_| ())
            .map_err(Into::into)
    })?;
    let pq_n = median_time(a.repeats, || {
        read_parquet(&pq, &[], &[]).map(|_| ()).map_err(Into::into)
    })?;

    let peer = Command::new(&a.python)
        .arg(crate::python_script("io_peer.py"))
        .arg(&dir)
        .arg(&pq)
        .arg(a.repeats.to_string())
        .output()
        .with_context(|| format!("running {} (needs numpy; pyarrow optional)", a.python))?;
    if !peer.status.success() {
        bail!(
            "python peer failed: {}",
            String::from_utf8_lossy(&peer.stderr)
        );
    }
    let peer: serde_json::Value = serde_json::from_slice(&peer.stdout)?;
    let loadtxt = peer["loadtxt_s"].as_f64().context("loadtxt_s")?;
    let pyarrow = peer["pyarrow_s"].as_f64();

    let mb = |b: u64, s: f64| b as f64 / s / 1e6;
    if a.json {
        let out = serde_json::json!({
            "videos": ds.videos.len(), "frames": frames, "dim": ds.dim, "text_bytes": text_bytes,
            "parquet_bytes": pq_bytes, "threads": threads, "clot_txt_1thread_s": txt_1,
            "clot_txt_s": txt_n, "clot_parquet_s": pq_n, "peer": peer,
            "ratio_txt_1thread": loadtxt / txt_1, "ratio_txt": loadtxt / txt_n,
            "ratio_parquet_vs_loadtxt": loadtxt / pq_n,
            "ratio_parquet_vs_pyarrow": pyarrow.map(|p| p / pq_n),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "dataset: {} videos, {} frames, D = {} ({:.1} MB of text, {:.1} MB Parquet), {} values; median of {} runs",
        ds.videos.len(),
        frames,
        ds.dim,
        text_bytes as f64 / 1e6,
        pq_bytes as f64 / 1e6,
        values,
        a.repeats
    );
    println!(
        "{:<44} {:>10} {:>12} {:>14}",
        "reader", "seconds", "MB/s (text)", "numpy ÷ this"
    );
    let row = |name: &str, s: f64| {
        println!(
            "{:<44} {:>10.4} {:>12.1} {:>13.1}×",
            name,
            s,
            mb(text_bytes, s),
            loadtxt / s
        )
    };
    row("numpy loadtxt (float64 → float32) + gt", loadtxt);
    row("clot .txt layout, 1 thread", txt_1);
    row(&format!("clot .txt layout, {threads} threads"), txt_n);
    row("clot Parquet (snappy)", pq_n);
    if let Some(p) = pyarrow {
        row("pyarrow read_table + to_numpy (same file)", p);
        println!("clot Parquet vs pyarrow: {:.2}× ", p / pq_n);
    }
    Ok(())
}
