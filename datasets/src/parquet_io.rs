//! The Parquet dataset format: one row per frame with columns `video`, `activity`, `frame`,
//! `features` (`FixedSizeList<Float32, D>`) and `label` (Int32, null without ground truth); see
//! [`Table::DatasetFrames`]. Row groups are aligned to videos: a row group never holds frames of two
//! videos, so a reader fetches a video by its row groups alone. The schema metadata carries the
//! schema version and an index ([`KEY_INDEX`]: name, D, mapping, and per video its activity, frame
//! count and row-group range).
//!
//! [`read_parquet_videos`] decodes only the requested videos (row-group selection) and columns
//! (projection). Files are written atomically.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, Int32Array, RecordBatch, StringArray,
    UInt32Array,
};
use arrow_schema::Schema;
use clot_schemas::{FrameFeatures, Labels, Table, check_schema};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::arrow_writer::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, Video};
use crate::error::{DatasetError, Result, io_err};
use crate::fsio::write_atomic;
use crate::mapping::Mapping;

/// Schema-metadata key of the dataset index (JSON, [`DatasetIndex`]).
pub const KEY_INDEX: &str = "clot.dataset";

/// The per-file index stored in the schema metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetIndex {
    pub name: String,
    pub dim: usize,
    pub mapping: Mapping,
    pub videos: Vec<IndexedVideo>,
}

/// One video's entry in the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexedVideo {
    pub name: String,
    pub activity: String,
    pub frames: usize,
    /// Row groups `row_groups.0 .. row_groups.1` hold exactly this video's frames.
    pub row_groups: (usize, usize),
    pub has_labels: bool,
}

/// Compression of the Parquet pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParquetCompression {
    /// Fast to read and write (the default).
    #[default]
    Snappy,
    /// Smaller files (zstd level 3).
    Zstd,
    /// Uncompressed.
    None,
}

/// Writes `ds` as a Parquet dataset at `path` (atomically: temp file, fsync, rename).
pub fn write_parquet(ds: &Dataset, path: &Path, compression: ParquetCompression) -> Result<()> {
    let perr = |e: &dyn std::fmt::Display| DatasetError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let compression = match compression {
        ParquetCompression::Snappy => Compression::SNAPPY,
        ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::try_new(3).map_err(|e| perr(&e))?),
        ParquetCompression::None => Compression::UNCOMPRESSED,
    };
    let dim = i32::try_from(ds.dim).map_err(|e| perr(&e))?;
    let props = WriterProperties::builder()
        .set_compression(compression)
        // float features rarely repeat: dictionary pages would only cost time
        .set_max_row_group_bytes(None)
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(ColumnPath::from("video"), true)
        .set_column_dictionary_enabled(ColumnPath::from("activity"), true)
        .build();
    write_atomic(path, |file| {
        let mut index = DatasetIndex {
            name: ds.name.clone(),
            dim: ds.dim,
            mapping: ds.mapping.clone(),
            videos: Vec::with_capacity(ds.videos.len()),
        };
        // The schema (written first) holds the index, so the row-group ranges are computed up
        // front: each video ends its row groups with `flush`, and the writer splits a video only
        // above the row limit. The loop below checks that the writer did exactly that.
        let limit = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
        let mut next_group = 0;
        for v in &ds.videos {
            let groups = v.frames().div_ceil(limit).max(1);
            index.videos.push(IndexedVideo {
                name: v.name.clone(),
                activity: v.activity.clone(),
                frames: v.frames(),
                row_groups: (next_group, next_group + groups),
                has_labels: v.labels.is_some(),
            });
            next_group += groups;
        }
        let mut schema = Table::DatasetFrames.schema(dim);
        let json = serde_json::to_string(&index).map_err(|e| perr(&e))?;
        schema.metadata.insert(KEY_INDEX.to_string(), json);
        let schema = Arc::new(schema);
        let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props.clone()))
            .map_err(|e| perr(&e))?;
        for (v, entry) in ds.videos.iter().zip(&index.videos) {
            if v.features.cols() != ds.dim {
                return Err(DatasetError::Dim {
                    video: v.name.clone(),
                    path: path.to_path_buf(),
                    found: v.features.cols(),
                    expected: ds.dim,
                    reference: "the dataset's dimension".into(),
                });
            }
            let batch = video_batch(v, Arc::clone(&schema)).map_err(|e| perr(&e))?;
            writer.write(&batch).map_err(|e| perr(&e))?;
            writer.flush().map_err(|e| perr(&e))?;
            let written = writer.flushed_row_groups().len();
            if written != entry.row_groups.1 {
                return Err(perr(&format!(
                    "video `{}` was written as row groups ..{written}, expected {:?}",
                    v.name, entry.row_groups
                )));
            }
        }
        writer.close().map_err(|e| perr(&e))?;
        Ok(())
    })
}

