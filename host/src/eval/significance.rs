//! Paired randomization (sign-flip) test: is run B's per-query metric different from run A's?
//!
//! Under the null hypothesis the two runs are exchangeable, so each per-query difference `b - a` is
//! as likely to carry either sign. The two-sided p-value is the share of sign assignments whose mean
//! difference is at least as large in magnitude as the observed one. Up to [`EXACT_MAX_QUERIES`]
//! queries all `2^n` assignments are enumerated; beyond that [`MONTE_CARLO_ROUNDS`] random ones are
//! drawn from a fixed-seed PRNG, so the same inputs always give the same p-value.

use serde::Serialize;

/// Largest query count enumerated exactly (2^16 = 65_536 assignments).
pub const EXACT_MAX_QUERIES: usize = 16;
/// Random sign assignments drawn above [`EXACT_MAX_QUERIES`].
pub const MONTE_CARLO_ROUNDS: u32 = 20_000;
/// Slack so that assignments equal to the observed mean up to rounding still count as extreme.
const TOLERANCE: f64 = 1e-12;
const SEED: u64 = 0x4d69_7261_4576_616c; // "MiraEval"

/// Outcome of comparing run A with run B over the same queries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Comparison {
    pub queries: usize,
    pub mean_a: f64,
    pub mean_b: f64,
    /// Mean of `b - a`: positive when B is better.
    pub mean_delta: f64,
    /// Queries where B scored higher than A.
    pub wins: usize,
    pub losses: usize,
    pub ties: usize,
    pub p_value: f64,
}

/// Tests per-query metric pairs `(a, b)`, one pair per query. Pairs with a non-finite value are
/// skipped (metrics never produce them); with no pairs everything is 0 and the p-value is 1.
pub fn paired_randomization_test(pairs: &[(f64, f64)]) -> Comparison {
    let pairs: Vec<(f64, f64)> = pairs
        .iter()
        .copied()
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect();
    let deltas: Vec<f64> = pairs.iter().map(|(a, b)| b - a).collect();
    let wins = pairs.iter().filter(|(a, b)| b > a).count();
    let losses = pairs.iter().filter(|(a, b)| b < a).count();
    Comparison {
        queries: pairs.len(),
        mean_a: mean(pairs.iter().map(|p| p.0)),
        mean_b: mean(pairs.iter().map(|p| p.1)),
        mean_delta: mean(deltas.iter().copied()),
        wins,
        losses,
        ties: pairs.len() - wins - losses,
        p_value: p_value(&deltas),
    }
}

fn mean(values: impl ExactSizeIterator<Item = f64>) -> f64 {
    let count = values.len();
    if count == 0 {
        0.0
    } else {
        values.sum::<f64>() / count as f64
    }
}

fn p_value(deltas: &[f64]) -> f64 {
    if deltas.is_empty() {
        return 1.0;
    }
    let threshold = signed_mean(deltas, |_| false).abs() - TOLERANCE;
    if deltas.len() <= EXACT_MAX_QUERIES {
        exact_p(deltas, threshold)
    } else {
        sampled_p(deltas, threshold)
    }
}

/// Mean of the deltas with those at indices where `flip` is true negated.
fn signed_mean(deltas: &[f64], flip: impl Fn(usize) -> bool) -> f64 {
    let sum: f64 = deltas
        .iter()
        .enumerate()
        .map(|(i, &d)| if flip(i) { -d } else { d })
        .sum();
    sum / deltas.len() as f64
}

/// Share of all `2^n` sign assignments at least as extreme (bit `i` of the mask flips query `i`).
fn exact_p(deltas: &[f64], threshold: f64) -> f64 {
    let total = 1u64 << deltas.len();
    let extreme = (0..total)
        .filter(|mask| signed_mean(deltas, |i| (mask >> i) & 1 == 1).abs() >= threshold)
        .count();
    extreme as f64 / total as f64
}

