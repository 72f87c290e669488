//! Evaluation exactly as ASOT's code computes it (SPEC §5): Hungarian matching, MoF, mIoU and the
//! sampled F1, at activity level (one matching over all videos) and video level (one matching per
//! video, scores averaged); plus, as extras for supervised-segmentation users, the deterministic
//! segmental F1@{10,25,50} and Edit score computed after the Hungarian mapping.
//!
//! The count matrix M[p, g] counts frames with prediction p and ground truth g over the sorted
//! unique labels of each side; the matching maximises the matched count one-to-one (rectangular
//! allowed; the Kuhn–Munkres solver of the `pathfinding` crate, O(n³) in the number of labels).
//! MoF = matched frames / all frames. Frames whose ground truth is the excluded class are dropped
//! before matching.
//!
//! The sampled F1 is stochastic; [`F1Rng`] picks its random stream. [`F1Rng::ChaCha8`] (the
//! default, what [`activity_level`] and [`video_level`] use) is clot's own. [`F1Rng::Numpy`]
//! replays ASOT's Python evaluation (`eval_f1` in `src/metrics.py` of `mingu6/action_seg_ot`)
//! draw for draw: numpy's legacy global RNG ([`crate::numpy_rng`]) after `np.random.seed(f1_seed)`,
//! `np.random.random_integers(lo, up, 15)` per segment and repetition, so it gives the very F1 that
//! code gives after the same seed (the golden `f1_sampled_seed0` values, to the last bit).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::numpy_rng::RandomState;

/// Why scoring failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// Prediction and ground truth differ in length.
    #[error("{what}: {pred} predictions for {gt} ground-truth frames")]
    Length {
        what: String,
        pred: usize,
        gt: usize,
    },
    /// Nothing to score.
    #[error("{0}: no frames to score")]
    Empty(String),
    /// An F1 seed numpy's legacy seeding refuses.
    #[error("F1 seed {0}: numpy's np.random.seed takes 0..=4294967295 (2**32 - 1)")]
    NumpySeed(u64),
}

/// The random stream of the sampled F1.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum F1Rng {
    /// `ChaCha8Rng::seed_from_u64(f1_seed)`, one index per `random_range(lo..=up)`: clot's own
    /// stream.
    #[default]
    ChaCha8,
    /// numpy's legacy RNG after `np.random.seed(f1_seed)` (seeds 0..=2**32 − 1), consumed exactly
    /// as ASOT's `eval_f1` consumes it.
    Numpy,
}

impl F1Rng {
    /// Every variant, in the order of [`F1Rng::NAMES`].
    pub const ALL: [F1Rng; 2] = [F1Rng::ChaCha8, F1Rng::Numpy];
    /// The accepted names (what [`fmt::Display`] prints and [`FromStr`] reads).
    pub const NAMES: [&'static str; 2] = ["chacha8", "numpy"];

    /// The name: "chacha8" or "numpy".
    pub fn name(self) -> &'static str {
        match self {
            F1Rng::ChaCha8 => Self::NAMES[0],
            F1Rng::Numpy => Self::NAMES[1],
        }
    }
}

impl fmt::Display for F1Rng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name [`F1Rng::from_str`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown F1 RNG {0:?}: expected one of chacha8, numpy")]
pub struct ParseF1RngError(pub String);

impl FromStr for F1Rng {
    type Err = ParseF1RngError;

    /// "chacha8" or "numpy", ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseF1RngError(s.to_string()))
    }
}

/// The uniform index draws behind the sampled F1: implemented by `ChaCha8Rng` (clot's stream)
/// and by [`RandomState`] (numpy's legacy stream, ASOT's draw order).
pub trait F1Sampler {
    /// One index uniform in `lo..=up`.
    fn index(&mut self, lo: usize, up: usize) -> usize;
}

impl F1Sampler for ChaCha8Rng {
    fn index(&mut self, lo: usize, up: usize) -> usize {
        self.random_range(lo..=up)
    }
}

