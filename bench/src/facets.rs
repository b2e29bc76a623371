//! `mira-bench facets`: facet counts over a text query's matches against tantivy's own
//! aggregations (terms, range, histogram) over the same query, in the same run; what a tantivy
//! user would write instead. Also the cost of a ticked value (the disjunctive pass).

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use mira_host::document::DocumentBuilder;
use mira_host::search::facets::{FacetRange, FacetRequest};
use mira_host::{Catalog, SearchRequest};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tantivy::aggregation::{AggContextParams, AggregationCollector, agg_req::Aggregations};
use tantivy::query::QueryParser;

use crate::timing::time_ms;

const WORDS: &[&str] = &[
    "harbour", "night", "dress", "silk", "red", "boots", "leather", "river", "bridge", "market", "garden", "winter",
    "summer", "portrait", "street", "train", "station", "lamp", "window", "forest", "mountain", "coast", "boat",
    "festival", "crowd", "rain", "snow", "cafe", "library", "museum", "tower", "castle",
];

#[derive(Serialize)]
pub struct Figures {
    pub docs: usize,
    /// Documents a query matches, on average.
    pub matching: f64,
    pub plain_ms: f64,
    pub facets_ms: f64,
    pub ticked_ms: f64,
    pub tantivy_aggregation_ms: f64,
    /// (facets - plain) / tantivy's aggregation over the same matches.
    pub ratio: f64,
}

