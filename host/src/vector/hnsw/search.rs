//! Walking a mapped graph for one query.

use tantivy::DocId;

use super::{Layer, Scored, SegmentGraph, search_layer};
use crate::schema::VectorDtype;
use crate::vector::kernel::{dot_codes, dot_f16, dot_f32, prefetch};
use crate::vector::quant::QuantizedQuery;
use crate::vector::{DocFilter, FlatScan, SegmentAnswer, SegmentVectorIndex};
use crate::vector::{ScoredDoc, SegmentMatrix};

/// A set of documents as bits, for membership tests during a walk.
struct DocSet(Vec<u64>);

impl DocSet {
    fn of(docs: &[DocId], max_doc: u32) -> Self {
        let mut bits = vec![0u64; (max_doc as usize).div_ceil(64)];
        for d in docs {
            if let Some(w) = bits.get_mut(*d as usize / 64) {
                *w |= 1 << (d % 64);
            }
        }
        DocSet(bits)
    }

    #[inline]
    fn contains(&self, doc: DocId) -> bool {
        self.0.get(doc as usize / 64).is_some_and(|w| w >> (doc % 64) & 1 == 1)
    }
}

/// A kNN walk over one segment's graph.
pub struct GraphSearch<'a> {
    pub graph: &'a SegmentGraph,
    /// The segment's full-precision vectors (scored directly, or to rescore codes).
    pub matrix: &'a SegmentMatrix,
    /// Beam width on the bottom layer (at least `k` is used).
    pub ef: usize,
    /// When no more documents than this pass (or than `k`), scanning them is cheaper.
    pub exact_below: usize,
}

/// What a walk found.
pub struct Walk {
    /// The best `k` accepted documents, best first, with exact similarities.
    pub hits: Vec<ScoredDoc>,
    /// Nodes scored.
    pub visited: usize,
    /// The visit budget ran out: the hits are incomplete and the caller should scan instead.
    pub over_budget: bool,
}

/// How a walk scores nodes.
enum Scorer<'a> {
    /// Full vectors from the matrix.
    Full { query: &'a [f32] },
    /// 7-bit codes from the graph file.
    Codes(QuantizedQuery),
}

struct QueryLayer<'a> {
    search: &'a GraphSearch<'a>,
    scorer: &'a Scorer<'a>,
    layer: usize,
}

impl GraphSearch<'_> {
    /// The bottom layer's beam: `max(ef, k)` documents' worth of nodes (a document with
    /// several vectors can fill several places in it, and is returned once).
    fn beam(&self, k: usize) -> usize {
        let m = self.matrix;
        let per_doc = f64::from(m.present() + m.extras()) / f64::from(m.present().max(1));
        (self.ef.max(k) as f64 * per_doc).ceil() as usize
    }

    fn exact(&self, query: &[f32], node: u32) -> f32 {
        let row = self.graph.doc(node);
        if row >= self.matrix.rows() {
            return f32::NEG_INFINITY;
        }
        match self.matrix.spec().dtype {
            VectorDtype::F32 => dot_f32(query, self.matrix.vector_f32(row)),
            VectorDtype::F16 => dot_f16(query, self.matrix.vector_f16(row)),
        }
    }

    /// The `k` best documents that `accept` lets through. The walk gives up once it has scored
    /// more than `budget` nodes (`Walk::over_budget`).
    pub fn walk(&self, query: &[f32], k: usize, accept: &dyn Fn(DocId) -> bool, budget: usize) -> Walk {
        let g = self.graph;
        if k == 0 || g.nodes() == 0 {
            return Walk {
                hits: Vec::new(),
                visited: 0,
                over_budget: false,
            };
        }
        let scorer = match g.quantizer() {
            Some(q) => Scorer::Codes(q.query(query)),
            None => Scorer::Full { query },
        };
        let mut visited = g.take_visited();
        let mut layer = QueryLayer {
            search: self,
            scorer: &scorer,
            layer: g.top(),
        };
        let entry = g.entry();
        visited.insert(entry);
        let mut current = vec![Scored {
            score: layer.score(entry),
            node: entry,
        }];
        let mut count = 1;
        for l in (1..=g.top()).rev() {
            layer.layer = l;
            // Each layer is walked afresh: a node seen on the layer above is not seen here.
            visited.clear();
            current.iter().for_each(|c| _ = visited.insert(c.node));
            let found = search_layer(&mut layer, &current, 1, &mut visited, &|_| true, usize::MAX);
            count += found.visited - current.len();
            if !found.best.is_empty() {
                current = found.best;
            }
        }
        layer.layer = 0;
        visited.clear();
        current.iter().for_each(|c| _ = visited.insert(c.node));
        let (m, rows) = (self.matrix, self.matrix.rows());
        let accept_node = |node: u32| {
            let row = g.doc(node);
            row < rows && accept(m.doc_of(row))
        };
        let found = search_layer(&mut layer, &current, self.beam(k), &mut visited, &accept_node, budget);
        count += found.visited - current.len();
        g.give_visited(visited);
        let mut best = found.best;
        if matches!(scorer, Scorer::Codes(_)) {
            // The codes ordered the walk; the kept beam is rescored on the stored vectors.
            for s in &mut best {
                s.score = self.exact(query, s.node);
            }
            best.sort_unstable_by(|a, b| b.cmp(a));
        }
        // A document with several vectors may be in the beam more than once: its best counts.
        let mut seen = std::collections::HashSet::new();
        let hits: Vec<ScoredDoc> = best
            .into_iter()
            .filter_map(|s| {
                let row = g.doc(s.node);
                let doc = m.doc_of(row);
                seen.insert(doc).then(|| ScoredDoc {
                    doc,
                    score: s.score,
                    position: m.position_of(row),
                })
            })
            .take(k)
            .collect();
        Walk {
            hits,
            visited: count,
            over_budget: found.over_budget,
        }
    }
}

