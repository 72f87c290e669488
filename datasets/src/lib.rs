//! Getting data into clot.
//!
//! * [`layout`]: the standard layout (`features/`, `groundTruth/`, `mapping/`) with `.txt` or
//!   `.npy` features, read in parallel and checked once ([`read_standard`], [`write_standard`]).
//! * [`parquet_io`]: the Parquet dataset format, one row per frame, row groups aligned to videos;
//!   its reader decodes only the requested videos and columns.
//! * [`synth`]: the seeded generator of benchmark-like data behind the built-in `demo` dataset.
//! * [`mod@preset`]: the dataset presets of SPEC §1 as a `const` registry.
//! * [`open`]: one entry point for "a dataset" on the command line: `demo`, a Parquet file or a
//!   standard-layout folder.
//! * [`shared`]: where tests and benchmarks find the shared reference data.
//!
//! Errors are [`DatasetError`]; every variant names the file, line, row or video at fault.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod dataset;
pub mod error;
pub mod fsio;
pub mod layout;
pub mod mapping;
pub mod npy;
pub mod parquet_io;
pub mod preset;
pub mod shared;
pub mod synth;
pub mod txt;

pub use dataset::{Dataset, Summary, Video};
pub use error::{DatasetError, Result};
pub use layout::{ReadOptions, ReadReport, read_standard, read_standard_with, write_standard};
pub use mapping::Mapping;
pub use parquet_io::{
    ParquetCompression, ParquetSelection, frame_matrix_batch, read_frame_matrix, read_parquet,
    read_parquet_index, read_parquet_selected, read_parquet_videos, write_parquet, write_table,
};
pub use preset::{ActivityRule, COMMON, GENERIC, GENERIC_MLP_TAIL, PRESETS, Preset, preset};
pub use synth::{SynthConfig, generate};

use std::path::Path;

/// The name of the built-in synthetic dataset.
pub const DEMO: &str = "demo";

/// Opens a dataset named on the command line: [`DEMO`] (generated in memory), a `.parquet` file,
/// or a standard-layout folder (read with `opts`). Activities in `opts` filter all three.
pub fn open(spec: &str, opts: &ReadOptions) -> Result<(Dataset, ReadReport)> {
    open_with(spec, opts, &|_| {})
}

/// [`open`] with a per-video progress hook (called for standard-layout folders).
pub fn open_with(
    spec: &str,
    opts: &ReadOptions,
    on_video: &(dyn Fn(&str) + Sync),
) -> Result<(Dataset, ReadReport)> {
    let path = Path::new(spec);
    let (mut ds, report) = if spec == DEMO && !path.exists() {
        (generate(&SynthConfig::demo())?, ReadReport::default())
    } else if path.extension().and_then(|e| e.to_str()) == Some("parquet") {
        if !path.is_file() {
            return Err(DatasetError::Missing {
                what: "Parquet dataset".into(),
                path: path.to_path_buf(),
            });
        }
        let sel = ParquetSelection {
            activities: opts.activities.clone(),
            zero_non_finite: opts.zero_non_finite,
            ..ParquetSelection::default()
        };
        let (ds, zeroed) = read_parquet_selected(path, &sel)?;
        let report = ReadReport {
            zeroed_non_finite: zeroed,
            ..ReadReport::default()
        };
        (ds, report)
    } else {
        return read_standard_with(path, opts, on_video);
    };
    ds.retain_activities(&opts.activities);
    let mut report = report;
    report.unlabelled = ds
        .videos
        .iter()
        .filter(|v| v.labels.is_none())
        .map(|v| v.name.clone())
        .collect();
    if let Some((d, why)) = &opts.expected_dim
        && let Some(v) = ds.videos.iter().find(|v| v.features.cols() != *d)
    {
        {
            return Err(DatasetError::Dim {
                video: v.name.clone(),
                path: path.to_path_buf(),
                found: v.features.cols(),
                expected: *d,
                reference: why.clone(),
            });
        }
    }
    if ds.videos.is_empty() {
        return Err(DatasetError::Invalid {
            what: spec.to_string(),
            message: "no videos selected".into(),
        });
    }
    Ok((ds, report))
}
