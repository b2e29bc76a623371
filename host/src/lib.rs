//! # mira-host: the Mira engine
//!
//! Collections of text and images in a tantivy index, searched by BM25 and by vector kNN under
//! one filter, with the candidate lists fused and every hit able to explain its score.
//!
//! ```no_run
//! use mira_host::{Catalog, CollectionSchema, SearchRequest, ingest};
//! # fn main() -> mira_host::Result<()> {
//! let catalog = Catalog::new("mira-data".as_ref());
//! let schema = CollectionSchema::from_file("configs/products.toml".as_ref())?;
//! let products = catalog.create(schema)?;
//! ingest::ingest(&products, "products.jsonl".as_ref(), &Default::default(), &ingest::NoProgress)?;
//! let mut req = SearchRequest::text("red dress");
//! req.filter = Some("price:[10 TO 80]".into());
//! for hit in products.search(&req)?.hits {
//!     println!("{} {:.3} {}", hit.id, hit.score, hit.fields["title"]);
//! }
//! # Ok(()) }
//! ```
//!
//! ## Architecture
//! - [`schema`]: the TOML declaration of a collection ([`CollectionSchema`]) and its tantivy
//!   binding ([`schema::FieldMap`]).
//! - [`collection`]: a collection on disk ([`Collection`]), its writer and the [`Catalog`].
//! - [`document`]: input rows to tantivy documents and stored documents back to JSON.
//! - [`ingest`]: JSONL, CSV and image folders, batched commits, bad-row reports.
//! - [`vector`]: per-segment matrix files derived from the index, SIMD kernels, per-segment kNN.
//! - [`search`]: the request, BM25 + kNN under one filter, fusion ([`search::fuse`]), explanations.
//! - [`embed`]: CLIP text and image embeddings on candle, and the persistent embedding cache.
//! - [`analyzer`]: the default, English and Chinese (jieba) text analyzers.
//! - [`plugin`]: ranking plugins (wasm components): runtime, limits, registry, hot swap, and the
//!   search stage that applies them with a fallback.
//! - [`models`]: model files (directories or the Hugging Face cache/hub), devices, dtypes.
//! - [`rerank`]: Qwen3-Reranker on candle (its own Qwen3 forward with prefix KV reuse).
//! - [`illustrate`]: pictures for each paragraph of an article, none used twice.
//! - [`demo`]: a generated product catalogue for `mira demo` and tests.

pub mod analyzer;
pub mod caption;
pub mod collection;
pub mod config;
pub mod demo;
pub mod document;
pub mod embed;
mod error;
pub mod illustrate;
pub mod image_file;
pub mod ingest;
pub mod models;
pub mod plugin;
pub mod rerank;
pub mod schema;
pub mod search;
pub mod vector;

pub use collection::{Catalog, Collection, CollectionStats};
pub use error::{Error, Fault, QueryError, Result};
pub use schema::CollectionSchema;
pub use search::{Hit, SearchRequest, SearchResponse};
