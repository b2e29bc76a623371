//! The API's own request and response types: what the server accepts and returns, and so what
//! the OpenAPI document describes. Each converts to or from the engine's type (the engine knows
//! nothing of HTTP or OpenAPI), so a change on one side is a compile error on the other.

mod collections;
mod eval;
mod ingest;
mod names;
mod plugins;
mod results;
mod retag;
mod search;

pub use collections::{CollectionStatsBody, VectorFieldStatsBody};
pub use eval::{AgainstBody, EvalBody, EvalResults};
pub use ingest::{IngestReportBody, RowErrorBody};
pub use names::{CollectionName, PluginName};
pub use plugins::{PluginFailureBody, PluginInfoBody, PluginScoreBody, RankingReportBody, RankingStatusBody};
pub use results::{
    ContributionBody, ExplanationBody, FusionExplanationBody, HitBody, IllustrateBody, IllustrationBody, ImageRoutes,
    ParagraphPicturesBody, PictureBody, RerankReportBody, RerankScoreBody, SearchResults, StageScoreBody,
};
pub use retag::{RetagBody, RetagReportBody, RetaggedFieldBody};
pub use search::{FusionBody, NormalizationBody, SearchBody, SearchUpload};
