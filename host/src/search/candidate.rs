//! One record per fused candidate, carried through the stages after retrieval and updated in
//! place by each: where it is, its stored document (read once, when a stage first needs it), its
//! retrieval score and ranks, the reranker's verdict, the plugin's score, and the final score.
//! The hits of the response are built from these records; nothing is joined back afterwards.

use tantivy::schema::Value;
use tantivy::{DocAddress, Searcher, TantivyDocument};

use super::fusion::{Contribution, Fused};
use crate::collection::Collection;
use crate::error::Result;
use crate::schema::{FieldKind, SourceKind};

/// A stored field named `tags` (text or keyword), or computed with `source = "clip-tags"`, is
/// the candidate's tags (for plugins and the reranker's rendering).
pub const TAGS_FIELD: &str = "tags";
/// A stored text field named `caption`, or computed with `source = "caption"`, is the
/// candidate's caption.
pub const CAPTION_FIELD: &str = "caption";

/// A candidate after fusion.
pub(crate) struct Candidate {
    pub address: DocAddress,
    doc: Option<TantivyDocument>,
    /// The fused retrieval score and the lists it was summed from.
    pub retrieval: Fused<DocAddress>,
    /// 1-based rank after fusion.
    pub retrieval_rank: usize,
    /// The reranker's verdict, when the candidate was in its window.
    pub rerank: Option<RerankVerdict>,
    /// The ranking plugin's score, when a plugin ordered the candidates.
    pub plugin_score: Option<f32>,
    /// The score of the final order (the plugin's, else P("yes"), else the retrieval score).
    pub score: f32,
    /// The value of the `group_by` field, when the search groups.
    pub group: Option<String>,
    /// Which of the document's vectors the kNN query matched best, when not its first (an
    /// image list's position).
    pub matched: Option<u16>,
}

/// What the reranker said of a candidate.
pub(crate) struct RerankVerdict {
    pub p_yes: f32,
    /// 1-based rank by P("yes") among the reranked candidates.
    pub rank: usize,
    /// The text the reranker read.
    pub text: String,
}

impl Candidate {
    /// The record of the fused candidate at 1-based `rank`.
    pub fn new(retrieval: Fused<DocAddress>, rank: usize) -> Self {
        Candidate {
            address: retrieval.key,
            doc: None,
            score: retrieval.score,
            retrieval,
            retrieval_rank: rank,
            rerank: None,
            plugin_score: None,
            group: None,
            matched: None,
        }
    }

    /// The stored document, read from the snapshot the first time it is asked for.
    pub fn doc(&mut self, searcher: &Searcher) -> Result<&TantivyDocument> {
        if self.doc.is_none() {
            self.doc = Some(searcher.doc(self.address)?);
        }
        Ok(self.doc.as_ref().expect("read above"))
    }

    /// A retriever's contribution (`bm25`, `vector`), when that list found the candidate.
    pub fn stage(&self, list: &str) -> Option<&Contribution> {
        self.retrieval.contributions.iter().find(|c| c.list == list)
    }
}

/// A stored value, typed by its field's kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StoredValue {
    Text(String),
    Keyword(String),
    Facet(String),
    Number(f64),
    Integer(i64),
    Boolean(bool),
    /// Seconds since 1970.
    Date(i64),
}

/// What a candidate says about itself to the reranker and to plugins: its stored fields in
/// schema order, with the tags and caption apart (they are not repeated among the fields).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CandidateFields {
    pub fields: Vec<(String, StoredValue)>,
    pub tags: Vec<String>,
    /// One caption per image (an image list has several).
    pub captions: Vec<String>,
    pub has_image: bool,
}

