use tantivy::schema::{FAST, Schema};
use tantivy::{Index, IndexWriter, TantivyDocument};

use super::*;
use crate::schema::{HnswParams, Metric, Quantization, VectorDtype, VectorIndex, VectorSpec};
use crate::vector::codec::encode;
use crate::vector::{DocFilter, FlatScan, SegmentMatrix, SegmentVectorIndex};

/// Vectors of low intrinsic dimension, like real embeddings: a few latent factors mapped up to
/// `dim` with a little noise (isotropic random vectors are a degenerate test for any HNSW).
pub(crate) fn embeddings(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let latent = 12;
    let basis: Vec<f32> = (0..latent * dim).map(|_| rng.f32() * 2.0 - 1.0).collect();
    (0..n)
        .map(|_| {
            let z: Vec<f32> = (0..latent).map(|_| rng.f32() * 2.0 - 1.0).collect();
            (0..dim)
                .map(|j| (0..latent).map(|i| z[i] * basis[i * dim + j]).sum::<f32>() + 0.05 * (rng.f32() - 0.5))
                .collect()
        })
        .collect()
}

struct Fixture {
    _dir: tempfile::TempDir,
    index: Index,
    matrix: SegmentMatrix,
    path: std::path::PathBuf,
}

fn fixture(vectors: &[Vec<f32>], spec: &VectorSpec, gaps: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut schema = Schema::builder();
    let field = schema.add_bytes_field("v", FAST);
    let index = Index::create_in_dir(dir.path(), schema.build()).unwrap();
    let mut w: IndexWriter = index.writer_with_num_threads(1, 50_000_000).unwrap();
    for (i, v) in vectors.iter().enumerate() {
        let mut doc = TantivyDocument::default();
        // Every seventh document has no vector when `gaps` is set, so nodes and documents differ.
        if !(gaps && i % 7 == 3) {
            doc.add_bytes(field, &encode(v, spec).unwrap());
        }
        w.add_document(doc).unwrap();
    }
    w.commit().unwrap();
    let reader = index.reader().unwrap();
    let searcher = reader.searcher();
    let seg = &searcher.segment_readers()[0];
    let mpath = dir.path().join("m.mvec");
    SegmentMatrix::build(seg, "v", spec, &mpath).unwrap();
    let matrix = SegmentMatrix::open(&mpath, seg, spec).unwrap();
    let path = dir.path().join("g.hnsw");
    Fixture {
        index,
        matrix,
        path,
        _dir: dir,
    }
}

fn spec(dim: usize, dtype: VectorDtype, quantization: Quantization) -> (VectorSpec, HnswParams) {
    let params = HnswParams {
        quantization,
        exact_below: 0,
        ..HnswParams::default()
    };
    (
        VectorSpec {
            dim,
            dtype,
            metric: Metric::Cosine,
            index: VectorIndex::Hnsw(params),
        },
        params,
    )
}

fn written(f: &Fixture, spec: &VectorSpec, params: &HnswParams) -> SegmentGraph {
    let searcher = f.index.reader().unwrap().searcher();
    let seg = &searcher.segment_readers()[0];
    let built = build(&f.matrix, params, 42, &|_| {});
    SegmentGraph::write(&built, seg, spec.dim, &f.path).unwrap();
    let g = SegmentGraph::open(&f.path, seg, spec, params, seg.max_doc()).unwrap();
    g.verify().unwrap();
    g
}

/// Mean recall@k of the graph against the exact scan over `queries`, with `accept` applied to
/// both.
fn recall(
    f: &Fixture,
    g: &SegmentGraph,
    queries: &[Vec<f32>],
    spec: &VectorSpec,
    k: usize,
    ef: usize,
    allowed: Option<&[u32]>,
) -> f64 {
    let search = GraphSearch {
        graph: g,
        matrix: &f.matrix,
        ef,
        exact_below: 0,
    };
    let mut total = 0.0;
    for q in queries {
        let q = crate::vector::codec::prepare(q, spec).unwrap();
        let exact = match allowed {
            None => FlatScan(&f.matrix).search(&q, k, &DocFilter::All(None)).hits,
            Some(docs) => FlatScan(&f.matrix).search(&q, k, &DocFilter::Only(docs)).hits,
        };
        let accept = |d: u32| allowed.is_none_or(|a| a.binary_search(&d).is_ok());
        let walk = search.walk(&q, k, &accept, usize::MAX);
        assert!(
            walk.hits.iter().all(|h| accept(h.doc)),
            "a rejected document was returned"
        );
        let found: std::collections::HashSet<u32> = walk.hits.iter().map(|h| h.doc).collect();
        let hit = exact.iter().filter(|e| found.contains(&e.doc)).count();
        total += hit as f64 / exact.len().max(1) as f64;
    }
    total / queries.len() as f64
}

