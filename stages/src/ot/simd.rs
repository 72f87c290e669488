//! Elementwise `exp` and `ln` over f32 slices, and the run-time choice of instruction set for the
//! solver's hot loops.
//!
//! The solver spends one `exp` and one `ln` per cell and iteration, so these set its speed. They
//! are Cephes' single-precision polynomials (about 1 ulp over the solver's range) written as
//! plain arithmetic on `[f32; 8]` lanes, four vectors at a time so that the long polynomial chains
//! overlap. Plain arithmetic lets the compiler vectorise them for whatever instruction set the
//! calling loop is compiled for: SSE2 on the baseline x86-64 target, AVX2 and AVX-512 inside the
//! functions that `multiversion!` compiles again (with AVX-512 the compiler joins pairs of
//! 8-lane vectors into 16-lane ones). No fused multiply-add is used (the compiler does not
//! contract on its own), so every version gives the same bits: the instruction set changes the
//! speed, never the result. The tail of a slice is padded into full vectors, so every element goes
//! through the same code whatever the slice length.

/// Environment variable that caps the instruction set of the hot loops: `portable`, `avx2` or
/// `avx512` (never above what the CPU has). Results are the same bits whichever runs; it is there
/// to measure one against another with the same binary on the same machine.
pub const SIMD_ENV: &str = "CLOT_SIMD";

/// The instruction set the hot loops run with, chosen by [`Isa::detect`]; ordered from the
/// narrowest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Isa {
    /// The baseline of the build target (SSE2 on x86-64).
    Portable,
    /// AVX2 (8 f32 lanes per instruction). The hot loops get it only from [`Isa::detect`] or
    /// [`Isa::available`], which check the CPU ([`Isa::named`] only reads a cap, which `detect`
    /// lowers to what the CPU has).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512 (F, VL, BW, DQ): 16 lanes where the compiler finds them, and for the 8-lane code
    /// 32 vector registers, mask registers for the selects and three-input logic. Reaches the
    /// hot loops only as `Avx2` does, after checking the CPU.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The instruction set to run with: the widest this CPU supports, capped by the
    /// [`SIMD_ENV`] environment variable where it is set (read once per process).
    pub(crate) fn detect() -> Isa {
        static CHOSEN: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let widest = Isa::widest();
            let Ok(want) = std::env::var(SIMD_ENV) else {
                return widest;
            };
            match Isa::named(want.trim()) {
                Some(cap) => cap.min(widest),
                None => {
                    eprintln!(
                        "warning: {SIMD_ENV}={want:?} is not one of portable, avx2, avx512; \
                         using {}, the widest this CPU has",
                        widest.name()
                    );
                    widest
                }
            }
        })
    }

    /// The widest instruction set this CPU supports.
    fn widest() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx512vl") && has!("avx512bw") && has!("avx512dq") {
                return Isa::Avx512;
            }
            if has!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// The instruction set a [`SIMD_ENV`] value names (`avx2` and `avx512` are the portable
    /// build off x86-64).
    fn named(name: &str) -> Option<Isa> {
        Some(match name {
            "portable" => Isa::Portable,
            #[cfg(target_arch = "x86_64")]
            "avx2" => Isa::Avx2,
            #[cfg(target_arch = "x86_64")]
            "avx512" => Isa::Avx512,
            #[cfg(not(target_arch = "x86_64"))]
            "avx2" | "avx512" => Isa::Portable,
            _ => return None,
        })
    }

    /// How [`SIMD_ENV`] names this instruction set.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "avx512",
        }
    }

    /// Every instruction set this CPU supports (for tests that compare them).
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Isa> {
        let mut all = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                all.push(Isa::Avx2);
            }
            if Isa::widest() == Isa::Avx512 {
                all.push(Isa::Avx512);
            }
        }
        all
    }
}

