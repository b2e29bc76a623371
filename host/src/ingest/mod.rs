//! Ingest: JSONL, CSV or a folder of images into a collection, in batched atomic commits, with
//! every bad row reported by file, line and reason.
//!
//! Invariants: a document is committed whole or not at all (tantivy commits are atomic and a
//! document's vectors are part of it); with [`OnError::Fail`] the uncommitted batch is rolled back
//! at the first bad row, and ids make a corrected re-run an idempotent upsert.

mod csv_rows;
mod image_folder;
mod jsonl;
mod row_error;
mod source;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use image_folder::DEFAULT_SIDECAR;
pub use row_error::RowError;

use self::source::RowSource;
use crate::collection::Collection;
use crate::document::DocumentBuilder;
use crate::error::{Error, Result};
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
            _ => Err(Error::Query(format!(
                "cannot tell the format of {} from its name: use .jsonl or .csv, a folder of images, or --format",
                path.display()
            ))),
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
}

/// Receives progress; the CLI draws a bar with it.
pub trait Progress {
    /// The total amount of work, in `unit`s (`bytes` or `files`).
    fn start(&self, _total: u64, _unit: &'static str) {}
    /// Work done so far, rows read, and rows indexed.
    fn advance(&self, _position: u64, _rows: u64, _indexed: u64) {}
    /// Documents committed so far.
    fn committed(&self, _documents: u64) {}
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
    pub commits: u64,
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
                .ok_or_else(|| {
                    Error::Query(format!(
                        "collection `{}` has no image field, so it cannot take a folder of images",
                        c.name()
                    ))
                })?;
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
    let started = Instant::now();
    let mut source = open_source(c, path, opts)?;
    let batch = opts.batch_size.unwrap_or(c.schema().ingest.batch_size).max(1);
    let builder = DocumentBuilder::new(c.schema(), c.fields());
    let mut writer = c.writer()?;
    let mut report = IngestReport {
        rows: 0,
        indexed: 0,
        skipped: 0,
        errors: Vec::new(),
        commits: 0,
        elapsed: Duration::ZERO,
    };
    let mut committed = 0u64;
    progress.start(source.total(), source.unit());
    while let Some(item) = source.next_row() {
        report.rows += 1;
        let built = item.and_then(|row| {
            builder.build(&row.object, &row.base_dir).map_err(|e| RowError {
                file: row.source,
                line: row.line,
                id: row
                    .object
                    .get(&c.schema().id_field)
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)),
                field: e.field,
                message: e.message,
            })
        });
        match built {
            Ok(doc) => {
                writer.upsert(doc)?;
                report.indexed += 1;
                if writer.pending() >= batch as u64 {
                    writer.commit()?;
                    report.commits += 1;
                    committed = report.indexed;
                    progress.committed(committed);
                }
            }
            Err(error) => match opts.on_error {
                OnError::Fail => {
                    writer.rollback()?;
                    progress.finish();
                    return Err(Error::IngestAborted { error, committed });
                }
                OnError::Skip => {
                    tracing::debug!(%error, "skipping row");
                    report.skipped += 1;
                    if report.errors.len() < MAX_REPORTED_ERRORS {
                        report.errors.push(error);
                    }
                }
            },
        }
        progress.advance(source.position(), report.rows, report.indexed);
    }
    if writer.pending() > 0 {
        report.commits += 1;
    }
    writer.finish()?;
    progress.committed(report.indexed);
    progress.finish();
    report.elapsed = started.elapsed();
    Ok(report)
}
