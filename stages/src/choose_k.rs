//! Choosing the number of actions K from the videos alone (`--actions auto`), never from labels.
//!
//! The method clusters *segments*, not frames: each video is cut where its features change, the
//! segments' means are clustered for every K of the range, and K̂ is the knee of ln W(K), the
//! L-method of Salvador & Chan (2004). Cutting first is the boundary-then-cluster idea of ABD
//! (Du, Wang & Deng, CVPR 2022, "Fast and unsupervised action boundary detection"): a segment's
//! mean averages away the per-frame noise that buries the actions in frame-level clustering.
//!
//! 1. **Segments.** Per video, all-zero rows (Breakfast's padding) are dropped and the video's
//!    mean is subtracted (a per-video style offset is not an action). The change score at frame t
//!    is the squared distance between the means of the [`ChooseK::boundary_window`] frames before
//!    t and the as many from t on. A cut is a local maximum of the score at least
//!    1 + [`ChooseK::boundary_sigmas`]·√(2/d) times the lower quartile of the video's scores (the
//!    noise floor; √(2/d) is the relative spread of a noise-only score), with cuts at
//!    least half a window apart (higher ones first, as scipy's `find_peaks(distance=…)`).
//!    Each segment of two frames or more gives one point, its mean; every `stride`-th is kept so
//!    that at most [`ChooseK::max_points`] remain.
//! 2. **Curve.** For every K of the range, k-means ([`crate::kmeans::kmeans_with`], greedy
//!    k-means++ seeding, best of [`ChooseK::restarts`] seeds) gives the within-cluster sum of
//!    squares W(K) of the segment means; a K whose runs all end above a smaller K's W takes that
//!    W (the best K-clustering is never worse), so a poor local minimum does not bend the curve.
//!    The gap statistic (Tibshirani, Walther & Hastie, 2001) against
//!    [`ChooseK::references`] sets drawn uniformly in their bounding box is recorded beside it.
//! 3. **Knee.** ln W falls steeply while K separates real actions and then slowly (extra clusters
//!    only split actions). A continuous two-piece linear fit to ln W over K, least squares with
//!    the breakpoint at each inner K of the range, puts the breakpoint at K̂. With fewer than three
//!    K in the range, K̂ is the largest gap. A range reaching past a third of the segments is cut
//!    there (ln W dives as K nears their number), and the method text says so.
//!
//! Cutting first is what helps: on the demo generator's sets with K ∈ {4, 7, 10, 14, 20} and
//! seeds 0–9, a Python prototype found K within ±1 on 27 of 50 sets with the knee of ln W on
//! frames smoothed over 9 (about as often as the frame-level gap statistic this replaces) and on
//! 43 of 50 with segment means. The settings were chosen on those seeds; `clot-bench choose-k
//! --first-seed 10` measures sets no setting was chosen on (issue 15's notes have the figures).
//! The k-means minima matter too: 3 plain restarts gave 27 of 50 in Rust, 10 greedy ones 41.
//!
//! Contract: the input is the activity's videos as row-major Ni × d features, nothing else, so the
//! choice cannot read ground truth. Deterministic for a given seed and independent of the thread
//! count (each K's k-means runs are seeded by K and restart, and are themselves thread-count
//! independent). Cost: O(frames · d) for the cuts, then (restarts + references) · |range| k-means
//! runs on at most `max_points` segment means, O(iters · points · K · d) each, in parallel over
//! K; 0.3–1.3 s on the demo generator's sets (a few hundred segments, 2 threads).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::kmeans::kmeans_with;

/// The K searched, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KRange {
    pub min: usize,
    pub max: usize,
}

impl KRange {
    /// The default range for videos of `median_frames` frames: 2 to 3·√median, capped at 40.
    pub fn default_for(median_frames: usize) -> Self {
        let max = ((3.0 * (median_frames as f64).sqrt()).floor() as usize).clamp(2, 40);
        KRange { min: 2, max }
    }
}

impl std::fmt::Display for KRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.min, self.max)
    }
}

/// One K of the score curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KScore {
    pub k: usize,
    /// ln W(K), the score the knee is read from: the within-cluster sum of squares of the segment
    /// means, the lowest of the k-means runs at this K or any smaller one of the range.
    pub log_w: f64,
    /// Mean ln W(K) of the reference sets.
    pub log_w_ref: f64,
    /// The gap statistic, `log_w_ref − log_w` (K̂ is its largest value only when the range has
    /// fewer than three K).
    pub gap: f64,
}

