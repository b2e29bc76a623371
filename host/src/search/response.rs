//! What a search returns.

use serde::Serialize;
use serde_json::{Map, Value};

use super::Contribution;
use super::ranking::{RerankReport, RerankScore};
use crate::plugin::{PluginScore, RankingReport};

/// A page of hits.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResponse {
    pub hits: Vec<Hit>,
    /// Distinct documents that reached fusion (an upper bound on what paging can reach).
    pub candidates: usize,
    /// Retrievers that ran: `bm25`, `vector`, or `filter` alone.
    pub retrievers: Vec<String>,
    /// The fusion used, e.g. `rrf(k=60)`.
    pub fusion: String,
    /// Where the kNN query vector came from: `given`, `clip image`, `clip text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_vector: Option<String>,
    /// How the kNN retriever searched each segment, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector_search: Option<VectorSearchReport>,
    /// The ranking plugin's part, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranking: Option<RankingReport>,
    /// The reranker's part, when the collection has a reranker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank: Option<RerankReport>,
    /// What the search did differently from what was asked (a text query with a syntax error,
    /// read leniently).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub took_ms: f64,
}

/// How the kNN retriever searched.
#[derive(Debug, Clone, Serialize)]
pub struct VectorSearchReport {
    pub field: String,
    /// One entry per segment: which index answered and what it scored.
    pub segments: Vec<crate::vector::SegmentKnn>,
}

/// One result.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub id: String,
    pub score: f32,
    /// The document's stored fields.
    pub fields: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<Explanation>,
}

/// How a hit got its score.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// BM25 score and rank, when the text retriever found it.
    pub bm25: Option<StageScore>,
    /// Vector similarity and rank, when the kNN retriever found it.
    pub vector: Option<StageScore>,
    pub fusion: FusionExplanation,
    /// The reranker's P("yes"), when the hit was in the rerank window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank: Option<RerankScore>,
    /// The ranking plugin's score and where the hit stood before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginScore>,
}

/// A retriever's score for a hit.
#[derive(Debug, Clone, Serialize)]
pub struct StageScore {
    pub score: f32,
    /// 1-based rank in that retriever's list.
    pub rank: usize,
}

/// The fused score and the terms it was summed from.
#[derive(Debug, Clone, Serialize)]
pub struct FusionExplanation {
    pub method: String,
    pub score: f32,
    pub contributions: Vec<Contribution>,
    /// The formula with this hit's numbers, e.g. `1.0/(60+1) + 1.0/(60+3) = 0.0323`.
    pub formula: String,
}
