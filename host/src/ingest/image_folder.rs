//! A folder of images (searched recursively, in path order), with an optional sidecar JSONL of
//! fields: each sidecar line names its image with `"file": "relative/path.jpg"`. A document's id is
//! the image's relative path unless the sidecar gives one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::RowError;
use super::jsonl::JsonlSource;
use super::source::{RowSource, SourceRow};
use crate::error::{Error, Result};

const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];
/// Sidecar looked for inside the folder when none is given.
pub const DEFAULT_SIDECAR: &str = "metadata.jsonl";

pub struct ImageFolderSource {
    root: PathBuf,
    id_field: String,
    image_field: String,
    files: Vec<PathBuf>,
    next: usize,
    sidecar: HashMap<String, (String, u64, Map<String, Value>)>,
    /// Sidecar problems (bad lines, entries naming no image), reported after the images.
    pending_errors: Vec<RowError>,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if e.file_type()?.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| IMAGE_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

impl ImageFolderSource {
    pub fn open(root: &Path, sidecar: Option<&Path>, id_field: &str, image_field: &str) -> Result<Self> {
        let mut files = Vec::new();
        walk(root, &mut files).map_err(|source| Error::Input {
            path: root.to_owned(),
            source,
        })?;
        let default_sidecar = root.join(DEFAULT_SIDECAR);
        let sidecar_path = sidecar
            .map(Path::to_path_buf)
            .or_else(|| default_sidecar.is_file().then_some(default_sidecar));
        let mut by_file = HashMap::new();
        let mut pending_errors = Vec::new();
        if let Some(path) = sidecar_path {
            let mut rows = JsonlSource::open(&path)?;
            while let Some(row) = rows.next_row() {
                match row {
                    Err(e) => pending_errors.push(e),
                    Ok(mut row) => {
                        let line = row.line.unwrap_or(0);
                        match row.object.remove("file") {
                            Some(Value::String(f)) => {
                                by_file.insert(f.replace('\\', "/"), (row.source, line, row.object));
                            }
                            _ => pending_errors.push(RowError {
                                field: Some("file".into()),
                                ..RowError::new(
                                    &row.source,
                                    Some(line),
                                    "each sidecar line needs \"file\": the image's path relative to the folder",
                                )
                            }),
                        }
                    }
                }
            }
        }
        // Popped from the end later: reverse so they come out in line order.
        pending_errors.reverse();
        Ok(ImageFolderSource {
            root: root.to_owned(),
            id_field: id_field.to_owned(),
            image_field: image_field.to_owned(),
            files,
            next: 0,
            sidecar: by_file,
            pending_errors,
        })
    }
}

impl RowSource for ImageFolderSource {
    fn next_row(&mut self) -> Option<Result<SourceRow, RowError>> {
        if let Some(path) = self.files.get(self.next) {
            self.next += 1;
            let rel = relative(&self.root, path);
            let (source, line, mut object) = match self.sidecar.remove(&rel) {
                Some((source, line, object)) => (source, Some(line), object),
                None => (path.display().to_string(), None, Map::new()),
            };
            object
                .entry(self.id_field.clone())
                .or_insert_with(|| Value::from(rel.clone()));
            object.insert(self.image_field.clone(), Value::from(rel));
            return Some(Ok(SourceRow {
                source,
                line,
                object,
                base_dir: self.root.clone(),
            }));
        }
        if let Some(key) = self.sidecar.keys().min().cloned() {
            let (source, line, _) = self.sidecar.remove(&key).expect("key exists");
            return Some(Err(RowError {
                field: Some("file".into()),
                ..RowError::new(
                    &source,
                    Some(line),
                    format!("`{key}` is not an image in {}", self.root.display()),
                )
            }));
        }
        self.pending_errors.pop().map(Err)
    }

    fn total(&self) -> u64 {
        self.files.len() as u64
    }

    fn position(&self) -> u64 {
        self.next as u64
    }

    fn unit(&self) -> &'static str {
        "files"
    }
}
