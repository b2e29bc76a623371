//! `mira-bench search`: kNN scans, BM25 queries and ingest on generated data, each against a
//! baseline measured in the same run (the memory-bandwidth floor for scans).

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use mira_host::document::DocumentBuilder;
use mira_host::ingest::{self, IngestOptions, NoProgress};
use mira_host::vector::{DocFilter, FlatScan, SegmentVectorIndex, kernel};
use mira_host::{Catalog, Collection, CollectionSchema, SearchRequest};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::BenchArgs;
use crate::timing::time_ms;

#[derive(Serialize)]
struct Figure {
    name: String,
    ms_per_query: f64,
    baseline: String,
    ratio: f64,
}

#[derive(Serialize)]
struct Report {
    kernel: &'static str,
    docs: usize,
    dim: usize,
    segments: usize,
    build_secs: f64,
    ingest_docs_per_sec: f64,
    ingest_docs: u64,
    floors_ms: Vec<(String, f64, f64)>,
    figures: Vec<Figure>,
}

fn schema(name: &str, dim: usize) -> String {
    format!(
        r#"name = "{name}"
[fields.title]
type = "text"
analyzer = "english"
[fields.tag]
type = "keyword"
[fields.emb32]
type = "vector"
dim = {dim}
dtype = "f32"
metric = "dot"
index = "flat"
[fields.emb16]
type = "vector"
dim = {dim}
dtype = "f16"
metric = "dot"
index = "flat"
[ingest]
batch_size = 50000
"#
    )
}

const WORDS: &[&str] = &[
    "harbour", "night", "dress", "silk", "red", "boots", "leather", "river", "bridge", "market", "garden", "winter",
    "summer", "portrait", "street", "train", "station", "lamp", "window", "forest", "mountain", "coast", "boat",
    "festival", "crowd", "rain", "snow", "cafe", "library", "museum", "tower", "castle",
];

