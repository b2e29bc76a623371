//! A search as the API takes it: a flat JSON object (or the same as the `request` part of a
//! multipart form), the query image as base64 or by URL, never a server path.

use std::collections::BTreeMap;

use mira_host::SearchRequest;
use mira_host::search::facets::{FacetRange, FacetRequest};
use mira_host::search::{MinScore, Normalization};
use serde::Deserialize;

/// A search. Every field is optional; unset ones take the collection's `[search]` defaults.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    /// BM25 query in tantivy syntax (`red dress`, `title:"silk scarf"`, `dress -red`).
    pub text: Option<String>,
    /// Text fields to search (boosts come from the schema).
    pub text_fields: Option<Vec<String>>,
    /// Query vector for kNN.
    pub vector: Option<Vec<f32>>,
    /// Vector field to search.
    pub vector_field: Option<String>,
    /// Filter in tantivy syntax, applied to both retrievers: `category:dress AND price:[10 TO 50]`.
    pub filter: Option<String>,
    /// How the BM25 and vector lists are fused.
    pub fusion: Option<FusionBody>,
    /// RRF's `k` (default 60).
    pub rrf_k: Option<f32>,
    /// Linear fusion's score normalisation.
    pub normalization: Option<NormalizationBody>,
    /// Weight of the BM25 list in fusion.
    pub bm25_weight: Option<f32>,
    /// Weight of the vector list in fusion.
    pub vector_weight: Option<f32>,
    /// Hits to return.
    #[schema(minimum = 1)]
    pub top_k: Option<usize>,
    /// Hits to skip (paging).
    #[serde(default)]
    pub offset: usize,
    /// Candidates each retriever contributes before fusion.
    pub candidates: Option<usize>,
    /// The beam of graph walks on `hnsw` fields (default: the field's `ef_search`); larger is
    /// slower and finds more of the true nearest neighbours.
    #[schema(minimum = 1, maximum = 4096)]
    pub ef_search: Option<usize>,
    /// Scan every vector exactly, graphs or not (recall 1).
    #[serde(default)]
    pub exact: bool,
    /// Attach a per-stage explanation to each hit.
    #[serde(default)]
    pub explain: bool,
    /// Fused candidates the reranker reads (default: the plugin's rerank depth, else the
    /// collection's `[search] rerank_window`); 0 turns reranking off.
    pub rerank_window: Option<usize>,
    /// The reranker instruction (default: the plugin's, else the model card's).
    pub instruction: Option<String>,
    /// The scenario (`ecommerce`, `news`...): selects the ranking plugin that serves it.
    pub scenario: Option<String>,
    /// A ranking plugin by name (wins over `scenario`).
    pub plugin: Option<String>,
    /// Parameters passed to the plugin (`max_price=80`...).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The request time in seconds since 1970 (default: now); plugins use it for recency.
    pub now: Option<i64>,
    /// The query image, base64-encoded (PNG or JPEG).
    pub image_base64: Option<String>,
    /// The query image by URL, fetched only from hosts in `[server] image_url_allowlist`.
    pub image_url: Option<String>,
    /// Relevance floors: a retriever's cuts its list before fusion, `final` cuts hits by their
    /// final score.
    pub min_score: Option<MinScoreBody>,
    /// Facets to count over the matching documents (at most 20).
    #[serde(default)]
    pub facets: Vec<FacetBody>,
    /// Ticked facet values, field -> values (a bucket's `value` sent back as it is); values of
    /// one field are ORed, fields ANDed with each other and with `filter`. A field's own facet
    /// counts are taken as if its facet filters were off.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub facet_filters: BTreeMap<String, Vec<Scalar>>,
    /// A keyword field: at most `group_size` hits per value; `top_k` and `offset` count groups.
    pub group_by: Option<String>,
    /// Hits per group (default 1, at most 100).
    #[schema(minimum = 1, maximum = 100)]
    pub group_size: Option<usize>,
}

/// Relevance floors.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = MinScore)]
#[serde(deny_unknown_fields)]
pub struct MinScoreBody {
    /// Least BM25 score.
    pub bm25: Option<f32>,
    /// Least vector similarity.
    pub vector: Option<f32>,
    /// Least final score (P("yes") when reranked, the plugin's score, else the fused score).
    #[serde(rename = "final")]
    pub final_score: Option<f32>,
}

