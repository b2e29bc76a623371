//! Fields computed at ingest: CLIP image embeddings of an image field, CLIP text embeddings of
//! text fields, CLIP zero-shot tags and BLIP captions of an image, in batches, for rows that do
//! not bring the field themselves; inputs seen before (same model, same content) are served from
//! the persistent cache.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use image::DynamicImage;

use tantivy::schema::{Field, Value};

use super::RowError;
use crate::caption::Captioner;
use crate::collection::{CAPTION_MODEL_ENV, CLIP_MODEL_ENV, Collection};
use crate::document::BuiltDocument;
use crate::embed::cache::{ContentKey, image_key, text_key};
use crate::embed::{ClipEmbedder, EmbeddingCache};
use crate::error::{Error, Result};
use crate::schema::{SourceKind, VectorSpec};
use crate::vector::codec;

/// One batch's pass over the targets.
#[derive(Default)]
struct Pass {
    /// Each row's images are read, hashed and (on a cache miss) decoded once, however many
    /// targets (vector, tags, caption) read them.
    sources: HashMap<(usize, Field, u16), ImageSource>,
    /// Rows that failed, with why; later targets skip them.
    failed: Vec<(usize, RowError)>,
}

struct Target {
    field_name: String,
    field: Field,
    input: Input,
    output: Output,
    /// Where computed values are kept between runs.
    cache: Arc<EmbeddingCache>,
}

/// What a target writes from the embedding.
enum Output {
    /// The vector itself.
    Vector(VectorSpec),
    /// The `top` words whose prompt embeddings are closest to the image's.
    Tags {
        words: Vec<String>,
        embeddings: Vec<Vec<f32>>,
        top: usize,
        /// The plugin the words came from (`vocabulary = "plugin:NAME"`).
        plugin: Option<String>,
    },
    /// The BLIP caption of the image, at most `max_tokens` tokens (cached as its token ids).
    Caption { max_tokens: usize },
}

/// How a tag word is put to CLIP's text tower for zero-shot matching.
pub const TAG_PROMPT: &str = "a photo of {}";

enum Input {
    Image(Field),
    Text(Vec<Field>),
}

pub(crate) struct Embedder {
    clip: Option<Arc<ClipEmbedder>>,
    captioner: Option<Arc<Captioner>>,
    targets: Vec<Target>,
    max_pixels: u64,
    /// The tag prompts embedded for the targets' vocabularies, and those the cache had.
    pub vocabulary_counts: EmbedCounts,
}

