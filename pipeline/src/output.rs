//! What a run writes: a run folder with Parquet tables that scripts read, the checkpoint, the
//! resolved configuration and a picture of the segmentations.
//!
//! ```text
//! <out>/predictions.parquet     video, frame, prediction, ground_truth, confidence
//! <out>/video_metrics.parquet   video, activity, frames, mof, f1, miou (video-level matching)
//! <out>/summary.parquet         one row: activity- and video-level metrics, seed, config hash
//! <out>/training_curve.parquet  epoch, batch, step, loss (+ validation MoF per epoch)
//! <out>/checkpoint.safetensors  parameters by PyTorch state-dict name; config in the metadata
//! <out>/config.toml             the resolved configuration
//! <out>/segments.png            ground truth vs prediction bars for the first videos
//! ```
//! Every Parquet file carries the table name, schema and crate version, config hash, seed, device
//! and stage list as key-value metadata. Every file is written atomically.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, RecordBatch, StringArray,
    UInt32Array, UInt64Array,
};
use arrow_schema::Schema;
use clot_datasets::fsio::write_bytes_atomic;
use clot_datasets::write_table;
use clot_schemas::{KEY_ADAPTER, KEY_DEVICE, Table};
use clot_stages::choose_k::KEstimate;
use clot_stages::gpu::Compute;
use clot_stages::params::ParamSet;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::config::TrainConfig;
use crate::train::{CurvePoint, Scores, VideoResult};

/// Provenance written into every file of a run.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub config: TrainConfig,
    pub stages: Vec<String>,
    pub dataset: String,
    pub activity: String,
    /// Where the kernels ran (`cpu`, `wgpu`) and on which adapter, as `cfg.device` resolves.
    pub device: (String, String),
}

impl Provenance {
    /// The provenance of a run of `cfg` (its graph's stage names) on a dataset activity.
    pub fn new(cfg: &TrainConfig, dataset: &str, activity: &str) -> Self {
        let stages = crate::graphs::build(&cfg.mode, &cfg.without)
            .map(|g| g.stages().iter().map(|s| s.name.to_string()).collect())
            .unwrap_or_default();
        let device = match Compute::resolve(cfg.device) {
            Ok(c) => (c.name().to_string(), c.adapter()),
            Err(e) => (cfg.device.to_string(), format!("unavailable: {e}")),
        };
        Provenance {
            config: cfg.clone(),
            stages,
            dataset: dataset.to_string(),
            activity: activity.to_string(),
            device,
        }
    }

    /// The key-value metadata of a table this run writes.
    pub(crate) fn metadata(&self, table: Table) -> HashMap<String, String> {
        let mut md = table.metadata();
        md.insert("clot.config_hash".into(), self.config.hash());
        md.insert("clot.git_revision".into(), GIT_REVISION.into());
        md.insert("clot.seed".into(), self.config.seed.to_string());
        md.insert(KEY_DEVICE.into(), self.device.0.clone());
        md.insert(KEY_ADAPTER.into(), self.device.1.clone());
        md.insert("clot.stages".into(), self.stages.join(","));
        md.insert("clot.mode".into(), self.config.mode.clone());
        md
    }

    fn schema(&self, table: Table) -> Arc<Schema> {
        Arc::new(Schema::new(table.fields(0)).with_metadata(self.metadata(table)))
    }
}

fn batch(schema: &Arc<Schema>, cols: Vec<ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_new(Arc::clone(schema), cols).context("building a record batch")
}

/// Writes the predictions table.
pub fn write_predictions(path: &Path, prov: &Provenance, results: &[VideoResult]) -> Result<()> {
    let schema = prov.schema(Table::Predictions);
    let mut batches = Vec::with_capacity(results.len());
    for r in results {
        let n = r.prediction.len();
        let gt: Int32Array = match &r.ground_truth {
            Some(g) => g.iter().map(|&x| Some(x)).collect(),
            None => (0..n).map(|_| None).collect(),
        };
        batches.push(batch(
            &schema,
            vec![
                Arc::new(StringArray::from(vec![r.name.as_str(); n])),
                Arc::new(UInt32Array::from_iter_values(0..n as u32)),
                Arc::new(Int32Array::from(r.prediction.clone())),
                Arc::new(gt),
                Arc::new(Float32Array::from(r.confidence.clone())),
            ],
        )?);
    }
    write_table(path, schema, &batches).map_err(Into::into)
}

