//! The standard dataset layout (SPEC §1), read and written:
//!
//! ```text
//! <dir>/features/<activity>/<video>.txt|.npy   N rows × D floats  (or features/<video>.* directly)
//! <dir>/groundTruth/<video>                     one label name per line (also <video>.txt)
//! <dir>/mapping/mapping.txt                     "<id> <name>" per line
//! ```
//!
//! Reading checks everything once and names the file, line and video of any problem (see
//! [`DatasetError`]). Videos are read in parallel on the rayon pool. A video may have more feature
//! rows than labels (the first N rows are used, as the reference does), never fewer.
//!
//! Ground truth is optional: without `groundTruth/` (and then without `mapping/`) every video is
//! unlabelled, and a video without a ground-truth file is unlabelled too ([`ReadReport::unlabelled`]
//! names them). With [`ReadOptions::skip_bad_videos`] a video that cannot be read is left out and
//! reported ([`ReadReport::skipped`]) instead of failing the whole dataset.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clot_schemas::{FrameFeatures, Labels};
use rayon::prelude::*;

use crate::dataset::{Dataset, Video};
use crate::error::{DatasetError, Result, io_err};
use crate::fsio::write_bytes_atomic;
use crate::mapping::{Mapping, parse_labels};
use crate::npy::parse_npy;
use crate::preset::{ActivityRule, Preset, SINGLE_ACTIVITY};
use crate::txt::{TextMatrix, parse_text_matrix};

/// How to read a dataset in the standard layout.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// Activities to read; empty reads all.
    pub activities: Vec<String>,
    /// How a video's activity is found.
    pub activity_rule: ActivityRule,
    /// The file under `mapping/`.
    pub mapping_file: String,
    /// A label name that means background (−1) even where the mapping omits it.
    pub background: Option<String>,
    /// The feature dimension every video must have, and where that requirement comes from.
    pub expected_dim: Option<(usize, String)>,
    /// Replace NaN/inf features with 0 instead of failing (the count is reported).
    pub zero_non_finite: bool,
    /// Leave out a video that cannot be read (malformed numbers, NaN, a dimension or length
    /// mismatch) and report it, instead of failing.
    pub skip_bad_videos: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            activities: Vec::new(),
            activity_rule: ActivityRule::Folder,
            mapping_file: "mapping.txt".into(),
            background: None,
            expected_dim: None,
            zero_non_finite: false,
            skip_bad_videos: false,
        }
    }
}

impl ReadOptions {
    /// The options a preset implies (activity rule, mapping file, background, D).
    pub fn for_preset(p: &Preset) -> Self {
        ReadOptions {
            activity_rule: p.activity_rule,
            mapping_file: p.mapping_file.into(),
            background: p.background.map(str::to_string),
            expected_dim: Some((p.dim, format!("preset `{}`", p.name))),
            ..ReadOptions::default()
        }
    }
}

/// What the reader did that the user should know about.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadReport {
    /// Non-finite feature values replaced by 0 (only with `zero_non_finite`).
    pub zeroed_non_finite: usize,
    /// Feature rows beyond the label count, dropped.
    pub dropped_extra_rows: usize,
    /// Videos without ground truth (no `groundTruth/` file), in name order.
    pub unlabelled: Vec<String>,
    /// Videos left out by [`ReadOptions::skip_bad_videos`]: (video, why), in name order.
    pub skipped: Vec<(String, String)>,
}

struct Found {
    name: String,
    path: PathBuf,
    folder: Option<String>,
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

fn is_feature_file(p: &Path) -> bool {
    let hidden = p
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'));
    !hidden && p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("txt" | "npy"))
}

fn discover(features: &Path) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut push = |path: PathBuf, folder: Option<String>| -> Result<()> {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if let Some(first) = seen.insert(name.clone(), path.clone()) {
            return Err(DatasetError::DuplicateVideo {
                video: name,
                first,
                second: path,
            });
        }
        found.push(Found { name, path, folder });
        Ok(())
    };
    for entry in list_dir(features)? {
        if entry.is_dir() {
            let folder = entry
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string);
            for file in list_dir(&entry)?.into_iter().filter(|p| is_feature_file(p)) {
                push(file, folder.clone())?;
            }
        } else if is_feature_file(&entry) {
            push(entry, None)?;
        }
    }
    Ok(found)
}

/// Reads the feature file of one video (`.txt` or `.npy`).
pub fn read_feature_file(path: &Path) -> Result<TextMatrix> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    if path.extension().and_then(|e| e.to_str()) == Some("npy") {
        parse_npy(&bytes, path)
    } else {
        parse_text_matrix(&bytes, path)
    }
}

