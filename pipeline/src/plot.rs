//! A picture of segmentations (plotters, PNG): for each of the first videos, a ground-truth bar
//! above a prediction bar, one colour per class. Predicted clusters are drawn in the colour of the
//! ground-truth class the activity-level Hungarian matching gave them, so agreement shows as
//! matching colours; unmatched clusters are grey. Rows top to bottom follow the video order.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::train::VideoResult;

const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(127, 127, 127),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
];

fn colour(class: Option<i32>) -> RGBColor {
    match class {
        Some(c) if c >= 0 => PALETTE[c as usize % PALETTE.len()],
        _ => RGBColor(200, 200, 200),
    }
}

/// Draws up to `max_videos` videos that have ground truth; `matched(p)` maps a predicted cluster
/// to its ground-truth class. The picture goes to a temporary file renamed into place.
pub fn segments_png(
    path: &Path,
    results: &[VideoResult],
    matched: &dyn Fn(i32) -> Option<i32>,
    max_videos: usize,
) -> Result<()> {
    let shown: Vec<&VideoResult> = results
        .iter()
        .filter(|r| r.ground_truth.is_some())
        .take(max_videos)
        .collect();
    if shown.is_empty() {
        return Ok(());
    }
    let (width, bar, gap) = (1000u32, 18u32, 14u32);
    let height = gap + shown.len() as u32 * (2 * bar + gap);
    // the backend picks the format from the extension: keep `.png` on the temporary name
    let tmp = clot_datasets::fsio::temp_path(path).with_extension("png");
    {
        let root = BitMapBackend::new(&tmp, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
        for (row, r) in shown.iter().enumerate() {
            let Some(gt) = &r.ground_truth else { continue };
            let n = gt.len().max(1) as f64;
            let top = gap + row as u32 * (2 * bar + gap);
            let x = |i: usize| (10.0 + (width as f64 - 20.0) * i as f64 / n) as i32;
            for (lane, labels) in [(0u32, None), (1u32, Some(&r.prediction))] {
                let y0 = (top + lane * bar) as i32;
                let y1 = y0 + bar as i32 - 2;
                let mut start = 0;
                let len = gt.len();
                for i in 1..=len {
                    let cls = |j: usize| match labels {
                        None => Some(gt[j]),
                        Some(p) => matched(p[j]),
                    };
                    if i == len || cls(i) != cls(start) {
                        root.draw(&Rectangle::new(
                            [(x(start), y0), (x(i), y1)],
                            colour(cls(start)).filled(),
                        ))
                        .map_err(|e| anyhow!("plot: {e}"))?;
                        start = i;
                    }
                }
            }
        }
        root.present()
            .map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| anyhow!("renaming into {}: {e}", path.display()))
}
