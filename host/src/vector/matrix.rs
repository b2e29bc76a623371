//! A segment's vectors as one contiguous, memory-mapped matrix file, derived from the segment's
//! fast bytes column.
//!
//! File layout (little-endian), designed so rows are 64-byte aligned in the mapping:
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 8 | magic `MIRAVEC\0` |
//! | 8 | 4 | format version |
//! | 12 | 4 | dtype (0 = f32, 1 = f16) |
//! | 16 | 4 | dim |
//! | 20 | 4 | max_doc of the segment |
//! | 24 | 4 | documents that have a vector |
//! | 28 | 4 | CRC-32 of everything after the header |
//! | 32 | 16 | segment id (first 16 hex digits) |
//! | 64 | 8 x ceil(max_doc / 64) | presence bitmap |
//! | 48 | 4 | extra vectors E: a document's vectors past its first (several images) |
//! | padded to 64 | max_doc x dim x dtype size | rows, by doc id: each document's first vector (zeros where absent; no rows at all when no document has a vector) |
//! | padded to 64 | 4 x E | the document of each extra vector, in increasing order |
//! | after | 2 x E | which of the document's vectors it is (its image's position) |
//! | padded to 64 | E x dim x dtype size | the extra vectors |
//!
//! Rows are addressed as one range: `0..max_doc` the first vectors (row = doc id), then
//! `max_doc..max_doc + E` the extra ones ([`SegmentMatrix::vector_f32`], [`SegmentMatrix::doc_of`]),
//! so a graph's node can be any vector of any document.
//!
//! A file whose header, size or checksum does not match is stale and gets rebuilt; nothing ever
//! trusts a matrix file over the column it came from. The header and size are checked at open,
//! the checksum in the background ([`super::VectorStore`]).

use std::fs::File;
use std::path::Path;

use half::f16;
use memmap2::Mmap;
use tantivy::{DocId, SegmentReader};

use crate::error::{Error, Result};
use crate::schema::{VectorDtype, VectorSpec};

const MAGIC: &[u8; 8] = b"MIRAVEC\0";
/// Bump when the layout changes: old files are then rebuilt on open.
const VERSION: u32 = 2;
const HEADER: usize = 64;

/// One segment's vectors for one field.
pub struct SegmentMatrix {
    map: Option<Mmap>,
    spec: VectorSpec,
    max_doc: u32,
    present: u32,
    rows_offset: usize,
    /// Vectors past each document's first.
    extras: u32,
    /// Where the extra vectors' documents, positions and rows start.
    extra_docs_offset: usize,
    extra_images_offset: usize,
    extra_rows_offset: usize,
    /// The checksum was read once and matched (or the file was just written): never read again.
    verified: std::sync::atomic::AtomicBool,
}

fn layout(max_doc: u32, spec: &VectorSpec) -> (usize, usize, usize) {
    let bitmap_words = (max_doc as usize).div_ceil(64);
    let rows_offset = (HEADER + bitmap_words * 8).next_multiple_of(64);
    let total = rows_offset + max_doc as usize * spec.row_bytes();
    (bitmap_words, rows_offset, total)
}

/// Offsets of the extra section (documents, positions, rows) and the file's full size, for
/// `extras` extra vectors after a main part of `total` bytes.
fn extras_layout(total: usize, extras: usize, spec: &VectorSpec) -> (usize, usize, usize, usize) {
    if extras == 0 {
        return (total, total, total, total);
    }
    let docs = total.next_multiple_of(64);
    let images = docs + 4 * extras;
    let rows = (images + 2 * extras).next_multiple_of(64);
    (docs, images, rows, rows + extras * spec.row_bytes())
}

