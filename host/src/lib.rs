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
//!
//! `mira-host` is the engine: no HTTP, no async runtime. The HTTP API is the `mira-server`
//! crate, which converts its own request and response types to and from these; the `mira`
//! binary is glue for both; benchmarks live in `mira-bench`.
//!
//! ### The life of one query
//! 1. **Plan** (`search::plan`): a [`SearchRequest`] is resolved against the collection into a
//!    plan, validated before any work: page and candidate counts, fusion and weights, the parsed
//!    text query and filter, the vector field and where the query vector comes from (given, a
//!    query image, or the text through CLIP), the rerank window and instruction, the plugin.
//!    Values layer request > plugin > the collection's `[search]` defaults in that one place.
//! 2. **Retrieve** (`search::retrieve`): BM25 over the text fields and kNN over the vector field
//!    ([`vector::KnnCollector`], per segment, under the same filter), fused by
//!    [`search::fuse`] (RRF or linear) into one candidate record per document.
//! 3. **Rank** (`search::ranking`): the ranking plugin ([`plugin`]) gets the candidates as WIT
//!    types, made at that call only; Qwen3-Reranker ([`rerank`]) reads the top of the list
//!    (rendered by the plugin or by the built-in rendering); the plugin's `fuse`, else P("yes"),
//!    sets the final order. A failing plugin never fails the query: the built-in order is used
//!    and the failure reported.
//! 4. **Hits** (`search::hybrid`): the page, each hit with its stored fields and, when asked,
//!    an explanation of every stage's score.
//!
//! ### Modules
//! - [`schema`]: the TOML declaration of a collection ([`CollectionSchema`]) and its tantivy
//!   binding ([`schema::FieldMap`]).
//! - [`collection`]: a collection on disk ([`Collection`]), its writer and the [`Catalog`].
//! - [`document`]: input rows to tantivy documents and stored documents back to JSON.
//! - [`ingest`]: JSONL, CSV and image folders, batched commits, bad-row reports, and the fields
//!   computed at ingest (CLIP vectors, CLIP tags, BLIP captions).
//! - [`vector`]: per-segment matrix files derived from the index, SIMD kernels, the kNN
//!   collector over [`vector::SegmentVectorIndex`] (the exact scan today).
//! - [`search`]: the request, the plan, retrieval, fusion, ranking stages, responses.
//! - [`embed`]: CLIP text and image embeddings on candle, and the persistent embedding cache.
//! - [`caption`]: BLIP captions on candle.
//! - [`rerank`]: Qwen3-Reranker on candle (its own Qwen3 forward with prefix KV reuse).
//! - [`models`]: model files (directories or the Hugging Face cache/hub), devices, dtypes, the
//!   process-wide set of loaded models.
//! - [`plugin`]: ranking plugins (wasm components): runtime, limits, registry, hot swap. It
//!   knows wasmtime and the WIT types only.
//! - [`analyzer`]: the default, English and Chinese (jieba) text analyzers.
//! - [`illustrate`]: pictures for each paragraph of an article, none used twice.
//! - [`demo`]: a generated product catalogue for `mira demo` and tests.
//! - [`config`]: `mira.toml` (plugins, scenarios, plugin configuration).
//! - [`Error`]: one error type; each error knows its [`Fault`] (the caller's or the engine's)
//!   and a stable code ([`QueryError`] gives each query mistake its own).

pub mod analyzer;
pub mod caption;
pub mod collection;
pub mod config;
pub mod demo;
pub mod document;
pub mod embed;
mod error;
pub mod eval;
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
