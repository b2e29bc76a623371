//! What a search returns.

use serde::Serialize;
use serde_json::{Map, Value};

use super::Contribution;
use super::facets::FacetCounts;
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
    /// The instruction the reranker (or the plugin) used, and its short hash, when either ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instruction: Option<InstructionUsed>,
    /// Facet counts over the matching documents, when facets were asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub facets: Vec<FacetCounts>,
    /// Documents in the matching set (under every filter), when facets were asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matching: Option<u64>,
    /// Groups the candidates formed, when the search groups (`offset` and `top_k` count them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<usize>,
    /// What the relevance floors cut, when any was set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuts: Option<Cuts>,
    /// What the search did differently from what was asked (a text query with a syntax error,
    /// read leniently).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub took_ms: f64,
}

/// An instruction and its identity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstructionUsed {
    pub text: String,
    /// The first 12 hex digits of the SHA-256 of the text: what metrics count queries by.
    pub hash: String,
    /// `request`, `plugin` or `default`.
    pub source: &'static str,
}

impl InstructionUsed {
    pub fn new(text: String, source: &'static str) -> Self {
        InstructionUsed {
            hash: instruction_hash(&text),
            text,
            source,
        }
    }
}

/// The short hash of an instruction.
fn instruction_hash(text: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Candidates the relevance floors cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Cuts {
    /// From the BM25 list, before fusion.
    pub bm25: usize,
    /// From the kNN list, before fusion.
    pub vector: usize,
    /// From the final order.
    #[serde(rename = "final")]
    pub final_score: usize,
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
    /// The hit's `group_by` value, when the search groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Which of the hit's vectors the kNN query matched, when kNN found it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<VectorMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<Explanation>,
}

/// The vector of a hit that matched the kNN query best.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VectorMatch {
    /// The vector field searched.
    pub field: String,
    /// Which of the document's vectors (0-based): for a field computed from an image list, the
    /// image's position in it.
    pub position: usize,
    /// The image field the vectors were computed from, when they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_field: Option<String>,
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