impl Embedder {
    /// The computed fields whose model is configured, each checked against it (the dimensions
    /// must agree); fields whose model is not configured are named in `warnings` and left out.
    /// `None` when no field can be computed.
    pub fn new(
        c: &Collection,
        vocabularies: &std::collections::BTreeMap<String, Vec<String>>,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Self>> {
        Self::for_fields(c, vocabularies, None, warnings)
    }

    /// [`Embedder::new`] for the computed fields named in `only` (all when `None`).
    pub fn for_fields(
        c: &Collection,
        vocabularies: &std::collections::BTreeMap<String, Vec<String>>,
        only: Option<&[String]>,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Self>> {
        let computed: Vec<&crate::schema::ComputedField> = c
            .schema()
            .computed_fields
            .iter()
            .filter(|s| only.is_none_or(|names| names.contains(&s.field)))
            .collect();
        let clip = match computed.iter().any(|s| s.kind.needs_clip()) {
            true => c.clip()?,
            false => None,
        };
        let captioner = match computed.iter().any(|s| !s.kind.needs_clip()) {
            true => c.captioner()?,
            false => None,
        };
        let handle = |name: &str| field_handle(c, name);
        let (mut targets, mut without_clip, mut without_captioner) = (Vec::new(), Vec::new(), Vec::new());
        let mut vocabulary_counts = EmbedCounts::default();
        for s in computed {
            let (input, output, cache) = match (&s.kind, &clip, &captioner) {
                (
                    SourceKind::Caption {
                        image_field,
                        max_tokens,
                    },
                    _,
                    Some(captioner),
                ) => (
                    Input::Image(handle(image_field)),
                    Output::Caption {
                        max_tokens: *max_tokens,
                    },
                    c.caption_cache(captioner, *max_tokens)?,
                ),
                (SourceKind::Caption { .. }, _, None) => {
                    without_captioner.push(s.field.as_str());
                    continue;
                }
                (kind, Some(clip), _) => {
                    let cache = c.embedding_cache(clip)?;
                    let (input, output) =
                        clip_target(c, clip, &cache, &s.field, kind, vocabularies, &mut vocabulary_counts)?;
                    (input, output, cache)
                }
                (_, None, _) => {
                    without_clip.push(s.field.as_str());
                    continue;
                }
            };
            targets.push(Target {
                field_name: s.field.clone(),
                field: handle(&s.field),
                input,
                output,
                cache,
            });
        }
        // Captions and tags first: a clip-text field reading every text field then reads them
        // too, whatever the order of the schema.
        targets.sort_by_key(|t| matches!(t.input, Input::Text(_)));
        if !without_clip.is_empty() {
            warnings.push(format!(
                "no CLIP model is configured ([models] clip in the schema, or {CLIP_MODEL_ENV}), so `{}` \
                 is not computed: documents are indexed without it, never with made-up vectors",
                without_clip.join("`, `")
            ));
        }
        if !without_captioner.is_empty() {
            warnings.push(format!(
                "no caption model is configured ([models] captioner in the schema, or {CAPTION_MODEL_ENV}), \
                 so `{}` is not computed: documents are indexed without it",
                without_captioner.join("`, `")
            ));
        }
        Ok((!targets.is_empty()).then(|| Embedder {
            clip,
            captioner,
            targets,
            max_pixels: c.schema().ingest.max_image_pixels,
            vocabulary_counts,
        }))
    }

    /// The tag fields whose words come from a plugin: (field, plugin, the words).
    pub fn plugin_vocabularies(&self) -> impl Iterator<Item = (&str, &str, &[String])> {
        self.targets.iter().filter_map(|t| match &t.output {
            Output::Tags {
                words,
                plugin: Some(plugin),
                ..
            } => Some((t.field_name.as_str(), plugin.as_str(), words.as_slice())),
            _ => None,
        })
    }

    fn clip(&self) -> &ClipEmbedder {
        self.clip.as_deref().expect("CLIP targets exist only with a CLIP model")
    }

    fn captioner(&self) -> &Captioner {
        self.captioner
            .as_deref()
            .expect("caption targets exist only with a captioner")
    }

    /// Adds the computed vectors to the rows that lack them, from the cache when it holds them;
    /// returns the rows that failed.
    pub fn fill(
        &self,
        rows: &mut [(BuiltDocument, RowError)],
        counts: &mut EmbedCounts,
    ) -> Result<Vec<(usize, RowError)>> {
        let mut pass = Pass::default();
        for t in &self.targets {
            let todo: Vec<usize> = (0..rows.len())
                .filter(|i| rows[*i].0.doc.get_first(t.field).is_none() && !pass.failed.iter().any(|(j, _)| j == i))
                .collect();
            let vectors = match &t.input {
                Input::Image(field) => self.image_vectors(t, *field, rows, &todo, &mut pass, counts)?,
                Input::Text(fields) => {
                    let before = *counts;
                    let vectors = self.text_vectors(t, fields, rows, &todo, counts)?;
                    counts.text_computed += counts.computed - before.computed;
                    counts.text_cached += counts.cached - before.cached;
                    vectors.into_iter().map(|(i, v)| ((i, 0), v)).collect()
                }
            };
            self.write(t, rows, vectors)?;
        }
        Ok(pass.failed)
    }

    /// The target's vectors of the rows' images, each keyed by (row, the image's position in
    /// the row's image list) (from the cache, else computed), recording the rows with an image
    /// that cannot be read or decoded as failed.
    fn image_vectors(
        &self,
        t: &Target,
        field: Field,
        rows: &[(BuiltDocument, RowError)],
        todo: &[usize],
        pass: &mut Pass,
        counts: &mut EmbedCounts,
    ) -> Result<Vec<(Slot, Vec<f32>)>> {
        let Pass { sources, failed } = pass;
        let mut fail = |i: usize, message: String| {
            failed.push((
                i,
                RowError {
                    field: Some(t.field_name.clone()),
                    message,
                    ..rows[i].1.clone()
                },
            ))
        };
        // Each image is read and looked up in the cache once; a row with an unreadable image
        // stops there (what came before it still counts towards which error is reported).
        let mut scanned = Vec::with_capacity(todo.len());
        let mut undecoded = Vec::new();
        for &i in todo {
            let mut found = Vec::new();
            let mut unreadable = None;
            for (n, path) in rows[i].0.doc.get_all(field).filter_map(|v| v.as_str()).enumerate() {
                let slot = (i, n as u16);
                let source = match sources.entry((i, field, slot.1)) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => match std::fs::read(path) {
                        Ok(bytes) => e.insert(ImageSource {
                            key: image_key(&bytes),
                            bytes,
                            image: None,
                        }),
                        Err(err) => {
                            unreadable = Some(format!("cannot open image {path}: {err}"));
                            break;
                        }
                    },
                };
                match t.cache.get(&source.key) {
                    Some(v) => found.push(Found::Cached(slot, v)),
                    None => {
                        if source.image.is_none() {
                            undecoded.push((slot, path));
                        }
                        found.push(Found::Miss(slot, source.key));
                    }
                }
            }
            scanned.push((i, found, unreadable));
        }
        // The images no earlier target decoded, on the CPU's threads (on a GPU this is most of
        // the CPU's share of ingest).
        let decoded: Vec<_> = {
            use rayon::prelude::*;
            let sources = &*sources;
            undecoded
                .par_iter()
                .map(|&((i, n), path)| {
                    let bytes = &sources[&(i, field, n)].bytes;
                    ((i, n), crate::image_file::decode_bytes(bytes, path, self.max_pixels))
                })
                .collect()
        };
        let mut undecodable = HashMap::new();
        for ((i, n), result) in decoded {
            match result {
                Ok(img) => sources.get_mut(&(i, field, n)).expect("read above").image = Some(img),
                Err(message) => {
                    undecodable.entry(i).or_insert(message);
                }
            }
        }
        let mut vectors = Vec::new();
        // Inputs the cache lacks: (row, key).
        let mut miss = Vec::new();
        for (i, found, unreadable) in scanned {
            // A row with an image that cannot be read fails whole: none of its images count. The
            // first image in order that fails is the error (images after an unreadable one were
            // not looked at).
            if let Some(message) = undecodable.remove(&i).or(unreadable) {
                fail(i, message);
                continue;
            }
            for f in found {
                match f {
                    Found::Cached(slot, v) => {
                        counts.cached += 1;
                        vectors.push((slot, v));
                    }
                    Found::Miss(slot, key) => miss.push((slot, key)),
                }
            }
        }
        let images: Vec<&DynamicImage> = miss
            .iter()
            .map(|((i, n), _)| sources[&(*i, field, *n)].image.as_ref().expect("decoded above"))
            .collect();
        let computed = match &t.output {
            Output::Caption { max_tokens } => self
                .captioner()
                .caption_ids(&images, *max_tokens)?
                .iter()
                .map(|ids| caption_to_vector(ids, *max_tokens))
                .collect(),
            _ => self.clip().embed_images(&images)?,
        };
        counts.computed += remember(&t.cache, miss.into_iter(), computed, &mut vectors);
        Ok(vectors)
    }

    /// The target's CLIP text embeddings of the rows' text fields (from the cache, else
    /// computed); rows with no text get none.
    fn text_vectors(
        &self,
        t: &Target,
        fields: &[Field],
        rows: &[(BuiltDocument, RowError)],
        todo: &[usize],
        counts: &mut EmbedCounts,
    ) -> Result<Vec<(usize, Vec<f32>)>> {
        let mut vectors = Vec::new();
        let mut miss = Vec::new();
        for &i in todo {
            let text: Vec<&str> = fields
                .iter()
                .flat_map(|f| rows[i].0.doc.get_all(*f).filter_map(|v| v.as_str()))
                .collect();
            if text.is_empty() {
                continue;
            }
            let text = text.join(". ");
            let key = text_key(&text);
            match t.cache.get(&key) {
                Some(v) => {
                    counts.cached += 1;
                    vectors.push((i, v));
                }
                None => miss.push((i, key, text)),
            }
        }
        let refs: Vec<&str> = miss.iter().map(|(_, _, t)| t.as_str()).collect();
        let computed = self.clip().embed_texts(&refs)?;
        counts.computed += remember(&t.cache, miss.iter().map(|(i, k, _)| (*i, *k)), computed, &mut vectors);
        Ok(vectors)
    }

    /// Writes the target's outputs into the rows' documents: the vector of each image, the
    /// closest tags of each (once per document), or each image's decoded caption.
    fn write(
        &self,
        t: &Target,
        rows: &mut [(BuiltDocument, RowError)],
        mut vectors: Vec<(Slot, Vec<f32>)>,
    ) -> Result<()> {
        // In image order, so a row's values keep its images' order.
        vectors.sort_by_key(|(slot, _)| *slot);
        for ((i, n), v) in vectors {
            match &t.output {
                Output::Vector(spec) => {
                    let bytes = codec::encode_nth(&v, spec, n as usize).map_err(|message| Error::Vector {
                        field: t.field_name.clone(),
                        message,
                    })?;
                    rows[i].0.doc.add_bytes(t.field, &bytes);
                }
                Output::Tags {
                    words, embeddings, top, ..
                } => {
                    for tag in closest(&v, words, embeddings, *top) {
                        let doc = &mut rows[i].0.doc;
                        if !doc.get_all(t.field).any(|x| x.as_str() == Some(tag)) {
                            doc.add_text(t.field, tag);
                        }
                    }
                }
                Output::Caption { .. } => {
                    let caption = self.captioner().decode(&vector_to_caption(&v))?;
                    if !caption.is_empty() {
                        rows[i].0.doc.add_text(t.field, &caption);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The input and output of a CLIP-computed field.
fn clip_target(
    c: &Collection,
    clip: &ClipEmbedder,
    cache: &EmbeddingCache,
    field: &str,
    kind: &SourceKind,
    vocabularies: &std::collections::BTreeMap<String, Vec<String>>,
    vocabulary_counts: &mut EmbedCounts,
) -> Result<(Input, Output)> {
    let handle = |name: &str| field_handle(c, name);
    let vector = || -> Result<Output> {
        let spec = c.schema().vector_field(field)?;
        if spec.dim != clip.dim() {
            return Err(Error::Vector {
                field: field.to_owned(),
                message: format!(
                    "declared with dim = {} but the CLIP model in {} gives {}-d vectors",
                    spec.dim,
                    clip.files.dir.display(),
                    clip.dim()
                ),
            });
        }
        Ok(Output::Vector(spec))
    };
    Ok(match kind {
        SourceKind::ClipImage { image_field } => (Input::Image(handle(image_field)), vector()?),
        SourceKind::ClipText { text_fields } => {
            (Input::Text(text_fields.iter().map(|n| handle(n)).collect()), vector()?)
        }
        SourceKind::ClipTags {
            image_field,
            vocabulary,
            top,
            vocabulary_plugin,
        } => {
            let vocabulary = match vocabulary_plugin {
                None => vocabulary,
                Some(plugin) => &plugin_vocabulary(c, field, plugin, vocabularies)?,
            };
            // A plugin's vocabulary may be shorter than `top`: then every word is a tag.
            let top = &(*top).min(vocabulary.len());
            let prompts: Vec<String> = vocabulary.iter().map(|w| TAG_PROMPT.replace("{}", w)).collect();
            let output = Output::Tags {
                words: vocabulary.clone(),
                embeddings: text_embeddings(clip, cache, &prompts, vocabulary_counts)?,
                top: *top,
                plugin: vocabulary_plugin.clone(),
            };
            (Input::Image(handle(image_field)), output)
        }
        SourceKind::Caption { .. } => unreachable!("captions are not CLIP's"),
    })
}

/// The tantivy field of a field the (validated) schema declares.
fn field_handle(c: &Collection, name: &str) -> Field {
    c.fields().get(name).map(|(_, f)| *f).expect("validated schema")
}

/// The tag vocabulary a clip-tags field takes from a plugin, checked like a schema's.
pub(crate) fn plugin_vocabulary(
    c: &Collection,
    field: &str,
    plugin: &str,
    vocabularies: &std::collections::BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>> {
    let invalid = |message: String| Error::Schema {
        origin: format!("of collection `{}`", c.name()),
        message: format!("field `{field}`: {message}"),
    };
    let words = vocabularies.get(plugin).ok_or_else(|| {
        invalid(format!(
            "its tag vocabulary comes from plugin `{plugin}`, which is not loaded"
        ))
    })?;
    let words = crate::schema::distinct_words(words.clone())
        .map_err(|e| invalid(format!("plugin `{plugin}`'s tag vocabulary: {e}")))?;
    Ok(words)
}

/// CLIP text embeddings of `texts` (the tag prompts, embedded at every ingest), from `cache`
/// where it holds them; the rest are computed in batches and kept.
fn text_embeddings(
    clip: &ClipEmbedder,
    cache: &EmbeddingCache,
    texts: &[String],
    counts: &mut EmbedCounts,
) -> Result<Vec<Vec<f32>>> {
    let keys: Vec<ContentKey> = texts.iter().map(|t| text_key(t)).collect();
    let mut out: Vec<Option<Vec<f32>>> = keys.iter().map(|k| cache.get(k)).collect();
    let missing: Vec<usize> = (0..texts.len()).filter(|&i| out[i].is_none()).collect();
    counts.cached += (texts.len() - missing.len()) as u64;
    counts.computed += missing.len() as u64;
    for chunk in missing.chunks(64) {
        let refs: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
        let mut computed = Vec::new();
        remember(
            cache,
            chunk.iter().map(|&i| (i, keys[i])),
            clip.embed_texts(&refs)?,
            &mut computed,
        );
        for (i, v) in computed {
            out[i] = Some(v);
        }
    }
    Ok(out.into_iter().map(|v| v.expect("cached or computed")).collect())
}

/// Stores freshly computed values in `cache` and adds them to `out`.
fn remember<S>(
    cache: &EmbeddingCache,
    keys: impl Iterator<Item = (S, ContentKey)>,
    computed: Vec<Vec<f32>>,
    out: &mut Vec<(S, Vec<f32>)>,
) -> u64 {
    let keyed: Vec<(S, ContentKey, Vec<f32>)> = keys.zip(computed).map(|((i, k), v)| (i, k, v)).collect();
    let items: Vec<(ContentKey, &[f32])> = keyed.iter().map(|(_, k, v)| (*k, v.as_slice())).collect();
    if let Err(e) = cache.put(&items) {
        // The cache only saves time; indexing goes on without it.
        tracing::warn!(error = %e, "embedding cache not updated");
    }
    let n = keyed.len() as u64;
    out.extend(keyed.into_iter().map(|(i, _, v)| (i, v)));
    n
}

/// A caption's token ids as a cache record: the ids (exact in f32 below 2^24), then -1.
fn caption_to_vector(ids: &[u32], max_tokens: usize) -> Vec<f32> {
    let mut v: Vec<f32> = ids.iter().take(max_tokens).map(|&id| id as f32).collect();
    v.resize(max_tokens, -1.0);
    v
}

/// The token ids of a cached caption.
fn vector_to_caption(v: &[f32]) -> Vec<u32> {
    v.iter().take_while(|x| **x >= 0.0).map(|&x| x as u32).collect()
}

/// A row and the position of one of its images (0 for a text input).
type Slot = (usize, u16);

/// What the cache said of one image of a row.
enum Found {
    Cached(Slot, Vec<f32>),
    Miss(Slot, ContentKey),
}

/// A row's image file: its content key, its bytes, and the decoded image once a target needed
/// it.
struct ImageSource {
    key: ContentKey,
    bytes: Vec<u8>,
    image: Option<DynamicImage>,
}

/// Vectors an ingest computed with the model, and took from the embedding cache.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EmbedCounts {
    pub computed: u64,
    pub cached: u64,
    /// Of those, the text embeddings (clip-text fields).
    pub text_computed: u64,
    pub text_cached: u64,
}

/// The `top` words whose embeddings have the largest dot product with `v` (both normalised, so
/// cosine), best first; ties keep the vocabulary's order.
pub(crate) fn closest<'a>(v: &[f32], words: &'a [String], embeddings: &[Vec<f32>], top: usize) -> Vec<&'a str> {
    let mut scored: Vec<(usize, f32)> = embeddings
        .iter()
        .enumerate()
        .map(|(i, e)| (i, e.iter().zip(v).map(|(a, b)| a * b).sum()))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.into_iter().take(top).map(|(i, _)| words[i].as_str()).collect()
}