/// Writes the per-video metrics table.
pub fn write_video_metrics(
    path: &Path,
    prov: &Provenance,
    results: &[VideoResult],
    scores: &Scores,
) -> Result<()> {
    let schema = prov.schema(Table::VideoMetrics);
    let per = &scores.per_video;
    // one row per scored video: those with ground truth, in run order (as `score` pairs them)
    let results: Vec<&VideoResult> = results
        .iter()
        .filter(|r| r.ground_truth.is_some())
        .collect();
    let b = batch(
        &schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                results.iter().map(|r| r.name.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                results.iter().map(|r| r.activity.as_str()),
            )),
            Arc::new(UInt32Array::from_iter_values(
                results.iter().map(|r| r.prediction.len() as u32),
            )),
            Arc::new(Float64Array::from_iter_values(per.iter().map(|m| m.mof))),
            Arc::new(Float64Array::from_iter_values(per.iter().map(|m| m.f1))),
            Arc::new(Float64Array::from_iter_values(per.iter().map(|m| m.miou))),
        ],
    )?;
    write_table(path, schema, &[b]).map_err(Into::into)
}

/// What the one-row run summary holds besides the provenance.
#[derive(Debug)]
pub struct Summary<'a> {
    /// The run folder's name.
    pub run: &'a str,
    pub videos: usize,
    pub skipped_videos: usize,
    pub scores: &'a Scores,
    pub wall_s: f64,
    /// With `--actions auto`: how K was estimated.
    pub k_estimate: Option<&'a KEstimate>,
}

/// Writes the one-row run summary.
pub fn write_summary(path: &Path, prov: &Provenance, row: &Summary<'_>) -> Result<()> {
    let &Summary {
        run,
        videos,
        skipped_videos,
        scores,
        wall_s,
        k_estimate,
    } = row;
    let schema = prov.schema(Table::RunSummary);
    let c = &prov.config;
    let (a, v) = (&scores.activity, &scores.video);
    let b = batch(
        &schema,
        vec![
            Arc::new(StringArray::from(vec![run])),
            Arc::new(StringArray::from(vec![c.mode.as_str()])),
            Arc::new(StringArray::from(vec![prov.dataset.as_str()])),
            Arc::new(StringArray::from(vec![prov.activity.as_str()])),
            Arc::new(UInt64Array::from(vec![c.seed])),
            Arc::new(StringArray::from(vec![prov.device.0.as_str()])),
            Arc::new(StringArray::from(vec![c.hash()])),
            Arc::new(UInt32Array::from(vec![c.actions as u32])),
            Arc::new(BooleanArray::from(vec![k_estimate.is_some()])),
            Arc::new(StringArray::from(vec![
                k_estimate.map(|e| e.range.to_string()),
            ])),
            Arc::new(UInt32Array::from(vec![videos as u32])),
            Arc::new(UInt32Array::from(vec![skipped_videos as u32])),
            Arc::new(Float64Array::from(vec![a.mof])),
            Arc::new(Float64Array::from(vec![a.f1])),
            Arc::new(Float64Array::from(vec![a.miou])),
            Arc::new(Float64Array::from(vec![v.mof])),
            Arc::new(Float64Array::from(vec![v.f1])),
            Arc::new(Float64Array::from(vec![v.miou])),
            Arc::new(Float64Array::from(vec![wall_s])),
        ],
    )?;
    write_table(path, schema, &[b]).map_err(Into::into)
}

