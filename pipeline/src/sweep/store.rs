//! Where a sweep's results go: a Hive-partitioned Parquet dataset that pandas, polars, DuckDB and
//! pyarrow read as one table.
//!
//! ```text
//! <out>/sweep=<name>/trial=<id>/trial.parquet            one row (written last: the trial's mark)
//! <out>/sweep=<name>/trial=<id>/video_metrics.parquet    per video (with ground truth)
//! <out>/sweep=<name>/trial=<id>/training_curve.parquet   per step
//! <out>/sweep=<name>/trial=<id>/predictions.parquet      per frame (with --predictions)
//! <out>/sweep=<name>/trial=<id>/k_choice.parquet         per K tried (with actions = "auto")
//! ```
//!
//! Every file is written atomically (temporary name, fsync, rename), and `trial.parquet` is written
//! after the others, so a trial whose `trial.parquet` says `ok` is complete and a sweep killed at
//! any moment leaves only whole files. `trial.parquet` has the identity and outcome columns of
//! [`Table::SweepTrial`], then one typed column per setting named as in `config.toml` (`mode`,
//! `seed`, `rho`, …: integers Int64, settings that are f32 Float32, flags Boolean, lists such as
//! `mlp` and `without` as comma-joined text, `exclude` nullable). The partition columns `sweep` and
//! `trial` come from the path; inside the file they are `sweep_name` and `trial_id`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use clot_datasets::write_table;
use clot_schemas::Table;

use crate::config::TrainConfig;
use crate::output::Provenance;

/// The folder of one sweep.
pub fn sweep_dir(out: &Path, sweep: &str) -> PathBuf {
    out.join(format!("sweep={sweep}"))
}

/// The folder of one trial.
pub fn trial_dir(out: &Path, sweep: &str, id: &str) -> PathBuf {
    sweep_dir(out, sweep).join(format!("trial={id}"))
}

/// How a trial ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TrialRow {
    pub sweep: String,
    pub trial: String,
    /// `ok` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub dataset: String,
    pub activity: String,
    pub preset: Option<String>,
    pub videos: u32,
    /// Videos predicted but not scored (no ground truth).
    pub unscored_videos: u32,
    pub frames: u64,
    /// The range K̂ was estimated over (`actions = "auto"`); `None` when K was given.
    pub k_range: Option<String>,
    pub mof: Option<f64>,
    pub f1: Option<f64>,
    pub miou: Option<f64>,
    pub video_mof: Option<f64>,
    pub video_f1: Option<f64>,
    pub video_miou: Option<f64>,
    /// Distinct predicted clusters over all videos.
    pub clusters: Option<u32>,
    /// Fewer than half of K clusters predicted (a collapsed run).
    pub collapsed: Option<bool>,
    /// The last training step's loss: a label-free signal.
    pub final_loss: Option<f64>,
    /// The mean over videos of the ASOT objective at the final plans (evaluation settings): a
    /// second label-free signal, lower is a better fit.
    pub final_ot_objective: Option<f64>,
    pub train_s: f64,
    pub eval_s: f64,
    pub wall_s: f64,
    /// This process's peak resident memory when the trial ended (Linux), MiB.
    pub peak_rss_mib: Option<f64>,
}

