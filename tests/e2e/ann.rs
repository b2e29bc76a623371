//! Approximate kNN end to end: per-segment graphs against the exact scan (recall floors, not
//! timings), with deletes, filters, f16, damaged files, a killed build, and the schema switch.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mira_host::ingest::{self, IngestOptions, NoProgress};
use mira_host::schema::VectorIndex;
use mira_host::{Collection, SearchRequest};
use serde_json::json;

use crate::common::{Env, ids};

const DIM: usize = 32;

fn schema(name: &str, dtype: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\n[fields.title]\ntype = \"text\"\n[fields.bucket]\ntype = \"u64\"\n\
         [fields.emb]\ntype = \"vector\"\ndim = {DIM}\ndtype = \"{dtype}\"\nexact_below = 300\nm = 12\n\
         ef_construction = 64\n{extra}[ingest]\nbatch_size = 1000\n"
    )
}

/// Low intrinsic dimension, like real embeddings: 8 latent factors mapped up to `DIM`.
fn embedding(i: usize, seed: u64) -> Vec<f32> {
    let mut basis = fastrand::Rng::with_seed(99);
    let basis: Vec<f32> = (0..8 * DIM).map(|_| basis.f32() * 2.0 - 1.0).collect();
    let mut rng = fastrand::Rng::with_seed(seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
    let z: Vec<f32> = (0..8).map(|_| rng.f32() * 2.0 - 1.0).collect();
    (0..DIM)
        .map(|j| (0..8).map(|k| z[k] * basis[k * DIM + j]).sum::<f32>() + 0.05 * (rng.f32() - 0.5))
        .collect()
}

fn rows(range: std::ops::Range<usize>) -> String {
    range
        .map(|i| {
            format!(
                "{}\n",
                json!({"id": i.to_string(), "title": format!("doc {i}"), "bucket": i % 1000, "emb": embedding(i, 1)})
            )
        })
        .collect()
}

fn load(env: &Env, c: &Collection, n: usize) {
    let input = env.write(&format!("{}.jsonl", c.name()), &rows(0..n));
    ingest::ingest(c, &input, &IngestOptions::default(), &NoProgress).unwrap();
    c.wait_for_vector_indexes(&mut |_| {}).unwrap();
}

fn query(q: usize, filter: Option<&str>, exact: bool) -> SearchRequest {
    SearchRequest {
        top_k: Some(10),
        candidates: Some(10),
        filter: filter.map(str::to_owned),
        exact,
        explain: true,
        ..SearchRequest::vector(embedding(q, 2))
    }
}

/// Mean recall@10 of the default search against `exact = true`, and the indexes that answered.
fn recall(c: &Collection, filter: Option<&str>) -> (f64, HashSet<&'static str>) {
    let (mut hit, mut total, mut indexes) = (0, 0, HashSet::new());
    for q in 0..25 {
        let truth: HashSet<String> = ids(&c.search(&query(q, filter, true)).unwrap()).into_iter().collect();
        let got = c.search(&query(q, filter, false)).unwrap();
        for s in &got.vector_search.as_ref().unwrap().segments {
            indexes.insert(s.index);
        }
        let got = ids(&got);
        assert_eq!(got.len(), truth.len(), "as many hits as the exact search");
        hit += got.iter().filter(|g| truth.contains(*g)).count();
        total += truth.len();
    }
    (hit as f64 / total as f64, indexes)
}

#[test]
fn graphs_answer_with_high_recall_across_segments_deletes_and_filters() {
    let env = Env::new();
    for dtype in ["f32", "f16"] {
        let c = env.create(&schema(&format!("a{dtype}"), dtype, ""));
        load(&env, &c, 3000);
        let segments = c.searcher().segment_readers().len();
        assert!(c.vectors().stats().graphs_built >= 1);
        let (r, indexes) = recall(&c, None);
        assert!(r >= 0.95, "{dtype}: recall {r}");
        assert!(
            indexes.contains("hnsw"),
            "{dtype}: {indexes:?} over {segments} segment(s)"
        );
        // Filters: half, a tenth, and 0.2% (too selective for a walk: scanned).
        for (filter, floor) in [
            ("bucket:[0 TO 499]", 0.95),
            ("bucket:[0 TO 99]", 0.95),
            ("bucket:[0 TO 1]", 1.0),
        ] {
            let (r, indexes) = recall(&c, Some(filter));
            assert!(r >= floor, "{dtype} {filter}: recall {r} ({indexes:?})");
        }
        let tiny = c.search(&query(0, Some("bucket:[0 TO 1]"), false)).unwrap();
        assert_eq!(tiny.hits.len(), 6, "every passing document when fewer than k pass");
        assert!(
            tiny.vector_search
                .unwrap()
                .segments
                .iter()
                .all(|s| s.index == "filtered-flat")
        );

        // Delete 60% of the documents: answers stay live-only and as good.
        let mut w = c.writer().unwrap();
        w.delete_query("bucket:[0 TO 599]").unwrap();
        w.commit().unwrap();
        drop(w);
        let (r, _) = recall(&c, None);
        assert!(r >= 0.95, "{dtype} after deletes: recall {r}");
        let hits = c.search(&query(3, None, false)).unwrap();
        for h in &hits.hits {
            let bucket = h.id.parse::<usize>().unwrap() % 1000;
            assert!(bucket >= 600, "deleted document {} returned", h.id);
        }
    }
}

#[test]
fn exact_requests_equal_the_flat_index_and_explain_says_who_answered() {
    let env = Env::new();
    let flat = env.create(&schema("flat", "f32", "").replace(
        "exact_below = 300\nm = 12\nef_construction = 64\n",
        "index = \"flat\"\n",
    ));
    let graph = env.create(&schema("graph", "f32", ""));
    assert_eq!(flat.schema().vector_field("emb").unwrap().index, VectorIndex::Flat);
    load(&env, &flat, 2000);
    load(&env, &graph, 2000);
    for q in 0..5 {
        let a = flat.search(&query(q, None, false)).unwrap();
        let b = graph.search(&query(q, None, true)).unwrap();
        let scores = |r: &mira_host::SearchResponse| r.hits.iter().map(|h| (h.id.clone(), h.score)).collect::<Vec<_>>();
        assert_eq!(scores(&a), scores(&b));
        assert!(
            a.vector_search
                .as_ref()
                .unwrap()
                .segments
                .iter()
                .all(|s| s.index == "flat" && s.reason.is_none())
        );
        let reasons: HashSet<_> = b.vector_search.unwrap().segments.iter().map(|s| s.reason).collect();
        assert!(reasons.contains(&Some("exact requested")), "{reasons:?}");
    }
    // The CLI's --explain names the index of every segment.
    let vector_file = env.write("q.json", &json!(embedding(1, 2)).to_string());
    let out = env.mira(&[
        "search",
        "graph",
        "--vector",
        vector_file.to_str().unwrap(),
        "--explain",
        "--ef-search",
        "150",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("knn emb segment") && stdout.contains("hnsw ef_search 150"),
        "{stdout}"
    );
    let err = graph
        .search(&SearchRequest {
            ef_search: Some(0),
            ..query(0, None, false)
        })
        .unwrap_err();
    assert!(err.to_string().contains("ef_search"), "{err}");
    // Refused before any work even when no kNN would run.
    let err = graph
        .search(&SearchRequest {
            ef_search: Some(5000),
            ..SearchRequest::text("doc")
        })
        .unwrap_err();
    assert!(err.to_string().contains("ef_search"), "{err}");
}

#[test]
fn missing_corrupt_or_half_written_graphs_are_rebuilt_with_the_same_answers() {
    let env = Env::new();
    let c = env.create(&schema("g", "f32", ""));
    load(&env, &c, 2500);
    let wide = |q| SearchRequest {
        ef_search: Some(400),
        ..query(q, None, false)
    };
    // A wide beam finds the exact answers, before and after the rebuild (a parallel build does
    // not link the same graph twice, so the comparison is with the exact scan).
    let same_as_exact = |c: &Collection| -> usize {
        (0..10)
            .map(|q| {
                let exact: HashSet<String> = ids(&c.search(&query(q, None, true)).unwrap()).into_iter().collect();
                ids(&c.search(&wide(q)).unwrap())
                    .iter()
                    .filter(|i| exact.contains(*i))
                    .count()
            })
            .sum()
    };
    assert!(same_as_exact(&c) >= 99);
    let dir = c.dir().join("vectors");
    drop(c);
    let mut graphs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "hnsw"))
        .collect();
    graphs.sort();
    assert!(!graphs.is_empty());
    // One corrupted in its body (the header still opens), the others removed; a temp file as a
    // crash mid-write leaves it.
    let mut bytes = std::fs::read(&graphs[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&graphs[0], &bytes).unwrap();
    for g in &graphs[1..] {
        std::fs::remove_file(g).unwrap();
    }
    std::fs::write(graphs[0].with_extension("hnsw.tmp"), b"half a graph").unwrap();

    let c = env.catalog().open("g").unwrap();
    // Right after opening, queries are answered (scanned until the graphs are ready).
    let first = c.search(&query(0, None, false)).unwrap();
    assert_eq!(first.hits.len(), 10);
    c.wait_for_vector_indexes(&mut |_| {}).unwrap();
    let stats = c.vectors().stats();
    assert_eq!(stats.graphs_built, graphs.len(), "{stats:?}");
    assert_eq!(stats.graphs_rebuilt_stale, 1, "{stats:?}");
    assert!(same_as_exact(&c) >= 99);
    let r = c.search(&query(0, None, false)).unwrap();
    assert!(r.vector_search.unwrap().segments.iter().any(|s| s.index == "hnsw"));
}

#[test]
fn sigkill_during_a_graph_build_leaves_an_index_that_opens_and_answers() {
    let env = Env::new();
    let schema = schema("k", "f32", "").replace("batch_size = 1000", "batch_size = 100000");
    drop(env.create(&schema));
    let input = env.write("k.jsonl", &rows(0..60_000));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mira"))
        .arg("--data-dir")
        .arg(env.data())
        .args(["index", "k", input.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Once the documents are committed (their matrices exist), the command builds graphs.
    let vectors = env.data().join("collections/k/vectors");
    let started = Instant::now();
    let mut killed_while_running = false;
    while started.elapsed() < Duration::from_secs(240) {
        let matrices = std::fs::read_dir(&vectors)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "mvec"))
                    .count()
            })
            .unwrap_or(0);
        if matrices > 0 {
            std::thread::sleep(Duration::from_millis(50));
            killed_while_running = child.try_wait().unwrap().is_none();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        killed_while_running,
        "the command ended before it could be killed mid-build"
    );
    let c = env.catalog().open("k").unwrap();
    let n = c.searcher().num_docs();
    assert!(n > 0);
    let exact = c.search(&query(0, None, true)).unwrap();
    let approximate = c.search(&query(0, None, false)).unwrap();
    assert_eq!(approximate.hits.len(), 10);
    assert_eq!(ids(&exact).len(), 10);
    c.wait_for_vector_indexes(&mut |_| {}).unwrap();
    let (r, _) = recall(&c, None);
    assert!(r >= 0.95, "recall {r} after the rebuild");
}

