//! The per-collection registry of segment matrices: finds, validates, builds and garbage-collects
//! the files under `<collection>/vectors/`, and caches the open mappings.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tantivy::index::SegmentId;
use tantivy::{Searcher, SegmentReader};

use super::SegmentMatrix;
use crate::error::{Error, Result};
use crate::schema::VectorSpec;

/// Counts of what the store did, for logs and stats.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct VectorStoreStats {
    /// Matrix files (re)built from their column.
    pub built: usize,
    /// Of those, files that existed but were stale or corrupt.
    pub rebuilt_stale: usize,
    /// Files removed because their segment is gone.
    pub removed: usize,
}

/// Matrix files of one collection.
pub struct VectorStore {
    dir: PathBuf,
    cache: Mutex<HashMap<(SegmentId, String), Arc<SegmentMatrix>>>,
    stats: Mutex<VectorStoreStats>,
}

impl VectorStore {
    /// A store over `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        Ok(VectorStore {
            dir: dir.to_owned(),
            cache: Mutex::new(HashMap::new()),
            stats: Mutex::new(VectorStoreStats::default()),
        })
    }

    /// The directory holding the matrix files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, segment: SegmentId, field: &str) -> PathBuf {
        self.dir.join(format!("{}.{field}.mvec", segment.uuid_string()))
    }

    /// The matrix of `field` for one segment: cached, else mapped from disk, else (re)built.
    pub fn matrix(&self, reader: &SegmentReader, field: &str, spec: &VectorSpec) -> Result<Arc<SegmentMatrix>> {
        let key = (reader.segment_id(), field.to_owned());
        let mut cache = self.cache.lock().expect("vector cache lock");
        if let Some(m) = cache.get(&key) {
            return Ok(m.clone());
        }
        let path = self.path(reader.segment_id(), field);
        let matrix = match SegmentMatrix::open(&path, reader, spec) {
            Ok(m) => m,
            Err(reason) => {
                let existed = path.exists();
                if existed {
                    tracing::warn!(file = %path.display(), %reason, "rebuilding vector matrix");
                }
                SegmentMatrix::build(reader, field, spec, &path)?;
                let mut stats = self.stats.lock().expect("stats lock");
                stats.built += 1;
                stats.rebuilt_stale += usize::from(existed);
                SegmentMatrix::open(&path, reader, spec).map_err(|reason| {
                    Error::io(
                        format!("vector matrix {}", path.display()),
                        std::io::Error::other(format!("freshly built file is unusable: {reason}")),
                    )
                })?
            }
        };
        let matrix = Arc::new(matrix);
        cache.insert(key, matrix.clone());
        Ok(matrix)
    }

    /// Brings the store in line with a searcher: every segment gets its matrices (built if
    /// needed), and files and cache entries of segments that are gone are removed.
    pub fn sync(&self, searcher: &Searcher, fields: &[(&str, VectorSpec)]) -> Result<()> {
        let live: HashSet<SegmentId> = searcher.segment_readers().iter().map(|r| r.segment_id()).collect();
        self.cache
            .lock()
            .expect("vector cache lock")
            .retain(|(seg, _), _| live.contains(seg));
        for reader in searcher.segment_readers() {
            for (field, spec) in fields {
                self.matrix(reader, field, spec)?;
            }
        }
        let live_names: HashSet<String> = live.iter().map(|s| s.uuid_string()).collect();
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| Error::io(format!("listing {}", self.dir.display()), e))?;
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let segment = name.split('.').next().unwrap_or_default();
            // A temporary file may be another process's build in progress; leave it unless it
            // is old enough to be debris from a crash.
            let young_tmp = name.ends_with(".tmp")
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() < 600));
            if !live_names.contains(segment) && !young_tmp && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        self.stats.lock().expect("stats lock").removed += removed;
        Ok(())
    }

    /// What the store has done since it was opened.
    pub fn stats(&self) -> VectorStoreStats {
        *self.stats.lock().expect("stats lock")
    }

    /// Bytes taken by the mapped matrices.
    pub fn mapped_bytes(&self) -> usize {
        self.cache
            .lock()
            .expect("vector cache lock")
            .values()
            .map(|m| m.file_bytes())
            .sum()
    }
}
