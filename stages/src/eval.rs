//! Hungarian matching and MoF (SPEC §5).
//!
//! The count matrix M[p, g] counts frames with prediction p and ground truth g over the sorted
//! unique labels of each side; the matching maximises the matched count one-to-one (rectangular
//! allowed; the Kuhn–Munkres solver of the `pathfinding` crate, O(n³) in the number of labels).
//! MoF = matched frames / all frames. Frames whose ground truth is the excluded class are dropped
//! before matching.

use std::collections::BTreeSet;

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

/// Why scoring failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// Prediction and ground truth differ in length.
    #[error("{what}: {pred} predictions for {gt} ground-truth frames")]
    Length { what: String, pred: usize, gt: usize },
}

/// The result of matching predictions to ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Matching {
    /// (predicted label, ground-truth label) pairs of the optimal one-to-one matching.
    pub pairs: Vec<(i32, i32)>,
    /// Frames whose prediction is matched to their ground truth.
    pub matched: usize,
    /// Frames scored (after excluding the excluded class).
    pub frames: usize,
}

impl Matching {
    /// Mean over frames: matched / frames (0 for no frames).
    pub fn mof(&self) -> f64 {
        if self.frames == 0 { 0.0 } else { self.matched as f64 / self.frames as f64 }
    }
}

/// Matches `pred` to `gt` (equal lengths), ignoring frames whose ground truth is `exclude`.
pub fn hungarian(pred: &[i32], gt: &[i32], exclude: Option<i32>, what: &str) -> Result<Matching, EvalError> {
    if pred.len() != gt.len() {
        return Err(EvalError::Length { what: what.to_string(), pred: pred.len(), gt: gt.len() });
    }
    let keep = |i: &usize| exclude != Some(gt[*i]);
    let idx: Vec<usize> = (0..gt.len()).filter(keep).collect();
    let plabels: Vec<i32> = idx.iter().map(|&i| pred[i]).collect::<BTreeSet<_>>().into_iter().collect();
    let glabels: Vec<i32> = idx.iter().map(|&i| gt[i]).collect::<BTreeSet<_>>().into_iter().collect();
    if idx.is_empty() {
        return Ok(Matching { pairs: Vec::new(), matched: 0, frames: 0 });
    }
    let mut counts = vec![0i64; plabels.len() * glabels.len()];
    for &i in &idx {
        // both lookups succeed: the label sets were built from these very frames
        let p = plabels.binary_search(&pred[i]).unwrap_or(0);
        let g = glabels.binary_search(&gt[i]).unwrap_or(0);
        counts[p * glabels.len() + g] += 1;
    }
    let (np, ng) = (plabels.len(), glabels.len());
    let transpose = np > ng;
    let (rows, cols) = if transpose { (ng, np) } else { (np, ng) };
    let weights = Matrix::from_fn(rows, cols, |(r, c)| {
        if transpose { counts[c * ng + r] } else { counts[r * ng + c] }
    });
    let (total, assign) = kuhn_munkres(&weights);
    let mut pairs: Vec<(i32, i32)> = assign
        .iter()
        .enumerate()
        .map(|(r, &c)| if transpose { (plabels[c], glabels[r]) } else { (plabels[r], glabels[c]) })
        .collect();
    pairs.sort_unstable();
    Ok(Matching { pairs, matched: total as usize, frames: idx.len() })
}

/// Activity-level MoF: one matching over the concatenation of all videos.
pub fn activity_mof(videos: &[(&[i32], &[i32])], exclude: Option<i32>) -> Result<f64, EvalError> {
    let pred: Vec<i32> = videos.iter().flat_map(|(p, _)| p.iter().copied()).collect();
    let gt: Vec<i32> = videos.iter().flat_map(|(_, g)| g.iter().copied()).collect();
    Ok(hungarian(&pred, &gt, exclude, "activity")?.mof())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permuted_labels_score_one() {
        let gt = [0, 0, 1, 1, 2, 2, 2];
        let pred = [5, 5, 3, 3, 9, 9, 9];
        let m = hungarian(&pred, &gt, None, "t").expect("ok");
        assert_eq!(m.mof(), 1.0);
        assert_eq!(m.pairs, vec![(3, 1), (5, 0), (9, 2)]);
    }

    #[test]
    fn rectangular_both_ways_and_exclusion() {
        // more predicted clusters than classes: one cluster stays unmatched
        let m = hungarian(&[0, 1, 2, 2], &[7, 7, 8, 8], None, "t").expect("ok");
        assert_eq!((m.matched, m.frames), (3, 4));
        // fewer clusters than classes
        let m = hungarian(&[0, 0, 0, 1], &[1, 2, 2, 3], None, "t").expect("ok");
        assert_eq!(m.matched, 3);
        let m = hungarian(&[0, 0, 1, 1], &[-1, 4, 4, 4], Some(-1), "t").expect("ok");
        assert_eq!((m.matched, m.frames), (2, 3));
        assert!(hungarian(&[0], &[0, 1], None, "v").is_err());
    }

    #[test]
    fn matches_brute_force_on_small_random_cases() {
        let mut s = 12345u64;
        let mut next = |m: u64| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) % m) as i32
        };
        for _ in 0..200 {
            let n = 30;
            let (kp, kg) = (1 + next(4) as u64, 1 + next(4) as u64);
            let pred: Vec<i32> = (0..n).map(|_| next(kp)).collect();
            let gt: Vec<i32> = (0..n).map(|_| next(kg)).collect();
            let m = hungarian(&pred, &gt, None, "t").expect("ok");
            // brute force over injective maps pred-label -> gt-label (or unmatched)
            let ps: Vec<i32> = pred.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
            let gs: Vec<i32> = gt.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
            let mut best = 0;
            let total = (gs.len() + 1).pow(ps.len() as u32);
            for code in 0..total {
                let mut c = code;
                let mut map = Vec::new();
                for _ in &ps {
                    map.push(c % (gs.len() + 1));
                    c /= gs.len() + 1;
                }
                let used: Vec<usize> = map.iter().copied().filter(|&g| g < gs.len()).collect();
                if used.iter().collect::<BTreeSet<_>>().len() != used.len() {
                    continue;
                }
                let score = pred
                    .iter()
                    .zip(&gt)
                    .filter(|(p, g)| {
                        let pi = ps.binary_search(p).expect("p");
                        map[pi] < gs.len() && gs[map[pi]] == **g
                    })
                    .count();
                best = best.max(score);
            }
            assert_eq!(m.matched, best);
        }
    }
}
