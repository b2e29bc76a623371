//! Arithmetic that is fast in a component.
//!
//! In a `wasm32` build, `f64::ln`, `f64::log10`, `f64::exp` and `f32::max`/`f32::min` are not
//! instructions but calls into the toolchain's software libm (and `max`/`min` are calls because
//! wasm's `f32.max` propagates NaN where Rust's ignores it). Measured in `mira-bench plugins`,
//! `log10` alone was a third of the e-commerce plugin's time as a component. In wasm, `ln`,
//! `log10` and `exp` here are the `portable_*` versions: plain arithmetic with no table and no
//! libm call (`ln`/`log10` branch-free, so a loop over a column vectorises with wasm SIMD), within 2 ulp of the correctly rounded result (checked against the
//! platform's libm in the tests; special values follow IEEE 754 like `std`'s). Natively they are
//! the platform's libm (glibc's is faster still, with FMA), so a plugin's native tests may differ
//! from the component in the last bit or two of an `f64`; call the `portable_*` functions
//! directly for identical numbers. `max`, `min`, `largest` and `smallest` are comparisons, the
//! same everywhere.

use std::f64::consts::{LN_2, LOG10_2, LOG10_E};

/// The larger of two numbers; a NaN loses to a number (as `f64::max`).
#[inline]
pub fn max(a: f64, b: f64) -> f64 {
    if a > b || b.is_nan() { a } else { b }
}

/// The smaller of two numbers; a NaN loses to a number (as `f64::min`).
#[inline]
pub fn min(a: f64, b: f64) -> f64 {
    if a < b || b.is_nan() { a } else { b }
}

/// The largest score, ignoring NaN; `-inf` for none.
#[inline]
pub fn largest(scores: &[f32]) -> f32 {
    scores.iter().fold(f32::NEG_INFINITY, |m, &s| if s > m { s } else { m })
}

/// The smallest score, ignoring NaN; `+inf` for none.
#[inline]
pub fn smallest(scores: &[f32]) -> f32 {
    scores.iter().fold(f32::INFINITY, |m, &s| if s < m { s } else { m })
}

/// `hi` keeps the top 21 bits of the significand, so `k * hi` is exact for any exponent `k`.
const fn split_hi(x: f64) -> f64 {
    f64::from_bits(x.to_bits() & 0xffff_ffff_0000_0000)
}

const LN2_HI: f64 = split_hi(LN_2);
const LOG10_2_HI: f64 = split_hi(LOG10_2);
const LOG10_E_HI: f64 = split_hi(LOG10_E);
// The rest of each constant, from its exact value (not `LN_2 - LN2_HI`, which would lose the
// bits that `LN_2` itself rounded away: `exp` multiplies them by up to 1075, and its ulp test
// fails with the naive rest). Computed with 60-digit decimal arithmetic.
const LN2_LO: f64 = 4.749_325_039_031_672_6e-7;
const LOG10_2_LO: f64 = 7.508_597_826_552_624e-8;
const LOG10_E_LO: f64 = 1.969_927_233_546_362_7e-8;

/// `x = 2^k · (1 + f)` with `1 + f` in `[√2/2, √2)`, and `hi + lo ≈ ln(1 + f)`, for a positive
/// finite `x` (subnormals included); meaningless but harmless for any other `x`.
#[inline]
fn reduce(x: f64) -> (f64, f64, f64) {
    // Subnormals are scaled into the normal range first.
    let (x, k0) = if x < f64::MIN_POSITIVE {
        (x * (1u64 << 54) as f64, -54i32)
    } else {
        (x, 0)
    };
    // Shift the exponent so that the significand lands in [√2/2, √2): adding (1 - √2/2)'s
    // offset to the high word carries into the exponent exactly when the significand is ≥ √2.
    const SQRT_HALF_HI: u64 = 0x3fe6_a09e;
    let hx = (x.to_bits() >> 32) + (0x3ff0_0000 - SQRT_HALF_HI);
    // In i32 (|k| < 1100; the truncation only touches inputs the result ignores): wasm SIMD
    // converts i32 lanes to f64, not i64 lanes.
    let k = k0 + (hx >> 20) as i32 - 0x3ff;
    let m = f64::from_bits((((hx & 0x000f_ffff) + SQRT_HALF_HI) << 32) | (x.to_bits() & 0xffff_ffff));
    let f = m - 1.0;
    // ln(1 + f) = 2·atanh(s) with s = f / (2 + f), |s| < 0.1716: 2s + s·R(s²) where
    // R(z) = Σ 2z^j / (2j + 1) for j ≥ 1; after ten terms the rest is below 2^-55 of
    // the result (z < 0.0295). Evaluated by Estrin's scheme (pairs, then pairs of pairs): four
    // dependent multiply-adds instead of Horner's ten, which is what a loop over a column
    // waits on.
    let s = f / (2.0 + f);
    let z = s * s;
    let (z2, z4) = (z * z, z * z * (z * z));
    let c = |j: u32| 2.0 / (2 * j + 3) as f64;
    let (p01, p23, p45, p67, p89) = (
        c(0) + c(1) * z,
        c(2) + c(3) * z,
        c(4) + c(5) * z,
        c(6) + c(7) * z,
        c(8) + c(9) * z,
    );
    let r = z * ((p01 + p23 * z2) + (p45 + p67 * z2) * z4 + p89 * (z4 * z4));
    // 2s + sR = f - f²/2 + s(f²/2 + R), written so the large part (f - f²/2) is exact-ish and
    // split into a high part with few bits and the rest.
    let hfsq = 0.5 * f * f;
    let hi = split_hi(f - hfsq);
    let lo = (f - hi) - hfsq + s * (hfsq + r);
    (f64::from(k), hi, lo)
}

