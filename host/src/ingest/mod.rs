//! Ingest: JSONL, CSV or a folder of images into a collection, in batched atomic commits, with
//! every bad row reported by file, line and reason.
//!
//! Invariants: a document is committed whole or not at all (tantivy commits are atomic and a
//! document's vectors are part of it); with [`OnError::Fail`] the uncommitted batch is rolled back
//! at the first bad row, and ids make a corrected re-run an idempotent upsert.

mod csv_rows;
mod embedding;
mod image_folder;
mod jsonl;
mod retag;
mod row_error;
mod source;
mod tag_record;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use image_folder::DEFAULT_SIDECAR;
pub use retag::{RetagOptions, RetagReport, RetaggedField, retag};
pub use row_error::RowError;
pub use source::{MemoryRows, RowSource, SourceRow};
pub use tag_record::{TagRecord, TaggedWith};

use self::embedding::{EmbedCounts, Embedder};
use crate::collection::{Collection, CollectionWriter};
use crate::document::{BuiltDocument, DocumentBuilder};
use crate::error::{Error, QueryError, Result};
use crate::schema::FieldKind;

/// What to do with a bad row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Stop, roll back the uncommitted batch, report the row.
    #[default]
    Fail,
    /// Report the row and go on.
    Skip,
}

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Jsonl,
    Csv,
    /// A folder of images, with an optional sidecar JSONL of fields.
    Images,
}

impl InputFormat {
    /// Guesses the format from the path: a directory holds images, else the extension decides.
    pub fn detect(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Ok(InputFormat::Images);
        }
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("jsonl" | "ndjson" | "json") => Ok(InputFormat::Jsonl),
            Some("csv") => Ok(InputFormat::Csv),
            _ if !path.exists() => Err(Error::Input {
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            }),
            _ => Err(QueryError::InputFormat(path.display().to_string()).into()),
        }
    }
}

/// How to run an ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// The input format; guessed from the path when `None`.
    pub format: Option<InputFormat>,
    pub on_error: OnError,
    /// Documents per commit; the collection's `[ingest] batch_size` when `None`.
    pub batch_size: Option<usize>,
    /// Sidecar JSONL for an image folder (default: `metadata.jsonl` inside it, if present).
    pub sidecar: Option<PathBuf>,
    /// Plugins' tag vocabularies by plugin name, for clip-tags fields whose vocabulary is
    /// `"plugin:NAME"` ([`crate::plugin::PluginRegistry::tag_vocabularies`]).
    pub vocabularies: std::collections::BTreeMap<String, Vec<String>>,
}

