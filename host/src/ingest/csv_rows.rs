//! CSV with a header row. Cells are text, so each is converted by its field's type: numbers and
//! booleans parsed, vectors read as `[0.1, 0.2]` or space-separated numbers; empty cells are absent.

use std::fs::File;
use std::path::Path;

use serde_json::{Map, Number, Value};

use super::RowError;
use super::source::{RowSource, SourceRow};
use crate::document::parse_vector_text;
use crate::error::{Error, Result};
use crate::schema::{CollectionSchema, FieldKind};

pub struct CsvSource {
    reader: csv::Reader<File>,
    headers: Vec<String>,
    kinds: Vec<Option<FieldKind>>,
    name: String,
    base_dir: std::path::PathBuf,
    record: csv::StringRecord,
    position: u64,
    total: u64,
    done: bool,
}

impl CsvSource {
    pub fn open(path: &Path, schema: &CollectionSchema) -> Result<Self> {
        let input = |source| Error::Input {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(input)?;
        let total = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(file);
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| input(std::io::Error::other(format!("bad CSV header: {e}"))))?
            .iter()
            .map(|h| h.trim().to_owned())
            .collect();
        let kinds = headers
            .iter()
            .map(|h| schema.field(h).map(|f| f.kind.clone()))
            .collect();
        Ok(CsvSource {
            reader,
            headers,
            kinds,
            name: path.display().to_string(),
            base_dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            record: csv::StringRecord::new(),
            position: 0,
            total,
            done: false,
        })
    }

    fn convert(&self, line: Option<u64>) -> Result<Map<String, Value>, RowError> {
        let mut object = Map::new();
        for ((header, kind), cell) in self.headers.iter().zip(&self.kinds).zip(self.record.iter()) {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            let fail = |m: String| RowError {
                field: Some(header.clone()),
                ..RowError::new(&self.name, line, m)
            };
            let value = match kind {
                Some(FieldKind::I64) => Value::from(
                    cell.parse::<i64>()
                        .map_err(|_| fail(format!("`{cell}` is not an integer")))?,
                ),
                Some(FieldKind::U64) => Value::from(
                    cell.parse::<u64>()
                        .map_err(|_| fail(format!("`{cell}` is not a non-negative integer")))?,
                ),
                Some(FieldKind::F64) => {
                    let f = cell
                        .parse::<f64>()
                        .ok()
                        .and_then(Number::from_f64)
                        .ok_or_else(|| fail(format!("`{cell}` is not a finite number")))?;
                    Value::Number(f)
                }
                Some(FieldKind::Bool) => Value::Bool(match cell.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => return Err(fail(format!("`{cell}` is not true or false"))),
                }),
                Some(FieldKind::Vector(_)) => Value::from(parse_vector_text(cell).map_err(fail)?),
                _ => Value::from(cell),
            };
            object.insert(header.clone(), value);
        }
        Ok(object)
    }
}

impl RowSource for CsvSource {
    fn next_row(&mut self) -> Option<Result<SourceRow, RowError>> {
        if self.done {
            return None;
        }
        match self.reader.read_record(&mut self.record) {
            Ok(false) => {
                self.done = true;
                self.position = self.total;
                None
            }
            Ok(true) => {
                let line = self.record.position().map(|p| p.line());
                self.position = self.record.position().map_or(self.position, |p| p.byte());
                Some(self.convert(line).map(|object| SourceRow {
                    source: self.name.clone(),
                    line,
                    object,
                    base_dir: self.base_dir.clone(),
                }))
            }
            Err(e) => {
                let line = e.position().map(|p| p.line());
                if !matches!(
                    e.kind(),
                    csv::ErrorKind::UnequalLengths { .. } | csv::ErrorKind::Utf8 { .. }
                ) {
                    self.done = true;
                }
                let message = match e.kind() {
                    csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                        format!("{len} columns where the header has {expected_len}")
                    }
                    csv::ErrorKind::Utf8 { .. } => "the row is not valid UTF-8".to_string(),
                    other => format!("cannot read CSV: {other:?}"),
                };
                Some(Err(RowError::new(&self.name, line, message)))
            }
        }
    }

    fn total(&self) -> u64 {
        self.total
    }

    fn position(&self) -> u64 {
        self.position
    }

    fn unit(&self) -> &'static str {
        "bytes"
    }
}
