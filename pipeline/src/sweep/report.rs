//! `clot report`: a results folder of `clot sweep` → configurations, the best of them, tables and
//! pictures.
//!
//! * Every `trial.parquet` below the folder is read (any depth, so several sweeps and shards sit
//!   side by side). A failed trial is counted and listed, never averaged.
//! * A **configuration** is the trials of one sweep, dataset, activity and preset whose settings
//!   are equal but for `seed` and `f1_seed`. Per configuration: the seeds, mean and sample
//!   standard deviation (n − 1; none for one seed) of the activity- and video-level MoF, F1 and
//!   mIoU, the mean final loss and wall time, and the share of collapsed runs.
//! * The **swept settings** of a sweep are the setting columns whose value varies across its
//!   trials (failed ones included), seed aside: the columns of the tables and the x axes of the
//!   pictures.
//! * The **best configuration**, within a sweep, per activity and overall, two ways: by ground
//!   truth (the highest mean of `--by`, the oracle choice papers report) and label-free (the lowest
//!   mean final training loss, chosen within each graph, i.e. mode and removed stages, because the
//!   losses of different graphs are different sums of terms and not comparable). Overall means the
//!   mean over activities of a configuration run on every activity of the dataset (configurations
//!   that differ only in activity); with one activity it is that activity's choice.
//! * Written to OUT (default `RESULTS/report`): `configurations.parquet` and `.csv` (one row per
//!   configuration, settings as typed columns), `best.csv`, and per sweep and activity
//!   (`OUT/<sweep>/<activity>/`): `<by>_vs_<setting>.png/.svg` for each swept setting (mean ± std
//!   over seeds; one line per value of the other swept settings; categories as points),
//!   `training_curves.png/.svg` (the loss per step of the best configuration's seeds) and, where the
//!   sweep ran with `--predictions`, `segments_seed<k>.png/.svg` (ground truth vs prediction of
//!   the best configuration, clusters coloured by their activity-level Hungarian match) and,
//!   where trials estimated K (`actions = "auto"`), `k_choice.png/.svg` (ln W of the
//!   segment means against K, one curve per K range, K̂ marked).
//!
//! Cost: O(trials) small Parquet reads and O(trials · settings) grouping; the pictures read the
//! best configurations' curves and predictions only.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch,
    StringArray, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema};
use clot_schemas::Table;
use serde::Serialize;

use crate::cli::ReportArgs;
use crate::output::write_text;
use crate::plot;
use crate::train::VideoResult;

/// The metrics averaged over seeds: (column of `trial.parquet`, label).
pub const METRICS: [(&str, &str); 6] = [
    ("mof", "MoF"),
    ("f1", "F1"),
    ("miou", "mIoU"),
    ("video_mof", "video MoF"),
    ("video_f1", "video F1"),
    ("video_miou", "video mIoU"),
];

/// Settings that tell the trials of one configuration apart.
const SEED_KEYS: [&str; 2] = ["seed", "f1_seed"];

/// What the label-free choice means, printed with it.
pub const LABEL_FREE_NOTE: &str = "label-free: the lowest mean final training loss, chosen within \
     each graph (mode and removed stages), because the losses of different graphs sum different \
     terms and are not comparable";

/// Videos drawn per segments picture.
const PLOT_VIDEOS: usize = 6;

/// The label of metric `key` ("MoF" for `mof`).
pub fn metric_label(key: &str) -> &str {
    METRICS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(key, |(_, l)| l)
}

fn metric_index(key: &str) -> Result<usize> {
    METRICS.iter().position(|(k, _)| *k == key).ok_or_else(|| {
        anyhow!(
            "--by {key}: expected one of {}",
            METRICS.map(|m| m.0).join(", ")
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Settings and trials

/// A setting's value as a `trial.parquet` column holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Setting {
    Int(i64),
    Float32(f32),
    Float64(f64),
    Bool(bool),
    Text(String),
    Null,
}

impl Setting {
    /// The value as a number (`0.15` for the f32 0.15, not 0.15000000596), if it is one.
    pub fn number(&self) -> Option<f64> {
        match self {
            Setting::Int(i) => Some(*i as f64),
            // the f32's shortest decimal form, read as f64
            Setting::Float32(f) => f.to_string().parse().ok(),
            Setting::Float64(f) => Some(*f),
            _ => None,
        }
    }

    /// As written in tables and pictures: `0.15`, `1e30`, `clot`, `none` for an empty list.
    pub fn text(&self) -> String {
        let float = |v: f64| {
            let a = v.abs();
            if a != 0.0 && !(1e-3..1e5).contains(&a) {
                format!("{v:e}")
            } else {
                v.to_string()
            }
        };
        match self {
            Setting::Int(i) => i.to_string(),
            Setting::Float32(_) | Setting::Float64(_) => {
                self.number().map_or_else(String::new, float)
            }
            Setting::Bool(b) => b.to_string(),
            Setting::Text(s) if s.is_empty() => "none".into(),
            Setting::Text(s) => s.clone(),
            Setting::Null => "–".into(),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Setting::Null => 0,
            Setting::Bool(_) => 1,
            Setting::Int(_) | Setting::Float32(_) | Setting::Float64(_) => 2,
            Setting::Text(_) => 3,
        }
    }

    /// A total order: nulls, flags, numbers by value, text.
    pub fn order(&self, other: &Setting) -> Ordering {
        match (self, other) {
            (Setting::Bool(a), Setting::Bool(b)) => a.cmp(b),
            (Setting::Text(a), Setting::Text(b)) => a.cmp(b),
            _ => match (self.number(), other.number()) {
                (Some(a), Some(b)) => a.total_cmp(&b),
                _ => self.rank().cmp(&other.rank()),
            },
        }
    }
}

impl Serialize for Setting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Setting::Int(i) => s.serialize_i64(*i),
            Setting::Float32(_) | Setting::Float64(_) => match self.number() {
                Some(v) if v.is_finite() => s.serialize_f64(v),
                _ => s.serialize_none(),
            },
            Setting::Bool(b) => s.serialize_bool(*b),
            Setting::Text(t) => s.serialize_str(t),
            Setting::Null => s.serialize_none(),
        }
    }
}

/// One row of a `trial.parquet`.
#[derive(Debug, Clone)]
pub struct TrialRecord {
    /// The file it was read from.
    pub path: PathBuf,
    pub sweep: String,
    pub trial: String,
    pub status: String,
    pub error: Option<String>,
    pub dataset: String,
    pub activity: String,
    pub preset: Option<String>,
    /// In the order of [`METRICS`].
    pub metrics: [Option<f64>; 6],
    pub collapsed: Option<bool>,
    pub final_loss: Option<f64>,
    pub wall_s: Option<f64>,
    /// The range K̂ was estimated over (`actions = "auto"`; absent in sweeps before the column).
    pub k_range: Option<String>,
    /// Every setting column, by name.
    pub settings: BTreeMap<String, Setting>,
}

impl TrialRecord {
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }

    pub fn seed(&self) -> Option<i64> {
        match self.settings.get("seed") {
            Some(Setting::Int(s)) => Some(*s),
            _ => None,
        }
    }

    /// The folder holding the trial's other files.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    fn setting(&self, name: &str) -> Setting {
        self.settings.get(name).cloned().unwrap_or(Setting::Null)
    }
}

/// Every `trial.parquet` below `results`, sorted.
pub fn find_trials(results: &Path) -> Result<Vec<PathBuf>> {
    if !results.is_dir() {
        bail!(
            "results folder {} does not exist or is not a folder",
            results.display()
        );
    }
    let mut out = Vec::new();
    let mut todo = vec![results.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("reading folder {}", dir.display()))?;
        for e in entries {
            let e = e.with_context(|| format!("reading folder {}", dir.display()))?;
            let ty = e
                .file_type()
                .with_context(|| format!("reading {}", e.path().display()))?;
            if ty.is_dir() {
                todo.push(e.path());
            } else if e.file_name() == "trial.parquet" {
                out.push(e.path());
            }
        }
    }
    out.sort();
    if out.is_empty() {
        bail!(
            "no trial.parquet under {} (expected the --out folder of `clot sweep`, holding \
             sweep=NAME/trial=ID/trial.parquet)",
            results.display()
        );
    }
    Ok(out)
}

/// Every trial below `results` (see [`find_trials`]).
pub fn read_trials(results: &Path) -> Result<Vec<TrialRecord>> {
    let mut out = Vec::new();
    for p in find_trials(results)? {
        out.extend(read_trial_file(&p)?);
    }
    Ok(out)
}

