//! The set of collections under a data directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Collection, SCHEMA_FILE};
use crate::error::{Error, QueryError, Result};
use crate::schema::CollectionSchema;

/// A collection's schema file identity: (inode, change time in seconds, nanoseconds).
pub type Incarnation = (u64, i64, i64);

/// Collections under `<data>/collections/`.
pub struct Catalog {
    root: PathBuf,
    model_retry: Duration,
}

impl Catalog {
    /// The data directory (the collections live in its `collections/`).
    pub fn data_dir(&self) -> &std::path::Path {
        self.root.parent().unwrap_or(&self.root)
    }

    /// A catalog over a data directory (created on first write).
    pub fn new(data_dir: &Path) -> Self {
        Catalog {
            root: data_dir.join("collections"),
            model_retry: crate::models::DEFAULT_RETRY,
        }
    }

    /// The same catalog, whose collections remember a model that failed to load for `retry`
    /// before trying it again (a long-running server picks up a model put in place later).
    pub fn with_model_retry(mut self, retry: Duration) -> Self {
        self.model_retry = retry;
        self
    }

    fn dir(&self, name: &str) -> Result<PathBuf> {
        if !crate::schema::valid_collection_name(name) {
            return Err(QueryError::CollectionName(name.to_owned()).into());
        }
        Ok(self.root.join(name))
    }

    /// Names of the collections, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        match std::fs::read_dir(&self.root) {
            Ok(entries) => {
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    // Collections being created or dropped (`.name.creating-...`) are not listed.
                    if crate::schema::valid_collection_name(&name) && e.path().join(SCHEMA_FILE).is_file() {
                        names.push(name);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("listing {}", self.root.display()), e)),
        }
        names.sort();
        Ok(names)
    }

    /// Whether a collection exists.
    pub fn exists(&self, name: &str) -> bool {
        self.dir(name).is_ok_and(|d| d.join(SCHEMA_FILE).is_file())
    }

    /// What tells this incarnation of a collection from one dropped and created again under
    /// the same name (by any process): its schema file's inode and change time (an inode number
    /// alone may be reused at once). `None` when it does not exist.
    pub fn incarnation(&self, name: &str) -> Option<Incarnation> {
        use std::os::unix::fs::MetadataExt;
        let dir = self.dir(name).ok()?;
        std::fs::metadata(dir.join(SCHEMA_FILE))
            .ok()
            .map(|m| (m.ino(), m.ctime(), m.ctime_nsec()))
    }

    /// A directory beside the collections for a collection being created or dropped (hidden:
    /// its name starts with a dot, which no collection name does).
    fn aside(&self, name: &str, what: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        self.root.join(format!(".{name}.{what}-{}-{nanos}", std::process::id()))
    }

    /// Creates a collection from a validated schema. Its files are written aside and the
    /// directory renamed into place: other readers (this process or another) see it whole or
    /// not at all.
    pub fn create(&self, schema: CollectionSchema) -> Result<Collection> {
        let schema = with_creation_defaults(schema)?;
        let dir = self.dir(&schema.name)?;
        if dir.exists() {
            return Err(Error::CollectionExists(schema.name));
        }
        let staging = self.aside(&schema.name, "creating");
        let written = Collection::write_new(&staging, &schema).and_then(|()| {
            // A directory of that name made meanwhile (by another process) wins: rename does
            // not replace a directory that is not empty.
            std::fs::rename(&staging, &dir).map_err(|e| match e.kind() {
                std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::AlreadyExists => {
                    Error::CollectionExists(schema.name.clone())
                }
                _ => Error::io(format!("moving {} into place", staging.display()), e),
            })
        });
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        Collection::open_with(&dir, self.model_retry)
    }

    /// A collection's schema, read from its directory without opening the collection.
    pub fn schema(&self, name: &str) -> Result<CollectionSchema> {
        let path = self.dir(name)?.join(SCHEMA_FILE);
        if !path.is_file() {
            return Err(Error::CollectionNotFound(name.to_owned()));
        }
        CollectionSchema::from_file(&path)
    }

    /// Opens a collection by name. One dropped while it opens is not found (never an index
    /// error).
    pub fn open(&self, name: &str) -> Result<Collection> {
        let dir = self.dir(name)?;
        if !dir.join(SCHEMA_FILE).is_file() {
            return Err(Error::CollectionNotFound(name.to_owned()));
        }
        Collection::open_with(&dir, self.model_retry).map_err(|e| {
            if dir.join(SCHEMA_FILE).is_file() {
                e
            } else {
                Error::CollectionNotFound(name.to_owned())
            }
        })
    }

    /// Deletes a collection and everything in it: the directory is first renamed aside, so it
    /// disappears at once and whole, then removed.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        let dir = self.dir(name)?;
        if !dir.join(SCHEMA_FILE).is_file() {
            return Err(Error::CollectionNotFound(name.to_owned()));
        }
        let doomed = self.aside(name, "dropping");
        std::fs::rename(&dir, &doomed).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::CollectionNotFound(name.to_owned()),
            _ => Error::io(format!("removing {}", dir.display()), e),
        })?;
        // The collection is gone once renamed; what is left of it (this one, or earlier drops
        // a crash or a file still being written interrupted) is removed as well as can be.
        self.sweep_dropped();
        Ok(())
    }

    /// Removes the directories of dropped collections (`.name.dropping-...`); one that cannot
    /// be removed now is left for the next drop, with a warning.
    fn sweep_dropped(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.')
                && name.contains(".dropping-")
                && let Err(err) = std::fs::remove_dir_all(e.path())
            {
                tracing::warn!(dir = %e.path().display(), error = %err, "a dropped collection is not fully removed yet");
            }
        }
    }
}
/// What a new collection is written with beyond its declaration: vector fields that name no
/// index get a graph (`[vectors] index = "hnsw"`), written into its `collection.toml` so the
/// choice is visible and stays put. Collections made before graphs existed have no such line and
/// keep scanning (`flat`) until a field or `[vectors]` says otherwise.
fn with_creation_defaults(schema: CollectionSchema) -> Result<CollectionSchema> {
    let declared = schema
        .source
        .parse::<toml::Table>()
        .map(|t| t.contains_key("vectors"))
        .unwrap_or(true);
    if declared || schema.vector_fields().next().is_none() {
        return Ok(schema);
    }
    let mut source = schema.source.clone();
    if !source.ends_with('\n') {
        source.push('\n');
    }
    source.push_str(
        "\n# Written by Mira at creation: vector fields that name no `index` get a graph per segment.\n\
         [vectors]\nindex = \"hnsw\"\n",
    );
    CollectionSchema::from_toml(&source, SCHEMA_ORIGIN)
}

/// How schema errors of a collection being created name it.
const SCHEMA_ORIGIN: &str = "collection.toml";
