//! Hybrid search as one readable function: filter, BM25, kNN, fusion, page, explain.

use std::time::Instant;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, ConstScoreQuery, EnableScoring, Occur, Query};
use tantivy::{DocAddress, DocId, Searcher, TantivyDocument};

use super::filter::{parse_filter, parse_text};
use super::fusion::{Fused, FusionMethod, RankedList, fuse};
use super::ranking::{self, RerankScore};
use super::request::{MAX_CANDIDATES, MAX_TOP_K};
use super::{Explanation, FusionExplanation, Hit, SearchRequest, SearchResponse, StageScore};
use crate::collection::Collection;
use crate::document::stored_to_json;
use crate::error::{Error, Result};
use crate::plugin::PluginScore;
use crate::plugin::{LoadedPlugin, PluginRegistry};
use crate::vector::{DocFilter, FlatScan, ScoredDoc, SegmentVectorIndex, codec, merge_top_k};

const BM25: &str = "bm25";
const VECTOR: &str = "vector";

/// Runs a search on a collection's current snapshot, without ranking plugins.
pub fn search(c: &Collection, req: &SearchRequest) -> Result<SearchResponse> {
    search_with(c, req, None)
}

/// Runs a search, applying the ranking plugin the request asks for (by name or scenario).
pub fn search_with(c: &Collection, req: &SearchRequest, plugins: Option<&PluginRegistry>) -> Result<SearchResponse> {
    let plugin = match plugins {
        Some(registry) => registry.resolve(req.plugin.as_deref(), req.scenario.as_deref())?,
        None if req.plugin.is_some() || req.scenario.is_some() => {
            return Err(Error::Query("ranking plugins are not available to this search".into()));
        }
        None => None,
    };
    let max_candidates = plugins.map_or(0, |r| r.runtime().limits().max_candidates);
    search_with_plugin(c, req, plugin.as_deref(), max_candidates)
}

