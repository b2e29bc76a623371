//! JSON Lines: one JSON object per line; blank lines are skipped.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

use super::RowError;
use super::source::{RowSource, SourceRow};
use crate::error::{Error, Result};

pub struct JsonlSource {
    reader: BufReader<File>,
    name: String,
    base_dir: std::path::PathBuf,
    line: u64,
    position: u64,
    total: u64,
    buf: Vec<u8>,
    failed: bool,
}

impl JsonlSource {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|source| Error::Input {
            path: path.to_owned(),
            source,
        })?;
        let total = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(JsonlSource {
            reader: BufReader::with_capacity(1 << 20, file),
            name: path.display().to_string(),
            base_dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            line: 0,
            position: 0,
            total,
            buf: Vec::new(),
            failed: false,
        })
    }
}

impl RowSource for JsonlSource {
    fn next_row(&mut self) -> Option<Result<SourceRow, RowError>> {
        loop {
            if self.failed {
                return None;
            }
            self.buf.clear();
            let n = match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(n) => n,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(RowError::new(
                        &self.name,
                        Some(self.line + 1),
                        format!("read failed: {e}"),
                    )));
                }
            };
            self.line += 1;
            self.position += n as u64;
            let err = |m: String| Some(Err(RowError::new(&self.name, Some(self.line), m)));
            let Ok(text) = std::str::from_utf8(&self.buf) else {
                return err("the line is not valid UTF-8".into());
            };
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            return match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(object)) => Some(Ok(SourceRow {
                    source: self.name.clone(),
                    line: Some(self.line),
                    object,
                    base_dir: self.base_dir.clone(),
                })),
                Ok(_) => err("expected a JSON object ({...}) on each line".into()),
                Err(e) => err(format!(
                    "malformed JSON at column {}: {}",
                    e.column(),
                    strip_location(&e.to_string())
                )),
            };
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

/// serde_json appends " at line L column C"; the caller reports the location itself.
pub(crate) fn strip_location(msg: &str) -> &str {
    msg.rfind(" at line ").map_or(msg, |i| &msg[..i])
}