/// `multiversion! { fn name(arg: Type, …) -> Ret { body } }` defines `name(isa, arg, …)`: the
/// body compiled three times, for the baseline target, for AVX2 and for AVX-512, and run for the
/// instruction set `isa`. Whatever the body calls should be `#[inline(always)]`, so that it is
/// compiled for each instruction set too.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(unsafe_code, clippy::too_many_arguments)]
        $vis fn $name(isa: $crate::ot::simd::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn portable($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            #[allow(clippy::too_many_arguments)]
            fn avx2($($arg: $ty),*) $(-> $ret)? {
                portable($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
            #[allow(clippy::too_many_arguments)]
            fn avx512($($arg: $ty),*) $(-> $ret)? {
                portable($($arg),*)
            }
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: an `Isa::Avx2` reaching here came from `Isa::detect` or `Isa::available`,
                // which return it only after `is_x86_feature_detected!("avx2")` was true.
                $crate::ot::simd::Isa::Avx2 => unsafe { avx2($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: an `Isa::Avx512` reaching here came from `Isa::detect` or
                // `Isa::available`, which return it only after `is_x86_feature_detected!` was true
                // for each of these features.
                $crate::ot::simd::Isa::Avx512 => unsafe { avx512($($arg),*) },
                $crate::ot::simd::Isa::Portable => portable($($arg),*),
            }
        }
    };
}
pub(crate) use multiversion;

const LANES: usize = 8;
/// Vectors per step of the slice loops: independent polynomial chains that overlap.
const UNROLL: usize = 4;
type Lanes = [f32; LANES];

#[inline(always)]
fn select(c: bool, a: f32, b: f32) -> f32 {
    if c { a } else { b }
}

/// Below this, `exp` returns 0 (the smallest normal f32 is e^−87.34).
const EXP_LO: f32 = -87.336_54;
const EXP_HI: f32 = 88.376_26;

/// e^x per lane (Cephes `expf`: x = n·ln 2 + r, |r| ≤ ln2 / 2, a degree-5 polynomial for e^r and
/// 2^n from the exponent bits); 0 below −87.34.
#[inline(always)]
fn exp_lanes(x: Lanes) -> Lanes {
    let mut out = [0f32; LANES];
    for (o, &xi) in out.iter_mut().zip(&x) {
        let v = select(xi > EXP_LO, xi, EXP_LO);
        let v = select(v < EXP_HI, v, EXP_HI);
        // round to nearest by adding 1.5·2^23: the integer lands in the low mantissa bits
        let t = v * std::f32::consts::LOG2_E + 12_582_912.0;
        let n = t - 12_582_912.0;
        let r = v - n * 0.693_359_4 - n * -2.121_944_4e-4;
        let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
            + 0.166_666_65)
            * r
            + 0.5;
        let y = p * (r * r) + r + 1.0;
        let two_n = f32::from_bits(t.to_bits().wrapping_sub(0x4B40_0000).wrapping_add(127) << 23);
        *o = select(xi > EXP_LO, y * two_n, 0.0);
    }
    out
}

/// ln x per lane for positive normal x (Cephes `logf`: x = m·2^e with m in [√½, √2), a degree-9
/// polynomial for ln m).
#[inline(always)]
fn ln_lanes(x: Lanes) -> Lanes {
    let mut out = [0f32; LANES];
    for (o, &xi) in out.iter_mut().zip(&x) {
        let bits = xi.to_bits();
        let e = ((bits >> 23) & 0xff) as i32 - 126;
        let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000); // in [0.5, 1)
        let small = m < std::f32::consts::FRAC_1_SQRT_2;
        let e = (e - small as i32) as f32;
        let m = select(small, m + m, m) - 1.0;
        let z = m * m;
        let mut y = ((((((((7.037_683_6e-2 * m - 0.115_146_1) * m + 0.116_769_99) * m
            - 0.124_201_41)
            * m
            + 0.142_493_23)
            * m
            - 0.166_680_57)
            * m
            + 0.200_007_15)
            * m
            - 0.249_999_94)
            * m
            + 0.333_333_3)
            * m
            * z;
        y += e * -2.121_944_4e-4;
        y += -0.5 * z;
        *o = m + y + e * 0.693_359_4;
    }
    out
}

/// `xs[i] + add` as one vector; a slice shorter than a vector is padded with 1.
#[inline(always)]
fn plus(xs: &[f32], add: f32) -> Lanes {
    let mut v = [1f32; LANES];
    for (a, &b) in v.iter_mut().zip(xs) {
        *a = b + add;
    }
    v
}

/// dst[i] ← f(src[i] + add) for `src.len()` elements, `UNROLL` vectors at a time; the tail is
/// padded with 1.
#[inline(always)]
fn map_into(src: &[f32], dst: &mut [f32], add: f32, f: impl Fn(Lanes) -> Lanes) {
    let step = LANES * UNROLL;
    let dst = &mut dst[..src.len()];
    let mut d = dst.chunks_exact_mut(step);
    let mut s = src.chunks_exact(step);
    for (dc, sc) in (&mut d).zip(&mut s) {
        for (dv, sv) in dc.chunks_exact_mut(LANES).zip(sc.chunks_exact(LANES)) {
            dv.copy_from_slice(&f(plus(sv, add)));
        }
    }
    let tail = d.into_remainder().chunks_mut(LANES);
    for (dv, sv) in tail.zip(s.remainder().chunks(LANES)) {
        dv.copy_from_slice(&f(plus(sv, add))[..dv.len()]);
    }
}

/// dst[i] ← ln(src[i] + add), for src[i] + add a positive normal number (`dst` at least as long
/// as `src`). Inlined into the caller's instruction set.
#[inline(always)]
pub(crate) fn ln_plus_into_inline(src: &[f32], dst: &mut [f32], add: f32) {
    map_into(src, dst, add, ln_lanes);
}

/// xs[i] ← f(xs[i] + add), `UNROLL` vectors at a time; the tail is padded with 1.
#[inline(always)]
fn map_in_place(xs: &mut [f32], add: f32, f: impl Fn(Lanes) -> Lanes) {
    let mut chunks = xs.chunks_exact_mut(LANES * UNROLL);
    for c in &mut chunks {
        for v in c.chunks_exact_mut(LANES) {
            v.copy_from_slice(&f(plus(v, add)));
        }
    }
    for v in chunks.into_remainder().chunks_mut(LANES) {
        let r = f(plus(v, add));
        v.copy_from_slice(&r[..v.len()]);
    }
}

