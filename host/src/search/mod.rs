//! Search: the request, the retrievers (BM25 and vector kNN, under one filter), fusion of their
//! candidate lists, and hits that can explain their score.

mod filter;
mod fusion;
mod hybrid;
mod ranking;
mod request;
mod response;

pub(crate) use filter::parse_filter;
pub use fusion::{Contribution, Fused, FusionMethod, Normalization, RankedList, fuse};
pub use hybrid::{search, search_with, search_with_plugin};
pub use ranking::{MAX_RERANK_WINDOW, RerankReport, RerankScore};
pub use request::SearchRequest;
pub use response::{Explanation, FusionExplanation, Hit, SearchResponse, StageScore};