/// Writes the score curve of `--actions auto` (one row per K tried).
pub fn write_k_choice(path: &Path, prov: &Provenance, est: &KEstimate) -> Result<()> {
    let schema = prov.schema(Table::KChoice);
    let c = &est.curve;
    let b = batch(
        &schema,
        vec![
            Arc::new(UInt32Array::from_iter_values(c.iter().map(|s| s.k as u32))),
            Arc::new(Float64Array::from_iter_values(c.iter().map(|s| s.log_w))),
            Arc::new(Float64Array::from_iter_values(
                c.iter().map(|s| s.log_w_ref),
            )),
            Arc::new(Float64Array::from_iter_values(c.iter().map(|s| s.gap))),
            Arc::new(BooleanArray::from_iter(
                c.iter().map(|s| Some(s.k == est.k)),
            )),
            Arc::new(StringArray::from_iter_values(
                c.iter().map(|_| est.method.as_str()),
            )),
        ],
    )?;
    write_table(path, schema, &[b]).map_err(Into::into)
}

/// Writes the training curve.
pub fn write_curve(path: &Path, prov: &Provenance, curve: &[CurvePoint]) -> Result<()> {
    let schema = prov.schema(Table::TrainingCurve);
    let b = batch(
        &schema,
        vec![
            Arc::new(UInt32Array::from_iter_values(
                curve.iter().map(|c| c.epoch as u32),
            )),
            Arc::new(UInt32Array::from_iter_values(
                curve.iter().map(|c| c.batch as u32),
            )),
            Arc::new(UInt64Array::from_iter_values(curve.iter().map(|c| c.step))),
            Arc::new(Float64Array::from_iter_values(curve.iter().map(|c| c.loss))),
            Arc::new(Float64Array::from_iter_values(
                curve.iter().map(|c| c.loss_frames),
            )),
            Arc::new(Float64Array::from_iter(
                curve.iter().map(|c| c.loss_segments),
            )),
            Arc::new(Float64Array::from_iter(
                curve.iter().map(|c| c.loss_refined),
            )),
            Arc::new(Float64Array::from_iter(curve.iter().map(|c| c.val_mof))),
        ],
    )?;
    write_table(path, schema, &[b]).map_err(Into::into)
}

