//! The collection declaration: parsed from TOML, validated, and saved beside the index.

use std::path::Path;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::field::{
    Analyzer, FieldKind, FieldSpec, HnswParams, IndexKind, Metric, Quantization, VectorDtype, VectorIndex, VectorSpec,
};
use crate::error::{Error, QueryError, Result};
use crate::search::{FusionMethod, MAX_CANDIDATES, MAX_RERANK_WINDOW, MAX_TOP_K, Normalization};

/// A collection's declaration. Build it with [`CollectionSchema::from_toml`] or
/// [`CollectionSchema::from_file`]; both validate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionSchema {
    pub name: String,
    pub description: String,
    /// Name of the external id in input rows; stored as a keyword, used for upserts and deletes.
    pub id_field: String,
    pub fields: Vec<FieldSpec>,
    pub search: SearchDefaults,
    pub ingest: IngestDefaults,
    /// Fields computed at ingest (CLIP vectors, CLIP tags), and from what.
    pub computed_fields: Vec<ComputedField>,
    /// Models the collection uses.
    pub models: ModelSettings,
    /// The TOML the schema was read from, saved verbatim with the collection.
    #[serde(skip)]
    pub source: String,
}

/// What a computed field is computed from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum SourceKind {
    /// CLIP image embedding of an image field.
    ClipImage { image_field: String },
    /// CLIP text embedding of text fields (joined with ". ").
    ClipText { text_fields: Vec<String> },
    /// The `top` words of `vocabulary` closest to an image field's CLIP embedding (zero-shot:
    /// each word is embedded as "a photo of {word}"), stored as text: BM25-searchable, and the
    /// words the reranker reads for an image.
    ClipTags {
        image_field: String,
        /// The words (empty when they come from a plugin).
        vocabulary: Vec<String>,
        top: usize,
        /// `vocabulary = "plugin:NAME"`: the words are that plugin's `tag-vocabulary` (`top` of
        /// them at most, all when it has fewer), read at each ingest (so shipping a new plugin version changes the tags of what is indexed
        /// next, re-indexed documents included; image embeddings and known words come from the
        /// embedding cache).
        #[serde(skip_serializing_if = "Option::is_none")]
        vocabulary_plugin: Option<String>,
    },
    /// A BLIP caption of an image field (at most `max_tokens` tokens), stored as text:
    /// BM25-searchable, and what the reranker reads for an image.
    Caption { image_field: String, max_tokens: usize },
}

impl SourceKind {
    /// The plugin whose tag vocabulary the source reads, if any.
    pub fn vocabulary_plugin(&self) -> Option<&str> {
        match self {
            SourceKind::ClipTags { vocabulary_plugin, .. } => vocabulary_plugin.as_deref(),
            _ => None,
        }
    }

    /// Whether the source needs the collection's CLIP model (else its captioner).
    pub fn needs_clip(&self) -> bool {
        !matches!(self, SourceKind::Caption { .. })
    }
}

/// Tags per image when `top` is not given.
pub const DEFAULT_TAGS_PER_IMAGE: usize = 3;
/// Largest tag vocabulary.
pub const MAX_TAG_VOCABULARY: usize = 10_000;

/// A field computed at ingest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComputedField {
    pub field: String,
    #[serde(flatten)]
    pub kind: SourceKind,
}