/// All rows of a Parquet file.
fn read_batches(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))?
        .build()
        .with_context(|| format!("reading {}", path.display()))?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .with_context(|| format!("reading {}", path.display()))
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    b.column_by_name(name)
        .ok_or_else(|| anyhow!("no column `{name}`"))
}

fn wrong_type(name: &str, expected: &str, found: &DataType) -> anyhow::Error {
    anyhow!("column `{name}` is {found}, expected {expected}")
}

fn text_at(b: &RecordBatch, name: &str, row: usize) -> Result<Option<String>> {
    let c = column(b, name)?;
    let s = c
        .as_string_opt::<i32>()
        .ok_or_else(|| wrong_type(name, "Utf8", c.data_type()))?;
    Ok(s.is_valid(row).then(|| s.value(row).to_string()))
}

fn required_text(b: &RecordBatch, name: &str, row: usize) -> Result<String> {
    text_at(b, name, row)?.ok_or_else(|| anyhow!("column `{name}` is null in row {row}"))
}

/// A Float64 (or Float32) column's value; `None` when null or the column is absent.
fn f64_at(b: &RecordBatch, name: &str, row: usize) -> Result<Option<f64>> {
    let Some(c) = b.column_by_name(name) else {
        return Ok(None);
    };
    if !c.is_valid(row) {
        return Ok(None);
    }
    if let Some(a) = c.as_primitive_opt::<Float64Type>() {
        return Ok(Some(a.value(row)));
    }
    if let Some(a) = c.as_primitive_opt::<Float32Type>() {
        return Ok(Some(f64::from(a.value(row))));
    }
    Err(wrong_type(name, "Float64", c.data_type()))
}