fn video_batch(
    v: &Video,
    schema: Arc<Schema>,
) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    let n = v.frames();
    let frames = u32::try_from(n)
        .map_err(|e| arrow_schema::ArrowError::InvalidArgumentError(e.to_string()))?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            v.name.as_str(),
            n,
        ))),
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            v.activity.as_str(),
            n,
        ))),
        Arc::new(UInt32Array::from_iter_values(0..frames)),
        Arc::new(v.features.array().clone()),
        match &v.labels {
            Some(l) => Arc::new(l.array().clone()),
            None => Arc::new(Int32Array::new_null(n)),
        },
    ];
    RecordBatch::try_new(schema, columns)
}

/// Which videos and columns to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetSelection {
    /// Video names to read; empty reads all (after the activity filter).
    pub videos: Vec<String>,
    /// Activities to read; empty reads all.
    pub activities: Vec<String>,
    /// Decode the `features` column.
    pub features: bool,
    /// Decode the `label` column.
    pub labels: bool,
    /// Replace NaN/inf features by 0 (counted in [`PartialVideo::zeroed`]) instead of failing.
    pub zero_non_finite: bool,
}

impl Default for ParquetSelection {
    fn default() -> Self {
        ParquetSelection {
            videos: Vec::new(),
            activities: Vec::new(),
            features: true,
            labels: true,
            zero_non_finite: false,
        }
    }
}

/// A video as read from Parquet: only the requested columns are present.
#[derive(Debug, Clone, PartialEq)]
pub struct PartialVideo {
    pub name: String,
    pub activity: String,
    pub frames: usize,
    pub features: Option<FrameFeatures>,
    pub labels: Option<Labels>,
    /// Non-finite feature values replaced by 0 (with [`ParquetSelection::zero_non_finite`]).
    pub zeroed: usize,
}

/// Reads only the file's index (no data pages), after checking its schema.
pub fn read_parquet_index(path: &Path) -> Result<DatasetIndex> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| DatasetError::Parquet {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    index_of(builder.schema(), path)
}

fn index_of(schema: &Schema, path: &Path) -> Result<DatasetIndex> {
    let info = check_schema(schema, Table::DatasetFrames, &path.display().to_string())?;
    let raw = schema
        .metadata()
        .get(KEY_INDEX)
        .ok_or_else(|| DatasetError::Parquet {
            path: path.to_path_buf(),
            message: format!("no `{KEY_INDEX}` metadata; not a dataset written by clot"),
        })?;
    let index: DatasetIndex = serde_json::from_str(raw).map_err(|e| DatasetError::Parquet {
        path: path.to_path_buf(),
        message: format!("bad `{KEY_INDEX}` metadata: {e}"),
    })?;
    if info.dim != Some(index.dim as i32) {
        return Err(DatasetError::Parquet {
            path: path.to_path_buf(),
            message: format!(
                "index says D = {} but the features column has {:?}",
                index.dim, info.dim
            ),
        });
    }
    Ok(index)
}

