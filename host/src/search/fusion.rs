//! Fusion of ranked candidate lists into one score per document. Pure functions over
//! [`RankedList`]s; the formulas are in each function's doc.

use std::collections::HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

/// How scores of one list are normalised before a linear combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    /// `(s - min) / (max - min)`, 1 when all scores are equal.
    #[default]
    MinMax,
    /// `(s - mean) / std`, 0 when all scores are equal.
    ZScore,
    /// Raw scores.
    None,
}

/// A fusion method with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum FusionMethod {
    /// Reciprocal rank fusion (Cormack, Clarke, Büttcher, SIGIR 2009):
    /// `score(d) = Σ_lists w · 1 / (k + rank(d))`, rank starting at 1; a list without `d` adds 0.
    Rrf { k: f32 },
    /// Linear combination: `score(d) = Σ_lists w · norm(s(d))`; a list without `d` adds 0.
    Linear { normalization: Normalization },
}

impl Default for FusionMethod {
    fn default() -> Self {
        FusionMethod::Rrf { k: 60.0 }
    }
}

impl FusionMethod {
    /// Builds a method from its name (`rrf` or `linear`) and optional parameters.
    pub fn parse(name: &str, rrf_k: Option<f32>, normalization: Option<Normalization>) -> Result<Self, String> {
        match name {
            "rrf" => {
                if normalization.is_some() {
                    return Err("normalization applies to linear fusion, not rrf".into());
                }
                let k = rrf_k.unwrap_or(60.0);
                if !(k.is_finite() && k >= 0.0) {
                    return Err(format!("rrf k must be a non-negative number, got {k}"));
                }
                Ok(FusionMethod::Rrf { k })
            }
            "linear" => {
                if rrf_k.is_some() {
                    return Err("rrf_k applies to rrf fusion, not linear".into());
                }
                Ok(FusionMethod::Linear {
                    normalization: normalization.unwrap_or_default(),
                })
            }
            other => Err(format!("unknown fusion `{other}` (expected rrf or linear)")),
        }
    }

    /// A short human-readable form, used in explanations.
    pub fn describe(&self) -> String {
        match self {
            FusionMethod::Rrf { k } => format!("rrf(k={k})"),
            FusionMethod::Linear { normalization } => format!(
                "linear({})",
                match normalization {
                    Normalization::MinMax => "minmax",
                    Normalization::ZScore => "zscore",
                    Normalization::None => "none",
                }
            ),
        }
    }
}

/// One retriever's candidates, best first, with its fusion weight.
#[derive(Debug, Clone)]
pub struct RankedList<K> {
    pub name: String,
    pub weight: f32,
    pub items: Vec<(K, f32)>,
}

/// What one list contributed to a document's fused score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    pub list: String,
    pub weight: f32,
    /// The list's raw score for the document.
    pub raw: f32,
    /// 1-based rank in the list.
    pub rank: usize,
    /// The normalised value (`1/(k+rank)` for RRF, `norm(s)` for linear) before weighting.
    pub value: f32,
}

/// A fused document: its score and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused<K> {
    pub key: K,
    pub score: f32,
    pub contributions: Vec<Contribution>,
}

/// Fuses the lists and returns every document that appears in any of them, best first (ties
/// keep the order of first appearance).
pub fn fuse<K: Clone + Eq + Hash>(method: &FusionMethod, lists: &[RankedList<K>]) -> Vec<Fused<K>> {
    let mut order: Vec<Fused<K>> = Vec::new();
    let mut index: HashMap<K, usize> = HashMap::new();
    for list in lists {
        let norm = Normalizer::new(method, &list.items);
        for (i, (key, raw)) in list.items.iter().enumerate() {
            let rank = i + 1;
            let value = norm.value(rank, *raw);
            let slot = *index.entry(key.clone()).or_insert_with(|| {
                order.push(Fused {
                    key: key.clone(),
                    score: 0.0,
                    contributions: Vec::new(),
                });
                order.len() - 1
            });
            let f = &mut order[slot];
            f.score += list.weight * value;
            f.contributions.push(Contribution {
                list: list.name.clone(),
                weight: list.weight,
                raw: *raw,
                rank,
                value,
            });
        }
    }
    // Stable sort: equal scores keep first-appearance order.
    order.sort_by(|a, b| b.score.total_cmp(&a.score));
    order
}

enum Normalizer {
    Rrf(f32),
    MinMax { min: f32, range: f32 },
    ZScore { mean: f32, std: f32 },
    Identity,
}

