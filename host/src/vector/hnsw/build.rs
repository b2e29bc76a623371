//! Building a segment's graph in memory, in parallel: each node is inserted by one rayon task,
//! which locks one node's link list at a time (never two), so insertions proceed on every core.

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Mutex, RwLock};

use rayon::prelude::*;

use super::{Layer, Scored, Visited, random_level, search_layer};
use crate::schema::{HnswParams, Quantization, VectorDtype};
use crate::vector::SegmentMatrix;
use crate::vector::kernel::{dot_codes, prefetch};
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

/// The segment's vectors as the build reads them: every node's 7-bit codes, and every node as a
/// quantized query (its i8 codes, bias and scale), so each similarity the build needs, node
/// against node, is one integer dot product over a quarter of the f32 bytes. The graph only
/// needs the order of neighbours to be about right; searches rescore on the stored vectors.
struct Source {
    dim: usize,
    codes: Vec<u8>,
    query_codes: Vec<i8>,
    bias: Vec<f32>,
    scale: Vec<f32>,
}

impl Source {
    /// The similarity of node `b` to node `a` (as a query).
    #[inline]
    fn score(&self, a: u32, b: u32) -> f32 {
        let d = self.dim;
        let (a, b) = (a as usize, b as usize);
        let dot = dot_codes(&self.codes[b * d..(b + 1) * d], &self.query_codes[a * d..(a + 1) * d]);
        self.bias[a] + self.scale[a] * dot as f32
    }

    #[inline]
    fn prefetch(&self, node: u32) {
        prefetch(self.codes[node as usize * self.dim..].as_ptr(), self.dim);
    }
}

/// One layer of the graph under construction, as a walk reads it.
struct BuildLayer<'a> {
    source: &'a Source,
    links: &'a [Vec<Mutex<Vec<u32>>>],
    level: usize,
    /// The node being inserted.
    query: u32,
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

