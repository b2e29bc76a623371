//! Input rows (JSON objects) to tantivy documents, with an error naming the field on every misfit.

use std::path::Path;

use serde_json::{Map, Value};
use tantivy::TantivyDocument;
use tantivy::schema::{Facet, Field};

use super::value::{parse_date, parse_vector_text};
use crate::image_file;
use crate::schema::{CollectionSchema, FieldKind, FieldMap, FieldSpec};
use crate::vector::codec;

/// Why a row does not fit the schema; `field` is `None` for whole-row problems.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: Option<String>,
    pub message: String,
}

impl FieldError {
    fn field(name: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: Some(name.to_owned()),
            message: message.into(),
        }
    }
}

/// Turns rows into documents for one collection.
pub struct DocumentBuilder<'a> {
    schema: &'a CollectionSchema,
    fields: &'a FieldMap,
}

/// A row ready to index: its external id and its tantivy document.
pub struct BuiltDocument {
    pub id: String,
    pub doc: TantivyDocument,
}

impl<'a> DocumentBuilder<'a> {
    pub fn new(schema: &'a CollectionSchema, fields: &'a FieldMap) -> Self {
        DocumentBuilder { schema, fields }
    }

    /// Converts one row. Relative image paths are resolved against `base_dir`.
    pub fn build(&self, row: &Map<String, Value>, base_dir: &Path) -> Result<BuiltDocument, FieldError> {
        let id_name = &self.schema.id_field;
        let id = match row.get(id_name) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(_)) => {
                return Err(FieldError::field(id_name, "id must not be empty or blank"));
            }
            Some(Value::Null) | None => {
                return Err(FieldError::field(
                    id_name,
                    "missing id (every row needs one, for upserts and deletes)",
                ));
            }
            Some(other) => {
                return Err(FieldError::field(
                    id_name,
                    format!("id must be a string or a number, got {}", kind(other)),
                ));
            }
        };
        let mut doc = TantivyDocument::new();
        doc.add_text(self.fields.id, &id);
        for (key, value) in row {
            if key == id_name || value.is_null() {
                continue;
            }
            match self.fields.get(key) {
                Some((spec, field)) => add_value(&mut doc, spec, *field, value, base_dir, self.schema)
                    .map_err(|m| FieldError::field(key, m))?,
                None if self.schema.ingest.ignore_unknown_fields => {}
                None => {
                    return Err(FieldError::field(
                        key,
                        format!(
                            "unknown field (collection `{}` declares: {}; or set [ingest] ignore_unknown_fields = true)",
                            self.schema.name,
                            self.schema
                                .fields
                                .iter()
                                .map(|f| f.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        for spec in self.schema.fields.iter().filter(|f| f.required) {
            if row.get(&spec.name).is_none_or(Value::is_null) {
                return Err(FieldError::field(&spec.name, "required field is missing"));
            }
        }
        Ok(BuiltDocument { id, doc })
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Scalars may come one at a time or as an array (a multi-valued field).
fn each(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) => items,
        single => std::slice::from_ref(single),
    }
}

fn add_value(
    doc: &mut TantivyDocument,
    spec: &FieldSpec,
    field: Field,
    value: &Value,
    base_dir: &Path,
    schema: &CollectionSchema,
) -> Result<(), String> {
    if let FieldKind::Vector(v) = &spec.kind {
        // One vector, or a list of them (one per image of a product, say): kNN scores the
        // document by its closest.
        let several = matches!(value, Value::Array(items) if items.first().is_some_and(Value::is_array));
        let vectors: Vec<&Value> = if several {
            each(value).iter().collect()
        } else {
            vec![value]
        };
        if vectors.len() > codec::MAX_VECTORS_PER_DOC {
            return Err(format!(
                "{} vectors where at most {} are taken",
                vectors.len(),
                codec::MAX_VECTORS_PER_DOC
            ));
        }
        for (n, value) in vectors.into_iter().enumerate() {
            let at = |m: String| if several { format!("vector {n}: {m}") } else { m };
            let values = match value {
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| {
                        x.as_f64()
                            .map(|f| f as f32)
                            .ok_or_else(|| at(format!("element {i} is {}, not a number", kind(x))))
                    })
                    .collect::<Result<Vec<f32>, String>>()?,
                Value::String(s) => parse_vector_text(s).map_err(at)?,
                other => {
                    return Err(at(format!(
                        "expected an array of {} numbers (or a list of such arrays), got {}",
                        v.dim,
                        kind(other)
                    )));
                }
            };
            doc.add_bytes(field, &codec::encode_nth(&values, v, n).map_err(at)?);
        }
        return Ok(());
    }
    if spec.kind == FieldKind::Image && each(value).len() > codec::MAX_VECTORS_PER_DOC {
        return Err(format!(
            "{} images where at most {} are taken",
            each(value).len(),
            codec::MAX_VECTORS_PER_DOC
        ));
    }
    for item in each(value) {
        match (&spec.kind, item) {
            (FieldKind::Text { .. } | FieldKind::Keyword, Value::String(s)) => doc.add_text(field, s),
            (FieldKind::Facet, Value::String(s)) => {
                let facet = Facet::from_text(s).map_err(|_| {
                    format!("`{s}` is not a facet path (it must start with `/`, like /clothing/dresses)")
                })?;
                doc.add_facet(field, facet);
            }
            (FieldKind::I64, Value::Number(n)) => {
                doc.add_i64(field, n.as_i64().ok_or_else(|| format!("{n} is not a 64-bit integer"))?)
            }
            (FieldKind::U64, Value::Number(n)) => doc.add_u64(
                field,
                n.as_u64().ok_or_else(|| format!("{n} is not a non-negative integer"))?,
            ),
            (FieldKind::F64, Value::Number(n)) => {
                let f = n
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| format!("{n} is not a finite number"))?;
                doc.add_f64(field, f)
            }
            (FieldKind::Bool, Value::Bool(b)) => doc.add_bool(field, *b),
            (FieldKind::Date, Value::String(s)) => doc.add_date(field, parse_date(s)?),
            (FieldKind::Date, Value::Number(n)) => {
                let secs = n
                    .as_i64()
                    .ok_or_else(|| format!("{n} is not whole seconds since 1970"))?;
                doc.add_date(field, tantivy::DateTime::from_timestamp_secs(secs))
            }
            (FieldKind::Image, Value::String(p)) => {
                let path = base_dir.join(p);
                image_file::check(&path, schema.ingest.max_image_pixels)?;
                let path = path.canonicalize().unwrap_or(path);
                doc.add_text(field, path.to_string_lossy());
            }
            (kind_, other) => {
                return Err(format!("expected {}, got {}", expected(kind_), kind(other)));
            }
        }
    }
    Ok(())
}

fn expected(k: &FieldKind) -> &'static str {
    match k {
        FieldKind::Text { .. } | FieldKind::Keyword => "a string",
        FieldKind::Facet => "a facet path string like /a/b",
        FieldKind::I64 | FieldKind::U64 => "an integer",
        FieldKind::F64 => "a number",
        FieldKind::Bool => "true or false",
        FieldKind::Date => "a date string or seconds since 1970",
        FieldKind::Image => "an image file path",
        FieldKind::Vector(_) => "an array of numbers",
    }
}
