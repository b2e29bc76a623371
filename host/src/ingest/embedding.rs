//! Vectors computed at ingest: CLIP image embeddings of an image field and CLIP text embeddings
//! of text fields, in batches, for rows that do not bring the vector themselves.

use std::sync::Arc;

use tantivy::schema::{Field, Value};

use super::RowError;
use crate::collection::Collection;
use crate::document::BuiltDocument;
use crate::embed::ClipEmbedder;
use crate::error::{Error, Result};
use crate::schema::{SourceKind, VectorSpec};
use crate::vector::codec;

struct Target {
    field_name: String,
    field: Field,
    spec: VectorSpec,
    input: Input,
}

enum Input {
    Image(Field),
    Text(Vec<Field>),
}

pub(crate) struct Embedder {
    clip: Arc<ClipEmbedder>,
    targets: Vec<Target>,
    max_pixels: u64,
}

impl Embedder {
    /// Checks every computed field against the model (the dimensions must agree).
    pub fn new(c: &Collection, clip: Arc<ClipEmbedder>) -> Result<Self> {
        let handle = |name: &str| c.fields().get(name).map(|(_, f)| *f).expect("validated schema");
        let mut targets = Vec::new();
        for s in &c.schema().vector_sources {
            let spec = c.schema().vector_field(&s.field)?;
            if spec.dim != clip.dim() {
                return Err(Error::Vector {
                    field: s.field.clone(),
                    message: format!(
                        "declared with dim = {} but the CLIP model in {} gives {}-d vectors",
                        spec.dim,
                        clip.files.dir.display(),
                        clip.dim()
                    ),
                });
            }
            let input = match &s.kind {
                SourceKind::ClipImage { image_field } => Input::Image(handle(image_field)),
                SourceKind::ClipText { text_fields } => Input::Text(text_fields.iter().map(|n| handle(n)).collect()),
            };
            targets.push(Target {
                field_name: s.field.clone(),
                field: handle(&s.field),
                spec,
                input,
            });
        }
        Ok(Embedder {
            clip,
            targets,
            max_pixels: c.schema().ingest.max_image_pixels,
        })
    }

    /// Adds the computed vectors to the rows that lack them; returns the rows that failed.
    pub fn fill(&self, rows: &mut [(BuiltDocument, RowError)]) -> Result<Vec<(usize, RowError)>> {
        let mut failed = Vec::new();
        for t in &self.targets {
            let todo: Vec<usize> = (0..rows.len())
                .filter(|i| rows[*i].0.doc.get_first(t.field).is_none() && !failed.iter().any(|(j, _)| j == i))
                .collect();
            let vectors: Vec<(usize, Vec<f32>)> = match &t.input {
                Input::Image(field) => {
                    let mut ok = Vec::new();
                    let mut images = Vec::new();
                    for &i in &todo {
                        let Some(path) = rows[i]
                            .0
                            .doc
                            .get_first(*field)
                            .and_then(|v| v.as_str().map(str::to_owned))
                        else {
                            continue;
                        };
                        match crate::image_file::decode(path.as_ref(), self.max_pixels) {
                            Ok(img) => {
                                ok.push(i);
                                images.push(img);
                            }
                            Err(message) => failed.push((
                                i,
                                RowError {
                                    field: Some(t.field_name.clone()),
                                    message,
                                    ..rows[i].1.clone()
                                },
                            )),
                        }
                    }
                    ok.into_iter().zip(self.clip.embed_images(&images)?).collect()
                }
                Input::Text(fields) => {
                    let mut ok = Vec::new();
                    let mut texts = Vec::new();
                    for &i in &todo {
                        let text: Vec<String> = fields
                            .iter()
                            .flat_map(|f| {
                                rows[i]
                                    .0
                                    .doc
                                    .get_all(*f)
                                    .filter_map(|v| v.as_str().map(str::to_owned))
                                    .collect::<Vec<_>>()
                            })
                            .collect();
                        if !text.is_empty() {
                            ok.push(i);
                            texts.push(text.join(". "));
                        }
                    }
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    ok.into_iter().zip(self.clip.embed_texts(&refs)?).collect()
                }
            };
            for (i, v) in vectors {
                let bytes = codec::encode(&v, &t.spec).map_err(|message| Error::Vector {
                    field: t.field_name.clone(),
                    message,
                })?;
                rows[i].0.doc.add_bytes(t.field, &bytes);
            }
        }
        Ok(failed)
    }
}
