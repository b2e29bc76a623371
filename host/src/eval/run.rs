//! Running judged queries through the pipeline and comparing two runs.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::judgments::JudgedQuery;
use super::metrics::{QueryMetrics, Summary, evaluate, summarize};
use super::settings::apply_setting;
use super::significance::{Comparison, paired_randomization_test};
use crate::collection::Collection;
use crate::error::{Error, Fault, QueryError, Result};
use crate::plugin::{LoadedPlugin, PluginRegistry};
use crate::search::{SearchRequest, search_with, search_with_plugin};

/// Largest cutoff `k` an evaluation may ask for.
pub const MAX_EVAL_K: usize = 1000;

/// One configuration to evaluate: settings over every query, and optionally one plugin version
/// that orders every query (a staged candidate, or a component file), instead of the plugin
/// each query's `plugin` / `scenario` resolves to.
#[derive(Clone, Default)]
pub struct RunSpec {
    /// How the report names the run (`live`, `staged ecommerce@2.0.0`, `bm25_weight=2`).
    pub name: String,
    pub settings: Vec<(String, String)>,
    pub plugin: Option<Arc<LoadedPlugin>>,
}

impl RunSpec {
    /// The runs of an evaluation: `live` (the base settings, and when a candidate plugin is
    /// given, the live version of the same name), then, when anything is to be compared, the
    /// candidate and/or the `against` settings on top of the base.
    pub fn runs(
        registry: Option<&PluginRegistry>,
        base: Vec<(String, String)>,
        against: Vec<(String, String)>,
        candidate: Option<Arc<LoadedPlugin>>,
        candidate_origin: &str,
    ) -> Vec<RunSpec> {
        let mut a = RunSpec {
            name: "live".into(),
            settings: base.clone(),
            plugin: None,
        };
        if candidate.is_none() && against.is_empty() {
            return vec![a];
        }
        let mut name: Vec<String> = against.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if let Some(c) = &candidate {
            a.plugin = registry.and_then(|r| r.get(c.name()));
            if let Some(live) = &a.plugin {
                a.name = format!("{}@{}", live.name(), live.description.version);
            }
            name.insert(
                0,
                format!("{}@{} ({candidate_origin})", c.name(), c.description.version),
            );
        }
        let b = RunSpec {
            name: name.join(" "),
            settings: [base, against].concat(),
            plugin: candidate,
        };
        vec![a, b]
    }
}

/// An evaluation: each run's scores, and the comparison of the second run with the first.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub k: usize,
    pub queries: usize,
    pub runs: Vec<RunReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<ComparisonReport>,
}

/// One run's scores.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub name: String,
    /// Means over the queries (nDCG, MRR and recall over those with a relevant document).
    pub summary: Summary,
    pub queries: Vec<QueryReport>,
}

/// One query in one run.
#[derive(Debug, Clone, Serialize)]
pub struct QueryReport {
    pub id: String,
    pub metrics: QueryMetrics,
    /// The ids returned, best first (the top k).
    pub hits: Vec<String>,
}

/// Run B against run A: per metric, the mean difference and its paired randomization test;
/// per query, the nDCG of each and the difference (B - A; positive: B is better).
#[derive(Debug, Clone, Serialize)]
pub struct ComparisonReport {
    pub a: String,
    pub b: String,
    pub ndcg: Comparison,
    pub mrr: Comparison,
    pub recall: Comparison,
    pub precision: Comparison,
    pub queries: Vec<QueryDelta>,
}

/// One query's nDCG in both runs.
#[derive(Debug, Clone, Serialize)]
pub struct QueryDelta {
    pub id: String,
    pub ndcg_a: Option<f64>,
    pub ndcg_b: Option<f64>,
    pub delta: Option<f64>,
}

