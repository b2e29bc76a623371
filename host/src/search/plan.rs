//! A search request resolved against one collection into everything the stages need, and
//! validated once, before any work: a request that cannot run fails here, never after retrieval.
//! Values are layered request > plugin > collection defaults in this file and nowhere else (the
//! plugin's part, its rerank depth and instruction, is known only once it has been called, so
//! [`RerankPlan`] keeps the other two layers and resolves the third when asked).

use std::path::Path;

use tantivy::query::Query;

use super::facets::{self, FacetSpec, Refinement};
use super::filter::{parse_filter, parse_text};
use super::fusion::FusionMethod;
use super::grouping::{self, GroupPlan};
use super::ranking::MAX_RERANK_WINDOW;
use super::request::{MAX_CANDIDATES, MAX_TOP_K};
use super::{MinScore, SearchRequest};
use crate::collection::Collection;
use crate::error::{QueryError, Result};
use crate::plugin::LoadedPlugin;
use crate::rerank::DEFAULT_INSTRUCTION;
use crate::schema::SearchDefaults;
use crate::vector::{KnnOptions, codec};

/// Everything a search does, decided.
pub(crate) struct SearchPlan<'a> {
    pub request: &'a SearchRequest,
    /// Hits to return, after skipping `offset`.
    pub top_k: usize,
    pub offset: usize,
    /// Candidates each retriever contributes (at least `offset + top_k`).
    pub candidates: usize,
    pub fusion: FusionMethod,
    pub bm25_weight: f32,
    pub vector_weight: f32,
    /// The request's filter and its facet filters, parsed and ANDed; applied to every
    /// retriever.
    pub filter: Option<Box<dyn Query>>,
    /// The request's filter alone (facet counts put the facet filters back one field at a time).
    pub user_filter: Option<Box<dyn Query>>,
    /// The facet filters, one per field.
    pub refinements: Vec<Refinement>,
    /// The facets to count.
    pub facets: Vec<FacetSpec>,
    /// Relevance floors, checked finite.
    pub min_score: MinScore,
    /// `group_by`, when asked.
    pub group: Option<GroupPlan>,
    /// The BM25 query, parsed over its fields.
    pub text: Option<TextPlan<'a>>,
    /// The kNN query: its field and where its vector comes from.
    pub vector: Option<VectorPlan<'a>>,
    pub rerank: RerankPlan<'a>,
    /// The ranking plugin and how many fused candidates it is passed.
    pub plugin: Option<PluginPlan<'a>>,
    pub explain: bool,
    /// The request time in seconds since 1970, for plugins.
    pub now: i64,
}

/// The BM25 retriever's query.
pub(crate) struct TextPlan<'a> {
    /// The query as typed (trimmed): what the reranker reads.
    pub query: &'a str,
    pub parsed: Box<dyn Query>,
    /// Set when the query had a syntax error and was read leniently: what was wrong.
    pub note: Option<String>,
}

/// The kNN retriever's query.
pub(crate) struct VectorPlan<'a> {
    pub field: &'a str,
    pub source: VectorSource<'a>,
    pub options: KnnOptions,
}

/// Where the kNN query vector comes from.
pub(crate) enum VectorSource<'a> {
    /// Given in the request, already checked against the field (dimension, finite values) and
    /// normalised for its metric.
    Given(Vec<f32>),
    /// The CLIP embedding of an image file (CLI) or of uploaded bytes (server).
    ImageFile(&'a Path),
    ImageBytes(&'a [u8]),
    /// The CLIP embedding of the text query, when the field is computed by CLIP and a model is
    /// configured (otherwise the search stays BM25).
    ClipText(&'a str),
}

impl VectorSource<'_> {
    /// How the response names the source.
    pub fn name(&self) -> &'static str {
        match self {
            VectorSource::Given(_) => "given",
            VectorSource::ImageFile(_) | VectorSource::ImageBytes(_) => "clip image",
            VectorSource::ClipText(_) => "clip text",
        }
    }
}

/// A ranking plugin for this search.
pub(crate) struct PluginPlan<'a> {
    pub plugin: &'a LoadedPlugin,
    /// Fused candidates passed to it (the runtime's limit, at least the page).
    pub max_candidates: usize,
}

/// The reranker's window and instruction: the request's, else the plugin's, else the
/// collection's default window and the model card's instruction.
pub(crate) struct RerankPlan<'a> {
    window: Option<usize>,
    default_window: usize,
    instruction: Option<&'a str>,
    /// How long the reranking waits for concurrent queries to share its forward passes.
    pub shared: crate::rerank::SharedWindow,
}

