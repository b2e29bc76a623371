//! What an upsert did, as the API reports it.

use mira_host::ingest::{IngestReport, RowError};
use serde::Serialize;

/// What an upsert did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = IngestReport)]
pub struct IngestReportBody {
    /// Rows read (good and bad).
    pub rows: u64,
    /// Documents upserted.
    pub indexed: u64,
    /// Bad rows skipped.
    pub skipped: u64,
    /// The first bad rows (at most 100).
    pub errors: Vec<RowErrorBody>,
    /// What the ingest could not do for every row (a model that is not configured...).
    pub warnings: Vec<String>,
    pub commits: u64,
    /// Vectors computed by the model during this ingest.
    pub embedded: u64,
    /// Vectors taken from the embedding cache instead (same model, same content).
    pub embeddings_cached: u64,
    /// Seconds.
    pub elapsed: f64,
}

impl From<IngestReport> for IngestReportBody {
    fn from(r: IngestReport) -> Self {
        IngestReportBody {
            rows: r.rows,
            indexed: r.indexed,
            skipped: r.skipped,
            errors: r.errors.into_iter().map(Into::into).collect(),
            warnings: r.warnings,
            commits: r.commits,
            embedded: r.embedded,
            embeddings_cached: r.embeddings_cached,
            elapsed: r.elapsed.as_secs_f64(),
        }
    }
}

/// A bad document: where it was, which field, and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = RowError)]
pub struct RowErrorBody {
    /// The input the row came from (`request` for a JSON upsert).
    pub file: String,
    /// 1-based position in the input, where positions apply.
    pub line: Option<u64>,
    /// The row's id, when it could be read.
    pub id: Option<String>,
    /// The offending field, when one is to blame.
    pub field: Option<String>,
    pub message: String,
}

impl From<RowError> for RowErrorBody {
    fn from(e: RowError) -> Self {
        RowErrorBody {
            file: e.file,
            line: e.line,
            id: e.id,
            field: e.field,
            message: e.message,
        }
    }
}