/// Builds the graph of every vector present in `matrix`. `progress` is called now and then with
/// the number of nodes inserted so far (from any thread).
pub fn build(matrix: &SegmentMatrix, params: &HnswParams, seed: u64, progress: &(dyn Fn(usize) + Sync)) -> BuiltGraph {
    // Every vector is a node: each document's first (rows by doc id), then the extra ones.
    let node_doc: Vec<u32> = (0..matrix.max_doc())
        .filter(|d| matrix.has(*d))
        .chain(matrix.max_doc()..matrix.rows())
        .collect();
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
    let (quantizer, codes) = quantize(matrix, &node_doc);
    let source = encode_queries(&quantizer, matrix, &node_doc, codes);
    let entry = Entry {
        node: RwLock::new((0u32, levels.first().copied().unwrap_or(0))),
        raising: Mutex::new(()),
    };
    let done = AtomicUsize::new(n.min(1));
    (1..n as u32).into_par_iter().for_each_init(
        || Visited::new(n),
        |visited, x| {
            insert(&source, &links, &levels, &entry, params, x, visited);
            let d = done.fetch_add(1, AtomicOrdering::Relaxed) + 1;
            if d.is_multiple_of(4096) {
                progress(d);
            }
        },
    );
    progress(n);
    let codes = (params.quantization == Quantization::I8).then_some((quantizer, source.codes));
    let (entry, top) = *entry.node.read().expect("entry lock");
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

/// The entry point (node, its top layer), and the lock a node taller than the graph holds for
/// its whole insertion, so two such nodes never both link against a stale top (hnswlib's rule).
struct Entry {
    node: RwLock<(u32, usize)>,
    raising: Mutex<()>,
}

fn insert(
    source: &Source,
    links: &[Vec<Mutex<Vec<u32>>>],
    levels: &[usize],
    entry: &Entry,
    params: &HnswParams,
    x: u32,
    visited: &mut Visited,
) {
    let q = x;
    let level = levels[x as usize];
    // The read guard must be gone before waiting for the raise lock: its holder takes the write
    // lock at the end of its insertion (holding both here deadlocked two inserting threads).
    let top_now = entry.node.read().expect("entry lock").1;
    let _raising = (level > top_now).then(|| entry.raising.lock().expect("raise lock"));
    let (ep, top) = *entry.node.read().expect("entry lock");
    let mut current = Scored {
        score: source.score(q, ep),
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
                let s = source.score(q, nb);
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
            query: q,
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
        let chosen = select(source, &candidates, params.m);
        let cap = if lc == 0 { params.m * 2 } else { params.m };
        {
            // Others may already link back to `x` on this layer (they found it on the layer
            // above): keep those links beside the chosen ones, shrinking like any full list.
            let mut own = links[x as usize][lc].lock().expect("link lock");
            let earlier: Vec<u32> = own.iter().copied().filter(|l| !chosen.contains(l)).collect();
            own.clone_from(&chosen);
            if !earlier.is_empty() {
                own.extend(earlier);
                if own.len() > cap {
                    let mut scored: Vec<Scored> = own
                        .iter()
                        .map(|&o| Scored {
                            score: source.score(q, o),
                            node: o,
                        })
                        .collect();
                    scored.sort_unstable_by(|a, b| b.cmp(a));
                    *own = select(source, &scored, cap);
                }
            }
        }
        for &nb in &chosen {
            let mut list = links[nb as usize][lc].lock().expect("link lock");
            if list.contains(&x) {
                continue;
            }
            if list.len() < cap {
                list.push(x);
            } else {
                // Over capacity: keep the most diverse `cap` of its links and the new one.
                let mut scored: Vec<Scored> = list
                    .iter()
                    .chain(std::iter::once(&x))
                    .map(|&o| Scored {
                        score: source.score(nb, o),
                        node: o,
                    })
                    .collect();
                scored.sort_unstable_by(|a, b| b.cmp(a));
                *list = select(source, &scored, cap);
            }
        }
        if !found.best.is_empty() {
            entries = found.best;
        }
    }
    if level > top {
        let mut e = entry.node.write().expect("entry lock");
        if level > e.1 {
            *e = (x, level);
        }
    }
}

/// The diversity heuristic: walking `candidates` best first, keep one only if it is closer to
/// the query than to every neighbour kept so far, up to `m`.
fn select(source: &Source, candidates: &[Scored], m: usize) -> Vec<u32> {
    let mut kept: Vec<u32> = Vec::with_capacity(m);
    for c in candidates {
        if kept.len() >= m {
            break;
        }
        if kept.iter().all(|&k| source.score(c.node, k) < c.score) {
            kept.push(c.node);
        }
    }
    kept
}

/// The vector of the node at matrix row `row`, as f32 (borrowed for f32 fields, widened into
/// `buf`).
fn vector<'b>(matrix: &'b SegmentMatrix, row: u32, buf: &'b mut Vec<f32>) -> &'b [f32] {
    match matrix.spec().dtype {
        VectorDtype::F32 => matrix.vector_f32(row),
        VectorDtype::F16 => {
            buf.clear();
            buf.extend(matrix.vector_f16(row).iter().map(|v| v.to_f32()));
            buf
        }
    }
}

/// Trains the per-dimension ranges and encodes every node (in parallel).
fn quantize(matrix: &SegmentMatrix, node_doc: &[u32]) -> (Quantizer, Vec<u8>) {
    let dim = matrix.spec().dim;
    // The per-dimension range is all training needs: fold it here (f16 rows are widened one
    // at a time), then train on the two rows that span it.
    let mut lo = vec![f32::INFINITY; dim];
    let mut hi = vec![f32::NEG_INFINITY; dim];
    let mut buf = Vec::new();
    for &doc in node_doc {
        for ((l, h), v) in lo.iter_mut().zip(hi.iter_mut()).zip(vector(matrix, doc, &mut buf)) {
            *l = l.min(*v);
            *h = h.max(*v);
        }
    }
    let span = [lo, hi];
    let quantizer = Quantizer::train(
        dim,
        span.iter()
            .map(|r| r.as_slice())
            .take(if node_doc.is_empty() { 0 } else { 2 }),
    );
    let mut codes = vec![0u8; node_doc.len() * dim];
    codes
        .par_chunks_mut(dim.max(1))
        .zip(node_doc.par_iter())
        .for_each_init(Vec::new, |buf, (out, &doc)| {
            quantizer.encode(vector(matrix, doc, buf), out);
        });
    (quantizer, codes)
}

/// Every node prepared as a query against the codes.
fn encode_queries(quantizer: &Quantizer, matrix: &SegmentMatrix, node_doc: &[u32], codes: Vec<u8>) -> Source {
    let dim = matrix.spec().dim;
    let n = node_doc.len();
    let mut query_codes = vec![0i8; n * dim];
    let mut bias = vec![0f32; n];
    let mut scale = vec![0f32; n];
    query_codes
        .par_chunks_mut(dim.max(1))
        .zip(bias.par_iter_mut().zip(scale.par_iter_mut()))
        .zip(node_doc.par_iter())
        .for_each_init(Vec::new, |buf, ((out, (b, s)), &doc)| {
            let q = quantizer.query(vector(matrix, doc, buf));
            out.copy_from_slice(&q.codes);
            (*b, *s) = q.parts();
        });
    Source {
        dim,
        codes,
        query_codes,
        bias,
        scale,
    }
}