/// The columns of a configuration, in key order: (name, type, one-row array).
fn setting_columns(cfg: &TrainConfig) -> Vec<(String, DataType, ArrayRef)> {
    let mut out: Vec<(String, DataType, ArrayRef)> = Vec::new();
    let Ok(toml::Value::Table(t)) = toml::Value::try_from(cfg) else {
        return out;
    };
    let mut keys: Vec<String> = t.keys().cloned().collect();
    // absent from the TOML when None / at the default, but a column of every trial
    keys.extend(["device".into(), "exclude".into(), "f1_rng".into()]);
    keys.sort();
    keys.dedup();
    for k in &keys {
        if k.as_str() == "device" {
            out.push((
                k.clone(),
                DataType::Utf8,
                Arc::new(StringArray::from(vec![cfg.device.to_string()])),
            ));
            continue;
        }
        if k.as_str() == "f1_rng" {
            out.push((
                k.clone(),
                DataType::Utf8,
                Arc::new(StringArray::from(vec![cfg.f1_rng.name()])),
            ));
            continue;
        }
        if k.as_str() == "exclude" {
            out.push((
                k.clone(),
                DataType::Int64,
                Arc::new(Int64Array::from(vec![cfg.exclude.map(i64::from)])),
            ));
            continue;
        }
        let Some(value) = t.get(k) else { continue };
        let (ty, arr): (DataType, ArrayRef) = match value {
            toml::Value::Integer(i) => (DataType::Int64, Arc::new(Int64Array::from(vec![*i]))),
            // every float setting is f32: keep its value exactly (0.15, not 0.15000000596)
            toml::Value::Float(f) => (
                DataType::Float32,
                Arc::new(Float32Array::from(vec![*f as f32])),
            ),
            toml::Value::Boolean(b) => (DataType::Boolean, Arc::new(BooleanArray::from(vec![*b]))),
            toml::Value::String(s) => (
                DataType::Utf8,
                Arc::new(StringArray::from(vec![s.as_str()])),
            ),
            toml::Value::Array(a) => {
                let text: Vec<String> = a
                    .iter()
                    .map(|v| match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                (
                    DataType::Utf8,
                    Arc::new(StringArray::from(vec![text.join(",")])),
                )
            }
            other => (
                DataType::Utf8,
                Arc::new(StringArray::from(vec![other.to_string()])),
            ),
        };
        out.push((k.clone(), ty, arr));
    }
    out
}

/// Writes `trial.parquet` (atomically).
pub fn write_trial(path: &Path, prov: &Provenance, row: &TrialRow) -> Result<()> {
    let base = Table::SweepTrial.fields(0);
    let settings = setting_columns(&prov.config);
    let mut fields: Vec<Field> = base;
    fields.extend(
        settings
            .iter()
            .map(|(name, ty, _)| Field::new(name, ty.clone(), name == "exclude")),
    );
    let schema = Arc::new(Schema::new(fields).with_metadata(prov.metadata(Table::SweepTrial)));
    let s = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    let so = |v: &Option<String>| -> ArrayRef { Arc::new(StringArray::from(vec![v.clone()])) };
    let fo = |v: Option<f64>| -> ArrayRef { Arc::new(Float64Array::from(vec![v])) };
    let f = |v: f64| -> ArrayRef { Arc::new(Float64Array::from(vec![v])) };
    let mut cols: Vec<ArrayRef> = vec![
        s(&row.sweep),
        s(&row.trial),
        s(&row.status),
        so(&row.error),
        s(&row.dataset),
        s(&row.activity),
        so(&row.preset),
        Arc::new(UInt32Array::from(vec![row.videos])),
        Arc::new(UInt32Array::from(vec![row.unscored_videos])),
        Arc::new(UInt64Array::from(vec![row.frames])),
        Arc::new(BooleanArray::from(vec![row.k_range.is_some()])),
        so(&row.k_range),
        fo(row.mof),
        fo(row.f1),
        fo(row.miou),
        fo(row.video_mof),
        fo(row.video_f1),
        fo(row.video_miou),
        Arc::new(UInt32Array::from(vec![row.clusters])),
        Arc::new(BooleanArray::from(vec![row.collapsed])),
        fo(row.final_loss),
        fo(row.final_ot_objective),
        f(row.train_s),
        f(row.eval_s),
        f(row.wall_s),
        fo(row.peak_rss_mib),
    ];
    cols.extend(settings.into_iter().map(|(_, _, a)| a));
    let batch =
        RecordBatch::try_new(Arc::clone(&schema), cols).context("building the trial row")?;
    write_table(path, schema, &[batch]).map_err(Into::into)
}

/// The `status` of a written `trial.parquet`, or `None` when it is absent or unreadable (a trial
/// to run again).
pub fn trial_status(path: &Path) -> Option<String> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    let file = std::fs::File::open(path).ok()?;
    let mut reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .ok()?
        .build()
        .ok()?;
    let batch = reader.next()?.ok()?;
    let col = batch.column_by_name("status")?.as_string_opt::<i32>()?;
    (col.len() == 1).then(|| col.value(0).to_string())
}
