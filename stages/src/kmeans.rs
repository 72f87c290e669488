//! Seeded k-means with k-means++ initialisation, on row-major N×d f32 data.
//!
//! Deterministic for a given seed (ChaCha8) and independent of the thread count: assignments are
//! computed in parallel but each row's result depends only on the row, and centroid sums are
//! accumulated serially in row order in f64.
//!
//! The iterations are Lloyd's, with Hamerly's bounds (Hamerly 2010, "Making k-means even
//! faster") to skip the rows whose centroid cannot have changed: per row an upper bound on the
//! distance to its centroid and a lower bound on the distance to every other, moved by how far
//! the centroids moved. A row is skipped only when its bounds separate by more than the rounding
//! of the distances (a relative 1e-6); every other row is assigned by the same f64 distance
//! sums as plain Lloyd's, so the clustering is the same bits (a test compares the two). Cost:
//! O(iters · N · d) for the centroid sums and the bounds, plus O(N · k · d) for each row that
//! cannot be skipped (all of them in the first iteration, few once the centroids settle).

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

/// Centroids per block of [`nearest2`]: four AVX2 vectors of f64 sums, whose additions overlap
/// (one dependent chain of d additions per lane, sixteen chains in flight); K ≤ 8 takes one
/// block of [`SMALL_BLOCK`] instead, not half a block of padding.
const BLOCK: usize = 16;
/// The block of [`nearest2`] for K ≤ 8.
const SMALL_BLOCK: usize = 8;

/// Centroid columns of [`transpose`]'s layout: K rounded up to whole blocks.
fn padded(k: usize) -> usize {
    if k <= SMALL_BLOCK {
        SMALL_BLOCK
    } else {
        k.next_multiple_of(BLOCK)
    }
}

/// The nearest centroid of `row` (the first of equals), its squared distance, and the
/// second-smallest squared distance (over the other centroids; infinite when k = 1), for the lower
/// bound. `by_dim` holds the k centroids transposed and padded to whole blocks of B (d × k′, k′ =
/// [`padded`]`(k)`): every centroid's distance is the same sequential f64 sum as [`dist2`]'s,
/// dimension after dimension, but a block of sums advances side by side in registers instead of k
/// dependent chains. Same bits as `dist2` per centroid; the padding is never chosen.
#[inline(always)]
fn nearest2<const B: usize>(row: &[f32], by_dim: &[f32], k: usize) -> (usize, f64, f64) {
    nearest2_rows::<B, 1>([row], by_dim, k)[0]
}

/// [`nearest2`] of R rows at once: each centroid block is loaded once for all of them, and
/// their sums advance side by side (R times the independent additions in flight). Every row's
/// result is [`nearest2`]'s, bit for bit: its sums are the same sequences of operations.
#[inline(always)]
fn nearest2_rows<const B: usize, const R: usize>(
    rows: [&[f32]; R],
    by_dim: &[f32],
    k: usize,
) -> [(usize, f64, f64); R] {
    let kp = padded(k);
    let d = rows[0].len();
    let mut found = [((0, f64::INFINITY), f64::INFINITY); R];
    for blk in 0..kp / B {
        let mut acc = [[0f64; B]; R];
        for j in 0..d {
            let cs: &[f32; B] = by_dim[j * kp + blk * B..][..B]
                .try_into()
                .expect("a block is B wide");
            for (a, row) in acc.iter_mut().zip(&rows) {
                let x = row[j];
                for l in 0..B {
                    let t = (x - cs[l]) as f64;
                    a[l] += t * t;
                }
            }
        }
        for (a, (best, second)) in acc.iter().zip(found.iter_mut()) {
            for (l, &dd) in a.iter().enumerate() {
                let c = blk * B + l;
                if c >= k {
                    continue;
                }
                if dd < best.1 {
                    *second = best.1;
                    *best = (c, dd);
                } else if dd < *second {
                    *second = dd;
                }
            }
        }
    }
    found.map(|((c, best), second)| (c, best, second))
}

/// Relative slack of Hamerly's bounds: each distance is a rounded f64 sum of rounded f32
/// differences (relative error below 1e-7), so a bound is widened by this much wherever it is
/// computed or moved, and a row is skipped only when its bounds are this far apart.
const SLACK: f64 = 1e-6;

