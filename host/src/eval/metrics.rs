//! Per-query ranking metrics at a cutoff `k` (nDCG, reciprocal rank, recall, precision) and their means.
//!
//! A document is relevant when its grade is >= 1; documents the judgments do not mention count as
//! grade 0. A document id repeated in a ranking counts only at its first position, so returning
//! duplicates never earns credit (the repeat still takes up a rank). nDCG, reciprocal rank and recall
//! are `None` for a query with no relevant judged document, since they are undefined there; such
//! queries are left out of those means rather than counted as failures.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

/// The four metrics of one query at one cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QueryMetrics {
    pub ndcg: Option<f64>,
    /// Reciprocal rank of this query (its mean over queries is MRR).
    pub mrr: Option<f64>,
    pub recall: Option<f64>,
    pub precision: f64,
}

/// Means over a set of queries. nDCG, MRR and recall average over the `with_relevant` queries where
/// they are defined; precision averages over all `queries`. Every mean is 0.0 when it has no queries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub queries: usize,
    /// Queries with at least one relevant judged document.
    pub with_relevant: usize,
    pub ndcg: f64,
    pub mrr: f64,
    pub recall: f64,
    pub precision: f64,
}

/// All four metrics of `ranked` (best first) against the judgments `rel`, over the top `k`.
pub fn evaluate(ranked: &[String], rel: &BTreeMap<String, u32>, k: usize) -> QueryMetrics {
    QueryMetrics {
        ndcg: ndcg_at(ranked, rel, k),
        mrr: reciprocal_rank(ranked, rel, k),
        recall: recall_at(ranked, rel, k),
        precision: precision_at(ranked, rel, k),
    }
}

/// Normalized DCG at `k`, gain `2^grade - 1`, discount `1 / log2(rank + 1)`. `None` without a
/// relevant judged document; `Some(0.0)` when `k` is 0 (nothing retrieved, and it keeps nDCG defined
/// on the same queries as MRR and recall).
pub fn ndcg_at(ranked: &[String], rel: &BTreeMap<String, u32>, k: usize) -> Option<f64> {
    if !has_relevant(rel) {
        return None;
    }
    let ideal = ideal_dcg(rel, k);
    if ideal <= 0.0 {
        return Some(0.0);
    }
    let dcg: f64 = first_hits(ranked, rel, k)
        .map(|(rank, grade)| gain(grade) * discount(rank))
        .sum();
    Some(dcg / ideal)
}

/// `1 / rank` of the first relevant document in the top `k`, 0.0 if none; `None` without a relevant
/// judged document.
pub fn reciprocal_rank(ranked: &[String], rel: &BTreeMap<String, u32>, k: usize) -> Option<f64> {
    if !has_relevant(rel) {
        return None;
    }
    let first = first_hits(ranked, rel, k).find(|&(_, grade)| grade >= 1);
    Some(first.map_or(0.0, |(rank, _)| 1.0 / rank as f64))
}

/// Share of the relevant judged documents found in the top `k`; `None` without any.
pub fn recall_at(ranked: &[String], rel: &BTreeMap<String, u32>, k: usize) -> Option<f64> {
    let relevant = rel.values().filter(|&&grade| grade >= 1).count();
    (relevant > 0).then(|| relevant_retrieved(ranked, rel, k) as f64 / relevant as f64)
}

/// Relevant documents in the top `k` divided by `k` (not by the list length, so a short list is not
/// rewarded); 0.0 when `k` is 0.
pub fn precision_at(ranked: &[String], rel: &BTreeMap<String, u32>, k: usize) -> f64 {
    if k == 0 {
        return 0.0;
    }
    relevant_retrieved(ranked, rel, k) as f64 / k as f64
}

/// Means of each metric over the queries where it is defined (see [`Summary`]).
pub fn summarize(metrics: &[QueryMetrics]) -> Summary {
    Summary {
        queries: metrics.len(),
        with_relevant: metrics.iter().filter(|m| m.ndcg.is_some()).count(),
        ndcg: mean(metrics.iter().filter_map(|m| m.ndcg)),
        mrr: mean(metrics.iter().filter_map(|m| m.mrr)),
        recall: mean(metrics.iter().filter_map(|m| m.recall)),
        precision: mean(metrics.iter().map(|m| m.precision)),
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(sum, count), value| (sum + value, count + 1));
    if count == 0 { 0.0 } else { sum / count as f64 }
}

fn has_relevant(rel: &BTreeMap<String, u32>) -> bool {
    rel.values().any(|&grade| grade >= 1)
}

/// `(rank, grade)` for the first occurrence of each document in the top `k`, rank 1-based.
fn first_hits(ranked: &[String], rel: &BTreeMap<String, u32>, k: usize) -> impl Iterator<Item = (usize, u32)> {
    let mut seen = HashSet::new();
    ranked
        .iter()
        .take(k)
        .enumerate()
        .filter(move |(_, id)| seen.insert(id.as_str()))
        .map(|(i, id)| (i + 1, rel.get(id).copied().unwrap_or(0)))
}

fn relevant_retrieved(ranked: &[String], rel: &BTreeMap<String, u32>, k: usize) -> usize {
    first_hits(ranked, rel, k).filter(|&(_, grade)| grade >= 1).count()
}

/// DCG of the best possible ranking: the judged grades sorted descending, top `k`.
fn ideal_dcg(rel: &BTreeMap<String, u32>, k: usize) -> f64 {
    let mut grades: Vec<u32> = rel.values().copied().collect();
    grades.sort_unstable_by(|a, b| b.cmp(a));
    grades
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, &grade)| gain(grade) * discount(i + 1))
        .sum()
}

