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
