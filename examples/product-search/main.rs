//! Product search: a shopper's photo of a red dress finds similar products, re-ranked with the
//! e-commerce plugin; a photo of the back of a product finds it by its second photo; facet
//! counts (brand, colour, price bands) follow the shopper's ticks; English and Chinese text
//! queries work too.
//!
//!     cargo run --release --example product-search
//!
//! Builds `examples-data/product-search/` from 1500 generated products with drawn photos.

#[path = "../common/mod.rs"]
mod common;

use mira_host::SearchRequest;
use mira_host::models::ModelKind;

fn main() {
    let data = common::data_dir("product-search");
    let clip = common::model(ModelKind::Clip);
    let reranker = common::model(ModelKind::Reranker);
    let products = mira_host::demo::generate(&data.join("source"), 1500, 2026).expect("generate products");
    let schema = format!(
        "{}{}",
        mira_host::demo::PRODUCTS_SCHEMA,
        common::models_toml(clip.as_deref(), reranker.as_deref(), None)
    );
    let c = common::create(&data, &schema);
    let report = mira_host::ingest::ingest(&c, &products.jsonl, &Default::default(), &mira_host::ingest::NoProgress)
        .expect("index the products");
    println!(
        "indexed {} products ({} photo embeddings computed)\n",
        report.indexed, report.embedded
    );
    let plugins = common::plugins();
    let fields = ["title", "brand", "color", "price", "in_stock", "tags"];

    // The shopper's photo: the picture of a red dress in the catalogue stands in for it.
    let red_dress = c
        .search(&SearchRequest {
            filter: Some("color:red AND category:dress".into()),
            top_k: Some(1),
            ..Default::default()
        })
        .expect("find a red dress")
        .hits
        .into_iter()
        .next()
        .expect("the catalogue has a red dress");
    let first_photo = |v: &serde_json::Value| v.as_str().or_else(|| v[0].as_str()).map(str::to_owned);
    let photo = first_photo(&red_dress.fields["image"]).expect("photo path");
    if clip.is_some() {
        println!("== a shopper's photo of a red dress ({photo}), e-commerce ranking, under 150");
        let resp = c
            .search_with(
                &SearchRequest {
                    image: Some(photo.into()),
                    scenario: Some("ecommerce".into()),
                    params: [("max_price".to_string(), "150".to_string())].into(),
                    top_k: Some(8),
                    rerank_window: Some(0),
                    ..Default::default()
                },
                Some(&plugins),
            )
            .expect("image search");
        common::print_hits(&resp, &fields);
    } else {
        println!("== (the photo query needs a CLIP model: set MIRA_CLIP_MODEL or fill the Hugging Face cache)");
    }
    for (what, text) in [
        ("English", "red dress"),
        ("Chinese", "红色 连衣裙"),
        ("English", "leather boots"),
    ] {
        println!("\n== {what} text: \"{text}\", e-commerce ranking");
        let resp = c
            .search_with(
                &SearchRequest {
                    scenario: Some("ecommerce".into()),
                    top_k: Some(5),
                    rerank_window: Some(10),
                    ..SearchRequest::text(text)
                },
                Some(&plugins),
            )
            .expect("text search");
        common::print_hits(&resp, &fields);
    }

    // Several photos per product: every third product has a second one; a shopper's photo of
    // that view finds the product, and the hit says which photo matched.
    if clip.is_some() {
        let two = c
            .search(&SearchRequest {
                filter: Some("id:p00003".into()),
                ..Default::default()
            })
            .expect("product p00003");
        let second = two.hits[0].fields["image"][1]
            .as_str()
            .expect("a second photo")
            .to_owned();
        println!("\n== a photo of p00003's second view ({second})");
        let resp = c
            .search(&SearchRequest {
                image: Some(second.into()),
                top_k: Some(3),
                rerank_window: Some(0),
                ..Default::default()
            })
            .expect("image search");
        for h in &resp.hits {
            let photo = h.matched.as_ref().map_or(1, |m| m.position + 1);
            println!("  {} {:.4}  matched photo {photo}", h.id, h.score);
        }
    }

    // Facets: counts over what "dress" matches; ticking a brand narrows the hits, and the
    // brand counts stay as if no brand were ticked (so the shopper can add another).
    use mira_host::search::facets::{FacetRange, FacetRequest};
    let facet = |field: &str| FacetRequest {
        field: field.into(),
        size: Some(4),
        ..Default::default()
    };
    let mut req = SearchRequest {
        facets: vec![
            facet("brand"),
            facet("color"),
            FacetRequest {
                ranges: ["..50", "50..100", "100.."]
                    .iter()
                    .map(|r| FacetRange::parse(r).unwrap())
                    .collect(),
                ..facet("price")
            },
        ],
        top_k: Some(3),
        rerank_window: Some(0),
        ..SearchRequest::text("dress")
    };
    let resp = c.search(&req).expect("faceted search");
    let brand = resp.facets[0].buckets[0].value.clone();
    req.facet_filters = [("brand".to_string(), vec![brand.clone()])].into();
    let ticked = c.search(&req).expect("faceted search with a tick");
    for (title, r) in [
        ("\n== \"dress\" with facets", &resp),
        (&*format!("\n== ticked brand {brand}"), &ticked),
    ] {
        println!("{title}: {} matching", r.matching.unwrap_or(0));
        for f in &r.facets {
            let buckets: Vec<String> = f
                .buckets
                .iter()
                .map(|b| format!("{}{} ({})", if b.selected { "*" } else { "" }, b.value, b.count))
                .collect();
            println!("  {:<6} {}", f.field, buckets.join(", "));
        }
        common::print_hits(r, &fields);
    }
}
