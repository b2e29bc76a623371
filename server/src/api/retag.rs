//! What a re-tag did, as the API reports it.

use mira_host::ingest::{RetagReport, RetaggedField};
use serde::{Deserialize, Serialize};

use super::RowErrorBody;

/// How to re-tag.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetagBody {
    /// Choose the tags again even of fields recorded as tagged with their plugin's words now.
    #[serde(default)]
    pub force: bool,
}

/// What a re-tag did: the documents of each clip-tags field whose plugin's words changed got
/// their tags chosen again (image embeddings and known words from the embedding cache); those
/// whose tags changed were rewritten.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = RetagReport)]
pub struct RetagReportBody {
    /// The fields re-tagged.
    pub fields: Vec<RetaggedFieldBody>,
    /// Fields already tagged with their plugin's words (left alone).
    pub up_to_date: Vec<String>,
    /// Documents whose tags were chosen again.
    pub checked: u64,
    /// Documents rewritten because their tags changed.
    pub changed: u64,
    /// Documents left with their old tags because an image could not be read.
    pub failed: u64,
    /// The first failures (at most 100).
    pub errors: Vec<RowErrorBody>,
    /// Image embeddings computed (the rest came from the embedding cache).
    pub images_embedded: u64,
    pub images_cached: u64,
    /// Tag prompts embedded (the rest came from the embedding cache).
    pub words_embedded: u64,
    pub words_cached: u64,
    /// Text embeddings of clip-text fields that read the tags, computed again (the rest came
    /// from the embedding cache).
    pub texts_embedded: u64,
    pub texts_cached: u64,
    pub commits: u64,
    /// Seconds.
    pub elapsed: f64,
}

/// A field whose tags were chosen again.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = RetaggedField)]
pub struct RetaggedFieldBody {
    pub field: String,
    pub plugin: String,
    /// Words in the plugin's vocabulary now.
    pub words: usize,
    /// Words new since the documents were tagged, and words gone (0 when not known or forced).
    pub added: usize,
    pub removed: usize,
}

impl From<RetaggedField> for RetaggedFieldBody {
    fn from(f: RetaggedField) -> Self {
        RetaggedFieldBody {
            field: f.field,
            plugin: f.plugin,
            words: f.words,
            added: f.added,
            removed: f.removed,
        }
    }
}

impl From<RetagReport> for RetagReportBody {
    fn from(r: RetagReport) -> Self {
        RetagReportBody {
            fields: r.fields.into_iter().map(Into::into).collect(),
            up_to_date: r.up_to_date,
            checked: r.checked,
            changed: r.changed,
            failed: r.failed,
            errors: r.errors.into_iter().map(Into::into).collect(),
            images_embedded: r.images_embedded,
            images_cached: r.images_cached,
            words_embedded: r.words_embedded,
            words_cached: r.words_cached,
            texts_embedded: r.texts_embedded,
            texts_cached: r.texts_cached,
            commits: r.commits,
            elapsed: r.elapsed.as_secs_f64(),
        }
    }
}
