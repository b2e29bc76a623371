//! Walking a mapped graph for one query.

use tantivy::DocId;

use super::{Layer, Scored, SegmentGraph, search_layer};
use crate::schema::VectorDtype;
use crate::vector::kernel::{dot_codes, dot_f16, dot_f32, prefetch};
use crate::vector::quant::QuantizedQuery;
use crate::vector::{ScoredDoc, SegmentMatrix};

/// A kNN walk over one segment's graph.
pub struct GraphSearch<'a> {
    pub graph: &'a SegmentGraph,
    /// The segment's full-precision vectors (scored directly, or to rescore codes).
    pub matrix: &'a SegmentMatrix,
    /// Beam width on the bottom layer (at least `k` is used).
    pub ef: usize,
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
    fn exact(&self, query: &[f32], node: u32) -> f32 {
        let doc = self.graph.doc(node);
        if doc >= self.matrix.max_doc() {
            return f32::NEG_INFINITY;
        }
        match self.matrix.spec().dtype {
            VectorDtype::F32 => dot_f32(query, self.matrix.row_f32(doc)),
            VectorDtype::F16 => dot_f16(query, self.matrix.row_f16(doc)),
        }
    }

    /// The `k` best documents that `accept` lets through. The walk gives up once it has scored
    /// more than `budget` nodes (`Walk::over_budget`).
    pub fn search(&self, query: &[f32], k: usize, accept: &dyn Fn(DocId) -> bool, budget: usize) -> Walk {
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
        let accept_node = |node: u32| accept(g.doc(node));
        let found = search_layer(&mut layer, &current, self.ef.max(k), &mut visited, &accept_node, budget);
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
        best.truncate(k);
        Walk {
            hits: best
                .into_iter()
                .map(|s| ScoredDoc {
                    doc: g.doc(s.node),
                    score: s.score,
                })
                .collect(),
            visited: count,
            over_budget: found.over_budget,
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
                let doc = g.doc(node);
                let p = match m.spec().dtype {
                    VectorDtype::F32 => m.row_f32(doc).as_ptr().cast::<u8>(),
                    VectorDtype::F16 => m.row_f16(doc).as_ptr().cast::<u8>(),
                };
                prefetch(p, m.spec().row_bytes());
            }
        }
    }
}
