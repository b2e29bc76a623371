//! The trait a plugin implements. Only `describe` is required; the defaults give a reasonable
//! general-purpose plugin.

use crate::helpers;
use crate::{Candidate, Candidates, Description, FuseError, Request};

/// The reranker instruction Qwen3-Reranker's model card uses by default.
pub const DEFAULT_INSTRUCTION: &str = "Given a web search query, retrieve relevant passages that answer the query";

/// A ranking plugin. Every method is called with fresh inputs; a plugin keeps no state between
/// calls (each query runs in a fresh instance).
pub trait Plugin {
    /// Name, version, scenarios, rerank window and tag vocabulary.
    fn describe() -> Description;

    /// The reranker instruction for a request.
    fn instruction(_req: &Request) -> String {
        DEFAULT_INSTRUCTION.to_owned()
    }

    /// The text the reranker reads for a candidate: every field as `name: value`, then tags and
    /// caption.
    fn render(_req: &Request, candidate: &Candidate) -> String {
        helpers::render_fields(candidate, &[])
    }

    /// How many candidates to rerank: the plugin's window, cut early where the retrieval
    /// scores fall off a cliff (see [`helpers::adaptive_depth`]).
    fn rerank_depth(_req: &Request, retrieval_scores: &[f32]) -> u32 {
        helpers::adaptive_depth(retrieval_scores, Self::describe().rerank_window as usize, 10, 0.5) as u32
    }

    /// The fields `fuse` reads (stored field names, or `id`, `tags`, `caption`): only these
    /// cross the boundary, as columns.
    const FUSE_FIELDS: &'static [&'static str] = &[];

    /// Final scores from the candidates column-wise. By default, candidates are rebuilt from
    /// the columns (with the fields of [`Self::FUSE_FIELDS`]) and given to [`Self::fuse_rows`].
    fn fuse(req: &Request, candidates: &Candidates) -> Result<Vec<f32>, FuseError> {
        Self::fuse_rows(req, &candidates.rows())
    }

    /// Final scores, one candidate at a time: the reranker's P(yes) when present, blended with
    /// the retrieval score relative to the best; the relative retrieval score alone otherwise.
    fn fuse_rows(_req: &Request, candidates: &[Candidate]) -> Result<Vec<f32>, FuseError> {
        Ok(helpers::blend_stages(candidates, 0.7))
    }
}