/// `value` for a positive finite `x`; what `ln`/`log10` give elsewhere (NaN for negatives and
/// NaN, -inf at zero, +inf at +inf). Written as selects, so a loop over it can be vectorised.
#[inline]
fn positive_finite_or_special(x: f64, value: f64) -> f64 {
    if x > 0.0 && x < f64::INFINITY {
        value
    } else if x == 0.0 {
        f64::NEG_INFINITY
    } else if x == f64::INFINITY {
        x
    } else {
        f64::NAN
    }
}

/// The natural logarithm (as `f64::ln`), in plain arithmetic.
#[inline]
pub fn portable_ln(x: f64) -> f64 {
    let (k, hi, lo) = reduce(x);
    positive_finite_or_special(x, k * LN2_HI + (hi + (lo + k * LN2_LO)))
}

/// The base-10 logarithm (as `f64::log10`), in plain arithmetic.
#[inline]
pub fn portable_log10(x: f64) -> f64 {
    let (k, hi, lo) = reduce(x);
    let y = k * LOG10_2_HI;
    let val_hi = hi * LOG10_E_HI;
    let val_lo = k * LOG10_2_LO + (lo + hi) * LOG10_E_LO + lo * LOG10_E_HI;
    let w = y + val_hi;
    positive_finite_or_special(x, (val_lo + ((y - w) + val_hi)) + w)
}

/// `e^x` (as `f64::exp`), in plain arithmetic.
#[inline]
pub fn portable_exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.782_712_893_384 {
        return f64::INFINITY;
    }
    if x < -745.133_219_101_941_1 {
        return 0.0;
    }
    // x = k·ln2 + r with |r| ≤ ln2/2; e^r by its Taylor series (|r| < 0.347: 18 terms reach
    // below 2^-60); then scale by 2^k in two steps so that subnormal results
    // come out right.
    // Ties to even: one wasm instruction (`f64.nearest`), where `round` is a libm call.
    let k = (x * std::f64::consts::LOG2_E).round_ties_even();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // By Estrin's scheme, as `ln`'s series: five dependent steps instead of seventeen.
    let c = &INV_FACTORIAL;
    let (r2, r4) = (r * r, r * r * (r * r));
    let r8 = r4 * r4;
    let a: [f64; EXP_TERMS / 2] = std::array::from_fn(|i| c[2 * i] + c[2 * i + 1] * r);
    let (b0, b1, b2, b3) = (a[0] + a[1] * r2, a[2] + a[3] * r2, a[4] + a[5] * r2, a[6] + a[7] * r2);
    let p = (b0 + b1 * r4) + (b2 + b3 * r4) * r8 + a[8] * (r8 * r8);
    let k = k as i64;
    let (k1, k2) = (k / 2, k - k / 2);
    p * f64::from_bits(((k1 + 0x3ff) as u64) << 52) * f64::from_bits(((k2 + 0x3ff) as u64) << 52)
}

const EXP_TERMS: usize = 18;

/// `1 / n!` for n = 0..EXP_TERMS.
const INV_FACTORIAL: [f64; EXP_TERMS] = {
    let mut t = [1.0; EXP_TERMS];
    let mut n = 1;
    while n < EXP_TERMS {
        t[n] = t[n - 1] / n as f64;
        n += 1;
    }
    t
};

