//! Building a segment's graph in memory, in parallel: each node is inserted by one rayon task,
//! which locks one node's link list at a time (never two), so insertions proceed on every core.

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Mutex, RwLock};

use rayon::prelude::*;

use super::{Layer, Scored, Visited, random_level, search_layer};
use crate::schema::{HnswParams, Quantization, VectorDtype};
use crate::vector::SegmentMatrix;
use crate::vector::kernel::{dot_f16, dot_f32, prefetch};
use crate::vector::quant::Quantizer;

/// A graph ready to be written: nodes are the segment's documents that have a vector, in doc
/// order.
pub struct BuiltGraph {
    /// The document of each node.
    pub node_doc: Vec<u32>,
    /// Per node, its links on each layer it lives on (`links[n].len() - 1` is its top layer).
    pub links: Vec<Vec<Vec<u32>>>,
    pub entry: u32,
    pub top: usize,
    pub params: HnswParams,
    /// With `quantization = "i8"`: the quantizer and every node's codes (`dim` bytes each).
    pub codes: Option<(Quantizer, Vec<u8>)>,
}

impl BuiltGraph {
    /// Links allowed per node on the bottom layer.
    pub fn m0(&self) -> usize {
        self.params.m * 2
    }
}

/// The segment's vectors, addressed by node.
struct Source<'a> {
    matrix: &'a SegmentMatrix,
    node_doc: &'a [u32],
}

impl Source<'_> {
    /// The vector of `node` as f32 (borrowed for f32 fields, widened into `buf` for f16).
    fn vector<'b>(&'b self, node: u32, buf: &'b mut Vec<f32>) -> &'b [f32] {
        let doc = self.node_doc[node as usize];
        match self.matrix.spec().dtype {
            VectorDtype::F32 => self.matrix.row_f32(doc),
            VectorDtype::F16 => {
                buf.clear();
                buf.extend(self.matrix.row_f16(doc).iter().map(|v| v.to_f32()));
                buf
            }
        }
    }

    #[inline]
    fn score(&self, q: &[f32], node: u32) -> f32 {
        let doc = self.node_doc[node as usize];
        match self.matrix.spec().dtype {
            VectorDtype::F32 => dot_f32(q, self.matrix.row_f32(doc)),
            VectorDtype::F16 => dot_f16(q, self.matrix.row_f16(doc)),
        }
    }

    #[inline]
    fn prefetch(&self, node: u32) {
        let doc = self.node_doc[node as usize];
        let bytes = self.matrix.spec().row_bytes();
        let p = match self.matrix.spec().dtype {
            VectorDtype::F32 => self.matrix.row_f32(doc).as_ptr().cast::<u8>(),
            VectorDtype::F16 => self.matrix.row_f16(doc).as_ptr().cast::<u8>(),
        };
        prefetch(p, bytes);
    }
}

/// One layer of the graph under construction, as a walk reads it.
struct BuildLayer<'a> {
    source: &'a Source<'a>,
    links: &'a [Vec<Mutex<Vec<u32>>>],
    level: usize,
    query: &'a [f32],
}

impl Layer for BuildLayer<'_> {
    fn links(&self, node: u32, out: &mut Vec<u32>) {
        if let Some(l) = self.links[node as usize].get(self.level) {
            out.extend_from_slice(&l.lock().expect("link lock"));
        }
    }

    fn score(&mut self, node: u32) -> f32 {
        self.source.score(self.query, node)
    }

    fn prefetch(&self, node: u32) {
        self.source.prefetch(node)
    }
}

/// Per-thread scratch space.
struct Scratch {
    visited: Visited,
    query: Vec<f32>,
    other: Vec<f32>,
}

/// Builds the graph of every vector present in `matrix`. `progress` is called now and then with
/// the number of nodes inserted so far (from any thread).
pub fn build(matrix: &SegmentMatrix, params: &HnswParams, seed: u64, progress: &(dyn Fn(usize) + Sync)) -> BuiltGraph {
    let node_doc: Vec<u32> = (0..matrix.max_doc()).filter(|d| matrix.has(*d)).collect();
    let n = node_doc.len();
    let (m, m0) = (params.m, params.m * 2);
    let mut rng = fastrand::Rng::with_seed(seed);
    let levels: Vec<usize> = (0..n).map(|_| random_level(&mut rng, m)).collect();
    let links: Vec<Vec<Mutex<Vec<u32>>>> = levels
        .iter()
        .map(|&l| {
            (0..=l)
                .map(|lc| Mutex::new(Vec::with_capacity(if lc == 0 { m0 } else { m })))
                .collect()
        })
        .collect();
    let source = Source {
        matrix,
        node_doc: &node_doc,
    };
    let entry = RwLock::new((0u32, levels.first().copied().unwrap_or(0)));
    let done = AtomicUsize::new(n.min(1));
    (1..n as u32).into_par_iter().for_each_init(
        || Scratch {
            visited: Visited::new(n),
            query: Vec::new(),
            other: Vec::new(),
        },
        |scratch, x| {
            insert(&source, &links, &levels, &entry, params, x, scratch);
            let d = done.fetch_add(1, AtomicOrdering::Relaxed) + 1;
            if d.is_multiple_of(4096) {
                progress(d);
            }
        },
    );
    progress(n);
    let codes = (params.quantization == Quantization::I8).then(|| quantize(&source, n));
    let (entry, top) = *entry.read().expect("entry lock");
    BuiltGraph {
        links: links
            .into_iter()
            .map(|layers| layers.into_iter().map(|l| l.into_inner().expect("link lock")).collect())
            .collect(),
        node_doc,
        entry,
        top,
        params: *params,
        codes,
    }
}

