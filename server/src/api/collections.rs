//! A collection's statistics as the API shows them.

use mira_host::collection::{CollectionStats, VectorFieldStats};
use serde::Serialize;

/// A collection's size and shape.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CollectionStats)]
pub struct CollectionStatsBody {
    pub name: String,
    pub documents: u64,
    /// Deleted documents not yet merged away.
    pub deleted: u64,
    pub segments: usize,
    /// Bytes on disk of the tantivy index.
    pub index_bytes: u64,
    pub vector_fields: Vec<VectorFieldStatsBody>,
}

impl From<CollectionStats> for CollectionStatsBody {
    fn from(s: CollectionStats) -> Self {
        CollectionStatsBody {
            name: s.name,
            documents: s.documents,
            deleted: s.deleted,
            segments: s.segments,
            index_bytes: s.index_bytes,
            vector_fields: s.vector_fields.into_iter().map(Into::into).collect(),
        }
    }
}

/// One vector field's coverage and footprint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = VectorFieldStats)]
pub struct VectorFieldStatsBody {
    pub field: String,
    pub dim: usize,
    /// `f32` or `f16`.
    pub dtype: String,
    /// Live documents that have a vector in this field.
    pub documents_with_vector: u64,
    /// Bytes of the derived matrix files. They are dense (a row for every document of a
    /// segment, with a vector or not), so a field nothing has filled yet still takes room.
    pub matrix_bytes: u64,
    /// `flat` or `hnsw`.
    pub index: &'static str,
    /// Segments answered by a graph now (others are small, or their graph is being built).
    pub segments_with_graph: usize,
    /// Bytes of the graph files (links, node map and, with `i8`, codes).
    pub graph_bytes: u64,
}

impl From<VectorFieldStats> for VectorFieldStatsBody {
    fn from(v: VectorFieldStats) -> Self {
        VectorFieldStatsBody {
            field: v.field,
            dim: v.dim,
            dtype: v.dtype,
            documents_with_vector: v.documents_with_vector,
            matrix_bytes: v.matrix_bytes,
            index: v.index,
            segments_with_graph: v.segments_with_graph,
            graph_bytes: v.graph_bytes,
        }
    }
}
