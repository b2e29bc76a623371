//! Stored documents back to JSON for hits: single values as scalars, multi-valued as arrays,
//! dates as RFC 3339.

use serde_json::{Map, Value as Json};
use tantivy::TantivyDocument;
use tantivy::schema::{Facet, Value};
use time::format_description::well_known::Rfc3339;

use crate::schema::{FieldKind, FieldMap};

/// A stored facet (tantivy's encoded form, segments separated by NUL) as its `/a/b` path.
pub fn facet_path(encoded: &str) -> String {
    Facet::from_path(encoded.split('\0')).to_path_string()
}

/// The stored fields of a document (the id excluded: hits carry it separately).
pub fn stored_to_json(doc: &TantivyDocument, fields: &FieldMap) -> Map<String, Json> {
    let mut out = Map::new();
    for (spec, field) in fields.iter() {
        if !spec.stored {
            continue;
        }
        let values: Vec<Json> = doc
            .get_all(*field)
            .filter_map(|v| match spec.kind {
                FieldKind::Text { .. } | FieldKind::Keyword | FieldKind::Image => v.as_str().map(Json::from),
                FieldKind::Facet => v.as_facet().map(|f| Json::from(facet_path(f))),
                FieldKind::I64 => v.as_i64().map(Json::from),
                FieldKind::U64 => v.as_u64().map(Json::from),
                FieldKind::F64 => v.as_f64().map(Json::from),
                FieldKind::Bool => v.as_bool().map(Json::from),
                FieldKind::Date => v
                    .as_datetime()
                    .and_then(|d| d.into_utc().format(&Rfc3339).ok())
                    .map(Json::from),
                FieldKind::Vector(_) => None,
            })
            .collect();
        match values.len() {
            0 => {}
            1 => {
                out.insert(spec.name.clone(), values.into_iter().next().expect("one value"));
            }
            _ => {
                out.insert(spec.name.clone(), Json::Array(values));
            }
        }
    }
    out
}
