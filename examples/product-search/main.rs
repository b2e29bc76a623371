//! Product search: a shopper's photo of a red dress finds similar products, re-ranked with the
//! e-commerce plugin; English and Chinese text queries work too.
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
    let photo = red_dress.fields["image"].as_str().expect("photo path").to_owned();
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
}
