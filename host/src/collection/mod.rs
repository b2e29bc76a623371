//! Collections on disk: a directory per collection holding its schema, its tantivy index and its
//! derived vector matrices. [`Catalog`] finds them under a data directory.
//!
//! ```text
//! <data>/collections/<name>/collection.toml   the schema, as declared
//!                          /index/            tantivy: the source of truth
//!                          /vectors/          per-segment matrices, derived, rebuildable
//! ```

mod catalog;
mod stats;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tantivy::{Index, IndexReader, ReloadPolicy, Searcher};

pub use catalog::{Catalog, Incarnation};
pub use stats::{CollectionStats, VectorFieldStats};
pub use writer::CollectionWriter;

use crate::analyzer;
use crate::caption::Captioner;
use crate::embed::{ClipEmbedder, EmbeddingCache};
use crate::error::{Error, Result};
use crate::models::{ModelDType, ModelKind, parse_device, resolve_model, shared};
use crate::plugin::PluginRegistry;
use crate::rerank::Reranker;
use crate::schema::{CollectionSchema, FieldMap};
use crate::search::{SearchRequest, SearchResponse};
use crate::vector::VectorStore;

const SCHEMA_FILE: &str = "collection.toml";

/// An open collection: schema, index, reader and vector store.
pub struct Collection {
    dir: PathBuf,
    schema: CollectionSchema,
    fields: FieldMap,
    index: Index,
    reader: IndexReader,
    vectors: VectorStore,
    /// The models, looked up once per collection (searches ask on every query).
    clip: LazyModel<ClipEmbedder>,
    reranker: LazyModel<Reranker>,
    captioner: LazyModel<Captioner>,
    /// How long a model that failed to load is remembered before it is tried again.
    model_retry: Duration,
}

/// A model loaded (or found missing) on first use; a failure is kept as its message.
type LazyModel<T> = OnceLock<Option<Arc<T>>>;

/// Overrides the schema's `[models] clip`.
pub const CLIP_MODEL_ENV: &str = ModelKind::Clip.env_var();
/// Overrides the schema's `[models] captioner`.
pub const CAPTION_MODEL_ENV: &str = ModelKind::Captioner.env_var();
/// Overrides the schema's `[models] reranker`.
pub const RERANKER_MODEL_ENV: &str = ModelKind::Reranker.env_var();

impl Collection {
    /// Writes a new collection's files (schema, empty index) in `dir`, which must not exist
    /// yet. The catalog writes them aside and renames the directory into place, so no reader
    /// ever sees a collection half made.
    pub(crate) fn write_new(dir: &Path, schema: &CollectionSchema) -> Result<()> {
        let io = |what: &str, e| Error::io(format!("{what} {}", dir.display()), e);
        std::fs::create_dir_all(dir.join("index")).map_err(|e| io("creating", e))?;
        std::fs::write(dir.join(SCHEMA_FILE), &schema.source).map_err(|e| io("writing schema in", e))?;
        let fields = FieldMap::build(schema);
        Index::create_in_dir(dir.join("index"), fields.schema.clone())?;
        Ok(())
    }