/// What [`estimate`] chose and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KEstimate {
    /// K̂.
    pub k: usize,
    pub range: KRange,
    /// How K̂ was read from the curve, in words.
    pub method: String,
    /// The score of every K of the range, in K order.
    pub curve: Vec<KScore>,
    /// Segment means that entered the curve (after striding).
    pub points: usize,
    /// Frames of the input (zero rows included).
    pub frames: usize,
    /// Wall time of the estimate.
    pub seconds: f64,
}

/// Settings of [`estimate`]. [`ChooseK::default`] is what `--actions auto` uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChooseK {
    /// Frames on each side of the change score (at least 1).
    pub boundary_window: usize,
    /// A cut's score exceeds the lower quartile of the video's scores (the noise floor) by this
    /// many times √(2/d), the relative spread of a noise-only score (a χ² with d degrees of
    /// freedom): 3.4 puts cuts at 1.6 × the floor for d = 64, 2.2 × for d = 15.
    pub boundary_sigmas: f64,
    /// At most this many segments enter the curve (every `stride`-th is kept).
    pub max_points: usize,
    /// Reference sets per K.
    pub references: usize,
    /// k-means runs on the features per K; the lowest W is kept (one run per reference set).
    pub restarts: usize,
    /// Lloyd iterations of each k-means run.
    pub iters: usize,
    pub seed: u64,
}

impl Default for ChooseK {
    fn default() -> Self {
        ChooseK {
            boundary_window: 10,
            boundary_sigmas: 3.4,
            max_points: 4000,
            references: 2,
            restarts: 10,
            iters: 50,
            seed: 0,
        }
    }
}

/// Why K could not be estimated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChooseKError {
    #[error("the K range {0} is empty or starts below 2")]
    Range(KRange),
    #[error(
        "only {points} segments to choose K from, fewer than three per action for the smallest K \
         tried ({min}); give a smaller range (auto:MIN-MAX) or more videos"
    )]
    TooFewSegments { points: usize, min: usize },
    #[error("video {video} has {len} values, not a multiple of the feature dimension {d}")]
    Shape { video: usize, len: usize, d: usize },
    #[error("video {video} has a non-finite feature value at frame {frame}")]
    NonFinite { video: usize, frame: usize },
}

/// The segment means of step 1 (row-major × d), over all videos in order.
pub fn prepare(videos: &[&[f32]], d: usize, opts: &ChooseK) -> Result<Vec<f32>, ChooseKError> {
    let mut segments: Vec<Vec<f32>> = Vec::new();
    for (vi, v) in videos.iter().enumerate() {
        if d == 0 || !v.len().is_multiple_of(d) {
            return Err(ChooseKError::Shape {
                video: vi,
                len: v.len(),
                d,
            });
        }
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(ChooseKError::NonFinite {
                video: vi,
                frame: i / d,
            });
        }
        let rows: Vec<&[f32]> = v
            .chunks_exact(d)
            .filter(|r| r.iter().any(|&x| x != 0.0))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let mut mean = vec![0f64; d];
        for r in &rows {
            for (m, &x) in mean.iter_mut().zip(*r) {
                *m += x as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows.len() as f64);
        // prefix sums of the centred rows give every window's mean in O(d)
        let n = rows.len();
        let mut prefix = vec![0f64; (n + 1) * d];
        for (t, r) in rows.iter().enumerate() {
            for j in 0..d {
                prefix[(t + 1) * d + j] = prefix[t * d + j] + (r[j] as f64 - mean[j]);
            }
        }
        let cuts = cuts(&prefix, n, d, opts);
        let bounds = std::iter::once(0).chain(cuts).chain(std::iter::once(n));
        let bounds: Vec<usize> = bounds.collect();
        for w in bounds.windows(2) {
            let (a, b) = (w[0], w[1]);
            if b - a >= 2 {
                let inv = 1.0 / (b - a) as f64;
                segments.push(
                    (0..d)
                        .map(|j| ((prefix[b * d + j] - prefix[a * d + j]) * inv) as f32)
                        .collect(),
                );
            }
        }
    }
    let stride = segments.len().div_ceil(opts.max_points.max(1)).max(1);
    Ok(segments.into_iter().step_by(stride).flatten().collect())
}

