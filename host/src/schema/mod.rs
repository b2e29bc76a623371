//! Collection schemas: what a collection holds, declared in TOML, validated before anything is
//! written. [`CollectionSchema`] is the user's declaration; [`FieldMap`] binds it to tantivy.
//!
//! Invariant: a schema that parsed is internally consistent (names valid and unique, options only
//! where they apply, defaults referring to fields of the right type), so later code never re-checks.

mod collection_schema;
mod field;
mod field_map;

pub use collection_schema::{
    CollectionSchema, ComputedField, IngestDefaults, MAX_EF, MAX_HNSW_M, ModelSettings, SearchDefaults, SourceKind,
    valid_collection_name,
};
pub(crate) use collection_schema::{MAX_TAG_VOCABULARY, distinct_words};
pub use field::{
    Analyzer, FieldKind, FieldSpec, HnswParams, IndexKind, Metric, Quantization, VectorDtype, VectorIndex, VectorSpec,
};
pub use field_map::FieldMap;