fn title(rng: &mut fastrand::Rng) -> String {
    (0..8)
        .map(|_| WORDS[rng.usize(..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

fn vector(rng: &mut fastrand::Rng, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| rng.f32() * 2.0 - 1.0).collect()
}

/// The search suite in `dir`.
pub fn run_in(args: &BenchArgs, dir: &Path) -> Result<()> {
    let catalog = Catalog::new(dir);
    let mut rng = fastrand::Rng::with_seed(7);
    let log = |m: &str| eprintln!("bench: {m}");

    // Ingest through the same path as `mira index`: JSONL with a vector per row.
    log(&format!(
        "writing {} JSONL rows with {}-d vectors",
        args.ingest_docs, args.dim
    ));
    let jsonl = dir.join("ingest.jsonl");
    std::fs::create_dir_all(dir)?;
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&jsonl)?);
        for i in 0..args.ingest_docs {
            let row = json!({"id": i.to_string(), "title": title(&mut rng), "tag": "rest", "emb32": vector(&mut rng, args.dim)});
            writeln!(out, "{row}")?;
        }
        out.flush()?;
    }
    let ing = create(&catalog, "ingest", args.dim)?;
    let report = ingest::ingest(&ing, &jsonl, &IngestOptions::default(), &NoProgress)?;
    let ingest_rate = report.indexed as f64 / report.elapsed.as_secs_f64();
    log(&format!("ingest: {ingest_rate:.0} docs/s"));

    // The kNN collection, written through the library.
    log(&format!(
        "building {} docs with f32 and f16 {}-d vectors",
        args.docs, args.dim
    ));
    let c = create(&catalog, "knn", args.dim)?;
    let started = Instant::now();
    {
        let builder = DocumentBuilder::new(c.schema(), c.fields());
        let mut w = c.writer()?;
        for i in 0..args.docs {
            let v = vector(&mut rng, args.dim);
            let mut row = Map::new();
            row.insert("id".into(), Value::from(i.to_string()));
            row.insert("title".into(), Value::from(title(&mut rng)));
            row.insert("tag".into(), Value::from(if i % 10 == 0 { "ten" } else { "rest" }));
            row.insert("emb32".into(), Value::from(v.clone()));
            row.insert("emb16".into(), Value::from(v));
            let doc = builder.build(&row, dir).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            w.upsert(doc)?;
        }
        w.finish()?;
    }
    let build_secs = started.elapsed().as_secs_f64();
    let searcher = c.searcher();
    let segments = searcher.segment_readers().len();
    log(&format!("built in {build_secs:.1}s, {segments} segment(s)"));

    let queries: Vec<Vec<f32>> = (0..args.queries).map(|_| vector(&mut rng, args.dim)).collect();
    let mut floors = Vec::new();
    let mut figures = Vec::new();
    for field in ["emb32", "emb16"] {
        let spec = c.schema().vector_field(field)?;
        let matrices: Vec<_> = searcher
            .segment_readers()
            .iter()
            .map(|r| c.vectors().matrix(r, field, &spec))
            .collect::<Result<_, _>>()?;
        let bytes: usize = matrices.iter().map(|m| m.rows_bytes().len()).sum();
        let floor = time_ms(10, |_| {
            for m in &matrices {
                black_box(kernel::stream_read(black_box(m.rows_bytes())));
            }
        });
        floors.push((field.to_string(), floor, bytes as f64 / floor / 1e6));
        let scan = time_ms(queries.len(), |i| {
            for (m, r) in matrices.iter().zip(searcher.segment_readers()) {
                black_box(
                    FlatScan(m)
                        .search(&queries[i], 10, &DocFilter::All(r.alive_bitset()))
                        .hits,
                );
            }
        });
        let baseline = format!("memory floor {floor:.2} ms ({:.1} GB/s)", bytes as f64 / floor / 1e6);
        figures.push(Figure {
            name: format!("kNN scan {field}, k=10 (kernel only)"),
            ms_per_query: scan,
            baseline: baseline.clone(),
            ratio: scan / floor,
        });
        let search = |filter: Option<&str>| {
            time_ms(queries.len(), |i| {
                let req = SearchRequest {
                    vector: Some(queries[i].clone()),
                    vector_field: Some(field.into()),
                    filter: filter.map(str::to_owned),
                    top_k: Some(10),
                    candidates: Some(10),
                    ..Default::default()
                };
                black_box(c.search(&req).expect("search"));
            })
        };
        let full = search(None);
        figures.push(Figure {
            name: format!("kNN search {field}, k=10"),
            ms_per_query: full,
            baseline: baseline.clone(),
            ratio: full / floor,
        });
        let filtered = search(Some("tag:ten"));
        figures.push(Figure {
            name: format!("kNN search {field}, k=10, 10% filter"),
            ms_per_query: filtered,
            baseline: format!("unfiltered search {full:.2} ms"),
            ratio: filtered / full,
        });
        log(&format!(
            "{field}: floor {floor:.2} ms, scan {scan:.2}, search {full:.2}, filtered {filtered:.2}"
        ));
    }
    let texts: Vec<String> = (0..args.queries)
        .map(|_| {
            format!(
                "{} {}",
                WORDS[rng.usize(..WORDS.len())],
                WORDS[rng.usize(..WORDS.len())]
            )
        })
        .collect();
    let bm25 = |filter: Option<&str>| {
        time_ms(texts.len(), |i| {
            let req = SearchRequest {
                filter: filter.map(str::to_owned),
                top_k: Some(10),
                candidates: Some(10),
                ..SearchRequest::text(texts[i].clone())
            };
            black_box(c.search(&req).expect("search"));
        })
    };
    let plain = bm25(None);
    let one_term = time_ms(texts.len(), |i| {
        let req = SearchRequest {
            top_k: Some(10),
            candidates: Some(10),
            ..SearchRequest::text(WORDS[i % WORDS.len()])
        };
        black_box(c.search(&req).expect("search"));
    });
    figures.push(Figure {
        name: "BM25, two terms, k=10".into(),
        ms_per_query: plain,
        baseline: format!("one term {one_term:.2} ms"),
        ratio: plain / one_term,
    });
    let filtered = bm25(Some("tag:ten"));
    figures.push(Figure {
        name: "BM25, two terms, k=10, 10% filter".into(),
        ms_per_query: filtered,
        baseline: format!("unfiltered {plain:.2} ms"),
        ratio: filtered / plain,
    });

    let report = Report {
        kernel: kernel::kernel_name(),
        docs: args.docs,
        dim: args.dim,
        segments,
        build_secs,
        ingest_docs_per_sec: ingest_rate,
        ingest_docs: report.indexed,
        floors_ms: floors,
        figures,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    Ok(())
}

fn create(catalog: &Catalog, name: &str, dim: usize) -> Result<Collection> {
    if catalog.exists(name) {
        catalog.drop_collection(name)?;
    }
    let schema = CollectionSchema::from_toml(&schema(name, dim), "bench schema")?;
    catalog
        .create(schema)
        .with_context(|| format!("creating bench collection {name}"))
}

fn print(r: &Report) {
    println!(
        "kernel {}; {} docs x {} dims in {} segment(s); built in {:.1}s",
        r.kernel, r.docs, r.dim, r.segments, r.build_secs
    );
    for (field, ms, gbs) in &r.floors_ms {
        println!("memory floor {field}: {ms:.2} ms per full read ({gbs:.1} GB/s)");
    }
    println!("{:<44} {:>10}  {:>7}  baseline", "measurement", "ms/query", "ratio");
    for f in &r.figures {
        println!(
            "{:<44} {:>10.3}  {:>7.2}  {}",
            f.name, f.ms_per_query, f.ratio, f.baseline
        );
    }
    println!(
        "ingest (JSONL, {} docs with a {}-d f32 vector): {:.0} docs/s",
        r.ingest_docs, r.dim, r.ingest_docs_per_sec
    );
}