#[test]
fn new_collections_default_to_graphs_and_old_ones_keep_scanning_until_redeclared() {
    let env = Env::new();
    let c = env.create(&schema("s", "f32", "").replace("exact_below = 300\nm = 12\nef_construction = 64\n", ""));
    assert!(matches!(
        c.schema().vector_field("emb").unwrap().index,
        VectorIndex::Hnsw(_)
    ));
    let toml_path = c.dir().join("collection.toml");
    let written = std::fs::read_to_string(&toml_path).unwrap();
    assert!(written.contains("[vectors]\nindex = \"hnsw\""), "{written}");
    drop(c);
    // A collection made before graphs existed has no [vectors]: flat.
    let old = written.split("\n# Written by Mira").next().unwrap().to_owned();
    std::fs::write(&toml_path, &old).unwrap();
    let c = env.catalog().open("s").unwrap();
    assert_eq!(c.schema().vector_field("emb").unwrap().index, VectorIndex::Flat);
    drop(c);
    // Re-declaring the field switches it; the tantivy index is untouched.
    std::fs::write(
        &toml_path,
        old.replace(
            "dtype = \"f32\"\n",
            "dtype = \"f32\"\nindex = \"hnsw\"\nquantization = \"none\"\n",
        ),
    )
    .unwrap();
    let c = env.catalog().open("s").unwrap();
    match c.schema().vector_field("emb").unwrap().index {
        VectorIndex::Hnsw(p) => assert_eq!(p.quantization, mira_host::schema::Quantization::None),
        other => panic!("{other:?}"),
    }
    // Mistakes in the graph options name the field.
    for (bad, says) in [
        ("index = \"flat\"\nm = 8\n", "apply only to"),
        ("index = \"hnsw\"\nm = 1\n", "m must be between 2"),
        ("ef_search = 0\n", "ef_search must be between 1"),
        ("index = \"ivf\"\n", "unknown variant"),
        ("m = 32\nef_construction = 16\n", "must be at least m"),
    ] {
        let text = schema("bad", "f32", "").replace("exact_below = 300\nm = 12\nef_construction = 64\n", bad);
        let err = mira_host::CollectionSchema::from_toml(&text, "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("emb") || err.contains("index"), "{err}");
        assert!(err.contains(says), "{bad}: {err}");
    }
}
