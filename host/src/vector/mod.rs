//! Vectors: encoding into the index column, the per-segment matrix files derived from it, the SIMD
//! similarity kernels, and per-segment kNN.
//!
//! tantivy is the source of truth: a document's vector lives in a fast bytes column of its
//! segment, committed with the rest of the document. Because a scan needs contiguous memory, each
//! segment also gets a derived matrix file ([`SegmentMatrix`]) built from that column. Segments
//! never change, so neither does the file; [`VectorStore`] rebuilds it when missing or stale and
//! removes it when its segment is merged away. Deleted documents are skipped through tantivy's
//! alive bitset at query time.

pub mod codec;
mod collector;
pub mod hnsw;
pub mod kernel;
mod knn;
mod matrix;
pub mod quant;
mod store;

pub use collector::{KnnCollector, KnnOptions, KnnSegmentCollector, SegmentKnn};
pub use knn::{DocFilter, FlatScan, ScoredDoc, SegmentAnswer, SegmentVectorIndex, merge_top_k};
pub use matrix::SegmentMatrix;
pub use store::{GraphBuild, GraphState, VectorStore, VectorStoreStats};

/// A temporary name beside `path`, unique to this process and call, so two writers of the same
/// derived file (two handles on one collection, two processes) never write into one file; the
/// rename publishes whichever finishes last, and both are whole.
pub(crate) fn temp_path(path: &std::path::Path) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".{}-{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    path.with_file_name(name)
}

/// Publishes `bytes` at `path` whole or not at all: written under a [`temp_path`], fsynced,
/// renamed over `path`, and the directory fsynced so the rename survives a crash. A failed
/// write leaves no temporary file behind.
pub(crate) fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = temp_path(path);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