impl CandidateFields {
    /// Reads the typed fields of a stored document.
    pub fn of(c: &Collection, doc: &TantivyDocument) -> Self {
        let mut out = CandidateFields::default();
        let source = |name: &str| c.schema().computed_field(name).map(|s| &s.kind);
        for (spec, field) in c.fields().iter() {
            let is_tags = spec.name == TAGS_FIELD || matches!(source(&spec.name), Some(SourceKind::ClipTags { .. }));
            let is_caption =
                spec.name == CAPTION_FIELD || matches!(source(&spec.name), Some(SourceKind::Caption { .. }));
            for v in doc.get_all(*field) {
                let value = match spec.kind {
                    FieldKind::Text { .. } => v.as_str().map(|s| StoredValue::Text(s.to_owned())),
                    FieldKind::Keyword => v.as_str().map(|s| StoredValue::Keyword(s.to_owned())),
                    FieldKind::Facet => v.as_facet().map(|f| StoredValue::Facet(crate::document::facet_path(f))),
                    FieldKind::I64 => v.as_i64().map(StoredValue::Integer),
                    FieldKind::U64 => v.as_u64().map(|x| StoredValue::Integer(x.min(i64::MAX as u64) as i64)),
                    FieldKind::F64 => v.as_f64().map(StoredValue::Number),
                    FieldKind::Bool => v.as_bool().map(StoredValue::Boolean),
                    FieldKind::Date => v.as_datetime().map(|d| StoredValue::Date(d.into_timestamp_secs())),
                    FieldKind::Image => {
                        out.has_image = true;
                        None
                    }
                    FieldKind::Vector(_) => None,
                };
                let Some(value) = value else { continue };
                match value {
                    StoredValue::Text(s) | StoredValue::Keyword(s) if is_tags => out.tags.push(s),
                    StoredValue::Text(s) if is_caption => out.captions.push(s),
                    value => out.fields.push((spec.name.clone(), value)),
                }
            }
        }
        out
    }

    /// The built-in text of a candidate for the reranker: `name: value` lines, then the tags
    /// and the caption (as the plugin SDK's `render_fields`).
    pub fn render(&self) -> String {
        let mut lines: Vec<String> = self
            .fields
            .iter()
            .map(|(name, value)| {
                let v = match value {
                    StoredValue::Text(s) | StoredValue::Keyword(s) | StoredValue::Facet(s) => s.clone(),
                    StoredValue::Number(x) => x.to_string(),
                    StoredValue::Integer(x) => x.to_string(),
                    StoredValue::Boolean(b) => b.to_string(),
                    StoredValue::Date(secs) => time::OffsetDateTime::from_unix_timestamp(*secs)
                        .map(|d| d.date().to_string())
                        .unwrap_or_else(|_| secs.to_string()),
                };
                format!("{name}: {v}")
            })
            .collect();
        if !self.tags.is_empty() {
            lines.push(format!("tags: {}", self.tags.join(", ")));
        }
        match self.captions.as_slice() {
            [] => {}
            [one] => lines.push(format!("caption: {one}")),
            several => {
                for (i, caption) in several.iter().enumerate() {
                    lines.push(format!("caption {}: {caption}", i + 1));
                }
            }
        }
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fields as they are, then the tags and the caption (the host passes those apart from the
    /// fields, so a field whose value equals a tag is still a field).
    #[test]
    fn the_built_in_rendering() {
        let c = CandidateFields {
            fields: vec![
                ("title".into(), StoredValue::Text("Quay".into())),
                ("place".into(), StoredValue::Keyword("boat".into())),
                ("year".into(), StoredValue::Integer(1954)),
                ("taken".into(), StoredValue::Date(0)),
            ],
            tags: vec!["night".into(), "boat".into()],
            captions: vec!["boats in a harbour".into()],
            has_image: true,
        };
        assert_eq!(
            c.render(),
            "title: Quay\nplace: boat\nyear: 1954\ntaken: 1970-01-01\ntags: night, boat\ncaption: boats in a harbour"
        );
        let several = CandidateFields {
            captions: vec!["a red dress".into(), "the dress from behind".into()],
            tags: vec!["dress".into(), "red".into(), "back".into()],
            ..Default::default()
        };
        assert_eq!(
            several.render(),
            "tags: dress, red, back\ncaption 1: a red dress\ncaption 2: the dress from behind",
            "every image's caption, and the tags of all"
        );
    }
}