fn dtype_code(d: VectorDtype) -> u32 {
    match d {
        VectorDtype::F32 => 0,
        VectorDtype::F16 => 1,
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

impl SegmentMatrix {
    /// Reads the field's column of one segment and writes its matrix file atomically (temp file,
    /// fsync, rename).
    pub fn build(reader: &SegmentReader, field: &str, spec: &VectorSpec, path: &Path) -> Result<()> {
        let max_doc = reader.max_doc();
        let row_bytes = spec.row_bytes();
        let (bitmap_words, rows_offset, total) = layout(max_doc, spec);
        let mut buf = vec![0u8; total];
        let mut present = 0u32;
        // (doc, position, dictionary ordinal) of every vector past a document's first.
        let mut extra: Vec<(u32, u16, u32)> = Vec::new();
        // The column's dictionary as one flat table of vectors (by ordinal) and their positions.
        let mut flat: Vec<u8> = Vec::new();
        let mut positions: Vec<u16> = Vec::new();
        if let Some(column) = reader.fast_fields().bytes(field)? {
            // Ordinals index the column's sorted dictionary; stream it once into a flat table
            // instead of a dictionary lookup per document.
            flat.reserve(column.num_terms() * row_bytes);
            positions.reserve(column.num_terms());
            let mut stream = column
                .dictionary()
                .stream()
                .map_err(|e| Error::io(format!("reading vector column `{field}`"), e))?;
            while stream.advance() {
                let (index, bytes) = super::codec::split_nth(stream.key(), row_bytes).ok_or_else(|| {
                    Error::io(
                        format!("vector column `{field}`"),
                        std::io::Error::other(format!(
                            "a value of {} bytes where {row_bytes} were expected",
                            stream.key().len()
                        )),
                    )
                })?;
                flat.extend_from_slice(bytes);
                positions.push(index);
            }
            let (bitmap, rows) = buf[HEADER..].split_at_mut(rows_offset - HEADER);
            let mut mine: Vec<(u16, u32)> = Vec::new();
            for doc in 0..max_doc {
                mine.clear();
                mine.extend(column.term_ords(doc).map(|ord| (positions[ord as usize], ord as u32)));
                let Some(&(_, first)) = mine.iter().min() else {
                    continue;
                };
                rows[doc as usize * row_bytes..][..row_bytes]
                    .copy_from_slice(&flat[first as usize * row_bytes..][..row_bytes]);
                let word = doc as usize / 64;
                let bits = u64::from_le_bytes(bitmap[word * 8..word * 8 + 8].try_into().expect("8 bytes"))
                    | 1u64 << (doc % 64);
                bitmap[word * 8..word * 8 + 8].copy_from_slice(&bits.to_le_bytes());
                present += 1;
                if mine.len() > 1 {
                    mine.sort_unstable();
                    extra.extend(mine[1..].iter().map(|&(index, ord)| (doc, index, ord)));
                }
            }
            debug_assert!(bitmap_words * 8 <= rows_offset - HEADER);
        }
        // A segment where no document has a vector in this field gets no rows at all (nothing
        // reads a row of a matrix with none present), so an unfilled field costs a header.
        if present == 0 {
            buf.truncate(rows_offset);
        }
        let (docs_at, images_at, rows_at, end) = extras_layout(buf.len(), extra.len(), spec);
        buf.resize(end, 0);
        for (i, &(doc, index, ord)) in extra.iter().enumerate() {
            buf[docs_at + 4 * i..][..4].copy_from_slice(&doc.to_le_bytes());
            buf[images_at + 2 * i..][..2].copy_from_slice(&index.to_le_bytes());
            buf[rows_at + row_bytes * i..][..row_bytes].copy_from_slice(&flat[ord as usize * row_bytes..][..row_bytes]);
        }
        let crc = crc32fast::hash(&buf[HEADER..]);
        let h = &mut buf[..HEADER];
        h[0..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&dtype_code(spec.dtype).to_le_bytes());
        h[16..20].copy_from_slice(&(spec.dim as u32).to_le_bytes());
        h[20..24].copy_from_slice(&max_doc.to_le_bytes());
        h[24..28].copy_from_slice(&present.to_le_bytes());
        h[28..32].copy_from_slice(&crc.to_le_bytes());
        h[32..48].copy_from_slice(reader.segment_id().uuid_string().as_bytes()[..16].as_ref());
        h[48..52].copy_from_slice(&(extra.len() as u32).to_le_bytes());
        super::write_atomically(path, &buf)
            .map_err(|e| Error::io(format!("writing vector matrix {}", path.display()), e))
    }

    /// Maps a matrix file and checks its header and size against the segment it should
    /// describe (cheap: the checksum is [`Self::verify`]'s, run off the query path). `Err`
    /// carries the reason the file cannot be used (the caller rebuilds it).
    pub fn open(path: &Path, reader: &SegmentReader, spec: &VectorSpec) -> Result<Self, String> {
        let max_doc = reader.max_doc();
        let (_, rows_offset, total) = layout(max_doc, spec);
        let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
        // SAFETY: matrix files are written once under a temporary name and renamed into place;
        // Mira never modifies a published file, it only replaces or removes it, which leaves
        // existing mappings valid.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| format!("cannot map: {e}"))?;
        if map.len() < HEADER {
            return Err(format!("size {}, shorter than the header", map.len()));
        }
        let h = &map[..HEADER];
        // With no vector present the file holds no rows (see `build`).
        let main = if u32_at(h, 24) == 0 { rows_offset } else { total };
        let extras = u32_at(h, 48);
        if extras as usize > super::codec::MAX_VECTORS_PER_DOC * max_doc as usize {
            return Err(format!("{extras} extra vectors for {max_doc} documents"));
        }
        let (extra_docs_offset, extra_images_offset, extra_rows_offset, expected) =
            extras_layout(main, extras as usize, spec);
        if map.len() != expected {
            return Err(format!("size {} where {expected} was expected", map.len()));
        }
        if &h[0..8] != MAGIC {
            return Err("not a matrix file".into());
        }
        if u32_at(h, 8) != VERSION {
            return Err(format!("format version {} (current: {VERSION})", u32_at(h, 8)));
        }
        if u32_at(h, 12) != dtype_code(spec.dtype) || u32_at(h, 16) as usize != spec.dim || u32_at(h, 20) != max_doc {
            return Err("header does not match the field or the segment".into());
        }
        if h[32..48] != reader.segment_id().uuid_string().as_bytes()[..16] {
            return Err("written for another segment".into());
        }
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::WillNeed);
        let m = SegmentMatrix {
            present: u32_at(h, 24),
            map: Some(map),
            spec: *spec,
            max_doc,
            rows_offset,
            extras,
            extra_docs_offset,
            extra_images_offset,
            extra_rows_offset,
            verified: std::sync::atomic::AtomicBool::new(false),
        };
        // Every extra vector's document is in range and in order, so lookups cannot leave the
        // file (a checksum failure found later rebuilds it; this keeps reads in bounds until then).
        let mut last = 0;
        for i in 0..extras {
            let doc = m.extra_doc(i);
            if doc >= max_doc || doc < last {
                return Err(format!("extra vector {i} names document {doc} out of order or range"));
            }
            last = doc;
        }
        Ok(m)
    }

    /// Reads the whole file against its checksum.
    pub fn verify(&self) -> Result<(), String> {
        use std::sync::atomic::Ordering;
        if self.verified.load(Ordering::Relaxed) {
            return Ok(());
        }
        let b = self.bytes();
        if b.len() >= HEADER && crc32fast::hash(&b[HEADER..]) == u32_at(b, 28) {
            self.verified.store(true, Ordering::Relaxed);
            Ok(())
        } else {
            Err("checksum mismatch (corrupt file)".into())
        }
    }

    /// Records that this mapping is of a file just written from the column (nothing to verify).
    pub(crate) fn mark_verified(&self) {
        self.verified.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The field's shape.
    pub fn spec(&self) -> &VectorSpec {
        &self.spec
    }

    /// Documents in the segment, deleted ones included.
    pub fn max_doc(&self) -> u32 {
        self.max_doc
    }

    /// Documents that have a vector, deleted ones included.
    pub fn present(&self) -> u32 {
        self.present
    }

    /// Bytes the file takes.
    pub fn file_bytes(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len())
    }

    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Whether `doc` has a vector.
    #[inline]
    pub fn has(&self, doc: DocId) -> bool {
        let at = HEADER + (doc as usize / 64) * 8;
        let word = u64::from_le_bytes(self.bytes()[at..at + 8].try_into().expect("8 bytes"));
        word >> (doc % 64) & 1 == 1
    }

    /// The row of `doc` as f32; the field must be f32.
    #[inline]
    pub fn row_f32(&self, doc: DocId) -> &[f32] {
        self.rows_f32(doc, 1)
    }

    /// The row of `doc` as f16; the field must be f16.
    #[inline]
    pub fn row_f16(&self, doc: DocId) -> &[f16] {
        self.rows_f16(doc, 1)
    }

    fn rows_region(&self, first: DocId, count: usize) -> &[u8] {
        let at = self.rows_offset + first as usize * self.spec.row_bytes();
        &self.bytes()[at..at + count * self.spec.row_bytes()]
    }

    /// `count` consecutive rows from `first`, as f32; the field must be f32.
    #[inline]
    pub fn rows_f32(&self, first: DocId, count: usize) -> &[f32] {
        assert_eq!(self.spec.dtype, VectorDtype::F32);
        let bytes = self.rows_region(first, count);
        // SAFETY: rows start at a 64-byte multiple of a page-aligned mapping, so the pointer is
        // aligned for f32; the region holds count * dim f32s; any bit pattern is a valid f32.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), count * self.spec.dim) }
    }

    /// `count` consecutive rows from `first`, as f16; the field must be f16.
    #[inline]
    pub fn rows_f16(&self, first: DocId, count: usize) -> &[f16] {
        assert_eq!(self.spec.dtype, VectorDtype::F16);
        let bytes = self.rows_region(first, count);
        // SAFETY: as for `rows_f32`, with 2-byte alignment and any bit pattern a valid f16.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f16>(), count * self.spec.dim) }
    }

    /// Vectors past each document's first, in all.
    pub fn extras(&self) -> u32 {
        self.extras
    }

    /// The addressable rows: `0..max_doc` (each document's first vector), then the extras.
    pub fn rows(&self) -> u32 {
        self.max_doc + self.extras
    }

    fn extra_doc(&self, i: u32) -> DocId {
        u32_at(self.bytes(), self.extra_docs_offset + 4 * i as usize)
    }

    /// The document of row `r` (`r` < [`Self::rows`]).
    #[inline]
    pub fn doc_of(&self, r: u32) -> DocId {
        if r < self.max_doc {
            r
        } else {
            self.extra_doc(r - self.max_doc)
        }
    }

    /// Which of its document's vectors row `r` is (0 for the first; the image's position for an
    /// image list).
    #[inline]
    pub fn position_of(&self, r: u32) -> u16 {
        if r < self.max_doc {
            return 0;
        }
        let at = self.extra_images_offset + 2 * (r - self.max_doc) as usize;
        u16::from_le_bytes([self.bytes()[at], self.bytes()[at + 1]])
    }

    /// The rows of `doc`'s vectors past its first (empty for most documents), for documents
    /// visited in increasing order: `cursor` (starting
    /// at 0) is where the previous document's extras ended, so a scan walks the extras once
    /// instead of searching them per document.
    #[inline]
    pub fn extra_rows_from(&self, doc: DocId, cursor: &mut u32) -> std::ops::Range<u32> {
        while *cursor < self.extras && self.extra_doc(*cursor) < doc {
            *cursor += 1;
        }
        let start = *cursor;
        while *cursor < self.extras && self.extra_doc(*cursor) == doc {
            *cursor += 1;
        }
        self.max_doc + start..self.max_doc + *cursor
    }

    fn extra_region(&self, r: u32) -> &[u8] {
        let at = self.extra_rows_offset + (r - self.max_doc) as usize * self.spec.row_bytes();
        &self.bytes()[at..at + self.spec.row_bytes()]
    }

    /// Row `r` as f32 (a first vector or an extra one); the field must be f32.
    #[inline]
    pub fn vector_f32(&self, r: u32) -> &[f32] {
        if r < self.max_doc {
            return self.row_f32(r);
        }
        assert_eq!(self.spec.dtype, VectorDtype::F32);
        let bytes = self.extra_region(r);
        // SAFETY: the extra rows start at a 64-byte multiple of a page-aligned mapping and
        // rows are whole f32s, so the pointer is aligned; any bit pattern is a valid f32.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), self.spec.dim) }
    }

    /// Row `r` as f16; the field must be f16.
    #[inline]
    pub fn vector_f16(&self, r: u32) -> &[f16] {
        if r < self.max_doc {
            return self.row_f16(r);
        }
        assert_eq!(self.spec.dtype, VectorDtype::F16);
        let bytes = self.extra_region(r);
        // SAFETY: as for `vector_f32`, with 2-byte alignment.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f16>(), self.spec.dim) }
    }

    /// The raw rows region, for bandwidth baselines in benchmarks.
    pub fn rows_bytes(&self) -> &[u8] {
        &self.bytes()[self.rows_offset..]
    }
}