/// Reads the selected videos and columns of a Parquet dataset. Videos are decoded in parallel
/// (one reader per video over its own row groups, sharing the parsed footer).
pub fn read_parquet_videos(
    path: &Path,
    sel: &ParquetSelection,
) -> Result<(DatasetIndex, Vec<PartialVideo>)> {
    let perr = |message: String| DatasetError::Parquet {
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::default())
        .map_err(|e| perr(e.to_string()))?;
    let index = index_of(meta.schema(), path)?;
    let total_groups = meta.metadata().num_row_groups();

    let known: HashMap<&str, &IndexedVideo> =
        index.videos.iter().map(|v| (v.name.as_str(), v)).collect();
    for name in &sel.videos {
        if !known.contains_key(name.as_str()) {
            return Err(DatasetError::Unknown {
                what: "video",
                name: name.clone(),
                known: format!("{} videos in {}", index.videos.len(), path.display()),
            });
        }
    }
    let chosen: Vec<&IndexedVideo> = index
        .videos
        .iter()
        .filter(|v| sel.videos.is_empty() || sel.videos.contains(&v.name))
        .filter(|v| sel.activities.is_empty() || sel.activities.contains(&v.activity))
        .collect();
    let schema = meta.schema();
    let col = |name: &str| schema.index_of(name).map_err(|e| perr(e.to_string()));
    let mut roots = vec![col("video")?, col("frame")?];
    if sel.features {
        roots.push(col("features")?);
    }
    if sel.labels {
        roots.push(col("label")?);
    }
    let mask = ProjectionMask::roots(meta.metadata().file_metadata().schema_descr(), roots);
    let out = chosen
        .par_iter()
        .map(|v| {
            if v.row_groups.1 > total_groups || v.row_groups.0 >= v.row_groups.1 {
                return Err(perr(format!(
                    "index gives video `{}` row groups {:?} of {total_groups}",
                    v.name, v.row_groups
                )));
            }
            // the index must agree with the footer before anything is allocated from it
            let rows: i64 = (v.row_groups.0..v.row_groups.1)
                .map(|g| meta.metadata().row_group(g).num_rows())
                .sum();
            if rows != v.frames as i64 {
                return Err(perr(format!(
                    "index says video `{}` has {} frames, its row groups hold {rows} rows",
                    v.name, v.frames
                )));
            }
            // a fresh handle per video: cloned handles share one seek position
            let file = std::fs::File::open(path).map_err(io_err(path))?;
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone())
                .with_row_groups((v.row_groups.0..v.row_groups.1).collect())
                .with_projection(mask.clone())
                .with_batch_size(v.frames.clamp(1, 256 * 1024))
                .build()
                .map_err(|e| perr(e.to_string()))?;
            read_video(reader, v, index.dim, sel, path)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((index, out))
}

fn read_video(
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    v: &IndexedVideo,
    dim: usize,
    sel: &ParquetSelection,
    path: &Path,
) -> Result<PartialVideo> {
    let perr = |message: String| DatasetError::Parquet {
        path: path.to_path_buf(),
        message,
    };
    let mut features = Vec::with_capacity(if sel.features { v.frames * dim } else { 0 });
    let mut labels = Vec::with_capacity(if sel.labels { v.frames } else { 0 });
    let mut null_labels = 0;
    let mut filled = 0usize;
    for batch in reader {
        let batch = batch.map_err(|e| perr(e.to_string()))?;
        let n = batch.num_rows();
        if filled + n > v.frames {
            return Err(perr(format!(
                "video `{}` has more rows than the index says ({})",
                v.name, v.frames
            )));
        }
        let get = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| perr(format!("column `{name}` missing in batch")))
        };
        let videos = get("video")?;
        let videos = videos
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| perr("column `video` is not Utf8".into()))?;
        let frames = get("frame")?;
        let frames = frames
            .as_any()
            .downcast_ref::<UInt32Array>()
            .ok_or_else(|| perr("column `frame` is not UInt32".into()))?;
        for r in 0..n {
            let want = (filled + r) as u32;
            if videos.value(r) != v.name || frames.value(r) != want {
                return Err(perr(format!(
                    "row {want} of video `{}` holds video `{}` frame {}; the file is inconsistent with its index",
                    v.name,
                    videos.value(r),
                    frames.value(r)
                )));
            }
        }
        if sel.features {
            let f = get("features")?;
            let f = f
                .as_any()
                .downcast_ref::<FixedSizeListArray>()
                .ok_or_else(|| perr("column `features` is not a FixedSizeList".into()))?;
            let vals = f
                .values()
                .as_any()
                .downcast_ref::<Float32Array>()
                .ok_or_else(|| perr("column `features` items are not Float32".into()))?;
            let base = f.value_offset_at(0);
            features.extend_from_slice(&vals.values()[base..base + n * dim]);
        }
        if sel.labels {
            let l = get("label")?;
            let l = l
                .as_any()
                .downcast_ref::<Int32Array>()
                .ok_or_else(|| perr("column `label` is not Int32".into()))?;
            null_labels += l.null_count();
            labels.extend_from_slice(&l.values()[..n]);
        }
        filled += n;
    }
    if filled != v.frames {
        return Err(perr(format!(
            "video `{}` has {filled} rows, the index says {}",
            v.name, v.frames
        )));
    }
    let what = format!("{}: video `{}`", path.display(), v.name);
    let zeroed =
        crate::layout::check_finite(&mut features, dim, Path::new(&what), sel.zero_non_finite)?;
    let features = if sel.features {
        Some(FrameFeatures::from_vec(features, dim, &what)?)
    } else {
        None
    };
    let labels = match (sel.labels, null_labels) {
        (false, _) => None,
        (true, 0) => Some(Labels::from_vec(labels)),
        (true, n) if n == v.frames => None,
        (true, n) => {
            return Err(perr(format!(
                "video `{}`: {n} of {} labels are null",
                v.name, v.frames
            )));
        }
    };
    Ok(PartialVideo {
        name: v.name.clone(),
        activity: v.activity.clone(),
        frames: v.frames,
        features,
        labels,
        zeroed,
    })
}