/// Runs every judged query through each run (one or two) and scores the top `k`. Image queries
/// need `image_dir` (relative image paths resolve against it); without it they are refused, as
/// the HTTP API does. Everything is checked before the first query runs.
pub fn run(
    c: &Collection,
    registry: Option<&PluginRegistry>,
    queries: &[JudgedQuery],
    image_dir: Option<&Path>,
    runs: &[RunSpec],
    k: usize,
) -> Result<EvalReport> {
    if !(1..=MAX_EVAL_K).contains(&k) {
        return Err(QueryError::Setting(format!("k must be between 1 and {MAX_EVAL_K}, got {k}")).into());
    }
    if runs.is_empty() || runs.len() > 2 {
        return Err(QueryError::Setting(format!("an evaluation has one or two runs, got {}", runs.len())).into());
    }
    for r in runs {
        let mut probe = SearchRequest::default();
        for (key, value) in &r.settings {
            apply_setting(&mut probe, key, value)?;
        }
    }
    if image_dir.is_none()
        && let Some(q) = queries.iter().find(|q| q.image.is_some())
    {
        return Err(QueryError::Judgments(format!(
            "query `{}`: image queries are not taken here (give a query text or vector)",
            q.id
        ))
        .into());
    }
    let mut reports = Vec::with_capacity(runs.len());
    for spec in runs {
        let mut per_query = Vec::with_capacity(queries.len());
        for q in queries {
            let req = request(q, image_dir, spec, k)?;
            let resp = match &spec.plugin {
                Some(p) => search_with_plugin(c, &req, Some(p), p.limits().max_candidates),
                None => search_with(c, &req, registry),
            }
            .map_err(|e| in_query(&q.id, e))?;
            let hits: Vec<String> = resp.hits.into_iter().map(|h| h.id).take(k).collect();
            per_query.push(QueryReport {
                id: q.id.clone(),
                metrics: evaluate(&hits, &q.relevance, k),
                hits,
            });
        }
        let metrics: Vec<QueryMetrics> = per_query.iter().map(|q| q.metrics).collect();
        reports.push(RunReport {
            name: spec.name.clone(),
            summary: summarize(&metrics),
            queries: per_query,
        });
    }
    let comparison = match reports.as_slice() {
        [a, b] => Some(compare(a, b)),
        _ => None,
    };
    Ok(EvalReport {
        k,
        queries: queries.len(),
        runs: reports,
        comparison,
    })
}

/// A query's own mistake (a filter that does not parse, an unknown plugin) names the query.
fn in_query(id: &str, e: Error) -> Error {
    match e.fault() {
        Fault::User | Fault::NotFound => {
            // A query mistake keeps its own words, without a second "invalid query:".
            let why = match &e {
                Error::Query(q) => q.to_string(),
                other => other.to_string(),
            };
            QueryError::Judgments(format!("query `{id}`: {why}")).into()
        }
        _ => e,
    }
}

fn request(q: &JudgedQuery, image_dir: Option<&Path>, spec: &RunSpec, k: usize) -> Result<SearchRequest> {
    let mut req = SearchRequest {
        text: q.query.clone(),
        vector: q.vector.clone(),
        image: q.image.as_ref().zip(image_dir).map(|(p, dir)| dir.join(p)),
        scenario: q.scenario.clone(),
        plugin: q.plugin.clone(),
        filter: q.filter.clone(),
        params: q.params.clone(),
        top_k: Some(k),
        ..Default::default()
    };
    for (key, value) in &spec.settings {
        apply_setting(&mut req, key, value)?;
    }
    if spec.plugin.is_some() {
        // The run's version orders every query; the query's own choice would resolve another.
        req.plugin = None;
        req.scenario = None;
    }
    Ok(req)
}

fn compare(a: &RunReport, b: &RunReport) -> ComparisonReport {
    let pairs = |f: fn(&QueryMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
        a.queries
            .iter()
            .zip(&b.queries)
            .filter_map(|(x, y)| Some((f(&x.metrics)?, f(&y.metrics)?)))
            .collect()
    };
    ComparisonReport {
        a: a.name.clone(),
        b: b.name.clone(),
        ndcg: paired_randomization_test(&pairs(|m| m.ndcg)),
        mrr: paired_randomization_test(&pairs(|m| m.mrr)),
        recall: paired_randomization_test(&pairs(|m| m.recall)),
        precision: paired_randomization_test(&pairs(|m| Some(m.precision))),
        queries: a
            .queries
            .iter()
            .zip(&b.queries)
            .map(|(x, y)| QueryDelta {
                id: x.id.clone(),
                ndcg_a: x.metrics.ndcg,
                ndcg_b: y.metrics.ndcg,
                delta: x.metrics.ndcg.zip(y.metrics.ndcg).map(|(p, q)| q - p),
            })
            .collect(),
    }
}
