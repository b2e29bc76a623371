//! Search, in the order a query lives it:
//!
//! 1. `plan`: the request resolved against the collection and validated, before any work
//!    (request > plugin > collection defaults).
//! 2. `retrieve`: BM25 and kNN (the [`crate::vector::KnnCollector`]) under one filter, fused
//!    ([`fuse`]) into one `candidate` record per document.
//! 3. `ranking`: the ranking plugin (its WIT types made only at the call, `to_plugin`) and
//!    Qwen3-Reranker, updating the records in place, then the final order.
//! 4. `hybrid`: the page of hits, each able to explain its score.

mod candidate;
pub mod facets;
mod filter;
mod fusion;
mod grouping;
mod hybrid;
mod plan;
mod ranking;
mod request;
mod response;
pub(crate) mod retrieve;
mod to_plugin;

pub use candidate::{CAPTION_FIELD, TAGS_FIELD};
pub(crate) use filter::parse_filter;
pub use filter::{MAX_QUERY_BYTES, MAX_QUERY_CLAUSES, MAX_QUERY_DEPTH};
pub use fusion::{Contribution, Fused, FusionMethod, Normalization, RankedList, fuse};
pub use grouping::MAX_GROUP_SIZE;
pub use hybrid::{search, search_with, search_with_plugin};
pub(crate) use plan::check_weight;
pub use ranking::{MAX_RERANK_WINDOW, RerankReport, RerankScore, SharedRunReport};
pub use request::{MAX_CANDIDATES, MAX_TOP_K, MinScore, SearchRequest};
pub use response::{
    Cuts, Explanation, FusionExplanation, Hit, InstructionUsed, SearchResponse, StageScore, VectorMatch,
    VectorSearchReport,
};
