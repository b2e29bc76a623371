//! Search data to the WIT types a plugin receives.

use tantivy::TantivyDocument;
use tantivy::schema::Value;

use super::wit::{Candidate, Field, FieldValue, Param, Request, StageScores};
use crate::collection::Collection;
use crate::schema::{FieldKind, SourceKind};
use crate::search::{Fused, SearchRequest};

/// A stored field named `tags` (text or keyword), or computed with `source = "clip-tags"`, is
/// passed to plugins as the candidate's tags.
pub const TAGS_FIELD: &str = "tags";
/// A stored text field named `caption`, or computed with `source = "caption"`, is passed as the
/// candidate's caption.
pub const CAPTION_FIELD: &str = "caption";

pub(crate) fn request(req: &SearchRequest, now: i64) -> Request {
    Request {
        query: req.text.clone().unwrap_or_default(),
        has_image_query: req.image.is_some() || req.image_bytes.is_some(),
        scenario: req.scenario.clone(),
        params: req
            .params
            .iter()
            .map(|(k, v)| Param {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        now,
    }
}

pub(crate) fn candidate<K>(c: &Collection, doc: &TantivyDocument, id: String, f: &Fused<K>, rank: u32) -> Candidate {
    let mut fields = Vec::new();
    let mut tags = Vec::new();
    let mut caption = None;
    let mut has_image = false;
    let source = |name: &str| c.schema().computed_field(name).map(|s| &s.kind);
    for (spec, field) in c.fields().iter() {
        let is_tags = spec.name == TAGS_FIELD || matches!(source(&spec.name), Some(SourceKind::ClipTags { .. }));
        let is_caption = spec.name == CAPTION_FIELD || matches!(source(&spec.name), Some(SourceKind::Caption { .. }));
        for v in doc.get_all(*field) {
            let value = match spec.kind {
                FieldKind::Text { .. } => v.as_str().map(|s| FieldValue::Text(s.to_owned())),
                FieldKind::Keyword => v.as_str().map(|s| FieldValue::Keyword(s.to_owned())),
                FieldKind::Facet => v.as_facet().map(|f| FieldValue::Facet(crate::document::facet_path(f))),
                FieldKind::I64 => v.as_i64().map(FieldValue::Integer),
                FieldKind::U64 => v.as_u64().map(|x| FieldValue::Integer(x.min(i64::MAX as u64) as i64)),
                FieldKind::F64 => v.as_f64().map(FieldValue::Number),
                FieldKind::Bool => v.as_bool().map(FieldValue::Boolean),
                FieldKind::Date => v.as_datetime().map(|d| FieldValue::Date(d.into_timestamp_secs())),
                FieldKind::Image => {
                    has_image = true;
                    None
                }
                FieldKind::Vector(_) => None,
            };
            let Some(value) = value else { continue };
            // Tags and the caption travel as the candidate's own, not again among its fields.
            match &value {
                FieldValue::Text(s) | FieldValue::Keyword(s) if is_tags => {
                    tags.push(s.clone());
                    continue;
                }
                FieldValue::Text(s) if is_caption => {
                    caption = Some(s.clone());
                    continue;
                }
                _ => {}
            }
            fields.push(Field {
                name: spec.name.clone(),
                value,
            });
        }
    }
    let stage = |name: &str| f.contributions.iter().find(|x| x.list == name);
    Candidate {
        id,
        fields,
        scores: StageScores {
            bm25: stage("bm25").map(|x| x.raw),
            bm25_rank: stage("bm25").map(|x| x.rank as u32),
            vector: stage("vector").map(|x| x.raw),
            vector_rank: stage("vector").map(|x| x.rank as u32),
            retrieval: f.score,
            retrieval_rank: rank,
            rerank: None,
        },
        tags,
        caption,
        has_image,
    }
}