impl F1Sampler for RandomState {
    /// One value of `np.random.random_integers(lo, up)`; the 15 of one
    /// `random_integers(lo, up, 15)` call are drawn one after the other in just this way, so 15
    /// calls consume the stream exactly as that one call does (`lo == up` draws nothing).
    fn index(&mut self, lo: usize, up: usize) -> usize {
        self.random_integers(lo as i64, up as i64) as usize
    }
}

/// The state after `np.random.seed(f1_seed)`.
fn numpy_state(f1_seed: u64) -> Result<RandomState, EvalError> {
    RandomState::from_u64(f1_seed).ok_or(EvalError::NumpySeed(f1_seed))
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
        if self.frames == 0 {
            0.0
        } else {
            self.matched as f64 / self.frames as f64
        }
    }

    /// The ground-truth class matched to predicted label `p`.
    pub fn gt_of(&self, p: i32) -> Option<i32> {
        self.pairs.iter().find(|(q, _)| *q == p).map(|(_, g)| *g)
    }

    /// The predicted label matched to ground-truth class `g`.
    pub fn pred_of(&self, g: i32) -> Option<i32> {
        self.pairs.iter().find(|(_, h)| *h == g).map(|(p, _)| *p)
    }
}

/// Matches `pred` to `gt` (equal lengths), ignoring frames whose ground truth is `exclude`.
pub fn hungarian(
    pred: &[i32],
    gt: &[i32],
    exclude: Option<i32>,
    what: &str,
) -> Result<Matching, EvalError> {
    if pred.len() != gt.len() {
        return Err(EvalError::Length {
            what: what.to_string(),
            pred: pred.len(),
            gt: gt.len(),
        });
    }
    let keep = |i: &usize| exclude != Some(gt[*i]);
    let idx: Vec<usize> = (0..gt.len()).filter(keep).collect();
    let plabels: Vec<i32> = idx
        .iter()
        .map(|&i| pred[i])
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let glabels: Vec<i32> = idx
        .iter()
        .map(|&i| gt[i])
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if idx.is_empty() {
        return Ok(Matching {
            pairs: Vec::new(),
            matched: 0,
            frames: 0,
        });
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
        if transpose {
            counts[c * ng + r]
        } else {
            counts[r * ng + c]
        }
    });
    let (total, assign) = kuhn_munkres(&weights);
    let mut pairs: Vec<(i32, i32)> = assign
        .iter()
        .enumerate()
        .map(|(r, &c)| {
            if transpose {
                (plabels[c], glabels[r])
            } else {
                (plabels[r], glabels[c])
            }
        })
        .collect();
    pairs.sort_unstable();
    Ok(Matching {
        pairs,
        matched: total as usize,
        frames: idx.len(),
    })
}

/// mIoU: Σ over matched pairs |p∩g| / |p∪g|, divided by the number of ground-truth classes
/// present (after exclusion).
pub fn miou(pred: &[i32], gt: &[i32], m: &Matching, exclude: Option<i32>) -> f64 {
    let keep: Vec<usize> = (0..gt.len()).filter(|&i| exclude != Some(gt[i])).collect();
    let mut classes: Vec<i32> = keep.iter().map(|&i| gt[i]).collect();
    classes.sort_unstable();
    classes.dedup();
    if classes.is_empty() {
        return 0.0;
    }
    let mut total = 0.0;
    for &(p, g) in &m.pairs {
        let (mut inter, mut union) = (0usize, 0usize);
        for &i in &keep {
            let (a, b) = (pred[i] == p, gt[i] == g);
            inter += (a && b) as usize;
            union += (a || b) as usize;
        }
        if union > 0 {
            total += inter as f64 / union as f64;
        }
    }
    total / classes.len() as f64
}

/// Counts behind the sampled F1, summed over videos.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct F1Counts {
    pub hits: usize,
    pub segments: usize,
}

/// Repetitions and samples per segment of the sampled F1.
pub const F1_REPEATS: usize = 50;
pub const F1_SAMPLES: usize = 15;

