//! What a search and an illustration return.

use mira_host::illustrate::{IllustrateRequest, Illustration, ParagraphPictures, Picture};
use mira_host::search::{
    Contribution, Explanation, FusionExplanation, RerankReport, RerankScore, StageScore, VectorSearchReport,
};
use mira_host::{Hit, SearchResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::plugins::{PluginScoreBody, RankingReportBody};

/// A page of hits.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SearchResponse)]
pub struct SearchResults {
    pub hits: Vec<HitBody>,
    /// Distinct documents that reached fusion (an upper bound on what paging can reach).
    pub candidates: usize,
    /// Retrievers that ran: `bm25`, `vector`, or `filter` alone.
    pub retrievers: Vec<String>,
    /// The fusion used, e.g. `rrf(k=60)`, or `none (bm25 only)` when one list ran.
    pub fusion: String,
    /// Where the kNN query vector came from: `given`, `clip image`, `clip text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_vector: Option<String>,
    /// How the kNN retriever searched each segment, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector_search: Option<VectorSearchBody>,
    /// The ranking plugin's part, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranking: Option<RankingReportBody>,
    /// The reranker's part, when the collection has a reranker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank: Option<RerankReportBody>,
    /// The instruction the reranker (or the plugin) used and its short hash, when either ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instruction: Option<InstructionBody>,
    /// Facet counts over the matching documents, when facets were asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub facets: Vec<FacetCountsBody>,
    /// Documents in the matching set, under every filter, when facets were asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matching: Option<u64>,
    /// Groups the candidates formed, when the search groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<usize>,
    /// What the relevance floors cut, when any was set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuts: Option<CutsBody>,
    /// What the search did differently from what was asked (a text query with a syntax error,
    /// read leniently).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub took_ms: f64,
}

/// An instruction and its identity.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = InstructionUsed)]
pub struct InstructionBody {
    pub text: String,
    /// The first 12 hex digits of the text's SHA-256 (what `/metrics` counts queries by).
    pub hash: String,
    /// `request`, `plugin` or `default`.
    pub source: &'static str,
}

/// Candidates the relevance floors cut.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Cuts)]
pub struct CutsBody {
    /// From the BM25 list, before fusion.
    pub bm25: usize,
    /// From the kNN list, before fusion.
    pub vector: usize,
    /// From the final order.
    #[serde(rename = "final")]
    pub final_score: usize,
}

/// The counts of one facet.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = FacetCounts)]
pub struct FacetCountsBody {
    pub field: String,
    /// `values`, `children`, `ranges`, `histogram` or `calendar`.
    pub kind: &'static str,
    pub buckets: Vec<FacetBucketBody>,
    /// Counts of the values past `size`, summed.
    pub other: u64,
    /// Counted as if this field's own facet filters were off.
    pub disjunctive: bool,
}

/// A facet value and how many matching documents have it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = FacetBucket)]
pub struct FacetBucketBody {
    /// What `facet_filters` takes back.
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub count: u64,
    /// The request's facet filters tick this value.
    pub selected: bool,
}

impl From<mira_host::search::facets::FacetCounts> for FacetCountsBody {
    fn from(f: mira_host::search::facets::FacetCounts) -> Self {
        FacetCountsBody {
            field: f.field,
            kind: f.kind,
            buckets: f
                .buckets
                .into_iter()
                .map(|b| FacetBucketBody {
                    value: b.value,
                    label: b.label,
                    count: b.count,
                    selected: b.selected,
                })
                .collect(),
            other: f.other,
            disjunctive: f.disjunctive,
        }
    }
}

impl SearchResults {
    /// The response for a client: the engine's, with the hits' image fields as their routes
    /// ([`ImageRoutes`]), so no conversion can forget to hide a server path.
    pub fn new(r: SearchResponse, routes: &ImageRoutes) -> Self {
        let mut hits: Vec<HitBody> = r.hits.into_iter().map(Into::into).collect();
        for h in &mut hits {
            routes.apply(&h.id, &mut h.fields);
            if let Some(m) = &mut h.matched
                && let Some(field) = &m.image_field
            {
                m.image = Some(routes.route(&h.id, field, m.position));
            }
        }
        SearchResults {
            hits,
            candidates: r.candidates,
            retrievers: r.retrievers,
            fusion: r.fusion,
            query_vector: r.query_vector,
            vector_search: r.vector_search.map(Into::into),
            ranking: r.ranking.map(Into::into),
            rerank: r.rerank.map(Into::into),
            instruction: r.instruction.map(|i| InstructionBody {
                text: i.text,
                hash: i.hash,
                source: i.source,
            }),
            facets: r.facets.into_iter().map(Into::into).collect(),
            matching: r.matching,
            groups: r.groups,
            cuts: r.cuts.map(|c| CutsBody {
                bm25: c.bm25,
                vector: c.vector,
                final_score: c.final_score,
            }),
            warnings: r.warnings,
            took_ms: r.took_ms,
        }
    }
}

/// Where a collection's images are served: a hit's image field holds the route to its image
/// (`/v1/collections/{c}/documents/{id}/image?field=f`), never the file's path on the server.
pub struct ImageRoutes {
    collection: String,
    fields: Vec<String>,
}

impl ImageRoutes {
    /// The image fields of a collection.
    pub fn of(c: &mira_host::Collection) -> Self {
        ImageRoutes {
            collection: c.name().to_owned(),
            fields: c
                .schema()
                .fields
                .iter()
                .filter(|f| f.kind == mira_host::schema::FieldKind::Image)
                .map(|f| f.name.clone())
                .collect(),
        }
    }

    /// Replaces the image fields of a document's stored fields by their routes (a list of
    /// images by a list of routes).
    fn apply(&self, id: &str, fields: &mut Map<String, Value>) {
        for f in &self.fields {
            match fields.get_mut(f) {
                Some(Value::Array(items)) => {
                    for (i, v) in items.iter_mut().enumerate() {
                        *v = Value::String(self.route(id, f, i));
                    }
                }
                Some(v) if !v.is_null() => *v = Value::String(self.route(id, f, 0)),
                _ => {}
            }
        }
    }

    /// The route of a document's image: the `index`-th of its image field (0: the first).
    fn route(&self, id: &str, field: &str, index: usize) -> String {
        let at = if index > 0 {
            format!("&index={index}")
        } else {
            String::new()
        };
        format!(
            "/v1/collections/{}/documents/{}/image?field={}{at}",
            self.collection,
            percent_encode(id),
            percent_encode(field)
        )
    }
}

/// A path segment or query value with every byte but the unreserved ones percent-encoded.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// One result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Hit)]
pub struct HitBody {
    pub id: String,
    pub score: f32,
    /// The document's stored fields.
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    /// The hit's `group_by` value, when the search groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Which of the hit's vectors (which image) the kNN query matched, when kNN found it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<VectorMatchBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<ExplanationBody>,
}

/// The vector of a hit that matched the kNN query best.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = VectorMatch)]
pub struct VectorMatchBody {
    /// The vector field searched.
    pub field: String,
    /// Which of the document's vectors (0-based): for an image list, the image's position.
    pub position: usize,
    /// The image field the vectors were computed from, when they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_field: Option<String>,
    /// The route of the matching image, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl From<Hit> for HitBody {
    fn from(h: Hit) -> Self {
        HitBody {
            id: h.id,
            score: h.score,
            fields: h.fields,
            group: h.group,
            matched: h.matched.map(|m| VectorMatchBody {
                field: m.field,
                position: m.position,
                image_field: m.image_field,
                image: None,
            }),
            explain: h.explain.map(Into::into),
        }
    }
}

/// How a hit got its score.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Explanation)]
pub struct ExplanationBody {
    /// BM25 score and rank, when the text retriever found it.
    pub bm25: Option<StageScoreBody>,
    /// Vector similarity and rank, when the kNN retriever found it.
    pub vector: Option<StageScoreBody>,
    pub fusion: FusionExplanationBody,
    /// The reranker's P("yes"), when the hit was in the rerank window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank: Option<RerankScoreBody>,
    /// The ranking plugin's score and where the hit stood before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginScoreBody>,
}

impl From<Explanation> for ExplanationBody {
    fn from(e: Explanation) -> Self {
        ExplanationBody {
            bm25: e.bm25.map(Into::into),
            vector: e.vector.map(Into::into),
            fusion: e.fusion.into(),
            rerank: e.rerank.map(Into::into),
            plugin: e.plugin.map(Into::into),
        }
    }
}

/// A retriever's score for a hit.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = StageScore)]
pub struct StageScoreBody {
    pub score: f32,
    /// 1-based rank in that retriever's list.
    pub rank: usize,
}

impl From<StageScore> for StageScoreBody {
    fn from(s: StageScore) -> Self {
        StageScoreBody {
            score: s.score,
            rank: s.rank,
        }
    }
}

/// The fused score and the terms it was summed from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = FusionExplanation)]
pub struct FusionExplanationBody {
    pub method: String,
    pub score: f32,
    pub contributions: Vec<ContributionBody>,
    /// The formula with this hit's numbers, e.g. `1·1/(60+1) + 1·1/(60+3) = 0.0323`.
    pub formula: String,
}

impl From<FusionExplanation> for FusionExplanationBody {
    fn from(f: FusionExplanation) -> Self {
        FusionExplanationBody {
            method: f.method,
            score: f.score,
            contributions: f.contributions.into_iter().map(Into::into).collect(),
            formula: f.formula,
        }
    }
}

/// What one list contributed to a hit's fused score.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Contribution)]
pub struct ContributionBody {
    pub list: String,
    pub weight: f32,
    /// The list's raw score for the document.
    pub raw: f32,
    /// 1-based rank in the list.
    pub rank: usize,
    /// The normalised value (`1/(k+rank)` for RRF, `norm(s)` for linear) before weighting.
    pub value: f32,
}

impl From<Contribution> for ContributionBody {
    fn from(c: Contribution) -> Self {
        ContributionBody {
            list: c.list,
            weight: c.weight,
            raw: c.raw,
            rank: c.rank,
            value: c.value,
        }
    }
}

/// What the reranker did for a search.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = RerankReport)]
pub struct RerankReportBody {
    /// The model directory.
    pub model: String,
    /// The instruction the reranker read.
    pub instruction: String,
    /// Where it came from: `request`, `plugin` or `default`.
    pub instruction_source: &'static str,
    /// Candidates asked for (request, plugin's rerank depth, or the collection's default).
    pub window: usize,
    /// Candidates scored.
    pub reranked: usize,
    /// Why nothing was reranked, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub took_ms: f64,
    /// The forward passes this query shared with concurrent ones (when the collection has a
    /// batch window, `[models] rerank_batch_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<SharedRunBody>,
}

/// The reranking run a query shared with concurrent queries.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SharedRerankRun)]
pub struct SharedRunBody {
    /// Queries in the run, this one included.
    pub queries: usize,
    /// Prompts in the run, this query's included.
    pub prompts: usize,
    /// Time this query waited for others before the run started.
    pub waited_ms: f64,
}

/// How the kNN retriever searched.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = VectorSearchReport)]
pub struct VectorSearchBody {
    pub field: String,
    /// One entry per segment.
    pub segments: Vec<SegmentKnnBody>,
}

/// How one segment answered a kNN query.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SegmentKnn)]
pub struct SegmentKnnBody {
    /// The segment (short id).
    pub segment: String,
    /// Documents with a vector in it (deleted ones included).
    pub vectors: u32,
    /// `hnsw`, `flat` (every live vector scanned) or `filtered-flat` (the filter's documents).
    pub index: &'static str,
    /// The beam of the graph walk, when a graph answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ef_search: Option<usize>,
    /// Vectors scored.
    pub scored: usize,
    /// Why a field with a graph was scanned in this segment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl From<VectorSearchReport> for VectorSearchBody {
    fn from(r: VectorSearchReport) -> Self {
        VectorSearchBody {
            field: r.field,
            segments: r
                .segments
                .into_iter()
                .map(|s| SegmentKnnBody {
                    segment: s.segment,
                    vectors: s.vectors,
                    index: s.index,
                    ef_search: s.ef_search,
                    scored: s.scored,
                    reason: s.reason,
                })
                .collect(),
        }
    }
}

impl From<RerankReport> for RerankReportBody {
    fn from(r: RerankReport) -> Self {
        RerankReportBody {
            model: r.model,
            instruction: r.instruction,
            instruction_source: r.instruction_source,
            window: r.window,
            reranked: r.reranked,
            skipped: r.skipped,
            took_ms: r.took_ms,
            shared: r.shared.map(|s| SharedRunBody {
                queries: s.queries,
                prompts: s.prompts,
                waited_ms: s.waited_ms,
            }),
        }
    }
}

/// A hit's reranker verdict.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = RerankScore)]
pub struct RerankScoreBody {
    /// P("yes") from Qwen3-Reranker.
    pub p_yes: f32,
    /// 1-based rank by P("yes") among the reranked candidates.
    pub rank: usize,
    /// 1-based rank after retrieval fusion.
    pub retrieval_rank: usize,
    /// The fused retrieval score.
    pub retrieval_score: f32,
    /// The document text the reranker read (the plugin's rendering, or the built-in one).
    pub text: String,
}

impl From<RerankScore> for RerankScoreBody {
    fn from(r: RerankScore) -> Self {
        RerankScoreBody {
            p_yes: r.p_yes,
            rank: r.rank,
            retrieval_rank: r.retrieval_rank,
            retrieval_score: r.retrieval_score,
            text: r.text,
        }
    }
}

/// What to illustrate.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = IllustrateRequest)]
#[serde(deny_unknown_fields)]
pub struct IllustrateBody {
    /// The article; paragraphs are separated by blank lines.
    #[schema(min_length = 1)]
    pub article: String,
    /// Pictures per paragraph (default 1, at most 10).
    #[schema(minimum = 1, maximum = 10)]
    pub per_paragraph: Option<usize>,
    /// Paragraphs shorter than this many characters (headings, captions) get no picture
    /// (default 60).
    pub min_chars: Option<usize>,
    /// Candidates considered per paragraph (default 30).
    pub candidates: Option<usize>,
    /// The reranker instruction (default: subject, emotion, theme and style).
    pub instruction: Option<String>,
    /// A filter every picture must pass (tantivy syntax).
    pub filter: Option<String>,
}

impl From<IllustrateBody> for IllustrateRequest {
    fn from(b: IllustrateBody) -> Self {
        IllustrateRequest {
            article: b.article,
            per_paragraph: b.per_paragraph,
            min_chars: b.min_chars,
            candidates: b.candidates,
            instruction: b.instruction,
            filter: b.filter,
        }
    }
}

/// The illustrated article.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Illustration)]
pub struct IllustrationBody {
    pub paragraphs: Vec<ParagraphPicturesBody>,
    /// The instruction the reranker read (when one is configured).
    pub instruction: String,
    /// Whether the candidates were reranked.
    pub reranked: bool,
    pub took_ms: f64,
}

impl IllustrationBody {
    /// The illustration for a client, the pictures' image fields as their routes.
    pub fn new(i: Illustration, routes: &ImageRoutes) -> Self {
        let mut paragraphs: Vec<ParagraphPicturesBody> = i.paragraphs.into_iter().map(Into::into).collect();
        for p in paragraphs.iter_mut().flat_map(|p| p.pictures.iter_mut()) {
            routes.apply(&p.id, &mut p.fields);
        }
        IllustrationBody {
            paragraphs,
            instruction: i.instruction,
            reranked: i.reranked,
            took_ms: i.took_ms,
        }
    }
}

/// One key paragraph and its pictures.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ParagraphPictures)]
pub struct ParagraphPicturesBody {
    /// 0-based position among all paragraphs of the article.
    pub paragraph: usize,
    /// The paragraph's first 160 characters.
    pub excerpt: String,
    pub pictures: Vec<PictureBody>,
}

impl From<ParagraphPictures> for ParagraphPicturesBody {
    fn from(p: ParagraphPictures) -> Self {
        ParagraphPicturesBody {
            paragraph: p.paragraph,
            excerpt: p.excerpt,
            pictures: p.pictures.into_iter().map(Into::into).collect(),
        }
    }
}

/// A picture chosen for a paragraph.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Picture)]
pub struct PictureBody {
    pub id: String,
    /// The paragraph's final score for it (P(yes) when reranked).
    pub score: f32,
    /// Its rank among the paragraph's own candidates.
    pub rank: usize,
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

impl From<Picture> for PictureBody {
    fn from(p: Picture) -> Self {
        PictureBody {
            id: p.id,
            score: p.score,
            rank: p.rank,
            fields: p.fields,
        }
    }
}
