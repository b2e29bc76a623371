//! The first stage: BM25 and kNN under one filter (or the filter alone), fused into one list of
//! [`Candidate`] records, best first.

use std::borrow::Cow;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query};
use tantivy::{DocAddress, Searcher};

use super::candidate::Candidate;
use super::fusion::{FusionMethod, Normalization, RankedList, fuse};
use super::plan::{SearchPlan, VectorSource};
use super::response::VectorSearchReport;
use crate::collection::Collection;
use crate::error::{Error, QueryError, Result};
use crate::vector::{KnnCollector, codec};

pub(crate) const BM25: &str = "bm25";
pub(crate) const VECTOR: &str = "vector";
pub(crate) const FILTER: &str = "filter";

/// How the retrievers' lists became one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Combination {
    /// One list ran; its scores are passed through.
    Single(&'static str),
    /// Two lists, fused.
    Fused(FusionMethod),
}

impl Combination {
    /// How the response names it: `rrf(k=60)`, `linear(minmax)`, `none (bm25 only)`.
    pub fn describe(&self) -> String {
        match self {
            Combination::Single(FILTER) => "none (filter only)".to_owned(),
            Combination::Single(list) => format!("none ({list} only)"),
            Combination::Fused(method) => method.describe(),
        }
    }
}

/// What retrieval found.
pub(crate) struct Retrieved {
    /// Every fused candidate, best first.
    pub candidates: Vec<Candidate>,
    /// The lists that ran, in order.
    pub lists: Vec<&'static str>,
    pub combination: Combination,
    /// Where the kNN query vector came from, when kNN ran.
    pub query_vector: Option<&'static str>,
    /// How each segment answered the kNN query, when it ran.
    pub knn: Option<VectorSearchReport>,
    /// The kNN query vector and the candidates it found (above the floor), when kNN ran: what
    /// facet counting needs to find them again under another filter.
    pub vector: Option<(Vec<f32>, Vec<DocAddress>)>,
    /// Candidates each retriever's floor cut.
    pub cut_bm25: usize,
    pub cut_vector: usize,
}

/// Runs the retrievers of `plan` and fuses their lists.
pub(crate) fn retrieve(c: &Collection, searcher: &Searcher, plan: &SearchPlan<'_>) -> Result<Retrieved> {
    let mut lists = Vec::new();
    let (mut cut_bm25, mut cut_vector) = (0, 0);
    if let Some(text) = &plan.text {
        let query = with_filter(text.parsed.box_clone(), plan.filter.as_deref());
        let top = searcher.search(&query, &TopDocs::with_limit(plan.candidates).order_by_score())?;
        let mut items: Vec<(DocAddress, f32)> = top.into_iter().map(|(s, a)| (a, s)).collect();
        cut_bm25 = cut(&mut items, plan.min_score.bm25);
        lists.push(RankedList {
            name: BM25.into(),
            weight: plan.bm25_weight,
            items,
        });
    }
    let mut query_vector = None;
    let mut knn_report = None;
    let mut vector_found = None;
    let mut matched = Matched::new();
    if let Some(vector) = &plan.vector
        && let Some(query) = query_vector_of(c, &vector.source, vector.field)?
    {
        let (mut items, found_matched, segments) = knn(c, searcher, plan, &query, plan.filter.as_deref())?;
        matched = found_matched;
        cut_vector = cut(&mut items, plan.min_score.vector);
        vector_found = Some((query.into_owned(), items.iter().map(|(a, _)| *a).collect()));
        lists.push(RankedList {
            name: VECTOR.into(),
            weight: plan.vector_weight,
            items,
        });
        knn_report = Some(VectorSearchReport {
            field: vector.field.to_owned(),
            segments,
        });
        query_vector = Some(vector.source.name());
    }
    let (fused, combination) = match lists.len() {
        0 => {
            // No text and no vector: what the filter lets through, in index order.
            let filter = plan.filter.as_deref().ok_or(QueryError::Empty)?;
            let q = ConstScoreQuery::new(filter.box_clone(), 0.0);
            let top = searcher.search(&q, &TopDocs::with_limit(plan.candidates).order_by_score())?;
            let list = RankedList {
                name: FILTER.into(),
                weight: 1.0,
                items: top.into_iter().map(|(s, a)| (a, s)).collect(),
            };
            (passthrough(list), Combination::Single(FILTER))
        }
        1 => {
            let list = lists.pop().expect("one list");
            let name = if list.name == BM25 { BM25 } else { VECTOR };
            (passthrough(list), Combination::Single(name))
        }
        _ => (fuse(&plan.fusion, &lists), Combination::Fused(plan.fusion)),
    };
    let names = match combination {
        Combination::Single(name) => vec![name],
        Combination::Fused(_) => vec![BM25, VECTOR],
    };
    Ok(Retrieved {
        candidates: fused
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                let mut cand = Candidate::new(f, i + 1);
                cand.matched = matched.get(&cand.address).copied();
                cand
            })
            .collect(),
        lists: names,
        combination,
        query_vector,
        knn: knn_report,
        vector: vector_found,
        cut_bm25,
        cut_vector,
    })
}