/// xs[i] ← ln(xs[i] + add), for xs[i] + add a positive normal number. Inlined.
#[inline(always)]
pub(crate) fn ln_plus_inline(xs: &mut [f32], add: f32) {
    map_in_place(xs, add, ln_lanes);
}

/// xs[i] ← exp(xs[i]); arguments below −87.34 give 0. Inlined.
#[inline(always)]
pub(crate) fn exp_inline(xs: &mut [f32]) {
    map_in_place(xs, 0.0, exp_lanes);
}

multiversion! { fn ln_plus_on(xs: &mut [f32], add: f32) { ln_plus_inline(xs, add) } }
multiversion! { fn exp_on(xs: &mut [f32]) { exp_inline(xs) } }
multiversion! {
    fn ln_plus_into_on(src: &[f32], dst: &mut [f32], add: f32) {
        ln_plus_into_inline(src, dst, add)
    }
}

/// `dst[i] ← ln(src[i] + add)`, for `src[i] + add` a positive normal number (`dst` at least as
/// long as `src`), with the CPU's widest vectors.
pub fn ln_plus_into(src: &[f32], dst: &mut [f32], add: f32) {
    ln_plus_into_on(Isa::detect(), src, dst, add);
}

/// `xs[i] ← ln(xs[i] + add)`, for `xs[i] + add` a positive normal number, with the CPU's widest
/// vectors.
pub fn ln_plus(xs: &mut [f32], add: f32) {
    ln_plus_on(Isa::detect(), xs, add);
}

/// The instruction set the hot loops run with in this process (`portable`, `avx2` or `avx512`):
/// the CPU's widest, or what [`SIMD_ENV`] caps it to.
pub fn instruction_set() -> &'static str {
    Isa::detect().name()
}

/// `xs[i] ← exp(xs[i])`; arguments below −87.34 give 0. With the CPU's widest vectors.
pub fn exp(xs: &mut [f32]) {
    exp_on(Isa::detect(), xs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_libm_to_a_few_ulp() {
        for isa in Isa::available() {
            let mut x: Vec<f32> = (0..1000).map(|i| i as f32 * 1e-3).collect();
            let want: Vec<f32> = x.iter().map(|v| (v + 1e-12f32).ln()).collect();
            ln_plus_on(isa, &mut x, 1e-12);
            for (a, b) in x.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 4.0 * f32::EPSILON * b.abs().max(1.0),
                    "{isa:?}: {a} vs {b}"
                );
            }
            // the whole range of normal numbers
            let mut x: Vec<f32> = (0..2000).map(|i| 1.2e-38 * 1.045f32.powi(i)).collect();
            x.retain(|v| v.is_finite());
            let want: Vec<f32> = x.iter().map(|v| v.ln()).collect();
            ln_plus_on(isa, &mut x, 0.0);
            for (a, b) in x.iter().zip(&want) {
                assert!((a - b).abs() <= 4.0 * f32::EPSILON * b.abs().max(1.0));
            }
            let mut y: Vec<f32> = (0..1003).map(|i| -60.0 + i as f32 * 0.06).collect();
            let want: Vec<f32> = y.iter().map(|v| v.exp()).collect();
            exp_on(isa, &mut y);
            for (a, b) in y.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 4.0 * f32::EPSILON * b.abs(),
                    "{isa:?}: {a} vs {b}"
                );
            }
            let src: Vec<f32> = (0..13).map(|i| i as f32 + 0.5).collect();
            let mut dst = vec![0f32; 13];
            ln_plus_into_on(isa, &src, &mut dst, 0.0);
            let mut same = src.clone();
            ln_plus_on(isa, &mut same, 0.0);
            assert_eq!(dst, same);
            let mut z = vec![-1e4f32, -200.0, -87.4, 0.0];
            exp_on(isa, &mut z);
            assert_eq!(z, vec![0.0, 0.0, 0.0, 1.0]);
        }
    }

    /// Each instruction set's name reads back as itself; other names are refused.
    #[test]
    fn instruction_set_names_read_back() {
        for isa in Isa::available() {
            assert_eq!(Isa::named(isa.name()), Some(isa));
        }
        assert_eq!(Isa::named("sse9"), None);
        assert!(Isa::detect() <= Isa::widest());
    }

    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        let x: Vec<f32> = (0..4099)
            .map(|i| (i as f32 * 0.618).fract() * 1e-3 + 1e-9)
            .collect();
        let e: Vec<f32> = (0..4099).map(|i| -(i as f32) * 0.02).collect();
        let results: Vec<(Vec<f32>, Vec<f32>)> = Isa::available()
            .into_iter()
            .map(|isa| {
                let (mut a, mut b) = (x.clone(), e.clone());
                ln_plus_on(isa, &mut a, 1e-12);
                exp_on(isa, &mut b);
                (a, b)
            })
            .collect();
        for r in &results[1..] {
            assert!(
                r.0.iter()
                    .zip(&results[0].0)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
            assert!(
                r.1.iter()
                    .zip(&results[0].1)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
        }
    }
}
