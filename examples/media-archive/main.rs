//! Media archive: text, image and hybrid search over a mixed archive of documents and photos.
//!
//!     cargo run --release --example media-archive
//!
//! Builds `examples-data/media-archive/` from 300 generated letters, reports and photographs
//! dated 1920-1989.

#[path = "../common/mod.rs"]
mod common;

use mira_host::SearchRequest;
use mira_host::models::ModelKind;

const PLACES: &[&str] = &[
    "harbour",
    "station",
    "market",
    "factory",
    "lighthouse",
    "village",
    "cathedral",
    "bridge",
];
/// (time of day, sky colour, light colour)
type Time = (&'static str, [u8; 3], Option<[u8; 3]>);

const TIMES: &[Time] = &[
    ("at night", [15, 20, 50], Some([240, 240, 200])),
    ("at dawn", [240, 170, 140], Some([255, 220, 170])),
    ("at noon", [130, 190, 245], Some([255, 250, 210])),
    ("in the rain", [110, 115, 125], None),
];
const DOCS: &[&str] = &["letter", "report", "notice", "diary page"];

fn main() {
    let data = common::data_dir("media-archive");
    let clip = common::model(ModelKind::Clip);
    let reranker = common::model(ModelKind::Reranker);
    // Captions are opt-in here: a base-sized BLIP takes seconds per photo on a CPU, and this
    // archive has 150 photos. MIRA_CAPTION_MODEL=DIR|REPO turns them on.
    let captioner = std::env::var(ModelKind::Captioner.env_var())
        .ok()
        .filter(|s| !s.trim().is_empty())
        .and_then(|_| common::model(ModelKind::Captioner));
    let photos = data.join("photos");
    std::fs::create_dir_all(&photos).expect("create the photo folder");
    let mut rows = Vec::new();
    let mut rng = fastrand::Rng::with_seed(1950);
    for i in 0..300u64 {
        let place = PLACES[rng.usize(..PLACES.len())];
        let year = 1920 + rng.u32(0..70);
        let date = format!("{year}-{:02}-{:02}", rng.u32(1..13), rng.u32(1..29));
        let row = if i % 2 == 0 {
            let (time, sky, light) = TIMES[rng.usize(..TIMES.len())];
            let scene = common::Scene {
                sky,
                ground: [60, 70, 90],
                light,
                shapes: [40, 35, 30],
            };
            let file = photos.join(format!("photo-{i:03}.png"));
            common::draw(&scene, i, 160, 120).save(&file).expect("save photo");
            serde_json::json!({"id": format!("photo-{i:03}"), "kind": "/photo", "title": format!("The {place} {time}, {year}"),
                "body": format!("Photograph of the {place} {time}."), "date": date, "photo": file})
        } else {
            let doc = DOCS[rng.usize(..DOCS.len())];
            serde_json::json!({"id": format!("doc-{i:03}"), "kind": "/document", "title": format!("A {doc} about the {place}, {year}"),
                "body": format!("This {doc} describes work at the {place} in {year}: the people, the weather and the ships at the quay."),
                "date": date})
        };
        rows.push(row);
    }
    let schema = format!(
        r#"name = "archive"
[fields.kind]
type = "facet"
[fields.title]
type = "text"
analyzer = "english"
boost = 2.0
[fields.body]
type = "text"
analyzer = "english"
[fields.date]
type = "date"
{}{}{}"#,
        common::photo_fields(clip.is_some()),
        if captioner.is_some() {
            "[fields.caption]\ntype = \"text\"\nanalyzer = \"english\"\nsource = \"caption\"\nfrom = [\"photo\"]\nmax_tokens = 20\n"
        } else {
            ""
        },
        common::models_toml(clip.as_deref(), reranker.as_deref(), captioner.as_deref())
    );
    let c = common::create(&data, &schema);
    let report = common::index(&c, rows);
    println!(
        "indexed {} items ({} photo embeddings{} computed)\n",
        report.indexed,
        report.embedded,
        if captioner.is_some() { " and captions" } else { "" }
    );
    for w in &report.warnings {
        println!("warning: {w}");
    }
    let fields = ["kind", "title", "date", "caption"];

    println!("== text: \"harbour at night\", 1950s");
    let resp = c
        .search(&SearchRequest {
            filter: Some("date:[1950-01-01T00:00:00Z TO 1960-01-01T00:00:00Z]".into()),
            top_k: Some(6),
            rerank_window: Some(10),
            ..SearchRequest::text("harbour at night")
        })
        .expect("text search");
    common::print_hits(&resp, &fields);

    println!("\n== documents only: \"ships at the quay\"");
    let resp = c
        .search(&SearchRequest {
            filter: Some("kind:/document".into()),
            top_k: Some(5),
            rerank_window: Some(10),
            ..SearchRequest::text("ships at the quay")
        })
        .expect("text search");
    common::print_hits(&resp, &fields);

    let Some(example) = c
        .search(&SearchRequest {
            filter: Some("kind:/photo".into()),
            top_k: Some(1),
            ..SearchRequest::text("harbour night")
        })
        .expect("find a photo")
        .hits
        .into_iter()
        .next()
    else {
        return;
    };
    let photo = example.fields["photo"].as_str().expect("photo path").to_owned();
    if clip.is_none() {
        println!(
            "\n== (image and hybrid queries need a CLIP model: set MIRA_CLIP_MODEL or fill the Hugging Face cache)"
        );
        return;
    }
    println!("\n== image: photos like {} ({})", example.id, example.fields["title"]);
    let resp = c
        .search(&SearchRequest {
            image: Some(photo.clone().into()),
            top_k: Some(5),
            rerank_window: Some(0),
            ..Default::default()
        })
        .expect("image search");
    common::print_hits(&resp, &fields);

    println!("\n== hybrid: that photo and the words \"harbour 1950s\"");
    let resp = c
        .search(&SearchRequest {
            image: Some(photo.into()),
            top_k: Some(5),
            rerank_window: Some(10),
            ..SearchRequest::text("harbour 1950s")
        })
        .expect("hybrid search");
    common::print_hits(&resp, &fields);
}
