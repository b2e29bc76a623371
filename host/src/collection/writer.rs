//! Writes to a collection: upserts by external id, deletes by id or by filter, atomic commits.
//!
//! Every change goes through tantivy's writer, so a commit publishes all of its documents (text,
//! fields and vectors together) or none of them; a crash loses only what was not committed.

use std::time::{Duration, Instant};

use tantivy::collector::Count;
use tantivy::query::TermQuery;
use tantivy::schema::IndexRecordOption;
use tantivy::{IndexWriter, TantivyDocument, TantivyError, Term};

use super::Collection;
use crate::document::BuiltDocument;
use crate::error::{Error, Result};

/// Heap for tantivy's indexing buffers; segments are flushed when it fills.
const WRITER_HEAP_BYTES: usize = 256 << 20;

/// How long taking the writer's lock waits for a holder that is letting go.
const LOCK_WAIT: Duration = Duration::from_millis(500);

/// The single writer of a collection.
pub struct CollectionWriter<'a> {
    c: &'a Collection,
    writer: IndexWriter<TantivyDocument>,
    pending: u64,
}

impl<'a> CollectionWriter<'a> {
    /// Takes the collection's lock, waiting up to [`LOCK_WAIT`] for a writer that is letting go.
    ///
    /// The lock is an `flock` on a file: a child process forked by another thread while the file
    /// was open shares it until it execs, so a writer dropped a moment ago can still look held.
    /// A writer that stays held past the wait (another process writing) answers
    /// [`Error::Locked`].
    pub(super) fn new(c: &'a Collection) -> Result<Self> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            match c.index().writer_with_num_threads(threads, WRITER_HEAP_BYTES) {
                Ok(writer) => return Ok(CollectionWriter { c, writer, pending: 0 }),
                Err(TantivyError::LockFailure(..)) if start.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(TantivyError::LockFailure(..)) => return Err(Error::Locked(c.name().to_owned())),
                Err(other) => return Err(other.into()),
            }
        }
    }

    fn id_term(&self, id: &str) -> Term {
        Term::from_field_text(self.c.fields().id, id)
    }

    /// Adds a document, replacing any committed or pending document with the same id.
    pub fn upsert(&mut self, doc: BuiltDocument) -> Result<()> {
        self.writer.delete_term(self.id_term(&doc.id));
        self.writer.add_document(doc.doc)?;
        self.pending += 1;
        Ok(())
    }

    /// Deletes documents by id; returns how many of the ids exist in the current snapshot.
    pub fn delete_ids(&mut self, ids: &[String]) -> Result<u64> {
        let searcher = self.c.searcher();
        let mut found = 0u64;
        for id in ids {
            let term = self.id_term(id);
            found += searcher.search(&TermQuery::new(term.clone(), IndexRecordOption::Basic), &Count)? as u64;
            self.writer.delete_term(term);
            self.pending += 1;
        }
        Ok(found)
    }

    /// Deletes every document a filter matches; returns how many match in the current snapshot.
    pub fn delete_query(&mut self, filter: &str) -> Result<u64> {
        let query = crate::search::parse_filter(self.c, filter)?;
        let found = self.c.searcher().search(&query, &Count)? as u64;
        self.writer.delete_query(query)?;
        self.pending += 1;
        Ok(found)
    }

    /// Operations since the last commit or rollback.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Publishes every pending change atomically, then refreshes the collection's snapshot.
    pub fn commit(&mut self) -> Result<()> {
        self.writer.commit()?;
        self.pending = 0;
        self.c.refresh()
    }

    /// Discards every pending change.
    pub fn rollback(&mut self) -> Result<()> {
        self.writer.rollback()?;
        self.pending = 0;
        Ok(())
    }

    /// Merges every segment into one and publishes it (what a static collection, or a benchmark
    /// against single-index libraries, wants); the merged segment's graph is then built anew.
    pub fn merge_all(&mut self) -> Result<()> {
        let ids = self.c.index().searchable_segment_ids()?;
        if ids.len() > 1 {
            self.writer.merge(&ids).wait()?;
        }
        self.c.refresh()
    }

    /// Commits, waits for background merges, and refreshes so the merged segments' vector
    /// matrices are built now rather than at the first query.
    pub fn finish(mut self) -> Result<()> {
        self.commit()?;
        let c = self.c;
        self.writer.wait_merging_threads()?;
        c.refresh()
    }
}