/// Where a collection's models come from.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ModelSettings {
    /// A CLIP model: a directory in the Hugging Face layout or a repo id[@revision] from the
    /// Hugging Face cache/hub; `MIRA_CLIP_MODEL` overrides it.
    pub clip: Option<String>,
    /// A Qwen3-Reranker, named the same ways; `MIRA_RERANKER_MODEL` overrides it.
    pub reranker: Option<String>,
    /// A BLIP captioning model for `source = "caption"` fields, named the same ways;
    /// `MIRA_CAPTION_MODEL` overrides it.
    pub captioner: Option<String>,
    /// Longest reranker prompt in tokens (documents are cut to fit).
    pub rerank_max_length: usize,
    /// `cpu` (default) or `cuda:N`.
    pub device: String,
    /// `f32` (default), `f16` or `bf16`.
    pub dtype: String,
    /// The reranker's own dtype (default: `dtype`); `q8` quantizes its linear layers to int8 at
    /// load, which is how the 4B and 8B fit a 24 GB machine.
    pub reranker_dtype: Option<String>,
    /// How long a query's reranking waits for concurrent queries to share its forward passes,
    /// in milliseconds (at most 100; default 4 on a GPU, 0 on a CPU).
    pub rerank_batch_ms: u64,
    /// The most prompts one shared run holds (default 64).
    pub rerank_batch_max: usize,
}

/// Longest batch window `rerank_batch_ms` takes.
pub const MAX_RERANK_BATCH_MS: u64 = 100;
/// Most prompts `rerank_batch_max` allows in one shared run.
pub const MAX_RERANK_BATCH_PROMPTS: usize = 1024;

impl ModelSettings {
    /// The reranker's batch window across concurrent queries.
    pub fn rerank_window(&self) -> crate::rerank::SharedWindow {
        crate::rerank::SharedWindow {
            wait: std::time::Duration::from_millis(self.rerank_batch_ms),
            max_prompts: self.rerank_batch_max,
        }
    }
}

/// Defaults for search requests that do not say otherwise.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchDefaults {
    /// Text fields a BM25 query runs over, with their boosts (default: every text field).
    pub text_fields: Vec<String>,
    /// Vector field a kNN query runs over (default: the first vector field).
    pub vector_field: Option<String>,
    pub fusion: FusionMethod,
    pub bm25_weight: f32,
    pub vector_weight: f32,
    /// How many candidates each retriever contributes to fusion.
    pub candidates: usize,
    pub top_k: usize,
    /// How many fused candidates the reranker reads (0: no reranking).
    pub rerank_window: usize,
}

/// Defaults for ingest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestDefaults {
    /// Documents per commit.
    pub batch_size: usize,
    /// Images over this many pixels are refused before they are decoded.
    pub max_image_pixels: u64,
    /// Accept and drop input keys that the schema does not declare (default: reject the row).
    pub ignore_unknown_fields: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchema {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "default_id_field")]
    id_field: String,
    fields: IndexMap<String, RawField>,
    #[serde(default)]
    search: RawSearch,
    #[serde(default)]
    ingest: RawIngest,
    #[serde(default)]
    models: RawModels,
    #[serde(default)]
    vectors: RawVectors,
}

/// `[vectors]`: collection-wide defaults of vector fields.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVectors {
    /// The index of vector fields that do not name one. Absent: `flat`, which is how every
    /// collection created before HNSW reads; new collections get `hnsw` written here.
    index: Option<IndexKind>,
}

