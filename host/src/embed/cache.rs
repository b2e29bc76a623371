//! A persistent embedding cache: vectors keyed by (the model's fingerprint, the input's content
//! hash), so re-indexing the same images or texts costs no inference.
//!
//! One append-only file per model, `<dir>/<fingerprint>.vectors`: a 64-byte header (magic,
//! version, dim, the full fingerprint), then records of `sha256(input) | dim x f32 LE | CRC-32`.
//! Opening reads the keys into memory (36 bytes each) and truncates a torn last record; a hit
//! reads its vector with one positional read. Appends take an exclusive file lock, so several
//! processes may share a cache; each sees the others' entries after it reopens.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"MIRAEMB1";
const VERSION: u32 = 1;
const HEADER: usize = 64;

/// Hits and misses of every cache in the process (for metrics).
static GLOBAL_HITS: AtomicU64 = AtomicU64::new(0);
static GLOBAL_MISSES: AtomicU64 = AtomicU64::new(0);

/// Hits and misses of every embedding cache in this process so far.
pub fn global_stats() -> CacheStats {
    CacheStats {
        hits: GLOBAL_HITS.load(Ordering::Relaxed),
        misses: GLOBAL_MISSES.load(Ordering::Relaxed),
        entries: 0,
    }
}

/// A content hash: SHA-256 of the input, with its kind mixed in.
pub type ContentKey = [u8; 32];

/// The key of a text input.
pub fn text_key(text: &str) -> ContentKey {
    let mut h = Sha256::new();
    h.update(b"text\0");
    h.update(text.as_bytes());
    h.finalize().into()
}

/// The key of an image file's bytes.
pub fn image_key(bytes: &[u8]) -> ContentKey {
    let mut h = Sha256::new();
    h.update(b"image\0");
    h.update(bytes);
    h.finalize().into()
}

/// Vectors of one model on disk.
pub struct EmbeddingCache {
    path: PathBuf,
    file: File,
    dim: usize,
    index: RwLock<HashMap<ContentKey, u64>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for EmbeddingCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingCache")
            .field("path", &self.path)
            .field("dim", &self.dim)
            .finish()
    }
}

/// Hits and misses since open, and entries on disk.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> String {
    format!("embedding cache {}: {what}: {e}", path.display())
}