/// Where one video of `n` frames is cut, in frame order (step 1): from `prefix`, the (n + 1) × d
/// prefix sums of its centred rows. A video too short for one full window on each side is one
/// segment.
fn cuts(prefix: &[f64], n: usize, d: usize, opts: &ChooseK) -> Vec<usize> {
    let w = opts.boundary_window.max(1);
    if n < 2 * w + 1 {
        return Vec::new();
    }
    // the score at t ∈ [w, n − w]: |mean(t − w..t) − mean(t..t + w)|²
    let score: Vec<f64> = (w..=n - w)
        .map(|t| {
            (0..d)
                .map(|j| {
                    let before = prefix[t * d + j] - prefix[(t - w) * d + j];
                    let after = prefix[(t + w) * d + j] - prefix[t * d + j];
                    ((before - after) / w as f64).powi(2)
                })
                .sum()
        })
        .collect();
    // the noise floor: the lower quartile (linear interpolation, as numpy's default), since with
    // short steps most frames lie within a window of a boundary and the median is raised by them
    let mut sorted = score.clone();
    sorted.sort_by(f64::total_cmp);
    let at = (sorted.len() - 1) as f64 * 0.25;
    let (lo, frac) = (at.floor() as usize, at.fract());
    let floor = sorted[lo] + (sorted[(lo + 1).min(sorted.len() - 1)] - sorted[lo]) * frac;
    let height = floor * (1.0 + opts.boundary_sigmas * (2.0 / d as f64).sqrt());
    // local maxima (the first frame of a plateau) over the height
    let mut peaks: Vec<usize> = Vec::new();
    let mut i = 1;
    while i + 1 < score.len() {
        if score[i] > score[i - 1] {
            let mut j = i;
            while j + 1 < score.len() && score[j + 1] == score[i] {
                j += 1;
            }
            if j + 1 < score.len() && score[j + 1] < score[i] && score[i] >= height {
                peaks.push(i);
            }
            i = j + 1;
        } else {
            i += 1;
        }
    }
    // higher peaks first; a peak closer than half a window to a kept one is dropped
    let distance = (w / 2).max(2);
    let mut order = peaks;
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
    let mut kept: Vec<usize> = Vec::new();
    for p in order {
        if kept.iter().all(|&q| p.abs_diff(q) >= distance) {
            kept.push(p);
        }
    }
    kept.sort_unstable();
    kept.into_iter().map(|p| p + w).collect()
}

/// ln of the lowest within-cluster sum of squares over `restarts` seeded k-means runs.
fn log_w(points: &[f32], d: usize, k: usize, restarts: usize, opts: &ChooseK, seed: u64) -> f64 {
    // greedy seeding with 2 + ⌊ln k⌋ candidates per centre, scikit-learn's default
    let trials = 2 + (k as f64).ln().floor() as usize;
    (0..restarts.max(1) as u64)
        .filter_map(|r| {
            let km = kmeans_with(points, d, k, opts.iters, seed.wrapping_add(r), trials)?;
            Some(
                points
                    .chunks_exact(d)
                    .zip(&km.assignment)
                    .map(|(row, &c)| {
                        row.iter()
                            .zip(&km.centroids[c * d..(c + 1) * d])
                            .map(|(x, y)| ((x - y) as f64).powi(2))
                            .sum::<f64>()
                    })
                    .sum::<f64>(),
            )
        })
        .fold(f64::INFINITY, f64::min)
        .max(f64::MIN_POSITIVE)
        .ln()
}

