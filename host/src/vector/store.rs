//! The per-collection registry of derived vector files under `<collection>/vectors/`: segment
//! matrices and graphs. It finds, validates, builds and garbage-collects them, and caches the
//! open mappings.
//!
//! Opening stays cheap at any scale: a file found on disk is checked by its header and size
//! only, and serves at once; its checksum is read in full by a background worker (one per
//! collection) that also builds the graphs, and a file that fails is rebuilt and replaced.
//! Serving before verification cannot give a wrong answer, only a worse one: a graph only
//! proposes candidates (bounds-checked, so damage cannot make a walk read outside the file) and
//! every hit is scored on the matrix; matrix rows are plain numbers. Until a segment's graph is
//! built, and for segments below the field's `exact_below`, queries scan exactly.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, Mutex};

use tantivy::index::SegmentId;
use tantivy::{Searcher, SegmentReader};

use super::SegmentMatrix;
use super::hnsw::{SegmentGraph, build};
use crate::error::{Error, Result};
use crate::schema::{HnswParams, VectorIndex, VectorSpec};

/// Counts of what the store did, for logs and stats.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct VectorStoreStats {
    /// Matrix files (re)built from their column.
    pub built: usize,
    /// Of those, files that existed but were stale or corrupt.
    pub rebuilt_stale: usize,
    /// Files removed because their segment is gone.
    pub removed: usize,
    /// Graph files built.
    pub graphs_built: usize,
    /// Of those, files that existed but were stale or corrupt.
    pub graphs_rebuilt_stale: usize,
    /// Nodes inserted by those builds (their sum over the vectors ingested is the graphs'
    /// write amplification under merges).
    pub graph_nodes_built: usize,
    /// Graph files found on disk and verified.
    pub graphs_verified: usize,
}

/// Whether a segment's graph can serve a query.
pub enum GraphState {
    Ready(Arc<SegmentGraph>),
    /// Being verified or built in the background.
    Pending,
    /// The segment has fewer vectors than the field's `exact_below`.
    Small,
    /// Building failed (logged); the segment is scanned.
    Failed,
}

/// The graph being built right now, for progress displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphBuild {
    pub field: String,
    pub nodes: usize,
    pub inserted: usize,
}

type Key = (SegmentId, String);

enum Slot {
    Pending,
    Ready(Arc<SegmentGraph>),
    Failed,
}

enum Job {
    /// Read a matrix found on disk against its checksum; rebuild it if it fails.
    VerifyMatrix {
        reader: SegmentReader,
        field: String,
        spec: VectorSpec,
    },
    /// Read a graph found on disk (already serving) against its checksum; rebuild it if it fails.
    VerifyGraph {
        reader: SegmentReader,
        field: String,
        spec: VectorSpec,
        params: HnswParams,
    },
    /// Build the graph.
    Graph {
        reader: SegmentReader,
        field: String,
        spec: VectorSpec,
        params: HnswParams,
    },
}

struct Inner {
    dir: PathBuf,
    matrices: Mutex<HashMap<Key, Arc<SegmentMatrix>>>,
    graphs: Mutex<HashMap<Key, Slot>>,
    /// Jobs queued or running; `idle` is signalled when it drops to zero.
    jobs: Mutex<usize>,
    idle: Condvar,
    building: Mutex<Option<GraphBuild>>,
    stats: Mutex<VectorStoreStats>,
    /// Set when the store is dropped: queued jobs are skipped.
    closed: std::sync::atomic::AtomicBool,
}

/// The derived vector files of one collection.
pub struct VectorStore {
    inner: Arc<Inner>,
    worker: Mutex<Option<Sender<Job>>>,
}

impl Drop for VectorStore {
    fn drop(&mut self) {
        // The worker finishes its current job and drops the rest of the queue.
        self.inner.closed.store(true, std::sync::atomic::Ordering::Relaxed);
        self.worker.lock().map(|mut w| w.take()).ok();
    }
}

