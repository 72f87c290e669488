//! One function per subcommand. Each returns `anyhow::Result` with context that says what was
//! being done; `main` prints the chain.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clot_datasets::{
    DEMO, Dataset, ParquetCompression, ReadOptions, ReadReport, SynthConfig, generate, open_with,
    preset, write_parquet, write_standard,
};
use clot_stages::baselines::{equal_split, kmeans_labels};
use clot_stages::eval::activity_mof;
use serde::Serialize;

use crate::cli::{Compression, ConvertArgs, DatasetArgs, InspectArgs, SynthArgs};
use crate::progress::counter;
pub use crate::solve::solve;

/// Where the dataset argument points, and how to read it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// What `clot_datasets::open` receives.
    pub spec: String,
    pub opts: ReadOptions,
    pub preset: Option<&'static clot_datasets::Preset>,
}

/// Turns the dataset arguments into a spec and read options. `dim` is the feature dimension the
/// data must have when the settings fix it (an explicit `mlp`), with where it comes from; it
/// replaces the preset's D.
pub fn resolve(args: &DatasetArgs, dim: Option<(usize, String)>) -> Result<Resolved> {
    let preset = args.preset.as_deref().map(preset).transpose()?;
    let name = match (args.dataset.as_ref().or(args.dataset_flag.as_ref()), preset) {
        (Some(d), _) => d.clone(),
        (None, Some(p)) if p.name != DEMO => p.folder.to_string(),
        _ => DEMO.to_string(),
    };
    let spec = match &args.data {
        Some(root) if name != DEMO => root.join(&name).display().to_string(),
        _ => name,
    };
    let folder = (spec != DEMO || Path::new(&spec).exists()) && !spec.ends_with(".parquet");
    if !folder {
        // a Parquet file or the demo carries each video's activity and labels
        let what = if spec == DEMO {
            "the demo dataset"
        } else {
            "a Parquet dataset"
        };
        if args.activity_rule.is_some() {
            bail!(
                "--activity-rule applies to standard-layout folders; {what} stores each video's \
                 activity (fixed when it was written: give the rule to `clot convert`)"
            );
        }
        if args.skip_bad_videos {
            bail!(
                "--skip-bad-videos applies to standard-layout folders; {what} was checked when it \
                 was written"
            );
        }
    }
    let mut opts = preset.map(ReadOptions::for_preset).unwrap_or_default();
    if let Some(rule) = args.activity_rule {
        opts.activity_rule = rule.into();
    }
    if dim.is_some() {
        opts.expected_dim = dim;
    }
    opts.activities = args.activity.clone();
    opts.zero_non_finite = args.zero_non_finite;
    opts.skip_bad_videos = args.skip_bad_videos;
    Ok(Resolved { spec, opts, preset })
}

/// Reads the dataset with a progress counter and reports what the reader changed.
pub fn load(args: &DatasetArgs, quiet: bool) -> Result<(Dataset, ReadReport, Resolved)> {
    load_with_dim(args, quiet, None)
}

/// [`load`], requiring feature dimension `dim` (see [`resolve`]).
pub fn load_with_dim(
    args: &DatasetArgs,
    quiet: bool,
    dim: Option<(usize, String)>,
) -> Result<(Dataset, ReadReport, Resolved)> {
    let r = resolve(args, dim)?;
    let bar = counter(quiet, &format!("reading {}", r.spec));
    let (ds, report) = open_with(&r.spec, &r.opts, &|_| bar.inc(1))
        .with_context(|| format!("reading dataset {}", r.spec))?;
    bar.finish_and_clear();
    if report.zeroed_non_finite > 0 {
        eprintln!(
            "warning: replaced {} non-finite feature values by 0 (--zero-non-finite)",
            report.zeroed_non_finite
        );
    }
    for (video, why) in &report.skipped {
        eprintln!("warning: skipped video `{video}` (--skip-bad-videos): {why}");
    }
    if let Some(p) = r.preset
        && !Path::new(&r.spec).is_dir()
        && p.name != DEMO
        && !quiet
    {
        eprintln!(
            "note: preset `{}` with {}: activities and labels are the file's (fixed when it was \
             written); the preset supplies the settings",
            p.name, r.spec
        );
    }
    Ok((ds, report, r))
}

