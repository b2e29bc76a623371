//! `mira-bench ann`: approximate kNN on vectors of low intrinsic dimension (as real embeddings
//! are), written to files the peer scripts (`benches/peers/ann.py`: FAISS, hnswlib) read, so
//! every library searches the same vectors with the same queries and the same ground truth.
//!
//! Files in `<dir>/ann-data/`: `base.f32` and `queries.f32` (row-major little-endian f32,
//! L2-normalised), `gt.u32` (the exact top 10 per query, by Mira's exact scan) and `mira.json`.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use mira_host::document::DocumentBuilder;
use mira_host::vector::{KnnCollector, KnnOptions, codec};
use mira_host::{Catalog, Collection, CollectionSchema, SearchRequest};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::BenchArgs;

/// Neighbours asked for and scored (recall@10).
const K: usize = 10;
/// Beam widths swept.
const EFS: &[usize] = &[10, 16, 24, 32, 48, 64, 96, 128, 192, 256];

#[derive(Serialize)]
pub struct Point {
    pub ef: usize,
    pub recall: f64,
    pub qps: f64,
}

#[derive(Serialize)]
pub struct Variant {
    pub name: String,
    /// Ingest (documents committed, one segment after merging), seconds.
    pub ingest_secs: f64,
    /// Graph build after the last commit, seconds (every core).
    pub build_secs: f64,
    pub segments: usize,
    /// Bytes per vector: links and node map, codes, full-precision matrix.
    pub graph_bytes_per_vector: f64,
    pub code_bytes_per_vector: f64,
    pub matrix_bytes_per_vector: f64,
    pub points: Vec<Point>,
}

#[derive(Serialize)]
pub struct Filtered {
    pub selectivity: f64,
    pub recall: f64,
    pub ms_per_query: f64,
    /// The same filtered search with `exact = true` (the baseline).
    pub exact_ms_per_query: f64,
    /// How the segment answered (`hnsw`, `filtered-flat`).
    pub index: String,
}

#[derive(Serialize)]
pub struct Report {
    pub docs: usize,
    pub dim: usize,
    pub queries: usize,
    pub threads: usize,
    pub exact_qps: f64,
    pub variants: Vec<Variant>,
    pub filtered: Vec<Filtered>,
    /// Hybrid (BM25 + kNN + RRF) through the search pipeline, ms.
    pub hybrid_p50_ms: f64,
    pub hybrid_p99_ms: f64,
    /// Ingest plus graph build of the i8 variant, seconds.
    pub time_to_searchable_secs: f64,
}