/// The natural logarithm: the platform's natively, [`portable_ln`] in wasm.
#[inline]
pub fn ln(x: f64) -> f64 {
    #[cfg(target_arch = "wasm32")]
    return portable_ln(x);
    #[cfg(not(target_arch = "wasm32"))]
    x.ln()
}

/// The base-10 logarithm: the platform's natively, [`portable_log10`] in wasm.
#[inline]
pub fn log10(x: f64) -> f64 {
    #[cfg(target_arch = "wasm32")]
    return portable_log10(x);
    #[cfg(not(target_arch = "wasm32"))]
    x.log10()
}

/// `e^x`: the platform's natively, [`portable_exp`] in wasm.
#[inline]
pub fn exp(x: f64) -> f64 {
    #[cfg(target_arch = "wasm32")]
    return portable_exp(x);
    #[cfg(not(target_arch = "wasm32"))]
    x.exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f64, b: f64) -> u64 {
        if a == b {
            return 0;
        }
        (a.to_bits() as i64).wrapping_sub(b.to_bits() as i64).unsigned_abs()
    }

    fn inputs() -> Vec<f64> {
        let mut v = vec![
            1.0,
            2.0,
            10.0,
            0.5,
            1e-300,
            5e-324,
            1e-310,
            f64::MAX,
            f64::MIN_POSITIVE,
            std::f64::consts::FRAC_1_SQRT_2,
            std::f64::consts::SQRT_2,
        ];
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            // Uniform over bit patterns of positive finite doubles, and dense near 1.
            let x = f64::from_bits(s >> 1);
            if x.is_finite() && x > 0.0 {
                v.push(x);
            }
            v.push(1.0 + (s >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 0.5);
            v.push((s % 100_000) as f64 + 1.0);
        }
        v
    }

    #[test]
    fn logarithms_match_libm() {
        let (mut worst_ln, mut worst_log10) = (0, 0);
        for x in inputs() {
            worst_ln = worst_ln.max(ulps(portable_ln(x), x.ln()));
            worst_log10 = worst_log10.max(ulps(portable_log10(x), x.log10()));
        }
        assert!(worst_ln <= 2, "ln is {worst_ln} ulp off");
        assert!(worst_log10 <= 2, "log10 is {worst_log10} ulp off");
        for p in 0..=22 {
            assert_eq!(portable_log10(10f64.powi(p)), p as f64, "portable_log10(1e{p})");
        }
        assert_eq!(portable_ln(1.0), 0.0);
        assert_eq!(LN2_HI + LN2_LO, LN_2);
        assert_eq!(LOG10_2_HI + LOG10_2_LO, LOG10_2);
        assert_eq!(LOG10_E_HI + LOG10_E_LO, LOG10_E);
    }

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0;
        for x in inputs() {
            for x in [x.ln(), -x.ln(), x / 1e5, -(x % 800.0)] {
                worst = worst.max(ulps(portable_exp(x), x.exp()));
            }
        }
        assert!(worst <= 2, "exp is {worst} ulp off");
        assert_eq!(portable_exp(0.0), 1.0);
    }

    #[test]
    fn special_values_follow_std() {
        for x in [
            0.0,
            -0.0,
            -1.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::MIN_POSITIVE,
        ] {
            for (ours, theirs) in [(portable_ln(x), x.ln()), (portable_log10(x), x.log10())] {
                assert!(
                    ours == theirs || ours.is_nan() && theirs.is_nan(),
                    "{x}: {ours} vs {theirs}"
                );
            }
        }
        for x in [710.0, -746.0, f64::INFINITY, f64::NEG_INFINITY, -0.0] {
            assert_eq!(portable_exp(x), x.exp(), "portable_exp({x})");
        }
        assert!(portable_exp(f64::NAN).is_nan());
        assert_eq!(max(1.0, f64::NAN), 1.0);
        assert_eq!(max(f64::NAN, 1.0), 1.0);
        assert_eq!(min(f64::NAN, 1.0), 1.0);
        assert_eq!(max(2.0, 3.0), 3.0);
        assert_eq!(min(2.0, 3.0), 2.0);
        assert_eq!(largest(&[1.0, f32::NAN, 3.0]), 3.0);
        assert_eq!(smallest(&[f32::NAN, 2.0, 1.5]), 1.5);
        assert_eq!(largest(&[]), f32::NEG_INFINITY);
    }
}
