//! One error type for the engine. Each variant knows whether the caller or the engine is at fault,
//! so the CLI can print it and the HTTP server can map it to a status without guessing.

use std::path::PathBuf;

use crate::models::ModelError;

/// Result alias used across `mira-host`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who caused an error: decides between a 4xx and a 5xx, and how the CLI words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Bad input: a schema, a row, a query, a filter or a name that is wrong.
    User,
    /// The thing asked for does not exist.
    NotFound,
    /// The request is valid but conflicts with the current state (already exists, locked).
    Conflict,
    /// Something failed inside the engine or on disk.
    Engine,
    /// A model the configuration names cannot be had (missing, unreadable or not matching its
    /// config); tried again after the catalog's model retry interval.
    Unavailable,
}

/// A request that cannot be run, one variant per mistake, each with its own stable code
/// ([`QueryError::code`]). Every one is the caller's fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// `top_k` outside 1..=max (from the request or the collection's `[search]` default).
    #[error("top_k must be between 1 and {max}, got {got}")]
    TopK { got: usize, max: usize },
    /// `offset + top_k` or `candidates` over the largest candidate list.
    #[error("offset + top_k and candidates must stay within {max}, got {got}")]
    Candidates { got: usize, max: usize },
    /// `ef_search` outside 1..=max.
    #[error("ef_search must be between 1 and {max}, got {got}")]
    EfSearch { got: usize, max: usize },
    /// `rerank_window` over the largest window.
    #[error("rerank_window must be at most {max}, got {got}")]
    RerankWindow { got: usize, max: usize },
    /// A fusion weight that is negative or not a number.
    #[error("{name} must be a non-negative number, got {got}")]
    Weight { name: &'static str, got: f32 },
    /// An unknown fusion method or a parameter it does not take.
    #[error("{0}")]
    Fusion(String),
    /// A filter that does not parse or names what cannot be filtered on.
    #[error("filter `{expr}`: {reason}")]
    Filter { expr: String, reason: String },
    /// A text query that does not parse (beyond the syntax slips that are forgiven).
    #[error("text query `{text}`: {reason}")]
    Text { text: String, reason: String },
    /// A text query or filter over a complexity limit (checked before parsing).
    #[error("the {what} is over the limit of {max} {limit} (it has {got})")]
    TooComplex {
        what: &'static str,
        limit: &'static str,
        max: usize,
        got: usize,
    },
    /// A field the collection does not have.
    #[error("collection `{collection}` has no field `{field}`")]
    UnknownField { collection: String, field: String },
    /// A field of the wrong kind for what the request does with it.
    #[error("`{field}` is a {kind} field{needed}")]
    FieldKind {
        field: String,
        kind: &'static str,
        needed: &'static str,
    },
    /// A collection with no text field searched by text.
    #[error("collection `{0}` has no text field to search")]
    NoTextField(String),
    /// A collection with no vector field searched by vector.
    #[error("collection `{0}` has no vector field")]
    NoVectorField(String),
    /// Nothing to search by.
    #[error("give a text query, a query vector, or a filter")]
    Empty,
    /// Two query vector sources at once (a vector and an image, two images).
    #[error("{0}")]
    Conflicting(&'static str),
    /// A query image that cannot be decoded or is over the pixel limit.
    #[error("{0}")]
    Image(String),
    /// An image query on a collection with no CLIP model.
    #[error(
        "an image query needs a CLIP model: set [models] clip in the collection's schema or {}",
        crate::collection::CLIP_MODEL_ENV
    )]
    NoClipModel,
    /// A plugin or scenario asked of a search that has no plugin registry.
    #[error("ranking plugins are not available to this search")]
    PluginsUnavailable,
    /// A scenario no loaded plugin serves.
    #[error("no plugin serves the scenario `{0}`")]
    UnknownScenario(String),
    /// A collection name that is not allowed.
    #[error("`{0}` is not a valid collection name")]
    CollectionName(String),
    /// An input file whose format cannot be told from its name.
    #[error("cannot tell the format of {0} from its name: use .jsonl or .csv, a folder of images, or --format")]
    InputFormat(String),
    /// A folder of images given to a collection with no image field.
    #[error("collection `{0}` has no image field, so it cannot take a folder of images")]
    NoImageField(String),
    /// A relevance floor that is not a finite number.
    #[error("min_score.{which} must be a finite number, got {got}")]
    MinScore { which: &'static str, got: f32 },
    /// A facet request that cannot be counted (unknown field, wrong kind, bad ranges or
    /// interval, too many buckets), or a facet filter that cannot be applied.
    #[error("{0}")]
    Facet(String),
    /// A `group_by` on a field that cannot group, or a `group_size` out of bounds.
    #[error("{0}")]
    GroupBy(String),
    /// A judgment or qrels file that cannot be read as judged queries (names file and line).
    #[error("{0}")]
    Judgments(String),
    /// An evaluation setting (`KEY=VALUE`) that is unknown or has a bad value.
    #[error("{0}")]
    Setting(String),
    /// An illustration request out of bounds (`per_paragraph`, an empty article, too many
    /// paragraphs).
    #[error("{0}")]
    Article(String),
}

