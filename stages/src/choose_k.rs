//! Choosing the number of actions K from the videos alone (`--actions auto`), never from labels.
//!
//! The method is the gap statistic (Tibshirani, Walther & Hastie, 2001) read with the L-method's
//! knee (Salvador & Chan, 2004), on features that are first made temporal:
//!
//! 1. **Frames.** Per video, all-zero rows (Breakfast's padding) are dropped, the video's mean is
//!    subtracted (a per-video style offset is not an action) and each frame is replaced by the
//!    mean of a centred window of [`ChooseK::window`] frames (white noise falls by √window while a
//!    step of tens of frames survives). Every `stride`-th frame is kept so that at most
//!    [`ChooseK::max_points`] remain.
//! 2. **Curve.** For every K of the range, k-means ([`crate::kmeans`], best of
//!    [`ChooseK::restarts`] seeds) gives the within-cluster sum of squares W(K) on these points and
//!    on [`ChooseK::references`] reference sets drawn uniformly in their bounding box (the null of
//!    "no clusters"). The gap is mean log W_ref(K) − log W(K).
//! 3. **Knee.** The gap rises while K separates real actions and then flattens (extra clusters
//!    only split actions, as they split the featureless reference). A continuous two-piece linear
//!    fit to the gap over K, least squares with the breakpoint at each inner K of the range, puts
//!    the breakpoint at K̂. With fewer than three K in the range, K̂ is the largest gap.
//!
//! Contract: the input is the activity's videos as row-major Ni × d features, nothing else, so the
//! choice cannot read ground truth. Deterministic for a given seed and independent of the thread
//! count (each K's k-means runs are seeded by K and restart, and are themselves thread-count
//! independent). Cost: (restarts + references) · |range| k-means runs on at most
//! `max_points` × d points, O(iters · points · K · d) each, run in parallel over K.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::kmeans::kmeans;

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
    /// ln W(K) of the features (within-cluster sum of squares of the best k-means run).
    pub log_w: f64,
    /// Mean ln W(K) of the reference sets.
    pub log_w_ref: f64,
    /// The gap statistic, `log_w_ref − log_w`: the score the knee is read from.
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
    /// Frames that entered the curve (after dropping zero rows and striding).
    pub points: usize,
    /// Frames of the input (zero rows included).
    pub frames: usize,
    /// Wall time of the estimate.
    pub seconds: f64,
}

/// Settings of [`estimate`]. [`ChooseK::default`] is what `--actions auto` uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChooseK {
    /// Frames of the centred moving average (odd).
    pub window: usize,
    /// At most this many frames enter the curve (every `stride`-th frame is kept).
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
            window: 9,
            max_points: 4000,
            references: 2,
            restarts: 3,
            iters: 25,
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
        "only {points} non-zero frames to choose K from, fewer than the largest K tried ({max}); \
         give a smaller range (auto:MIN-MAX) or more videos"
    )]
    TooFewFrames { points: usize, max: usize },
    #[error("video {video} has {len} values, not a multiple of the feature dimension {d}")]
    Shape { video: usize, len: usize, d: usize },
    #[error("video {video} has a non-finite feature value at frame {frame}")]
    NonFinite { video: usize, frame: usize },
}

/// The temporally smoothed, per-video centred frames of step 1, row-major × d.
pub fn prepare(videos: &[&[f32]], d: usize, opts: &ChooseK) -> Result<Vec<f32>, ChooseKError> {
    let mut kept: Vec<Vec<f32>> = Vec::with_capacity(videos.len());
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
        let h = opts.window / 2;
        let mut out = Vec::with_capacity(n * d);
        for t in 0..n {
            let (lo, hi) = (t.saturating_sub(h), (t + h + 1).min(n));
            let inv = 1.0 / (hi - lo) as f64;
            out.extend((0..d).map(|j| ((prefix[hi * d + j] - prefix[lo * d + j]) * inv) as f32));
        }
        kept.push(out);
    }
    let total: usize = kept.iter().map(|v| v.len() / d).sum();
    let stride = total.div_ceil(opts.max_points.max(1)).max(1);
    let mut points = Vec::with_capacity(total.div_ceil(stride) * d);
    for v in &kept {
        for r in v.chunks_exact(d).step_by(stride) {
            points.extend_from_slice(r);
        }
    }
    Ok(points)
}

/// ln of the lowest within-cluster sum of squares over `restarts` seeded k-means runs.
fn log_w(points: &[f32], d: usize, k: usize, restarts: usize, opts: &ChooseK, seed: u64) -> f64 {
    (0..restarts.max(1) as u64)
        .filter_map(|r| {
            let km = kmeans(points, d, k, opts.iters, seed.wrapping_add(r))?;
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
    if n < range.max {
        return Err(ChooseKError::TooFewFrames {
            points: n,
            max: range.max,
        });
    }
    let refs: Vec<Vec<f32>> = (0..opts.references as u64)
        .map(|b| reference(&points, d, opts.seed ^ (0x5eed_0000 + b)))
        .collect();
    let curve: Vec<KScore> = (range.min..=range.max)
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
    let ks: Vec<f64> = curve.iter().map(|c| c.k as f64).collect();
    let gaps: Vec<f64> = curve.iter().map(|c| c.gap).collect();
    let (k, method) = match knee(&ks, &gaps) {
        Some(i) => (
            curve[i].k,
            format!(
                "knee of the gap statistic over K = {range} (continuous two-piece linear fit; \
                 frames smoothed over {} and centred per video, {} reference sets)",
                opts.window, opts.references
            ),
        ),
        None => {
            let i = (0..curve.len())
                .max_by(|&a, &b| curve[a].gap.total_cmp(&curve[b].gap))
                .unwrap_or(0);
            (
                curve[i].k,
                format!("largest gap statistic over K = {range} (too few K for a knee)"),
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
            Err(ChooseKError::TooFewFrames { points: 2, max: 4 })
        );
        assert!(matches!(
            estimate(&[&[1.0; 10]], 1, KRange { min: 1, max: 4 }, &o),
            Err(ChooseKError::Range(_))
        ));
    }
}
