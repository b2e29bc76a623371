//! One declared field and its type-specific options.

use serde::{Deserialize, Serialize};

/// Text analysis chain used for a text field, at index and query time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Analyzer {
    /// Unicode word split, lower-casing, long tokens dropped.
    #[default]
    Default,
    /// Default plus English stop words and Porter stemming ("dresses" matches "dress").
    English,
    /// jieba word segmentation (search mode) for Chinese, lower-casing for mixed Latin text.
    Chinese,
}

impl Analyzer {
    /// The name the analyzer is registered under in every collection's tokenizer manager.
    pub fn tokenizer_name(self) -> &'static str {
        match self {
            Analyzer::Default => "default",
            Analyzer::English => "mira_english",
            Analyzer::Chinese => "mira_chinese",
        }
    }
}

/// Element type of a stored vector. f16 halves memory and scan time at ~1e-3 relative error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VectorDtype {
    #[default]
    F32,
    F16,
}

impl VectorDtype {
    pub fn size(self) -> usize {
        match self {
            VectorDtype::F32 => 4,
            VectorDtype::F16 => 2,
        }
    }
}

/// Similarity between a query and a stored vector; larger is closer for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Vectors are L2-normalised at ingest and at query time; similarity is their dot product.
    #[default]
    Cosine,
    /// Raw inner product, for embeddings trained for it.
    Dot,
}

/// A vector field's shape and how it is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VectorSpec {
    pub dim: usize,
    pub dtype: VectorDtype,
    pub metric: Metric,
    pub index: VectorIndex,
}

/// How a vector field's segments are searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum VectorIndex {
    /// Exact scan of every vector (recall 1, cost linear in the segment).
    Flat,
    /// A navigable small-world graph per segment (approximate; see `crate::vector::hnsw`).
    Hnsw(HnswParams),
}

/// Graph parameters of an `index = "hnsw"` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HnswParams {
    /// Links per node on the upper layers (twice as many on the bottom layer).
    pub m: usize,
    /// Beam width while building.
    pub ef_construction: usize,
    /// Beam width while searching, unless the request sets `ef_search`.
    pub ef_search: usize,
    /// Codes the walk reads: `none` (the stored vectors) or `i8` (then rescored exactly).
    pub quantization: Quantization,
    /// Segments with fewer vectors are scanned exactly (no graph is built for them).
    pub exact_below: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 128,
            ef_search: 64,
            quantization: Quantization::I8,
            exact_below: 4096,
        }
    }
}

/// What the graph walk reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    /// The stored vectors themselves.
    None,
    /// 7-bit per-dimension scalar codes (a quarter of f32), with exact rescoring.
    #[default]
    I8,
}

/// The `index = ...` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    Flat,
    Hnsw,
}

impl VectorSpec {
    /// Bytes one vector takes in the index column and in the segment matrix.
    pub fn row_bytes(&self) -> usize {
        self.dim * self.dtype.size()
    }
}

/// What a field holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FieldKind {
    /// Full text, BM25-scored.
    Text {
        analyzer: Analyzer,
        boost: f32,
    },
    /// Exact-match strings: filters and facets counts.
    Keyword,
    /// Hierarchical facet path such as `/clothing/dresses`.
    Facet,
    I64,
    U64,
    F64,
    Bool,
    /// A point in time: RFC 3339, `YYYY-MM-DD`, or seconds since the epoch.
    Date,
    /// Path of an image file, checked to decode at ingest.
    Image,
    /// A dense vector, searched by kNN.
    Vector(VectorSpec),
}

impl FieldKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldKind::Text { .. } => "text",
            FieldKind::Keyword => "keyword",
            FieldKind::Facet => "facet",
            FieldKind::I64 => "i64",
            FieldKind::U64 => "u64",
            FieldKind::F64 => "f64",
            FieldKind::Bool => "bool",
            FieldKind::Date => "date",
            FieldKind::Image => "image",
            FieldKind::Vector(_) => "vector",
        }
    }
}

/// A validated field declaration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldSpec {
    pub name: String,
    #[serde(flatten)]
    pub kind: FieldKind,
    /// A row without this field is rejected.
    pub required: bool,
    /// Returned with hits (vectors are never stored: they live in the fast column).
    pub stored: bool,
}