/// Reads a whole Parquet dataset (or the selected videos/activities) into memory.
pub fn read_parquet(path: &Path, videos: &[String], activities: &[String]) -> Result<Dataset> {
    let sel = ParquetSelection {
        videos: videos.to_vec(),
        activities: activities.to_vec(),
        ..ParquetSelection::default()
    };
    read_parquet_selected(path, &sel).map(|(ds, _)| ds)
}

/// [`read_parquet`] with a whole selection; also returns how many non-finite feature values were
/// replaced by 0.
pub fn read_parquet_selected(path: &Path, sel: &ParquetSelection) -> Result<(Dataset, usize)> {
    let (index, parts) = read_parquet_videos(path, sel)?;
    let zeroed = parts.iter().map(|p| p.zeroed).sum();
    let videos = parts
        .into_iter()
        .map(|p| {
            let features = p.features.ok_or_else(|| DatasetError::Parquet {
                path: path.to_path_buf(),
                message: format!("video `{}` has no features", p.name),
            })?;
            Ok(Video {
                name: p.name,
                activity: p.activity,
                features,
                labels: p.labels,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((
        Dataset {
            name: index.name,
            dim: index.dim,
            mapping: index.mapping,
            videos,
        },
        zeroed,
    ))
}

/// Writes `batches` (all with `schema`) to `path` atomically, zstd-compressed. For result tables
/// (predictions, metrics, plans) that scripts read.
pub fn write_table(path: &Path, schema: Arc<Schema>, batches: &[RecordBatch]) -> Result<()> {
    let perr = |e: &dyn std::fmt::Display| DatasetError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).map_err(|e| perr(&e))?,
        ))
        .build();
    write_atomic(path, |file| {
        let mut w =
            ArrowWriter::try_new(file, Arc::clone(&schema), Some(props)).map_err(|e| perr(&e))?;
        for b in batches {
            w.write(b).map_err(|e| perr(&e))?;
        }
        w.close().map_err(|e| perr(&e))?;
        Ok(())
    })
}

/// Reads a [`Table::FrameMatrix`] file: its kind (`cost`, `affinity`, `plan`) and, per video in
/// file order, the N×K matrix.
pub fn read_frame_matrix(path: &Path) -> Result<(String, Vec<(String, clot_schemas::F32Matrix)>)> {
    let perr = |message: String| DatasetError::Parquet {
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| perr(e.to_string()))?;
    let info = check_schema(
        builder.schema(),
        Table::FrameMatrix,
        &path.display().to_string(),
    )?;
    let kind = builder
        .schema()
        .metadata()
        .get(clot_schemas::KEY_MATRIX_KIND)
        .cloned()
        .unwrap_or_else(|| "cost".into());
    let k = info.dim.unwrap_or(0).max(0) as usize;
    let reader = builder.build().map_err(|e| perr(e.to_string()))?;
    let mut videos: Vec<(String, Vec<f32>)> = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| perr(e.to_string()))?;
        let names = batch
            .column_by_name("video")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned());
        let frames = batch
            .column_by_name("frame")
            .and_then(|c| c.as_any().downcast_ref::<UInt32Array>().cloned());
        let values = batch
            .column_by_name("values")
            .and_then(|c| c.as_any().downcast_ref::<FixedSizeListArray>().cloned());
        let (Some(names), Some(frames), Some(values)) = (names, frames, values) else {
            return Err(perr(
                "columns video/frame/values have unexpected types".into(),
            ));
        };
        let items = values
            .values()
            .as_any()
            .downcast_ref::<Float32Array>()
            .cloned()
            .ok_or_else(|| perr("values are not Float32".into()))?;
        let base = values.value_offset_at(0);
        for r in 0..batch.num_rows() {
            let name = names.value(r);
            if videos.last().is_none_or(|(v, _)| v != name) {
                if videos.iter().any(|(v, _)| v == name) {
                    return Err(perr(format!("rows of video `{name}` are not contiguous")));
                }
                videos.push((name.to_string(), Vec::new()));
            }
            let (vname, vals) = videos.last_mut().ok_or_else(|| perr("no video".into()))?;
            if frames.value(r) as usize != vals.len() / k.max(1) {
                return Err(perr(format!(
                    "video `{vname}`: frame {} out of order (expected {})",
                    frames.value(r),
                    vals.len() / k.max(1)
                )));
            }
            vals.extend_from_slice(&items.values()[base + r * k..base + (r + 1) * k]);
        }
    }
    let out = videos
        .into_iter()
        .map(|(name, vals)| {
            let what = format!("{}: video `{name}`", path.display());
            Ok((name, clot_schemas::F32Matrix::from_vec(vals, k, &what)?))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((kind, out))
}

/// Builds the record batch of one video's N×K matrix for a [`Table::FrameMatrix`] file.
pub fn frame_matrix_batch(
    schema: Arc<Schema>,
    video: &str,
    m: &clot_schemas::F32Matrix,
) -> Result<RecordBatch> {
    let n = m.rows();
    let frames = u32::try_from(n).map_err(|e| DatasetError::Invalid {
        what: video.to_string(),
        message: e.to_string(),
    })?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(video, n))),
        Arc::new(UInt32Array::from_iter_values(0..frames)),
        Arc::new(m.array().clone()),
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| DatasetError::Invalid {
        what: video.to_string(),
        message: e.to_string(),
    })
}
