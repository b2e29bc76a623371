//! Approximate kNN: a hierarchical navigable small-world graph (Malkov & Yashunin) per segment and
//! vector field, derived from the segment's matrix like the matrix is derived from its column.
//!
//! - [`build`] inserts the segment's vectors in parallel (every core, one lock per node and
//!   layer), choosing links with the paper's diversity heuristic, and quantizes them to 7-bit
//!   codes when the field asks (see [`super::quant`]).
//! - [`SegmentGraph`] is the written file, memory-mapped: links per layer, the node -> document
//!   map (nodes are not documents, so a document may later have several vectors), and the codes.
//! - [`GraphSearch`] walks it: greedy descent through the upper layers, then a beam of `ef` on
//!   the bottom one. A filter applies during the walk (rejected nodes are traversed but never
//!   returned), with a visit budget: a walk that would visit more nodes than the filter lets
//!   through stops and the caller scans those documents exactly instead, as Lucene does.

mod build;
mod file;
mod search;

use std::cmp::Ordering;
use std::collections::BinaryHeap;

pub use build::{BuiltGraph, build};
pub use file::SegmentGraph;
pub use search::{GraphSearch, Walk};

/// A node with its similarity to the current query (larger is closer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scored {
    pub score: f32,
    pub node: u32,
}

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    /// Greater is better: higher score, then lower node id.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then(other.node.cmp(&self.node))
    }
}

/// Which nodes a walk has seen, reset in O(1) by bumping an epoch.
pub(crate) struct Visited {
    marks: Vec<u32>,
    epoch: u32,
}

impl Visited {
    pub fn new(nodes: usize) -> Self {
        Visited {
            marks: vec![0; nodes],
            epoch: 1,
        }
    }

    pub fn clear(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.epoch = 1;
        }
    }

    /// Marks `node`; false when it was already marked.
    #[inline]
    pub fn insert(&mut self, node: u32) -> bool {
        let m = &mut self.marks[node as usize];
        if *m == self.epoch {
            false
        } else {
            *m = self.epoch;
            true
        }
    }
}

/// What one layer's beam search found.
pub(crate) struct LayerResult {
    /// The best accepted nodes, best first (at most `ef`).
    pub best: Vec<Scored>,
    /// Nodes scored.
    pub visited: usize,
    /// The visit budget ran out before the beam converged.
    pub over_budget: bool,
}

/// How a layer is read during a walk.
pub(crate) trait Layer {
    /// Appends the links of `node` to `out`.
    fn links(&self, node: u32, out: &mut Vec<u32>);
    /// The similarity of `node` to the query.
    fn score(&mut self, node: u32) -> f32;
    /// Starts loading what `score(node)` will read.
    fn prefetch(&self, _node: u32) {}
}

/// Beam search of one layer from `entries` (already marked visited): keeps the `ef` best nodes
/// that `accept` lets through, expanding every node it reaches (accepted or not).
pub(crate) fn search_layer(
    layer: &mut impl Layer,
    entries: &[Scored],
    ef: usize,
    visited: &mut Visited,
    accept: &dyn Fn(u32) -> bool,
    budget: usize,
) -> LayerResult {
    let mut candidates: BinaryHeap<Scored> = entries.iter().copied().collect();
    // Min-heap of the kept results: the worst kept is on top.
    let mut best: BinaryHeap<std::cmp::Reverse<Scored>> = BinaryHeap::with_capacity(ef + 1);
    for e in entries {
        if accept(e.node) {
            best.push(std::cmp::Reverse(*e));
            if best.len() > ef {
                best.pop();
            }
        }
    }
    let mut links = Vec::with_capacity(64);
    let mut visited_count = entries.len();
    let mut over_budget = false;
    while let Some(c) = candidates.pop() {
        if best.len() >= ef && best.peek().is_some_and(|w| c.score < w.0.score) {
            break;
        }
        links.clear();
        layer.links(c.node, &mut links);
        links.retain(|n| visited.insert(*n));
        for n in &links {
            layer.prefetch(*n);
        }
        for &n in &links {
            let score = layer.score(n);
            visited_count += 1;
            let s = Scored { score, node: n };
            let worst = best.peek().map(|w| w.0.score);
            if best.len() < ef || worst.is_some_and(|w| score > w) {
                candidates.push(s);
                if accept(n) {
                    best.push(std::cmp::Reverse(s));
                    if best.len() > ef {
                        best.pop();
                    }
                }
            }
        }
        if visited_count > budget {
            over_budget = true;
            break;
        }
    }
    let mut best: Vec<Scored> = best.into_iter().map(|r| r.0).collect();
    best.sort_unstable_by(|a, b| b.cmp(a));
    LayerResult {
        best,
        visited: visited_count,
        over_budget,
    }
}

/// The layer a new node tops out at: `floor(-ln(U) / ln(m))`, capped.
pub(crate) fn random_level(rng: &mut fastrand::Rng, m: usize) -> usize {
    let u = 1.0 - rng.f64(); // (0, 1]
    ((-u.ln() / (m as f64).ln()) as usize).min(MAX_LEVEL)
}

/// Layers above the bottom one, at most (m = 2 would need 2^30 nodes to reach it).
pub(crate) const MAX_LEVEL: usize = 30;

#[cfg(test)]
mod tests;