/// Reads the dataset in `dir` (e.g. `<root>/Breakfast`).
pub fn read_standard(dir: &Path, opts: &ReadOptions) -> Result<(Dataset, ReadReport)> {
    read_standard_with(dir, opts, &|_| {})
}

/// [`read_standard`], calling `on_video` with each video's name once it is read (from the rayon
/// pool, in no particular order): the hook behind the command line's progress bar.
pub fn read_standard_with(
    dir: &Path,
    opts: &ReadOptions,
    on_video: &(dyn Fn(&str) + Sync),
) -> Result<(Dataset, ReadReport)> {
    let missing = |what: &str, path: PathBuf| DatasetError::Missing {
        what: what.into(),
        path,
    };
    if !dir.is_dir() {
        return Err(missing("dataset folder", dir.to_path_buf()));
    }
    let features = dir.join("features");
    if !features.is_dir() {
        return Err(missing("features folder", features));
    }
    let gt_dir = dir.join("groundTruth");
    let labelled = gt_dir.is_dir();
    let mapping_path = dir.join("mapping").join(&opts.mapping_file);
    // unlabelled data needs no mapping; a mapping that is there is still read and checked
    let mapping = if labelled || mapping_path.is_file() {
        Mapping::read(&mapping_path)?
    } else {
        Mapping::default()
    };
    let lookup = mapping.lookup();

    let mut found = discover(&features)?;
    let all_activities = |found: &[Found]| {
        let mut a: Vec<String> = found
            .iter()
            .map(|f| opts.activity_rule.activity(&f.name, f.folder.as_deref()))
            .collect();
        a.sort();
        a.dedup();
        a.join(", ")
    };
    if found.is_empty() {
        return Err(DatasetError::Invalid {
            what: features.display().to_string(),
            message: "no .txt or .npy feature files".into(),
        });
    }
    if !opts.activities.is_empty() {
        let known = all_activities(&found);
        found.retain(|f| {
            opts.activities
                .contains(&opts.activity_rule.activity(&f.name, f.folder.as_deref()))
        });
        if found.is_empty() {
            return Err(DatasetError::Unknown {
                what: "activity",
                name: opts.activities.join(", "),
                known,
            });
        }
    }

    let read_one = |f: &Found| -> Result<(Video, usize, usize)> {
        let mut m = read_feature_file(&f.path)?;
        if m.rows == 0 {
            return Err(DatasetError::EmptyVideo {
                video: f.name.clone(),
                path: f.path.clone(),
            });
        }
        let gt_path = [gt_dir.join(&f.name), gt_dir.join(format!("{}.txt", f.name))]
            .into_iter()
            .find(|p| labelled && p.is_file());
        let mut dropped = 0;
        let labels = match gt_path {
            None => None,
            Some(gt_path) => {
                let text = std::fs::read_to_string(&gt_path).map_err(io_err(&gt_path))?;
                let labels = parse_labels(
                    &text,
                    &lookup,
                    opts.background.as_deref(),
                    &gt_path,
                    &mapping_path,
                )?;
                if labels.is_empty() {
                    return Err(DatasetError::EmptyVideo {
                        video: f.name.clone(),
                        path: gt_path,
                    });
                }
                if m.rows < labels.len() {
                    return Err(DatasetError::TooFewFeatures {
                        video: f.name.clone(),
                        features: f.path.clone(),
                        rows: m.rows,
                        labels_path: gt_path,
                        labels: labels.len(),
                    });
                }
                dropped = m.rows - labels.len();
                m.values.truncate(labels.len() * m.cols);
                m.rows = labels.len();
                Some(Labels::from_vec(labels))
            }
        };
        let zeroed = check_finite(&mut m.values, m.cols, &f.path, opts.zero_non_finite)?;
        let what = format!("video `{}`", f.name);
        let features = FrameFeatures::from_vec(m.values, m.cols, &what)?;
        let activity = opts.activity_rule.activity(&f.name, f.folder.as_deref());
        let video = Video {
            name: f.name.clone(),
            activity,
            features,
            labels,
        };
        on_video(&f.name);
        Ok((video, zeroed, dropped))
    };
    let results: Vec<Result<(Video, usize, usize)>> = found.par_iter().map(read_one).collect();

    let mut videos = Vec::with_capacity(results.len());
    let mut report = ReadReport::default();
    for (r, f) in results.into_iter().zip(&found) {
        match r {
            Ok((v, zeroed, dropped)) => {
                report.zeroed_non_finite += zeroed;
                report.dropped_extra_rows += dropped;
                videos.push(v);
            }
            Err(e) if opts.skip_bad_videos => report.skipped.push((f.name.clone(), e.to_string())),
            Err(e) => return Err(e),
        }
    }
    videos.sort_by(|a, b| (&a.activity, &a.name).cmp(&(&b.activity, &b.name)));
    let paths: HashMap<&str, &Path> = found
        .iter()
        .map(|f| (f.name.as_str(), f.path.as_path()))
        .collect();
    let Some(first) = videos.first() else {
        return Err(DatasetError::Invalid {
            what: features.display().to_string(),
            message: format!(
                "every video was skipped as unreadable (first: {})",
                report
                    .skipped
                    .first()
                    .map(|(v, e)| format!("{v}: {e}"))
                    .unwrap_or_default()
            ),
        });
    };
    let (dim, reference) = match &opts.expected_dim {
        Some((d, why)) => (*d, why.clone()),
        None => (first.features.cols(), format!("as video `{}`", first.name)),
    };
    let mut kept = Vec::with_capacity(videos.len());
    for v in videos {
        if v.features.cols() != dim {
            let e = DatasetError::Dim {
                video: v.name.clone(),
                path: paths
                    .get(v.name.as_str())
                    .map(|p| p.to_path_buf())
                    .unwrap_or_default(),
                found: v.features.cols(),
                expected: dim,
                reference: reference.clone(),
            };
            if !opts.skip_bad_videos {
                return Err(e);
            }
            report.skipped.push((v.name.clone(), e.to_string()));
        } else {
            kept.push(v);
        }
    }
    let videos = kept;
    report.skipped.sort();
    report.unlabelled = videos
        .iter()
        .filter(|v| v.labels.is_none())
        .map(|v| v.name.clone())
        .collect();
    report.unlabelled.sort();
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("dataset")
        .to_string();
    Ok((
        Dataset {
            name,
            dim,
            mapping,
            videos,
        },
        report,
    ))
}

