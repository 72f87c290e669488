//! The in-memory dataset: a list of videos, each with its features as an Arrow-backed
//! [`FrameFeatures`] component and its ground truth as [`Labels`], plus the label [`Mapping`].

use std::collections::BTreeMap;

use clot_schemas::{FrameFeatures, Labels};
use serde::Serialize;

use crate::mapping::Mapping;

/// One video.
#[derive(Debug, Clone, PartialEq)]
pub struct Video {
    /// Unique name within the dataset (the file stem in the standard layout).
    pub name: String,
    /// Its activity.
    pub activity: String,
    /// N×D features.
    pub features: FrameFeatures,
    /// N ground-truth ids, if the dataset has ground truth.
    pub labels: Option<Labels>,
}

impl Video {
    /// Number of frames N.
    pub fn frames(&self) -> usize {
        self.features.rows()
    }

    /// Number of all-zero feature rows, and how many of them lead the video.
    pub fn zero_rows(&self) -> (usize, usize) {
        let mut total = 0;
        let mut leading = 0;
        let mut still_leading = true;
        for r in 0..self.features.rows() {
            let zero = self.features.row(r).iter().all(|&v| v == 0.0);
            total += zero as usize;
            still_leading &= zero;
            leading += still_leading as usize;
        }
        (total, leading)
    }
}

/// A set of videos sharing one feature dimension and one mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Dataset name (folder name, or `demo`).
    pub name: String,
    /// Feature dimension D.
    pub dim: usize,
    /// Ground-truth names ↔ ids.
    pub mapping: Mapping,
    /// Videos, sorted by (activity, name).
    pub videos: Vec<Video>,
}

/// What `clot inspect` prints: counts, lengths, classes and zero rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub name: String,
    pub videos: usize,
    pub frames: usize,
    pub dim: usize,
    pub activities: BTreeMap<String, usize>,
    /// Classes in the mapping (distinct ids).
    pub mapping_classes: usize,
    /// Distinct ground-truth ids present in the videos.
    pub classes_present: Vec<i32>,
    /// Frames per ground-truth id, in id order (names: [`Dataset::mapping`]).
    pub label_histogram: BTreeMap<i32, usize>,
    pub min_len: usize,
    pub median_len: usize,
    pub max_len: usize,
    /// All-zero rows over all videos.
    pub zero_rows: usize,
    /// Per video: (name, frames, zero rows, leading zero rows).
    pub per_video: Vec<(String, usize, usize, usize)>,
}

impl Dataset {
    /// Total frames.
    pub fn frames(&self) -> usize {
        self.videos.iter().map(Video::frames).sum()
    }

    /// Keeps only videos of the given activities (all when `activities` is empty).
    pub fn retain_activities(&mut self, activities: &[String]) {
        if !activities.is_empty() {
            self.videos.retain(|v| activities.contains(&v.activity));
        }
    }

    /// Summary statistics.
    pub fn summary(&self) -> Summary {
        let mut lens: Vec<usize> = self.videos.iter().map(Video::frames).collect();
        lens.sort_unstable();
        let mut activities = BTreeMap::new();
        let mut hist: BTreeMap<i32, usize> = BTreeMap::new();
        let mut per_video = Vec::new();
        let mut zero_rows = 0;
        for v in &self.videos {
            *activities.entry(v.activity.clone()).or_insert(0) += 1;
            if let Some(l) = &v.labels {
                for &id in l.as_slice() {
                    *hist.entry(id).or_insert(0) += 1;
                }
            }
            let (z, lead) = v.zero_rows();
            zero_rows += z;
            per_video.push((v.name.clone(), v.frames(), z, lead));
        }
        Summary {
            name: self.name.clone(),
            videos: self.videos.len(),
            frames: lens.iter().sum(),
            dim: self.dim,
            activities,
            mapping_classes: self.mapping.ids().len(),
            classes_present: hist.keys().copied().collect(),
            label_histogram: hist,
            min_len: lens.first().copied().unwrap_or(0),
            median_len: lens.get(lens.len() / 2).copied().unwrap_or(0),
            max_len: lens.last().copied().unwrap_or(0),
            zero_rows,
            per_video,
        }
    }
}
