//! Re-tagging the documents already indexed when a plugin's tag vocabulary changes.
//!
//! A clip-tags field with `vocabulary = "plugin:NAME"` takes its words from the plugin's live
//! version at each ingest; shipping a version with other words changes the tags of what is
//! indexed next. [`retag`] brings the documents indexed before up to date: for each such field
//! whose words differ from those its documents were tagged with ([`TagRecord`]), every
//! document's tags are chosen again from the new words, through the ingest's own embedder, so
//! each image's embedding and each known word's come from the embedding cache (only new words,
//! and images the cache lost, are computed), and only the documents whose tags changed are
//! rewritten. A rewritten document is the stored one (its stored fields and its vectors,
//! byte for byte) with the new tags, upserted by id in batched atomic commits: a search sees a
//! document with its old tags or its new ones, never without.
//!
//! Needs every other field stored (a document is rewritten from what the index keeps); refused
//! before any work otherwise, naming the fields.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use tantivy::schema::{Field, Value};
use tantivy::{DocAddress, TantivyDocument};

use super::embedding::{EmbedCounts, Embedder, plugin_vocabulary};
use super::tag_record::{TagRecord, TaggedWith};
use super::{MAX_REPORTED_ERRORS, Progress, RowError};
use crate::collection::{Collection, CollectionWriter};
use crate::document::BuiltDocument;
use crate::error::{Error, Result};
use crate::schema::FieldKind;

/// Documents embedded per model call (as at ingest).
const BATCH: usize = 16;

/// How to run a re-tag.
#[derive(Debug, Clone, Default)]
pub struct RetagOptions {
    /// The plugins' tag vocabularies by name ([`crate::plugin::PluginRegistry::tag_vocabularies`]).
    pub vocabularies: BTreeMap<String, Vec<String>>,
    /// Re-tag every plugin-vocabulary field, even those recorded as up to date.
    pub force: bool,
}

/// A field whose tags were chosen again.
#[derive(Debug, Clone, Serialize)]
pub struct RetaggedField {
    pub field: String,
    pub plugin: String,
    /// Words in the plugin's vocabulary now.
    pub words: usize,
    /// Words new since the documents were tagged, and words gone (both 0 when the words the
    /// documents were tagged with are not known, or the re-tag was forced).
    pub added: usize,
    pub removed: usize,
}

/// What a re-tag did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetagReport {
    /// The fields re-tagged (their plugin's words changed, or the re-tag was forced).
    pub fields: Vec<RetaggedField>,
    /// Plugin-vocabulary fields already tagged with their plugin's words: left alone.
    pub up_to_date: Vec<String>,
    /// Documents whose tags were chosen again.
    pub checked: u64,
    /// Documents rewritten because their tags changed.
    pub changed: u64,
    /// Documents left with their old tags because an image could not be read.
    pub failed: u64,
    /// The first failures (at most 100).
    pub errors: Vec<RowError>,
    /// Image embeddings computed, and taken from the embedding cache.
    pub images_embedded: u64,
    pub images_cached: u64,
    /// Tag prompts ("a photo of {word}") embedded, and taken from the cache.
    pub words_embedded: u64,
    pub words_cached: u64,
    /// Text embeddings of clip-text fields that read the tags (computed again with the new
    /// tags), computed and taken from the cache.
    pub texts_embedded: u64,
    pub texts_cached: u64,
    pub commits: u64,
    /// Seconds.
    #[serde(with = "super::secs")]
    pub elapsed: Duration,
}