/// K of `activity` as a preset gives it, if the preset lists the activity.
pub fn preset_k(r: &Resolved, activity: &str) -> Option<usize> {
    r.preset.and_then(|p| p.actions_for(activity).ok())
}

/// The distinct ground-truth ids of `videos` other than `exclude`, in id order.
pub fn classes_present<'a>(
    videos: impl IntoIterator<Item = &'a clot_datasets::Video>,
    exclude: Option<i32>,
) -> Vec<i32> {
    let mut ids: Vec<i32> = videos
        .into_iter()
        .filter_map(|v| v.labels.as_ref())
        .flat_map(|l| l.as_slice().iter().copied())
        .filter(|&g| Some(g) != exclude)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Baseline scores of one activity.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub activity: String,
    pub k: usize,
    pub videos: usize,
    pub equal_split_mof: f64,
    pub kmeans_mof: f64,
}

/// Equal-split and k-means activity-level MoF for each activity of `ds`.
pub fn baselines(ds: &Dataset, r: &Resolved, k: Option<usize>, seed: u64) -> Result<Vec<Baseline>> {
    let mut by_activity: BTreeMap<&str, Vec<&clot_datasets::Video>> = BTreeMap::new();
    for v in &ds.videos {
        by_activity.entry(v.activity.as_str()).or_default().push(v);
    }
    let exclude = r.preset.and_then(|p| p.exclude);
    let mut out = Vec::new();
    for (activity, videos) in by_activity {
        // the baselines are scored over the videos with ground truth
        let videos: Vec<&clot_datasets::Video> =
            videos.into_iter().filter(|v| v.labels.is_some()).collect();
        if videos.is_empty() {
            bail!("activity `{activity}`: the baselines need ground truth, and no video has any");
        }
        let gts: Vec<&[i32]> = videos
            .iter()
            .filter_map(|v| v.labels.as_ref().map(|l| l.as_slice()))
            .collect();
        let k = k
            .or_else(|| preset_k(r, activity))
            .unwrap_or_else(|| classes_present(videos.iter().copied(), None).len());
        let eq: Vec<Vec<i32>> = videos.iter().map(|v| equal_split(v.frames(), k)).collect();
        let pairs: Vec<(&[i32], &[i32])> = eq
            .iter()
            .map(|p| p.as_slice())
            .zip(gts.iter().copied())
            .collect();
        let equal_split_mof = activity_mof(&pairs, exclude)?;
        let blocks: Vec<&[f32]> = videos.iter().map(|v| v.features.as_slice()).collect();
        let km = kmeans_labels(&blocks, ds.dim, k, seed)
            .with_context(|| format!("activity `{activity}`: fewer frames than K = {k}"))?;
        let pairs: Vec<(&[i32], &[i32])> = km
            .iter()
            .map(|p| p.as_slice())
            .zip(gts.iter().copied())
            .collect();
        let kmeans_mof = activity_mof(&pairs, exclude)?;
        out.push(Baseline {
            activity: activity.to_string(),
            k,
            videos: videos.len(),
            equal_split_mof,
            kmeans_mof,
        });
    }
    Ok(out)
}