impl RerankPlan<'_> {
    /// The window, given the plugin's rerank depth (when a plugin answered).
    pub fn window(&self, plugin_depth: Option<u32>) -> usize {
        self.window
            .or(plugin_depth.map(|d| d as usize))
            .unwrap_or(self.default_window)
    }

    /// The window when no plugin runs: what the reranker alone needs read.
    pub fn window_without_plugin(&self) -> usize {
        self.window.unwrap_or(self.default_window)
    }

    /// The instruction and where it came from (`request`, `plugin` or `default`), given the
    /// plugin's (when a plugin answered).
    pub fn instruction(&self, plugin: Option<&str>) -> (String, &'static str) {
        match (self.instruction, plugin) {
            (Some(i), _) => (i.to_owned(), "request"),
            (None, Some(i)) => (i.to_owned(), "plugin"),
            (None, None) => (DEFAULT_INSTRUCTION.to_owned(), "default"),
        }
    }
}

/// A fusion weight: finite and not negative.
pub(crate) fn check_weight(name: &'static str, w: f32) -> Result<f32, QueryError> {
    if w.is_finite() && w >= 0.0 {
        Ok(w)
    } else {
        Err(QueryError::Weight { name, got: w })
    }
}

impl<'a> SearchPlan<'a> {
    /// Resolves and validates `req` on `c`, with `plugin` (already chosen by name or scenario)
    /// passed at most `max_candidates` candidates.
    pub fn new(
        c: &'a Collection,
        req: &'a SearchRequest,
        plugin: Option<&'a LoadedPlugin>,
        max_candidates: usize,
    ) -> Result<Self> {
        let defaults = &c.schema().search;
        let (top_k, candidates) = sizes(req, defaults)?;
        // Checked whether or not kNN runs: a bad value is the client's mistake either way.
        if let Some(ef) = req.ef_search
            && !(1..=crate::schema::MAX_EF).contains(&ef)
        {
            return Err(QueryError::EfSearch {
                got: ef,
                max: crate::schema::MAX_EF,
            }
            .into());
        }
        let fusion = req.fusion_method(defaults.fusion).map_err(QueryError::Fusion)?;
        let bm25_weight = check_weight("bm25_weight", req.bm25_weight.unwrap_or(defaults.bm25_weight))?;
        let vector_weight = check_weight("vector_weight", req.vector_weight.unwrap_or(defaults.vector_weight))?;

        let min_score = check_min_score(req.min_score)?;
        let user_filter = req
            .filter
            .as_deref()
            .filter(|f| !f.trim().is_empty())
            .map(|f| parse_filter(c, f))
            .transpose()?;
        let refinements = facets::refinements(c, &req.facet_filters)?;
        let filter = facets::combine(user_filter.as_deref(), &refinements, None);
        let facets = facets::resolve(c, &req.facets)?;
        let group = grouping::resolve(c, req)?;
        let text = match req.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(query) => {
                let fields = req.text_fields.as_ref().unwrap_or(&defaults.text_fields);
                let (parsed, note) = parse_text(c, query, fields)?;
                Some(TextPlan { query, parsed, note })
            }
        };
        let vector = vector_plan(c, req, text.as_ref().map(|t| t.query))?;
        if text.is_none() && vector.is_none() && filter.is_none() {
            return Err(QueryError::Empty.into());
        }
        let now = req.now.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
        let wanted = req.offset.saturating_add(top_k);
        Ok(SearchPlan {
            request: req,
            top_k,
            offset: req.offset,
            candidates,
            fusion,
            bm25_weight,
            vector_weight,
            filter,
            user_filter,
            refinements,
            facets,
            min_score,
            group,
            text,
            vector,
            rerank: RerankPlan {
                window: req.rerank_window,
                default_window: defaults.rerank_window,
                instruction: req.instruction.as_deref().filter(|i| !i.trim().is_empty()),
                shared: c.schema().models.rerank_window(),
            },
            plugin: plugin.map(|plugin| PluginPlan {
                plugin,
                max_candidates: max_candidates.max(wanted),
            }),
            explain: req.explain,
            now,
        })
    }
}

/// Floors must be finite numbers (any sign: BM25 is positive, a similarity may be negative).
fn check_min_score(m: MinScore) -> Result<MinScore, QueryError> {
    for (which, v) in [("bm25", m.bm25), ("vector", m.vector), ("final", m.final_score)] {
        if let Some(got) = v
            && !got.is_finite()
        {
            return Err(QueryError::MinScore { which, got });
        }
    }
    Ok(m)
}