/// Fails on the first NaN/inf (naming the 1-based data row and column), or with `zero` replaces
/// each by 0 and returns how many were replaced.
pub fn check_finite(values: &mut [f32], cols: usize, path: &Path, zero: bool) -> Result<usize> {
    if values.iter().all(|v| v.is_finite()) {
        return Ok(0);
    }
    if !zero {
        let p = values.iter().position(|v| !v.is_finite()).unwrap_or(0);
        return Err(DatasetError::NonFinite {
            path: path.to_path_buf(),
            row: p / cols.max(1) + 1,
            column: p % cols.max(1) + 1,
            value: values[p] as f64,
        });
    }
    let mut n = 0;
    for v in values.iter_mut().filter(|v| !v.is_finite()) {
        *v = 0.0;
        n += 1;
    }
    Ok(n)
}

/// Formats a feature matrix as text that parses back to the same f32 bits: each value is written
/// as the shortest decimal of its exact f64 value.
pub fn format_text_matrix(values: &[f32], cols: usize) -> String {
    let mut s = String::with_capacity(values.len() * 16);
    for row in values.chunks(cols.max(1)) {
        for (c, v) in row.iter().enumerate() {
            if c > 0 {
                s.push(' ');
            }
            let _ = write!(s, "{:e}", *v as f64);
        }
        s.push('\n');
    }
    s
}

/// Writes `ds` in the standard layout under `dir` (features as `.txt`). Videos of the activity
/// [`SINGLE_ACTIVITY`] go directly under `features/`. Each file is written atomically.
pub fn write_standard(ds: &Dataset, dir: &Path) -> Result<()> {
    ds.mapping
        .write_to(&dir.join("mapping").join("mapping.txt"))?;
    ds.videos.par_iter().try_for_each(|v| -> Result<()> {
        let folder = if v.activity == SINGLE_ACTIVITY {
            dir.join("features")
        } else {
            dir.join("features").join(&v.activity)
        };
        let text = format_text_matrix(v.features.as_slice(), v.features.cols());
        write_bytes_atomic(&folder.join(format!("{}.txt", v.name)), text.as_bytes())?;
        if let Some(labels) = &v.labels {
            let mut gt = String::with_capacity(labels.len() * 8);
            for &id in labels.as_slice() {
                let name = ds.mapping.name(id).ok_or_else(|| DatasetError::Invalid {
                    what: format!("video `{}`", v.name),
                    message: format!("label id {id} is not in the mapping"),
                })?;
                gt.push_str(name);
                gt.push('\n');
            }
            write_bytes_atomic(&dir.join("groundTruth").join(&v.name), gt.as_bytes())?;
        }
        Ok(())
    })
}