/// Checks that `params` has exactly the tensors, with the shapes, that the model of `cfg` has.
fn check_shapes(params: &ParamSet, cfg: &TrainConfig) -> std::result::Result<(), String> {
    let expected = crate::train::init_model(cfg, 0);
    for t in &expected.tensors {
        match params.index(&t.name).map(|i| &params.tensors[i]) {
            None => {
                return Err(format!(
                    "tensor {} is missing (expected shape {:?})",
                    t.name, t.shape
                ));
            }
            Some(found) if found.shape != t.shape => {
                return Err(format!(
                    "tensor {} has shape {:?}, expected {:?} for its settings (mlp {:?}, K = {})",
                    t.name, found.shape, t.shape, cfg.mlp, cfg.actions
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = params
        .tensors
        .iter()
        .find(|t| expected.index(&t.name).is_none())
    {
        return Err(format!(
            "tensor {} is not part of a `{}` model with these settings",
            extra.name, cfg.mode
        ));
    }
    Ok(())
}

/// The git revision this binary was built from (`pipeline/build.rs`), or "unknown".
pub const GIT_REVISION: &str = env!("CLOT_GIT_REVISION");

/// Metadata key of the configuration in a checkpoint.
pub const CHECKPOINT_CONFIG: &str = "clot.config";

/// Writes `params` as safetensors (f32, PyTorch state-dict names) with the configuration (TOML) in
/// the metadata, atomically. `torch` reads it with `safetensors.torch.load_file`.
pub fn write_checkpoint(path: &Path, params: &ParamSet, cfg: &TrainConfig) -> Result<()> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = params
        .tensors
        .iter()
        .map(|t| {
            let b = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (t.name.clone(), t.shape.clone(), b)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| anyhow!("checkpoint tensor: {e}"))?;
    let mut md = HashMap::new();
    md.insert(CHECKPOINT_CONFIG.to_string(), toml::to_string(cfg)?);
    md.insert("format".to_string(), "pt".to_string());
    md.insert(
        "clot.crate_version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    let out = safetensors::serialize(views, Some(md)).map_err(|e| anyhow!("serialising: {e}"))?;
    write_bytes_atomic(path, &out).map_err(Into::into)
}

/// Writes a run's [`DrawLog`](clot_stages::record::DrawLog) as safetensors (f32, f64 and i64
/// tensors by their log names), with the configuration (TOML, key `clot.config`) and the videos
/// in dataset order (JSON list, key `clot.videos`) in the metadata, atomically. Python reads it
/// with `safetensors.numpy.load_file`.
pub fn write_draws(
    path: &Path,
    log: &clot_stages::record::DrawLog,
    cfg: &TrainConfig,
    videos: &[&str],
) -> Result<()> {
    use clot_stages::record::Values;
    let mut seen = std::collections::HashSet::new();
    if let Some(t) = log.tensors.iter().find(|t| !seen.insert(t.name.as_str())) {
        bail!("the draw log has `{}` twice", t.name);
    }
    let bytes: Vec<(&str, &[usize], Dtype, Vec<u8>)> = log
        .tensors
        .iter()
        .map(|t| {
            let (dtype, b) = match &t.values {
                Values::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                Values::F64(v) => (Dtype::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                Values::I64(v) => (Dtype::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            };
            (t.name.as_str(), t.shape.as_slice(), dtype, b)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, s, dt, b)| Ok((n.to_string(), TensorView::new(*dt, s.to_vec(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| anyhow!("draw log tensor: {e}"))?;
    let mut md = HashMap::new();
    md.insert(CHECKPOINT_CONFIG.to_string(), toml::to_string(cfg)?);
    md.insert("clot.videos".to_string(), serde_json::to_string(videos)?);
    let out = safetensors::serialize(views, Some(md))
        .map_err(|e| anyhow!("serialising the draw log {}: {e}", path.display()))?;
    write_bytes_atomic(path, &out).map_err(Into::into)
}

/// Reads a checkpoint written by [`write_checkpoint`]: its parameters (in file order of the
/// names) and configuration.
pub fn read_checkpoint(path: &Path) -> Result<(ParamSet, TrainConfig)> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
    let bad = |e: &dyn std::fmt::Display| anyhow!("checkpoint {}: {e}", path.display());
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(&e))?;
    let cfg_text = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CHECKPOINT_CONFIG))
        .ok_or_else(|| {
            bad(&format!(
                "no `{CHECKPOINT_CONFIG}` metadata; was it written by clot?"
            ))
        })?;
    let cfg: TrainConfig = toml::from_str(cfg_text).map_err(|e| bad(&e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(&e))?;
    let mut names: Vec<&str> = st.names();
    names.sort_by_key(|n| order_key(n));
    let mut params = ParamSet::default();
    for name in names {
        let t = st.tensor(name).map_err(|e| bad(&e))?;
        if t.dtype() != Dtype::F32 {
            bail!(
                "checkpoint {}: tensor {name} is {:?}, expected F32",
                path.display(),
                t.dtype()
            );
        }
        let data: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(bad_v) = data.iter().find(|v| !v.is_finite()) {
            bail!("checkpoint {}: tensor {name} holds {bad_v}", path.display());
        }
        params.push(name, t.shape().to_vec(), data);
    }
    check_shapes(&params, &cfg).map_err(|e| bad(&e))?;
    Ok((params, cfg))
}

/// `mlp.<i>.weight` before `mlp.<i>.bias`, layers in order, then everything else by name.
fn order_key(name: &str) -> (u8, usize, String) {
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        ["mlp", i, kind] => (
            0,
            i.parse().unwrap_or(usize::MAX),
            (*kind == "bias").to_string(),
        ),
        _ => (1, 0, name.to_string()),
    }
}

/// Writes `text` atomically.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    write_bytes_atomic(path, text.as_bytes()).map_err(Into::into)
}