fn default_id_field() -> String {
    "id".into()
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawType {
    Text,
    Keyword,
    Facet,
    I64,
    U64,
    F64,
    Bool,
    Date,
    Image,
    Vector,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    #[serde(rename = "type")]
    ty: RawType,
    required: Option<bool>,
    stored: Option<bool>,
    analyzer: Option<Analyzer>,
    boost: Option<f32>,
    dim: Option<usize>,
    dtype: Option<VectorDtype>,
    metric: Option<Metric>,
    /// `flat` or `hnsw` (default: `[vectors] index`).
    index: Option<IndexKind>,
    m: Option<usize>,
    ef_construction: Option<usize>,
    ef_search: Option<usize>,
    quantization: Option<Quantization>,
    exact_below: Option<usize>,
    /// `clip-image` or `clip-text`: the vector is computed at ingest.
    source: Option<String>,
    /// The fields the source reads (an image field, or text fields).
    from: Option<Vec<String>>,
    /// `clip-tags`: the words tags are chosen from, or `"plugin:NAME"`.
    vocabulary: Option<VocabularySpec>,
    /// `clip-tags`: tags per image.
    top: Option<usize>,
    /// `caption`: longest caption in tokens.
    max_tokens: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawModels {
    clip: Option<String>,
    reranker: Option<String>,
    captioner: Option<String>,
    rerank_max_length: Option<usize>,
    device: Option<String>,
    dtype: Option<String>,
    reranker_dtype: Option<String>,
    rerank_batch_ms: Option<u64>,
    rerank_batch_max: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSearch {
    text_fields: Option<Vec<String>>,
    vector_field: Option<String>,
    fusion: Option<String>,
    rrf_k: Option<f32>,
    normalization: Option<Normalization>,
    bm25_weight: Option<f32>,
    vector_weight: Option<f32>,
    candidates: Option<usize>,
    top_k: Option<usize>,
    rerank_window: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIngest {
    batch_size: Option<usize>,
    max_image_pixels: Option<u64>,
    ignore_unknown_fields: Option<bool>,
}

/// Longest vector we accept; far above any embedding model in use.
const MAX_DIM: usize = 16_384;

/// Valid collection and field names: an ASCII letter, then letters, digits, `_` or `-` (not for
/// fields); short enough to be a directory name everywhere.
/// Whether `name` can name a collection.
pub fn valid_collection_name(name: &str) -> bool {
    valid_name(name, true)
}

pub(crate) fn valid_name(name: &str, allow_dash: bool) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (allow_dash && c == '-'))
}

impl CollectionSchema {
    /// Reads and validates a schema file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Input {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates a schema; `origin` names it in errors (a path, or "request").
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let raw: RawSchema = toml::from_str(text).map_err(|e| Error::schema(origin, e.to_string().trim_end()))?;
        let err = |m: String| Error::schema(origin, m);
        if !valid_name(&raw.name, true) {
            return Err(err(format!(
                "collection name `{}` must start with a letter and hold only letters, digits, `_` and `-` (at most 64)",
                raw.name
            )));
        }
        if !valid_name(&raw.id_field, false) {
            return Err(err(format!("id_field `{}` is not a valid field name", raw.id_field)));
        }
        if raw.fields.is_empty() {
            return Err(err("a collection needs at least one field in [fields]".into()));
        }
        let mut fields = Vec::with_capacity(raw.fields.len());
        let mut sources = Vec::new();
        for (name, mut f) in raw.fields {
            let source = Source {
                source: f.source.take(),
                from: f.from.take(),
                vocabulary: f.vocabulary.take(),
                top: f.top.take(),
                max_tokens: f.max_tokens.take(),
            };
            let default_index = raw.vectors.index.unwrap_or(IndexKind::Flat);
            fields.push(
                validate_field(&name, f, &raw.id_field, default_index)
                    .map_err(|m| err(format!("field `{name}`: {m}")))?,
            );
            sources.push((name, source));
        }
        let mut computed_fields = Vec::new();
        for (name, source) in sources {
            if let Some(v) = validate_source(&name, source, &fields).map_err(|m| err(format!("field `{name}`: {m}")))? {
                computed_fields.push(v);
            }
        }
        let search = validate_search(raw.search, &fields).map_err(|m| err(format!("[search]: {m}")))?;
        let ingest = IngestDefaults {
            batch_size: raw.ingest.batch_size.unwrap_or(10_000),
            max_image_pixels: raw.ingest.max_image_pixels.unwrap_or(64_000_000),
            ignore_unknown_fields: raw.ingest.ignore_unknown_fields.unwrap_or(false),
        };
        if ingest.batch_size == 0 {
            return Err(err("[ingest]: batch_size must be at least 1".into()));
        }
        for (key, value) in [
            ("dtype", &raw.models.dtype),
            ("reranker_dtype", &raw.models.reranker_dtype),
        ] {
            let Some(v) = value else { continue };
            let parsed = crate::models::ModelDType::parse(v).map_err(|e| err(format!("[models] {key}: {e}")))?;
            if key == "dtype" && parsed == crate::models::ModelDType::Q8 {
                return Err(err(
                    "[models] dtype = \"q8\" would apply to CLIP and BLIP too, which have no int8 path: set \
                     reranker_dtype = \"q8\" to quantize the reranker alone"
                        .into(),
                ));
            }
        }
        if let Some(ms) = raw.models.rerank_batch_ms
            && ms > MAX_RERANK_BATCH_MS
        {
            return Err(err(format!(
                "[models] rerank_batch_ms = {ms}: at most {MAX_RERANK_BATCH_MS} (a query waits this long for others)"
            )));
        }
        if let Some(n) = raw.models.rerank_batch_max
            && !(1..=MAX_RERANK_BATCH_PROMPTS).contains(&n)
        {
            return Err(err(format!(
                "[models] rerank_batch_max = {n}: between 1 and {MAX_RERANK_BATCH_PROMPTS} prompts"
            )));
        }
        let device = raw.models.device.unwrap_or_else(|| "cpu".into());
        Ok(CollectionSchema {
            name: raw.name,
            description: raw.description,
            id_field: raw.id_field,
            fields,
            search,
            ingest,
            computed_fields,
            models: ModelSettings {
                clip: raw.models.clip,
                reranker: raw.models.reranker,
                captioner: raw.models.captioner,
                rerank_max_length: raw
                    .models
                    .rerank_max_length
                    .unwrap_or(crate::rerank::DEFAULT_MAX_LENGTH),
                rerank_batch_ms: raw
                    .models
                    .rerank_batch_ms
                    .unwrap_or(if device.starts_with("cuda") { 4 } else { 0 }),
                rerank_batch_max: raw.models.rerank_batch_max.unwrap_or(64),
                device,
                dtype: raw.models.dtype.unwrap_or_else(|| "f32".into()),
                reranker_dtype: raw.models.reranker_dtype,
            },
            source: text.to_owned(),
        })
    }

    /// The declared field called `name`.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Vector fields, in declaration order.
    pub fn vector_fields(&self) -> impl Iterator<Item = (&FieldSpec, VectorSpec)> {
        self.fields.iter().filter_map(|f| match f.kind {
            FieldKind::Vector(v) => Some((f, v)),
            _ => None,
        })
    }

    /// How a field is computed at ingest, if it is.
    pub fn computed_field(&self, field: &str) -> Option<&ComputedField> {
        self.computed_fields.iter().find(|s| s.field == field)
    }

    /// Whether a tag field takes its words from a plugin (`vocabulary = "plugin:NAME"`): an
    /// ingest then needs the plugins' vocabularies.
    pub fn needs_plugin_vocabularies(&self) -> bool {
        self.computed_fields
            .iter()
            .any(|s| s.kind.vocabulary_plugin().is_some())
    }

    /// The vector field called `name`, or a precise error.
    pub fn vector_field(&self, name: &str) -> Result<VectorSpec> {
        match self.field(name).map(|f| &f.kind) {
            Some(FieldKind::Vector(v)) => Ok(*v),
            Some(other) => Err(QueryError::FieldKind {
                field: name.to_owned(),
                kind: other.type_name(),
                needed: ", not a vector field",
            }
            .into()),
            None => Err(QueryError::UnknownField {
                collection: self.name.clone(),
                field: name.to_owned(),
            }
            .into()),
        }
    }
}

/// Bounds of the graph parameters (beyond them builds or searches cost without helping).
pub const MAX_HNSW_M: usize = 128;
pub const MAX_EF: usize = 4096;

impl RawField {
    /// Whether any of the HNSW options (not `index` itself) is set.
    fn has_graph_options(&self) -> bool {
        self.m.is_some()
            || self.ef_construction.is_some()
            || self.ef_search.is_some()
            || self.quantization.is_some()
            || self.exact_below.is_some()
    }
}

fn validate_index(f: &RawField, default: IndexKind) -> Result<VectorIndex, String> {
    let graph_option = f.has_graph_options();
    match f.index.unwrap_or(default) {
        IndexKind::Flat if graph_option && f.index.is_some() => Err(
            "`m`, `ef_construction`, `ef_search`, `quantization` and `exact_below` apply only to `index = \"hnsw\"`"
                .into(),
        ),
        IndexKind::Flat if !graph_option => Ok(VectorIndex::Flat),
        // Graph options without `index` ask for a graph even where the default is flat.
        _ => {
            let d = HnswParams::default();
            let p = HnswParams {
                m: f.m.unwrap_or(d.m),
                ef_construction: f.ef_construction.unwrap_or(d.ef_construction),
                ef_search: f.ef_search.unwrap_or(d.ef_search),
                quantization: f.quantization.unwrap_or(d.quantization),
                exact_below: f.exact_below.unwrap_or(d.exact_below),
            };
            if !(2..=MAX_HNSW_M).contains(&p.m) {
                return Err(format!("m must be between 2 and {MAX_HNSW_M}, got {}", p.m));
            }
            if p.ef_construction < p.m {
                return Err(format!(
                    "ef_construction ({}) must be at least m ({}): links are chosen from that many candidates",
                    p.ef_construction, p.m
                ));
            }
            for (what, v) in [("ef_construction", p.ef_construction), ("ef_search", p.ef_search)] {
                if !(1..=MAX_EF).contains(&v) {
                    return Err(format!("{what} must be between 1 and {MAX_EF}, got {v}"));
                }
            }
            Ok(VectorIndex::Hnsw(p))
        }
    }
}

fn validate_field(name: &str, f: RawField, id_field: &str, default_index: IndexKind) -> Result<FieldSpec, String> {
    if !valid_name(name, false) {
        return Err("names must start with a letter and hold only letters, digits and `_` (at most 64)".into());
    }
    if name == id_field {
        return Err(format!(
            "`{name}` is the id field (id_field); it is declared implicitly"
        ));
    }
    let only = |opt: bool, what: &str, types: &str| {
        if opt {
            Err(format!("`{what}` applies only to {types} fields"))
        } else {
            Ok(())
        }
    };
    let is_text = matches!(f.ty, RawType::Text);
    let is_vector = matches!(f.ty, RawType::Vector);
    only(f.analyzer.is_some() && !is_text, "analyzer", "text")?;
    only(f.boost.is_some() && !is_text, "boost", "text")?;
    only(f.dim.is_some() && !is_vector, "dim", "vector")?;
    only(f.dtype.is_some() && !is_vector, "dtype", "vector")?;
    only(f.metric.is_some() && !is_vector, "metric", "vector")?;
    only(
        (f.index.is_some() || f.has_graph_options()) && !is_vector,
        "index",
        "vector",
    )?;
    only(f.stored.is_some() && is_vector, "stored", "non-vector")?;
    let kind = match f.ty {
        RawType::Text => {
            let boost = f.boost.unwrap_or(1.0);
            if !(boost.is_finite() && boost > 0.0) {
                return Err(format!("boost must be a positive number, got {boost}"));
            }
            FieldKind::Text {
                analyzer: f.analyzer.unwrap_or_default(),
                boost,
            }
        }
        RawType::Keyword => FieldKind::Keyword,
        RawType::Facet => FieldKind::Facet,
        RawType::I64 => FieldKind::I64,
        RawType::U64 => FieldKind::U64,
        RawType::F64 => FieldKind::F64,
        RawType::Bool => FieldKind::Bool,
        RawType::Date => FieldKind::Date,
        RawType::Image => FieldKind::Image,
        RawType::Vector => {
            let dim = f.dim.ok_or("vector fields need `dim` (the number of elements)")?;
            if dim == 0 || dim > MAX_DIM {
                return Err(format!("dim must be between 1 and {MAX_DIM}, got {dim}"));
            }
            FieldKind::Vector(VectorSpec {
                dim,
                dtype: f.dtype.unwrap_or_default(),
                metric: f.metric.unwrap_or_default(),
                index: validate_index(&f, default_index)?,
            })
        }
    };
    Ok(FieldSpec {
        name: name.to_owned(),
        required: f.required.unwrap_or(false),
        stored: f.stored.unwrap_or(!is_vector),
        kind,
    })
}

/// A clip-tags vocabulary as written: the words, or `"plugin:NAME"`.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a list of words, or \"plugin:NAME\" (a plugin's tag vocabulary)"
)]
enum VocabularySpec {
    Words(Vec<String>),
    Plugin(String),
}

