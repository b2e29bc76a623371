//! Per-segment k-nearest-neighbour search, the way Lucene does it: each segment answers its own
//! top k, restricted to the documents a filter lets through, and the per-segment lists are merged.
//!
//! [`SegmentVectorIndex`] is the seam between the kNN collector and the index kinds: the exact
//! [`FlatScan`] here and the graph walk ([`super::hnsw::GraphSearch`]); callers only see "top k
//! of this segment among these documents", and what answered.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use tantivy::DocId;
use tantivy::fastfield::AliveBitSet;

use super::SegmentMatrix;
use super::kernel::{dot_f16, dot_f16_block, dot_f32, dot_f32_block};
use crate::schema::VectorDtype;

/// A document of one segment with its similarity to the query: that of its closest vector
/// (max-sim, for a document with several), and which of its vectors that is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredDoc {
    pub doc: DocId,
    pub score: f32,
    /// 0 for a document's first vector; for an image list, the matching image's position.
    pub position: u16,
}

/// Which documents of a segment may be returned.
pub enum DocFilter<'a> {
    /// Every live document (deleted ones are skipped through the alive bitset).
    All(Option<&'a AliveBitSet>),
    /// Only these documents, in increasing order (a filter query's matches, already live).
    Only(&'a [DocId]),
}

/// Nearest-neighbour search over one segment's vectors of one field.
pub trait SegmentVectorIndex: Send + Sync {
    /// The `k` most similar documents allowed by `filter`, best first. `query` is already
    /// validated and normalised for the field's metric.
    fn search(&self, query: &[f32], k: usize, filter: &DocFilter<'_>) -> SegmentAnswer;
}

/// What one segment's index answered, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentAnswer {
    /// Best first.
    pub hits: Vec<ScoredDoc>,
    /// `hnsw`, `flat` (every live vector) or `filtered-flat` (the filter's documents).
    pub index: &'static str,
    /// Vectors scored.
    pub scored: usize,
    /// The beam of a graph walk.
    pub ef_search: Option<usize>,
    /// Why an index with a graph scanned instead.
    pub reason: Option<&'static str>,
}

/// Exact search: scores every allowed document with the SIMD kernels.
pub struct FlatScan<'a>(pub &'a SegmentMatrix);

/// Min-heap entry ordering by score (ties: larger doc id is "smaller", so lower ids win).
#[derive(PartialEq)]
struct Entry(ScoredDoc);

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed so BinaryHeap (a max-heap) keeps the worst kept entry on top.
        other
            .0
            .score
            .total_cmp(&self.0.score)
            .then(self.0.doc.cmp(&other.0.doc))
    }
}

/// Keeps the best `k` of a stream of scored documents.
struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    #[inline]
    fn push(&mut self, doc: DocId, score: f32, position: u16) {
        let entry = Entry(ScoredDoc { doc, score, position });
        if self.heap.len() < self.k {
            self.heap.push(entry);
        } else if let Some(worst) = self.heap.peek()
            && (score > worst.0.score || (score == worst.0.score && doc < worst.0.doc))
        {
            self.heap.pop();
            self.heap.push(entry);
        }
    }

    fn into_sorted(self) -> Vec<ScoredDoc> {
        // Ascending `Entry` order is best-first.
        self.heap.into_sorted_vec().into_iter().map(|e| e.0).collect()
    }
}

/// Rows scored per kernel call in a full scan.
const BLOCK: u32 = 256;

impl SegmentVectorIndex for FlatScan<'_> {
    fn search(&self, query: &[f32], k: usize, filter: &DocFilter<'_>) -> SegmentAnswer {
        let (index, scored) = match filter {
            DocFilter::All(_) => ("flat", (self.0.present() + self.0.extras()) as usize),
            DocFilter::Only(docs) => ("filtered-flat", docs.len()),
        };
        SegmentAnswer {
            hits: self.scan(query, k, filter),
            index,
            scored,
            ef_search: None,
            reason: None,
        }
    }
}

impl FlatScan<'_> {
    fn scan(&self, query: &[f32], k: usize, filter: &DocFilter<'_>) -> Vec<ScoredDoc> {
        let m = self.0;
        if k == 0 || m.present() == 0 {
            return Vec::new();
        }
        let mut top = TopK::new(k);
        let score_row = |row: u32| match m.spec().dtype {
            VectorDtype::F32 => dot_f32(query, m.vector_f32(row)),
            VectorDtype::F16 => dot_f16(query, m.vector_f16(row)),
        };
        // Max-sim: a document with several vectors scores as its closest one.
        let best_in = |rows: std::ops::Range<u32>, first: f32| {
            rows.fold((first, 0u16), |(best, at), row| {
                let s = score_row(row);
                if s > best { (s, m.position_of(row)) } else { (best, at) }
            })
        };
        let mut cursor = 0;
        let has_extras = m.extras() > 0;
        match filter {
            DocFilter::All(alive) => {
                // Sequential blocks: the scan streams the matrix at memory bandwidth; absent and
                // deleted rows are scored too (cheaper than branching) and dropped afterwards.
                let mut scores = vec![0f32; BLOCK as usize];
                let mut first = 0;
                while first < m.max_doc() {
                    let count = BLOCK.min(m.max_doc() - first);
                    let out = &mut scores[..count as usize];
                    match m.spec().dtype {
                        VectorDtype::F32 => dot_f32_block(query, m.rows_f32(first, count as usize), out),
                        VectorDtype::F16 => dot_f16_block(query, m.rows_f16(first, count as usize), out),
                    }
                    for (doc, score) in (first..).zip(out.iter()) {
                        if m.has(doc) && alive.is_none_or(|a| a.is_alive(doc)) {
                            let (score, position) = match has_extras {
                                true => best_in(m.extra_rows_from(doc, &mut cursor), *score),
                                false => (*score, 0),
                            };
                            top.push(doc, score, position);
                        }
                    }
                    first += count;
                }
            }
            DocFilter::Only(docs) => {
                for &doc in docs.iter() {
                    if m.has(doc) {
                        // The filter's documents come in increasing order too.
                        let (score, position) = best_in(m.extra_rows_from(doc, &mut cursor), score_row(doc));
                        top.push(doc, score, position);
                    }
                }
            }
        }
        top.into_sorted()
    }
}

/// Merges per-segment results (each tagged with its segment ordinal) into a global top `k`.
pub fn merge_top_k(mut hits: Vec<(u32, ScoredDoc)>, k: usize) -> Vec<(u32, ScoredDoc)> {
    hits.sort_by(|a, b| {
        b.1.score
            .total_cmp(&a.1.score)
            .then(a.0.cmp(&b.0))
            .then(a.1.doc.cmp(&b.1.doc))
    });
    hits.truncate(k);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_best_in_order() {
        let mut t = TopK::new(3);
        for (d, s) in [(0, 0.1), (1, 0.9), (2, 0.5), (3, 0.9), (4, -1.0), (5, 0.7)] {
            t.push(d, s, 0);
        }
        let got: Vec<_> = t.into_sorted().iter().map(|s| s.doc).collect();
        assert_eq!(got, vec![1, 3, 5]);
    }
}
