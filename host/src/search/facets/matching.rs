//! The matching set of a search (see the module doc of `facets`), per segment.

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::{AllQuery, ConstScoreQuery, Query};
use tantivy::{DocAddress, DocId, Score, Searcher, SegmentOrdinal, SegmentReader};

use super::{FacetCounts, combine, count};
use crate::collection::Collection;
use crate::error::Result;
use crate::search::plan::SearchPlan;

/// A set of documents: per segment (by ordinal), sorted distinct doc ids.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct DocSets {
    pub segments: Vec<Vec<DocId>>,
}

impl DocSets {
    /// Documents in the set.
    pub fn len(&self) -> u64 {
        self.segments.iter().map(|s| s.len() as u64).sum()
    }

    fn add(&mut self, segment: SegmentOrdinal, docs: impl IntoIterator<Item = DocId>) {
        let s = segment as usize;
        if self.segments.len() <= s {
            self.segments.resize_with(s + 1, Vec::new);
        }
        self.segments[s].extend(docs);
    }

    fn normalize(&mut self) {
        for s in &mut self.segments {
            // A text query's matches come in order; only kNN candidates added after need sorting.
            if !s.is_sorted() {
                s.sort_unstable();
            }
            s.dedup();
        }
    }
}

/// The documents a search matches under `filter`: the text query's matches (scoring at least
/// `min_bm25` when set), the kNN candidates given, or, with neither, what the filter passes.
pub(crate) fn matching_docs(
    searcher: &Searcher,
    text: Option<&dyn Query>,
    min_bm25: Option<f32>,
    filter: Option<&dyn Query>,
    vector: Option<&[DocAddress]>,
) -> Result<DocSets> {
    let mut set = DocSets::default();
    if let Some(text) = text {
        let query = crate::search::retrieve::with_filter(text.box_clone(), filter);
        for (segment, docs) in searcher.search(&query, &DocIds { min_score: min_bm25 })? {
            set.add(segment, docs);
        }
    }
    if let Some(hits) = vector {
        for a in hits {
            set.add(a.segment_ord, [a.doc_id]);
        }
    }
    if text.is_none() && vector.is_none() {
        let all: Box<dyn Query> = Box::new(AllQuery);
        let query = ConstScoreQuery::new(filter.map_or(all, |f| f.box_clone()), 0.0);
        for (segment, docs) in searcher.search(&query, &DocIds { min_score: None })? {
            set.add(segment, docs);
        }
    }
    set.normalize();
    Ok(set)
}

/// Collects the ids of matching documents (scoring at least `min_score` when set).
struct DocIds {
    min_score: Option<f32>,
}

struct SegmentDocIds {
    segment: SegmentOrdinal,
    min_score: Option<f32>,
    docs: Vec<DocId>,
}

impl Collector for DocIds {
    type Fruit = Vec<(SegmentOrdinal, Vec<DocId>)>;
    type Child = SegmentDocIds;

    fn for_segment(&self, segment: SegmentOrdinal, _reader: &SegmentReader) -> tantivy::Result<SegmentDocIds> {
        Ok(SegmentDocIds {
            segment,
            min_score: self.min_score,
            docs: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        self.min_score.is_some()
    }

    fn merge_fruits(&self, fruits: Vec<(SegmentOrdinal, Vec<DocId>)>) -> tantivy::Result<Self::Fruit> {
        Ok(fruits)
    }
}

impl SegmentCollector for SegmentDocIds {
    type Fruit = (SegmentOrdinal, Vec<DocId>);

    fn collect(&mut self, doc: DocId, score: Score) {
        if self.min_score.is_none_or(|m| score >= m) {
            self.docs.push(doc);
        }
    }

    fn harvest(self) -> Self::Fruit {
        (self.segment, self.docs)
    }
}

/// Every facet's counts, and the size of the matching set under every filter. `vector` is the
/// kNN query and the candidates retrieval found. A field with facet filters is counted over the
/// set found without its own (the kNN candidates searched again under that looser filter), once
/// per field however many of its facets are asked.
pub(crate) fn counts(
    c: &Collection,
    searcher: &Searcher,
    plan: &SearchPlan<'_>,
    vector: Option<&(Vec<f32>, Vec<DocAddress>)>,
) -> Result<(Vec<FacetCounts>, u64)> {
    let text = plan.text.as_ref().map(|t| &*t.parsed);
    let all = matching_docs(
        searcher,
        text,
        plan.min_score.bm25,
        plan.filter.as_deref(),
        vector.map(|(_, found)| found.as_slice()),
    )?;
    let mut looser: std::collections::HashMap<&str, DocSets> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(plan.facets.len());
    for spec in &plan.facets {
        let Some(own) = plan.refinements.iter().find(|r| r.field == spec.field) else {
            out.push(count(searcher, spec, &all, &[], false)?);
            continue;
        };
        if !looser.contains_key(own.field.as_str()) {
            let filter = combine(plan.user_filter.as_deref(), &plan.refinements, Some(&own.field));
            let hits = match vector {
                None => None,
                Some((query, _)) => {
                    let (mut items, _, _) = crate::search::retrieve::knn(c, searcher, plan, query, filter.as_deref())?;
                    crate::search::retrieve::cut(&mut items, plan.min_score.vector);
                    Some(items.into_iter().map(|(a, _)| a).collect::<Vec<_>>())
                }
            };
            let set = matching_docs(searcher, text, plan.min_score.bm25, filter.as_deref(), hits.as_deref())?;
            looser.insert(&own.field, set);
        }
        out.push(count(searcher, spec, &looser[own.field.as_str()], &own.values, true)?);
    }
    Ok((out, all.len()))
}
