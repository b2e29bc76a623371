//! Hybrid search as one readable function: plan, retrieve (BM25 + kNN under one filter, fused),
//! rank (plugin and reranker), page, and hits that can explain their score.

use std::time::Instant;

use tantivy::Searcher;

use super::candidate::Candidate;
use super::plan::SearchPlan;
use super::ranking;
use super::retrieve::{BM25, Combination, VECTOR, retrieve};
use super::{Explanation, FusionExplanation, Hit, SearchRequest, SearchResponse, StageScore};
use crate::collection::Collection;
use crate::document::stored_to_json;
use crate::error::{QueryError, Result};
use crate::plugin::{LoadedPlugin, PluginRegistry, PluginScore};
use crate::search::{FusionMethod, RerankScore};

/// Runs a search on a collection's current snapshot, without ranking plugins.
pub fn search(c: &Collection, req: &SearchRequest) -> Result<SearchResponse> {
    search_with(c, req, None)
}

/// Runs a search, applying the ranking plugin the request asks for (by name or scenario).
pub fn search_with(c: &Collection, req: &SearchRequest, plugins: Option<&PluginRegistry>) -> Result<SearchResponse> {
    let plugin = match plugins {
        Some(registry) => registry.resolve(req.plugin.as_deref(), req.scenario.as_deref())?,
        None if req.plugin.is_some() || req.scenario.is_some() => {
            return Err(QueryError::PluginsUnavailable.into());
        }
        None => None,
    };
    let max_candidates = plugins.map_or(0, |r| r.runtime().limits().max_candidates);
    search_with_plugin(c, req, plugin.as_deref(), max_candidates)
}

/// Runs a search with a given plugin version (a live one, or a staged candidate in a shadow
/// comparison), passing it at most `max_candidates` candidates (at least the page).
pub fn search_with_plugin(
    c: &Collection,
    req: &SearchRequest,
    plugin: Option<&LoadedPlugin>,
    max_candidates: usize,
) -> Result<SearchResponse> {
    let started = Instant::now();
    let plan = SearchPlan::new(c, req, plugin, max_candidates)?;
    let searcher = c.searcher();
    let retrieved = retrieve(c, &searcher, &plan)?;
    let total = retrieved.candidates.len();
    let mut cands = retrieved.candidates;
    let stages = ranking::rank(c, &searcher, &plan, &mut cands)?;
    let hits = cands
        .into_iter()
        .skip(plan.offset)
        .take(plan.top_k)
        .map(|cand| hit(c, &searcher, cand, plan.explain.then_some(&retrieved.combination)))
        .collect::<Result<_>>()?;
    Ok(SearchResponse {
        hits,
        candidates: total,
        retrievers: retrieved.lists.iter().map(|l| (*l).to_owned()).collect(),
        fusion: retrieved.combination.describe(),
        query_vector: retrieved.query_vector.map(str::to_owned),
        vector_search: retrieved.knn.clone(),
        ranking: stages.plugin,
        rerank: stages.rerank,
        warnings: plan.text.and_then(|t| t.note).into_iter().collect(),
        took_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// A hit from its record, with its explanation when asked.
fn hit(c: &Collection, searcher: &Searcher, mut cand: Candidate, explain: Option<&Combination>) -> Result<Hit> {
    let doc = cand.doc(searcher)?;
    let id = c.fields().id_of(doc);
    let fields = stored_to_json(doc, c.fields());
    Ok(Hit {
        id,
        score: cand.score,
        fields,
        explain: explain.map(|combination| explanation(&cand, combination)),
    })
}

fn explanation(cand: &Candidate, combination: &Combination) -> Explanation {
    let stage = |name: &str| {
        cand.stage(name).map(|x| StageScore {
            score: x.raw,
            rank: x.rank,
        })
    };
    let retrieval = cand.retrieval.score;
    Explanation {
        bm25: stage(BM25),
        vector: stage(VECTOR),
        rerank: cand.rerank.as_ref().map(|r| RerankScore {
            p_yes: r.p_yes,
            rank: r.rank,
            retrieval_rank: cand.retrieval_rank,
            retrieval_score: retrieval,
            text: r.text.clone(),
        }),
        plugin: cand.plugin_score.map(|score| PluginScore {
            score,
            retrieval_score: retrieval,
            retrieval_rank: cand.retrieval_rank,
        }),
        fusion: FusionExplanation {
            method: combination.describe(),
            score: retrieval,
            formula: formula(combination, cand),
            contributions: cand.retrieval.contributions.clone(),
        },
    }
}

/// The fused score's formula with this candidate's numbers.
fn formula(combination: &Combination, cand: &Candidate) -> String {
    let score = cand.retrieval.score;
    let method = match combination {
        Combination::Single(list) => return format!("{list} score passed through = {score:.4}"),
        Combination::Fused(method) => method,
    };
    let terms: Vec<String> = cand
        .retrieval
        .contributions
        .iter()
        .map(|c| match method {
            FusionMethod::Rrf { k } => format!("{}·1/({k}+{}) [{}]", c.weight, c.rank, c.list),
            FusionMethod::Linear { .. } => format!("{}·{:.4} [{} raw {:.4}]", c.weight, c.value, c.list, c.raw),
        })
        .collect();
    format!("{} = {:.4}", terms.join(" + "), score)
}