/// Which vector of a kNN candidate matched, where it is not the document's first.
pub(crate) type Matched = std::collections::HashMap<DocAddress, u16>;

/// A kNN list, which vectors matched, and how each segment answered.
pub(crate) type KnnList = (Vec<(DocAddress, f32)>, Matched, Vec<crate::vector::SegmentKnn>);

/// The kNN candidates of `query` under `filter`, with which of their vectors matched and how
/// each segment answered.
pub(crate) fn knn(
    c: &Collection,
    searcher: &Searcher,
    plan: &SearchPlan<'_>,
    query: &[f32],
    filter: Option<&dyn Query>,
) -> Result<KnnList> {
    let vector = plan.vector.as_ref().expect("a kNN plan");
    let knn = KnnCollector::new(
        c,
        searcher,
        vector.field,
        query,
        plan.candidates,
        filter,
        vector.options,
    )?;
    let (hits, segments) = knn.search_matched(searcher)?;
    let items = hits.iter().map(|(a, s, _)| (*a, *s)).collect();
    let matched = hits
        .into_iter()
        .filter(|(_, _, p)| *p > 0)
        .map(|(a, _, p)| (a, p))
        .collect();
    Ok((items, matched, segments))
}

/// Drops the items of a best-first list under `floor`; how many it dropped.
pub(crate) fn cut(items: &mut Vec<(DocAddress, f32)>, floor: Option<f32>) -> usize {
    let before = items.len();
    if let Some(floor) = floor {
        items.retain(|(_, s)| *s >= floor);
    }
    before - items.len()
}

/// The kNN query vector, prepared for the field: given, or embedded by CLIP. `None` when the
/// text would be embedded but no CLIP model is configured (the search stays BM25).
/// A given vector is borrowed from the plan, which already prepared it.
fn query_vector_of<'p>(c: &Collection, source: &'p VectorSource<'_>, field: &str) -> Result<Option<Cow<'p, [f32]>>> {
    let embedded = match source {
        VectorSource::Given(v) => return Ok(Some(Cow::Borrowed(v))),
        VectorSource::ClipText(text) => match c.clip()? {
            Some(clip) => clip.embed_texts(&[text])?,
            None => return Ok(None),
        },
        VectorSource::ImageFile(_) | VectorSource::ImageBytes(_) => {
            let clip = c.clip()?.ok_or(QueryError::NoClipModel)?;
            let max_pixels = c.schema().ingest.max_image_pixels;
            let image = match source {
                VectorSource::ImageFile(path) => crate::image_file::decode(path, max_pixels),
                VectorSource::ImageBytes(bytes) => {
                    crate::image_file::decode_bytes(bytes, "the query image", max_pixels)
                }
                _ => unreachable!("an image source"),
            }
            .map_err(QueryError::Image)?;
            clip.embed_images(std::slice::from_ref(&image))?
        }
    };
    let Some(v) = embedded.into_iter().next() else {
        return Ok(None);
    };
    let spec = c.schema().vector_field(field)?;
    codec::prepare(&v, &spec)
        .map(|v| Some(Cow::Owned(v)))
        .map_err(|message| Error::Vector {
            field: field.to_owned(),
            message,
        })
}

/// Adds a filter to a scored query without changing its scores.
pub(crate) fn with_filter(query: Box<dyn Query>, filter: Option<&dyn Query>) -> Box<dyn Query> {
    match filter {
        None => query,
        Some(f) => Box::new(BooleanQuery::new(vec![
            (Occur::Must, query),
            (Occur::Must, Box::new(ConstScoreQuery::new(f.box_clone(), 0.0))),
        ])),
    }
}

/// A single list keeps its own scores.
fn passthrough(list: RankedList<DocAddress>) -> Vec<super::Fused<DocAddress>> {
    fuse(
        &FusionMethod::Linear {
            normalization: Normalization::None,
        },
        &[list],
    )
}
