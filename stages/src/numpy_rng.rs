//! numpy's legacy random stream (`np.random.seed`, `np.random.RandomState`), reproduced bit for
//! bit in pure Rust with no dependencies, so that clot can replay the draws of reference Python
//! code that uses the legacy global RNG (ASOT's sampled F1 calls `np.random.random_integers`).
//!
//! Contract, checked against numpy 2.4 by the tests below (the expected values were printed by
//! numpy; each test names the Python line):
//!
//! * [`RandomState::new`]`(s)` is `np.random.seed(s)` / `np.random.RandomState(s)` for an integer
//!   seed `s` in `0..=2**32 - 1`: MT19937 seeded by Knuth's `init_genrand` recurrence
//!   (`mt19937_seed` in numpy's `src/mt19937/mt19937.c`, reached from `MT19937._legacy_seeding`).
//!   Array seeds (`init_by_array`) and `seed(None)` are not provided.
//! * [`RandomState::next_u32`] is one raw MT19937 output (`_bit_generator.random_raw()`), and
//!   [`RandomState::next_u64`] is numpy's `mt19937_next64`: the first 32-bit draw is the high word.
//! * [`RandomState::bounded_u64`] is numpy's `random_bounded_uint64` with `use_masked = true`, the
//!   kernel behind the legacy `randint` for the default int64 dtype: a range of one value draws
//!   nothing; a range that fits 32 bits rejects `next_u32() & mask` until it is in range, mask =
//!   the smallest `2^k - 1` at least the range; a wider range does the same with `next_u64()`; the
//!   full 64-bit range takes `next_u64()` as is. Values of one `randint(low, high, size)` call are
//!   drawn one after the other with the same mask, so `size` calls of [`RandomState::randint`]
//!   consume exactly the stream of one call with `size` values.
//! * [`RandomState::randint`]`(low, high)` is `randint(low, high)` (`high` exclusive) and
//!   [`RandomState::random_integers`]`(low, high)` is the deprecated `random_integers(low, high)`
//!   (`high` inclusive; numpy implements it as `randint(low, high + 1)`). Floats, `choice`,
//!   `shuffle` and the Gaussian cache are not provided.

/// MT19937 state size (words).
const N: usize = 624;
/// MT19937 middle word offset.
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// numpy's legacy `RandomState` (MT19937 with legacy seeding); see the module docs.
#[derive(Clone)]
pub struct RandomState {
    key: [u32; N],
    pos: usize,
}

