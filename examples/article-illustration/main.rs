//! Article illustration: one call finds pictures for each key paragraph of an article, ranked
//! with an instruction about emotion, theme and style, and never uses a picture twice.
//!
//!     cargo run --release --example article-illustration [-- ARTICLE.txt]
//!
//! Builds `examples-data/article-illustration/` from 240 generated pictures with captions.

#[path = "../common/mod.rs"]
mod common;

use mira_host::illustrate::{IllustrateRequest, illustrate};
use mira_host::models::ModelKind;

/// (caption, tags, sky, ground, light, shapes)
type Theme = (&'static str, &'static str, [u8; 3], [u8; 3], Option<[u8; 3]>, [u8; 3]);

const THEMES: &[Theme] = &[
    (
        "a stormy sea under dark clouds",
        "storm sea dramatic grey",
        [70, 80, 95],
        [30, 50, 80],
        None,
        [20, 25, 30],
    ),
    (
        "a calm harbour at dawn with fishing boats",
        "harbour boats calm morning",
        [250, 190, 150],
        [60, 110, 160],
        Some([255, 230, 180]),
        [90, 60, 40],
    ),
    (
        "children laughing in a sunny park",
        "joy park summer children",
        [120, 190, 250],
        [80, 170, 70],
        Some([255, 240, 120]),
        [230, 80, 80],
    ),
    (
        "an empty station platform at night",
        "lonely night station melancholy",
        [15, 20, 45],
        [40, 40, 50],
        Some([240, 240, 210]),
        [200, 170, 60],
    ),
    (
        "snow falling on a quiet mountain village",
        "winter snow village quiet",
        [200, 210, 225],
        [240, 245, 250],
        None,
        [110, 80, 60],
    ),
    (
        "a crowded market full of colour",
        "market crowd colour busy",
        [140, 200, 240],
        [200, 160, 110],
        Some([255, 250, 200]),
        [220, 60, 140],
    ),
    (
        "autumn leaves on a wet street",
        "autumn rain street nostalgia",
        [150, 140, 130],
        [120, 70, 30],
        None,
        [200, 90, 20],
    ),
    (
        "a lighthouse on the cliffs at sunset",
        "lighthouse sunset coast hope",
        [240, 120, 70],
        [70, 60, 50],
        Some([255, 200, 90]),
        [240, 240, 240],
    ),
];

const ARTICLE: &str = "The town at the edge of the sea

Every morning the fishing boats leave the harbour before dawn, sliding past the breakwater while the first light colours the water pink and gold. The fishermen hardly speak; the sea is calm and the day is long.

By noon the square fills with stalls. Fruit, fish, bright scarves and painted bowls crowd every table, and the noise of bargaining rolls down the narrow streets toward the water.

In autumn the storms arrive. Waves break over the sea wall, the sky turns the colour of slate, and the boats stay tied up for days while the wind rattles the shutters.

When winter comes, snow settles on the roofs of the old village above the town, and for a few weeks everything is quiet, white and still.

On summer evenings the old lighthouse on the cliffs catches the last of the sun, and families walk out along the path to watch it come on, one more night of safe return.";

fn main() {
    let data = common::data_dir("article-illustration");
    let clip = common::model(ModelKind::Clip);
    let reranker = common::model(ModelKind::Reranker);
    let article = match std::env::args().nth(1) {
        Some(path) => std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
        None => ARTICLE.to_owned(),
    };
    let pictures = data.join("pictures");
    std::fs::create_dir_all(&pictures).expect("create the picture folder");
    let mut rows = Vec::new();
    for i in 0..240u64 {
        let (caption, tags, sky, ground, light, shapes) = THEMES[i as usize % THEMES.len()];
        let scene = common::Scene {
            sky,
            ground,
            light,
            shapes,
        };
        let file = pictures.join(format!("pic-{i:03}.png"));
        common::draw(&scene, i, 160, 120).save(&file).expect("save picture");
        let row = serde_json::json!({"id": format!("pic-{i:03}"), "caption": caption, "keywords": tags, "photo": file});
        rows.push(row);
    }
    let schema = format!(
        r#"name = "pictures"
[fields.caption]
type = "text"
analyzer = "english"
[fields.keywords]
type = "text"
analyzer = "english"
{}[search]
text_fields = ["caption", "keywords"]
{}"#,
        common::photo_fields(clip.is_some()),
        common::models_toml(clip.as_deref(), reranker.as_deref(), None)
    );
    let c = common::create(&data, &schema);
    let report = common::index(&c, rows);
    println!("indexed {} pictures\n", report.indexed);
    let result = illustrate(
        &c,
        &IllustrateRequest {
            article,
            per_paragraph: Some(2),
            min_chars: None,
            candidates: Some(20),
            instruction: None,
            filter: None,
        },
    )
    .expect("illustrate");
    println!(
        "instruction: {}{}",
        result.instruction,
        if result.reranked {
            ""
        } else {
            " (no reranker: fused order)"
        }
    );
    let mut used = std::collections::HashSet::new();
    for p in &result.paragraphs {
        println!("\n¶{} {}…", p.paragraph, p.excerpt.chars().take(90).collect::<String>());
        for pic in &p.pictures {
            assert!(used.insert(pic.id.clone()), "a picture is never used twice");
            println!(
                "   {} {:.4}  {}",
                pic.id,
                pic.score,
                pic.fields["caption"].as_str().unwrap_or("")
            );
        }
    }
    println!(
        "\n{} pictures for {} paragraphs in {:.0} ms, none used twice",
        used.len(),
        result.paragraphs.len(),
        result.took_ms
    );
}