/// The source keys of a field as written.
struct Source {
    source: Option<String>,
    from: Option<Vec<String>>,
    vocabulary: Option<VocabularySpec>,
    top: Option<usize>,
    max_tokens: Option<usize>,
}

/// Longest caption a field may ask for.
pub const MAX_CAPTION_TOKENS: usize = 128;

fn validate_source(name: &str, src: Source, fields: &[FieldSpec]) -> Result<Option<ComputedField>, String> {
    let Some(source) = src.source.as_deref() else {
        return if src.from.is_some() || src.vocabulary.is_some() || src.top.is_some() || src.max_tokens.is_some() {
            Err("`from`, `vocabulary`, `top` and `max_tokens` need a `source`".into())
        } else {
            Ok(None)
        };
    };
    let own = fields.iter().find(|f| f.name == name).map(|f| &f.kind);
    check_source_options(source, own, &src)?;
    let kind = match source {
        "clip-image" => SourceKind::ClipImage {
            image_field: image_field("clip-image", src.from.as_deref(), fields)?,
        },
        "clip-tags" => clip_tags(src, fields)?,
        "caption" => caption(src, fields)?,
        "clip-text" => clip_text(src.from, fields)?,
        other => {
            return Err(format!(
                "unknown source `{other}` (expected clip-image, clip-text, clip-tags or caption)"
            ));
        }
    };
    Ok(Some(ComputedField {
        field: name.to_owned(),
        kind,
    }))
}