fn insert(
    source: &Source<'_>,
    links: &[Vec<Mutex<Vec<u32>>>],
    levels: &[usize],
    entry: &RwLock<(u32, usize)>,
    params: &HnswParams,
    x: u32,
    scratch: &mut Scratch,
) {
    let Scratch { visited, query, other } = scratch;
    let mut own = std::mem::take(query);
    let q = source.vector(x, &mut own).to_vec();
    *query = own;
    let level = levels[x as usize];
    let (ep, top) = *entry.read().expect("entry lock");
    let mut current = Scored {
        score: source.score(&q, ep),
        node: ep,
    };
    // Greedy descent through the layers above the new node's top.
    let mut buf = Vec::with_capacity(params.m * 2);
    for lc in (level + 1..=top).rev() {
        loop {
            buf.clear();
            if let Some(l) = links[current.node as usize].get(lc) {
                buf.extend_from_slice(&l.lock().expect("link lock"));
            }
            let mut improved = false;
            for &nb in &buf {
                let s = source.score(&q, nb);
                if s > current.score {
                    current = Scored { score: s, node: nb };
                    improved = true;
                }
            }
            if !improved {
                break;
            }
        }
    }
    let mut entries = vec![current];
    for lc in (0..=level.min(top)).rev() {
        visited.clear();
        for e in &entries {
            visited.insert(e.node);
        }
        visited.insert(x);
        let mut layer = BuildLayer {
            source,
            links,
            level: lc,
            query: &q,
        };
        let found = search_layer(
            &mut layer,
            &entries,
            params.ef_construction,
            visited,
            &|_| true,
            usize::MAX,
        );
        let candidates: Vec<Scored> = found.best.iter().copied().filter(|s| s.node != x).collect();
        let chosen = select(source, &candidates, params.m, other);
        *links[x as usize][lc].lock().expect("link lock") = chosen.clone();
        let cap = if lc == 0 { params.m * 2 } else { params.m };
        for &nb in &chosen {
            let mut list = links[nb as usize][lc].lock().expect("link lock");
            if list.contains(&x) {
                continue;
            }
            if list.len() < cap {
                list.push(x);
            } else {
                // Over capacity: keep the most diverse `cap` of its links and the new one.
                let mut own = Vec::new();
                let v = source.vector(nb, &mut own);
                let mut scored: Vec<Scored> = list
                    .iter()
                    .chain(std::iter::once(&x))
                    .map(|&o| Scored {
                        score: source.score(v, o),
                        node: o,
                    })
                    .collect();
                scored.sort_unstable_by(|a, b| b.cmp(a));
                *list = select(source, &scored, cap, other);
            }
        }
        if !found.best.is_empty() {
            entries = found.best;
        }
    }
    if level > top {
        let mut e = entry.write().expect("entry lock");
        if level > e.1 {
            *e = (x, level);
        }
    }
}

/// The diversity heuristic: walking `candidates` best first, keep one only if it is closer to
/// the query than to every neighbour kept so far, up to `m`.
fn select(source: &Source<'_>, candidates: &[Scored], m: usize, buf: &mut Vec<f32>) -> Vec<u32> {
    let mut kept: Vec<u32> = Vec::with_capacity(m);
    for c in candidates {
        if kept.len() >= m {
            break;
        }
        let v = source.vector(c.node, buf);
        if kept.iter().all(|&k| source.score(v, k) < c.score) {
            kept.push(c.node);
        }
    }
    kept
}

fn quantize(source: &Source<'_>, n: usize) -> (Quantizer, Vec<u8>) {
    let dim = source.matrix.spec().dim;
    // The per-dimension range is all training needs: fold it here (f16 rows are widened one
    // at a time), then train on the two rows that span it.
    let mut lo = vec![f32::INFINITY; dim];
    let mut hi = vec![f32::NEG_INFINITY; dim];
    let mut buf = Vec::new();
    for i in 0..n as u32 {
        for ((l, h), v) in lo.iter_mut().zip(hi.iter_mut()).zip(source.vector(i, &mut buf)) {
            *l = l.min(*v);
            *h = h.max(*v);
        }
    }
    let span = [lo, hi];
    let quantizer = Quantizer::train(dim, span.iter().map(|r| r.as_slice()).take(if n == 0 { 0 } else { 2 }));
    let mut codes = vec![0u8; n * dim];
    codes
        .par_chunks_mut(dim.max(1))
        .enumerate()
        .for_each_init(Vec::new, |buf, (i, out)| {
            quantizer.encode(source.vector(i as u32, buf), out);
        });
    (quantizer, codes)
}
