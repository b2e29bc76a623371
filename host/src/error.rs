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
    /// config); tried again after [`crate::models::load_retry`].
    Unavailable,
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
    Query(String),
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
    /// A model that cannot be loaded or an input it cannot embed.
    #[error(transparent)]
    Model(Box<ModelError>),
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
            | Error::IngestAborted { .. }
            | Error::Plugin(_) => Fault::User,
            Error::CollectionNotFound(_) | Error::PluginNotFound(_) => Fault::NotFound,
            Error::CollectionExists(_) | Error::Locked(_) => Fault::Conflict,
            Error::Model(e) => match **e {
                ModelError::Candle(_) => Fault::Engine,
                ModelError::Input(_) => Fault::User,
                ModelError::Files(_) | ModelError::Config { .. } => Fault::Unavailable,
            },
            Error::Index(_) | Error::Io { .. } => Fault::Engine,
        }
    }

    /// A short machine-readable code, stable across releases.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Schema { .. } => "invalid_schema",
            Error::Row(_) => "invalid_document",
            Error::Query(_) => "invalid_query",
            Error::Vector { .. } => "invalid_vector",
            Error::CollectionNotFound(_) => "collection_not_found",
            Error::CollectionExists(_) => "collection_exists",
            Error::Locked(_) => "collection_locked",
            Error::Input { .. } => "unreadable_input",
            Error::IngestAborted { .. } => "ingest_aborted",
            Error::Plugin(_) => "invalid_plugin",
            Error::PluginNotFound(_) => "plugin_not_found",
            Error::Model(_) if self.fault() == Fault::Unavailable => "model_unavailable",
            Error::Model(_) => "model_error",
            Error::Index(_) => "index_error",
            Error::Io { .. } => "io_error",
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
