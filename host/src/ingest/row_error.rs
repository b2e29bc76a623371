//! A row that could not be indexed, located precisely enough to fix it.

use std::fmt;

use serde::Serialize;

/// A bad input row: which file, which line, which document and field, and why.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
pub struct RowError {
    /// The input file (or image) the row came from.
    pub file: String,
    /// 1-based line in `source`, where lines apply.
    pub line: Option<u64>,
    /// The row's id, when it could be read.
    pub id: Option<String>,
    /// The offending field, when one is to blame.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(id) = &self.id {
            write!(f, " (id `{id}`)")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl RowError {
    pub(crate) fn new(source: &str, line: Option<u64>, message: impl Into<String>) -> Self {
        RowError {
            file: source.to_owned(),
            line,
            id: None,
            field: None,
            message: message.into(),
        }
    }
}
