//! kNN in the shape of a tantivy collector (`tantivy::collector::Collector`): a factory,
//! [`KnnCollector`], makes one [`KnnSegmentCollector`] per segment; each finds its segment's
//! top k among the documents the filter allows, with no locks and no knowledge of the other
//! segments; [`KnnCollector::merge_fruits`] merges the per-segment lists (a pure function).
//!
//! It mirrors the trait instead of implementing it because an unfiltered search must not walk a
//! query's doc set at all: it scans the whole matrix, skipping deleted rows through the alive
//! bitset, with the block kernels. The index behind each segment is a [`SegmentVectorIndex`]
//! (the exact [`FlatScan`] today), so other index kinds plug in here.

use tantivy::query::{EnableScoring, Query, Weight};
use tantivy::{DocAddress, DocId, Searcher, SegmentOrdinal, SegmentReader};

use super::{DocFilter, FlatScan, ScoredDoc, SegmentVectorIndex, merge_top_k};
use crate::collection::Collection;
use crate::error::Result;
use crate::schema::VectorSpec;

/// The `k` nearest documents to a query vector in one vector field, under an optional filter.
pub struct KnnCollector<'a> {
    collection: &'a Collection,
    field: &'a str,
    spec: VectorSpec,
    /// Validated and normalised for the field's metric.
    query: &'a [f32],
    k: usize,
    filter: Option<Box<dyn Weight>>,
}

/// One segment's part of a kNN search.
pub struct KnnSegmentCollector<'a> {
    ordinal: SegmentOrdinal,
    reader: &'a SegmentReader,
    matrix: std::sync::Arc<super::SegmentMatrix>,
    query: &'a [f32],
    k: usize,
    filter: Option<&'a dyn Weight>,
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
        })
    }

    /// The collector of one segment.
    pub fn for_segment(
        &'a self,
        ordinal: SegmentOrdinal,
        reader: &'a SegmentReader,
    ) -> Result<KnnSegmentCollector<'a>> {
        Ok(KnnSegmentCollector {
            ordinal,
            reader,
            matrix: self.collection.vectors().matrix(reader, self.field, &self.spec)?,
            query: self.query,
            k: self.k,
            filter: self.filter.as_deref(),
        })
    }

    /// Merges the segments' lists into the `k` best, best first (ties: lower address first).
    pub fn merge_fruits(&self, fruits: Vec<Vec<(SegmentOrdinal, ScoredDoc)>>) -> Vec<(DocAddress, f32)> {
        merge_top_k(fruits.into_iter().flatten().collect(), self.k)
            .into_iter()
            .map(|(segment, s)| (DocAddress::new(segment, s.doc), s.score))
            .collect()
    }

    /// Runs the search over every segment of the snapshot.
    pub fn search(&self, searcher: &Searcher) -> Result<Vec<(DocAddress, f32)>> {
        let mut fruits = Vec::with_capacity(searcher.segment_readers().len());
        for (ordinal, reader) in searcher.segment_readers().iter().enumerate() {
            fruits.push(self.for_segment(ordinal as SegmentOrdinal, reader)?.harvest()?);
        }
        Ok(self.merge_fruits(fruits))
    }
}

impl KnnSegmentCollector<'_> {
    /// The segment's top k among the live documents the filter allows.
    pub fn harvest(self) -> Result<Vec<(SegmentOrdinal, ScoredDoc)>> {
        let index = FlatScan(&self.matrix);
        let found = match self.filter {
            None => index.search(self.query, self.k, &DocFilter::All(self.reader.alive_bitset())),
            Some(weight) => {
                let mut allowed: Vec<DocId> = Vec::new();
                weight.for_each_no_score(self.reader, &mut |docs| allowed.extend_from_slice(docs))?;
                if let Some(alive) = self.reader.alive_bitset() {
                    allowed.retain(|d| alive.is_alive(*d));
                }
                index.search(self.query, self.k, &DocFilter::Only(&allowed))
            }
        };
        Ok(found.into_iter().map(|s| (self.ordinal, s)).collect())
    }
}
