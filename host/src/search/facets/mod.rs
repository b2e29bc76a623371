//! Facet counts over the documents a search matches, and facet filters (the values a user has
//! ticked).
//!
//! **The matching set** of a search is what its retrievers let through, under the filter: every
//! document the BM25 query matches (not only the top `candidates`; with `min_score.bm25`, those
//! scoring at least that), plus the kNN candidates (the `candidates` nearest; with
//! `min_score.vector`, those at least that similar), plus, for a filter-only search, every
//! document the filter passes. Counts are of documents in that set, each value counted once per
//! document.
//!
//! **Facet filters** (`facet_filters`: field -> values) narrow the search like the filter does
//! (values of one field are ORed, fields are ANDed), and follow the disjunctive rule shops use:
//! the counts of a field that has facet filters are taken as if that field's own facet filters
//! were off (the kNN candidates found again under that looser filter), so ticking "acme" still
//! shows how many "globex" there would be. Every other field's counts respect every facet filter.
//!
//! Counting reads tantivy's fast-field columns (keyword, facet, numeric, date and bool fields are
//! all columnar in Mira's schema). It is hand-written rather than tantivy's aggregations because
//! shops need calendar intervals (months, years) and facet-path children, which those do not
//! offer, and because one disjunctive pass per ticked field needs its own document set.

mod count;
mod matching;
mod refine;
mod request;
mod spec;

pub(crate) use count::count;
pub use count::{FacetBucket, FacetCounts};
pub(crate) use matching::counts;
pub(crate) use refine::{Refinement, combine, refinements};
pub use request::{FacetRange, FacetRequest, MAX_FACET_BUCKETS, MAX_FACET_FILTER_VALUES, MAX_FACET_SIZE, MAX_FACETS};
pub(crate) use spec::{FacetSpec, resolve};
