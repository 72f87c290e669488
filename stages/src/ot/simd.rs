//! Elementwise `exp` and `ln` over f32 slices, 8 lanes at a time through the `wide` crate
//! (Cephes-style polynomials, about 1 ulp; SSE2 on the baseline x86-64 target, AVX when compiled
//! for it). The solver spends one `exp` and one `ln` per cell and iteration, so these set its speed.
//! The tail of a slice is padded into a full vector, so every element goes through the same code
//! whatever the slice length or the thread that processes it.

use wide::f32x8;

#[inline]
fn load(c: &[f32]) -> f32x8 {
    let mut a = [1.0f32; 8];
    a[..c.len()].copy_from_slice(c);
    f32x8::from(a)
}

/// dst[i] ← f(src[i]) in lanes of 8 (`dst` at least as long as `src`).
#[inline]
fn map8_into(src: &[f32], dst: &mut [f32], f: impl Fn(f32x8) -> f32x8) {
    let mut d = dst[..src.len()].chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (dc, sc) in (&mut d).zip(&mut s) {
        let arr: &[f32; 8] = sc.try_into().unwrap_or(&[1.0; 8]);
        let out: &mut [f32; 8] = match dc.try_into() {
            Ok(o) => o,
            Err(_) => continue,
        };
        *out = f(f32x8::from(*arr)).to_array();
    }
    let (dr, sr) = (d.into_remainder(), s.remainder());
    if !sr.is_empty() {
        let v = f(load(sr)).to_array();
        dr.copy_from_slice(&v[..sr.len()]);
    }
}

#[inline]
fn map8(xs: &mut [f32], f: impl Fn(f32x8) -> f32x8) {
    let mut chunks = xs.chunks_exact_mut(8);
    for c in &mut chunks {
        let out: &mut [f32; 8] = match c.try_into() {
            Ok(o) => o,
            Err(_) => continue,
        };
        *out = f(f32x8::from(*out)).to_array();
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let v = f(load(rest)).to_array();
        rest.copy_from_slice(&v[..rest.len()]);
    }
}

/// dst[i] ← ln(src[i] + add), for src[i] + add a positive normal number.
pub fn ln_plus_into(src: &[f32], dst: &mut [f32], add: f32) {
    let add = f32x8::splat(add);
    map8_into(src, dst, |v| (v + add).ln());
}

/// xs[i] ← ln(xs[i] + add), for xs[i] + add a positive normal number.
pub fn ln_plus(xs: &mut [f32], add: f32) {
    let add = f32x8::splat(add);
    map8(xs, |v| (v + add).ln());
}

/// xs[i] ← exp(xs[i]); large negative arguments give 0.
pub fn exp(xs: &mut [f32]) {
    map8(xs, f32x8::exp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_libm_to_a_few_ulp() {
        let mut x: Vec<f32> = (0..1000).map(|i| i as f32 * 1e-3).collect();
        let want: Vec<f32> = x.iter().map(|v| (v + 1e-12f32).ln()).collect();
        ln_plus(&mut x, 1e-12);
        for (a, b) in x.iter().zip(&want) {
            assert!(
                (a - b).abs() <= 4.0 * f32::EPSILON * b.abs().max(1.0),
                "{a} vs {b}"
            );
        }
        let mut y: Vec<f32> = (0..1003).map(|i| -60.0 + i as f32 * 0.06).collect();
        let want: Vec<f32> = y.iter().map(|v| v.exp()).collect();
        exp(&mut y);
        for (a, b) in y.iter().zip(&want) {
            assert!((a - b).abs() <= 4.0 * f32::EPSILON * b.abs(), "{a} vs {b}");
        }
        let src: Vec<f32> = (0..13).map(|i| i as f32 + 0.5).collect();
        let mut dst = vec![0f32; 13];
        ln_plus_into(&src, &mut dst, 0.0);
        let mut same = src.clone();
        ln_plus(&mut same, 0.0);
        assert_eq!(dst, same);
        let mut z = vec![-1e4f32, -200.0, 0.0];
        exp(&mut z);
        assert_eq!(z, vec![0.0, 0.0, 1.0]);
    }
}