/// The source applies to the field's kind, and takes only its own options.
fn check_source_options(source: &str, own: Option<&FieldKind>, src: &Source) -> Result<(), String> {
    let is_vector = matches!(own, Some(FieldKind::Vector(_)));
    let is_text = matches!(own, Some(FieldKind::Text { .. } | FieldKind::Keyword));
    match source {
        "clip-tags" if !is_text => Err("source clip-tags applies to text or keyword fields".into()),
        "clip-image" | "clip-text" if !is_vector => Err(format!("source {source} applies to vector fields")),
        "caption" if !matches!(own, Some(FieldKind::Text { .. })) => {
            Err("source caption applies to text fields".into())
        }
        "clip-image" | "clip-text" | "caption" if src.vocabulary.is_some() || src.top.is_some() => {
            Err("`vocabulary` and `top` apply to source clip-tags".into())
        }
        "clip-image" | "clip-text" | "clip-tags" if src.max_tokens.is_some() => {
            Err("`max_tokens` applies to source caption".into())
        }
        _ => Ok(()),
    }
}

/// The one image field a source reads: `from`, else the collection's first image field.
fn image_field(what: &str, from: Option<&[String]>, fields: &[FieldSpec]) -> Result<String, String> {
    let image_field = match from {
        Some([one]) => one.clone(),
        Some(_) => return Err(format!("{what} reads exactly one image field: from = [\"image\"]")),
        None => fields
            .iter()
            .find(|f| f.kind == FieldKind::Image)
            .map(|f| f.name.clone())
            .ok_or(format!("{what} needs an image field in the collection"))?,
    };
    if fields.iter().find(|f| f.name == image_field).map(|f| &f.kind) != Some(&FieldKind::Image) {
        return Err(format!("{what} reads an image field; `{image_field}` is not one"));
    }
    Ok(image_field)
}