#[test]
fn graphs_reach_the_recall_of_the_exact_scan() {
    let data = embeddings(3000, 48, 1);
    let queries = embeddings(40, 48, 2);
    for (dtype, quantization) in [
        (VectorDtype::F32, Quantization::None),
        (VectorDtype::F32, Quantization::I8),
        (VectorDtype::F16, Quantization::I8),
    ] {
        let (spec, params) = spec(48, dtype, quantization);
        let f = fixture(&data, &spec, true);
        let g = written(&f, &spec, &params);
        assert_eq!(g.nodes() as usize, (0..data.len()).filter(|i| i % 7 != 3).count());
        let r = recall(&f, &g, &queries, &spec, 10, 64, None);
        assert!(r >= 0.95, "{dtype:?} {quantization:?}: recall {r}");
        assert_eq!(g.quantizer().is_some(), quantization == Quantization::I8);
    }
}

#[test]
fn filtered_walks_return_only_accepted_documents_with_high_recall() {
    let data = embeddings(3000, 32, 3);
    let queries = embeddings(30, 32, 4);
    let (spec, params) = spec(32, VectorDtype::F32, Quantization::I8);
    let f = fixture(&data, &spec, false);
    let g = written(&f, &spec, &params);
    for every in [2u32, 10] {
        let allowed: Vec<u32> = (0..data.len() as u32).filter(|d| d % every == 0).collect();
        let r = recall(&f, &g, &queries, &spec, 10, 64, Some(&allowed));
        assert!(r >= 0.95, "1/{every} pass: recall {r}");
    }
}

#[test]
fn a_walk_over_budget_says_so() {
    let data = embeddings(2000, 16, 5);
    let (spec, params) = spec(16, VectorDtype::F32, Quantization::None);
    let f = fixture(&data, &spec, false);
    let g = written(&f, &spec, &params);
    let search = GraphSearch {
        graph: &g,
        matrix: &f.matrix,
        ef: 32,
        exact_below: 0,
    };
    let q = crate::vector::codec::prepare(&data[0], &spec).unwrap();
    // Only one document passes: the beam never fills, so the walk runs into its budget.
    let walk = search.walk(&q, 10, &|d| d == 1999, 300);
    assert!(walk.over_budget);
    assert!(walk.visited > 300);
}

#[test]
fn damaged_files_are_refused_or_stay_in_bounds() {
    let data = embeddings(800, 16, 6);
    let (spec, params) = spec(16, VectorDtype::F32, Quantization::I8);
    let f = fixture(&data, &spec, false);
    let g = written(&f, &spec, &params);
    drop(g);
    let searcher = f.index.reader().unwrap().searcher();
    let seg = &searcher.segment_readers()[0];
    let mut bytes = std::fs::read(&f.path).unwrap();
    // Flip bytes in the links: the header still opens, the checksum catches it.
    let mid = bytes.len() / 3;
    for b in &mut bytes[mid..mid + 64] {
        *b = 0xff;
    }
    std::fs::write(&f.path, &bytes).unwrap();
    let g = SegmentGraph::open(&f.path, seg, &spec, &params, seg.max_doc()).unwrap();
    assert!(g.verify().unwrap_err().contains("checksum"));
    // Even unverified, a walk over the damaged links stays inside the file.
    let q = crate::vector::codec::prepare(&data[1], &spec).unwrap();
    let search = GraphSearch {
        graph: &g,
        matrix: &f.matrix,
        ef: 16,
        exact_below: 0,
    };
    let _ = search.walk(&q, 5, &|_| true, usize::MAX);
    // A node -> document map naming a document past the segment: refused at open (queries
    // would index the matrix and the alive bitset with it before verification).
    let mut mapped = bytes.clone();
    // The map starts right after the header and the per-layer counts, at the next 64 bytes.
    let at = (128 + 4 * (g.top() + 1)).next_multiple_of(64);
    mapped[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&f.path, &mapped).unwrap();
    assert!(
        SegmentGraph::open(&f.path, seg, &spec, &params, seg.max_doc())
            .err()
            .unwrap()
            .contains("document map")
    );
    // Truncated, or built with other parameters: refused at open.
    std::fs::write(&f.path, &bytes[..bytes.len() - 1]).unwrap();
    assert!(
        SegmentGraph::open(&f.path, seg, &spec, &params, seg.max_doc())
            .err()
            .unwrap()
            .contains("size")
    );
    std::fs::write(&f.path, &bytes).unwrap();
    let other = HnswParams { m: 8, ..params };
    assert!(
        SegmentGraph::open(&f.path, seg, &spec, &other, seg.max_doc())
            .err()
            .unwrap()
            .contains("parameters")
    );
}

#[test]
fn every_node_is_reachable_from_the_entry_on_the_bottom_layer() {
    let data = embeddings(4000, 32, 8);
    let (spec, params) = spec(32, VectorDtype::F32, Quantization::None);
    let f = fixture(&data, &spec, false);
    let g = written(&f, &spec, &params);
    let n = g.nodes() as usize;
    let mut seen = vec![false; n];
    let mut stack = vec![g.entry()];
    seen[g.entry() as usize] = true;
    let mut out = Vec::new();
    while let Some(x) = stack.pop() {
        out.clear();
        g.links(0, x, &mut out);
        assert!(out.len() <= 2 * params.m);
        for &o in &out {
            if !seen[o as usize] {
                seen[o as usize] = true;
                stack.push(o);
            }
        }
    }
    let reached = seen.iter().filter(|s| **s).count();
    // The diversity heuristic may orphan a rare node; more than that means broken linking.
    assert!(reached * 1000 >= n * 999, "{reached} of {n} reachable");
}
