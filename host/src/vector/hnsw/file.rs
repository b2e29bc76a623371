//! The graph file of one segment and field (`<segment>.<field>.hnsw` beside the matrices).
//!
//! Layout (little-endian; every section starts at a multiple of 64):
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 8 | magic `MIRAHNSW` |
//! | 8 | 4 | format version |
//! | 12 | 4 | flags (bit 0: i8 codes present) |
//! | 16 | 4 | dim |
//! | 20 | 4 | max_doc of the segment |
//! | 24 | 4 | nodes |
//! | 28 | 4 | m (links per node on upper layers; 2m on the bottom one) |
//! | 32 | 4 | ef_construction |
//! | 36 | 4 | entry node |
//! | 40 | 4 | top layer |
//! | 44 | 4 | CRC-32 of everything after the header |
//! | 48 | 16 | segment id (first 16 hex digits) |
//! | 64 | 64 | reserved |
//! | 128 | 4 x (top + 1) | nodes per layer |
//! | | 4 x nodes | node -> document |
//! | | 4 x nodes x (1 + 2m) | bottom layer: per node, link count then links |
//! | | per upper layer: 4 x count (its nodes, sorted), then 4 x count x (1 + m) links |
//! | | 4 x dim, 4 x dim, nodes x dim | with codes: per-dimension low end, step, 7-bit codes |
//!
//! Opening checks the header and the size against the segment and the field's parameters
//! (cheap at any scale); [`SegmentGraph::verify`] reads the whole file against its checksum and
//! is run before a graph serves queries, off the query path. Links are bounds-checked when read,
//! so even a file corrupted after verification cannot make a walk read outside it.

use std::fs::File;
use std::path::Path;
use std::sync::Mutex;

use memmap2::Mmap;
use tantivy::SegmentReader;

use super::{BuiltGraph, Visited};
use crate::error::{Error, Result};
use crate::schema::{HnswParams, Quantization, VectorSpec};
use crate::vector::quant::Quantizer;

const MAGIC: &[u8; 8] = b"MIRAHNSW";
const VERSION: u32 = 1;
const HEADER: usize = 128;
const FLAG_CODES: u32 = 1;

fn align(x: usize) -> usize {
    x.next_multiple_of(64)
}

/// Where each section lies.
#[derive(Debug, Clone)]
struct Layout {
    node_doc: usize,
    /// Per layer: offset of its node list (unused for layer 0), offset of its rows, count.
    layers: Vec<(usize, usize, usize)>,
    /// Offsets of lo, step and codes.
    codes: Option<(usize, usize, usize)>,
    total: usize,
}

