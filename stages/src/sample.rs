//! Frame sampling and per-video standardisation (SPEC §1), the kernels of the load stage.
//!
//! * [`Sampling::Train`]: one uniformly random frame from each of S equal strata of [0, N−1]
//!   (`b = floor(linspace(0, N−1, S+1))`, index in [b_s, b_{s+1}), or b_s where the stratum is
//!   empty).
//! * [`Sampling::Validation`]: `floor(linspace(0, N−1, S))`.
//! * [`Sampling::Full`]: every frame (the test protocol).
//!
//! If N < S (train/validation), all N frames are taken and the last one is repeated up to S; the
//! mask marks the repeats as padding. [`standardise`] works on the real sampled rows only.
//! Cost O(S·D).

use rand::{Rng, RngExt};

/// How frames of a video are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// S random frames, one per stratum.
    Train(usize),
    /// S evenly spaced frames.
    Validation(usize),
    /// All frames.
    Full,
}

fn linspace_floor(hi: usize, count: usize) -> Vec<usize> {
    if count == 1 {
        return vec![0];
    }
    (0..count)
        .map(|s| (hi as f64 * s as f64 / (count - 1) as f64).floor() as usize)
        .collect()
}

/// The frame indices for a video of `n` frames and how many of them are real (a prefix). The
/// result has S entries for train/validation, N for full.
pub fn sample_indices(n: usize, sampling: Sampling, rng: &mut impl Rng) -> (Vec<usize>, usize) {
    match sampling {
        Sampling::Full => ((0..n).collect(), n),
        Sampling::Train(s) | Sampling::Validation(s) if n < s => {
            let mut idx: Vec<usize> = (0..n).collect();
            idx.resize(s, n.saturating_sub(1));
            (idx, n)
        }
        Sampling::Train(s) => {
            let b = linspace_floor(n - 1, s + 1);
            let idx = b
                .windows(2)
                .map(|w| {
                    if w[1] > w[0] {
                        rng.random_range(w[0]..w[1])
                    } else {
                        w[0]
                    }
                })
                .collect();
            (idx, s)
        }
        Sampling::Validation(s) => (linspace_floor(n - 1, s), s),
    }
}

/// Gathers rows `idx` of the N×D matrix `x`.
pub fn gather_rows(x: &[f32], d: usize, idx: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len() * d);
    for &i in idx {
        out.extend_from_slice(&x[i * d..(i + 1) * d]);
    }
    out
}

/// Standardises the first `valid` rows of the row-major `x` (rows × D) in place, as the
/// reference does: mean and population std per dimension over the rows whose sum is non-zero;
/// those rows become (x − mean)/std (0/0 and x/0 become 0, never NaN), zero-sum rows stay 0; then
/// every row is divided by √D. Rows after `valid` (padding) are overwritten with the last valid
/// row so that they stay copies of it.
pub fn standardise(x: &mut [f32], d: usize, valid: usize) {
    if d == 0 {
        return;
    }
    // rows whose sum is non-zero: each sum serial over the dimensions (as the reference adds),
    // four rows side by side so that their additions overlap
    let mut nonzero = vec![false; valid];
    for (b, flags) in nonzero.chunks_mut(4).enumerate() {
        let mut sums = [0f64; 4];
        for j in 0..d {
            for (r, s) in sums.iter_mut().enumerate().take(flags.len()) {
                *s += x[(b * 4 + r) * d + j] as f64;
            }
        }
        for (f, s) in flags.iter_mut().zip(sums) {
            *f = s != 0.0;
        }
    }
    let rows: Vec<usize> = (0..valid).filter(|&i| nonzero[i]).collect();
    let mut mean = vec![0f64; d];
    let mut var = vec![0f64; d];
    if !rows.is_empty() {
        for &i in &rows {
            for (m, &v) in mean.iter_mut().zip(&x[i * d..(i + 1) * d]) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows.len() as f64);
        for &i in &rows {
            for ((s, &v), m) in var.iter_mut().zip(&x[i * d..(i + 1) * d]).zip(&mean) {
                *s += (v as f64 - m).powi(2);
            }
        }
        var.iter_mut().for_each(|s| *s /= rows.len() as f64);
    }
    let scale = 1.0 / (d as f64).sqrt();
    let std: Vec<f64> = var.iter().map(|s| s.sqrt()).collect();
    for (i, &keep) in nonzero.iter().enumerate() {
        let row = &mut x[i * d..(i + 1) * d];
        if !keep {
            row.fill(0.0);
            continue;
        }
        for ((v, m), s) in row.iter_mut().zip(&mean).zip(&std) {
            let z = (*v as f64 - m) / s;
            *v = if z.is_finite() {
                (z * scale) as f32
            } else {
                0.0
            };
        }
    }
    if valid > 0 {
        let (head, tail) = x.split_at_mut(valid * d);
        let last = &head[(valid - 1) * d..];
        tail.chunks_exact_mut(d)
            .for_each(|r| r.copy_from_slice(last));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn train_strata_cover_the_video_in_order() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (idx, valid) = sample_indices(1000, Sampling::Train(256), &mut rng);
        assert_eq!((idx.len(), valid), (256, 256));
        let b = linspace_floor(999, 257);
        for (s, &i) in idx.iter().enumerate() {
            assert!(
                i >= b[s] && (i < b[s + 1] || b[s + 1] == b[s]),
                "stratum {s}: {i}"
            );
        }
        assert!(idx.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn validation_is_linspace_and_short_videos_pad() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (idx, _) = sample_indices(11, Sampling::Validation(3), &mut rng);
        assert_eq!(idx, vec![0, 5, 10]);
        let (idx, valid) = sample_indices(3, Sampling::Train(5), &mut rng);
        assert_eq!((idx, valid), (vec![0, 1, 2, 2, 2], 3));
        let (idx, valid) = sample_indices(4, Sampling::Full, &mut rng);
        assert_eq!((idx, valid), (vec![0, 1, 2, 3], 4));
    }

    #[test]
    fn standardise_matches_hand_values() {
        // rows: zero, (1,2), (3,6); mean (2,4), std (1,2); /sqrt(2)
        let mut x = vec![0.0, 0.0, 1.0, 2.0, 3.0, 6.0, 9.0, 9.0];
        standardise(&mut x, 2, 3);
        let s = 1.0 / 2f32.sqrt();
        assert_eq!(&x[..2], &[0.0, 0.0]);
        assert!((x[2] + s).abs() < 1e-6 && (x[3] + s).abs() < 1e-6);
        assert!((x[4] - s).abs() < 1e-6 && (x[5] - s).abs() < 1e-6);
        assert_eq!(
            &x[6..],
            &x[4..6].to_vec()[..],
            "padding repeats the last row"
        );
        // a constant dimension has std 0: it becomes 0, not NaN
        let mut c = vec![1.0, 5.0, 1.0, 7.0];
        standardise(&mut c, 2, 2);
        assert!(c.iter().all(|v| v.is_finite()));
        assert_eq!((c[0], c[2]), (0.0, 0.0));
    }
}