/// Per-row state of Hamerly's bounds: the assigned centroid, an upper bound on the distance to
/// it and a lower bound on the distance to every other centroid.
struct Bounds {
    upper: Vec<f64>,
    lower: Vec<f64>,
}

multiversion! {
    /// One assignment step over a chunk of rows with Hamerly's bounds: a row keeps its centroid
    /// when its upper bound is below max(its lower bound, half the distance from its centroid to
    /// the nearest other one, `half`); otherwise its distance to its centroid is computed, and if
    /// that does not settle it, its distances to all. With `full`, every row is assigned afresh.
    /// `out` holds the rows' current centroids and receives the new ones; returns whether any
    /// row changed centroid.
    #[allow(clippy::too_many_arguments)]
    fn hamerly_on(
        data: &[f32],
        by_dim: &[f32],
        centroids: &[f32],
        half: &[f64],
        k: usize,
        d: usize,
        full: bool,
        out: &mut [usize],
        upper: &mut [f64],
        lower: &mut [f64],
    ) -> bool {
        let small = padded(k) == SMALL_BLOCK;
        let mut changed = false;
        // rows that need the full search wait for a partner, and go through it two at a time
        let mut waiting: Option<usize> = None;
        macro_rules! settle {
            ($i:expr, $found:expr) => {{
                let (i, (c, best, second)) = ($i, $found);
                changed |= c != out[i];
                out[i] = c;
                upper[i] = best.sqrt() * (1.0 + SLACK);
                lower[i] = second.sqrt() * (1.0 - SLACK);
            }};
        }
        for (i, row) in data.chunks_exact(d).enumerate() {
            if !full {
                let o = out[i];
                let m = half[o].max(lower[i]) * (1.0 - SLACK);
                if upper[i] < m {
                    continue;
                }
                upper[i] = dist2(row, &centroids[o * d..(o + 1) * d]).sqrt() * (1.0 + SLACK);
                if upper[i] < m {
                    continue;
                }
            }
            let Some(w) = waiting.take() else {
                waiting = Some(i);
                continue;
            };
            let pair = [&data[w * d..(w + 1) * d], row];
            // (plain branches: a closure would not inherit the AVX2 target)
            let [a, b] = if small {
                nearest2_rows::<SMALL_BLOCK, 2>(pair, by_dim, k)
            } else {
                nearest2_rows::<BLOCK, 2>(pair, by_dim, k)
            };
            settle!(w, a);
            settle!(i, b);
        }
        if let Some(w) = waiting {
            let row = &data[w * d..(w + 1) * d];
            let found = if small {
                nearest2::<SMALL_BLOCK>(row, by_dim, k)
            } else {
                nearest2::<BLOCK>(row, by_dim, k)
            };
            settle!(w, found);
        }
        changed
    }
}

multiversion! {
    /// Per cluster the sum of its rows (in f64, added in row order) and its row count.
    fn centroid_sums_on(
        data: &[f32],
        assignment: &[usize],
        d: usize,
        sums: &mut [f64],
        counts: &mut [usize],
    ) {
        for (row, &a) in data.chunks_exact(d).zip(assignment) {
            counts[a] += 1;
            for (s, &x) in sums[a * d..(a + 1) * d].iter_mut().zip(row) {
                *s += x as f64;
            }
        }
    }
}

/// Rows per rayon task of the assignment step.
const ASSIGN_ROWS: usize = 1024;

/// The k×d row-major centroids as d × k′ ([`nearest2`]'s layout; padding columns are 0).
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

/// Moves the bounds by how far each centroid moved from `old` to `new`: a row's upper bound grows
/// by its centroid's move, its lower bound shrinks by the largest move of another centroid.
fn move_bounds(b: &mut Bounds, assignment: &[usize], old: &[f32], new: &[f32], k: usize, d: usize) {
    let moved: Vec<f64> = (0..k)
        .map(|c| dist2(&old[c * d..(c + 1) * d], &new[c * d..(c + 1) * d]).sqrt() * (1.0 + SLACK))
        .collect();
    // the largest move and the largest of the others, for the row whose centroid moved most
    let (mut top, mut second) = ((0, 0f64), 0f64);
    for (c, &m) in moved.iter().enumerate() {
        if m > top.1 {
            second = top.1;
            top = (c, m);
        } else if m > second {
            second = m;
        }
    }
    b.upper
        .par_iter_mut()
        .zip(b.lower.par_iter_mut())
        .zip(assignment.par_iter())
        .for_each(|((u, l), &a)| {
            *u = (*u + moved[a]) * (1.0 + SLACK);
            let other = if a == top.0 { second } else { top.1 };
            *l = *l * (1.0 - SLACK) - other;
        });
}