pub fn run(docs: usize, queries: usize, dir: &Path) -> Result<Figures> {
    let catalog = Catalog::new(dir);
    let schema = mira_host::CollectionSchema::from_toml(
        r#"name = "facets"
[fields.title]
type = "text"
[fields.brand]
type = "keyword"
[fields.price]
type = "f64"
[ingest]
batch_size = 50000
"#,
        "bench",
    )?;
    if catalog.list()?.iter().any(|n| n == "facets") {
        catalog.drop_collection("facets")?;
    }
    let c = catalog.create(schema)?;
    let mut rng = fastrand::Rng::with_seed(3);
    eprintln!("bench: {docs} documents with a brand (200 values) and a price");
    {
        let builder = DocumentBuilder::new(c.schema(), c.fields());
        let mut w = c.writer()?;
        for i in 0..docs {
            let title: Vec<&str> = (0..8).map(|_| WORDS[rng.usize(..WORDS.len())]).collect();
            let mut row = Map::new();
            row.insert("id".into(), Value::from(i.to_string()));
            row.insert("title".into(), Value::from(title.join(" ")));
            row.insert("brand".into(), Value::from(format!("brand{:03}", rng.usize(..200))));
            row.insert("price".into(), json!((rng.f64() * 10000.0).round() / 100.0));
            w.upsert(builder.build(&row, dir).map_err(|e| anyhow::anyhow!("{e:?}"))?)?;
        }
        w.finish()?;
    }
    let words: Vec<&str> = (0..queries).map(|i| WORDS[i % WORDS.len()]).collect();
    let facets = vec![
        FacetRequest {
            field: "brand".into(),
            size: Some(10),
            ..Default::default()
        },
        FacetRequest {
            field: "price".into(),
            ranges: ["..25", "25..50", "50..75", "75.."]
                .iter()
                .map(|r| FacetRange::parse(r).unwrap())
                .collect(),
            ..Default::default()
        },
        FacetRequest {
            field: "price".into(),
            interval: Some("10".into()),
            ..Default::default()
        },
    ];
    let request = |word: &str, with_facets: bool, tick: bool| SearchRequest {
        top_k: Some(10),
        facets: if with_facets { facets.clone() } else { Vec::new() },
        facet_filters: if tick {
            [("brand".to_string(), vec!["brand007".to_string()])].into()
        } else {
            Default::default()
        },
        ..SearchRequest::text(word)
    };
    let mut matching = 0u64;
    for w in &words {
        matching += c.search(&request(w, true, false))?.matching.unwrap_or(0);
    }
    let plain = time_ms(words.len(), |i| {
        black_box(c.search(&request(words[i], false, false)).expect("search"));
    });
    let with = time_ms(words.len(), |i| {
        black_box(c.search(&request(words[i], true, false)).expect("search"));
    });
    let ticked = time_ms(words.len(), |i| {
        black_box(c.search(&request(words[i], true, true)).expect("search"));
    });

    // tantivy's aggregations over the same query: the brand's top 10, the ranges, the histogram.
    let searcher = c.searcher();
    let title = c.fields().get("title").context("title field")?.1;
    let parser = QueryParser::for_index(c.index(), vec![title]);
    let aggs: Aggregations = serde_json::from_value(json!({
        "brand": {"terms": {"field": "brand", "size": 10}},
        "bands": {"range": {"field": "price", "ranges": [{"to": 25.0}, {"from": 25.0, "to": 50.0}, {"from": 50.0, "to": 75.0}, {"from": 75.0}]}},
        "histogram": {"histogram": {"field": "price", "interval": 10.0}}
    }))?;
    let collector = || {
        AggregationCollector::from_aggs(
            aggs.clone(),
            AggContextParams::new(Default::default(), c.index().tokenizers().clone()),
        )
    };
    // The two count the same (tantivy's terms top 10 is approximate across segments, so each of
    // its buckets is checked against Mira's exact count of that value; the ranges exactly).
    let q = parser.parse_query(words[0])?;
    let theirs = serde_json::to_value(searcher.search(&q, &collector())?)?;
    let mut all = request(words[0], true, false);
    all.facets[0].size = Some(1000);
    let ours = c.search(&all)?;
    let count_of = |facet: usize, key: &str| {
        ours.facets[facet]
            .buckets
            .iter()
            .find(|b| b.value == key)
            .map_or(0, |b| b.count)
    };
    for b in theirs["brand"]["buckets"].as_array().context("terms buckets")? {
        let key = b["key"].as_str().unwrap_or("");
        anyhow::ensure!(
            count_of(0, key) == b["doc_count"].as_u64().unwrap_or(0),
            "brand {key}: {} against tantivy's {b}",
            count_of(0, key)
        );
    }
    let their_bands: Vec<u64> = theirs["bands"]["buckets"]
        .as_array()
        .context("range buckets")?
        .iter()
        .map(|b| b["doc_count"].as_u64().unwrap_or(0))
        .collect();
    let our_bands: Vec<u64> = ours.facets[1].buckets.iter().map(|b| b.count).collect();
    anyhow::ensure!(
        their_bands == our_bands,
        "price bands {our_bands:?} against {their_bands:?}"
    );
    let parsed: Vec<_> = words.iter().map(|w| parser.parse_query(w).expect("query")).collect();
    let started = Instant::now();
    let agg = time_ms(words.len(), |i| {
        black_box(searcher.search(&parsed[i], &collector()).expect("aggregation"));
    });
    eprintln!("bench: measured in {:.1}s", started.elapsed().as_secs_f64());
    Ok(Figures {
        docs,
        matching: matching as f64 / words.len() as f64,
        plain_ms: plain,
        facets_ms: with,
        ticked_ms: ticked,
        tantivy_aggregation_ms: agg,
        ratio: (with - plain) / agg,
    })
}

pub fn print(f: &Figures) {
    println!(
        "facets over {} documents ({:.0} matching a query on average):",
        f.docs, f.matching
    );
    println!("  search, top 10, no facets        {:>8.2} ms", f.plain_ms);
    println!(
        "  + brand top 10, 4 price ranges, price histogram {:>8.2} ms (counting {:.2} ms)",
        f.facets_ms,
        f.facets_ms - f.plain_ms
    );
    println!("  + a ticked brand (disjunctive)   {:>8.2} ms", f.ticked_ms);
    println!(
        "  tantivy aggregations, same query and counts {:>8.2} ms: Mira's counting is {:.2}x its time",
        f.tantivy_aggregation_ms, f.ratio
    );
}