/// The graph walk behind the collector's seam: the filter (or the alive bitset) applies during
/// the walk; when few documents pass, or the walk would cost more than scanning them, the
/// passing documents are scanned exactly instead, so k hits come back whenever k pass.
impl SegmentVectorIndex for GraphSearch<'_> {
    fn search(&self, query: &[f32], k: usize, filter: &DocFilter<'_>) -> SegmentAnswer {
        let (passing, set, alive) = match filter {
            DocFilter::All(alive) => (
                alive.map_or(self.matrix.present() as usize, |a| a.num_alive_docs()),
                None,
                *alive,
            ),
            DocFilter::Only(docs) => (docs.len(), Some(DocSet::of(docs, self.matrix.max_doc())), None),
        };
        let scan = |reason: &'static str, walked: usize| {
            let mut answer = FlatScan(self.matrix).search(query, k, filter);
            answer.reason = Some(reason);
            answer.scored += walked;
            answer
        };
        if passing <= self.exact_below.max(k) {
            let reason = match filter {
                DocFilter::Only(_) => "filter too selective",
                DocFilter::All(Some(_)) => "mostly deleted",
                DocFilter::All(None) => "k covers the segment",
            };
            return scan(reason, 0);
        }
        let accept = |doc: DocId| match (&set, alive) {
            (Some(set), _) => set.contains(doc),
            (None, Some(alive)) => alive.is_alive(doc),
            (None, None) => true,
        };
        // A walk costlier than scanning what passes (every vector of those documents) gives
        // way to the scan.
        let per_doc = f64::from(self.matrix.present() + self.matrix.extras()) / f64::from(self.matrix.present().max(1));
        let budget = if set.is_some() || alive.is_some() {
            (passing as f64 * per_doc).ceil() as usize
        } else {
            usize::MAX
        };
        let walk = self.walk(query, k, &accept, budget);
        if walk.over_budget || walk.hits.len() < k.min(passing) {
            return scan("graph walk gave way to the scan", walk.visited);
        }
        SegmentAnswer {
            hits: walk.hits,
            index: "hnsw",
            scored: walk.visited,
            ef_search: Some(self.beam(k)),
            reason: None,
        }
    }
}

impl Layer for QueryLayer<'_> {
    #[inline]
    fn links(&self, node: u32, out: &mut Vec<u32>) {
        self.search.graph.links(self.layer, node, out);
    }

    #[inline]
    fn score(&mut self, node: u32) -> f32 {
        match self.scorer {
            Scorer::Full { query } => self.search.exact(query, node),
            Scorer::Codes(q) => q.similarity(dot_codes(self.search.graph.codes(node), &q.codes)),
        }
    }

    #[inline]
    fn prefetch(&self, node: u32) {
        let g = self.search.graph;
        match self.scorer {
            Scorer::Codes(q) => prefetch(g.codes(node).as_ptr(), q.codes.len()),
            Scorer::Full { .. } => {
                let m = self.search.matrix;
                let row = g.doc(node);
                if row >= m.rows() {
                    return;
                }
                let p = match m.spec().dtype {
                    VectorDtype::F32 => m.vector_f32(row).as_ptr().cast::<u8>(),
                    VectorDtype::F16 => m.vector_f16(row).as_ptr().cast::<u8>(),
                };
                prefetch(p, m.spec().row_bytes());
            }
        }
    }
}
