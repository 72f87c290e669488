//! Seeded k-means with k-means++ initialisation, on row-major N×d f32 data.
//!
//! Deterministic for a given seed (ChaCha8) and independent of the thread count: assignments are
//! computed in parallel but each row's result depends only on the row, and centroid sums are
//! accumulated serially in row order in f64. Cost: O(iters · N · k · d).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::ot::simd::{Isa, multiversion};

/// The clustering: `k`×d centroids and one cluster per row.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    pub centroids: Vec<f32>,
    pub assignment: Vec<usize>,
    pub k: usize,
    pub d: usize,
}

fn dist2(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum()
}

/// Centroids per block of [`nearest`]: four AVX2 vectors of f64 sums, whose additions overlap
/// (one dependent chain of d additions per lane, sixteen chains in flight); K ≤ 8 takes one
/// block of [`SMALL_BLOCK`] instead, not half a block of padding.
const BLOCK: usize = 16;
/// The block of [`nearest`] for K ≤ 8.
const SMALL_BLOCK: usize = 8;

/// Centroid columns of [`transpose`]'s layout: K rounded up to whole blocks.
fn padded(k: usize) -> usize {
    if k <= SMALL_BLOCK {
        SMALL_BLOCK
    } else {
        k.next_multiple_of(BLOCK)
    }
}

/// The nearest centroid of `row` (the first of equals) and its squared distance. `by_dim` holds
/// the k centroids transposed and padded to whole blocks of B (d × k′, k′ = [`padded`]`(k)`):
/// every centroid's distance is the same sequential f64 sum as [`dist2`]'s, dimension after
/// dimension, but a block of sums advances side by side in registers instead of k dependent
/// chains. Same bits as `dist2` per centroid; the padding is never chosen.
#[inline(always)]
fn nearest<const B: usize>(row: &[f32], by_dim: &[f32], k: usize) -> (usize, f64) {
    let kp = padded(k);
    let mut best = (0, f64::INFINITY);
    // fixed-size views, so that the lane loops compile to whole vectors
    for blk in 0..kp / B {
        let mut acc = [0f64; B];
        for (j, &x) in row.iter().enumerate() {
            let cs: &[f32; B] = by_dim[j * kp + blk * B..][..B]
                .try_into()
                .expect("a block is B wide");
            for l in 0..B {
                let t = (x - cs[l]) as f64;
                acc[l] += t * t;
            }
        }
        for (l, &dd) in acc.iter().enumerate() {
            let c = blk * B + l;
            if c < k && dd < best.1 {
                best = (c, dd);
            }
        }
    }
    best
}

/// Rows per rayon task of the assignment step.
const ASSIGN_ROWS: usize = 1024;

multiversion! {
    /// The nearest centroid of each row of `data` (`out.len()` rows of d) into `out`.
    fn assign_on(data: &[f32], by_dim: &[f32], k: usize, d: usize, out: &mut [usize]) {
        // the block width is chosen once; each loop inlines its `nearest` (compiled for AVX2)
        // (plain loops: a closure would not inherit the AVX2 target)
        let rows = out.iter_mut().zip(data.chunks_exact(d));
        if padded(k) == SMALL_BLOCK {
            for (o, row) in rows {
                *o = nearest::<SMALL_BLOCK>(row, by_dim, k).0;
            }
        } else {
            for (o, row) in rows {
                *o = nearest::<BLOCK>(row, by_dim, k).0;
            }
        }
    }
}

/// The k×d row-major centroids as d × k′ ([`nearest`]'s layout; padding columns are 0).
fn transpose(centroids: &[f32], k: usize, d: usize) -> Vec<f32> {
    let kp = padded(k);
    let mut t = vec![0f32; kp * d];
    for c in 0..k {
        for j in 0..d {
            t[j * kp + c] = centroids[c * d + j];
        }
    }
    t
}