impl QueryError {
    /// The stable machine-readable code of this mistake.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::TopK { .. } => "invalid_top_k",
            QueryError::Candidates { .. } => "invalid_candidates",
            QueryError::RerankWindow { .. } => "invalid_rerank_window",
            QueryError::EfSearch { .. } => "invalid_ef_search",
            QueryError::Weight { .. } => "invalid_weight",
            QueryError::Fusion(_) => "invalid_fusion",
            QueryError::Filter { .. } => "invalid_filter",
            QueryError::Text { .. } => "invalid_text_query",
            QueryError::TooComplex { .. } => "query_too_complex",
            QueryError::UnknownField { .. } => "unknown_field",
            QueryError::FieldKind { .. } => "wrong_field_kind",
            QueryError::NoTextField(_) => "no_text_field",
            QueryError::NoVectorField(_) => "no_vector_field",
            QueryError::Empty => "empty_query",
            QueryError::Conflicting(_) => "conflicting_query",
            QueryError::Image(_) => "invalid_image",
            QueryError::NoClipModel => "no_clip_model",
            QueryError::PluginsUnavailable => "plugins_unavailable",
            QueryError::UnknownScenario(_) => "unknown_scenario",
            QueryError::CollectionName(_) => "invalid_collection_name",
            QueryError::InputFormat(_) => "unknown_input_format",
            QueryError::NoImageField(_) => "no_image_field",
            QueryError::Article(_) => "invalid_article",
            QueryError::MinScore { .. } => "invalid_min_score",
            QueryError::Facet(_) => "invalid_facet",
            QueryError::Judgments(_) => "invalid_judgments",
            QueryError::Setting(_) => "invalid_setting",
            QueryError::GroupBy(_) => "invalid_group_by",
        }
    }
}

/// Every error the engine reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A collection schema (TOML) that cannot be used; names the file and the field.
    #[error("schema {origin}: {message}")]
    Schema { origin: String, message: String },
    /// A document that does not fit the schema.
    #[error(transparent)]
    Row(#[from] crate::ingest::RowError),
    /// A query, filter or search parameter that cannot be run.
    #[error("invalid query: {0}")]
    Query(#[from] QueryError),
    /// A vector of the wrong size or with non-finite values.
    #[error("vector field `{field}`: {message}")]
    Vector { field: String, message: String },
    /// A collection that does not exist.
    #[error("collection `{0}` does not exist (see `mira collections`)")]
    CollectionNotFound(String),
    /// A collection created twice.
    #[error("collection `{0}` already exists")]
    CollectionExists(String),
    /// Another process holds the collection's writer.
    #[error("collection `{0}` is being written by another process; try again when it finishes")]
    Locked(String),
    /// An input file that cannot be read.
    #[error("cannot read {path}: {source}")]
    Input {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An ingest stopped at a bad row (`--on-error fail`); earlier batches stay committed.
    #[error(
        "{error} (ingest stopped: {committed} documents committed before this row; fix it and run again, ids make re-runs safe)"
    )]
    IngestAborted {
        error: crate::ingest::RowError,
        committed: u64,
    },
    /// A plugin that cannot be loaded (invalid, forbidden imports, failed load check).
    #[error("plugin: {0}")]
    Plugin(crate::plugin::PluginFailure),
    /// A plugin name that is not loaded.
    #[error("no plugin `{0}` is loaded (see `mira plugin list`)")]
    PluginNotFound(String),
    /// A plugin change that the registry's state does not allow (no staged version to activate,
    /// no previous version to roll back to, no plugin directory to write to).
    #[error("{0}")]
    PluginConflict(String),
    /// The plugin engine (wasmtime) could not be started or failed outside any plugin.
    #[error("plugin engine: {0}")]
    PluginEngine(String),
    /// A model that cannot be loaded or an input it cannot embed.
    #[error(transparent)]
    Model(Box<ModelError>),
    /// A model that cannot be had now (missing, unreadable or not matching its config): the
    /// failure is remembered and the load tried again after `retry_after`.
    #[error("{error}")]
    ModelUnavailable {
        error: Box<ModelError>,
        retry_after: std::time::Duration,
    },
    /// A collection whose index was built with another schema than its `collection.toml`.
    #[error("collection at {dir}: the index was built with another schema than collection.toml declares")]
    SchemaMismatch { dir: PathBuf },
    /// tantivy failed.
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// A file of the engine's own could not be read or written.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<ModelError> for Error {
    fn from(e: ModelError) -> Self {
        Error::Model(Box::new(e))
    }
}