/// Points drawn uniformly in the bounding box of `points`.
fn reference(points: &[f32], d: usize, seed: u64) -> Vec<f32> {
    let mut lo = vec![f32::INFINITY; d];
    let mut hi = vec![f32::NEG_INFINITY; d];
    for r in points.chunks_exact(d) {
        for j in 0..d {
            lo[j] = lo[j].min(r[j]);
            hi[j] = hi[j].max(r[j]);
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..points.len())
        .map(|i| {
            let j = i % d;
            lo[j] + (hi[j] - lo[j]) * rng.random::<f32>()
        })
        .collect()
}

/// The breakpoint of the continuous two-piece linear least-squares fit to `(x, y)`, searched over
/// the inner points; `None` with fewer than three points.
pub fn knee(x: &[f64], y: &[f64]) -> Option<usize> {
    if x.len() < 3 {
        return None;
    }
    let mut best: Option<(f64, usize)> = None;
    for b in 1..x.len() - 1 {
        // y ≈ c0 + c1·min(x − x_b, 0) + c2·max(x − x_b, 0): solve the 3×3 normal equations
        let feats: Vec<[f64; 3]> = x
            .iter()
            .map(|&xi| [1.0, (xi - x[b]).min(0.0), (xi - x[b]).max(0.0)])
            .collect();
        let mut a = [[0f64; 4]; 3];
        for (f, &yi) in feats.iter().zip(y) {
            for r in 0..3 {
                for c in 0..3 {
                    a[r][c] += f[r] * f[c];
                }
                a[r][3] += f[r] * yi;
            }
        }
        let Some(coef) = solve3(a) else { continue };
        let sse: f64 = feats
            .iter()
            .zip(y)
            .map(|(f, &yi)| (coef[0] * f[0] + coef[1] * f[1] + coef[2] * f[2] - yi).powi(2))
            .sum();
        if best.is_none_or(|(s, _)| sse < s) {
            best = Some((sse, b));
        }
    }
    best.map(|(_, b)| b)
}

/// Gaussian elimination with partial pivoting on an augmented 3×4 system.
fn solve3(mut a: [[f64; 4]; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let piv = (col..3).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, piv);
        let pivot = a[col];
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot[col];
                for (x, p) in row.iter_mut().zip(pivot).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    Some([a[0][3] / a[0][0], a[1][3] / a[1][1], a[2][3] / a[2][2]])
}

/// Estimates K for one activity from its videos' features (row-major Ni × d each).
pub fn estimate(
    videos: &[&[f32]],
    d: usize,
    range: KRange,
    opts: &ChooseK,
) -> Result<KEstimate, ChooseKError> {
    if range.min < 2 || range.max < range.min {
        return Err(ChooseKError::Range(range));
    }
    let start = std::time::Instant::now();
    let frames = videos.iter().map(|v| v.len() / d.max(1)).sum();
    let points = prepare(videos, d, opts)?;
    let n = points.len() / d;
    if n < 3 * range.min {
        return Err(ChooseKError::TooFewSegments {
            points: n,
            min: range.min,
        });
    }
    // K stays at most a third of the segments: as K nears their number W falls to 0 and ln W
    // dives, a knee that is not there
    let searched = KRange {
        max: range.max.min(n / 3),
        ..range
    };
    let cut = if searched == range {
        String::new()
    } else {
        format!("; range {range} cut to {searched}, a third of the segments")
    };
    let refs: Vec<Vec<f32>> = (0..opts.references as u64)
        .map(|b| reference(&points, d, opts.seed ^ (0x5eed_0000 + b)))
        .collect();
    let mut curve: Vec<KScore> = (searched.min..=searched.max)
        .into_par_iter()
        .map(|k| {
            let seed = opts
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add(k as u64 * 101);
            let lw = log_w(&points, d, k, opts.restarts, opts, seed);
            // the featureless reference has no bad local minima worth a restart
            let lr = refs
                .iter()
                .map(|r| log_w(r, d, k, 1, opts, seed))
                .sum::<f64>()
                / refs.len().max(1) as f64;
            KScore {
                k,
                log_w: lw,
                log_w_ref: lr,
                gap: lr - lw,
            }
        })
        .collect();
    // the best K-clustering is no worse than the best with fewer clusters (split one of them):
    // a K whose runs all stuck above a smaller K's W takes that W, so no local minimum of
    // k-means bends the curve
    for i in 1..curve.len() {
        if curve[i].log_w > curve[i - 1].log_w {
            curve[i].log_w = curve[i - 1].log_w;
            curve[i].gap = curve[i].log_w_ref - curve[i].log_w;
        }
    }
    let ks: Vec<f64> = curve.iter().map(|c| c.k as f64).collect();
    let log_ws: Vec<f64> = curve.iter().map(|c| c.log_w).collect();
    let (k, method) = match knee(&ks, &log_ws) {
        Some(i) => (
            curve[i].k,
            format!(
                "knee of ln W over K = {searched} (two-piece fit; k-means of {n} segment means, \
                 cut where the {w}-frame mean changes{cut})",
                w = opts.boundary_window
            ),
        ),
        None => {
            let i = (0..curve.len())
                .max_by(|&a, &b| curve[a].gap.total_cmp(&curve[b].gap))
                .unwrap_or(0);
            (
                curve[i].k,
                format!(
                    "largest gap statistic over K = {searched} ({n} segment means; too few K for \
                     a knee{cut})"
                ),
            )
        }
    };
    Ok(KEstimate {
        k,
        range,
        method,
        curve,
        points: n,
        frames,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knee_finds_the_break_of_a_bent_line() {
        let x: Vec<f64> = (2..=30).map(f64::from).collect();
        let y: Vec<f64> = x
            .iter()
            .map(|&k| if k <= 9.0 { k } else { 9.0 + 0.05 * (k - 9.0) })
            .collect();
        assert_eq!(x[knee(&x, &y).unwrap()], 9.0);
        assert_eq!(knee(&x[..2], &y[..2]), None);
    }

    #[test]
    fn default_range_follows_the_median_length() {
        assert_eq!(KRange::default_for(600), KRange { min: 2, max: 40 });
        assert_eq!(KRange::default_for(100), KRange { min: 2, max: 30 });
        assert_eq!(KRange::default_for(1), KRange { min: 2, max: 3 });
    }

    /// A video of clean steps is cut at each step's first frame (and perhaps in between, where
    /// the noise peaks), and each segment's mean is its step's level, centred on the video's mean.
    #[test]
    fn cuts_fall_on_the_steps() {
        let (d, len) = (16, 40);
        let levels = [0.0f32, 4.0, 1.0, 6.0];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let video: Vec<f32> = levels
            .iter()
            .flat_map(|&l| std::iter::repeat_n(l, len * d))
            .map(|x| x + 0.2 * (rng.random::<f32>() - 0.5))
            .collect();
        let o = ChooseK::default();
        let mean = levels.iter().sum::<f32>() / levels.len() as f32;
        let mut prefix = vec![0f64; (video.len() / d + 1) * d];
        for (t, r) in video.chunks_exact(d).enumerate() {
            for j in 0..d {
                prefix[(t + 1) * d + j] = prefix[t * d + j] + f64::from(r[j] - mean);
            }
        }
        let at = cuts(&prefix, video.len() / d, d, &o);
        for step in 1..levels.len() {
            assert!(at.contains(&(step * len)), "{at:?}");
        }
        let points = prepare(&[&video], d, &o).unwrap();
        assert_eq!(points.len() / d, at.len() + 1);
        let mut seen = Vec::new();
        for s in points.chunks_exact(d) {
            let l = levels
                .iter()
                .position(|&l| s.iter().all(|&x| (x - (l - mean)).abs() < 0.1))
                .unwrap_or_else(|| panic!("{s:?} is no level"));
            if seen.last() != Some(&l) {
                seen.push(l);
            }
        }
        assert_eq!(seen, [0, 1, 2, 3]);
        // too short for a window each side: one segment
        let short = &video[..2 * o.boundary_window * d];
        assert_eq!(prepare(&[short], d, &o).unwrap().len(), d);
    }

    /// Well separated blobs, each a run of frames: K̂ is their number.
    #[test]
    fn separated_steps_give_their_number() {
        let (d, k) = (8, 5);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let protos: Vec<f32> = (0..k * d).map(|_| rng.random::<f32>() * 4.0).collect();
        let videos: Vec<Vec<f32>> = (0..6)
            .map(|_| {
                (0..k)
                    .flat_map(|s| (0..150).map(move |_| s))
                    .flat_map(|s| {
                        let p = protos[s * d..(s + 1) * d].to_vec();
                        p.into_iter()
                            .map(|x| x + rng.random::<f32>() - 0.5)
                            .collect::<Vec<_>>()
                    })
                    .collect()
            })
            .collect();
        let views: Vec<&[f32]> = videos.iter().map(|v| v.as_slice()).collect();
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| estimate(&views, d, KRange { min: 2, max: 12 }, &ChooseK::default()))
                .unwrap()
        };
        let e = on(3);
        assert_eq!(e.k, k, "{e:?}");
        assert_eq!(e.curve.len(), 11);
        // the same curve on one thread as on three
        let again = on(1);
        assert_eq!((e.k, &e.curve), (again.k, &again.curve));
    }

    #[test]
    fn bad_input_is_an_error() {
        let o = ChooseK::default();
        let r = KRange { min: 2, max: 4 };
        assert_eq!(
            estimate(&[&[1.0, 2.0, 3.0]], 2, r, &o),
            Err(ChooseKError::Shape {
                video: 0,
                len: 3,
                d: 2
            })
        );
        assert_eq!(
            estimate(&[&[1.0, f32::NAN]], 1, r, &o),
            Err(ChooseKError::NonFinite { video: 0, frame: 1 })
        );
        assert_eq!(
            estimate(&[&[1.0, 2.0]], 1, r, &o),
            Err(ChooseKError::TooFewSegments { points: 1, min: 2 })
        );
        assert!(matches!(
            estimate(&[&[1.0; 10]], 1, KRange { min: 1, max: 4 }, &o),
            Err(ChooseKError::Range(_))
        ));
    }
}