/// A facet to count.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = FacetRequest)]
#[serde(deny_unknown_fields)]
pub struct FacetBody {
    /// A keyword, facet, numeric, date or bool field.
    pub field: String,
    /// Values to return, most frequent first (default 10, at most 1000).
    pub size: Option<usize>,
    /// Facet fields: count the children of this path (default `/`).
    pub path: Option<String>,
    /// Numeric and date fields: ranges to count, `from` inclusive, `to` exclusive.
    #[serde(default)]
    pub ranges: Vec<FacetRangeBody>,
    /// Numeric fields: histogram bucket width; date fields: `hour`, `day`, `week`, `month`
    /// or `year`.
    #[schema(value_type = Option<String>)]
    pub interval: Option<Scalar>,
}

/// A range of a facet: numbers, or dates (`2024-05-01`, RFC 3339); either end may be left out.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = FacetRange)]
#[serde(deny_unknown_fields)]
pub struct FacetRangeBody {
    #[schema(value_type = Option<String>)]
    pub from: Option<Scalar>,
    #[schema(value_type = Option<String>)]
    pub to: Option<Scalar>,
}

/// A number, a string or a bool, taken as its text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Number(serde_json::Number),
    Text(String),
    Bool(bool),
}

impl Scalar {
    pub fn text(self) -> String {
        match self {
            Scalar::Number(n) => n.to_string(),
            Scalar::Text(s) => s,
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

impl utoipa::PartialSchema for Scalar {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                utoipa::openapi::schema::Type::String,
                utoipa::openapi::schema::Type::Number,
                utoipa::openapi::schema::Type::Boolean,
            ]))
            .into()
    }
}

impl utoipa::ToSchema for Scalar {}

impl From<FacetBody> for FacetRequest {
    fn from(b: FacetBody) -> Self {
        FacetRequest {
            field: b.field,
            size: b.size,
            path: b.path,
            ranges: b
                .ranges
                .into_iter()
                .map(|r| FacetRange {
                    from: r.from.map(Scalar::text),
                    to: r.to.map(Scalar::text),
                })
                .collect(),
            interval: b.interval.map(Scalar::text),
        }
    }
}

/// A fusion method.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[schema(as = Fusion)]
#[serde(rename_all = "lowercase")]
pub enum FusionBody {
    /// Reciprocal rank fusion: `Σ w / (rrf_k + rank)`.
    Rrf,
    /// A weighted sum of normalised scores.
    Linear,
}

impl FusionBody {
    fn name(self) -> &'static str {
        match self {
            FusionBody::Rrf => "rrf",
            FusionBody::Linear => "linear",
        }
    }
}

/// How scores of one list are normalised before a linear combination.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[schema(as = Normalization)]
#[serde(rename_all = "lowercase")]
pub enum NormalizationBody {
    /// `(s - min) / (max - min)`.
    MinMax,
    /// `(s - mean) / std`.
    ZScore,
    /// Raw scores.
    None,
}

impl From<NormalizationBody> for Normalization {
    fn from(n: NormalizationBody) -> Self {
        match n {
            NormalizationBody::MinMax => Normalization::MinMax,
            NormalizationBody::ZScore => Normalization::ZScore,
            NormalizationBody::None => Normalization::None,
        }
    }
}

impl SearchBody {
    /// The engine's request (without the image, which the route fetches and checks first).
    pub fn into_request(self) -> SearchRequest {
        SearchRequest {
            text: self.text,
            text_fields: self.text_fields,
            vector: self.vector,
            image: None,
            image_bytes: None,
            vector_field: self.vector_field,
            filter: self.filter,
            fusion: self.fusion.map(|f| f.name().to_owned()),
            rrf_k: self.rrf_k,
            normalization: self.normalization.map(Into::into),
            bm25_weight: self.bm25_weight,
            vector_weight: self.vector_weight,
            top_k: self.top_k,
            offset: self.offset,
            candidates: self.candidates,
            ef_search: self.ef_search,
            exact: self.exact,
            explain: self.explain,
            rerank_window: self.rerank_window,
            instruction: self.instruction,
            scenario: self.scenario,
            plugin: self.plugin,
            params: self.params,
            now: self.now,
            min_score: self
                .min_score
                .map(|m| MinScore {
                    bm25: m.bm25,
                    vector: m.vector,
                    final_score: m.final_score,
                })
                .unwrap_or_default(),
            facets: self.facets.into_iter().map(Into::into).collect(),
            facet_filters: self
                .facet_filters
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().map(Scalar::text).collect()))
                .collect(),
            group_by: self.group_by,
            group_size: self.group_size,
        }
    }
}

/// The multipart form of a search.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SearchUpload {
    /// The search as JSON: a `SearchBody` without the image fields (optional: an image alone
    /// searches by image).
    request: Option<String>,
    /// The query image file.
    #[schema(value_type = Option<String>, format = Binary)]
    image: Option<Vec<u8>>,
}
