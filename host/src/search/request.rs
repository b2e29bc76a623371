//! A search request: what the CLI builds from flags and the server converts its JSON body into.

use std::collections::BTreeMap;

use super::FusionMethod;
use super::facets::FacetRequest;
use super::fusion::Normalization;

/// Largest page a request may ask for.
pub const MAX_TOP_K: usize = 10_000;
/// Largest candidate list a retriever may be asked for.
pub const MAX_CANDIDATES: usize = 100_000;

/// One search. Every field is optional; unset ones take the collection's `[search]` defaults.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// BM25 query in tantivy syntax (`red dress`, `title:"silk scarf"`, `dress -red`).
    pub text: Option<String>,
    /// Text fields to search (boosts come from the schema).
    pub text_fields: Option<Vec<String>>,
    /// Query vector for kNN.
    pub vector: Option<Vec<f32>>,
    /// Query image file: embedded with the collection's CLIP model for kNN (CLI only: the
    /// HTTP API takes the image itself).
    pub image: Option<std::path::PathBuf>,
    /// Query image bytes (an upload), embedded the same way: what the HTTP server fills from a
    /// multipart part or base64 (it never fills `image`, so clients cannot name server files).
    pub image_bytes: Option<std::sync::Arc<Vec<u8>>>,
    /// Vector field to search.
    pub vector_field: Option<String>,
    /// Filter in tantivy syntax, applied to both retrievers: `category:dress AND price:[10 TO 50]`.
    pub filter: Option<String>,
    /// `rrf` or `linear`.
    pub fusion: Option<String>,
    pub rrf_k: Option<f32>,
    pub normalization: Option<Normalization>,
    pub bm25_weight: Option<f32>,
    pub vector_weight: Option<f32>,
    /// Hits to return.
    pub top_k: Option<usize>,
    /// Hits to skip (paging).
    pub offset: usize,
    /// Candidates each retriever contributes before fusion.
    pub candidates: Option<usize>,
    /// The beam of graph walks (`hnsw` fields; default: the field's `ef_search`): larger is
    /// slower and finds more of the true nearest neighbours.
    pub ef_search: Option<usize>,
    /// Scan every vector exactly, graphs or not (recall 1; for checking an index).
    pub exact: bool,
    /// Attach a per-stage explanation to each hit.
    pub explain: bool,
    /// Fused candidates the reranker reads (default: the plugin's rerank depth, else the
    /// collection's `[search] rerank_window`); 0 turns reranking off.
    pub rerank_window: Option<usize>,
    /// The reranker instruction (default: the plugin's, else the model card's).
    pub instruction: Option<String>,
    /// The scenario (`ecommerce`, `news`...): selects the ranking plugin that serves it.
    pub scenario: Option<String>,
    /// A ranking plugin by name (wins over `scenario`).
    pub plugin: Option<String>,
    /// Parameters passed to the plugin (`max_price=80`...).
    pub params: BTreeMap<String, String>,
    /// The request time in seconds since 1970 (default: now); plugins use it for recency.
    pub now: Option<i64>,
    /// Relevance floors: candidates below them are cut (retrievers' before fusion).
    pub min_score: MinScore,
    /// Facets to count over the matching documents.
    pub facets: Vec<FacetRequest>,
    /// Ticked facet values, field -> values (ORed within a field, ANDed across fields and with
    /// `filter`); counted by the disjunctive rule.
    pub facet_filters: BTreeMap<String, Vec<String>>,
    /// A keyword field: at most `group_size` hits per value, paged by group.
    pub group_by: Option<String>,
    /// Hits per group (default 1).
    pub group_size: Option<usize>,
}

/// Relevance floors. A retriever's floor cuts its list before fusion (and the matching set that
/// facets count); the final floor cuts hits by their final score (P("yes") when reranked, the
/// plugin's score, else the fused score).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MinScore {
    /// Least BM25 score.
    pub bm25: Option<f32>,
    /// Least vector similarity (cosine or dot product, as the field's metric).
    pub vector: Option<f32>,
    /// Least final score.
    pub final_score: Option<f32>,
}

impl MinScore {
    /// Whether any floor is set.
    pub fn any(&self) -> bool {
        self.bm25.is_some() || self.vector.is_some() || self.final_score.is_some()
    }
}

impl SearchRequest {
    /// A text-only request.
    pub fn text(q: impl Into<String>) -> Self {
        SearchRequest {
            text: Some(q.into()),
            ..Default::default()
        }
    }

    /// A vector-only request.
    pub fn vector(v: Vec<f32>) -> Self {
        SearchRequest {
            vector: Some(v),
            ..Default::default()
        }
    }

    /// The fusion method this request asks for, if it overrides the default.
    pub(crate) fn fusion_method(&self, default: FusionMethod) -> Result<FusionMethod, String> {
        match (&self.fusion, self.rrf_k, self.normalization) {
            (None, None, None) => Ok(default),
            (Some(name), k, n) => FusionMethod::parse(name, k, n),
            (None, k, n) => {
                let name = match default {
                    FusionMethod::Rrf { .. } => "rrf",
                    FusionMethod::Linear { .. } => "linear",
                };
                FusionMethod::parse(name, k, n)
            }
        }
    }
}