fn layout(nodes: usize, dim: usize, m: usize, counts: &[usize], codes: bool) -> Layout {
    let mut at = align(HEADER + 4 * counts.len());
    let node_doc = at;
    at = align(at + 4 * nodes);
    let mut layers = Vec::with_capacity(counts.len());
    for (l, &count) in counts.iter().enumerate() {
        let width = 1 + if l == 0 { 2 * m } else { m };
        let list = at;
        if l > 0 {
            at = align(at + 4 * count);
        }
        layers.push((list, at, count));
        at = align(at + 4 * count * width);
    }
    let codes = codes.then(|| {
        let lo = at;
        let step = align(lo + 4 * dim);
        let c = align(step + 4 * dim);
        at = c + nodes * dim;
        (lo, step, c)
    });
    Layout {
        node_doc,
        layers,
        codes,
        total: at,
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn put(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// A segment's graph, mapped.
pub struct SegmentGraph {
    map: Mmap,
    layout: Layout,
    nodes: u32,
    m: usize,
    entry: u32,
    dim: usize,
    quantizer: Option<Quantizer>,
    pool: Mutex<Vec<Visited>>,
}

impl SegmentGraph {
    /// Writes `graph` for `reader`'s segment atomically (temp file, fsync, rename).
    pub fn write(graph: &BuiltGraph, reader: &SegmentReader, dim: usize, path: &Path) -> Result<()> {
        let nodes = graph.node_doc.len();
        let m = graph.params.m;
        let mut counts = vec![0usize; graph.top + 1];
        for l in &graph.links {
            for c in counts.iter_mut().take(l.len()) {
                *c += 1;
            }
        }
        let lay = layout(nodes, dim, m, &counts, graph.codes.is_some());
        let mut buf = vec![0u8; lay.total];
        for (i, c) in counts.iter().enumerate() {
            put(&mut buf, HEADER + 4 * i, *c as u32);
        }
        for (i, d) in graph.node_doc.iter().enumerate() {
            put(&mut buf, lay.node_doc + 4 * i, *d);
        }
        let mut upper_index = vec![0usize; graph.top + 1];
        for (node, layers) in graph.links.iter().enumerate() {
            for (l, links) in layers.iter().enumerate() {
                let (list, rows, _) = lay.layers[l];
                let width = 1 + if l == 0 { 2 * m } else { m };
                let row = if l == 0 {
                    node
                } else {
                    // Nodes are visited in increasing order, so each layer's list is sorted.
                    let r = upper_index[l];
                    put(&mut buf, list + 4 * r, node as u32);
                    upper_index[l] += 1;
                    r
                };
                let at = rows + 4 * row * width;
                let links = &links[..links.len().min(width - 1)];
                put(&mut buf, at, links.len() as u32);
                for (j, nb) in links.iter().enumerate() {
                    put(&mut buf, at + 4 * (1 + j), *nb);
                }
            }
        }
        if let (Some((q, codes)), Some((lo, step, c))) = (&graph.codes, lay.codes) {
            for (i, v) in q.lo().iter().enumerate() {
                buf[lo + 4 * i..lo + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
            }
            for (i, v) in q.step().iter().enumerate() {
                buf[step + 4 * i..step + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
            }
            buf[c..c + codes.len()].copy_from_slice(codes);
        }
        let crc = crc32fast::hash(&buf[HEADER..]);
        buf[0..8].copy_from_slice(MAGIC);
        put(&mut buf, 8, VERSION);
        put(&mut buf, 12, if graph.codes.is_some() { FLAG_CODES } else { 0 });
        put(&mut buf, 16, dim as u32);
        put(&mut buf, 20, reader.max_doc());
        put(&mut buf, 24, nodes as u32);
        put(&mut buf, 28, m as u32);
        put(&mut buf, 32, graph.params.ef_construction as u32);
        put(&mut buf, 36, graph.entry);
        put(&mut buf, 40, graph.top as u32);
        put(&mut buf, 44, crc);
        buf[48..64].copy_from_slice(&reader.segment_id().uuid_string().as_bytes()[..16]);
        crate::vector::write_atomically(path, &buf)
            .map_err(|e| Error::io(format!("writing vector graph {}", path.display()), e))
    }

    /// Maps a graph file and checks its header and size against the segment and the field's
    /// parameters. `Err` is the reason it cannot be used (the caller rebuilds it).
    pub fn open(
        path: &Path,
        reader: &SegmentReader,
        spec: &VectorSpec,
        params: &HnswParams,
        rows: u32,
    ) -> Result<Self, String> {
        let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
        // SAFETY: graph files are written once under a temporary name and renamed into place;
        // Mira never modifies a published file, only replaces or removes it.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| format!("cannot map: {e}"))?;
        if map.len() < HEADER || &map[0..8] != MAGIC {
            return Err("not a graph file".into());
        }
        let h = &map[..HEADER];
        if u32_at(h, 8) != VERSION {
            return Err(format!("format version {} (current: {VERSION})", u32_at(h, 8)));
        }
        let codes = u32_at(h, 12) & FLAG_CODES != 0;
        let (dim, nodes, m, top) = (
            u32_at(h, 16) as usize,
            u32_at(h, 24),
            u32_at(h, 28) as usize,
            u32_at(h, 40) as usize,
        );
        if dim != spec.dim || u32_at(h, 20) != reader.max_doc() {
            return Err("header does not match the field or the segment".into());
        }
        if h[48..64] != reader.segment_id().uuid_string().as_bytes()[..16] {
            return Err("written for another segment".into());
        }
        if m != params.m
            || u32_at(h, 32) as usize != params.ef_construction
            || codes != (params.quantization == Quantization::I8)
        {
            return Err("built with other graph parameters".into());
        }
        if nodes > rows || top > super::MAX_LEVEL || map.len() < HEADER + 4 * (top + 1) {
            return Err("header out of range".into());
        }
        let counts: Vec<usize> = (0..=top).map(|l| u32_at(&map, HEADER + 4 * l) as usize).collect();
        if counts[0] != nodes as usize || counts.iter().any(|c| *c > nodes as usize) {
            return Err("layer sizes out of range".into());
        }
        let lay = layout(nodes as usize, dim, m, &counts, codes);
        if map.len() != lay.total {
            return Err(format!("size {} where {} was expected", map.len(), lay.total));
        }
        let entry = u32_at(h, 36);
        if nodes > 0 && entry >= nodes {
            return Err("entry node out of range".into());
        }
        let mut graph = SegmentGraph {
            map,
            layout: lay,
            nodes,
            m,
            entry,
            dim,
            quantizer: None,
            pool: Mutex::new(Vec::new()),
        };
        // Nodes map to distinct rows of the segment's matrix (`rows`: each document's first
        // vector, then the extra ones), in increasing order (as written): a damaged map would
        // otherwise name rows that do not exist or twice the same.
        let docs = graph.node_docs();
        if docs.windows(2).any(|w| w[0] >= w[1]) || docs.last().is_some_and(|d| *d >= rows) {
            return Err("node -> document map out of order or out of range".into());
        }
        if let Some((lo, step, _)) = graph.layout.codes {
            let floats = |at: usize| -> Vec<f32> {
                (0..dim)
                    .map(|i| f32::from_le_bytes(graph.map[at + 4 * i..at + 4 * i + 4].try_into().expect("4 bytes")))
                    .collect()
            };
            graph.quantizer = Some(Quantizer::from_parts(floats(lo), floats(step)));
        }
        #[cfg(unix)]
        let _ = graph.map.advise(memmap2::Advice::Random);
        Ok(graph)
    }

    /// Reads the whole file against its checksum.
    pub fn verify(&self) -> Result<(), String> {
        #[cfg(unix)]
        let _ = self.map.advise(memmap2::Advice::Sequential);
        let sum = crc32fast::hash(&self.map[HEADER..]);
        #[cfg(unix)]
        let _ = self.map.advise(memmap2::Advice::Random);
        if sum == u32_at(&self.map, 44) {
            Ok(())
        } else {
            Err("checksum mismatch (corrupt file)".into())
        }
    }

    pub fn nodes(&self) -> u32 {
        self.nodes
    }

    pub fn entry(&self) -> u32 {
        self.entry
    }

    /// The highest layer.
    pub fn top(&self) -> usize {
        self.layout.layers.len() - 1
    }

    pub fn file_bytes(&self) -> usize {
        self.map.len()
    }

    /// Bytes of links and node map (the graph proper, without codes).
    pub fn link_bytes(&self) -> usize {
        self.layout.codes.map_or(self.map.len(), |(lo, _, _)| lo) - HEADER
    }

    /// The quantizer, when the graph carries codes.
    pub fn quantizer(&self) -> Option<&Quantizer> {
        self.quantizer.as_ref()
    }

    fn u32s(&self, at: usize, len: usize) -> &[u32] {
        let bytes = &self.map[at..at + 4 * len];
        // SAFETY: sections start at multiples of 64 in a page-aligned mapping, the slice was
        // bounds-checked above, and any bit pattern is a valid u32 (little-endian targets).
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<u32>(), len) }
    }

    /// The matrix row of `node` (its document's id for a document's first vector; see
    /// [`crate::vector::SegmentMatrix::doc_of`]).
    #[inline]
    pub fn doc(&self, node: u32) -> u32 {
        self.u32s(self.layout.node_doc + 4 * node as usize, 1)[0]
    }

    /// The node -> document map.
    pub fn node_docs(&self) -> &[u32] {
        self.u32s(self.layout.node_doc, self.nodes as usize)
    }

    /// Appends the links of `node` on `layer` to `out` (none when it does not live there);
    /// out-of-range entries of a damaged file are dropped.
    #[inline]
    pub fn links(&self, layer: usize, node: u32, out: &mut Vec<u32>) {
        let Some(&(list, rows, count)) = self.layout.layers.get(layer) else {
            return;
        };
        let width = 1 + if layer == 0 { 2 * self.m } else { self.m };
        let row = if layer == 0 {
            if node >= self.nodes {
                return;
            }
            node as usize
        } else {
            match self.u32s(list, count).binary_search(&node) {
                Ok(r) => r,
                Err(_) => return,
            }
        };
        let r = self.u32s(rows + 4 * row * width, width);
        let n = (r[0] as usize).min(width - 1);
        out.extend(r[1..=n].iter().copied().filter(|l| *l < self.nodes));
    }

    /// The 7-bit codes of `node`, when the graph carries codes.
    #[inline]
    pub fn codes(&self, node: u32) -> &[u8] {
        match self.layout.codes {
            Some((_, _, c)) if node < self.nodes => &self.map[c + node as usize * self.dim..][..self.dim],
            _ => &[],
        }
    }

    pub(crate) fn take_visited(&self) -> Visited {
        let mut v = self
            .pool
            .lock()
            .expect("visited pool")
            .pop()
            .unwrap_or_else(|| Visited::new(self.nodes as usize));
        v.clear();
        v
    }

    pub(crate) fn give_visited(&self, v: Visited) {
        let mut pool = self.pool.lock().expect("visited pool");
        if pool.len() < 64 {
            pool.push(v);
        }
    }
}
