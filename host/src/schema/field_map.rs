//! The bridge from a [`CollectionSchema`] to tantivy: builds the tantivy schema and keeps the
//! `Field` handle of every declared field.

use tantivy::schema::{
    BytesOptions, DateOptions, DateTimePrecision, FacetOptions, Field, IndexRecordOption, NumericOptions, STORED,
    STRING, Schema, TextFieldIndexing, TextOptions,
};

use super::{CollectionSchema, FieldKind, FieldSpec};

/// Tantivy handles for a collection's fields, in declaration order.
#[derive(Debug, Clone)]
pub struct FieldMap {
    pub schema: Schema,
    pub id: Field,
    fields: Vec<(FieldSpec, Field)>,
}

impl FieldMap {
    /// Builds the tantivy schema for a collection.
    pub fn build(cs: &CollectionSchema) -> Self {
        let mut b = Schema::builder();
        let id = b.add_text_field(&cs.id_field, STRING | STORED);
        let mut fields = Vec::with_capacity(cs.fields.len());
        for spec in &cs.fields {
            let name = spec.name.as_str();
            let numeric = || {
                let o = NumericOptions::default().set_indexed().set_fast();
                if spec.stored { o.set_stored() } else { o }
            };
            let field = match &spec.kind {
                FieldKind::Text { analyzer, .. } => {
                    let indexing = TextFieldIndexing::default()
                        .set_tokenizer(analyzer.tokenizer_name())
                        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
                    let o = TextOptions::default().set_indexing_options(indexing);
                    b.add_text_field(name, if spec.stored { o.set_stored() } else { o })
                }
                FieldKind::Keyword => {
                    let o = STRING.set_fast("raw");
                    b.add_text_field(name, if spec.stored { o.set_stored() } else { o })
                }
                FieldKind::Facet => {
                    let o = FacetOptions::default();
                    b.add_facet_field(name, if spec.stored { o.set_stored() } else { o })
                }
                FieldKind::I64 => b.add_i64_field(name, numeric()),
                FieldKind::U64 => b.add_u64_field(name, numeric()),
                FieldKind::F64 => b.add_f64_field(name, numeric()),
                FieldKind::Bool => b.add_bool_field(name, numeric()),
                FieldKind::Date => {
                    let o = DateOptions::default()
                        .set_indexed()
                        .set_fast()
                        .set_precision(DateTimePrecision::Seconds);
                    b.add_date_field(name, if spec.stored { o.set_stored() } else { o })
                }
                FieldKind::Image => b.add_text_field(name, STRING | STORED),
                FieldKind::Vector(_) => b.add_bytes_field(name, BytesOptions::default().set_fast()),
            };
            fields.push((spec.clone(), field));
        }
        FieldMap {
            schema: b.build(),
            id,
            fields,
        }
    }

    /// A stored document's external id.
    pub fn id_of(&self, doc: &tantivy::TantivyDocument) -> String {
        use tantivy::schema::Value;
        doc.get_first(self.id)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The declared field and its tantivy handle.
    pub fn get(&self, name: &str) -> Option<&(FieldSpec, Field)> {
        self.fields.iter().find(|(s, _)| s.name == name)
    }

    /// All declared fields with their handles.
    pub fn iter(&self) -> impl Iterator<Item = &(FieldSpec, Field)> {
        self.fields.iter()
    }
}