fn setting_at(c: &ArrayRef, name: &str, row: usize) -> Result<Setting> {
    if !c.is_valid(row) {
        return Ok(Setting::Null);
    }
    Ok(match c.data_type() {
        DataType::Int64 => Setting::Int(c.as_primitive::<Int64Type>().value(row)),
        DataType::Int32 => Setting::Int(i64::from(c.as_primitive::<Int32Type>().value(row))),
        DataType::UInt32 => Setting::Int(i64::from(c.as_primitive::<UInt32Type>().value(row))),
        DataType::UInt64 => Setting::Int(c.as_primitive::<UInt64Type>().value(row) as i64),
        DataType::Float32 => Setting::Float32(c.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => Setting::Float64(c.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => Setting::Bool(c.as_boolean().value(row)),
        DataType::Utf8 => Setting::Text(c.as_string::<i32>().value(row).to_string()),
        DataType::Null => Setting::Null,
        other => {
            return Err(wrong_type(
                name,
                "Int64, Float32, Boolean or Utf8 (a setting)",
                other,
            ));
        }
    })
}

/// The rows of one `trial.parquet`.
pub fn read_trial_file(path: &Path) -> Result<Vec<TrialRecord>> {
    let batches = read_batches(path)?;
    trial_rows(path, &batches).with_context(|| format!("reading {}", path.display()))
}

fn trial_rows(path: &Path, batches: &[RecordBatch]) -> Result<Vec<TrialRecord>> {
    let base: BTreeSet<String> = Table::SweepTrial
        .fields(0)
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        let setting_names: Vec<&String> = schema
            .fields()
            .iter()
            .map(|f| f.name())
            .filter(|n| !base.contains(*n))
            .collect();
        for row in 0..b.num_rows() {
            let metrics = {
                let mut m = [None; 6];
                for (i, (k, _)) in METRICS.iter().enumerate() {
                    m[i] = f64_at(b, k, row)?;
                }
                m
            };
            let collapsed = match b.column_by_name("collapsed") {
                None => None,
                Some(c) => {
                    let a = c
                        .as_boolean_opt()
                        .ok_or_else(|| wrong_type("collapsed", "Boolean", c.data_type()))?;
                    a.is_valid(row).then(|| a.value(row))
                }
            };
            let mut settings = BTreeMap::new();
            for name in &setting_names {
                let c = column(b, name)?;
                settings.insert((*name).clone(), setting_at(c, name, row)?);
            }
            out.push(TrialRecord {
                path: path.to_path_buf(),
                sweep: required_text(b, "sweep_name", row)?,
                trial: required_text(b, "trial_id", row)?,
                status: required_text(b, "status", row)?,
                error: text_at(b, "error", row)?,
                dataset: required_text(b, "dataset", row)?,
                activity: required_text(b, "activity", row)?,
                preset: match b.column_by_name("preset") {
                    Some(_) => text_at(b, "preset", row)?,
                    None => None,
                },
                metrics,
                collapsed,
                final_loss: f64_at(b, "final_loss", row)?,
                wall_s: f64_at(b, "wall_s", row)?,
                k_range: match b.column_by_name("k_range") {
                    Some(_) => text_at(b, "k_range", row)?,
                    None => None,
                },
                settings,
            });
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Configurations

/// A mean and sample standard deviation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    /// `None` when no trial has a value.
    pub mean: Option<f64>,
    /// Sample standard deviation (n − 1); `None` below two values.
    pub std: Option<f64>,
    /// Values it is computed from.
    pub n: usize,
}

impl Stat {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let v: Vec<f64> = values.into_iter().collect();
        let n = v.len();
        if n == 0 {
            return Stat {
                mean: None,
                std: None,
                n,
            };
        }
        let mean = v.iter().sum::<f64>() / n as f64;
        let std = (n > 1)
            .then(|| (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
        Stat {
            mean: Some(mean),
            std,
            n,
        }
    }

    /// `0.476 ± 0.040`, `0.476` with one value, `–` with none.
    fn show(&self, decimals: usize) -> String {
        match (self.mean, self.std) {
            (Some(m), Some(s)) => format!("{m:.decimals$} ± {s:.decimals$}"),
            (Some(m), None) => format!("{m:.decimals$}"),
            _ => "–".into(),
        }
    }
}

/// Trials of one sweep, dataset, activity and preset that differ only in seed.
#[derive(Debug, Clone, Serialize)]
pub struct Configuration {
    /// 1-based, in table order.
    pub id: usize,
    pub sweep: String,
    pub dataset: String,
    pub activity: String,
    pub preset: Option<String>,
    /// The mode and the removed stages ("clot", "clot without refine"): label-free choices
    /// compare losses within one graph only.
    pub graph: String,
    /// The sweep's swept settings (seed aside).
    pub swept: BTreeMap<String, Setting>,
    /// Every setting but seed and f1_seed.
    pub settings: BTreeMap<String, Setting>,
    /// Seeds of the trials that ran to the end.
    pub seeds: Vec<i64>,
    pub trials: Vec<String>,
    /// Trials of this configuration that failed (not averaged).
    pub failed_trials: Vec<String>,
    /// Per metric of [`METRICS`], over the seeds.
    pub metrics: BTreeMap<String, Stat>,
    pub final_loss: Stat,
    pub wall_s: Stat,
    /// Share of the seeds whose run collapsed (fewer than half of K clusters predicted).
    pub collapsed_share: Option<f64>,
    pub collapsed: usize,
    /// Indices of its ok trials in [`Report::records`], by seed.
    #[serde(skip)]
    pub members: Vec<usize>,
}

impl Configuration {
    pub fn metric(&self, key: &str) -> Stat {
        self.metrics.get(key).copied().unwrap_or(Stat {
            mean: None,
            std: None,
            n: 0,
        })
    }

    /// "mode = asot, rho = 0.15" over `names`.
    pub fn describe(&self, names: &[String]) -> String {
        if names.is_empty() {
            return "the only configuration".into();
        }
        names
            .iter()
            .map(|n| {
                let v = self.settings.get(n).cloned().unwrap_or(Setting::Null);
                format!("{n} = {}", v.text())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One sweep found under the results folder.
#[derive(Debug, Clone, Serialize)]
pub struct SweepInfo {
    pub name: String,
    pub trials: usize,
    pub ok: usize,
    pub failed: usize,
    pub datasets: Vec<String>,
    pub activities: Vec<String>,
    /// Settings whose value varies across its trials (seed aside), mode and without first.
    pub swept: Vec<String>,
    pub seeds: Vec<i64>,
    pub configurations: usize,
}

/// A trial that failed.
#[derive(Debug, Clone, Serialize)]
pub struct FailedTrial {
    pub sweep: String,
    pub trial: String,
    pub dataset: String,
    pub activity: String,
    /// Its swept settings and seed, as text.
    pub settings: String,
    pub error: Option<String>,
    pub path: PathBuf,
}

/// A best configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub sweep: String,
    pub dataset: String,
    /// `None`: overall (the mean over the dataset's activities).
    pub activity: Option<String>,
    /// `mof`, … (ground truth) or `final_loss` (label-free).
    pub criterion: String,
    pub label_free: bool,
    /// The graph a label-free choice is made within.
    pub graph: Option<String>,
    /// The chosen configuration's id; overall, one per activity.
    pub configurations: Vec<usize>,
    /// Its swept settings.
    pub settings: BTreeMap<String, Setting>,
    /// The criterion's value: the mean over seeds (overall: the mean of those over activities).
    pub value: f64,
    /// The `--by` metric of the choice (for a label-free choice: what the labels say of it);
    /// overall, the mean over activities.
    pub metric: Option<f64>,
    /// Its standard deviation over seeds (per activity only).
    pub metric_std: Option<f64>,
    /// Seeds behind the choice (overall: the fewest of any activity).
    pub seeds: usize,
    /// Activities the choice covers (overall), of the dataset's.
    pub activities: usize,
}

/// Everything `clot report` finds.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub results: PathBuf,
    /// The ground-truth metric of the choice.
    pub by: String,
    pub trials: usize,
    pub ok: usize,
    pub failed: usize,
    pub sweeps: Vec<SweepInfo>,
    pub configurations: Vec<Configuration>,
    pub best: Vec<Choice>,
    pub label_free_note: &'static str,
    pub failed_trials: Vec<FailedTrial>,
    /// The files written.
    pub files: Vec<PathBuf>,
    #[serde(skip)]
    pub records: Vec<TrialRecord>,
}

/// Swept settings: those that vary, mode and without first, then by name.
fn swept_settings(trials: &[&TrialRecord]) -> Vec<String> {
    let names: BTreeSet<&String> = trials.iter().flat_map(|t| t.settings.keys()).collect();
    let mut swept: Vec<String> = names
        .into_iter()
        .filter(|n| !SEED_KEYS.contains(&n.as_str()))
        .filter(|n| {
            let first = trials[0].setting(n);
            trials.iter().any(|t| t.setting(n) != first)
        })
        .cloned()
        .collect();
    let rank = |n: &str| match n {
        "mode" => 0,
        "without" => 1,
        _ => 2,
    };
    swept.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    swept
}

fn graph_of(t: &TrialRecord) -> String {
    let mode = match t.setting("mode") {
        Setting::Null => "?".to_string(),
        m => m.text(),
    };
    match t.setting("without") {
        Setting::Text(w) if !w.is_empty() => format!("{mode} without {w}"),
        _ => mode,
    }
}

/// Groups `records` into configurations and chooses the best (see the module docs).
pub fn build(results: &Path, records: Vec<TrialRecord>, by: &str) -> Result<Report> {
    let by_index = metric_index(by)?;
    let mut by_sweep: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, t) in records.iter().enumerate() {
        by_sweep.entry(t.sweep.clone()).or_default().push(i);
    }
    let mut sweeps = Vec::new();
    let mut configurations: Vec<Configuration> = Vec::new();
    let mut failed_trials = Vec::new();
    let mut swept_of: HashMap<String, Vec<String>> = HashMap::new();
    for (name, idx) in &by_sweep {
        let trials: Vec<&TrialRecord> = idx.iter().map(|&i| &records[i]).collect();
        let swept = swept_settings(&trials);
        // group by everything but the seeds
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for &i in idx {
            let t = &records[i];
            let mut key = format!("{:?}\0{:?}\0{:?}", t.dataset, t.activity, t.preset);
            for (k, v) in &t.settings {
                if !SEED_KEYS.contains(&k.as_str()) {
                    let _ = write!(key, "\0{k}={v:?}");
                }
            }
            match index.get(&key) {
                Some(&g) => groups[g].1.push(i),
                None => {
                    index.insert(key.clone(), groups.len());
                    groups.push((key, vec![i]));
                }
            }
        }
        let mut confs: Vec<Configuration> = groups
            .into_iter()
            .map(|(_, members)| configuration(&records, &members, &swept))
            .collect();
        confs.sort_by(|a, b| {
            (&a.dataset, &a.activity, &a.preset)
                .cmp(&(&b.dataset, &b.activity, &b.preset))
                .then_with(|| {
                    swept
                        .iter()
                        .map(|n| {
                            let (x, y) = (
                                a.settings.get(n).unwrap_or(&Setting::Null),
                                b.settings.get(n).unwrap_or(&Setting::Null),
                            );
                            x.order(y)
                        })
                        .find(|o| o.is_ne())
                        .unwrap_or(Ordering::Equal)
                })
        });
        for t in trials.iter().filter(|t| !t.ok()) {
            let mut names = swept.clone();
            names.push("seed".into());
            let settings = names
                .iter()
                .map(|n| format!("{n} = {}", t.setting(n).text()))
                .collect::<Vec<_>>()
                .join(", ");
            failed_trials.push(FailedTrial {
                sweep: t.sweep.clone(),
                trial: t.trial.clone(),
                dataset: t.dataset.clone(),
                activity: t.activity.clone(),
                settings,
                error: t.error.clone(),
                path: t.path.clone(),
            });
        }
        let ok = trials.iter().filter(|t| t.ok()).count();
        let set = |f: &dyn Fn(&TrialRecord) -> String| -> Vec<String> {
            trials
                .iter()
                .map(|t| f(t))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        sweeps.push(SweepInfo {
            name: name.clone(),
            trials: trials.len(),
            ok,
            failed: trials.len() - ok,
            datasets: set(&|t| t.dataset.clone()),
            activities: set(&|t| t.activity.clone()),
            swept: swept.clone(),
            seeds: trials
                .iter()
                .filter_map(|t| t.seed())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            configurations: confs.len(),
        });
        swept_of.insert(name.clone(), swept);
        configurations.extend(confs);
    }
    for (i, c) in configurations.iter_mut().enumerate() {
        c.id = i + 1;
    }
    let best = choose(&configurations, &sweeps, METRICS[by_index].0);
    let ok = records.iter().filter(|t| t.ok()).count();
    Ok(Report {
        results: results.to_path_buf(),
        by: by.to_string(),
        trials: records.len(),
        ok,
        failed: records.len() - ok,
        sweeps,
        configurations,
        best,
        label_free_note: LABEL_FREE_NOTE,
        failed_trials,
        files: Vec::new(),
        records,
    })
}

fn configuration(records: &[TrialRecord], members: &[usize], swept: &[String]) -> Configuration {
    let first = &records[members[0]];
    let mut ok: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&i| records[i].ok())
        .collect();
    ok.sort_by_key(|&i| (records[i].seed(), records[i].trial.clone()));
    let oks: Vec<&TrialRecord> = ok.iter().map(|&i| &records[i]).collect();
    let metrics = METRICS
        .iter()
        .enumerate()
        .map(|(m, (k, _))| {
            (
                k.to_string(),
                Stat::of(oks.iter().filter_map(|t| t.metrics[m])),
            )
        })
        .collect();
    let collapsed: Vec<bool> = oks.iter().filter_map(|t| t.collapsed).collect();
    let n_collapsed = collapsed.iter().filter(|c| **c).count();
    let settings: BTreeMap<String, Setting> = first
        .settings
        .iter()
        .filter(|(k, _)| !SEED_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Configuration {
        id: 0,
        sweep: first.sweep.clone(),
        dataset: first.dataset.clone(),
        activity: first.activity.clone(),
        preset: first.preset.clone(),
        graph: graph_of(first),
        swept: swept
            .iter()
            .map(|n| (n.clone(), first.setting(n)))
            .collect(),
        settings,
        seeds: oks.iter().filter_map(|t| t.seed()).collect(),
        trials: oks.iter().map(|t| t.trial.clone()).collect(),
        failed_trials: members
            .iter()
            .filter(|&&i| !records[i].ok())
            .map(|&i| records[i].trial.clone())
            .collect(),
        metrics,
        final_loss: Stat::of(oks.iter().filter_map(|t| t.final_loss)),
        wall_s: Stat::of(oks.iter().filter_map(|t| t.wall_s)),
        collapsed_share: (!collapsed.is_empty())
            .then(|| n_collapsed as f64 / collapsed.len() as f64),
        collapsed: n_collapsed,
        members: ok,
    }
}

/// The best configurations of every sweep: per activity and overall, by `by` and label-free.
fn choose(configs: &[Configuration], sweeps: &[SweepInfo], by: &str) -> Vec<Choice> {
    let mut out = Vec::new();
    for sweep in sweeps {
        let mine: Vec<&Configuration> = configs.iter().filter(|c| c.sweep == sweep.name).collect();
        let graphs: BTreeSet<&String> = mine.iter().map(|c| &c.graph).collect();
        for dataset in &sweep.datasets {
            let in_data: Vec<&Configuration> = mine
                .iter()
                .copied()
                .filter(|c| &c.dataset == dataset)
                .collect();
            let activities: BTreeSet<&String> = in_data.iter().map(|c| &c.activity).collect();
            let choice = |members: &[&Configuration],
                          activity: Option<&String>,
                          criterion: &str,
                          graph: Option<&String>,
                          value: f64| {
                let metric = Stat::of(members.iter().filter_map(|c| c.metric(by).mean));
                Choice {
                    sweep: sweep.name.clone(),
                    dataset: dataset.clone(),
                    activity: activity.cloned(),
                    criterion: criterion.to_string(),
                    label_free: criterion == "final_loss",
                    graph: graph.cloned(),
                    configurations: members.iter().map(|c| c.id).collect(),
                    settings: members[0].swept.clone(),
                    value,
                    metric: metric.mean,
                    metric_std: if members.len() == 1 {
                        members[0].metric(by).std
                    } else {
                        None
                    },
                    seeds: members.iter().map(|c| c.seeds.len()).min().unwrap_or(0),
                    activities: members.len(),
                }
            };
            // per activity
            for activity in &activities {
                let here: Vec<&Configuration> = in_data
                    .iter()
                    .copied()
                    .filter(|c| &c.activity == *activity)
                    .collect();
                if let Some((c, v)) = best_of(&here, |c| c.metric(by).mean, true) {
                    out.push(choice(&[c], Some(activity), by, None, v));
                }
                for g in &graphs {
                    let same: Vec<&Configuration> =
                        here.iter().copied().filter(|c| &c.graph == *g).collect();
                    if let Some((c, v)) = best_of(&same, |c| c.final_loss.mean, false) {
                        out.push(choice(&[c], Some(activity), "final_loss", Some(g), v));
                    }
                }
            }
            // overall: configurations that differ only in activity, over every activity
            let mut across: Vec<(String, Vec<&Configuration>)> = Vec::new();
            for c in &in_data {
                let key = format!("{:?}{:?}", c.preset, c.settings);
                match across.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, v)) => v.push(c),
                    None => across.push((key, vec![c])),
                }
            }
            let overall = |value: &dyn Fn(&Configuration) -> Option<f64>,
                           groups: &[&Vec<&Configuration>]|
             -> Option<(usize, f64)> {
                let scored: Vec<(usize, usize, f64)> = groups
                    .iter()
                    .enumerate()
                    .filter_map(|(i, g)| {
                        let vals: Vec<f64> = g
                            .iter()
                            .filter_map(|c| value(c))
                            .filter(|v| v.is_finite())
                            .collect();
                        (!vals.is_empty())
                            .then(|| (i, vals.len(), vals.iter().sum::<f64>() / vals.len() as f64))
                    })
                    .collect();
                let most = scored.iter().map(|s| s.1).max()?;
                // the highest value among the groups that cover the most activities; first on ties
                let mut best: Option<(usize, f64)> = None;
                for (i, _, v) in scored.into_iter().filter(|s| s.1 == most) {
                    if best.is_none_or(|(_, b)| v > b) {
                        best = Some((i, v));
                    }
                }
                best
            };
            let all: Vec<&Vec<&Configuration>> = across.iter().map(|(_, g)| g).collect();
            if let Some((g, v)) = overall(&|c| c.metric(by).mean, &all) {
                out.push(choice(all[g], None, by, None, v));
            }
            for graph in &graphs {
                let same: Vec<&Vec<&Configuration>> = all
                    .iter()
                    .copied()
                    .filter(|g| &g[0].graph == *graph)
                    .collect();
                // lowest loss: maximise its negative
                if let Some((g, v)) = overall(&|c| c.final_loss.mean.map(|l| -l), &same) {
                    out.push(choice(same[g], None, "final_loss", Some(graph), -v));
                }
            }
        }
    }
    out
}

fn value_better(a: f64, b: f64, higher: bool) -> bool {
    if higher { a > b } else { a < b }
}

/// The configuration with the highest (or lowest) value, the first on ties.
fn best_of<'a>(
    configs: &[&'a Configuration],
    value: impl Fn(&Configuration) -> Option<f64>,
    higher: bool,
) -> Option<(&'a Configuration, f64)> {
    let mut best: Option<(&Configuration, f64)> = None;
    for c in configs {
        if let Some(v) = value(c).filter(|v| v.is_finite())
            && best.is_none_or(|(_, b)| value_better(v, b, higher))
        {
            best = Some((c, v));
        }
    }
    best
}

// ---------------------------------------------------------------------------------------------
// Tables

enum Values {
    UInt(Vec<u32>),
    Int(Vec<Option<i64>>),
    F32(Vec<Option<f32>>),
    F64(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
}

struct Column {
    name: String,
    values: Values,
}

impl Column {
    fn new(name: &str, values: Values) -> Self {
        Column {
            name: name.to_string(),
            values,
        }
    }

    fn array(&self) -> (DataType, ArrayRef) {
        match &self.values {
            Values::UInt(v) => (DataType::UInt32, Arc::new(UInt32Array::from(v.clone()))),
            Values::Int(v) => (DataType::Int64, Arc::new(Int64Array::from(v.clone()))),
            Values::F32(v) => (DataType::Float32, Arc::new(Float32Array::from(v.clone()))),
            Values::F64(v) => (DataType::Float64, Arc::new(Float64Array::from(v.clone()))),
            Values::Bool(v) => (DataType::Boolean, Arc::new(BooleanArray::from(v.clone()))),
            Values::Text(v) => (DataType::Utf8, Arc::new(StringArray::from(v.clone()))),
        }
    }

    fn nullable(&self) -> bool {
        match &self.values {
            Values::UInt(_) => false,
            Values::Int(v) => v.iter().any(Option::is_none),
            Values::F32(v) => v.iter().any(Option::is_none),
            Values::F64(v) => v.iter().any(Option::is_none),
            Values::Bool(v) => v.iter().any(Option::is_none),
            Values::Text(v) => v.iter().any(Option::is_none),
        }
    }

    fn cell(&self, row: usize) -> String {
        fn opt<T: ToString>(v: &Option<T>) -> String {
            v.as_ref().map_or_else(String::new, T::to_string)
        }
        match &self.values {
            Values::UInt(v) => v[row].to_string(),
            Values::Int(v) => opt(&v[row]),
            Values::F32(v) => opt(&v[row]),
            Values::F64(v) => opt(&v[row]),
            Values::Bool(v) => opt(&v[row]),
            Values::Text(v) => csv_field(v[row].as_deref().unwrap_or("")),
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn write_csv(path: &Path, columns: &[Column], rows: usize) -> Result<()> {
    let mut text = columns
        .iter()
        .map(|c| csv_field(&c.name))
        .collect::<Vec<_>>()
        .join(",");
    text.push('\n');
    for r in 0..rows {
        text.push_str(
            &columns
                .iter()
                .map(|c| c.cell(r))
                .collect::<Vec<_>>()
                .join(","),
        );
        text.push('\n');
    }
    write_text(path, &text).with_context(|| format!("writing {}", path.display()))
}

fn write_parquet(path: &Path, columns: &[Column], by: &str) -> Result<()> {
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns
        .iter()
        .map(|c| {
            let (ty, a) = c.array();
            (Field::new(&c.name, ty, c.nullable()), a)
        })
        .unzip();
    let metadata: HashMap<String, String> = [
        (clot_schemas::KEY_TABLE, "report_configurations".to_string()),
        (
            clot_schemas::KEY_CRATE_VERSION,
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("clot.report.by", by.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let schema = Arc::new(Schema::new(fields).with_metadata(metadata));
    let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)
        .context("building the configurations table")?;
    clot_datasets::write_table(path, schema, &[batch])
        .with_context(|| format!("writing {}", path.display()))
}

/// A setting column over `values`, typed as its values are (text when they mix).
fn setting_column(name: &str, values: &[Setting]) -> Column {
    let kinds: BTreeSet<u8> = values
        .iter()
        .filter(|v| **v != Setting::Null)
        .map(|v| match v {
            Setting::Int(_) => 0,
            Setting::Float32(_) => 1,
            Setting::Float64(_) => 2,
            Setting::Bool(_) => 3,
            _ => 4,
        })
        .collect();
    let values = match kinds.iter().next().filter(|_| kinds.len() == 1) {
        Some(0) => Values::Int(
            values
                .iter()
                .map(|v| match v {
                    Setting::Int(i) => Some(*i),
                    _ => None,
                })
                .collect(),
        ),
        Some(1) => Values::F32(
            values
                .iter()
                .map(|v| match v {
                    Setting::Float32(f) => Some(*f),
                    _ => None,
                })
                .collect(),
        ),
        Some(2) => Values::F64(values.iter().map(Setting::number).collect()),
        Some(3) => Values::Bool(
            values
                .iter()
                .map(|v| match v {
                    Setting::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect(),
        ),
        _ => Values::Text(
            values
                .iter()
                .map(|v| match v {
                    Setting::Null => None,
                    Setting::Text(t) => Some(t.clone()),
                    other => Some(other.text()),
                })
                .collect(),
        ),
    };
    Column::new(name, values)
}

fn configuration_columns(r: &Report) -> Vec<Column> {
    let cs = &r.configurations;
    let text = |f: &dyn Fn(&Configuration) -> Option<String>| -> Values {
        Values::Text(cs.iter().map(f).collect())
    };
    let f64s = |f: &dyn Fn(&Configuration) -> Option<f64>| -> Values {
        Values::F64(cs.iter().map(f).collect())
    };
    let mut columns = vec![
        Column::new("id", Values::UInt(cs.iter().map(|c| c.id as u32).collect())),
        Column::new("sweep", text(&|c| Some(c.sweep.clone()))),
        Column::new("dataset", text(&|c| Some(c.dataset.clone()))),
        Column::new("activity", text(&|c| Some(c.activity.clone()))),
        Column::new("preset", text(&|c| c.preset.clone())),
        Column::new("graph", text(&|c| Some(c.graph.clone()))),
    ];
    // the swept settings of any sweep, each configuration's own value
    let mut swept: Vec<&String> = Vec::new();
    for s in &r.sweeps {
        for n in &s.swept {
            if !swept.contains(&n) {
                swept.push(n);
            }
        }
    }
    for n in swept {
        let values: Vec<Setting> = cs
            .iter()
            .map(|c| c.settings.get(n).cloned().unwrap_or(Setting::Null))
            .collect();
        columns.push(setting_column(n, &values));
    }
    let join = |v: &[String]| v.join(" ");
    columns.extend([
        Column::new(
            "seeds",
            Values::UInt(cs.iter().map(|c| c.seeds.len() as u32).collect()),
        ),
        Column::new(
            "failed",
            Values::UInt(cs.iter().map(|c| c.failed_trials.len() as u32).collect()),
        ),
        Column::new(
            "seed_list",
            text(&|c| {
                Some(join(
                    &c.seeds.iter().map(i64::to_string).collect::<Vec<_>>(),
                ))
            }),
        ),
        Column::new("trial_ids", text(&|c| Some(join(&c.trials)))),
    ]);
    for (k, _) in METRICS {
        columns.push(Column::new(
            &format!("{k}_mean"),
            f64s(&|c| c.metric(k).mean),
        ));
        columns.push(Column::new(&format!("{k}_std"), f64s(&|c| c.metric(k).std)));
    }
    let chosen = |label_free: bool| -> Values {
        Values::Bool(
            cs.iter()
                .map(|c| {
                    Some(r.best.iter().any(|b| {
                        b.label_free == label_free
                            && b.activity.is_some()
                            && b.configurations.contains(&c.id)
                    }))
                })
                .collect(),
        )
    };
    columns.extend([
        Column::new("final_loss_mean", f64s(&|c| c.final_loss.mean)),
        Column::new("final_loss_std", f64s(&|c| c.final_loss.std)),
        Column::new("wall_s_mean", f64s(&|c| c.wall_s.mean)),
        Column::new("collapsed_share", f64s(&|c| c.collapsed_share)),
        Column::new(&format!("best_by_{}", r.by), chosen(false)),
        Column::new("best_label_free", chosen(true)),
    ]);
    columns
}

fn best_columns(r: &Report) -> Vec<Column> {
    let bs = &r.best;
    let swept_of = |b: &Choice| -> Vec<String> {
        r.sweeps
            .iter()
            .find(|s| s.name == b.sweep)
            .map(|s| s.swept.clone())
            .unwrap_or_default()
    };
    let text = |f: &dyn Fn(&Choice) -> Option<String>| -> Values {
        Values::Text(bs.iter().map(f).collect())
    };
    vec![
        Column::new("sweep", text(&|b| Some(b.sweep.clone()))),
        Column::new("dataset", text(&|b| Some(b.dataset.clone()))),
        Column::new(
            "scope",
            text(&|b| Some(b.activity.clone().unwrap_or_else(|| "overall".into()))),
        ),
        Column::new("criterion", text(&|b| Some(b.criterion.clone()))),
        Column::new(
            "label_free",
            Values::Bool(bs.iter().map(|b| Some(b.label_free)).collect()),
        ),
        Column::new("graph", text(&|b| b.graph.clone())),
        Column::new(
            "configurations",
            text(&|b| {
                Some(
                    b.configurations
                        .iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            }),
        ),
        Column::new(
            "settings",
            text(&|b| {
                Some(
                    swept_of(b)
                        .iter()
                        .map(|n| {
                            let v = b.settings.get(n).cloned().unwrap_or(Setting::Null);
                            format!("{n} = {}", v.text())
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            }),
        ),
        Column::new(
            "seeds",
            Values::UInt(bs.iter().map(|b| b.seeds as u32).collect()),
        ),
        Column::new(
            "activities",
            Values::UInt(bs.iter().map(|b| b.activities as u32).collect()),
        ),
        Column::new(
            "value",
            Values::F64(bs.iter().map(|b| Some(b.value)).collect()),
        ),
        Column::new(
            &format!("{}_mean", r.by),
            Values::F64(bs.iter().map(|b| b.metric).collect()),
        ),
        Column::new(
            &format!("{}_std", r.by),
            Values::F64(bs.iter().map(|b| b.metric_std).collect()),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Terminal

fn print_table(r: &Report) {
    let label = metric_label(&r.by);
    println!(
        "{}: {} trials in {} sweep{} ({} ok, {} failed) → {} configurations",
        r.results.display(),
        r.trials,
        r.sweeps.len(),
        if r.sweeps.len() == 1 { "" } else { "s" },
        r.ok,
        r.failed,
        r.configurations.len()
    );
    for s in &r.sweeps {
        println!();
        let seeds = s
            .seeds
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "sweep {}: {} trials ({} failed), {} configurations; swept: {}; seeds {}",
            s.name,
            s.trials,
            s.failed,
            s.configurations,
            if s.swept.is_empty() {
                "nothing but the seed".to_string()
            } else {
                s.swept.join(", ")
            },
            if seeds.is_empty() { "–" } else { &seeds }
        );
        let confs: Vec<&Configuration> = r
            .configurations
            .iter()
            .filter(|c| c.sweep == s.name)
            .collect();
        let several_data = s.datasets.len() > 1;
        let mut header: Vec<String> = vec!["#".into()];
        if several_data {
            header.push("dataset".into());
        }
        header.push("activity".into());
        header.extend(s.swept.iter().cloned());
        header.push("seeds".into());
        if s.failed > 0 {
            header.push("failed".into());
        }
        let mut metrics: Vec<&str> = vec!["mof", "f1", "miou"];
        if !metrics.contains(&r.by.as_str()) {
            metrics.push(&r.by);
        }
        header.extend(metrics.iter().map(|m| metric_label(m).to_string()));
        header.extend(["final loss".into(), "collapsed".into(), "chosen".into()]);
        let mut rows: Vec<Vec<String>> = Vec::new();
        for c in &confs {
            let mut row = vec![c.id.to_string()];
            if several_data {
                row.push(c.dataset.clone());
            }
            row.push(c.activity.clone());
            for n in &s.swept {
                row.push(c.settings.get(n).cloned().unwrap_or(Setting::Null).text());
            }
            row.push(c.seeds.len().to_string());
            if s.failed > 0 {
                row.push(c.failed_trials.len().to_string());
            }
            for m in &metrics {
                row.push(c.metric(m).show(3));
            }
            row.push(c.final_loss.mean.map_or("–".into(), |l| format!("{l:.4}")));
            row.push(if c.seeds.is_empty() {
                "–".into()
            } else {
                format!("{}/{}", c.collapsed, c.seeds.len())
            });
            let mut chosen: Vec<String> = Vec::new();
            for b in r.best.iter().filter(|b| b.configurations.contains(&c.id)) {
                let what = if b.label_free {
                    format!("label-free ({})", b.graph.as_deref().unwrap_or("?"))
                } else {
                    format!("best {label}")
                };
                let what = if b.activity.is_none() && s.activities.len() > 1 {
                    format!("{what} overall")
                } else {
                    what
                };
                if !chosen.contains(&what) {
                    chosen.push(what);
                }
            }
            row.push(chosen.join(", "));
            rows.push(row);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain(std::iter::once(header[i].chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        // numbers right, words and "mean ± std" left
        let right: Vec<bool> = (0..header.len())
            .map(|i| {
                !rows.is_empty()
                    && rows
                        .iter()
                        .all(|r| r[i] == "–" || r[i].parse::<f64>().is_ok() || i == 0)
            })
            .collect();
        let line = |cells: &[String]| {
            let mut out = String::from(" ");
            for (i, c) in cells.iter().enumerate() {
                let pad = " ".repeat(widths[i].saturating_sub(c.chars().count()));
                if right[i] {
                    out.push_str(&format!(" {pad}{c}"));
                } else {
                    out.push_str(&format!(" {c}{pad}"));
                }
            }
            println!("{}", out.trim_end());
        };
        line(&header);
        for row in &rows {
            line(row);
        }
        print_best(r, s);
    }
    if !r.failed_trials.is_empty() {
        println!();
        println!("failed trials (counted, not averaged):");
        for f in &r.failed_trials {
            println!(
                "  {}/{}  {} / {}  {}: {}",
                f.sweep,
                f.trial,
                f.dataset,
                f.activity,
                f.settings,
                f.error.as_deref().unwrap_or("?")
            );
        }
    }
}

fn print_best(r: &Report, s: &SweepInfo) {
    let label = metric_label(&r.by);
    let conf = |id: usize| r.configurations.iter().find(|c| c.id == id);
    let describe = |b: &Choice| -> String {
        let settings = b
            .configurations
            .first()
            .and_then(|&id| conf(id))
            .map_or_else(String::new, |c| c.describe(&s.swept));
        let ids = b
            .configurations
            .iter()
            .map(|i| format!("#{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let metric = match (b.metric, b.metric_std) {
            (Some(m), Some(sd)) => format!("{label} {m:.3} ± {sd:.3}"),
            (Some(m), None) => format!("{label} {m:.3}"),
            _ => format!("{label} –"),
        };
        let seeds = if b.activities > 1 {
            format!("{} activities, ≥ {} seeds each", b.activities, b.seeds)
        } else {
            format!("{} seeds", b.seeds)
        };
        if b.label_free {
            format!(
                "{ids} {settings}: final loss {:.4}; {metric} ({seeds})",
                b.value
            )
        } else {
            format!("{ids} {settings}: {metric} ({seeds})")
        }
    };
    let mine: Vec<&Choice> = r.best.iter().filter(|b| b.sweep == s.name).collect();
    let single = s.datasets.len() == 1 && s.activities.len() == 1;
    let mut scopes: Vec<(String, Option<String>)> = Vec::new();
    for b in &mine {
        let scope = (b.dataset.clone(), b.activity.clone());
        if single && scope.1.is_none() {
            continue; // the only activity is the overall choice
        }
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    for (dataset, activity) in scopes {
        let name = match &activity {
            Some(a) if single => format!("{dataset} / {a} (the only activity, so also overall)"),
            Some(a) => format!("{dataset} / {a}"),
            None => format!(
                "{dataset} overall (mean over its {} activities)",
                s.activities.len()
            ),
        };
        println!("  best of {name}:");
        let here: Vec<(String, &Choice)> = mine
            .iter()
            .filter(|b| b.dataset == dataset && b.activity == activity)
            .map(|b| {
                let what = if b.label_free {
                    format!("label-free, {}:", b.graph.as_deref().unwrap_or("?"))
                } else {
                    format!("by {label} (ground truth):")
                };
                (what, *b)
            })
            .collect();
        let width = here
            .iter()
            .map(|(w, _)| w.chars().count())
            .max()
            .unwrap_or(0);
        for (what, b) in here {
            let pad = " ".repeat(width - what.chars().count());
            println!("    {what}{pad}  {}", describe(b));
        }
    }
    if !mine.is_empty() {
        println!("  ({LABEL_FREE_NOTE}; by ground truth is the oracle choice papers report)");
    }
}

// ---------------------------------------------------------------------------------------------
// Pictures

fn file_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The x position of a numeric setting's value (its log10 on a log axis).
fn position(v: f64, log: bool) -> f64 {
    if log { v.log10() } else { v }
}

/// Draws every picture of one sweep; returns the PNGs written.
fn pictures(r: &Report, s: &SweepInfo, out: &Path) -> Result<Vec<PathBuf>> {
    let by = r.by.as_str();
    let label = metric_label(by);
    let mut written = Vec::new();
    let confs: Vec<&Configuration> = r
        .configurations
        .iter()
        .filter(|c| c.sweep == s.name)
        .collect();
    let mut scopes: Vec<(&String, &String)> =
        confs.iter().map(|c| (&c.dataset, &c.activity)).collect();
    scopes.dedup();
    for (dataset, activity) in scopes {
        let here: Vec<&Configuration> = confs
            .iter()
            .copied()
            .filter(|c| &c.dataset == dataset && &c.activity == activity)
            .collect();
        let dir = out.join(file_name(&s.name)).join(if s.datasets.len() > 1 {
            file_name(&format!("{dataset}-{activity}"))
        } else {
            file_name(activity)
        });
        let place = format!("sweep {} · {dataset} / {activity}", s.name);
        let scored: Vec<&Configuration> = here
            .iter()
            .copied()
            .filter(|c| c.metric(by).mean.is_some())
            .collect();
        for setting in &s.swept {
            if scored.is_empty() {
                break;
            }
            let png = dir.join(format!("{by}_vs_{}.png", file_name(setting)));
            // values of this setting whose every trial failed (or is unscored): said, not drawn
            let mut missing: Vec<Setting> = Vec::new();
            for c in here.iter().filter(|c| c.metric(by).mean.is_none()) {
                let v = c.settings.get(setting).cloned().unwrap_or(Setting::Null);
                if !missing.contains(&v)
                    && !scored.iter().any(|d| d.settings.get(setting) == Some(&v))
                {
                    missing.push(v);
                }
            }
            setting_picture(&png, &scored, &missing, s, setting, by, &place)?;
            written.push(png);
        }
        let png = dir.join("k_choice.png");
        if k_choice_picture(&png, r, &s.name, dataset, activity, &place)? {
            written.push(png);
        }
        let best = r.best.iter().find(|b| {
            !b.label_free
                && b.sweep == s.name
                && &b.dataset == dataset
                && b.activity.as_ref() == Some(activity)
        });
        let Some(best) = best.and_then(|b| {
            b.configurations
                .first()
                .and_then(|id| r.configurations.iter().find(|c| c.id == *id))
        }) else {
            continue;
        };
        let what = best.describe(&s.swept);
        let png = dir.join("training_curves.png");
        if curves_picture(&png, r, best, by, &what, &place)? {
            written.push(png);
        }
        for &m in &best.members {
            let t = &r.records[m];
            let preds = t.dir().join("predictions.parquet");
            if !preds.exists() {
                continue;
            }
            let seed = t.seed().map_or("?".into(), |s| s.to_string());
            let png = dir.join(format!("segments_seed{}.png", file_name(&seed)));
            let results = read_predictions(&preds, activity)?;
            let exclude = match t.setting("exclude") {
                Setting::Int(e) => i32::try_from(e).ok(),
                _ => None,
            };
            let (pred, gt): (Vec<i32>, Vec<i32>) = results
                .iter()
                .filter_map(|r| r.ground_truth.as_ref().map(|g| (&r.prediction, g)))
                .flat_map(|(p, g)| p.iter().copied().zip(g.iter().copied()))
                .unzip();
            let matching = if gt.is_empty() {
                None
            } else {
                Some(
                    clot_stages::eval::hungarian(&pred, &gt, exclude, "activity")
                        .with_context(|| format!("matching {}", preds.display()))?,
                )
            };
            let matched = matching.as_ref().map(|m| move |p: i32| m.gt_of(p));
            let no_names = |_: i32| None;
            let scores = METRICS[..3]
                .iter()
                .enumerate()
                .filter_map(|(i, (_, l))| t.metrics[i].map(|v| format!("{l} {v:.3}")))
                .collect::<Vec<_>>();
            plot::segments(
                &png,
                &plot::SegmentsPlot {
                    title: format!(
                        "Ground truth vs prediction · best by {label}: {what} · seed {seed}"
                    ),
                    subtitle: Some(format!(
                        "{place} · trial {}{}{}",
                        t.trial,
                        if scores.is_empty() {
                            ""
                        } else {
                            " · activity "
                        },
                        scores.join(" · ")
                    )),
                    results: &results,
                    class_name: &no_names,
                    matched: matched.as_ref().map(|f| f as &dyn Fn(i32) -> Option<i32>),
                    max_videos: PLOT_VIDEOS,
                },
            )?;
            written.push(png);
        }
    }
    Ok(written)
}

/// The score curve of `actions = "auto"` for one activity of a sweep (one curve per K range, read
/// from the first trial of each that wrote `k_choice.parquet`); false when no trial estimated K.
fn k_choice_picture(
    png: &Path,
    r: &Report,
    sweep: &str,
    dataset: &str,
    activity: &str,
    place: &str,
) -> Result<bool> {
    let mut curves: Vec<crate::run::KCurve> = Vec::new();
    let mut ranges: Vec<&str> = Vec::new();
    for t in &r.records {
        let Some(range) = t.k_range.as_deref() else {
            continue;
        };
        let path = t.dir().join("k_choice.parquet");
        if t.sweep != sweep
            || t.dataset != dataset
            || t.activity != activity
            || ranges.contains(&range)
            || !path.exists()
        {
            continue;
        }
        ranges.push(range);
        curves.push(
            read_k_choice(&path, range).with_context(|| format!("reading {}", path.display()))?,
        );
    }
    if curves.is_empty() {
        return Ok(false);
    }
    crate::run::k_curve_plot(png, "Number of actions", place, &curves)?;
    Ok(true)
}

/// A trial's `k_choice.parquet` as a curve labelled by its K range.
fn read_k_choice(path: &Path, range: &str) -> Result<crate::run::KCurve> {
    let mut curve = crate::run::KCurve {
        label: format!("ln W, K in {range}"),
        chosen: 0,
        method: String::new(),
        points: Vec::new(),
    };
    for b in read_batches(path)? {
        let k = column(&b, "k")?;
        let k = k
            .as_primitive_opt::<UInt32Type>()
            .ok_or_else(|| wrong_type("k", "UInt32", k.data_type()))?;
        let log_w = column(&b, "log_w")?;
        let log_w = log_w
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| wrong_type("log_w", "Float64", log_w.data_type()))?;
        let chosen = column(&b, "chosen")?;
        let chosen = chosen
            .as_boolean_opt()
            .ok_or_else(|| wrong_type("chosen", "Boolean", chosen.data_type()))?;
        for row in 0..b.num_rows() {
            curve.points.push((k.value(row) as f64, log_w.value(row)));
            if chosen.is_valid(row) && chosen.value(row) {
                curve.chosen = k.value(row) as usize;
                curve.method = required_text(&b, "method", row)?;
            }
        }
    }
    if curve.method.is_empty() {
        bail!("no row is marked `chosen`");
    }
    Ok(curve)
}

/// `by` against `setting` over the configurations of one activity.
fn setting_picture(
    png: &Path,
    scored: &[&Configuration],
    missing: &[Setting],
    s: &SweepInfo,
    setting: &str,
    by: &str,
    place: &str,
) -> Result<()> {
    let label = metric_label(by);
    let value = |c: &Configuration| c.settings.get(setting).cloned().unwrap_or(Setting::Null);
    let mut values: Vec<Setting> = Vec::new();
    for c in scored {
        let v = value(c);
        if !values.contains(&v) {
            values.push(v);
        }
    }
    values.sort_by(Setting::order);
    let numeric = values
        .iter()
        .all(|v| v.number().is_some_and(f64::is_finite));
    let nums: Vec<f64> = values.iter().filter_map(Setting::number).collect();
    let log = numeric
        && nums.iter().all(|v| *v > 0.0)
        && nums.len() > 2
        && nums.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            / nums.iter().copied().fold(f64::INFINITY, f64::min)
            >= 20.0;
    let x_of = |v: &Setting| -> f64 {
        if numeric {
            position(v.number().unwrap_or(0.0), log)
        } else {
            values.iter().position(|w| w == v).unwrap_or(0) as f64
        }
    };
    let ticks: Vec<(f64, String)> = values.iter().map(|v| (x_of(v), v.text())).collect();
    // one series per value of the other swept settings
    let others: Vec<&String> = s.swept.iter().filter(|n| n.as_str() != setting).collect();
    let mut series: Vec<(String, Vec<plot::ErrorPoint>)> = Vec::new();
    for c in scored {
        let name = if others.is_empty() {
            "mean over seeds ± 1 sample std".to_string()
        } else {
            others
                .iter()
                .map(|n| {
                    let v = c.settings.get(*n).cloned().unwrap_or(Setting::Null);
                    format!("{n} = {}", v.text())
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let m = c.metric(by);
        let Some(mean) = m.mean else { continue };
        let point = plot::ErrorPoint {
            x: x_of(&value(c)),
            mean,
            spread: m.std,
        };
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, pts)) => pts.push(point),
            None => series.push((name, vec![point])),
        }
    }
    let seeds: BTreeSet<usize> = scored.iter().map(|c| c.seeds.len()).collect();
    let seeds = seeds
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("–");
    plot::error_bars(
        png,
        &plot::ErrorBarPlot {
            title: format!("{label} vs {setting} · {place}"),
            subtitle: Some(format!(
                "{level}: mean of {seeds} seeds per point, bars ± 1 sample std{rest}",
                level = if by.starts_with("video_") {
                    format!("{label} (per video, averaged)")
                } else {
                    label.to_string()
                },
                rest = if missing.is_empty() {
                    "; other settings as the sweep fixed them".to_string()
                } else {
                    format!(
                        "; not drawn (no successful seed): {setting} = {}",
                        missing
                            .iter()
                            .map(Setting::text)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            )),
            x_label: if log {
                format!("{setting} (log scale)")
            } else {
                setting.to_string()
            },
            y_label: format!("{label} (mean ± std over seeds)"),
            ticks,
            lines: numeric,
            legend_title: if others.is_empty() {
                "points".into()
            } else {
                format!(
                    "one {} per {}",
                    if numeric { "line" } else { "colour" },
                    others
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" × ")
                )
            },
            series: series
                .into_iter()
                .map(|(label, points)| plot::ErrorSeries { label, points })
                .collect(),
        },
    )
}

/// The loss per step of each seed of `best`; false when no curve file is there.
fn curves_picture(
    png: &Path,
    r: &Report,
    best: &Configuration,
    by: &str,
    what: &str,
    place: &str,
) -> Result<bool> {
    let label = metric_label(by);
    let mut lines = Vec::new();
    let by_index = metric_index(by)?;
    for &m in &best.members {
        let t = &r.records[m];
        let path = t.dir().join("training_curve.parquet");
        if !path.exists() {
            continue;
        }
        let mut points = Vec::new();
        for b in read_batches(&path)? {
            let step = column(&b, "step").with_context(|| format!("reading {}", path.display()))?;
            let loss = column(&b, "loss").with_context(|| format!("reading {}", path.display()))?;
            let step = step.as_primitive_opt::<UInt64Type>().ok_or_else(|| {
                wrong_type("step", "UInt64", step.data_type())
                    .context(format!("reading {}", path.display()))
            })?;
            let loss = loss.as_primitive_opt::<Float64Type>().ok_or_else(|| {
                wrong_type("loss", "Float64", loss.data_type())
                    .context(format!("reading {}", path.display()))
            })?;
            points.extend(
                step.values()
                    .iter()
                    .zip(loss.values().iter())
                    .map(|(&s, &l)| (s as f64, l)),
            );
        }
        let seed = t.seed().map_or("?".into(), |s| s.to_string());
        let mut text = format!("seed {seed}");
        if let Some(v) = t.metrics[by_index] {
            let _ = write!(text, " · {label} {v:.3}");
        }
        if let Some(l) = t.final_loss {
            let _ = write!(text, " · final loss {l:.4}");
        }
        lines.push(plot::Line {
            label: text,
            points,
        });
    }
    if lines.is_empty() {
        return Ok(false);
    }
    let m = best.metric(by);
    plot::lines(
        png,
        &plot::LinesPlot {
            title: format!("Training loss per step · best by {label}: {what}"),
            subtitle: Some(format!(
                "{place} · {} seeds, {label} {} · graph {}",
                best.seeds.len(),
                m.show(3),
                best.graph
            )),
            x_label: "step".into(),
            y_label: "training loss (total)".into(),
            legend_title: "one line per seed".into(),
            lines,
        },
    )?;
    Ok(true)
}

/// A trial's `predictions.parquet`, one result per video in file order.
fn read_predictions(path: &Path, activity: &str) -> Result<Vec<VideoResult>> {
    let ctx = || format!("reading {}", path.display());
    let mut out: Vec<VideoResult> = Vec::new();
    let mut gt_missing: Vec<bool> = Vec::new();
    for b in read_batches(path)? {
        let video = column(&b, "video").with_context(ctx)?;
        let video = video
            .as_string_opt::<i32>()
            .ok_or_else(|| wrong_type("video", "Utf8", video.data_type()))
            .with_context(ctx)?;
        let pred = column(&b, "prediction").with_context(ctx)?;
        let pred = pred
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| wrong_type("prediction", "Int32", pred.data_type()))
            .with_context(ctx)?;
        let gt = column(&b, "ground_truth").with_context(ctx)?;
        let gt = gt
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| wrong_type("ground_truth", "Int32", gt.data_type()))
            .with_context(ctx)?;
        let conf = b
            .column_by_name("confidence")
            .and_then(|c| c.as_primitive_opt::<Float32Type>().cloned());
        for row in 0..b.num_rows() {
            let name = video.value(row);
            if out.last().is_none_or(|r| r.name != name) {
                out.push(VideoResult {
                    name: name.to_string(),
                    activity: activity.to_string(),
                    prediction: Vec::new(),
                    ground_truth: Some(Vec::new()),
                    confidence: Vec::new(),
                    ot_objective: None,
                });
                gt_missing.push(false);
            }
            let (Some(r), Some(missing)) = (out.last_mut(), gt_missing.last_mut()) else {
                continue; // pushed just above
            };
            r.prediction.push(pred.value(row));
            r.confidence
                .push(conf.as_ref().map_or(0.0, |c| c.value(row)));
            if gt.is_valid(row) {
                if let Some(g) = r.ground_truth.as_mut() {
                    g.push(gt.value(row));
                }
            } else {
                *missing = true;
            }
        }
    }
    for (r, missing) in out.iter_mut().zip(gt_missing) {
        if missing {
            r.ground_truth = None;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The command

/// `clot report`.
pub fn report(a: &ReportArgs, _quiet: bool) -> Result<()> {
    metric_index(&a.by)?;
    let records = read_trials(&a.results)?;
    let mut r = build(&a.results, records, &a.by)?;
    let out = a.out.clone().unwrap_or_else(|| a.results.join("report"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let columns = configuration_columns(&r);
    let parquet = out.join("configurations.parquet");
    write_parquet(&parquet, &columns, &r.by)?;
    let csv = out.join("configurations.csv");
    write_csv(&csv, &columns, r.configurations.len())?;
    let best = out.join("best.csv");
    write_csv(&best, &best_columns(&r), r.best.len())?;
    let mut files = vec![parquet, csv, best];
    for s in &r.sweeps {
        for png in pictures(&r, s, &out)? {
            files.push(png.with_extension("svg"));
            files.push(png);
        }
    }
    r.files = files;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_table(&r);
        let pictures = r
            .files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "png"))
            .count();
        println!();
        println!(
            "wrote {}: configurations.parquet, configurations.csv, best.csv and {pictures} \
             pictures (PNG and SVG)",
            out.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(activity: &str, rho: f32, seed: i64, mof: Option<f64>, loss: f64) -> TrialRecord {
        let mut settings = BTreeMap::new();
        settings.insert("mode".into(), Setting::Text("asot".into()));
        settings.insert("without".into(), Setting::Text(String::new()));
        settings.insert("rho".into(), Setting::Float32(rho));
        settings.insert("seed".into(), Setting::Int(seed));
        settings.insert("f1_seed".into(), Setting::Int(seed));
        settings.insert("epochs".into(), Setting::Int(2));
        TrialRecord {
            path: PathBuf::from(format!(
                "r/sweep=s/trial={activity}{rho}{seed}/trial.parquet"
            )),
            sweep: "s".into(),
            trial: format!("{activity}-{rho}-{seed}"),
            status: if mof.is_some() { "ok" } else { "failed" }.into(),
            error: mof.is_none().then(|| "diverged".to_string()),
            dataset: "d".into(),
            activity: activity.into(),
            preset: None,
            metrics: [mof, mof, mof, mof, mof, mof],
            collapsed: mof.map(|_| seed == 1),
            final_loss: mof.map(|_| loss),
            wall_s: Some(1.0),
            k_range: None,
            settings,
        }
    }

    #[test]
    fn stats_are_sample_statistics() {
        let s = Stat::of([1.0, 2.0, 3.0]);
        assert_eq!((s.mean, s.std, s.n), (Some(2.0), Some(1.0), 3));
        let one = Stat::of([0.5]);
        assert_eq!((one.mean, one.std), (Some(0.5), None));
        assert_eq!(Stat::of([]).mean, None);
        assert_eq!(Stat::of([0.4, 0.5]).show(3), "0.450 ± 0.071");
    }

    #[test]
    fn settings_print_as_written() {
        assert_eq!(Setting::Float32(0.15).text(), "0.15");
        assert_eq!(Setting::Float32(0.15).number(), Some(0.15));
        assert_eq!(Setting::Float32(1e30).text(), "1e30");
        assert_eq!(Setting::Float32(1e-4).text(), "1e-4");
        assert_eq!(Setting::Text(String::new()).text(), "none");
        assert_eq!(
            Setting::Float32(0.25).order(&Setting::Float32(0.15)),
            Ordering::Greater
        );
        assert_eq!(
            serde_json::to_string(&Setting::Float32(0.15)).unwrap(),
            "0.15"
        );
    }

    #[test]
    fn overall_is_the_best_mean_over_every_activity() {
        let records = vec![
            // rho 0.15: good on a, bad on b; rho 0.25: fair on both (the better mean)
            trial("a", 0.15, 0, Some(0.8), 2.0),
            trial("a", 0.15, 1, Some(0.6), 2.0),
            trial("b", 0.15, 0, Some(0.2), 0.9),
            trial("b", 0.15, 1, Some(0.2), 0.9),
            trial("a", 0.25, 0, Some(0.6), 1.5),
            trial("a", 0.25, 1, Some(0.6), 1.5),
            trial("b", 0.25, 0, Some(0.5), 1.5),
            trial("b", 0.25, 1, None, 0.0),
            // rho 0.35 only on a, and the best there: not a candidate overall
            trial("a", 0.35, 0, Some(0.9), 3.0),
        ];
        let r = build(Path::new("r"), records, "mof").unwrap();
        assert_eq!((r.trials, r.ok, r.failed), (9, 8, 1));
        assert_eq!(r.sweeps[0].swept, ["rho"]);
        assert_eq!(r.configurations.len(), 5);
        let conf = |activity: &str, rho: f32| {
            r.configurations
                .iter()
                .find(|c| c.activity == activity && c.settings["rho"] == Setting::Float32(rho))
                .unwrap()
        };
        let b25 = conf("b", 0.25);
        assert_eq!((b25.seeds.clone(), b25.failed_trials.len()), (vec![0], 1));
        assert_eq!(b25.metric("mof").mean, Some(0.5));
        let a15 = conf("a", 0.15);
        assert_eq!(a15.collapsed_share, Some(0.5));
        assert!((a15.metric("mof").mean.unwrap() - 0.7).abs() < 1e-12);
        let pick = |activity: Option<&str>, label_free: bool| {
            r.best
                .iter()
                .find(|b| b.activity.as_deref() == activity && b.label_free == label_free)
                .unwrap()
        };
        assert_eq!(pick(Some("a"), false).configurations, [conf("a", 0.35).id]);
        assert_eq!(pick(Some("b"), false).configurations, [b25.id]);
        let overall = pick(None, false);
        assert_eq!(overall.configurations, [conf("a", 0.25).id, b25.id]);
        assert!((overall.value - 0.55).abs() < 1e-12);
        assert_eq!(overall.activities, 2);
        // label-free: the lowest loss, per activity and over both
        assert_eq!(pick(Some("a"), true).configurations, [conf("a", 0.25).id]);
        assert_eq!(pick(Some("b"), true).configurations, [conf("b", 0.15).id]);
        let free = pick(None, true);
        assert_eq!(free.graph.as_deref(), Some("asot"));
        assert_eq!(free.configurations, [a15.id, conf("b", 0.15).id]);
        assert!((free.value - 1.45).abs() < 1e-12);
    }
}