/// The sampled-F1 counts of one video: for each ground-truth segment [lo, up] (boundaries
/// `[0] + changes + [len−1]`), 50 times draw 15 indices uniformly from [lo, up] inclusive; a hit
/// when more than half carry the prediction matched to `gt[lo]`. Excluded frames are dropped first.
///
/// The draw order is ASOT's: repetition after repetition, each one over the segments in order,
/// 15 indices per segment, segments of classes without a matched prediction included (they draw,
/// then never hit, as ASOT's `eval_f1` draws before it looks the class up); `rng` is a
/// `ChaCha8Rng` or a [`RandomState`].
pub fn f1_counts<R: F1Sampler>(
    pred: &[i32],
    gt: &[i32],
    m: &Matching,
    exclude: Option<i32>,
    rng: &mut R,
) -> F1Counts {
    let keep: Vec<usize> = (0..gt.len()).filter(|&i| exclude != Some(gt[i])).collect();
    let (pred, gt): (Vec<i32>, Vec<i32>) = keep.iter().map(|&i| (pred[i], gt[i])).unzip();
    if gt.is_empty() {
        return F1Counts::default();
    }
    let mut bd = vec![0usize];
    bd.extend((1..gt.len()).filter(|&i| gt[i] != gt[i - 1]));
    bd.push(gt.len() - 1);
    let mut c = F1Counts {
        hits: 0,
        segments: bd.len() - 1,
    };
    for _ in 0..F1_REPEATS {
        for w in bd.windows(2) {
            let (lo, up) = (w[0], w[1]);
            let target = m.pred_of(gt[lo]);
            // an unmatched class never agrees (ASOT: tp = 0), whatever the draws
            let agree = (0..F1_SAMPLES)
                .filter(|_| Some(pred[rng.index(lo, up)]) == target)
                .count();
            c.hits += (agree * 2 > F1_SAMPLES) as usize;
        }
    }
    c
}

/// F1 from counts: precision = hits / (videos · classes · 50), recall = hits / (segments · 50 + 1e-8).
pub fn f1_from_counts(c: F1Counts, videos: usize, classes: usize) -> f64 {
    let precision = c.hits as f64 / (videos * classes * F1_REPEATS).max(1) as f64;
    let recall = c.hits as f64 / (c.segments as f64 * F1_REPEATS as f64 + 1e-8);
    2.0 * precision * recall / (precision + recall + 1e-8)
}

/// MoF, sampled F1 and mIoU.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Metrics {
    pub mof: f64,
    pub f1: f64,
    pub miou: f64,
}

/// Activity-level ("full") metrics: one matching over all frames of all videos. The F1 RNG is
/// ChaCha8 seeded with `f1_seed` ([`activity_level_with`] and [`F1Rng::ChaCha8`]).
pub fn activity_level(
    videos: &[(&[i32], &[i32])],
    exclude: Option<i32>,
    f1_seed: u64,
) -> Result<Metrics, EvalError> {
    activity_level_with(videos, exclude, f1_seed, F1Rng::ChaCha8)
}