/// `source = "clip-tags"`: an image field, a vocabulary of distinct words, tags per image.
fn clip_tags(src: Source, fields: &[FieldSpec]) -> Result<SourceKind, String> {
    let image_field = image_field("clip-tags", src.from.as_deref(), fields)?;
    let words = match src.vocabulary {
        None => {
            return Err(
                "clip-tags needs a vocabulary: vocabulary = [\"dress\", \"boots\", ...], or \"plugin:NAME\"".into(),
            );
        }
        Some(VocabularySpec::Plugin(spec)) => {
            let plugin = spec
                .strip_prefix("plugin:")
                .filter(|name| crate::plugin::valid_plugin_name(name))
                .ok_or_else(|| {
                    // Echo a bounded prefix: the spec may be any length.
                    let shown: String = spec.chars().take(80).collect();
                    let more = if shown.len() < spec.len() { "..." } else { "" };
                    format!(
                        "vocabulary = {:?}: a vocabulary is a list of words or \"plugin:NAME\" (a plugin's tag vocabulary)",
                        format!("{shown}{more}")
                    )
                })?;
            let top = src.top.unwrap_or(DEFAULT_TAGS_PER_IMAGE);
            if top == 0 || top > MAX_TAG_VOCABULARY {
                return Err(format!("top must be between 1 and {MAX_TAG_VOCABULARY}, got {top}"));
            }
            return Ok(SourceKind::ClipTags {
                image_field,
                vocabulary: Vec::new(),
                top,
                vocabulary_plugin: Some(plugin.to_owned()),
            });
        }
        Some(VocabularySpec::Words(words)) => words,
    };
    let vocabulary = distinct_words(words)?;
    let top = src.top.unwrap_or(DEFAULT_TAGS_PER_IMAGE.min(vocabulary.len()));
    if top == 0 || top > vocabulary.len() {
        return Err(format!(
            "top must be between 1 and the vocabulary's {} words, got {top}",
            vocabulary.len()
        ));
    }
    Ok(SourceKind::ClipTags {
        image_field,
        vocabulary,
        top,
        vocabulary_plugin: None,
    })
}

