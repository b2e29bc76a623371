//! What a ranking plugin did for a search, as reported in the response (the stage itself runs
//! in `search::ranking`).

use serde::Serialize;

use super::PluginFailure;

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
    /// The reranker instruction the plugin gave (the default one on fallback).
    pub instruction: String,
    /// How many candidates the plugin asked to rerank.
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