/// Receives progress; the CLI draws a bar with it.
pub trait Progress {
    /// The total amount of work, in `unit`s (`bytes` or `files`).
    fn start(&self, _total: u64, _unit: &'static str) {}
    /// Work done so far, rows read, and rows indexed.
    fn advance(&self, _position: u64, _rows: u64, _indexed: u64) {}
    /// Documents committed so far.
    fn committed(&self, _documents: u64) {}
    /// Model inference so far: vectors computed, taken from the cache, and computed per second
    /// of inference.
    fn embedded(&self, _computed: u64, _cached: u64, _per_sec: f64) {}
    fn finish(&self) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Rows kept in a report; the count goes on past it.
const MAX_REPORTED_ERRORS: usize = 100;

/// What an ingest did.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    /// Rows read (good and bad).
    pub rows: u64,
    /// Documents upserted.
    pub indexed: u64,
    /// Bad rows skipped.
    pub skipped: u64,
    /// The first bad rows (at most 100).
    pub errors: Vec<RowError>,
    /// What the ingest could not do for every row (a model that is not configured...).
    pub warnings: Vec<String>,
    pub commits: u64,
    /// Vectors computed by the model during this ingest.
    pub embedded: u64,
    /// Vectors taken from the embedding cache instead (same model, same content).
    pub embeddings_cached: u64,
    /// Seconds.
    #[serde(with = "secs")]
    pub elapsed: Duration,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

fn open_source(c: &Collection, path: &Path, opts: &IngestOptions) -> Result<Box<dyn RowSource>> {
    let format = match opts.format {
        Some(f) => f,
        None => InputFormat::detect(path)?,
    };
    Ok(match format {
        InputFormat::Jsonl => Box::new(jsonl::JsonlSource::open(path)?),
        InputFormat::Csv => Box::new(csv_rows::CsvSource::open(path, c.schema())?),
        InputFormat::Images => {
            let image_field = c
                .schema()
                .fields
                .iter()
                .find(|f| f.kind == FieldKind::Image)
                .ok_or_else(|| QueryError::NoImageField(c.name().to_owned()))?;
            Box::new(image_folder::ImageFolderSource::open(
                path,
                opts.sidecar.as_deref(),
                &c.schema().id_field,
                &image_field.name,
            )?)
        }
    })
}

/// Ingests one input into a collection.
pub fn ingest(c: &Collection, path: &Path, opts: &IngestOptions, progress: &dyn Progress) -> Result<IngestReport> {
    let source = open_source(c, path, opts)?;
    ingest_rows(c, source, opts, progress)
}

/// Ingests rows from any source (a file's, or [`MemoryRows`] for documents sent over HTTP).
pub fn ingest_rows(
    c: &Collection,
    mut source: Box<dyn RowSource>,
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<IngestReport> {
    let started = Instant::now();
    let builder = DocumentBuilder::new(c.schema(), c.fields());
    let mut report = IngestReport {
        rows: 0,
        indexed: 0,
        skipped: 0,
        errors: Vec::new(),
        warnings: Vec::new(),
        commits: 0,
        embedded: 0,
        embeddings_cached: 0,
        elapsed: Duration::ZERO,
    };
    let embedder = if c.schema().computed_fields.is_empty() {
        None
    } else {
        Embedder::new(c, &opts.vocabularies, &mut report.warnings)?
    };
    let mut sink = Sink {
        writer: c.writer()?,
        batch: opts.batch_size.unwrap_or(c.schema().ingest.batch_size).max(1) as u64,
        on_error: opts.on_error,
        committed: 0,
        pending: Vec::new(),
        embedder,
        inference: Duration::ZERO,
    };
    let tagging = TagRecording::start(c, sink.embedder.as_ref())?;
    progress.start(source.total(), source.unit());
    while let Some(item) = source.next_row() {
        report.rows += 1;
        let built = item.and_then(|row| {
            let id = row
                .object
                .get(&c.schema().id_field)
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .filter(|id| !id.trim().is_empty());
            let at = RowError {
                file: row.source,
                line: row.line,
                id,
                field: None,
                message: String::new(),
            };
            match builder.build(&row.object, &row.base_dir) {
                Ok(doc) => Ok((doc, at)),
                Err(e) => Err(RowError {
                    field: e.field,
                    message: e.message,
                    ..at
                }),
            }
        });
        match built {
            Ok((doc, at)) => {
                sink.pending.push((doc, at));
                if sink.embedder.is_none() || sink.pending.len() >= EMBED_BATCH {
                    sink.flush(&mut report, progress)?;
                }
            }
            Err(error) => sink.bad_row(error, &mut report, progress)?,
        }
        progress.advance(source.position(), report.rows, report.indexed);
    }
    sink.flush(&mut report, progress)?;
    if sink.writer.pending() > 0 {
        report.commits += 1;
        sink.writer.commit()?;
    }
    tagging.finish(c)?;
    sink.writer.finish()?;
    progress.committed(report.indexed);
    progress.finish();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// What an ingest does to the record of the words tag fields were chosen from ([`TagRecord`]),
/// with the writer held throughout. Before the first commit, the record stops vouching for a
/// plugin-vocabulary field this ingest tags with other words (or leaves untagged, with no CLIP
/// model): its documents will be tagged from two vocabularies. After the last commit, an
/// ingest into an empty collection records the words it used: every document has them.
struct TagRecording {
    /// (field, plugin, words) of the fields this ingest tags, when the collection was empty.
    used: Vec<(String, TaggedWith)>,
}

impl TagRecording {
    fn start(c: &Collection, embedder: Option<&Embedder>) -> Result<Self> {
        if !c.schema().needs_plugin_vocabularies() {
            return Ok(TagRecording { used: Vec::new() });
        }
        let used: Vec<(String, TaggedWith)> = embedder
            .map(|e| {
                e.plugin_vocabularies()
                    .map(|(field, plugin, words)| {
                        let tagged = TaggedWith {
                            plugin: plugin.to_owned(),
                            words: words.to_vec(),
                        };
                        (field.to_owned(), tagged)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut record = TagRecord::read(c.dir());
        let before = record.clone();
        record
            .fields
            .retain(|field, tagged| used.iter().any(|(f, t)| f == field && t == tagged));
        if record != before {
            record.write(c.dir())?;
        }
        // The latest commit, read with the writer held: no other writer adds documents.
        c.refresh()?;
        let empty = c.searcher().num_docs() == 0;
        Ok(TagRecording {
            used: if empty { used } else { Vec::new() },
        })
    }

    fn finish(self, c: &Collection) -> Result<()> {
        if self.used.is_empty() {
            return Ok(());
        }
        let mut record = TagRecord::read(c.dir());
        let before = record.clone();
        record.fields.extend(self.used);
        if record != before {
            record.write(c.dir())?;
        }
        Ok(())
    }
}

/// Rows embedded per model call.
const EMBED_BATCH: usize = 16;

/// Where built documents go: embedding, then the writer, with batched commits.
struct Sink<'a> {
    writer: CollectionWriter<'a>,
    batch: u64,
    on_error: OnError,
    committed: u64,
    pending: Vec<(BuiltDocument, RowError)>,
    embedder: Option<Embedder>,
    /// Time spent computing embeddings (and reading the cache).
    inference: Duration,
}

impl Sink<'_> {
    fn bad_row(&mut self, error: RowError, report: &mut IngestReport, progress: &dyn Progress) -> Result<()> {
        match self.on_error {
            OnError::Fail => {
                self.writer.rollback()?;
                progress.finish();
                Err(Error::IngestAborted {
                    error,
                    committed: self.committed,
                })
            }
            OnError::Skip => {
                tracing::debug!(%error, "skipping row");
                report.skipped += 1;
                if report.errors.len() < MAX_REPORTED_ERRORS {
                    report.errors.push(error);
                }
                Ok(())
            }
        }
    }

    fn flush(&mut self, report: &mut IngestReport, progress: &dyn Progress) -> Result<()> {
        let mut rows = std::mem::take(&mut self.pending);
        let failed = match &self.embedder {
            Some(e) => {
                let mut counts = EmbedCounts::default();
                let started = Instant::now();
                let failed = e.fill(&mut rows, &mut counts)?;
                self.inference += started.elapsed();
                report.embedded += counts.computed;
                report.embeddings_cached += counts.cached;
                let per_sec = report.embedded as f64 / self.inference.as_secs_f64().max(1e-9);
                progress.embedded(report.embedded, report.embeddings_cached, per_sec);
                failed
            }
            None => Vec::new(),
        };
        for (i, (doc, _)) in rows.into_iter().enumerate() {
            if let Some((_, error)) = failed.iter().find(|(j, _)| *j == i) {
                self.bad_row(error.clone(), report, progress)?;
                continue;
            }
            self.writer.upsert(doc)?;
            report.indexed += 1;
            if self.writer.pending() >= self.batch {
                self.writer.commit()?;
                report.commits += 1;
                self.committed = report.indexed;
                progress.committed(self.committed);
            }
        }
        Ok(())
    }
}