impl VectorStore {
    /// A store over `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        Ok(VectorStore {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                matrices: Mutex::new(HashMap::new()),
                graphs: Mutex::new(HashMap::new()),
                jobs: Mutex::new(0),
                idle: Condvar::new(),
                building: Mutex::new(None),
                stats: Mutex::new(VectorStoreStats::default()),
                closed: std::sync::atomic::AtomicBool::new(false),
            }),
            worker: Mutex::new(None),
        })
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The matrix of `field` for one segment: cached, else mapped from disk (and queued for
    /// verification), else (re)built.
    pub fn matrix(&self, reader: &SegmentReader, field: &str, spec: &VectorSpec) -> Result<Arc<SegmentMatrix>> {
        let (matrix, from_disk) = self.inner.matrix(reader, field, spec)?;
        if from_disk {
            self.submit(Job::VerifyMatrix {
                reader: reader.clone(),
                field: field.to_owned(),
                spec: *spec,
            });
        }
        Ok(matrix)
    }

    /// The graph of `field` for one segment, or why there is none to use yet. The first call
    /// for a segment queues its verification or build.
    pub fn graph(&self, reader: &SegmentReader, field: &str, spec: &VectorSpec, matrix: &SegmentMatrix) -> GraphState {
        let VectorIndex::Hnsw(params) = spec.index else {
            return GraphState::Small;
        };
        // Searches scan a segment where no more than `exact_below` documents pass: no graph.
        if matrix.present() == 0 || matrix.present() as usize <= params.exact_below {
            return GraphState::Small;
        }
        let key = (reader.segment_id(), field.to_owned());
        let mut graphs = self.inner.graphs.lock().expect("graph slots");
        match graphs.get(&key) {
            Some(Slot::Ready(g)) => return GraphState::Ready(g.clone()),
            Some(Slot::Pending) => return GraphState::Pending,
            Some(Slot::Failed) => return GraphState::Failed,
            None => {}
        }
        let path = self.inner.graph_path(reader.segment_id(), field);
        let job = match SegmentGraph::open(&path, reader, spec, &params, matrix.rows()) {
            Ok(g) => {
                let g = Arc::new(g);
                graphs.insert(key, Slot::Ready(g.clone()));
                drop(graphs);
                self.submit(Job::VerifyGraph {
                    reader: reader.clone(),
                    field: field.to_owned(),
                    spec: *spec,
                    params,
                });
                return GraphState::Ready(g);
            }
            Err(reason) => {
                if path.exists() {
                    tracing::warn!(file = %path.display(), %reason, "rebuilding vector graph");
                }
                Job::Graph {
                    reader: reader.clone(),
                    field: field.to_owned(),
                    spec: *spec,
                    params,
                }
            }
        };
        graphs.insert(key, Slot::Pending);
        drop(graphs);
        self.submit(job);
        GraphState::Pending
    }

    fn submit(&self, job: Job) {
        *self.inner.jobs.lock().expect("job count") += 1;
        let mut worker = self.worker.lock().expect("worker");
        let sender = worker.get_or_insert_with(|| {
            let (tx, rx) = channel::<Job>();
            let inner = self.inner.clone();
            std::thread::Builder::new()
                .name("mira-vector-index".into())
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        let _done = JobDone(&inner);
                        if !inner.closed.load(std::sync::atomic::Ordering::Relaxed) {
                            inner.run_guarded(job);
                        }
                    }
                })
                .expect("spawning the vector index worker");
            tx
        });
        if sender.send(job).is_err() {
            // Unreachable while the store lives (the worker only stops when its sender is
            // dropped, and it survives panicking jobs); never leave the count up.
            let _done = JobDone(&self.inner);
        }
    }

    /// Brings the store in line with a searcher: every segment gets its matrices (built if
    /// needed) and its graphs queued, and files and cache entries of segments that are gone are
    /// removed.
    pub fn sync(&self, searcher: &Searcher, fields: &[(&str, VectorSpec)]) -> Result<()> {
        let live: HashSet<SegmentId> = searcher.segment_readers().iter().map(|r| r.segment_id()).collect();
        self.inner
            .matrices
            .lock()
            .expect("vector cache lock")
            .retain(|(seg, _), _| live.contains(seg));
        self.inner
            .graphs
            .lock()
            .expect("graph slots")
            .retain(|(seg, _), _| live.contains(seg));
        for reader in searcher.segment_readers() {
            for (field, spec) in fields {
                let matrix = self.matrix(reader, field, spec)?;
                self.graph(reader, field, spec, &matrix);
            }
        }
        let live_names: HashSet<String> = live.iter().map(|s| s.uuid_string()).collect();
        let entries = std::fs::read_dir(&self.inner.dir)
            .map_err(|e| Error::io(format!("listing {}", self.inner.dir.display()), e))?;
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
        self.inner.stats.lock().expect("stats lock").removed += removed;
        Ok(())
    }

    /// Blocks until every queued verification and graph build is done, calling `progress`
    /// about twice a second with the graph being built.
    pub fn wait_idle(&self, progress: &mut dyn FnMut(Option<&GraphBuild>)) {
        loop {
            let jobs = self.inner.jobs.lock().expect("job count");
            if *jobs == 0 {
                return;
            }
            drop(
                self.inner
                    .idle
                    .wait_timeout(jobs, std::time::Duration::from_millis(500))
                    .expect("job count"),
            );
            // No lock is held while the caller draws.
            let building = self.inner.building.lock().expect("progress").clone();
            progress(building.as_ref());
        }
    }

    /// Verifications and builds queued or running.
    pub fn pending_jobs(&self) -> usize {
        *self.inner.jobs.lock().expect("job count")
    }

    /// What the store has done since it was opened.
    pub fn stats(&self) -> VectorStoreStats {
        *self.inner.stats.lock().expect("stats lock")
    }

    /// Bytes taken by the mapped matrices.
    pub fn mapped_bytes(&self) -> usize {
        self.inner
            .matrices
            .lock()
            .expect("vector cache lock")
            .values()
            .map(|m| m.file_bytes())
            .sum()
    }

    /// The ready graphs' bytes: links with the node map, and codes.
    pub fn graph_bytes(&self) -> (usize, usize) {
        let graphs = self.inner.graphs.lock().expect("graph slots");
        graphs.values().fold((0, 0), |(l, c), s| match s {
            Slot::Ready(g) => (l + g.link_bytes(), c + g.file_bytes() - g.link_bytes()),
            _ => (l, c),
        })
    }
}

