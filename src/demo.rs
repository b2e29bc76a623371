//! `mira demo`: a generated product catalogue, indexed through the normal ingest path, searched
//! by example queries (text, filters, an image, the e-commerce plugin).

use std::path::Path;

use anyhow::{Result, bail};
use mira_host::ingest::{self, IngestOptions};
use mira_host::models::{ModelKind, resolve_model};
use mira_host::{Catalog, Collection, CollectionSchema, SearchRequest};

use crate::{output, plugins, progress};

const DEMO_COLLECTION: &str = "demo-products";

/// The demo's example queries: (what it shows, text, filter).
const DEMO_QUERIES: &[(&str, &str, Option<&str>)] = &[
    (
        "English text, stemmed (\"dresses\" finds \"dress\")",
        "red dresses",
        None,
    ),
    ("Chinese text, segmented by jieba", "红色 连衣裙", None),
    ("text + numeric range filter", "leather boots", Some("price:[0 TO 250]")),
    (
        "text + rating and stock filters",
        "silk scarf",
        Some("rating:>=4.5 AND in_stock:true"),
    ),
    ("text + facet filter", "vintage", Some("kind:/accessories")),
    (
        "text + date range filter",
        "jacket",
        Some("released:[2025-01-01T00:00:00Z TO 2026-01-01T00:00:00Z]"),
    ),
];

/// Candidates the demo reranks per query (a 0.6B model on a laptop CPU reads about one a second).
const DEMO_RERANK_WINDOW: usize = 10;

/// The model the demo uses for `kind`: the environment's override, else the default repo, if
/// it can be found; otherwise says why, and the demo goes on without it.
fn demo_model(kind: ModelKind) -> Option<String> {
    let spec = kind.env_or_default();
    match resolve_model(&spec, kind) {
        Ok(dir) => {
            println!("using {spec} ({})", dir.display());
            Some(spec)
        }
        Err(e) => {
            println!(
                "no {} model: {e}",
                if kind == ModelKind::Clip { "CLIP" } else { "reranker" }
            );
            None
        }
    }
}

/// `mira demo`: the demo collection (built on first use), what models it has, its example
/// queries, then the e-commerce plugin.
pub fn run(catalog: &Catalog, data_dir: &Path, config: Option<&Path>, products: usize, rebuild: bool) -> Result<()> {
    let c = collection(catalog, data_dir, products, rebuild)?;
    println!();
    let clip = describe_models(&c)?;
    for (what, text, filter) in DEMO_QUERIES {
        println!();
        match filter {
            Some(f) => println!("== {what}: \"{text}\" where {f}"),
            None => println!("== {what}: \"{text}\""),
        }
        let req = SearchRequest {
            filter: filter.map(str::to_owned),
            top_k: Some(5),
            rerank_window: Some(DEMO_RERANK_WINDOW),
            ..SearchRequest::text(*text)
        };
        let resp = c.search(&req)?;
        output::print_hits(&resp, 0, c.schema(), false);
        if clip && *text == "red dresses" {
            image_query(&c, &resp)?;
        }
    }
    let registry = plugins::registry(&plugins::engine_config(config, data_dir)?, data_dir)?;
    for (text, params) in [("red dress", vec![("max_price", "80")]), ("红色 连衣裙", vec![])] {
        println!();
        println!("== the e-commerce ranking plugin (a WebAssembly component): \"{text}\" {params:?}");
        let req = SearchRequest {
            scenario: Some("ecommerce".into()),
            params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            top_k: Some(5),
            rerank_window: Some(DEMO_RERANK_WINDOW),
            ..SearchRequest::text(text)
        };
        output::print_hits(&c.search_with(&req, Some(&registry))?, 0, c.schema(), false);
    }
    println!();
    println!("Try your own: mira search {DEMO_COLLECTION} \"blue wool\" --filter 'price:[0 TO 60]' --explain");
    println!(
        "         or: mira search {DEMO_COLLECTION} \"leather boots\" --scenario ecommerce --param max_price=150 --explain"
    );
    Ok(())
}

/// The demo collection: opened when it exists, else generated and ingested (with the models
/// that can be found).
fn collection(catalog: &Catalog, data_dir: &Path, products: usize, rebuild: bool) -> Result<Collection> {
    if products == 0 {
        bail!("--products must be at least 1");
    }
    if rebuild && catalog.exists(DEMO_COLLECTION) {
        catalog.drop_collection(DEMO_COLLECTION)?;
    }
    if catalog.exists(DEMO_COLLECTION) {
        println!(
            "using the demo collection in {} (--rebuild to make it again)",
            data_dir.display()
        );
        return Ok(catalog.open(DEMO_COLLECTION)?);
    }
    let dir = data_dir.join("demo");
    println!("generating {products} products with photos in {} ...", dir.display());
    let data = mira_host::demo::generate(&dir, products, 42)?;
    let mut toml =
        mira_host::demo::PRODUCTS_SCHEMA.replacen("name = \"products\"", &format!("name = \"{DEMO_COLLECTION}\""), 1);
    let (clip, reranker) = (demo_model(ModelKind::Clip), demo_model(ModelKind::Reranker));
    if clip.is_some() || reranker.is_some() {
        toml.push_str("\n[models]\n");
        for (key, spec) in [("clip", clip), ("reranker", reranker)] {
            if let Some(spec) = spec {
                toml.push_str(&format!("{key} = {spec:?}\n"));
            }
        }
    }
    let c = catalog.create(CollectionSchema::from_toml(&toml, "configs/products.toml")?)?;
    let report = ingest::ingest(&c, &data.jsonl, &IngestOptions::default(), &progress::IngestBar::new())?;
    output::print_report(&report);
    Ok(c)
}

/// Says which models the collection has and what they add; whether it has CLIP.
fn describe_models(c: &Collection) -> Result<bool> {
    let clip = c.clip()?;
    let reranker = c.reranker()?;
    match &clip {
        Some(m) => println!(
            "CLIP from {}: text queries also search the product photos (BM25 + kNN, fused), and photos carry tags.",
            m.files.dir.display()
        ),
        None => println!("No CLIP model: retrieval is BM25 with filters, and the demo makes up no vectors."),
    }
    match &reranker {
        Some(m) => println!(
            "Qwen3-Reranker from {}: the top {DEMO_RERANK_WINDOW} candidates of each query are reranked by P(yes).",
            m.files.dir.display()
        ),
        None => println!("No reranker: the fused order is final."),
    }
    if clip.is_none() || reranker.is_none() {
        println!(
            "(Models come from MIRA_CLIP_MODEL / MIRA_RERANKER_MODEL, a directory or a repo id, else {} and {} \
             from the Hugging Face cache or hub; they are looked up when the demo collection is built: --rebuild.)",
            ModelKind::Clip.default_repo(),
            ModelKind::Reranker.default_repo()
        );
    }
    Ok(clip.is_some())
}

/// A shopper's photo: the first hit's own picture as the query.
fn image_query(c: &Collection, resp: &mira_host::SearchResponse) -> Result<()> {
    let Some(photo) = resp
        .hits
        .first()
        .and_then(|h| h.fields.get("image"))
        .and_then(|v| v.as_str().or_else(|| v[0].as_str()))
    else {
        return Ok(());
    };
    println!();
    println!("== image query: the photo {photo}");
    let req = SearchRequest {
        image: Some(photo.into()),
        top_k: Some(5),
        ..Default::default()
    };
    output::print_hits(&c.search(&req)?, 0, c.schema(), false);
    Ok(())
}