/// Half the distance from each centroid to its nearest other centroid (a lower bound): a row
/// within it of its centroid is nearer to that centroid than to any other.
fn half_gaps(centroids: &[f32], k: usize, d: usize, half: &mut [f64]) {
    for (c, h) in half.iter_mut().enumerate() {
        let row = &centroids[c * d..(c + 1) * d];
        let nearest = (0..k)
            .filter(|&o| o != c)
            .map(|o| dist2(row, &centroids[o * d..(o + 1) * d]))
            .fold(f64::INFINITY, f64::min);
        *h = 0.5 * nearest.sqrt() * (1.0 - SLACK);
    }
}

/// Clusters the `data.len() / d` rows of `data` into `k` clusters (`k` ≤ rows, `d` > 0).
/// Returns `None` when there are fewer rows than clusters.
pub fn kmeans(data: &[f32], d: usize, k: usize, iters: usize, seed: u64) -> Option<KMeans> {
    kmeans_with(data, d, k, iters, seed, 1)
}

/// [`kmeans`] with greedy k-means++ seeding (Arthur & Vassilvitskii 2007, as scikit-learn
/// seeds): each centre after the first is the best of `trials` candidates drawn as k-means++
/// draws one, the one that leaves the smallest sum of squared distances to the nearest centre.
/// Better starts, so fewer restarts find a good minimum; `trials` = 1 is [`kmeans`], the same
/// draws and the same bits. Cost of the seeding: O(k · trials · rows · d).
pub fn kmeans_with(
    data: &[f32],
    d: usize,
    k: usize,
    iters: usize,
    seed: u64,
    trials: usize,
) -> Option<KMeans> {
    cluster(Isa::detect(), data, d, k, iters, seed, trials)
}

