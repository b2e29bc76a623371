//! kNN in the shape of a tantivy collector (`tantivy::collector::Collector`): a factory,
//! [`KnnCollector`], makes one [`KnnSegmentCollector`] per segment; each finds its segment's
//! top k among the documents the filter allows, with no locks and no knowledge of the other
//! segments; [`KnnCollector::merge_fruits`] merges the per-segment lists (a pure function).
//!
//! It mirrors the trait instead of implementing it because an unfiltered search must not walk a
//! query's doc set at all: it scans the whole matrix, skipping deleted rows through the alive
//! bitset, with the block kernels. The index behind each segment is a [`SegmentVectorIndex`]:
//! the segment's graph when its field has one and it is ready, else the exact [`FlatScan`].

use serde::Serialize;
use tantivy::query::{EnableScoring, Query, Weight};
use tantivy::{DocAddress, DocId, Searcher, SegmentOrdinal, SegmentReader};

use super::hnsw::GraphSearch;
use super::{DocFilter, FlatScan, GraphState, ScoredDoc, SegmentVectorIndex, merge_top_k};
use crate::collection::Collection;
use crate::error::Result;
use crate::schema::{VectorIndex, VectorSpec};

/// The `k` nearest documents to a query vector in one vector field, under an optional filter.
pub struct KnnCollector<'a> {
    collection: &'a Collection,
    field: &'a str,
    spec: VectorSpec,
    /// Validated and normalised for the field's metric.
    query: &'a [f32],
    k: usize,
    filter: Option<Box<dyn Weight>>,
    options: KnnOptions,
}

/// The merged nearest documents with their similarities, best first.
pub type KnnHits = Vec<(DocAddress, f32)>;

/// kNN hits, each with which of its document's vectors matched (see [`ScoredDoc::position`]).
pub type MatchedHits = Vec<(DocAddress, f32, u16)>;

/// Per-request choices of how kNN runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct KnnOptions {
    /// The bottom-layer beam of graph walks (default: the field's `ef_search`).
    pub ef_search: Option<usize>,
    /// Scan every segment exactly, graphs or not.
    pub exact: bool,
}

/// How one segment answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentKnn {
    /// The segment (tantivy's short id).
    pub segment: String,
    /// Documents with a vector in it (deleted ones included).
    pub vectors: u32,
    /// `hnsw`, `flat` (every live vector scanned) or `filtered-flat` (the filter's documents
    /// scanned).
    pub index: &'static str,
    /// The beam of the graph walk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ef_search: Option<usize>,
    /// Vectors scored.
    pub scored: usize,
    /// Why the segment was scanned although its field has a graph (`exact requested`, `below
    /// exact_below`, `graph not ready`, `filter too selective`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// One segment's part of a kNN search.
pub struct KnnSegmentCollector<'a> {
    ordinal: SegmentOrdinal,
    reader: &'a SegmentReader,
    matrix: std::sync::Arc<super::SegmentMatrix>,
    graph: GraphState,
    collector: &'a KnnCollector<'a>,
}

impl<'a> KnnCollector<'a> {
    /// A kNN search of `query` (already checked with [`super::codec::prepare`]) in `field`.
    pub fn new(
        collection: &'a Collection,
        searcher: &Searcher,
        field: &'a str,
        query: &'a [f32],
        k: usize,
        filter: Option<&dyn Query>,
        options: KnnOptions,
    ) -> Result<Self> {
        let spec = collection.schema().vector_field(field)?;
        let filter = filter
            .map(|f| f.weight(EnableScoring::disabled_from_searcher(searcher)))
            .transpose()?;
        Ok(KnnCollector {
            collection,
            field,
            spec,
            query,
            k,
            filter,
            options,
        })
    }