impl Error {
    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        match self {
            Error::Schema { .. }
            | Error::Row(_)
            | Error::Query(_)
            | Error::Vector { .. }
            | Error::Input { .. }
            | Error::IngestAborted { .. } => Fault::User,
            // No free instance slot: the host's pressure, retried by the client.
            Error::Plugin(crate::plugin::PluginFailure::Busy { .. }) => Fault::Unavailable,
            Error::Plugin(_) => Fault::User,
            Error::CollectionNotFound(_) | Error::PluginNotFound(_) => Fault::NotFound,
            Error::CollectionExists(_) | Error::Locked(_) | Error::PluginConflict(_) => Fault::Conflict,
            Error::Model(e) => match **e {
                ModelError::Candle(_) => Fault::Engine,
                ModelError::Input(_) => Fault::User,
                ModelError::Files(_) | ModelError::Config { .. } => Fault::Unavailable,
            },
            Error::ModelUnavailable { .. } => Fault::Unavailable,
            Error::Index(_) | Error::Io { .. } | Error::PluginEngine(_) | Error::SchemaMismatch { .. } => Fault::Engine,
        }
    }

    /// A short machine-readable code, stable across releases.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Schema { .. } => "invalid_schema",
            Error::Row(_) => "invalid_document",
            Error::Query(q) => q.code(),
            Error::Vector { .. } => "invalid_vector",
            Error::CollectionNotFound(_) => "collection_not_found",
            Error::CollectionExists(_) => "collection_exists",
            Error::Locked(_) => "collection_locked",
            Error::Input { .. } => "unreadable_input",
            Error::IngestAborted { .. } => "ingest_aborted",
            Error::Plugin(crate::plugin::PluginFailure::Busy { .. }) => "plugins_busy",
            Error::Plugin(_) => "invalid_plugin",
            Error::PluginNotFound(_) => "plugin_not_found",
            Error::PluginConflict(_) => "plugin_conflict",
            Error::PluginEngine(_) => "plugin_engine_error",
            Error::Model(_) if self.fault() == Fault::Unavailable => "model_unavailable",
            Error::Model(_) => "model_error",
            Error::ModelUnavailable { .. } => "model_unavailable",
            Error::SchemaMismatch { .. } => "schema_mismatch",
            Error::Index(_) => "index_error",
            Error::Io { .. } => "io_error",
        }
    }

    /// How long until a retry may succeed (a model that is unavailable now).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::ModelUnavailable { retry_after, .. } => Some(*retry_after),
            Error::Plugin(crate::plugin::PluginFailure::Busy { .. }) => Some(std::time::Duration::from_secs(1)),
            _ => None,
        }
    }

    /// A model load failure: unavailable models (files, config) are retried after `retry`;
    /// inference failures stay engine faults.
    pub(crate) fn model_load(e: ModelError, retry: std::time::Duration) -> Self {
        match e {
            ModelError::Files(_) | ModelError::Config { .. } => Error::ModelUnavailable {
                error: Box::new(e),
                retry_after: retry,
            },
            other => Error::Model(Box::new(other)),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn schema(origin: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Schema {
            origin: origin.into(),
            message: message.into(),
        }
    }
}
