//! What a collection holds, for `mira stats` and the server's stats route.

use std::path::Path;

use serde::Serialize;

use super::Collection;
use crate::error::Result;
use crate::schema::VectorIndex;
use crate::vector::GraphState;

/// A collection's size and shape.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionStats {
    pub name: String,
    pub documents: u64,
    /// Deleted documents not yet merged away.
    pub deleted: u64,
    pub segments: usize,
    /// Bytes on disk of the tantivy index.
    pub index_bytes: u64,
    pub vector_fields: Vec<VectorFieldStats>,
}

/// One vector field's coverage and footprint.
#[derive(Debug, Clone, Serialize)]
pub struct VectorFieldStats {
    pub field: String,
    pub dim: usize,
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

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

impl Collection {
    /// Counts documents, segments, bytes and vector coverage of the current snapshot.
    pub fn stats(&self) -> Result<CollectionStats> {
        let searcher = self.searcher();
        let readers = searcher.segment_readers();
        let mut vector_fields = Vec::new();
        for (field, spec) in self.schema().vector_fields() {
            let (mut with_vector, mut bytes, mut graphs, mut graph_bytes) = (0u64, 0u64, 0usize, 0u64);
            for r in readers {
                let m = self.vectors().matrix(r, &field.name, &spec)?;
                bytes += m.file_bytes() as u64;
                if let GraphState::Ready(g) = self.vectors().graph(r, &field.name, &spec, &m) {
                    graphs += 1;
                    graph_bytes += g.file_bytes() as u64;
                }
                with_vector += (0..r.max_doc()).filter(|d| m.has(*d) && !r.is_deleted(*d)).count() as u64;
            }
            vector_fields.push(VectorFieldStats {
                field: field.name.clone(),
                dim: spec.dim,
                dtype: format!("{:?}", spec.dtype).to_lowercase(),
                documents_with_vector: with_vector,
                matrix_bytes: bytes,
                index: match spec.index {
                    VectorIndex::Flat => "flat",
                    VectorIndex::Hnsw(_) => "hnsw",
                },
                segments_with_graph: graphs,
                graph_bytes,
            });
        }
        Ok(CollectionStats {
            name: self.name().to_owned(),
            documents: searcher.num_docs(),
            deleted: readers.iter().map(|r| u64::from(r.num_deleted_docs())).sum(),
            segments: readers.len(),
            index_bytes: dir_bytes(&self.dir().join("index")),
            vector_fields,
        })
    }
}