/// The page size and the candidates each retriever contributes, within their bounds; the
/// rerank window within its bound.
fn sizes(req: &SearchRequest, defaults: &SearchDefaults) -> Result<(usize, usize), QueryError> {
    let top_k = req.top_k.unwrap_or(defaults.top_k);
    if top_k == 0 || top_k > MAX_TOP_K {
        return Err(QueryError::TopK {
            got: top_k,
            max: MAX_TOP_K,
        });
    }
    let wanted = req.offset.saturating_add(top_k);
    let candidates = req.candidates.unwrap_or(defaults.candidates).max(wanted);
    if candidates > MAX_CANDIDATES {
        return Err(QueryError::Candidates {
            got: candidates,
            max: MAX_CANDIDATES,
        });
    }
    if let Some(w) = req.rerank_window
        && w > MAX_RERANK_WINDOW
    {
        return Err(QueryError::RerankWindow {
            got: w,
            max: MAX_RERANK_WINDOW,
        });
    }
    Ok((top_k, candidates))
}

/// The kNN query of a request, if it has one: a given vector, a query image, or the text
/// embedded by CLIP when the field is computed by CLIP.
fn vector_plan<'a>(c: &'a Collection, req: &'a SearchRequest, text: Option<&'a str>) -> Result<Option<VectorPlan<'a>>> {
    let source = match (&req.vector, &req.image, &req.image_bytes) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(QueryError::Conflicting("give a query vector or a query image, not both").into());
        }
        (None, Some(_), Some(_)) => return Err(QueryError::Conflicting("give one query image").into()),
        (Some(v), None, None) => Some(VectorSource::Given(v.clone())),
        (None, Some(path), None) => Some(VectorSource::ImageFile(path)),
        (None, None, Some(bytes)) => Some(VectorSource::ImageBytes(bytes)),
        (None, None, None) => None,
    };
    let field = req
        .vector_field
        .as_deref()
        .or(c.schema().search.vector_field.as_deref());
    let source = match source {
        Some(s) => s,
        None => match (text, field) {
            (Some(t), Some(f)) if c.schema().computed_field(f).is_some() => VectorSource::ClipText(t),
            _ => return Ok(None),
        },
    };
    let field = field.ok_or_else(|| QueryError::NoVectorField(c.name().to_owned()))?;
    let spec = c.schema().vector_field(field)?;
    let options = KnnOptions {
        ef_search: req.ef_search,
        exact: req.exact,
    };
    let source = match source {
        VectorSource::Given(v) => {
            VectorSource::Given(
                codec::prepare(&v, &spec).map_err(|message| crate::error::Error::Vector {
                    field: field.to_owned(),
                    message,
                })?,
            )
        }
        other => other,
    };
    Ok(Some(VectorPlan { field, source, options }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(window: Option<usize>, instruction: Option<&str>) -> RerankPlan<'_> {
        RerankPlan {
            window,
            default_window: 50,
            instruction,
            shared: crate::rerank::SharedWindow::ALONE,
        }
    }

    /// The request wins, then the plugin, then the collection's default (window) or the model
    /// card's (instruction).
    #[test]
    fn rerank_settings_layer_request_over_plugin_over_defaults() {
        assert_eq!(plan(Some(7), None).window(Some(20)), 7);
        assert_eq!(plan(None, None).window(Some(20)), 20);
        assert_eq!(plan(None, None).window(None), 50);
        assert_eq!(plan(Some(0), None).window(Some(20)), 0, "0 turns reranking off");
        assert_eq!(plan(None, None).window_without_plugin(), 50);
        assert_eq!(plan(Some(5), None).window_without_plugin(), 5);
        assert_eq!(
            plan(None, Some("mine")).instruction(Some("plugin's")),
            ("mine".to_owned(), "request")
        );
        assert_eq!(
            plan(None, None).instruction(Some("plugin's")),
            ("plugin's".to_owned(), "plugin")
        );
        assert_eq!(
            plan(None, None).instruction(None),
            (DEFAULT_INSTRUCTION.to_owned(), "default")
        );
    }

    #[test]
    fn weights_are_finite_and_not_negative() {
        assert_eq!(check_weight("w", 0.0), Ok(0.0));
        assert_eq!(check_weight("w", 2.5), Ok(2.5));
        for bad in [-0.1, f32::NAN, f32::INFINITY] {
            assert!(matches!(
                check_weight("w", bad),
                Err(QueryError::Weight { name: "w", .. })
            ));
        }
    }
}
