//! The plugin stage of a search: the plugin's instruction, rerank depth and final fusion, with the
//! built-in order and the default instruction as the fallback for any failure.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;
use tantivy::{DocAddress, Searcher, TantivyDocument};

use super::{LoadedPlugin, PluginFailure, convert};
use crate::collection::Collection;
use crate::error::Result;
use crate::search::{Fused, SearchRequest};

/// Qwen3-Reranker's default instruction, used when no plugin gives one.
pub const DEFAULT_INSTRUCTION: &str = "Given a web search query, retrieve relevant passages that answer the query";

/// Whether the plugin's answer was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RankingStatus {
    /// The plugin's order is the final order.
    Ok,
    /// The plugin failed; the built-in order and default instruction were used.
    Fallback,
}

/// What the plugin stage did, for the response.
#[derive(Debug, Clone, Serialize)]
pub struct RankingReport {
    pub plugin: String,
    pub version: String,
    pub status: RankingStatus,
    /// Why the plugin was not used (status `fallback`).
    pub error: Option<PluginFailure>,
    /// The reranker instruction in force.
    pub instruction: String,
    /// How many candidates the plugin would have reranked.
    pub rerank_depth: Option<u32>,
    /// Candidates passed to the plugin.
    pub candidates: usize,
    pub took_ms: f64,
}

/// A hit's place before and after the plugin.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PluginScore {
    /// The plugin's final score.
    pub score: f32,
    /// The fused retrieval score the plugin started from.
    pub retrieval_score: f32,
    /// 1-based rank after retrieval fusion.
    pub retrieval_rank: usize,
}

/// The outcome of the stage: the (possibly reordered) list, the report, and per-hit scores.
pub(crate) struct Applied {
    pub fused: Vec<Fused<DocAddress>>,
    pub report: RankingReport,
    pub scores: HashMap<DocAddress, PluginScore>,
}

struct Answer {
    instruction: String,
    depth: u32,
    scores: Vec<f32>,
}

fn call(
    plugin: &LoadedPlugin,
    req: &super::wit::Request,
    cands: &[super::wit::Candidate],
) -> Result<Answer, PluginFailure> {
    if let Some(q) = plugin.quarantine() {
        return Err(q);
    }
    let mut session = plugin.session()?;
    let instruction = session.instruction(req)?;
    let retrieval: Vec<f32> = cands.iter().map(|c| c.scores.retrieval).collect();
    let depth = session.rerank_depth(req, &retrieval)?;
    let scores = session.fuse(req, cands)?;
    Ok(Answer {
        instruction,
        depth,
        scores,
    })
}

/// Runs `plugin` over the fused candidates (at most the runtime's `max_candidates`).
pub(crate) fn apply(
    c: &Collection,
    searcher: &Searcher,
    req: &SearchRequest,
    mut fused: Vec<Fused<DocAddress>>,
    plugin: &LoadedPlugin,
    max_candidates: usize,
) -> Result<Applied> {
    let started = Instant::now();
    fused.truncate(max_candidates);
    let now = req.now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    let wreq = convert::request(req, now);
    let mut cands = Vec::with_capacity(fused.len());
    for (i, f) in fused.iter().enumerate() {
        let doc: TantivyDocument = searcher.doc(f.key)?;
        cands.push(convert::candidate(c, &doc, c.fields().id_of(&doc), f, i as u32 + 1));
    }
    let outcome = call(plugin, &wreq, &cands);
    if !matches!(outcome, Err(PluginFailure::Quarantined { .. })) {
        plugin.record(outcome.is_ok());
    }
    let mut report = RankingReport {
        plugin: plugin.name().to_owned(),
        version: plugin.description.version.clone(),
        status: RankingStatus::Fallback,
        error: None,
        instruction: DEFAULT_INSTRUCTION.to_owned(),
        rerank_depth: None,
        candidates: cands.len(),
        took_ms: 0.0,
    };
    let mut scores = HashMap::new();
    match outcome {
        Ok(answer) => {
            report.status = RankingStatus::Ok;
            report.instruction = answer.instruction;
            report.rerank_depth = Some(answer.depth);
            let mut ranked: Vec<(usize, Fused<DocAddress>, f32)> = fused
                .into_iter()
                .zip(answer.scores)
                .enumerate()
                .map(|(i, (f, s))| (i, f, s))
                .collect();
            // Stable: equal plugin scores keep the retrieval order.
            ranked.sort_by(|a, b| b.2.total_cmp(&a.2));
            fused = ranked
                .into_iter()
                .map(|(i, mut f, s)| {
                    scores.insert(
                        f.key,
                        PluginScore {
                            score: s,
                            retrieval_score: f.score,
                            retrieval_rank: i + 1,
                        },
                    );
                    f.score = s;
                    f
                })
                .collect();
        }
        Err(e) => {
            tracing::warn!(plugin = plugin.name(), error = %e, "plugin failed; built-in ranking used");
            report.error = Some(e);
        }
    }
    report.took_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(Applied { fused, report, scores })
}