impl std::fmt::Debug for RandomState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomState")
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl RandomState {
    /// The state after `np.random.seed(seed)`.
    pub fn new(seed: u32) -> Self {
        let mut key = [0u32; N];
        let mut s = seed;
        for (pos, k) in key.iter_mut().enumerate() {
            *k = s;
            s = 1_812_433_253u32
                .wrapping_mul(s ^ (s >> 30))
                .wrapping_add(pos as u32 + 1);
        }
        Self { key, pos: N }
    }

    /// `np.random.seed(seed)` for a seed given as u64: `None` where numpy raises ("Seed must be
    /// between 0 and 2**32 - 1").
    pub fn from_u64(seed: u64) -> Option<Self> {
        u32::try_from(seed).ok().map(Self::new)
    }

    /// Regenerates the 624 words (numpy's `mt19937_gen`).
    fn generate(&mut self) {
        let k = &mut self.key;
        let twist = |a: u32, b: u32, c: u32| {
            let y = (a & UPPER_MASK) | (b & LOWER_MASK);
            c ^ (y >> 1) ^ (0u32.wrapping_sub(y & 1) & MATRIX_A)
        };
        for i in 0..N - M {
            k[i] = twist(k[i], k[i + 1], k[i + M]);
        }
        for i in N - M..N - 1 {
            k[i] = twist(k[i], k[i + 1], k[i + M - N]);
        }
        k[N - 1] = twist(k[N - 1], k[0], k[M - 1]);
        self.pos = 0;
    }

    /// One raw 32-bit output (`random_raw()`), tempered.
    pub fn next_u32(&mut self) -> u32 {
        if self.pos == N {
            self.generate();
        }
        let mut y = self.key[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// numpy's `mt19937_next64`: two draws, the first is the high word.
    pub fn next_u64(&mut self) -> u64 {
        let hi = u64::from(self.next_u32());
        (hi << 32) | u64::from(self.next_u32())
    }

    /// `off + x` with `x` uniform in `0..=rng` (wrapping), as numpy's masked
    /// `random_bounded_uint64`; see the module docs for how many draws it takes.
    pub fn bounded_u64(&mut self, off: u64, rng: u64) -> u64 {
        if rng == 0 {
            return off;
        }
        let mask = gen_mask(rng);
        if rng <= u64::from(u32::MAX) {
            // numpy truncates the mask to 32 bits here; it fits since rng does
            let (rng, mask) = (rng as u32, mask as u32);
            loop {
                let v = self.next_u32() & mask;
                if v <= rng {
                    return off.wrapping_add(u64::from(v));
                }
            }
        }
        if rng == u64::MAX {
            return off.wrapping_add(self.next_u64());
        }
        loop {
            let v = self.next_u64() & mask;
            if v <= rng {
                return off.wrapping_add(v);
            }
        }
    }

    /// One value of `randint(low, high)`: uniform in `low..high` (int64 dtype).
    ///
    /// # Panics
    /// If `low >= high` (numpy raises `ValueError: low >= high`).
    pub fn randint(&mut self, low: i64, high: i64) -> i64 {
        assert!(low < high, "randint: low >= high ({low} >= {high})");
        self.random_integers(low, high - 1)
    }

    /// One value of `random_integers(low, high)`: uniform in `low..=high` (int64 dtype).
    ///
    /// # Panics
    /// If `low > high` (numpy raises `ValueError`).
    pub fn random_integers(&mut self, low: i64, high: i64) -> i64 {
        assert!(low <= high, "random_integers: low > high ({low} > {high})");
        // numpy: rng = (uint64)(high - low), off = (uint64)low, result cast back to int64
        let rng = high.wrapping_sub(low) as u64;
        self.bounded_u64(low as u64, rng) as i64
    }

    /// `randint(low, high, size)`: `size` values, drawn in order.
    pub fn randint_n(&mut self, low: i64, high: i64, size: usize) -> Vec<i64> {
        (0..size).map(|_| self.randint(low, high)).collect()
    }

    /// `random_integers(low, high, size)`: `size` values in `low..=high`, drawn in order.
    pub fn random_integers_n(&mut self, low: i64, high: i64, size: usize) -> Vec<i64> {
        (0..size).map(|_| self.random_integers(low, high)).collect()
    }
}

/// Smallest `2^k - 1` that is at least `max` (numpy's `gen_mask`).
fn gen_mask(max: u64) -> u64 {
    let mut mask = max;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    mask |= mask >> 32;
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(seed: u32, n: usize) -> Vec<u32> {
        let mut r = RandomState::new(seed);
        (0..n).map(|_| r.next_u32()).collect()
    }

    #[test]
    fn raw_stream_matches_numpy() {
        // np.random.RandomState(s)._bit_generator.random_raw(10), s = 0, 12345, 2**32 - 1
        let want0 = [
            2357136044, 2546248239, 3071714933, 3626093760, 2588848963, 3684848379, 2340255427,
            3638918503, 1819583497, 2678185683,
        ];
        let want12345 = [
            3992670690, 3823185381, 1358822685, 561383553, 789925284, 170765737, 878579710,
            3549516158, 2438360421, 2285257250,
        ];
        let want_max = [
            419326371, 479346978, 3918654476, 2416749639, 3388880820, 2260532800, 3350089942,
            3309765114, 77050329, 1217888032,
        ];
        assert_eq!(raw(0, 10), want0);
        assert_eq!(raw(12345, 10), want12345);
        assert_eq!(raw(u32::MAX, 10), want_max);
    }

    #[test]
    fn raw_stream_crosses_regenerations() {
        // r = np.random.RandomState(0)._bit_generator.random_raw(1300)
        // list(r[622:627]), list(r[1247:1250]), int(r.astype(np.uint64).sum())
        let r = raw(0, 1300);
        assert_eq!(
            r[622..627],
            [631131020, 3791854820, 341544762, 1076416385, 384842097]
        );
        assert_eq!(r[1247..1250], [1145454359, 4192857288, 2422637952]);
        assert_eq!(r.iter().map(|&x| u64::from(x)).sum::<u64>(), 2816292248443);
        assert!(RandomState::from_u64(1 << 32).is_none());
        assert_eq!(
            RandomState::from_u64(12345).map(|mut s| s.next_u32()),
            Some(3992670690)
        );
    }

    /// `rs = np.random.RandomState(0); v = rs.randint(lo, hi, 15)` and then
    /// `rs._bit_generator.random_raw(1)[0]`, the next raw word, which pins how many draws the
    /// 15 values took.
    fn check(lo: i64, hi: i64, want: [i64; 15], next_raw: u32) {
        let mut rs = RandomState::new(0);
        assert_eq!(rs.randint_n(lo, hi, 15), want, "randint({lo}, {hi}, 15)");
        assert_eq!(
            rs.next_u32(),
            next_raw,
            "stream after randint({lo}, {hi}, 15)"
        );
    }

    #[test]
    fn randint_matches_numpy_on_small_ranges() {
        // one value: no draw at all
        check(0, 1, [0; 15], 2357136044);
        check(5, 6, [5; 15], 2357136044);
        check(
            0,
            2,
            [0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0],
            243580376,
        );
        // a power of two: mask = 7, no rejection
        check(
            0,
            8,
            [4, 7, 5, 0, 3, 3, 3, 7, 1, 3, 5, 2, 4, 7, 6],
            243580376,
        );
        check(
            3,
            10,
            [7, 8, 3, 6, 6, 6, 4, 6, 8, 5, 7, 9, 3, 3, 7],
            1646868794,
        );
        check(
            100,
            117,
            [
                112, 115, 100, 103, 103, 107, 109, 104, 106, 112, 101, 106, 107, 114, 105,
            ],
            3590930969,
        );
        check(
            -7,
            7,
            [5, -2, -7, -4, 4, -4, 0, 2, -4, -2, -5, -3, 0, -1, 1],
            4138900056,
        );
    }

    #[test]
    fn randint_matches_numpy_on_large_ranges() {
        check(
            0,
            5292,
            [
                2732, 2607, 1653, 3264, 4931, 4859, 1033, 4373, 3468, 705, 2599, 2135, 2222, 2897,
                1701,
            ],
            3590930969,
        );
        check(
            0,
            1 << 31,
            [
                209652396, 398764591, 924231285, 1478610112, 441365315, 1537364731, 192771779,
                1491434855, 1819583497, 530702035, 626610453, 1650906866, 1879422756, 1277901399,
                1682652230,
            ],
            243580376,
        );
        // rng = 2**32 - 1: the last 32-bit range, mask 0xFFFFFFFF, the raw words themselves
        check(
            0,
            1 << 32,
            [
                2357136044, 2546248239, 3071714933, 3626093760, 2588848963, 3684848379, 2340255427,
                3638918503, 1819583497, 2678185683, 2774094101, 1650906866, 1879422756, 1277901399,
                3830135878,
            ],
            243580376,
        );
        // rng = 2**32: the 64-bit branch (high word first, mask 2**33 - 1)
        check(
            0,
            (1 << 32) + 1,
            [
                2546248239, 1277901399, 243580376, 1171049868, 2051556033, 3488238119, 1686997841,
                602801999, 2034131043, 3439885489, 3095093671, 2499755969, 2034098327, 580757632,
                1392175012,
            ],
            2652724277,
        );
        check(
            0,
            1 << 40,
            [
                741280623151,
                506137267392,
                291447657211,
                841157541223,
                41332891347,
                91845220082,
                155896724055,
                300891291096,
                379128171916,
                251159659201,
                991330716199,
                375723641006,
                379644119889,
                712260534809,
                332161587272,
            ],
            374217481,
        );
        check(
            -(1 << 62),
            1 << 62,
            [
                -3711235831533098449,
                -642142871786238784,
                -2716036421228801285,
                -3783737528391729817,
                3203365596207111891,
                -1920414613809735950,
                3460373255228701271,
                2615250280207662552,
                3941382327821454732,
                2461561594657129153,
                769691016611121703,
                -4078668793837008722,
                -3356485363537441967,
                3239186156944441881,
                -3301302021933524920,
            ],
            374217481,
        );
    }

    #[test]
    fn random_integers_is_inclusive_and_continues_the_stream() {
        // rs = np.random.RandomState(12345); rs.random_integers(0, 5291, 15),
        // rs.random_integers(10, 10, 15), rs.random_integers(7, 9, 15)  (in that order)
        let mut rs = RandomState::new(12345);
        assert_eq!(
            rs.random_integers_n(0, 5291, 15),
            [
                4578, 3557, 2177, 3492, 3497, 4094, 4478, 3429, 546, 3190, 3441, 3163, 882, 4809,
                4363
            ]
        );
        assert_eq!(rs.random_integers_n(10, 10, 15), [10; 15]);
        assert_eq!(
            rs.random_integers_n(7, 9, 15),
            [8, 9, 8, 9, 9, 8, 7, 8, 8, 7, 7, 7, 7, 8, 9]
        );
    }

    #[test]
    fn masks() {
        assert_eq!(gen_mask(1), 1);
        assert_eq!(gen_mask(7), 7);
        assert_eq!(gen_mask(8), 15);
        assert_eq!(gen_mask(5291), 8191);
        assert_eq!(gen_mask(u64::MAX), u64::MAX);
    }
}