fn gain(grade: u32) -> f64 {
    2f64.powf(f64::from(grade)) - 1.0
}

fn discount(rank: usize) -> f64 {
    1.0 / ((rank + 1) as f64).log2()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|id| id.to_string()).collect()
    }

    /// Grades a=3, b=2, c=0, d=1: gains 7, 3, 0, 1.
    fn graded() -> BTreeMap<String, u32> {
        BTreeMap::from([("a".into(), 3), ("b".into(), 2), ("c".into(), 0), ("d".into(), 1)])
    }

    fn close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("metric should be defined");
        assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
    }

    #[test]
    fn perfect_ranking_scores_one() {
        let m = evaluate(&ids(&["a", "b", "d", "c"]), &graded(), 4);
        close(m.ndcg, 1.0);
        close(m.mrr, 1.0);
        close(m.recall, 1.0);
        assert_eq!(m.precision, 0.75); // 3 relevant (a, b, d) of k = 4
    }

    #[test]
    fn reversed_ranking() {
        // DCG  = 0/log2(2) + 1/log2(3) + 3/log2(4) + 7/log2(5) = 0 + 0.63093 + 1.5 + 3.01474 = 5.14567
        // IDCG = 7/log2(2) + 3/log2(3) + 1/log2(4) + 0/log2(5) = 7 + 1.89279 + 0.5 + 0 = 9.39279
        // nDCG = 5.14567 / 9.39279 = 0.54783
        let m = evaluate(&ids(&["c", "d", "b", "a"]), &graded(), 4);
        close(m.ndcg, 0.547831481922746);
        close(m.mrr, 0.5); // first relevant (d) at rank 2
    }

    #[test]
    fn cutoff_smaller_than_the_list() {
        // Top 2 of [c, a, b, d]: DCG = 0 + 7/log2(3) = 4.41651; IDCG@2 = 7 + 3/log2(3) = 8.89279
        // nDCG@2 = 0.49664; recall = 1 of 3 relevant; precision = 1 / 2
        let ranked = ids(&["c", "a", "b", "d"]);
        let m = evaluate(&ranked, &graded(), 2);
        close(m.ndcg, 0.4966392596877323);
        close(m.recall, 1.0 / 3.0);
        assert_eq!(m.precision, 0.5);
        close(reciprocal_rank(&ids(&["c", "x", "a"]), &graded(), 2), 0.0); // a is at rank 3 > k
    }

    #[test]
    fn unjudged_documents_count_as_not_relevant() {
        // [x, a, y] with only a=1: DCG = 1/log2(3) = 0.63093, IDCG = 1 -> 0.63093
        let rel = BTreeMap::from([("a".into(), 1)]);
        let m = evaluate(&ids(&["x", "a", "y"]), &rel, 3);
        close(m.ndcg, 0.6309297535714575);
        close(m.mrr, 0.5);
        close(m.recall, 1.0);
        assert_eq!(m.precision, 1.0 / 3.0);
    }

    #[test]
    fn duplicates_count_once_at_their_first_position() {
        // [a, a, b] with a=1, b=1: rank 1 a gain 1, rank 2 repeat of a gains 0, rank 3 b gain 1/log2(4) = 0.5
        // DCG = 1.5; IDCG = 1 + 1/log2(3) = 1.63093; nDCG = 0.91972; precision = 2 / 3, not 3 / 3
        let rel = BTreeMap::from([("a".into(), 1), ("b".into(), 1)]);
        let m = evaluate(&ids(&["a", "a", "b"]), &rel, 3);
        close(m.ndcg, 0.9197207891481876);
        close(m.recall, 1.0);
        assert_eq!(m.precision, 2.0 / 3.0);
    }

    #[test]
    fn no_relevant_judgment_leaves_metrics_undefined() {
        let rel = BTreeMap::from([("a".into(), 0)]);
        let m = evaluate(&ids(&["a"]), &rel, 10);
        assert_eq!((m.ndcg, m.mrr, m.recall, m.precision), (None, None, None, 0.0));
        assert_eq!(evaluate(&[], &BTreeMap::new(), 10).ndcg, None);
    }

    #[test]
    fn precision_divides_by_k_even_with_fewer_results() {
        let rel = BTreeMap::from([("a".into(), 1)]);
        assert_eq!(precision_at(&ids(&["a"]), &rel, 10), 0.1); // 1 relevant / k = 10
        assert_eq!(precision_at(&ids(&["a"]), &rel, 0), 0.0);
        close(ndcg_at(&ids(&["a"]), &rel, 0), 0.0);
    }

    #[test]
    fn summary_means_over_defined_queries() {
        let judged = QueryMetrics {
            ndcg: Some(0.5),
            mrr: Some(1.0),
            recall: Some(0.25),
            precision: 0.4,
        };
        let unjudged = QueryMetrics {
            ndcg: None,
            mrr: None,
            recall: None,
            precision: 0.0,
        };
        let s = summarize(&[judged, unjudged, judged]);
        assert_eq!((s.queries, s.with_relevant), (3, 2));
        assert_eq!((s.ndcg, s.mrr, s.recall), (0.5, 1.0, 0.25));
        assert!((s.precision - 0.8 / 3.0).abs() < 1e-12); // (0.4 + 0 + 0.4) / 3
        assert_eq!(summarize(&[]).ndcg, 0.0);
    }
}