/// A vocabulary's words trimmed, without blanks and repeats, 1 to [`MAX_TAG_VOCABULARY`] of them.
pub(crate) fn distinct_words(words: Vec<String>) -> Result<Vec<String>, String> {
    let mut vocabulary: Vec<String> = words
        .into_iter()
        .map(|w| w.trim().to_owned())
        .filter(|w| !w.is_empty())
        .collect();
    let mut seen = std::collections::HashSet::new();
    vocabulary.retain(|w| seen.insert(w.clone()));
    if vocabulary.is_empty() || vocabulary.len() > MAX_TAG_VOCABULARY {
        return Err(format!(
            "clip-tags needs 1 to {MAX_TAG_VOCABULARY} distinct words in vocabulary, got {}",
            vocabulary.len()
        ));
    }
    Ok(vocabulary)
}

/// `source = "caption"`: an image field and a caption length.
fn caption(src: Source, fields: &[FieldSpec]) -> Result<SourceKind, String> {
    let max_tokens = src.max_tokens.unwrap_or(crate::caption::DEFAULT_CAPTION_TOKENS);
    if max_tokens == 0 || max_tokens > MAX_CAPTION_TOKENS {
        return Err(format!(
            "max_tokens must be between 1 and {MAX_CAPTION_TOKENS}, got {max_tokens}"
        ));
    }
    Ok(SourceKind::Caption {
        image_field: image_field("caption", src.from.as_deref(), fields)?,
        max_tokens,
    })
}