/// Activity-level ("full") metrics with the F1 drawn from `f1_rng`, seeded with `f1_seed`.
///
/// This is ASOT's activity-level F1 (`ClusteringMetrics('f1').compute` with the matching of the
/// MoF): seed, then `eval_f1` on the concatenation of all videos in the given order (excluded
/// frames dropped), `n_videos = videos.len()`. Over the concatenation the last segment of a
/// video runs into the next video (and merges with its first one where the labels agree), and
/// only the end of the last video closes a segment, as in ASOT; with [`F1Rng::Numpy`] the draws
/// are ASOT's too.
/// ASOT itself seeds once per program (`pl.seed_everything`) and scores from wherever the global
/// stream stands by then; seeding right before the call is the one reproducible point, and the one
/// the golden `f1_sampled_seed0` values were taken at.
///
/// Fails on videos whose prediction and ground truth differ in length, on no frames, and, for
/// [`F1Rng::Numpy`], on a seed above 2**32 − 1 (numpy refuses it).
pub fn activity_level_with(
    videos: &[(&[i32], &[i32])],
    exclude: Option<i32>,
    f1_seed: u64,
    f1_rng: F1Rng,
) -> Result<Metrics, EvalError> {
    let numpy = match f1_rng {
        F1Rng::ChaCha8 => None,
        F1Rng::Numpy => Some(numpy_state(f1_seed)?),
    };
    for (v, (p, g)) in videos.iter().enumerate() {
        if p.len() != g.len() {
            return Err(EvalError::Length {
                what: format!("video {v}"),
                pred: p.len(),
                gt: g.len(),
            });
        }
    }
    let pred: Vec<i32> = videos.iter().flat_map(|(p, _)| p.iter().copied()).collect();
    let gt: Vec<i32> = videos.iter().flat_map(|(_, g)| g.iter().copied()).collect();
    let m = hungarian(&pred, &gt, exclude, "activity")?;
    if m.frames == 0 {
        return Err(EvalError::Empty("activity".into()));
    }
    // ASOT gathers the frames of all videos and scores them as one sequence
    let counts = match numpy {
        Some(mut state) => f1_counts(&pred, &gt, &m, exclude, &mut state),
        None => f1_counts(
            &pred,
            &gt,
            &m,
            exclude,
            &mut ChaCha8Rng::seed_from_u64(f1_seed),
        ),
    };
    let classes = gt
        .iter()
        .filter(|&&g| exclude != Some(g))
        .collect::<BTreeSet<_>>()
        .len();
    Ok(Metrics {
        mof: m.mof(),
        f1: f1_from_counts(counts, videos.len(), classes),
        miou: miou(&pred, &gt, &m, exclude),
    })
}

/// Video-level ("per") metrics: one matching per video, each metric averaged over videos. The F1
/// RNG is ChaCha8 seeded with `f1_seed` ([`video_level_with`] and [`F1Rng::ChaCha8`]).
pub fn video_level(
    videos: &[(&[i32], &[i32])],
    exclude: Option<i32>,
    f1_seed: u64,
) -> Result<(Metrics, Vec<Metrics>), EvalError> {
    video_level_with(videos, exclude, f1_seed, F1Rng::ChaCha8)
}

/// Video-level ("per") metrics with the F1 drawn from `f1_rng`, seeded once with `f1_seed`; the
/// videos draw in order from the one stream.
///
/// [`F1Rng::Numpy`] is ASOT's `indep_eval_metrics`: `np.random.seed(f1_seed)`, then per video
/// `eval_f1` with that video's own matching and `n_videos = 1`, the global stream running on from
/// one video to the next. (ASOT seeds once per program and calls this per test batch; see
/// [`activity_level_with`] for why clot seeds per call.)
///
/// Fails as [`activity_level_with`] does, and on no videos.
pub fn video_level_with(
    videos: &[(&[i32], &[i32])],
    exclude: Option<i32>,
    f1_seed: u64,
    f1_rng: F1Rng,
) -> Result<(Metrics, Vec<Metrics>), EvalError> {
    match f1_rng {
        F1Rng::ChaCha8 => video_level_by(videos, exclude, &mut ChaCha8Rng::seed_from_u64(f1_seed)),
        F1Rng::Numpy => video_level_by(videos, exclude, &mut numpy_state(f1_seed)?),
    }
}

/// [`video_level_with`] on a seeded sampler.
fn video_level_by<R: F1Sampler>(
    videos: &[(&[i32], &[i32])],
    exclude: Option<i32>,
    rng: &mut R,
) -> Result<(Metrics, Vec<Metrics>), EvalError> {
    let mut per = Vec::with_capacity(videos.len());
    for (v, (p, g)) in videos.iter().enumerate() {
        let m = hungarian(p, g, exclude, &format!("video {v}"))?;
        let c = f1_counts(p, g, &m, exclude, rng);
        let classes = g
            .iter()
            .filter(|&&x| exclude != Some(x))
            .collect::<BTreeSet<_>>()
            .len();
        per.push(Metrics {
            mof: m.mof(),
            f1: f1_from_counts(c, 1, classes),
            miou: miou(p, g, &m, exclude),
        });
    }
    if per.is_empty() {
        return Err(EvalError::Empty("videos".into()));
    }
    let n = per.len() as f64;
    let mean = Metrics {
        mof: per.iter().map(|m| m.mof).sum::<f64>() / n,
        f1: per.iter().map(|m| m.f1).sum::<f64>() / n,
        miou: per.iter().map(|m| m.miou).sum::<f64>() / n,
    };
    Ok((mean, per))
}