    /// The collector of one segment.
    pub fn for_segment(
        &'a self,
        ordinal: SegmentOrdinal,
        reader: &'a SegmentReader,
    ) -> Result<KnnSegmentCollector<'a>> {
        let store = self.collection.vectors();
        let matrix = store.matrix(reader, self.field, &self.spec)?;
        let graph = if self.options.exact {
            GraphState::Small
        } else {
            store.graph(reader, self.field, &self.spec, &matrix)
        };
        Ok(KnnSegmentCollector {
            ordinal,
            reader,
            matrix,
            graph,
            collector: self,
        })
    }

    /// Merges the segments' lists into the `k` best, best first (ties: lower address first).
    pub fn merge_fruits(&self, fruits: Vec<Vec<(SegmentOrdinal, ScoredDoc)>>) -> Vec<(DocAddress, f32)> {
        self.merge_matched(fruits).into_iter().map(|(a, s, _)| (a, s)).collect()
    }

    /// As [`Self::merge_fruits`], with which of each document's vectors matched.
    fn merge_matched(&self, fruits: Vec<Vec<(SegmentOrdinal, ScoredDoc)>>) -> MatchedHits {
        merge_top_k(fruits.into_iter().flatten().collect(), self.k)
            .into_iter()
            .map(|(segment, s)| (DocAddress::new(segment, s.doc), s.score, s.position))
            .collect()
    }

    /// Runs the search over every segment of the snapshot; with how each segment answered.
    pub fn search(&self, searcher: &Searcher) -> Result<(KnnHits, Vec<SegmentKnn>)> {
        let (hits, reports) = self.search_matched(searcher)?;
        Ok((hits.into_iter().map(|(a, s, _)| (a, s)).collect(), reports))
    }

    /// As [`Self::search`], each hit with the position of its closest vector (0 for a
    /// document's first; an image's position in its document's image list).
    pub fn search_matched(&self, searcher: &Searcher) -> Result<(MatchedHits, Vec<SegmentKnn>)> {
        let mut fruits = Vec::with_capacity(searcher.segment_readers().len());
        let mut reports = Vec::with_capacity(fruits.capacity());
        for (ordinal, reader) in searcher.segment_readers().iter().enumerate() {
            let (fruit, report) = self.for_segment(ordinal as SegmentOrdinal, reader)?.harvest()?;
            fruits.push(fruit);
            reports.push(report);
        }
        Ok((self.merge_matched(fruits), reports))
    }
}

impl KnnSegmentCollector<'_> {
    /// The segment's top k among the live documents the filter allows.
    pub fn harvest(self) -> Result<(Vec<(SegmentOrdinal, ScoredDoc)>, SegmentKnn)> {
        let c = self.collector;
        let (query, k) = (c.query, c.k);
        let alive = self.reader.alive_bitset();
        let allowed = match c.filter.as_deref() {
            None => None,
            Some(weight) => {
                let mut allowed: Vec<DocId> = Vec::new();
                weight.for_each_no_score(self.reader, &mut |docs| allowed.extend_from_slice(docs))?;
                if let Some(alive) = alive {
                    allowed.retain(|d| alive.is_alive(*d));
                }
                Some(allowed)
            }
        };
        let filter = match &allowed {
            None => DocFilter::All(alive),
            Some(docs) => DocFilter::Only(docs),
        };
        let answer = match (&self.graph, c.spec.index) {
            (GraphState::Ready(graph), VectorIndex::Hnsw(params)) => GraphSearch {
                graph,
                matrix: &self.matrix,
                ef: c.options.ef_search.unwrap_or(params.ef_search),
                exact_below: params.exact_below,
            }
            .search(query, k, &filter),
            (state, index) => {
                let mut answer = FlatScan(&self.matrix).search(query, k, &filter);
                answer.reason = match (state, index) {
                    (_, VectorIndex::Flat) => None,
                    (GraphState::Pending, _) => Some("graph not ready"),
                    (GraphState::Failed, _) => Some("graph build failed"),
                    _ if c.options.exact => Some("exact requested"),
                    _ => Some("below exact_below"),
                };
                answer
            }
        };
        let report = SegmentKnn {
            segment: self.reader.segment_id().short_uuid_string(),
            vectors: self.matrix.present() + self.matrix.extras(),
            index: answer.index,
            ef_search: answer.ef_search,
            scored: answer.scored,
            reason: answer.reason,
        };
        let found = answer.hits;
        Ok((found.into_iter().map(|s| (self.ordinal, s)).collect(), report))
    }
}
