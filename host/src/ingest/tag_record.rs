//! What the documents of a collection were tagged with: for each clip-tags field whose words
//! come from a plugin, the words every indexed document's tags were chosen from. A plugin whose
//! vocabulary differs from the record has changed it since: those fields need re-tagging
//! ([`super::retag`]). A field with no record (or one whose documents were tagged with more than
//! one vocabulary) is never taken as up to date.
//!
//! Kept as `tag-vocabularies.json` beside the index, written after the commit it describes
//! (temporary file, fsync, rename): a crash in between leaves the record behind the documents,
//! so the next re-tag checks them again, never the other way round.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const FILE: &str = "tag-vocabularies.json";

/// The words a field's documents were tagged with, and the plugin they came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaggedWith {
    pub plugin: String,
    pub words: Vec<String>,
}

/// The record of a collection, by field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    pub fields: BTreeMap<String, TaggedWith>,
}

impl TagRecord {
    fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// The collection's record; empty when it has none. A record that cannot be parsed is
    /// empty too (it only saves work: every field is then checked again).
    pub fn read(dir: &Path) -> TagRecord {
        let path = Self::path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "tag record unreadable: every tag field is checked again");
                TagRecord::default()
            }),
            Err(_) => TagRecord::default(),
        }
    }

    /// Whether every document's `field` was tagged with exactly these words of `plugin`.
    pub fn is_current(&self, field: &str, plugin: &str, words: &[String]) -> bool {
        self.fields
            .get(field)
            .is_some_and(|t| t.plugin == plugin && t.words == words)
    }

    /// Writes the record atomically ([`crate::vector::write_atomically`]).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let json = serde_json::to_vec_pretty(self).expect("a tag record serialises");
        crate::vector::write_atomically(&path, &json).map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }
}