/// Re-tags the documents of `c` whose plugin-vocabulary tag fields are not up to date (see the
/// module's documentation). The caller holds the collection's writer role: this takes its
/// writer (another process writing answers [`Error::Locked`]).
pub fn retag(c: &Collection, opts: &RetagOptions, progress: &dyn Progress) -> Result<RetagReport> {
    let started = Instant::now();
    let invalid = |message: String| Error::Schema {
        origin: format!("of collection `{}`", c.name()),
        message,
    };
    let tag_fields: Vec<(&str, &str)> = c
        .schema()
        .computed_fields
        .iter()
        .filter_map(|s| s.kind.vocabulary_plugin().map(|p| (s.field.as_str(), p)))
        .collect();
    if tag_fields.is_empty() {
        return Err(invalid(
            "no clip-tags field takes its words from a plugin (vocabulary = \"plugin:NAME\"): there is nothing to re-tag"
                .into(),
        ));
    }
    let mut report = RetagReport::default();
    // Looked at without the writer first (most passes find every field up to date), then again
    // with it held, so the record read is the one no other writer changes until this pass ends.
    let mut planned = plan(c, opts, &tag_fields, &TagRecord::read(c.dir()))?;
    let (mut writer, mut record) = (None, TagRecord::default());
    if !planned.stale.is_empty() {
        writer = Some(c.writer()?);
        record = TagRecord::read(c.dir());
        planned = plan(c, opts, &tag_fields, &record)?;
    }
    let Plan {
        fields,
        up_to_date,
        stale,
    } = planned;
    (report.fields, report.up_to_date) = (fields, up_to_date);
    let Some(writer) = writer.filter(|_| !stale.is_empty()) else {
        report.elapsed = started.elapsed();
        return Ok(report);
    };
    let names: Vec<String> = stale.iter().map(|(f, _)| f.clone()).collect();
    // Text embeddings that read a re-tagged field (a clip-text field reads every text field by
    // default, the tags included) describe the old tags: they are computed again with them
    // (from the embedding cache when the text was seen).
    let dependent: Vec<String> = c
        .schema()
        .computed_fields
        .iter()
        .filter(|s| match &s.kind {
            crate::schema::SourceKind::ClipText { text_fields } => text_fields.iter().any(|f| names.contains(f)),
            _ => false,
        })
        .map(|s| s.field.clone())
        .collect();
    let unstored: Vec<&str> = c
        .schema()
        .fields
        .iter()
        .filter(|f| {
            // Image paths are always stored; vectors live in the fast column.
            !f.stored && !matches!(f.kind, FieldKind::Vector(_) | FieldKind::Image) && !names.contains(&f.name)
        })
        .map(|f| f.name.as_str())
        .collect();
    if !unstored.is_empty() {
        return Err(invalid(format!(
            "cannot re-tag `{}`: a document is rewritten from what the index stores, and `{}` {} not stored \
             (stored = false); index the source again instead (`mira index`), which tags with the plugin's words now",
            names.join("`, `"),
            unstored.join("`, `"),
            if unstored.len() == 1 { "is" } else { "are" }
        )));
    }
    let mut warnings = Vec::new();
    let computed: Vec<String> = names.iter().chain(&dependent).cloned().collect();
    let embedder = Embedder::for_fields(c, &opts.vocabularies, Some(&computed), &mut warnings)?
        .filter(|_| warnings.is_empty())
        .ok_or_else(|| invalid(warnings.join("; ")))?;
    report.words_embedded = embedder.vocabulary_counts.computed;
    report.words_cached = embedder.vocabulary_counts.cached;

    // Before the first commit writes tags from other words, the record stops vouching for
    // these fields: a pass that fails or stops half-way leaves them to be checked again, never
    // taken as up to date.
    for (field, _) in &stale {
        record.fields.remove(field);
    }
    record.write(c.dir())?;
    // The writer is held, so the snapshot has every document, and none is added until the end.
    c.refresh()?;
    let searcher = c.searcher();
    progress.start(searcher.num_docs(), "documents");
    let handle = |name: &String| c.fields().get(name).expect("declared").1;
    let mut run = Run {
        embedder: &embedder,
        writer,
        batch: c.schema().ingest.batch_size.max(1) as u64,
        tag_fields: names.iter().map(handle).collect(),
        pending: Vec::new(),
        counts: EmbedCounts::default(),
        report,
        progress,
    };
    // Every vector kept as it is but those computed again.
    let vectors: Vec<(&str, Field)> = c
        .schema()
        .fields
        .iter()
        .filter(|f| matches!(f.kind, FieldKind::Vector(_)) && !dependent.contains(&f.name))
        .map(|f| (f.name.as_str(), handle(&f.name)))
        .collect();
    let mut buf = Vec::new();
    for (ord, segment) in searcher.segment_readers().iter().enumerate() {
        let mut columns = Vec::with_capacity(vectors.len());
        for (name, field) in &vectors {
            if let Some(column) = segment.fast_fields().bytes(name)? {
                columns.push((*field, column));
            }
        }
        for doc in segment.doc_ids_alive() {
            let stored: TantivyDocument = searcher.doc(DocAddress::new(ord as u32, doc))?;
            let mut rewritten = TantivyDocument::new();
            let mut old_tags = vec![Vec::new(); run.tag_fields.len()];
            for (field, value) in stored.field_values() {
                match run.tag_fields.iter().position(|f| *f == field) {
                    Some(k) => old_tags[k].push(value.as_str().unwrap_or_default().to_owned()),
                    None => rewritten.add_field_value(field, value),
                }
            }
            for (field, column) in &columns {
                for value in column.term_ords(doc) {
                    buf.clear();
                    let read = column.ord_to_bytes(value, &mut buf);
                    if !matches!(read, Ok(true)) {
                        let e = read
                            .err()
                            .unwrap_or_else(|| std::io::Error::other("a vector not in its dictionary"));
                        return Err(Error::io(format!("reading the vectors of `{}`", c.name()), e));
                    }
                    rewritten.add_bytes(*field, &buf);
                }
            }
            let id = c.fields().id_of(&stored);
            run.pending.push(Pending {
                row: (
                    BuiltDocument {
                        id: id.clone(),
                        doc: rewritten,
                    },
                    RowError {
                        file: format!("collection `{}`", c.name()),
                        line: None,
                        id: Some(id),
                        field: None,
                        message: String::new(),
                    },
                ),
                old_tags,
            });
            if run.pending.len() >= BATCH {
                run.flush()?;
            }
        }
    }
    run.flush()?;
    if run.writer.pending() > 0 {
        run.report.commits += 1;
    }
    let Run {
        mut writer,
        counts,
        mut report,
        ..
    } = run;
    writer.commit()?;
    report.images_embedded = counts.computed - counts.text_computed;
    report.images_cached = counts.cached - counts.text_cached;
    report.texts_embedded = counts.text_computed;
    report.texts_cached = counts.text_cached;
    // Only a pass with no failure vouches for the new words: after one, the next re-tag
    // checks every document again. Written with the writer still held.
    if report.failed == 0 {
        record.fields.extend(stale);
        record.write(c.dir())?;
    }
    writer.finish()?;
    progress.committed(report.checked);
    progress.finish();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// What a pass would re-tag: the fields whose record does not vouch for their plugin's words
/// now (all of them when forced), with the words, and the fields left alone.
struct Plan {
    fields: Vec<RetaggedField>,
    up_to_date: Vec<String>,
    stale: Vec<(String, TaggedWith)>,
}

fn plan(c: &Collection, opts: &RetagOptions, tag_fields: &[(&str, &str)], record: &TagRecord) -> Result<Plan> {
    let mut plan = Plan {
        fields: Vec::new(),
        up_to_date: Vec::new(),
        stale: Vec::new(),
    };
    for &(field, plugin) in tag_fields {
        let words = plugin_vocabulary(c, field, plugin, &opts.vocabularies)?;
        if !opts.force && record.is_current(field, plugin, &words) {
            plan.up_to_date.push(field.to_owned());
            continue;
        }
        let (added, removed) = match record.fields.get(field) {
            Some(before) if !opts.force => (
                words.iter().filter(|w| !before.words.contains(w)).count(),
                before.words.iter().filter(|w| !words.contains(w)).count(),
            ),
            _ => (0, 0),
        };
        plan.fields.push(RetaggedField {
            field: field.to_owned(),
            plugin: plugin.to_owned(),
            words: words.len(),
            added,
            removed,
        });
        let tagged = TaggedWith {
            plugin: plugin.to_owned(),
            words,
        };
        plan.stale.push((field.to_owned(), tagged));
    }
    Ok(plan)
}

/// A stored document rebuilt without the re-tagged fields, and the tags it had.
struct Pending {
    row: (BuiltDocument, RowError),
    old_tags: Vec<Vec<String>>,
}

/// A re-tag in progress: documents waiting for their tags, and the writer.
struct Run<'a> {
    embedder: &'a Embedder,
    writer: CollectionWriter<'a>,
    batch: u64,
    tag_fields: Vec<Field>,
    pending: Vec<Pending>,
    counts: EmbedCounts,
    report: RetagReport,
    progress: &'a dyn Progress,
}

impl Run<'_> {
    /// Tags the pending documents and rewrites those whose tags changed.
    fn flush(&mut self) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let (mut rows, old): (Vec<_>, Vec<_>) = pending.into_iter().map(|p| (p.row, p.old_tags)).unzip();
        let failed = self.embedder.fill(&mut rows, &mut self.counts)?;
        for (i, ((doc, _), old_tags)) in rows.into_iter().zip(old).enumerate() {
            self.report.checked += 1;
            if let Some((_, error)) = failed.iter().find(|(j, _)| *j == i) {
                self.report.failed += 1;
                if self.report.errors.len() < MAX_REPORTED_ERRORS {
                    self.report.errors.push(error.clone());
                }
                continue;
            }
            let new_tags = self.tag_fields.iter().map(|f| {
                doc.doc
                    .get_all(*f)
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            });
            if new_tags.eq(old_tags) {
                continue;
            }
            self.writer.upsert(doc)?;
            self.report.changed += 1;
            if self.writer.pending() >= self.batch {
                self.writer.commit()?;
                self.report.commits += 1;
                self.progress.committed(self.report.checked);
            }
        }
        self.progress
            .advance(self.report.checked, self.report.checked, self.report.changed);
        Ok(())
    }
}