/// [`kmeans_with`] with the hot loops on the instruction set `isa`.
fn cluster(
    isa: Isa,
    data: &[f32],
    d: usize,
    k: usize,
    iters: usize,
    seed: u64,
    trials: usize,
) -> Option<KMeans> {
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
        let mut draw = || {
            if total > 0.0 {
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
            }
        };
        let pick = if trials <= 1 {
            draw()
        } else {
            let candidates: Vec<usize> = (0..trials).map(|_| draw()).collect();
            // the candidate leaving the least potential (the first of equals), summed in row order
            let potential = |p: usize| -> f64 {
                best.iter()
                    .enumerate()
                    .map(|(i, &b)| b.min(dist2(rows(i), rows(p))))
                    .sum()
            };
            candidates
                .iter()
                .map(|&p| (p, potential(p)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(candidates[0], |(p, _)| p)
        };
        centroids.extend_from_slice(rows(pick));
        let cen = &centroids[c * d..(c + 1) * d];
        best.par_iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = b.min(dist2(rows(i), cen)));
    }
    // Lloyd's first assignment counts as a change unless every row lands in centroid 0
    let mut assignment = vec![0usize; n];
    let mut bounds = Bounds {
        upper: vec![0.0; n],
        lower: vec![0.0; n],
    };
    let mut half = vec![0f64; k];
    for it in 0..iters.max(1) {
        let by_dim = transpose(&centroids, k, d);
        let (cen, gaps) = (&centroids[..], &half[..]);
        let changed = assignment
            .par_chunks_mut(ASSIGN_ROWS)
            .zip(bounds.upper.par_chunks_mut(ASSIGN_ROWS))
            .zip(bounds.lower.par_chunks_mut(ASSIGN_ROWS))
            .enumerate()
            .map(|(c, ((out, upper), lower))| {
                let first = c * ASSIGN_ROWS;
                let data = &data[first * d..(first + out.len()) * d];
                hamerly_on(
                    isa,
                    data,
                    &by_dim,
                    cen,
                    gaps,
                    k,
                    d,
                    it == 0,
                    out,
                    upper,
                    lower,
                )
            })
            .reduce(|| false, |a, b| a | b);
        let mut sums = vec![0f64; k * d];
        let mut counts = vec![0usize; k];
        centroid_sums_on(isa, data, &assignment, d, &mut sums, &mut counts);
        let old = centroids.clone();
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
        move_bounds(&mut bounds, &assignment, &old, &centroids, k, d);
        half_gaps(&centroids, k, d, &mut half);
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

    /// Every instruction set's build of the hot loops gives the same clustering, bit for bit
    /// (small K takes the short block, larger K the full one).
    #[test]
    fn every_instruction_set_gives_the_same_clustering() {
        let (n, d) = (900, 13);
        let data: Vec<f32> = (0..n * d)
            .map(|x| ((x as f32 * 0.618_034).fract() - 0.5) + ((x / d) % 5) as f32 * 0.3)
            .collect();
        for k in [3, 12, 20] {
            let all: Vec<KMeans> = Isa::available()
                .into_iter()
                .map(|isa| cluster(isa, &data, d, k, 100, 7, 2).expect("clusters"))
                .collect();
            for other in &all[1..] {
                assert_eq!(other.assignment, all[0].assignment, "K = {k}");
                let bits = |c: &[f32]| c.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&other.centroids), bits(&all[0].centroids), "K = {k}");
            }
        }
    }

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

    /// Greedy seeding with one trial is plain k-means++, bit for bit; with more it is seeded as
    /// well, and on overlapping blobs its best of three runs is no worse than plain seeding's.
    #[test]
    fn greedy_seeding_is_plain_with_one_trial_and_no_worse_with_more() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (n, d, k) = (600, 6, 9);
        let centres: Vec<f32> = (0..k * d).map(|_| rng.random::<f32>() * 3.0).collect();
        let data: Vec<f32> = (0..n)
            .flat_map(|i| {
                let c = (i % k) * d;
                (0..d)
                    .map(|j| centres[c + j] + rng.random::<f32>() - 0.5)
                    .collect::<Vec<_>>()
            })
            .collect();
        let wss = |m: &KMeans| -> f64 {
            data.chunks_exact(d)
                .zip(&m.assignment)
                .map(|(r, &a)| dist2(r, &m.centroids[a * d..(a + 1) * d]))
                .sum()
        };
        for seed in 0..3 {
            assert_eq!(
                kmeans(&data, d, k, 30, seed),
                kmeans_with(&data, d, k, 30, seed, 1)
            );
            let greedy = kmeans_with(&data, d, k, 30, seed, 4).unwrap();
            assert_eq!(
                Some(&greedy),
                kmeans_with(&data, d, k, 30, seed, 4).as_ref()
            );
        }
        let best = |trials: usize| {
            (0..3)
                .map(|s| wss(&kmeans_with(&data, d, k, 30, s, trials).unwrap()))
                .fold(f64::INFINITY, f64::min)
        };
        assert!(
            best(4) <= best(1) * (1.0 + 1e-9),
            "{} vs {}",
            best(4),
            best(1)
        );
    }

    /// The side-by-side sums are `dist2`'s, bit for bit, and so is the choice among equals and
    /// the second distance, for both block widths (K = 7 and K = 20, two blocks, the tie across
    /// them).
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
            let rows = data
                .chunks_exact(d)
                .chain(std::iter::once(&cen[2 * d..3 * d]));
            for (i, row) in rows.enumerate() {
                let mut all: Vec<(f64, usize)> = cen
                    .chunks_exact(d)
                    .enumerate()
                    .map(|(c, ce)| (dist2(row, ce), c))
                    .collect();
                let want = all.iter().fold(
                    (0, f64::INFINITY),
                    |b, &(dd, c)| {
                        if dd < b.1 { (c, dd) } else { b }
                    },
                );
                all.remove(want.0);
                let second = all.iter().map(|x| x.0).fold(f64::INFINITY, f64::min);
                let got = if k <= SMALL_BLOCK {
                    nearest2::<SMALL_BLOCK>(row, &by_dim, k)
                } else {
                    nearest2::<BLOCK>(row, &by_dim, k)
                };
                assert_eq!(
                    (got.0, got.1.to_bits(), got.2.to_bits()),
                    (want.0, want.1.to_bits(), second.to_bits()),
                    "K = {k}, row {i}"
                );
                // two rows side by side: each gets its own search's bits
                let other = &data[((i + 1) % n) * d..((i + 1) % n + 1) * d];
                let pair = if k <= SMALL_BLOCK {
                    nearest2_rows::<SMALL_BLOCK, 2>([row, other], &by_dim, k)
                } else {
                    nearest2_rows::<BLOCK, 2>([row, other], &by_dim, k)
                };
                let alone = if k <= SMALL_BLOCK {
                    nearest2::<SMALL_BLOCK>(other, &by_dim, k)
                } else {
                    nearest2::<BLOCK>(other, &by_dim, k)
                };
                let bits = |x: (usize, f64, f64)| (x.0, x.1.to_bits(), x.2.to_bits());
                assert_eq!(bits(pair[0]), bits(got), "K = {k}, row {i} in a pair");
                assert_eq!(
                    bits(pair[1]),
                    bits(alone),
                    "K = {k}, row {} in a pair",
                    i + 1
                );
            }
        }
    }

    /// Plain Lloyd iterations from the same k-means++ start: every row against every centroid.
    fn lloyd(data: &[f32], d: usize, k: usize, iters: usize, seed: u64) -> KMeans {
        // the first iteration of `kmeans` is a full assignment: one iteration gives the start
        let mut km = kmeans(data, d, k, 1, seed).expect("k ≤ n");
        let n = data.len() / d;
        let mut assignment = km.assignment.clone();
        if iters <= 1 {
            return km;
        }
        for _ in 1..iters {
            let next: Vec<usize> = data
                .chunks_exact(d)
                .map(|row| {
                    let mut best = (0, f64::INFINITY);
                    for (c, ce) in km.centroids.chunks_exact(d).enumerate() {
                        let dd = dist2(row, ce);
                        if dd < best.1 {
                            best = (c, dd);
                        }
                    }
                    best.0
                })
                .collect();
            let changed = next != assignment;
            assignment = next;
            let mut sums = vec![0f64; k * d];
            let mut counts = vec![0usize; k];
            for (i, &a) in assignment.iter().enumerate() {
                counts[a] += 1;
                for (s, &x) in sums[a * d..(a + 1) * d].iter_mut().zip(&data[i * d..]) {
                    *s += x as f64;
                }
            }
            for c in 0..k {
                if counts[c] > 0 {
                    for j in 0..d {
                        km.centroids[c * d + j] = (sums[c * d + j] / counts[c] as f64) as f32;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        assert_eq!(assignment.len(), n);
        km.assignment = assignment;
        km
    }

    /// Hamerly's bounds skip rows but never change the clustering: the same assignment and the
    /// same centroid bits as plain Lloyd's, on overlapping blobs (rows switch for many
    /// iterations), duplicated rows (exact ties) and both block widths.
    #[test]
    fn bounds_give_the_plain_lloyd_clustering() {
        for (case, &(n, d, k)) in [(3000, 2, 3), (2000, 15, 12), (1500, 40, 7), (800, 5, 20)]
            .iter()
            .enumerate()
        {
            let mut rng = ChaCha8Rng::seed_from_u64(case as u64);
            let centres: Vec<f32> = (0..k * d).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut data = Vec::with_capacity(n * d);
            for i in 0..n {
                if i % 10 == 9 {
                    // an exact duplicate of an earlier row
                    let j = rng.random_range(0..i);
                    data.extend_from_within(j * d..(j + 1) * d);
                    continue;
                }
                let c = rng.random_range(0..k);
                for j in 0..d {
                    data.push(centres[c * d + j] + rng.random_range(-0.8..0.8f32));
                }
            }
            for seed in 0..3 {
                for iters in [2, 5, 50] {
                    let want = lloyd(&data, d, k, iters, seed);
                    let got = kmeans(&data, d, k, iters, seed).expect("k ≤ n");
                    assert_eq!(got.assignment, want.assignment, "case {case} seed {seed}");
                    let bits = |c: &[f32]| c.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got.centroids), bits(&want.centroids), "case {case}");
                }
            }
        }
    }

    use std::collections::BTreeSet;
}