/// Low-intrinsic-dimension data: 16 latent factors mapped up to `dim`, a little noise.
fn embeddings(n: usize, dim: usize, seed: u64, basis: &[f32]) -> Vec<Vec<f32>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let latent = basis.len() / dim;
    (0..n)
        .map(|_| {
            let z: Vec<f32> = (0..latent).map(|_| rng.f32() * 2.0 - 1.0).collect();
            let mut v: Vec<f32> = (0..dim)
                .map(|j| (0..latent).map(|i| z[i] * basis[i * dim + j]).sum::<f32>() + 0.1 * (rng.f32() - 0.5))
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect()
}

fn write_f32(path: &Path, rows: &[Vec<f32>]) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for r in rows {
        for x in r {
            out.write_all(&x.to_le_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

fn schema(name: &str, dim: usize, quantization: &str) -> String {
    format!(
        r#"name = "{name}"
[fields.title]
type = "text"
analyzer = "english"
[fields.bucket]
type = "u64"
[fields.emb]
type = "vector"
dim = {dim}
index = "hnsw"
m = 16
ef_construction = 128
quantization = "{quantization}"
[ingest]
batch_size = 100000
"#
    )
}

const WORDS: &[&str] = &[
    "silk", "scarf", "red", "dress", "leather", "boots", "linen", "shirt", "wool", "coat", "summer", "winter",
    "cotton", "blue", "black", "white", "denim", "jacket", "running", "shoes", "canvas", "bag", "gold", "ring",
    "silver", "necklace", "floral", "skirt", "striped", "sweater", "vintage", "watch", "green", "hat", "knit",
    "gloves", "rain", "umbrella", "travel", "backpack",
];

/// A short product text (5 words) for document or query `i`.
fn title(i: usize, seed: u64) -> String {
    let mut rng = fastrand::Rng::with_seed(seed.wrapping_mul(7_919).wrapping_add(i as u64));
    (0..5)
        .map(|_| WORDS[rng.usize(..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Document `i` of the benchmark: its id, text, filter bucket and vector.
fn document(
    builder: &DocumentBuilder<'_>,
    i: usize,
    v: Vec<f32>,
    dir: &Path,
) -> Result<mira_host::document::BuiltDocument> {
    let mut row = Map::new();
    row.insert("id".into(), Value::from(i.to_string()));
    row.insert("title".into(), Value::from(title(i, 1)));
    row.insert("bucket".into(), Value::from(i % 1000));
    row.insert("emb".into(), Value::from(v));
    builder.build(&row, dir).map_err(|e| anyhow::anyhow!("{e:?}"))
}

fn load(c: &Collection, base: &[Vec<f32>], dir: &Path) -> Result<f64> {
    let started = Instant::now();
    let builder = DocumentBuilder::new(c.schema(), c.fields());
    let mut w = c.writer()?;
    for (i, v) in base.iter().enumerate() {
        w.upsert(document(&builder, i, v.clone(), dir)?)?;
    }
    w.commit()?;
    w.merge_all()?;
    w.finish()?;
    Ok(started.elapsed().as_secs_f64())
}

/// The kNN retriever alone (no stored fields read), on this thread: the base rows found.
fn knn(c: &Collection, rows: &[u32], q: &[f32], options: KnnOptions) -> Result<Vec<u32>> {
    let searcher = c.searcher();
    let spec = c.schema().vector_field("emb")?;
    let q = codec::prepare(q, &spec).map_err(anyhow::Error::msg)?;
    let (hits, _) = KnnCollector::new(c, &searcher, "emb", &q, K, None, options)?.search(&searcher)?;
    Ok(hits.into_iter().map(|(a, _)| rows[a.doc_id as usize]).collect())
}

/// The base row (its id) of every document of the collection's single segment.
fn rows_of(c: &Collection) -> Result<Vec<u32>> {
    let searcher = c.searcher();
    anyhow::ensure!(searcher.segment_readers().len() == 1, "expected one merged segment");
    let max_doc = searcher.segment_readers()[0].max_doc();
    (0..max_doc)
        .map(|d| {
            let doc: tantivy::TantivyDocument = searcher.doc(tantivy::DocAddress::new(0, d))?;
            use tantivy::schema::Value as _;
            let id = doc
                .get_first(c.fields().id)
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            Ok(id.parse()?)
        })
        .collect()
}

fn recall(found: &[Vec<u32>], truth: &[Vec<u32>]) -> f64 {
    let hit: usize = found
        .iter()
        .zip(truth)
        .map(|(f, t)| f.iter().filter(|d| t.contains(d)).count())
        .sum();
    hit as f64 / (truth.len() * K) as f64
}

pub fn run_in(args: &BenchArgs, dir: &Path) -> Result<Report> {
    let log = |m: &str| eprintln!("bench ann: {m}");
    let data = dir.join("ann-data");
    std::fs::create_dir_all(&data)?;
    let (n, dim, nq) = (args.docs, args.dim, args.queries.max(200));
    let mut rng = fastrand::Rng::with_seed(11);
    let basis: Vec<f32> = (0..16 * dim).map(|_| rng.f32() * 2.0 - 1.0).collect();
    log(&format!("generating {n} x {dim} vectors and {nq} queries"));
    let base = embeddings(n, dim, 1, &basis);
    let queries = embeddings(nq, dim, 2, &basis);
    write_f32(&data.join("base.f32"), &base)?;
    write_f32(&data.join("queries.f32"), &queries)?;
    let lines = |seed, n| (0..n).map(|i| title(i, seed)).collect::<Vec<_>>().join("\n");
    std::fs::write(data.join("texts.txt"), lines(1, n))?;
    std::fs::write(data.join("query_texts.txt"), lines(2, nq))?;

    let catalog = Catalog::new(&dir.join("ann-catalog"));
    let mut variants = Vec::new();
    let mut truth: Vec<Vec<u32>> = Vec::new();
    let mut exact_qps = 0.0;
    let mut filtered = Vec::new();
    let mut hybrid = (0.0, 0.0);
    let mut time_to_searchable_secs = 0.0;
    for quantization in ["i8", "none"] {
        let name = format!("ann_{quantization}");
        let c = catalog.create(CollectionSchema::from_toml(&schema(&name, dim, quantization), "bench")?)?;
        log(&format!("{name}: ingesting"));
        let ingest_secs = load(&c, &base, dir)?;
        let started = Instant::now();
        c.wait_for_vector_indexes(&mut |_| {})?;
        let build_secs = started.elapsed().as_secs_f64();
        let segments = c.searcher().segment_readers().len();
        let rows = rows_of(&c)?;
        log(&format!(
            "{name}: ingest {ingest_secs:.1} s, graph {build_secs:.1} s, {segments} segment(s)"
        ));
        if truth.is_empty() {
            let started = Instant::now();
            let exact = KnnOptions {
                exact: true,
                ..KnnOptions::default()
            };
            for q in &queries {
                truth.push(knn(&c, &rows, q, exact)?);
            }
            exact_qps = nq as f64 / started.elapsed().as_secs_f64();
            let mut out = std::io::BufWriter::new(std::fs::File::create(data.join("gt.u32"))?);
            for t in &truth {
                for d in t {
                    out.write_all(&d.to_le_bytes())?;
                }
            }
            out.flush()?;
        }
        let mut points = Vec::new();
        for &ef in EFS {
            let options = KnnOptions {
                ef_search: Some(ef),
                exact: false,
            };
            // One warm-up pass, then the timed one.
            for q in queries.iter().take(20) {
                knn(&c, &rows, q, options)?;
            }
            let started = Instant::now();
            let mut found = Vec::with_capacity(nq);
            for q in &queries {
                found.push(knn(&c, &rows, q, options)?);
            }
            let qps = nq as f64 / started.elapsed().as_secs_f64();
            points.push(Point {
                ef,
                recall: recall(&found, &truth),
                qps,
            });
        }
        let (links, codes) = c.vectors().graph_bytes();
        let matrix = c.vectors().mapped_bytes();
        if quantization == "i8" {
            filtered = filtered_runs(&c, &queries)?;
            hybrid = hybrid_run(&c, &queries)?;
            time_to_searchable_secs = ingest_secs + build_secs;
        }
        variants.push(Variant {
            name,
            ingest_secs,
            build_secs,
            segments,
            graph_bytes_per_vector: links as f64 / n as f64,
            code_bytes_per_vector: codes as f64 / n as f64,
            matrix_bytes_per_vector: matrix as f64 / n as f64,
            points,
        });
    }
    let report = Report {
        docs: n,
        dim,
        queries: nq,
        threads: rayon_threads(),
        exact_qps,
        variants,
        filtered,
        hybrid_p50_ms: hybrid.0,
        hybrid_p99_ms: hybrid.1,
        time_to_searchable_secs,
    };
    std::fs::write(data.join("mira.json"), serde_json::to_string_pretty(&report)?)?;
    Ok(report)
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Hybrid queries (the query's text and vector, RRF) through the whole pipeline: p50 and p99 ms.
fn hybrid_run(c: &Collection, queries: &[Vec<f32>]) -> Result<(f64, f64)> {
    let mut ms = Vec::with_capacity(queries.len());
    for (i, q) in queries.iter().enumerate() {
        let req = SearchRequest {
            text: Some(title(i, 2)),
            top_k: Some(K),
            ..SearchRequest::vector(q.clone())
        };
        let started = Instant::now();
        let r = c.search(&req)?;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(r.retrievers.len() == 2, "a hybrid query ran {:?}", r.retrievers);
    }
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    Ok((at(0.5), at(0.99)))
}

/// Filtered kNN through the whole search pipeline, against the exact answer under the same
/// filter.
fn filtered_runs(c: &Collection, queries: &[Vec<f32>]) -> Result<Vec<Filtered>> {
    let mut out = Vec::new();
    for (selectivity, upto) in [(0.001, 0), (0.01, 9), (0.1, 99), (0.5, 499)] {
        let request = |q: &Vec<f32>, exact: bool| SearchRequest {
            filter: Some(format!("bucket:[0 TO {upto}]")),
            top_k: Some(K),
            candidates: Some(K),
            exact,
            ..SearchRequest::vector(q.clone())
        };
        let ids = |r: mira_host::SearchResponse| -> Vec<String> { r.hits.into_iter().map(|h| h.id).collect() };
        let mut truth = Vec::new();
        let started = Instant::now();
        for q in queries.iter().take(100) {
            truth.push(ids(c.search(&request(q, true))?));
        }
        let exact_ms = started.elapsed().as_secs_f64() * 1000.0 / truth.len() as f64;
        let started = Instant::now();
        let mut hit = 0usize;
        let mut total = 0usize;
        let mut index = String::new();
        for (q, t) in queries.iter().take(100).zip(&truth) {
            let r = c.search(&request(q, false))?;
            if let Some(v) = &r.vector_search {
                index = v.segments.iter().map(|s| s.index).collect::<Vec<_>>().join(",");
            }
            let got = ids(r);
            hit += got.iter().filter(|g| t.contains(g)).count();
            total += t.len();
        }
        let ms = started.elapsed().as_secs_f64() * 1000.0 / truth.len() as f64;
        out.push(Filtered {
            selectivity,
            recall: hit as f64 / total.max(1) as f64,
            ms_per_query: ms,
            exact_ms_per_query: exact_ms,
            index,
        });
    }
    Ok(out)
}

pub fn print(r: &Report) {
    println!(
        "ann: {} x {} vectors, {} queries, recall@{K}; exact scan {:.0} q/s (1 thread)",
        r.docs, r.dim, r.queries, r.exact_qps
    );
    for v in &r.variants {
        println!(
            "  {}: ingest {:.1} s, graph build {:.1} s ({} threads), {} segment(s); bytes/vector: graph {:.0}, codes {:.0}, matrix {:.0}",
            v.name,
            v.ingest_secs,
            v.build_secs,
            r.threads,
            v.segments,
            v.graph_bytes_per_vector,
            v.code_bytes_per_vector,
            v.matrix_bytes_per_vector
        );
        for p in &v.points {
            println!("    ef {:>4}: recall {:.4}, {:>7.0} q/s", p.ef, p.recall, p.qps);
        }
    }
    println!(
        "  hybrid (BM25 + kNN + RRF, top {K}): p50 {:.2} ms, p99 {:.2} ms; time to searchable {:.1} s",
        r.hybrid_p50_ms, r.hybrid_p99_ms, r.time_to_searchable_secs
    );
    for f in &r.filtered {
        println!(
            "  filtered {:>5.1}%: recall {:.4}, {:.2} ms/query ({}), {:.2}x the exact filtered search ({:.2} ms)",
            f.selectivity * 100.0,
            f.recall,
            f.ms_per_query,
            f.index,
            f.ms_per_query / f.exact_ms_per_query,
            f.exact_ms_per_query
        );
    }
}

#[derive(Serialize)]
pub struct Growth {
    pub docs: usize,
    pub batch: usize,
    /// From the first document to every graph built (commits, merges, graphs).
    pub total_secs: f64,
    pub ingest_secs: f64,
    /// Waiting for the background graphs after the last commit.
    pub graph_wait_secs: f64,
    pub segments: usize,
    pub graphs_built: usize,
    /// Nodes inserted over all builds, per vector ingested.
    pub nodes_per_vector: f64,
    /// Opening the collection again, and its first two queries.
    pub open_ms: f64,
    pub first_query_ms: f64,
    pub second_query_ms: f64,
    /// Median of 100 queries once the background verification is done.
    pub steady_query_ms: f64,
}

/// Ingest in batches (a commit each) through the normal path: background graph builds, merges
/// rebuilding their segment's graph. Then reopening: open time and first-query latency.
pub fn growth(args: &BenchArgs, dir: &Path) -> Result<Growth> {
    let (n, dim, batch) = (args.docs, args.dim, args.batch);
    let mut rng = fastrand::Rng::with_seed(11);
    let basis: Vec<f32> = (0..16 * dim).map(|_| rng.f32() * 2.0 - 1.0).collect();
    let catalog = Catalog::new(&dir.join("growth-catalog"));
    let c = catalog.create(CollectionSchema::from_toml(&schema("growth", dim, "i8"), "bench")?)?;
    let builder = DocumentBuilder::new(c.schema(), c.fields());
    let started = Instant::now();
    let mut w = c.writer()?;
    for first in (0..n).step_by(batch) {
        let rows = embeddings(batch.min(n - first), dim, 1000 + first as u64, &basis);
        for (j, v) in rows.into_iter().enumerate() {
            let i = first + j;
            w.upsert(document(&builder, i, v, dir)?)?;
        }
        w.commit()?;
        eprintln!(
            "bench ann-growth: {} documents in {:.0} s, {} graph(s) built so far",
            first + batch.min(n - first),
            started.elapsed().as_secs_f64(),
            c.vectors().stats().graphs_built
        );
    }
    w.finish()?;
    let ingest_secs = started.elapsed().as_secs_f64();
    c.wait_for_vector_indexes(&mut |_| {})?;
    let total_secs = started.elapsed().as_secs_f64();
    let stats = c.vectors().stats();
    let segments = c.searcher().segment_readers().len();
    drop(c);
    let started = Instant::now();
    let c = catalog.open("growth")?;
    let open_ms = started.elapsed().as_secs_f64() * 1000.0;
    let q = embeddings(2, dim, 5, &basis);
    // Hits and the 100 candidates of the pipeline's default, through the whole search.
    let timed = |v: &Vec<f32>| -> Result<f64> {
        let t = Instant::now();
        c.search(&SearchRequest {
            top_k: Some(K),
            ..SearchRequest::vector(v.clone())
        })?;
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    };
    let first_query_ms = timed(&q[0])?;
    let second_query_ms = timed(&q[1])?;
    c.wait_for_vector_indexes(&mut |_| {})?;
    let more = embeddings(100, dim, 6, &basis);
    let mut steady = more.iter().map(&timed).collect::<Result<Vec<f64>>>()?;
    steady.sort_by(f64::total_cmp);
    let steady_query_ms = steady[steady.len() / 2];
    Ok(Growth {
        docs: n,
        batch,
        total_secs,
        ingest_secs,
        graph_wait_secs: total_secs - ingest_secs,
        segments,
        graphs_built: stats.graphs_built,
        nodes_per_vector: stats.graph_nodes_built as f64 / n as f64,
        open_ms,
        first_query_ms,
        second_query_ms,
        steady_query_ms,
    })
}

pub fn print_growth(g: &Growth) {
    println!(
        "ann-growth: {} vectors in batches of {}: {:.0} s to searchable (ingest {:.0} s, then graphs {:.0} s); {} segment(s); {} graphs built, {:.2} nodes inserted per vector",
        g.docs, g.batch, g.total_secs, g.ingest_secs, g.graph_wait_secs, g.segments, g.graphs_built, g.nodes_per_vector
    );
    println!(
        "  reopen: {:.1} ms; first query {:.2} ms, second {:.2} ms (pages of the files mapped on first touch, while the background verification reads them); median of 100 after it {:.2} ms",
        g.open_ms, g.first_query_ms, g.second_query_ms, g.steady_query_ms
    );
}
