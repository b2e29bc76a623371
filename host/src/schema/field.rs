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

/// A vector field's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VectorSpec {
    pub dim: usize,
    pub dtype: VectorDtype,
    pub metric: Metric,
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