impl Normalizer {
    fn new<K>(method: &FusionMethod, items: &[(K, f32)]) -> Self {
        let scores = || items.iter().map(|(_, s)| *s);
        match method {
            FusionMethod::Rrf { k } => Normalizer::Rrf(*k),
            FusionMethod::Linear { normalization } => match normalization {
                Normalization::MinMax => {
                    let min = scores().fold(f32::INFINITY, f32::min);
                    let max = scores().fold(f32::NEG_INFINITY, f32::max);
                    Normalizer::MinMax { min, range: max - min }
                }
                Normalization::ZScore => {
                    let n = items.len().max(1) as f64;
                    let mean = scores().map(f64::from).sum::<f64>() / n;
                    let var = scores().map(|s| (f64::from(s) - mean).powi(2)).sum::<f64>() / n;
                    Normalizer::ZScore {
                        mean: mean as f32,
                        std: var.sqrt() as f32,
                    }
                }
                Normalization::None => Normalizer::Identity,
            },
        }
    }

    fn value(&self, rank: usize, raw: f32) -> f32 {
        match *self {
            Normalizer::Rrf(k) => 1.0 / (k + rank as f32),
            Normalizer::MinMax { min, range } => {
                if range > 0.0 {
                    (raw - min) / range
                } else {
                    1.0
                }
            }
            Normalizer::ZScore { mean, std } => {
                if std > 0.0 {
                    (raw - mean) / std
                } else {
                    0.0
                }
            }
            Normalizer::Identity => raw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists() -> Vec<RankedList<&'static str>> {
        vec![
            RankedList {
                name: "bm25".into(),
                weight: 1.0,
                items: vec![("a", 12.0), ("b", 8.0), ("c", 4.0)],
            },
            RankedList {
                name: "vector".into(),
                weight: 2.0,
                items: vec![("c", 0.9), ("a", 0.5)],
            },
        ]
    }

    fn score(f: &[Fused<&str>], key: &str) -> f32 {
        f.iter().find(|x| x.key == key).unwrap().score
    }

    #[test]
    fn rrf_by_hand() {
        let f = fuse(&FusionMethod::Rrf { k: 60.0 }, &lists());
        // a: 1/61 + 2/62; b: 1/62; c: 1/63 + 2/61
        assert!((score(&f, "a") - (1.0 / 61.0 + 2.0 / 62.0)).abs() < 1e-7);
        assert!((score(&f, "b") - 1.0 / 62.0).abs() < 1e-7);
        assert!((score(&f, "c") - (1.0 / 63.0 + 2.0 / 61.0)).abs() < 1e-7);
        assert_eq!(f.iter().map(|x| x.key).collect::<Vec<_>>(), vec!["c", "a", "b"]);
    }

    #[test]
    fn linear_minmax_and_zscore_by_hand() {
        let f = fuse(
            &FusionMethod::Linear {
                normalization: Normalization::MinMax,
            },
            &lists(),
        );
        // bm25 minmax: a 1, b 0.5, c 0; vector minmax: c 1, a 0 -> a 1, b .5, c 2
        assert!((score(&f, "a") - 1.0).abs() < 1e-6);
        assert!((score(&f, "b") - 0.5).abs() < 1e-6);
        assert!((score(&f, "c") - 2.0).abs() < 1e-6);
        let f = fuse(
            &FusionMethod::Linear {
                normalization: Normalization::ZScore,
            },
            &lists(),
        );
        // bm25: mean 8, std sqrt(32/3); vector: mean .7, std .2
        let s = (32.0f32 / 3.0).sqrt();
        assert!((score(&f, "a") - (4.0 / s - 2.0)).abs() < 1e-5);
        assert!((score(&f, "c") - (-4.0 / s + 2.0 * 1.0)).abs() < 1e-5);
        let f = fuse(
            &FusionMethod::Linear {
                normalization: Normalization::None,
            },
            &lists(),
        );
        assert!((score(&f, "a") - 13.0).abs() < 1e-6);
    }

    #[test]
    fn parse_rejects_mixed_parameters() {
        assert!(FusionMethod::parse("rrf", None, Some(Normalization::ZScore)).is_err());
        assert!(FusionMethod::parse("linear", Some(10.0), None).is_err());
        assert!(
            FusionMethod::parse("borda", None, None)
                .unwrap_err()
                .contains("unknown fusion")
        );
        assert_eq!(
            FusionMethod::parse("rrf", Some(10.0), None).unwrap(),
            FusionMethod::Rrf { k: 10.0 }
        );
    }
}
