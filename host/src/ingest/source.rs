//! Input formats as streams of JSON-object rows, each with its location.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::RowError;

/// One input row before schema conversion.
pub struct SourceRow {
    /// The file the row came from (for errors).
    pub source: String,
    pub line: Option<u64>,
    pub object: Map<String, Value>,
    /// Relative image paths in the row are resolved against this directory.
    pub base_dir: PathBuf,
}

/// A stream of rows with a notion of how far along it is.
pub trait RowSource {
    /// The next row, a bad row, or `None` at the end. A failure to read the input itself is
    /// reported as a bad row and ends the stream.
    fn next_row(&mut self) -> Option<Result<SourceRow, RowError>>;
    /// Total work in [`RowSource::unit`]s (bytes, or files).
    fn total(&self) -> u64;
    /// Work done so far, in the same unit.
    fn position(&self) -> u64;
    /// `"bytes"` or `"files"`.
    fn unit(&self) -> &'static str;
}

/// Rows held in memory (documents sent in a request): errors name `label` and the row's
/// 1-based position; image paths resolve against `base_dir`.
pub struct MemoryRows {
    label: String,
    base_dir: PathBuf,
    rows: std::vec::IntoIter<Map<String, Value>>,
    total: u64,
    done: u64,
}

impl MemoryRows {
    pub fn new(label: impl Into<String>, base_dir: PathBuf, rows: Vec<Map<String, Value>>) -> Self {
        MemoryRows {
            label: label.into(),
            base_dir,
            total: rows.len() as u64,
            rows: rows.into_iter(),
            done: 0,
        }
    }
}

impl RowSource for MemoryRows {
    fn next_row(&mut self) -> Option<Result<SourceRow, RowError>> {
        let object = self.rows.next()?;
        self.done += 1;
        Some(Ok(SourceRow {
            source: self.label.clone(),
            line: Some(self.done),
            object,
            base_dir: self.base_dir.clone(),
        }))
    }

    fn total(&self) -> u64 {
        self.total
    }

    fn position(&self) -> u64 {
        self.done
    }

    fn unit(&self) -> &'static str {
        "documents"
    }
}