/// `clot inspect`.
pub fn inspect(a: &InspectArgs, quiet: bool) -> Result<()> {
    let (ds, report, r) = load(&a.dataset, quiet || a.json)?;
    let s = ds.summary();
    let base = if a.baselines {
        Some(baselines(&ds, &r, a.k, a.seed.unwrap_or(0))?)
    } else {
        None
    };
    // K per activity as a training run would take it: the preset's, else the classes present
    let ks: BTreeMap<String, (usize, &str)> = s
        .activities
        .keys()
        .map(|act| {
            let k = match preset_k(&r, act) {
                Some(k) => (k, "preset"),
                None => (
                    classes_present(
                        ds.videos.iter().filter(|v| &v.activity == act),
                        r.preset.and_then(|p| p.exclude),
                    )
                    .len(),
                    "classes present",
                ),
            };
            (act.clone(), k)
        })
        .collect();
    if a.json {
        #[derive(Serialize)]
        struct Out<'a> {
            source: &'a str,
            summary: &'a clot_datasets::Summary,
            dropped_extra_rows: usize,
            zeroed_non_finite: usize,
            unlabelled_videos: &'a [String],
            skipped_videos: Vec<&'a str>,
            /// K per activity: (K, where it comes from)
            k: &'a BTreeMap<String, (usize, &'a str)>,
            baselines: Option<&'a Vec<Baseline>>,
        }
        let out = Out {
            source: &r.spec,
            summary: &s,
            dropped_extra_rows: report.dropped_extra_rows,
            zeroed_non_finite: report.zeroed_non_finite,
            unlabelled_videos: &report.unlabelled,
            skipped_videos: report.skipped.iter().map(|(v, _)| v.as_str()).collect(),
            k: &ks,
            baselines: base.as_ref(),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let acts: Vec<String> = s
        .activities
        .iter()
        .map(|(a, n)| {
            let (k, from) = ks.get(a).copied().unwrap_or((0, "?"));
            format!("{a} ({n} videos, K = {k} from the {from})")
        })
        .collect();
    println!("dataset     {} ({})", s.name, r.spec);
    println!(
        "videos      {}    frames {}    feature dim {}",
        s.videos, s.frames, s.dim
    );
    println!("activities  {}", acts.join(", "));
    println!(
        "lengths     min {}    median {}    max {}",
        s.min_len, s.median_len, s.max_len
    );
    println!(
        "classes     {} in the mapping, {} present: {:?}",
        s.mapping_classes,
        s.classes_present.len(),
        s.classes_present
    );
    println!("zero rows   {} in all", s.zero_rows);
    if !report.unlabelled.is_empty() {
        println!(
            "unlabelled  {} of {} videos have no ground truth",
            report.unlabelled.len(),
            s.videos
        );
    }
    if report.dropped_extra_rows > 0 {
        println!(
            "note        {} feature rows beyond the label count were dropped",
            report.dropped_extra_rows
        );
    }
    println!("\nlabel histogram (by id)");
    let total = s.frames.max(1) as f64;
    for (id, n) in &s.label_histogram {
        let label = format!("{id} {}", ds.mapping.name(*id).unwrap_or("?"));
        println!("  {label:<28} {n:>9}  {:>5.1}%", 100.0 * *n as f64 / total);
    }
    println!(
        "\n  {:<36} {:>8} {:>10} {:>14}",
        "video", "frames", "zero rows", "leading zeros"
    );
    for (name, n, z, lead) in &s.per_video {
        println!("  {name:<36} {n:>8} {z:>10} {lead:>14}");
    }
    if let Some(base) = base {
        println!("\nbaselines (activity-level MoF after Hungarian matching)");
        println!(
            "  {:<20} {:>4} {:>7} {:>12} {:>10}",
            "activity", "K", "videos", "equal split", "k-means"
        );
        for b in base {
            println!(
                "  {:<20} {:>4} {:>7} {:>12.4} {:>10.4}",
                b.activity, b.k, b.videos, b.equal_split_mof, b.kmeans_mof
            );
        }
    }
    Ok(())
}

fn compression(c: Compression) -> ParquetCompression {
    match c {
        Compression::Snappy => ParquetCompression::Snappy,
        Compression::Zstd => ParquetCompression::Zstd,
        Compression::None => ParquetCompression::None,
    }
}

fn file_size(p: &Path) -> String {
    match std::fs::metadata(p) {
        Ok(m) => format!("{:.1} MiB", m.len() as f64 / (1024.0 * 1024.0)),
        Err(_) => "?".into(),
    }
}