/// Monte Carlo estimate `(extreme + 1) / (rounds + 1)`, which never reports an impossible p = 0.
fn sampled_p(deltas: &[f64], threshold: f64) -> f64 {
    let mut rng = SplitMix64(SEED);
    let mut words = vec![0u64; deltas.len().div_ceil(64)];
    let mut extreme = 0u32;
    for _ in 0..MONTE_CARLO_ROUNDS {
        words.iter_mut().for_each(|word| *word = rng.next_u64());
        if signed_mean(deltas, |i| (words[i / 64] >> (i % 64)) & 1 == 1).abs() >= threshold {
            extreme += 1;
        }
    }
    f64::from(extreme + 1) / f64::from(MONTE_CARLO_ROUNDS + 1)
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for sign flips.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pairs `(0.5, 0.5 + delta)` for the given deltas.
    fn with_deltas(deltas: &[f64]) -> Vec<(f64, f64)> {
        deltas.iter().map(|&d| (0.5, 0.5 + d)).collect()
    }

    #[test]
    fn no_queries() {
        let c = paired_randomization_test(&[]);
        assert_eq!((c.queries, c.mean_delta, c.wins, c.p_value), (0, 0.0, 0, 1.0));
    }

    #[test]
    fn identical_runs_are_not_significant() {
        let pairs: Vec<(f64, f64)> = (0..5).map(|i| (f64::from(i) / 10.0, f64::from(i) / 10.0)).collect();
        let c = paired_randomization_test(&pairs);
        assert_eq!((c.mean_delta, c.ties, c.p_value), (0.0, 5, 1.0));
        // Sampled path: deltas +0.1/-0.1 alternating have mean 0, so every draw is as extreme.
        let c = paired_randomization_test(&with_deltas(&[0.1, -0.1].repeat(10)));
        assert_eq!((c.wins, c.losses, c.p_value), (10, 10, 1.0));
    }

    #[test]
    fn three_equal_deltas() {
        // Deltas [1, 1, 1]: the 8 sign patterns have sums 3 (x1), 1 (x3), -1 (x3), -3 (x1), so
        // |mean| is 1 for +++ and --- and 1/3 otherwise: 2 of 8 reach the observed 1 -> p = 0.25.
        let c = paired_randomization_test(&with_deltas(&[1.0, 1.0, 1.0]));
        assert_eq!((c.wins, c.mean_delta, c.p_value), (3, 1.0, 0.25));
    }

    #[test]
    fn three_mixed_deltas() {
        // Deltas [1, -1, 2], observed sum 2. Sums of s1*1 + s2*(-1) + s3*2 over the 8 patterns:
        // +++ 2, ++- -2, +-+ 4, +-- 0, -++ 0, -+- -4, --+ 2, --- -2: six have |sum| >= 2 -> p = 0.75.
        let c = paired_randomization_test(&with_deltas(&[1.0, -1.0, 2.0]));
        assert_eq!((c.wins, c.losses, c.ties), (2, 1, 0));
        assert!((c.mean_delta - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(c.p_value, 0.75);
    }

    #[test]
    fn clear_improvement_on_twenty_queries_is_significant() {
        let pairs: Vec<(f64, f64)> = (0..20)
            .map(|i| {
                let a = 0.3 + 0.01 * f64::from(i);
                (a, a + 0.1 + 0.005 * f64::from(i % 3))
            })
            .collect();
        let c = paired_randomization_test(&pairs);
        assert_eq!((c.queries, c.wins), (20, 20));
        assert!(c.p_value < 0.01, "p = {}", c.p_value);
        assert_eq!(paired_randomization_test(&pairs), c, "fixed seed gives the same result");
    }

    #[test]
    fn non_finite_pairs_are_skipped() {
        let c = paired_randomization_test(&[(f64::NAN, 1.0), (0.0, 1.0)]);
        assert_eq!((c.queries, c.mean_b, c.p_value), (1, 1.0, 1.0));
    }
}
