//! Baselines a learned segmentation must beat, scored with the same Hungarian matching.
//!
//! * equal split: each video cut into K equal parts labelled 0..K−1 in order;
//! * k-means: all frames of the activity clustered into K clusters (per-frame, no time).

use crate::kmeans::kmeans;

/// Labels of a video of `n` frames cut into `k` equal parts: frame i gets ⌊i·k/n⌋.
pub fn equal_split(n: usize, k: usize) -> Vec<i32> {
    (0..n).map(|i| ((i * k) / n.max(1)) as i32).collect()
}

/// k-means labels for each video: `videos` are row-major N_v×d blocks clustered jointly.
pub fn kmeans_labels(videos: &[&[f32]], d: usize, k: usize, seed: u64) -> Option<Vec<Vec<i32>>> {
    let all: Vec<f32> = videos.iter().flat_map(|v| v.iter().copied()).collect();
    let km = kmeans(&all, d, k, 50, seed)?;
    let mut out = Vec::with_capacity(videos.len());
    let mut at = 0;
    for v in videos {
        let n = v.len() / d;
        out.push(
            km.assignment[at..at + n]
                .iter()
                .map(|&a| a as i32)
                .collect(),
        );
        at += n;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_split_covers_all_labels_in_order() {
        assert_eq!(equal_split(7, 3), vec![0, 0, 0, 1, 1, 2, 2]);
        assert_eq!(equal_split(2, 3), vec![0, 1]);
        assert!(equal_split(0, 3).is_empty());
    }
}
