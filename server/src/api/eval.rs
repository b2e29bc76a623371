//! A rank evaluation as the API takes it and returns it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::search::Scalar;

/// Judged queries to score, and optionally a second run to compare with.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = EvalRequest)]
#[serde(deny_unknown_fields)]
pub struct EvalBody {
    /// Judged queries, JSONL text: one object per line, `{"id": "q1", "query": "red dress",
    /// "relevance": {"doc-1": 3, "doc-7": 0}}` (also `vector`, `scenario`, `plugin`, `filter`,
    /// `params`; no `image`: the server reads no files of the client's naming).
    pub judgments: String,
    /// TREC qrels text (`qid 0 docid grade` lines) giving the grades by query id.
    pub qrels: Option<String>,
    /// Cutoff of nDCG@k, recall@k and P@k (default 10, at most 1000).
    #[schema(minimum = 1, maximum = 1000)]
    pub k: Option<usize>,
    /// Settings of every run (`bm25_weight`, `rerank_window`, `instruction`, `param.NAME`...).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: BTreeMap<String, Scalar>,
    /// A second run, compared with the first query by query.
    pub against: Option<AgainstBody>,
}

/// What the second run changes.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = EvalAgainst)]
#[serde(deny_unknown_fields)]
pub struct AgainstBody {
    /// Settings on top of the first run's.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: BTreeMap<String, Scalar>,
    /// A plugin whose staged version orders every query of the second run (its live version
    /// orders the first).
    pub staged_plugin: Option<String>,
}

impl EvalBody {
    pub fn settings(map: BTreeMap<String, Scalar>) -> Vec<(String, String)> {
        map.into_iter().map(|(k, v)| (k, v.text())).collect()
    }
}

/// The scores of each run and, with two, their comparison.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = EvalReport)]
pub struct EvalResults {
    pub k: usize,
    pub queries: usize,
    pub runs: Vec<EvalRunBody>,
    /// The second run against the first: per metric `{queries, mean_a, mean_b, mean_delta, wins,
    /// losses, ties, p_value}` (paired randomization test), and per query the nDCG of each.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub comparison: Option<serde_json::Value>,
}

/// One run's scores.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = EvalRun)]
pub struct EvalRunBody {
    pub name: String,
    pub summary: EvalSummaryBody,
    /// Per query: `{id, metrics: {ndcg, mrr, recall, precision}, hits}`.
    #[schema(value_type = Vec<Object>)]
    pub queries: Vec<serde_json::Value>,
}

/// Means over the queries (nDCG, MRR and recall over those with a relevant document).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = EvalSummary)]
pub struct EvalSummaryBody {
    pub queries: usize,
    /// Queries with at least one relevant judged document.
    pub with_relevant: usize,
    pub ndcg: f64,
    pub mrr: f64,
    pub recall: f64,
    pub precision: f64,
}

impl From<mira_host::eval::EvalReport> for EvalResults {
    fn from(r: mira_host::eval::EvalReport) -> Self {
        EvalResults {
            k: r.k,
            queries: r.queries,
            runs: r
                .runs
                .into_iter()
                .map(|run| EvalRunBody {
                    name: run.name,
                    summary: EvalSummaryBody {
                        queries: run.summary.queries,
                        with_relevant: run.summary.with_relevant,
                        ndcg: run.summary.ndcg,
                        mrr: run.summary.mrr,
                        recall: run.summary.recall,
                        precision: run.summary.precision,
                    },
                    queries: run
                        .queries
                        .iter()
                        .map(|q| serde_json::to_value(q).unwrap_or_default())
                        .collect(),
                })
                .collect(),
            comparison: r.comparison.map(|c| serde_json::to_value(c).unwrap_or_default()),
        }
    }
}