/// `clot convert`.
pub fn convert(a: &ConvertArgs, quiet: bool) -> Result<()> {
    if a.out.extension().and_then(|e| e.to_str()) != Some("parquet") {
        bail!(
            "--out {}: the output of convert is a Parquet file and must end in .parquet",
            a.out.display()
        );
    }
    let t = Instant::now();
    let (ds, _, r) = load(&a.dataset, quiet)?;
    let read_s = t.elapsed().as_secs_f64();
    let bar = counter(quiet, &format!("writing {}", a.out.display()));
    write_parquet(&ds, &a.out, compression(a.compression))
        .with_context(|| format!("writing {}", a.out.display()))?;
    bar.finish_and_clear();
    println!(
        "converted {} → {}: {} videos, {} frames, D = {} ({}; read {:.2} s, total {:.2} s)",
        r.spec,
        a.out.display(),
        ds.videos.len(),
        ds.frames(),
        ds.dim,
        file_size(&a.out),
        read_s,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The synthetic configuration the `synth` arguments describe.
pub fn synth_config(a: &SynthArgs) -> Result<SynthConfig> {
    let mut cfg = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<SynthConfig>(&text)
                .with_context(|| format!("parsing {}", path.display()))?
        }
        None => SynthConfig::demo(),
    };
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    if let Some(v) = a.videos {
        cfg.videos = v;
    }
    if let Some(v) = a.actions {
        cfg.actions = v;
    }
    if let Some(v) = a.dim {
        cfg.dim = v;
    }
    if let Some(v) = a.median_len {
        cfg.median_len = v;
    }
    if let Some(v) = a.noise {
        cfg.noise_std = v;
    }
    if let Some(v) = &a.activity {
        cfg.activity = v.clone();
    }
    Ok(cfg)
}

/// `clot synth`.
pub fn synth(a: &SynthArgs, quiet: bool) -> Result<()> {
    let cfg = synth_config(a)?;
    let out: &PathBuf = &a.out;
    let parquet = out.extension().and_then(|e| e.to_str()) == Some("parquet");
    if a.compression.is_some() && !parquet {
        bail!(
            "--compression applies to a Parquet output (OUT ending in .parquet); {} is a folder \
             of text files",
            out.display()
        );
    }
    if a.activities == 0 {
        bail!("--activities must be at least 1");
    }
    let bar = counter(quiet, "generating");
    let ds = if a.activities == 1 {
        generate(&cfg).context("generating the synthetic dataset")?
    } else {
        // one dataset per activity, each seeded apart; same classes, so one mapping
        let mut all: Option<Dataset> = None;
        for i in 0..a.activities {
            let one = SynthConfig {
                activity: format!("{}{i}", cfg.activity),
                seed: cfg.seed + i as u64,
                ..cfg.clone()
            };
            let d = generate(&one).context("generating the synthetic dataset")?;
            bar.inc(1);
            match &mut all {
                None => all = Some(d),
                Some(acc) => acc.videos.extend(d.videos),
            }
        }
        all.context("no activity generated")?
    };
    if parquet {
        write_parquet(
            &ds,
            out,
            compression(a.compression.unwrap_or(Compression::Snappy)),
        )
        .with_context(|| format!("writing {}", out.display()))?;
    } else {
        if out.exists()
            && std::fs::read_dir(out)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            bail!(
                "--out {}: folder exists and is not empty; choose a new folder",
                out.display()
            );
        }
        write_standard(&ds, out).with_context(|| format!("writing {}", out.display()))?;
    }
    bar.finish_and_clear();
    println!(
        "wrote {}: {} videos, {} frames, D = {}, K = {} ({} activit{} `{}`{}, seed {})",
        out.display(),
        ds.videos.len(),
        ds.frames(),
        ds.dim,
        cfg.actions + 1,
        a.activities,
        if a.activities == 1 { "y" } else { "ies" },
        cfg.activity,
        if a.activities == 1 { "" } else { "0…" },
        cfg.seed
    );
    Ok(())
}