/// Maximal runs of equal labels as (label, start, end-exclusive).
pub fn segments(labels: &[i32]) -> Vec<(i32, usize, usize)> {
    let mut out: Vec<(i32, usize, usize)> = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        match out.last_mut() {
            Some(last) if last.0 == l => last.2 = i + 1,
            _ => out.push((l, i, i + 1)),
        }
    }
    out
}

/// What a run's predictions look like, without ground truth: how many segments and distinct
/// clusters a video gets, how many clusters the whole run uses and the share of frames in the
/// largest one. A run that uses far fewer clusters than K, or puts most frames in one, has
/// collapsed (a known failure of OT-based methods).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct PredictionStats {
    /// Mean number of segments (runs of one label) per video.
    pub segments_per_video: f64,
    /// Mean number of distinct labels per video.
    pub clusters_per_video: f64,
    /// Distinct labels over all videos.
    pub clusters: usize,
    /// Frames with the most frequent label, of all frames.
    pub largest_cluster_share: f64,
}

impl PredictionStats {
    /// Fewer than half of `k` clusters used: the collapse rule of the run summary's warning and
    /// of the sweep tables' `collapsed` column.
    pub fn too_few_clusters(&self, k: usize) -> bool {
        self.clusters * 2 < k
    }
}

/// [`PredictionStats`] of per-video label sequences (zeros for no videos).
pub fn prediction_stats(videos: &[&[i32]]) -> PredictionStats {
    let n = videos.len().max(1) as f64;
    let mut counts = std::collections::BTreeMap::<i32, usize>::new();
    let mut frames = 0usize;
    let (mut segs, mut per) = (0usize, 0usize);
    for v in videos {
        segs += segments(v).len();
        per += v.iter().collect::<BTreeSet<_>>().len();
        for &l in *v {
            *counts.entry(l).or_default() += 1;
        }
        frames += v.len();
    }
    PredictionStats {
        segments_per_video: segs as f64 / n,
        clusters_per_video: per as f64 / n,
        clusters: counts.len(),
        largest_cluster_share: counts.values().max().copied().unwrap_or(0) as f64
            / frames.max(1) as f64,
    }
}

/// Extra: Edit score (0–100) of `pred` already mapped to ground-truth labels: 1 − normalised
/// Levenshtein distance between the segment label sequences.
pub fn edit_score(pred: &[i32], gt: &[i32]) -> f64 {
    let p: Vec<i32> = segments(pred).into_iter().map(|s| s.0).collect();
    let g: Vec<i32> = segments(gt).into_iter().map(|s| s.0).collect();
    let (m, n) = (p.len(), g.len());
    if m.max(n) == 0 {
        return 100.0;
    }
    let mut d: Vec<usize> = (0..=n).collect();
    for i in 1..=m {
        let mut prev = d[0];
        d[0] = i;
        for j in 1..=n {
            let cur = d[j];
            d[j] = if p[i - 1] == g[j - 1] {
                prev
            } else {
                1 + prev.min(d[j]).min(d[j - 1])
            };
            prev = cur;
        }
    }
    (1.0 - d[n] as f64 / m.max(n) as f64) * 100.0
}