/// Counts a job as done when dropped, however the job ended.
struct JobDone<'a>(&'a Inner);

impl Drop for JobDone<'_> {
    fn drop(&mut self) {
        let mut jobs = self.0.jobs.lock().unwrap_or_else(|p| p.into_inner());
        *jobs = jobs.saturating_sub(1);
        if *jobs == 0 {
            self.0.idle.notify_all();
        }
    }
}

impl Inner {
    /// Runs a job; one that panics (a bug, or memory) marks its graph failed instead of taking
    /// the worker down, so the segment is scanned and later jobs still run.
    fn run_guarded(&self, job: Job) {
        let key = match &job {
            Job::Graph { reader, field, .. } | Job::VerifyGraph { reader, field, .. } => {
                Some((reader.segment_id(), field.clone()))
            }
            Job::VerifyMatrix { .. } => None,
        };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run(job))).is_err() {
            tracing::error!("a vector index job panicked; the segment is scanned exactly");
            *self.building.lock().unwrap_or_else(|p| p.into_inner()) = None;
            if let Some(key) = key
                && let Some(slot) = self.graphs.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&key)
            {
                *slot = Slot::Failed;
            }
        }
    }

    fn matrix_path(&self, segment: SegmentId, field: &str) -> PathBuf {
        self.dir.join(format!("{}.{field}.mvec", segment.uuid_string()))
    }

    fn graph_path(&self, segment: SegmentId, field: &str) -> PathBuf {
        self.dir.join(format!("{}.{field}.hnsw", segment.uuid_string()))
    }

    /// The cached, mapped or (re)built matrix, and whether it came unverified from disk.
    fn matrix(&self, reader: &SegmentReader, field: &str, spec: &VectorSpec) -> Result<(Arc<SegmentMatrix>, bool)> {
        let key = (reader.segment_id(), field.to_owned());
        let mut cache = self.matrices.lock().expect("vector cache lock");
        if let Some(m) = cache.get(&key) {
            return Ok((m.clone(), false));
        }
        let path = self.matrix_path(reader.segment_id(), field);
        let (matrix, from_disk) = match SegmentMatrix::open(&path, reader, spec) {
            Ok(m) => (m, true),
            Err(reason) => (self.rebuild_matrix(reader, field, spec, &path, &reason)?, false),
        };
        let matrix = Arc::new(matrix);
        cache.insert(key, matrix.clone());
        Ok((matrix, from_disk))
    }

    fn rebuild_matrix(
        &self,
        reader: &SegmentReader,
        field: &str,
        spec: &VectorSpec,
        path: &Path,
        reason: &str,
    ) -> Result<SegmentMatrix> {
        let existed = path.exists();
        if existed {
            tracing::warn!(file = %path.display(), %reason, "rebuilding vector matrix");
        }
        SegmentMatrix::build(reader, field, spec, path)?;
        let mut stats = self.stats.lock().expect("stats lock");
        stats.built += 1;
        stats.rebuilt_stale += usize::from(existed);
        drop(stats);
        let fresh = SegmentMatrix::open(path, reader, spec).map_err(|reason| {
            Error::io(
                format!("vector matrix {}", path.display()),
                std::io::Error::other(format!("freshly built file is unusable: {reason}")),
            )
        })?;
        // Written from the column just now: a graph build need not read it again.
        fresh.mark_verified();
        Ok(fresh)
    }

    fn run(&self, job: Job) {
        match job {
            Job::VerifyMatrix { reader, field, spec } => {
                let key = (reader.segment_id(), field.clone());
                let Some(m) = self.matrices.lock().expect("vector cache lock").get(&key).cloned() else {
                    return;
                };
                if let Err(reason) = m.verify() {
                    let path = self.matrix_path(reader.segment_id(), &field);
                    match self.rebuild_matrix(&reader, &field, &spec, &path, &reason) {
                        Ok(fresh) => {
                            self.matrices
                                .lock()
                                .expect("vector cache lock")
                                .insert(key, Arc::new(fresh));
                        }
                        Err(e) => tracing::error!(file = %path.display(), error = %e, "rebuilding vector matrix"),
                    }
                }
            }
            Job::VerifyGraph {
                reader,
                field,
                spec,
                params,
            } => {
                let key = (reader.segment_id(), field.clone());
                let serving = match self.graphs.lock().expect("graph slots").get(&key) {
                    Some(Slot::Ready(g)) => g.clone(),
                    _ => return,
                };
                match serving.verify() {
                    Ok(()) => self.stats.lock().expect("stats lock").graphs_verified += 1,
                    Err(reason) => {
                        let path = self.graph_path(reader.segment_id(), &field);
                        tracing::warn!(file = %path.display(), %reason, "rebuilding vector graph");
                        // Scanned meanwhile: the damaged graph stops serving now.
                        if let Some(slot) = self.graphs.lock().expect("graph slots").get_mut(&key) {
                            *slot = Slot::Pending;
                        }
                        self.run(Job::Graph {
                            reader,
                            field,
                            spec,
                            params,
                        });
                    }
                }
            }
            Job::Graph {
                reader,
                field,
                spec,
                params,
            } => {
                let key = (reader.segment_id(), field.clone());
                // A segment merged away since the job was queued needs no graph.
                if !self.graphs.lock().expect("graph slots").contains_key(&key) {
                    return;
                }
                let slot = match self.graph(&reader, &field, &spec, &params) {
                    Ok(g) => Slot::Ready(Arc::new(g)),
                    Err(e) => {
                        tracing::error!(field = %field, error = %e, "building vector graph; the segment is scanned exactly");
                        Slot::Failed
                    }
                };
                let mut graphs = self.graphs.lock().expect("graph slots");
                // Only a segment still live keeps its slot (sync removes the others).
                if graphs.contains_key(&key) {
                    graphs.insert(key, slot);
                }
            }
        }
    }

    /// A fresh graph, built and written.
    fn graph(
        &self,
        reader: &SegmentReader,
        field: &str,
        spec: &VectorSpec,
        params: &HnswParams,
    ) -> Result<SegmentGraph> {
        let path = self.graph_path(reader.segment_id(), field);
        let existed = path.exists();
        let (matrix, _) = self.matrix(reader, field, spec)?;
        // Build on a verified matrix: a corrupt one would be rebuilt under the graph.
        let matrix = match matrix.verify() {
            Ok(()) => matrix,
            Err(reason) => {
                let fresh = Arc::new(self.rebuild_matrix(
                    reader,
                    field,
                    spec,
                    &self.matrix_path(reader.segment_id(), field),
                    &reason,
                )?);
                self.matrices
                    .lock()
                    .expect("vector cache lock")
                    .insert((reader.segment_id(), field.to_owned()), fresh.clone());
                fresh
            }
        };
        let nodes = (matrix.present() + matrix.extras()) as usize;
        *self.building.lock().expect("progress") = Some(GraphBuild {
            field: field.to_owned(),
            nodes,
            inserted: 0,
        });
        let seed = u64::from(crc32fast::hash(reader.segment_id().uuid_string().as_bytes()));
        let started = std::time::Instant::now();
        let built = build(&matrix, params, seed, &|inserted| {
            if let Some(b) = self.building.lock().expect("progress").as_mut() {
                b.inserted = inserted;
            }
        });
        let written = SegmentGraph::write(&built, reader, spec.dim, &path);
        *self.building.lock().expect("progress") = None;
        written?;
        tracing::info!(
            field,
            nodes,
            seconds = started.elapsed().as_secs_f64(),
            "built vector graph"
        );
        let mut stats = self.stats.lock().expect("stats lock");
        stats.graphs_built += 1;
        stats.graph_nodes_built += nodes;
        stats.graphs_rebuilt_stale += usize::from(existed);
        drop(stats);
        let graph = SegmentGraph::open(&path, reader, spec, params, matrix.rows()).map_err(|reason| {
            Error::io(
                format!("vector graph {}", path.display()),
                std::io::Error::other(format!("freshly built file is unusable: {reason}")),
            )
        })?;
        Ok(graph)
    }
}