impl EmbeddingCache {
    /// Opens (or creates) the cache of the model with `fingerprint` (64 hex digits) in `dir`.
    pub fn open(dir: &Path, fingerprint: &str, dim: usize) -> Result<Self, String> {
        let fp: [u8; 32] = hex_decode(fingerprint).ok_or_else(|| format!("bad model fingerprint `{fingerprint}`"))?;
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, "creating", e))?;
        let path = dir.join(format!("{fingerprint}.vectors"));
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io_err(&path, "opening", e))?;
        file.lock().map_err(|e| io_err(&path, "locking", e))?;
        let opened = Self::load(&path, &file, &fp, dim);
        let _ = file.unlock();
        let index = opened?;
        Ok(EmbeddingCache {
            path,
            file,
            dim,
            index: RwLock::new(index),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    fn record_len(dim: usize) -> usize {
        32 + 4 * dim + 4
    }

    /// Reads the keys (writing the header into a new file, cutting a torn tail).
    fn load(path: &Path, file: &File, fp: &[u8; 32], dim: usize) -> Result<HashMap<ContentKey, u64>, String> {
        let len = file.metadata().map_err(|e| io_err(path, "reading", e))?.len();
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&(dim as u32).to_le_bytes());
        header[16..48].copy_from_slice(fp);
        if len < HEADER as u64 {
            file.set_len(0).map_err(|e| io_err(path, "resetting", e))?;
            (&*file).write_all(&header).map_err(|e| io_err(path, "writing", e))?;
            return Ok(HashMap::new());
        }
        let mut found = [0u8; HEADER];
        file.read_exact_at(&mut found, 0)
            .map_err(|e| io_err(path, "reading", e))?;
        if found != header {
            return Err(format!(
                "embedding cache {} belongs to another model or format (delete it to start over)",
                path.display()
            ));
        }
        let rec = Self::record_len(dim);
        let mut index = HashMap::new();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut skip = [0u8; HEADER];
        reader.read_exact(&mut skip).map_err(|e| io_err(path, "reading", e))?;
        let mut buf = vec![0u8; rec];
        let mut offset = HEADER as u64;
        while offset + rec as u64 <= len {
            reader.read_exact(&mut buf).map_err(|e| io_err(path, "reading", e))?;
            let crc = u32::from_le_bytes(buf[rec - 4..].try_into().expect("4 bytes"));
            if crc32fast::hash(&buf[..rec - 4]) != crc {
                break;
            }
            index.insert(buf[..32].try_into().expect("32 bytes"), offset);
            offset += rec as u64;
        }
        if offset < len {
            tracing::warn!(cache = %path.display(), "embedding cache: cutting a torn or corrupt tail");
            file.set_len(offset).map_err(|e| io_err(path, "truncating", e))?;
        }
        Ok(index)
    }

    /// The cached vector for `key`.
    pub fn get(&self, key: &ContentKey) -> Option<Vec<f32>> {
        let offset = self.index.read().unwrap_or_else(|p| p.into_inner()).get(key).copied();
        let found = offset.and_then(|offset| {
            let mut buf = vec![0u8; 4 * self.dim];
            self.file.read_exact_at(&mut buf, offset + 32).ok()?;
            Some(
                buf.chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                    .collect(),
            )
        });
        let (counter, global) = if found.is_some() {
            (&self.hits, &GLOBAL_HITS)
        } else {
            (&self.misses, &GLOBAL_MISSES)
        };
        counter.fetch_add(1, Ordering::Relaxed);
        global.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores vectors (each `dim` long) under their keys.
    pub fn put(&self, items: &[(ContentKey, &[f32])]) -> Result<(), String> {
        if items.is_empty() {
            return Ok(());
        }
        let rec = Self::record_len(self.dim);
        let mut bytes = Vec::with_capacity(items.len() * rec);
        for (key, v) in items {
            if v.len() != self.dim {
                return Err(format!("embedding cache holds {}-d vectors, got {}", self.dim, v.len()));
            }
            let start = bytes.len();
            bytes.extend_from_slice(key);
            v.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
            let crc = crc32fast::hash(&bytes[start..]);
            bytes.extend_from_slice(&crc.to_le_bytes());
        }
        self.file.lock().map_err(|e| io_err(&self.path, "locking", e))?;
        let written = (|| {
            let offset = self.file.metadata()?.len();
            (&self.file).write_all(&bytes)?;
            Ok::<_, std::io::Error>(offset)
        })();
        let _ = self.file.unlock();
        let offset = written.map_err(|e| io_err(&self.path, "appending", e))?;
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        for (i, (key, _)) in items.iter().enumerate() {
            index.insert(*key, offset + (i * rec) as u64);
        }
        Ok(())
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.index.read().unwrap_or_else(|p| p.into_inner()).len() as u64,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn hex_decode(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn round_trip_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let c = EmbeddingCache::open(dir.path(), FP, 3).unwrap();
        let (a, b) = (text_key("red dress"), image_key(b"\x89PNG..."));
        assert_ne!(text_key("x"), image_key(b"x"));
        assert!(c.get(&a).is_none());
        c.put(&[(a, &[1.0, 2.0, 3.0][..]), (b, &[4.0, 5.0, 6.0][..])]).unwrap();
        assert_eq!(c.get(&a).unwrap(), vec![1.0, 2.0, 3.0]);
        assert!(c.put(&[(a, &[1.0][..])]).is_err());
        let path = c.path().to_owned();
        drop(c);
        // A torn record at the end is cut; the others survive.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[7u8; 20]).unwrap();
        drop(f);
        let c = EmbeddingCache::open(dir.path(), FP, 3).unwrap();
        assert_eq!(c.get(&b).unwrap(), vec![4.0, 5.0, 6.0]);
        assert_eq!(c.stats().entries, 2);
        assert_eq!((c.stats().hits, c.stats().misses), (1, 0));
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            (HEADER + 2 * EmbeddingCache::record_len(3)) as u64
        );
        drop(c);
        // Another dim under the same fingerprint is another format: refused, not misread.
        assert!(
            EmbeddingCache::open(dir.path(), FP, 4)
                .unwrap_err()
                .contains("another model")
        );
        assert!(EmbeddingCache::open(dir.path(), "zz", 3).is_err());
    }
}