    /// Opens the collection stored in `dir`, building any missing vector matrix.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, crate::models::DEFAULT_RETRY)
    }

    /// [`Self::open`], remembering a failed model load for `model_retry`.
    pub(crate) fn open_with(dir: &Path, model_retry: Duration) -> Result<Self> {
        let schema = CollectionSchema::from_file(&dir.join(SCHEMA_FILE))?;
        let fields = FieldMap::build(&schema);
        let index = Index::open_in_dir(dir.join("index"))?;
        if index.schema() != fields.schema {
            return Err(Error::SchemaMismatch { dir: dir.to_owned() });
        }
        analyzer::register(&index);
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let vectors = VectorStore::open(&dir.join("vectors"))?;
        let c = Collection {
            dir: dir.to_owned(),
            schema,
            fields,
            index,
            reader,
            vectors,
            clip: OnceLock::new(),
            reranker: OnceLock::new(),
            captioner: OnceLock::new(),
            model_retry,
        };
        c.sync_vectors()?;
        Ok(c)
    }

    /// Picks up commits made since the last refresh (by this process or another).
    pub fn refresh(&self) -> Result<()> {
        self.reader.reload()?;
        self.sync_vectors()
    }

    /// Picks up the latest commit and waits until every segment's derived vector files are
    /// verified and its graphs built (searches meanwhile scan exactly), calling `progress` with
    /// the graph being built about twice a second.
    pub fn wait_for_vector_indexes(&self, progress: &mut dyn FnMut(Option<&crate::vector::GraphBuild>)) -> Result<()> {
        self.refresh()?;
        self.vectors.wait_idle(progress);
        Ok(())
    }

    fn sync_vectors(&self) -> Result<()> {
        let searcher = self.reader.searcher();
        let fields: Vec<_> = self
            .schema
            .vector_fields()
            .map(|(f, spec)| (f.name.as_str(), spec))
            .collect();
        self.vectors.sync(&searcher, &fields)
    }

    /// The collection's CLIP model, loaded on first use (shared with every collection naming
    /// the same one): `MIRA_CLIP_MODEL`, else the schema's `[models] clip`; `None` when neither
    /// is set.
    pub fn clip(&self) -> Result<Option<Arc<ClipEmbedder>>> {
        self.model(
            &self.clip,
            ModelKind::Clip,
            self.schema.models.clip.as_deref(),
            "",
            |spec, device, dtype| ClipEmbedder::load(&resolve_model(spec, ModelKind::Clip)?, device, dtype),
        )
    }

    /// The collection's Qwen3-Reranker, loaded on first use: `MIRA_RERANKER_MODEL`, else the
    /// schema's `[models] reranker`; `None` when neither is set.
    pub fn reranker(&self) -> Result<Option<Arc<Reranker>>> {
        let max_length = self.schema.models.rerank_max_length;
        self.model(
            &self.reranker,
            ModelKind::Reranker,
            self.schema.models.reranker.as_deref(),
            &max_length.to_string(),
            |spec, device, dtype| Reranker::load(&resolve_model(spec, ModelKind::Reranker)?, device, dtype, max_length),
        )
    }

    /// The collection's BLIP captioner, loaded on first use: `MIRA_CAPTION_MODEL`, else the
    /// schema's `[models] captioner`; `None` when neither is set.
    pub fn captioner(&self) -> Result<Option<Arc<Captioner>>> {
        self.model(
            &self.captioner,
            ModelKind::Captioner,
            self.schema.models.captioner.as_deref(),
            "",
            |spec, device, dtype| Captioner::load(&resolve_model(spec, ModelKind::Captioner)?, device, dtype),
        )
    }

    /// The persistent embedding cache of `clip`, shared by every collection of this data
    /// directory (`<data>/embedding-cache/`).
    pub fn embedding_cache(&self, clip: &ClipEmbedder) -> Result<Arc<EmbeddingCache>> {
        self.cache_file(clip.fingerprint()?, clip.dim())
    }

    /// The cache of `captioner`'s captions of at most `max_tokens` tokens, beside the embedding
    /// caches: a caption is kept as its token ids (exact in f32), `-1` after its end.
    pub fn caption_cache(&self, captioner: &Captioner, max_tokens: usize) -> Result<Arc<EmbeddingCache>> {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("caption|{}|{max_tokens}", captioner.fingerprint()?));
        let fingerprint: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.cache_file(&fingerprint, max_tokens)
    }

    /// The cache file of the model with `fingerprint`, shared by every collection of this data
    /// directory (`<data>/embedding-cache/`).
    fn cache_file(&self, fingerprint: &str, dim: usize) -> Result<Arc<EmbeddingCache>> {
        let root = match self.dir.parent() {
            Some(p) if p.file_name().is_some_and(|n| n == "collections") => p.parent().unwrap_or(p),
            _ => &self.dir,
        };
        let dir = root.join("embedding-cache");
        let key = format!("{}|{fingerprint}", dir.display());
        shared(&key, self.model_retry, || {
            EmbeddingCache::open(&dir, fingerprint, dim).map_err(crate::models::ModelError::Files)
        })
        .map_err(|e| Error::model_load(e, self.model_retry))
    }

    /// The model of `kind` for this collection: once resolved (environment, then schema), kept;
    /// taken from the process-wide set so collections naming the same model share it. A model
    /// that cannot be loaded is not kept: the process-wide set retries it after the catalog's
    /// model retry interval, and until then answers [`Error::ModelUnavailable`] at once.
    fn model<T: Send + Sync + 'static>(
        &self,
        cell: &LazyModel<T>,
        kind: ModelKind,
        configured: Option<&str>,
        extra: &str,
        load: impl FnOnce(&str, &candle_core::Device, ModelDType) -> std::result::Result<T, crate::models::ModelError>,
    ) -> Result<Option<Arc<T>>> {
        if let Some(model) = cell.get() {
            return Ok(model.clone());
        }
        let from_env = std::env::var(kind.env_var()).ok().filter(|s| !s.is_empty());
        let model = match from_env.as_deref().or(configured) {
            None => None,
            Some(spec) => {
                let m = &self.schema.models;
                let dtype = match kind {
                    ModelKind::Reranker => m.reranker_dtype.as_deref().unwrap_or(&m.dtype),
                    _ => &m.dtype,
                };
                let key = format!("{spec}|{}|{dtype}|{extra}", m.device);
                let loaded = shared(&key, self.model_retry, || {
                    load(spec, &parse_device(&m.device)?, ModelDType::parse(dtype)?)
                });
                Some(loaded.map_err(|e| Error::model_load(e, self.model_retry))?)
            }
        };
        Ok(cell.get_or_init(|| model).clone())
    }

    /// The stored fields of the document with this id, in the current snapshot.
    pub fn document(&self, id: &str) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
        use tantivy::collector::TopDocs;
        use tantivy::query::TermQuery;
        use tantivy::schema::IndexRecordOption;
        let searcher = self.searcher();
        let term = tantivy::Term::from_field_text(self.fields.id, id);
        let query = TermQuery::new(term, IndexRecordOption::Basic);
        let top = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
        let Some((_, address)) = top.first() else {
            return Ok(None);
        };
        let doc: tantivy::TantivyDocument = searcher.doc(*address)?;
        Ok(Some(crate::document::stored_to_json(&doc, &self.fields)))
    }

    /// A writer; only one may exist per collection at a time, across processes.
    pub fn writer(&self) -> Result<CollectionWriter<'_>> {
        CollectionWriter::new(self)
    }

    /// Runs a search on the current snapshot.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResponse> {
        crate::search::search(self, req)
    }

    /// Runs a search with ranking plugins available (the request picks one by name or scenario).
    pub fn search_with(&self, req: &SearchRequest, plugins: Option<&PluginRegistry>) -> Result<SearchResponse> {
        crate::search::search_with(self, req, plugins)
    }

    pub fn name(&self) -> &str {
        &self.schema.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn schema(&self) -> &CollectionSchema {
        &self.schema
    }

    pub fn fields(&self) -> &FieldMap {
        &self.fields
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn vectors(&self) -> &VectorStore {
        &self.vectors
    }

    /// The current snapshot.
    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }
}