/// Extra: segmental (tp, fp, fn) at IoU threshold `tau` of `pred` mapped to ground-truth labels.
pub fn segmental_counts(pred: &[i32], gt: &[i32], tau: f64) -> (usize, usize, usize) {
    let ps = segments(pred);
    let gs = segments(gt);
    let mut used = vec![false; gs.len()];
    let (mut tp, mut fp) = (0, 0);
    for &(l, s, e) in &ps {
        let mut best = (0.0, None);
        for (j, &(gl, gs_, ge)) in gs.iter().enumerate() {
            if gl != l {
                continue;
            }
            let inter = e.min(ge).saturating_sub(s.max(gs_)) as f64;
            let union = (e.max(ge) - s.min(gs_)) as f64;
            let iou = inter / union;
            if iou > best.0 {
                best = (iou, Some(j));
            }
        }
        match best {
            (iou, Some(j)) if iou >= tau && !used[j] => {
                tp += 1;
                used[j] = true;
            }
            _ => fp += 1,
        }
    }
    (tp, fp, gs.len() - tp)
}

/// Extras over videos (activity-level matching): segmental F1 at 10, 25, 50 % IoU and mean Edit.
pub fn segmental_extras(
    videos: &[(&[i32], &[i32])],
    exclude: Option<i32>,
) -> Result<([f64; 3], f64), EvalError> {
    let pred: Vec<i32> = videos.iter().flat_map(|(p, _)| p.iter().copied()).collect();
    let gt: Vec<i32> = videos.iter().flat_map(|(_, g)| g.iter().copied()).collect();
    let m = hungarian(&pred, &gt, exclude, "activity")?;
    let mut counts = [(0usize, 0usize, 0usize); 3];
    let mut edit = 0.0;
    for (p, g) in videos {
        // unmatched clusters map to a label no class uses
        let none = i32::MIN;
        let keep: Vec<usize> = (0..g.len()).filter(|&i| exclude != Some(g[i])).collect();
        let mapped: Vec<i32> = keep
            .iter()
            .map(|&i| m.gt_of(p[i]).unwrap_or(none))
            .collect();
        let g: Vec<i32> = keep.iter().map(|&i| g[i]).collect();
        edit += edit_score(&mapped, &g);
        for (c, tau) in counts.iter_mut().zip([0.1, 0.25, 0.5]) {
            let (tp, fp, fn_) = segmental_counts(&mapped, &g, tau);
            c.0 += tp;
            c.1 += fp;
            c.2 += fn_;
        }
    }
    let f1 = counts.map(|(tp, fp, fn_)| {
        let p = tp as f64 / (tp + fp).max(1) as f64;
        let r = tp as f64 / (tp + fn_).max(1) as f64;
        if p + r > 0.0 {
            2.0 * p * r / (p + r) * 100.0
        } else {
            0.0
        }
    });
    Ok((f1, edit / videos.len().max(1) as f64))
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
    fn miou_f1_edit_on_a_known_case() {
        let gt = [0, 0, 0, 0, 1, 1, 1, 1];
        let pred = [7, 7, 7, 3, 3, 3, 3, 3];
        let m = hungarian(&pred, &gt, None, "t").expect("ok");
        assert_eq!(m.pairs, vec![(3, 1), (7, 0)]);
        // class 0: 3/4, class 1: 4/5
        assert!((miou(&pred, &gt, &m, None) - (0.75 + 0.8) / 2.0).abs() < 1e-12);
        let perfect = activity_level(&[(&gt, &gt)], None, 0).expect("ok");
        assert_eq!(perfect.mof, 1.0);
        assert!((perfect.f1 - 1.0).abs() < 1e-6, "{}", perfect.f1);
        assert_eq!(edit_score(&[1, 1, 2, 2], &[1, 2, 2, 2]), 100.0);
        assert_eq!(edit_score(&[1, 2, 1], &[1, 2]), 100.0 * (1.0 - 1.0 / 3.0));
        assert_eq!(
            segmental_counts(&[0, 0, 1, 1], &[0, 0, 1, 1], 0.5),
            (2, 0, 0)
        );
        assert_eq!(
            segmental_counts(&[0, 1, 1, 1], &[0, 0, 0, 1], 0.5),
            (0, 2, 2)
        );
        assert_eq!(segments(&[4, 4, 2]), vec![(4, 0, 2), (2, 2, 3)]);
    }

    #[test]
    fn video_level_averages_per_video_matchings() {
        let a_gt = [0, 0, 1, 1];
        let a_pr = [1, 1, 0, 0];
        let b_gt = [0, 0, 0, 0];
        let b_pr = [0, 0, 1, 1];
        let (mean, per) = video_level(&[(&a_pr, &a_gt), (&b_pr, &b_gt)], None, 0).expect("ok");
        assert_eq!(per[0].mof, 1.0);
        assert_eq!(per[1].mof, 0.5);
        assert_eq!(mean.mof, 0.75);
        let act = activity_level(&[(&a_pr, &a_gt), (&b_pr, &b_gt)], None, 0).expect("ok");
        assert_eq!(act.mof, 6.0 / 8.0);
        assert!(activity_level(&[(&a_pr[..3], &a_gt)], None, 0).is_err());
    }

    #[test]
    fn permuted_labels_score_one() {
        let gt = [0, 0, 1, 1, 2, 2, 2];
        let pred = [5, 5, 3, 3, 9, 9, 9];
        let m = hungarian(&pred, &gt, None, "t").expect("ok");
        assert_eq!(m.mof(), 1.0);
        assert_eq!(m.pairs, vec![(3, 1), (5, 0), (9, 2)]);
    }

    #[test]
    fn prediction_stats_count_segments_and_clusters() {
        let a = [0, 0, 1, 1, 0, 2];
        let b = [2, 2, 2, 2];
        let s = prediction_stats(&[&a, &b]);
        assert_eq!(s.segments_per_video, 2.5);
        assert_eq!(s.clusters_per_video, 2.0);
        assert_eq!(s.clusters, 3);
        assert_eq!(s.largest_cluster_share, 5.0 / 10.0);
        assert!(!s.too_few_clusters(6) && s.too_few_clusters(7));
        assert_eq!(prediction_stats(&[]), PredictionStats::default());
    }

    #[test]
    fn f1_rng_names_parse_and_serialise() {
        assert_eq!(F1Rng::default(), F1Rng::ChaCha8);
        for (r, name) in F1Rng::ALL.into_iter().zip(F1Rng::NAMES) {
            assert_eq!(r.to_string(), name);
            assert_eq!(name.parse::<F1Rng>(), Ok(r));
            let json = serde_json::to_string(&r).expect("ser");
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<F1Rng>(&json).expect("de"), r);
        }
        assert_eq!("NumPy".parse::<F1Rng>(), Ok(F1Rng::Numpy));
        let err = "mt19937".parse::<F1Rng>().expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown F1 RNG \"mt19937\": expected one of chacha8, numpy"
        );
    }

    /// Two videos, 3 clusters for 4 classes (one class unmatched), the first video ending and the
    /// second starting on class 0 (their segments merge over the concatenation).
    const GT_A: [i32; 40] = [
        0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    const PR_A: [i32; 40] = [
        11, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 10, 11, 11, 11, 12, 12, 12, 12, 12, 11,
        12, 11, 11, 11, 11, 11, 10, 11, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    ];
    const GT_B: [i32; 30] = [
        0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0,
    ];
    const PR_B: [i32; 30] = [
        12, 10, 10, 10, 10, 12, 12, 11, 10, 12, 12, 12, 12, 12, 10, 12, 12, 11, 11, 11, 11, 11, 11,
        11, 11, 11, 10, 10, 11, 10,
    ];

    #[test]
    fn numpy_f1_matches_asot_eval_f1() {
        // Expected values: ASOT's eval_f1 (src/metrics.py of mingu6/action_seg_ot) run by numpy
        // 2.4 on these labels, a plain Hungarian solver standing in for scipy's (the optimum is
        // unique here). Activity: `np.random.seed(s)`, then `eval_f1(concat(pred), concat(gt), 2)`
        // after filter_exclusions; video: `np.random.seed(s)`, then `eval_f1(p, g, 1)` per video
        // in order, the stream running on. Skipping the draws of the unmatched class 3 would
        // change most of these values.
        let videos: [(&[i32], &[i32]); 2] = [(&PR_A, &GT_A), (&PR_B, &GT_B)];
        // [activity, video A, video B] for each (exclude, seed)
        let want: [[f64; 3]; 6] = [
            [0.849999994989375, 0.8577777728204444, 1.068571423642939],
            [0.8549999949893125, 0.8666666617091359, 1.1028571379276735],
            [0.8474999949894063, 0.8488888839317532, 1.0914285664994288],
            [0.9666666616505556, 1.1028571379276735, 1.12799999515488],
            [0.9633333283172778, 1.1028571379276735, 1.1199999951552],
            [0.9499999949841667, 1.0857142807853062, 1.15199999515392],
        ];
        let keys = [None, Some(1)]
            .into_iter()
            .flat_map(|x| [(x, 0), (x, 3), (x, 4294967295)]);
        let cases = keys.zip(want).map(|((x, s), w)| (x, s, w[0], [w[1], w[2]]));
        for (exclude, seed, activity, per) in cases {
            let act = activity_level_with(&videos, exclude, seed, F1Rng::Numpy).expect("act");
            assert_eq!(
                act.f1, activity,
                "activity F1, exclude {exclude:?}, seed {seed}"
            );
            let (mean, pv) = video_level_with(&videos, exclude, seed, F1Rng::Numpy).expect("per");
            assert_eq!(
                [pv[0].f1, pv[1].f1],
                per,
                "video F1, exclude {exclude:?}, seed {seed}"
            );
            assert_eq!(mean.f1, (per[0] + per[1]) / 2.0);
            // the stream only changes the F1
            let chacha = activity_level(&videos, exclude, seed).expect("chacha");
            assert_eq!((chacha.mof, chacha.miou), (act.mof, act.miou));
        }
        // eval_mof / eval_miou on the concatenation
        let act = activity_level_with(&videos, None, 0, F1Rng::Numpy).expect("act");
        assert_eq!(
            (act.mof, act.miou),
            (0.7857142857142857, 0.5182266009852217)
        );
        let act = activity_level_with(&videos, Some(1), 0, F1Rng::Numpy).expect("act");
        assert_eq!(
            (act.mof, act.miou),
            (0.8235294117647058, 0.6515151515151515)
        );
    }

    #[test]
    fn numpy_seed_range_and_chacha_wrappers() {
        let videos: [(&[i32], &[i32]); 2] = [(&PR_A, &GT_A), (&PR_B, &GT_B)];
        let big = 1u64 << 32;
        assert_eq!(
            activity_level_with(&videos, None, big, F1Rng::Numpy),
            Err(EvalError::NumpySeed(big))
        );
        assert!(video_level_with(&videos, None, big, F1Rng::Numpy).is_err());
        assert!(activity_level_with(&videos, None, big, F1Rng::ChaCha8).is_ok());
        for seed in [0, 7, big] {
            assert_eq!(
                activity_level(&videos, None, seed),
                activity_level_with(&videos, None, seed, F1Rng::ChaCha8)
            );
            assert_eq!(
                video_level(&videos, Some(1), seed),
                video_level_with(&videos, Some(1), seed, F1Rng::ChaCha8)
            );
        }
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
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % m) as i32
        };
        for _ in 0..200 {
            let n = 30;
            let (kp, kg) = (1 + next(4) as u64, 1 + next(4) as u64);
            let pred: Vec<i32> = (0..n).map(|_| next(kp)).collect();
            let gt: Vec<i32> = (0..n).map(|_| next(kg)).collect();
            let m = hungarian(&pred, &gt, None, "t").expect("ok");
            // brute force over injective maps pred-label -> gt-label (or unmatched)
            let ps: Vec<i32> = pred
                .iter()
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let gs: Vec<i32> = gt
                .iter()
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
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