/// Clusters the `data.len() / d` rows of `data` into `k` clusters (`k` ≤ rows, `d` > 0).
/// Returns `None` when there are fewer rows than clusters.
pub fn kmeans(data: &[f32], d: usize, k: usize, iters: usize, seed: u64) -> Option<KMeans> {
    let n = data.len().checked_div(d).unwrap_or(0);
    if k == 0 || n < k {
        return None;
    }
    let rows = |i: usize| &data[i * d..(i + 1) * d];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // k-means++: first centre uniform, then proportional to squared distance
    let mut centroids = Vec::with_capacity(k * d);
    centroids.extend_from_slice(rows(rng.random_range(0..n)));
    let mut best: Vec<f64> = (0..n).map(|i| dist2(rows(i), &centroids[..d])).collect();
    for c in 1..k {
        let total: f64 = best.iter().sum();
        let pick = if total > 0.0 {
            let mut t = rng.random::<f64>() * total;
            let mut chosen = n - 1;
            for (i, &b) in best.iter().enumerate() {
                if t < b {
                    chosen = i;
                    break;
                }
                t -= b;
            }
            chosen
        } else {
            rng.random_range(0..n)
        };
        centroids.extend_from_slice(rows(pick));
        let cen = &centroids[c * d..(c + 1) * d];
        best.par_iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = b.min(dist2(rows(i), cen)));
    }
    let mut assignment = vec![0usize; n];
    for _ in 0..iters.max(1) {
        let by_dim = transpose(&centroids, k, d);
        let mut next = vec![0usize; n];
        next.par_chunks_mut(ASSIGN_ROWS)
            .enumerate()
            .for_each(|(c, out)| {
                let first = c * ASSIGN_ROWS;
                let data = &data[first * d..(first + out.len()) * d];
                assign_on(Isa::detect(), data, &by_dim, k, d, out);
            });
        let changed = next != assignment;
        assignment = next;
        let mut sums = vec![0f64; k * d];
        let mut counts = vec![0usize; k];
        for (i, &a) in assignment.iter().enumerate() {
            counts[a] += 1;
            for (s, &x) in sums[a * d..(a + 1) * d].iter_mut().zip(rows(i)) {
                *s += x as f64;
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                for j in 0..d {
                    centroids[c * d + j] = (sums[c * d + j] / counts[c] as f64) as f32;
                }
            }
        }
        if !changed {
            break;
        }
    }
    Some(KMeans {
        centroids,
        assignment,
        k,
        d,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_clear_clusters_deterministically() {
        let mut data = Vec::new();
        for i in 0..90 {
            let c = (i % 3) as f32 * 10.0;
            data.extend_from_slice(&[c + (i as f32 * 0.01), -c]);
        }
        let a = kmeans(&data, 2, 3, 20, 7).expect("k ≤ n");
        let b = kmeans(&data, 2, 3, 20, 7).expect("k ≤ n");
        assert_eq!(a, b);
        for i in 0..90 {
            assert_eq!(a.assignment[i], a.assignment[i % 3]);
        }
        let distinct: BTreeSet<usize> = a.assignment.iter().copied().collect();
        assert_eq!(distinct.len(), 3);
        assert!(kmeans(&data[..4], 2, 3, 5, 0).is_none());
    }

    /// The side-by-side sums are `dist2`'s, bit for bit, and so is the choice among equals, for
    /// both block widths (K = 7 and K = 20, two blocks, the tie across them).
    #[test]
    fn nearest_equals_the_plain_distances() {
        for k in [7, 20] {
            let (n, d) = (50, 40);
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let data: Vec<f32> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut cen: Vec<f32> = (0..k * d).map(|_| rng.random_range(-1.0..1.0)).collect();
            // two equal centroids: the first one wins
            let (a, b) = cen.split_at_mut((k - 3) * d);
            b[..d].copy_from_slice(&a[2 * d..3 * d]);
            let by_dim = transpose(&cen, k, d);
            let mut assigned = vec![0usize; n];
            assign_on(Isa::detect(), &data, &by_dim, k, d, &mut assigned);
            for i in 0..n {
                let row = &data[i * d..(i + 1) * d];
                let mut want = (0, f64::INFINITY);
                for (c, ce) in cen.chunks_exact(d).enumerate() {
                    let dd = dist2(row, ce);
                    if dd < want.1 {
                        want = (c, dd);
                    }
                }
                let got = if k <= SMALL_BLOCK {
                    nearest::<SMALL_BLOCK>(row, &by_dim, k)
                } else {
                    nearest::<BLOCK>(row, &by_dim, k)
                };
                assert_eq!(
                    (got.0, got.1.to_bits()),
                    (want.0, want.1.to_bits()),
                    "K = {k}, row {i}"
                );
                assert_eq!(assigned[i], want.0, "K = {k}, row {i}");
            }
            let r2 = cen[2 * d..3 * d].to_vec();
            let mut one = [0usize];
            assign_on(Isa::detect(), &r2, &by_dim, k, d, &mut one);
            assert_eq!(one[0], 2, "K = {k}");
        }
    }

    use std::collections::BTreeSet;
}