/// Runs a search with a given plugin version (a live one, or a staged candidate in a shadow
/// comparison), passing it at most `max_candidates` candidates (at least the page).
pub fn search_with_plugin(
    c: &Collection,
    req: &SearchRequest,
    plugin: Option<&LoadedPlugin>,
    max_candidates: usize,
) -> Result<SearchResponse> {
    let started = Instant::now();
    let defaults = &c.schema().search;
    let top_k = req.top_k.unwrap_or(defaults.top_k);
    if top_k == 0 || top_k > MAX_TOP_K {
        return Err(Error::Query(format!(
            "top_k must be between 1 and {MAX_TOP_K}, got {top_k}"
        )));
    }
    let wanted = req.offset + top_k;
    let candidates = req.candidates.unwrap_or(defaults.candidates).max(wanted);
    if candidates > MAX_CANDIDATES {
        return Err(Error::Query(format!(
            "offset + top_k and candidates must stay within {MAX_CANDIDATES}, got {candidates}"
        )));
    }
    let fusion = req.fusion_method(defaults.fusion).map_err(Error::Query)?;
    let weight = |w: Option<f32>, d: f32, what: &str| match w.unwrap_or(d) {
        w if w.is_finite() && w >= 0.0 => Ok(w),
        w => Err(Error::Query(format!("{what} must be a non-negative number, got {w}"))),
    };
    let bm25_weight = weight(req.bm25_weight, defaults.bm25_weight, "bm25_weight")?;
    let vector_weight = weight(req.vector_weight, defaults.vector_weight, "vector_weight")?;

    let searcher = c.searcher();
    let filter = req
        .filter
        .as_deref()
        .filter(|f| !f.trim().is_empty())
        .map(|f| parse_filter(c, f))
        .transpose()?;
    let text = req.text.as_deref().filter(|t| !t.trim().is_empty());

    let mut lists = Vec::new();
    if let Some(text) = text {
        let fields = req.text_fields.as_ref().unwrap_or(&defaults.text_fields);
        let query = parse_text(c, text, fields)?;
        let query = with_filter(query, filter.as_deref());
        let top = searcher.search(&query, &TopDocs::with_limit(candidates).order_by_score())?;
        lists.push(RankedList {
            name: BM25.into(),
            weight: bm25_weight,
            items: top.into_iter().map(|(s, a)| (a, s)).collect(),
        });
    }
    let (query_vector, vector_origin) = query_vector(c, req, text)?;
    if let Some(vector) = &query_vector {
        let field = req
            .vector_field
            .as_deref()
            .or(defaults.vector_field.as_deref())
            .ok_or_else(|| Error::Query(format!("collection `{}` has no vector field", c.name())))?;
        let items = knn(c, &searcher, field, vector, candidates, filter.as_deref())?;
        lists.push(RankedList {
            name: VECTOR.into(),
            weight: vector_weight,
            items,
        });
    }

    let (fused, fusion_name, retrievers) = match lists.len() {
        0 => {
            // No text and no vector: list what the filter lets through, in index order.
            let Some(filter) = filter else {
                return Err(Error::Query("give a text query, a query vector, or a filter".into()));
            };
            let q = ConstScoreQuery::new(filter, 0.0);
            let top = searcher.search(&q, &TopDocs::with_limit(candidates).order_by_score())?;
            let list = RankedList {
                name: "filter".into(),
                weight: 1.0,
                items: top.into_iter().map(|(s, a)| (a, s)).collect(),
            };
            (
                passthrough(list),
                "none (filter only)".to_string(),
                vec!["filter".to_string()],
            )
        }
        1 => {
            let list = lists.pop().expect("one list");
            let name = list.name.clone();
            (passthrough(list), format!("none ({name} only)"), vec![name])
        }
        _ => {
            let names = lists.iter().map(|l| l.name.clone()).collect();
            (fuse(&fusion, &lists), fusion.describe(), names)
        }
    };

    let total = fused.len();
    let ranked = ranking::rank(
        c,
        &searcher,
        req,
        fused,
        plugin.map(|p| (p, max_candidates.max(wanted))),
    )?;
    let mut hits = Vec::with_capacity(top_k);
    for f in ranked.fused.into_iter().skip(req.offset).take(top_k) {
        let stages = LaterStages {
            plugin: ranked.plugin_scores.get(&f.key).copied(),
            rerank: ranked.rerank_scores.get(&f.key).cloned(),
        };
        hits.push(hit(c, &searcher, f, req.explain, &fusion, &fusion_name, stages)?);
    }
    Ok(SearchResponse {
        hits,
        candidates: total,
        retrievers,
        fusion: fusion_name,
        query_vector: vector_origin.map(str::to_owned),
        ranking: ranked.plugin,
        rerank: ranked.rerank,
        took_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// The kNN query vector: given, or the CLIP embedding of the query image, or of the query text
/// when the vector field is computed by CLIP and a model is configured.
fn query_vector(
    c: &Collection,
    req: &SearchRequest,
    text: Option<&str>,
) -> Result<(Option<Vec<f32>>, Option<&'static str>)> {
    let has_image = req.image.is_some() || req.image_bytes.is_some();
    if let Some(v) = &req.vector {
        if has_image {
            return Err(Error::Query("give a query vector or a query image, not both".into()));
        }
        return Ok((Some(v.clone()), Some("given")));
    }
    if has_image {
        if req.image.is_some() && req.image_bytes.is_some() {
            return Err(Error::Query("give one query image".into()));
        }
        let clip = c.clip()?.ok_or_else(|| {
            Error::Query(format!(
                "an image query needs a CLIP model: set [models] clip in the collection's schema or {}",
                crate::collection::CLIP_MODEL_ENV
            ))
        })?;
        let max_pixels = c.schema().ingest.max_image_pixels;
        let image = match (&req.image, &req.image_bytes) {
            (Some(path), _) => crate::image_file::decode(path, max_pixels),
            (_, Some(bytes)) => crate::image_file::decode_bytes(bytes, "the query image", max_pixels),
            _ => unreachable!("has_image"),
        }
        .map_err(Error::Query)?;
        let v = clip.embed_images(std::slice::from_ref(&image))?;
        return Ok((v.into_iter().next(), Some("clip image")));
    }
    let field = req
        .vector_field
        .as_deref()
        .or(c.schema().search.vector_field.as_deref());
    let computed = field.is_some_and(|f| c.schema().computed_field(f).is_some());
    if let (Some(text), true) = (text, computed)
        && let Some(clip) = c.clip()?
    {
        let v = clip.embed_texts(&[text])?;
        return Ok((v.into_iter().next(), Some("clip text")));
    }
    Ok((None, None))
}

/// Adds a filter to a scored query without changing its scores.
fn with_filter(query: Box<dyn Query>, filter: Option<&dyn Query>) -> Box<dyn Query> {
    match filter {
        None => query,
        Some(f) => Box::new(BooleanQuery::new(vec![
            (Occur::Must, query),
            (Occur::Must, Box::new(ConstScoreQuery::new(f.box_clone(), 0.0))),
        ])),
    }
}

/// Exact kNN per segment, under the filter, merged into one list.
pub(crate) fn knn(
    c: &Collection,
    searcher: &Searcher,
    field: &str,
    vector: &[f32],
    k: usize,
    filter: Option<&dyn Query>,
) -> Result<Vec<(DocAddress, f32)>> {
    let spec = c.schema().vector_field(field)?;
    let query = codec::prepare(vector, &spec).map_err(|message| Error::Vector {
        field: field.to_owned(),
        message,
    })?;
    let weight = filter
        .map(|f| f.weight(EnableScoring::disabled_from_searcher(searcher)))
        .transpose()?;
    let mut hits: Vec<(u32, ScoredDoc)> = Vec::new();
    let mut allowed: Vec<DocId> = Vec::new();
    for (ord, reader) in searcher.segment_readers().iter().enumerate() {
        let matrix = c.vectors().matrix(reader, field, &spec)?;
        let index = FlatScan(&matrix);
        let found = match &weight {
            None => index.search(&query, k, &DocFilter::All(reader.alive_bitset())),
            Some(w) => {
                allowed.clear();
                w.for_each_no_score(reader, &mut |docs| allowed.extend_from_slice(docs))?;
                if let Some(alive) = reader.alive_bitset() {
                    allowed.retain(|d| alive.is_alive(*d));
                }
                index.search(&query, k, &DocFilter::Only(&allowed))
            }
        };
        hits.extend(found.into_iter().map(|s| (ord as u32, s)));
    }
    Ok(merge_top_k(hits, k)
        .into_iter()
        .map(|(seg, s)| (DocAddress::new(seg, s.doc), s.score))
        .collect())
}

/// A single list keeps its own scores.
fn passthrough(list: RankedList<DocAddress>) -> Vec<Fused<DocAddress>> {
    fuse(
        &FusionMethod::Linear {
            normalization: super::Normalization::None,
        },
        &[list],
    )
}

/// What the stages after fusion gave a hit.
struct LaterStages {
    plugin: Option<PluginScore>,
    rerank: Option<RerankScore>,
}

fn hit(
    c: &Collection,
    searcher: &Searcher,
    f: Fused<DocAddress>,
    explain: bool,
    fusion: &FusionMethod,
    fusion_name: &str,
    later: LaterStages,
) -> Result<Hit> {
    let doc: TantivyDocument = searcher.doc(f.key)?;
    let id = c.fields().id_of(&doc);
    let explain = explain.then(|| {
        let stage = |name: &str| {
            f.contributions.iter().find(|x| x.list == name).map(|x| StageScore {
                score: x.raw,
                rank: x.rank,
            })
        };
        let retrieval = later
            .plugin
            .map(|p| p.retrieval_score)
            .or(later.rerank.as_ref().map(|r| r.retrieval_score))
            .unwrap_or(f.score);
        Explanation {
            bm25: stage(BM25),
            vector: stage(VECTOR),
            rerank: later.rerank,
            plugin: later.plugin,
            fusion: FusionExplanation {
                method: fusion_name.to_owned(),
                score: retrieval,
                formula: formula(fusion, fusion_name, &f, retrieval),
                contributions: f.contributions.clone(),
            },
        }
    });
    Ok(Hit {
        id,
        score: f.score,
        fields: stored_to_json(&doc, c.fields()),
        explain,
    })
}

fn formula(method: &FusionMethod, name: &str, f: &Fused<DocAddress>, score: f32) -> String {
    if name.starts_with("none") {
        return format!(
            "{} score passed through = {:.4}",
            f.contributions.first().map_or("", |c| c.list.as_str()),
            score
        );
    }
    let terms: Vec<String> = f
        .contributions
        .iter()
        .map(|c| match method {
            FusionMethod::Rrf { k } => format!("{}·1/({k}+{}) [{}]", c.weight, c.rank, c.list),
            FusionMethod::Linear { .. } => format!("{}·{:.4} [{} raw {:.4}]", c.weight, c.value, c.list, c.raw),
        })
        .collect();
    format!("{} = {:.4}", terms.join(" + "), score)
}
