//! Hybrid search as one readable function: plan, retrieve (BM25 + kNN under one filter, fused),
//! rank (plugin and reranker), page, and hits that can explain their score.

use std::time::Instant;

use tantivy::Searcher;

use super::candidate::Candidate;
use super::facets;
use super::grouping;
use super::plan::SearchPlan;
use super::ranking;
use super::retrieve::{BM25, Combination, VECTOR, retrieve};
use super::{
    Cuts, Explanation, FusionExplanation, Hit, InstructionUsed, SearchRequest, SearchResponse, StageScore, VectorMatch,
};
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
    // The plugin's own `max_candidates` (`[plugin_limits.NAME]`), else the runtime's.
    let max_candidates = plugin.as_ref().map_or(0, |p| p.limits().max_candidates);
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
    if let Some(group) = &plan.group {
        grouping::assign(&searcher, &group.field, &mut cands)?;
        grouping::limit(&mut cands, group.size);
    }
    let stages = ranking::rank(c, &searcher, &plan, &mut cands)?;
    let mut cut_final = 0;
    if let Some(floor) = plan.min_score.final_score {
        let before = cands.len();
        cands.retain(|cand| cand.score >= floor);
        cut_final = before - cands.len();
    }
    let explain = plan.explain.then_some(&retrieved.combination);
    let (page, groups): (Vec<Candidate>, Option<usize>) = match &plan.group {
        None => (cands.into_iter().skip(plan.offset).take(plan.top_k).collect(), None),
        Some(_) => {
            let groups = grouping::gather(cands);
            let n = groups.len();
            let page = groups
                .into_iter()
                .skip(plan.offset)
                .take(plan.top_k)
                .flatten()
                .collect();
            (page, Some(n))
        }
    };
    let searched = plan.vector.as_ref().map(|v| {
        let image_field = match c.schema().computed_field(v.field).map(|s| &s.kind) {
            Some(crate::schema::SourceKind::ClipImage { image_field }) => Some(image_field.clone()),
            _ => None,
        };
        (v.field.to_owned(), image_field)
    });
    let hits = page
        .into_iter()
        .map(|cand| hit(c, &searcher, cand, explain, searched.as_ref()))
        .collect::<Result<_>>()?;
    let (facets, matching) = match plan.facets.is_empty() {
        true => (Vec::new(), None),
        false => {
            let (f, m) = facets::counts(c, &searcher, &plan, retrieved.vector.as_ref())?;
            (f, Some(m))
        }
    };
    let instruction = instruction_used(&stages);
    Ok(SearchResponse {
        hits,
        candidates: total,
        retrievers: retrieved.lists.iter().map(|l| (*l).to_owned()).collect(),
        fusion: retrieved.combination.describe(),
        query_vector: retrieved.query_vector.map(str::to_owned),
        vector_search: retrieved.knn.clone(),
        ranking: stages.plugin,
        rerank: stages.rerank,
        instruction,
        facets,
        matching,
        groups,
        cuts: plan.min_score.any().then_some(Cuts {
            bm25: retrieved.cut_bm25,
            vector: retrieved.cut_vector,
            final_score: cut_final,
        }),
        warnings: plan.text.and_then(|t| t.note).into_iter().collect(),
        took_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// The instruction the reranker read, else the plugin's (when it answered).
fn instruction_used(stages: &ranking::StageReports) -> Option<InstructionUsed> {
    if let Some(r) = &stages.rerank {
        return Some(InstructionUsed::new(r.instruction.clone(), r.instruction_source));
    }
    stages
        .plugin
        .as_ref()
        .filter(|p| p.error.is_none())
        .map(|p| InstructionUsed::new(p.instruction.clone(), "plugin"))
}

/// A hit from its record, with its explanation when asked.
fn hit(
    c: &Collection,
    searcher: &Searcher,
    mut cand: Candidate,
    explain: Option<&Combination>,
    searched: Option<&(String, Option<String>)>,
) -> Result<Hit> {
    let doc = cand.doc(searcher)?;
    let id = c.fields().id_of(doc);
    let fields = stored_to_json(doc, c.fields());
    Ok(Hit {
        id,
        score: cand.score,
        fields,
        group: cand.group.take(),
        matched: searched
            .filter(|_| cand.stage(VECTOR).is_some())
            .map(|(field, image_field)| VectorMatch {
                field: field.clone(),
                position: cand.matched.map_or(0, usize::from),
                image_field: image_field.clone(),
            }),
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