/// `source = "clip-text"`: the text fields it reads (`from`, else every text field).
fn clip_text(from: Option<Vec<String>>, fields: &[FieldSpec]) -> Result<SourceKind, String> {
    let text_fields = from.unwrap_or_else(|| {
        fields
            .iter()
            .filter(|f| matches!(f.kind, FieldKind::Text { .. }))
            .map(|f| f.name.clone())
            .collect()
    });
    if text_fields.is_empty() {
        return Err("clip-text needs text fields: from = [\"title\", ...]".into());
    }
    let is_text = |n: &String| {
        matches!(
            fields.iter().find(|f| &f.name == n).map(|f| &f.kind),
            Some(FieldKind::Text { .. })
        )
    };
    if let Some(bad) = text_fields.iter().find(|n| !is_text(n)) {
        return Err(format!("clip-text reads text fields; `{bad}` is not one"));
    }
    Ok(SourceKind::ClipText { text_fields })
}

fn validate_search(raw: RawSearch, fields: &[FieldSpec]) -> Result<SearchDefaults, String> {
    let kind_of = |name: &str| fields.iter().find(|f| f.name == name).map(|f| &f.kind);
    let text_fields = match raw.text_fields {
        Some(names) => {
            for n in &names {
                match kind_of(n) {
                    Some(FieldKind::Text { .. }) => {}
                    Some(k) => return Err(format!("text_fields: `{n}` is a {} field, not text", k.type_name())),
                    None => return Err(format!("text_fields: unknown field `{n}`")),
                }
            }
            names
        }
        None => fields
            .iter()
            .filter(|f| matches!(f.kind, FieldKind::Text { .. }))
            .map(|f| f.name.clone())
            .collect(),
    };
    let vector_field = match raw.vector_field {
        Some(n) => match kind_of(&n) {
            Some(FieldKind::Vector(_)) => Some(n),
            Some(k) => return Err(format!("vector_field: `{n}` is a {} field, not vector", k.type_name())),
            None => return Err(format!("vector_field: unknown field `{n}`")),
        },
        None => fields
            .iter()
            .find(|f| matches!(f.kind, FieldKind::Vector(_)))
            .map(|f| f.name.clone()),
    };
    let fusion = FusionMethod::parse(raw.fusion.as_deref().unwrap_or("rrf"), raw.rrf_k, raw.normalization)?;
    // The same bounds a request is held to (`search::plan`), so a default is never refused
    // at query time.
    let weight = |w: Option<f32>, name: &'static str| {
        crate::search::check_weight(name, w.unwrap_or(1.0)).map_err(|e| e.to_string())
    };
    let candidates = raw.candidates.unwrap_or(100);
    let top_k = raw.top_k.unwrap_or(10);
    if candidates == 0 || top_k == 0 {
        return Err("candidates and top_k must be at least 1".into());
    }
    if top_k > MAX_TOP_K || candidates > MAX_CANDIDATES {
        return Err(format!(
            "top_k must be at most {MAX_TOP_K} and candidates at most {MAX_CANDIDATES}, got {top_k} and {candidates}"
        ));
    }
    let rerank_window = raw.rerank_window.unwrap_or(DEFAULT_RERANK_WINDOW);
    if rerank_window > MAX_RERANK_WINDOW {
        return Err(format!(
            "rerank_window must be at most {MAX_RERANK_WINDOW}, got {rerank_window}"
        ));
    }
    Ok(SearchDefaults {
        text_fields,
        vector_field,
        fusion,
        bm25_weight: weight(raw.bm25_weight, "bm25_weight")?,
        vector_weight: weight(raw.vector_weight, "vector_weight")?,
        candidates,
        top_k,
        rerank_window,
    })
}

/// Candidates the reranker reads when neither the request nor the schema says.
pub const DEFAULT_RERANK_WINDOW: usize = 50;
