//! BLIP captions on tiny random-weight models in the Hugging Face layout, through the same
//! loading code as real checkpoints: batch = single, length limit, bad model directories, and
//! captions filled at ingest (BM25-searchable, cached, a row's own caption kept), the CLI.

use std::path::Path;

use image::DynamicImage;
use mira_host::caption::Captioner;
use mira_host::caption::fixtures::{ReferenceBlip, write_tiny_blip};
use mira_host::models::{ModelDType, parse_device};

use crate::common::{Env, stderr, stdout};

fn load(dir: &Path) -> Captioner {
    Captioner::load(dir, &parse_device("cpu").unwrap(), ModelDType::F32).unwrap()
}

/// Pictures that differ in colour and layout.
fn pictures() -> Vec<DynamicImage> {
    (0..5u32)
        .map(|i| {
            DynamicImage::ImageRgb8(image::RgbImage::from_fn(40 + i * 13, 30 + i * 7, |x, y| {
                image::Rgb([
                    ((x * (i + 1) * 9) % 256) as u8,
                    ((y * 31 + i * 50) % 256) as u8,
                    ((x + y) * i % 256) as u8,
                ])
            }))
        })
        .collect()
}

#[test]
fn a_batch_captions_as_one_image_at_a_time() {
    let env = Env::new();
    let dir = env.path().join("blip");
    write_tiny_blip(&dir).unwrap();
    let blip = load(&dir);
    let images = pictures();
    let batch = blip.caption_ids(&images, 12).unwrap();
    for (img, ids) in images.iter().zip(&batch) {
        let single = blip.caption_ids(std::slice::from_ref(img), 12).unwrap();
        assert_eq!(&single[0], ids);
        assert!(ids.len() <= 12);
    }
    // More images than one forward pass takes: split, in order.
    let many: Vec<DynamicImage> = (0..mira_host::caption::CAPTION_BATCH + 3)
        .map(|i| images[i % images.len()].clone())
        .collect();
    let all = blip.caption_ids(&many, 12).unwrap();
    assert_eq!(all.len(), many.len());
    for (i, ids) in all.iter().enumerate() {
        assert_eq!(ids, &batch[i % images.len()], "image {i}");
    }
}

/// Mira's own BLIP forward (batched, cross-attention computed once) captions exactly as
/// candle-transformers' BLIP does one image at a time.
#[test]
fn captions_equal_candle_transformers_blip() {
    let env = Env::new();
    let dir = env.path().join("blip");
    write_tiny_blip(&dir).unwrap();
    let ours = load(&dir).caption_ids(&pictures(), 12).unwrap();
    let reference = ReferenceBlip::load(&dir).unwrap();
    assert_eq!(ours, reference.caption_ids(&pictures(), 12).unwrap());
}

#[test]
fn captions_stop_at_the_end_token_or_the_limit() {
    let env = Env::new();
    let dir = env.path().join("blip");
    write_tiny_blip(&dir).unwrap();
    let blip = load(&dir);
    let long = blip.caption_ids(&pictures(), 12).unwrap();
    assert!(
        long.iter().any(|c| c.len() == 12),
        "some captions reach the limit: {long:?}"
    );
    assert!(long.iter().any(|c| c.len() < 12), "some end by themselves: {long:?}");
    // A shorter limit cuts the same captions (greedy decoding is prefix-stable).
    let short = blip.caption_ids(&pictures(), 4).unwrap();
    for (l, s) in long.iter().zip(&short) {
        assert_eq!(&l[..l.len().min(4)], s.as_slice());
    }
    // The text is the tokenizer's decoding: words of the tiny vocabulary, special tokens dropped.
    let texts = blip.caption_images(&pictures(), 12).unwrap();
    for t in &texts {
        assert!(
            t.split(' ')
                .all(|w| w.is_empty() || mira_host::embed::fixtures::TINY_WORDS.contains(&w)),
            "{t}"
        );
    }
}

#[test]
fn bad_captioner_directories_are_clear_errors() {
    let env = Env::new();
    let dir = env.path().join("blip");
    write_tiny_blip(&dir).unwrap();
    std::fs::remove_file(dir.join("preprocessor_config.json")).unwrap();
    let e = Captioner::load(&dir, &parse_device("cpu").unwrap(), ModelDType::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("preprocessor_config.json") && e.contains("blip-image-captioning"),
        "{e}"
    );
    // A CLIP directory is not a captioner.
    let clip = env.path().join("clip");
    mira_host::embed::fixtures::write_tiny_clip(&clip).unwrap();
    let e = Captioner::load(&clip, &parse_device("cpu").unwrap(), ModelDType::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("model_type is `clip`, not `blip`"), "{e}");
}

fn schema(model: &Path) -> String {
    format!(
        r#"name = "archive"
[fields.title]
type = "text"
[fields.photo]
type = "image"
[fields.caption]
type = "text"
analyzer = "english"
source = "caption"
from = ["photo"]
max_tokens = 12
[models]
captioner = {model:?}
"#
    )
}

/// Captions are computed at ingest for rows without one (a row's own caption is kept), equal
/// the captioner's output for the same image, are BM25-searchable, and come from the cache
/// when the same images are indexed again.
#[test]
fn captions_are_filled_at_ingest_searchable_and_cached() {
    let env = Env::new();
    let model = env.path().join("blip");
    write_tiny_blip(&model).unwrap();
    let blip = load(&model);
    let photos = env.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let mut rows = String::new();
    for (i, img) in pictures().iter().enumerate() {
        img.save(photos.join(format!("p{i}.png"))).unwrap();
        rows.push_str(&format!(
            "{{\"id\": \"p{i}\", \"title\": \"picture {i}\", \"photo\": \"p{i}.png\"}}\n"
        ));
    }
    rows.push_str(
        "{\"id\": \"own\", \"title\": \"captioned\", \"photo\": \"p0.png\", \"caption\": \"my own words\"}\n",
    );
    let input = photos.join("rows.jsonl");
    std::fs::write(&input, rows).unwrap();

    let c = env.create(&schema(&model));
    let report = mira_host::ingest::ingest(&c, &input, &Default::default(), &mira_host::ingest::NoProgress).unwrap();
    assert_eq!(
        (report.indexed, report.embedded),
        (6, 5),
        "{:?} {:?}",
        report.errors,
        report.warnings
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let expected = blip.caption_images(&pictures(), 12).unwrap();
    let stored = |c: &mira_host::Collection, id: &str| c.document(id).unwrap().unwrap().get("caption").cloned();
    for (i, caption) in expected.iter().enumerate() {
        let want = (!caption.is_empty()).then(|| serde_json::json!(caption));
        assert_eq!(stored(&c, &format!("p{i}")), want, "p{i}");
    }
    assert_eq!(stored(&c, "own"), Some(serde_json::json!("my own words")));
    // BM25 over the caption field finds the picture by a word of its caption.
    let (i, word) = expected
        .iter()
        .enumerate()
        .find_map(|(i, c)| c.split(' ').find(|w| !w.is_empty()).map(|w| (i, w)))
        .expect("a caption with a word");
    let found = c
        .search(&mira_host::SearchRequest::text(format!("caption:{word}")))
        .unwrap();
    assert!(
        found.hits.iter().any(|h| h.id == format!("p{i}")),
        "p{i} by caption:{word}"
    );

    // The same images again, in another collection of the same data directory: no inference.
    let again = env
        .catalog()
        .create(mira_host::CollectionSchema::from_toml(&schema(&model).replace("archive", "copy"), "test").unwrap())
        .unwrap();
    let report =
        mira_host::ingest::ingest(&again, &input, &Default::default(), &mira_host::ingest::NoProgress).unwrap();
    assert_eq!((report.embedded, report.embeddings_cached), (0, 5));
    for i in 0..5 {
        assert_eq!(stored(&again, &format!("p{i}")), stored(&c, &format!("p{i}")), "p{i}");
    }
}

#[test]
fn without_a_captioner_documents_are_indexed_with_a_warning() {
    let env = Env::new();
    let schema = schema(Path::new("unused")).replace("[models]\ncaptioner = \"unused\"\n", "");
    let c = env.create(&schema);
    crate::common::png(&env.path().join("in/a.png"), 20, 20);
    let input = env.write("in/rows.jsonl", "{\"id\": \"a\", \"photo\": \"a.png\"}\n");
    let report = mira_host::ingest::ingest(&c, &input, &Default::default(), &mira_host::ingest::NoProgress).unwrap();
    assert_eq!(report.indexed, 1);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("no caption model is configured") && w.contains("MIRA_CAPTION_MODEL")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn caption_fields_are_checked_in_the_schema() {
    for (change, expected) in [
        (
            "max_tokens = 12",
            "max_tokens = 0",
            "max_tokens must be between 1 and 128",
        ),
        (
            "type = \"text\"\nanalyzer = \"english\"\nsource",
            "type = \"keyword\"\nsource",
            "source caption applies to text fields",
        ),
        (
            "from = [\"photo\"]",
            "from = [\"title\"]",
            "caption reads an image field; `title` is not one",
        ),
    ]
    .map(|(a, b, e)| ((a, b), e))
    {
        let text = schema(Path::new("m")).replace(change.0, change.1);
        let e = mira_host::CollectionSchema::from_toml(&text, "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected), "{e}");
    }
    let text = schema(Path::new("m")).replace("max_tokens = 12", "vocabulary = [\"a\"]");
    let e = mira_host::CollectionSchema::from_toml(&text, "s.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`vocabulary` and `top` apply to source clip-tags"), "{e}");
}

/// An image-only document is read by the reranker through its caption: a caption field of any
/// name is the candidate's caption (for plugins too), rendered once as `caption: ...`.
#[test]
fn the_reranker_reads_an_image_documents_caption() {
    let env = Env::new();
    let (blip_dir, qwen_dir) = (env.path().join("blip"), env.path().join("rr"));
    write_tiny_blip(&blip_dir).unwrap();
    mira_host::rerank::fixtures::write_tiny_qwen3(&qwen_dir).unwrap();
    let schema = schema(&blip_dir)
        .replace("[fields.caption]", "[fields.seen]")
        .replace("[models]\n", &format!("[models]\nreranker = {qwen_dir:?}\n"));
    let c = env.create(&schema);
    let photos = env.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let mut rows = String::new();
    for (i, img) in pictures().iter().enumerate() {
        img.save(photos.join(format!("p{i}.png"))).unwrap();
        rows.push_str(&format!("{{\"id\": \"p{i}\", \"photo\": \"p{i}.png\"}}\n"));
    }
    let input = photos.join("rows.jsonl");
    std::fs::write(&input, rows).unwrap();
    mira_host::ingest::ingest(&c, &input, &Default::default(), &mira_host::ingest::NoProgress).unwrap();
    let captions = load(&blip_dir).caption_images(&pictures(), 12).unwrap();
    let (i, word) = captions
        .iter()
        .enumerate()
        .find_map(|(i, c)| c.split(' ').find(|w| !w.is_empty()).map(|w| (i, w)))
        .unwrap();
    let resp = c
        .search(&mira_host::SearchRequest {
            explain: true,
            ..mira_host::SearchRequest::text(format!("seen:{word}"))
        })
        .unwrap();
    let hit = resp
        .hits
        .iter()
        .find(|h| h.id == format!("p{i}"))
        .expect("found by its caption");
    let text = &hit.explain.as_ref().unwrap().rerank.as_ref().expect("reranked").text;
    assert_eq!(text, &format!("caption: {}", captions[i]), "read once, as the caption");
}

#[test]
fn cli_captions_images_and_tells_blip_apart() {
    let env = Env::new();
    let dir = env.path().join("blip");
    write_tiny_blip(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let (a, b) = (env.path().join("a.png"), env.path().join("b.png"));
    pictures()[0].save(&a).unwrap();
    pictures()[2].save(&b).unwrap();
    let out = env.mira(&[
        "model",
        "caption",
        "--model",
        d,
        "--image",
        a.to_str().unwrap(),
        "--image",
        b.to_str().unwrap(),
        "--max-tokens",
        "12",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let expected = load(&dir)
        .caption_images(&[pictures()[0].clone(), pictures()[2].clone()], 12)
        .unwrap();
    let got: Vec<&str> = v["captions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["caption"].as_str().unwrap())
        .collect();
    assert_eq!(got, expected);

    // A corrupt image is an error naming the file, not a panic.
    let bad = env.write("bad.png", "not a png");
    let out = env.mira(&["model", "caption", "--model", d, "--image", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bad.png"), "{}", stderr(&out));

    let out = env.mira(&["model", "info", d, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["end_token"].as_u64()),
        (Some("captioner"), Some(3)),
        "{v}"
    );
}

/// The shipped archive schema end to end through the CLI, models named by the environment
/// (tiny ones here): a folder of photos is indexed with CLIP vectors, tags and BLIP captions,
/// and a text query finds a photo by a word of its caption, reranked, with the caption shown.
#[test]
fn the_archive_config_indexes_a_folder_with_captions() {
    let env = Env::new();
    let (clip, reranker) = crate::common::tiny_models(&env);
    let blip = env.path().join("blip");
    write_tiny_blip(&blip).unwrap();
    let vars = [
        ("MIRA_CLIP_MODEL", clip.as_path()),
        ("MIRA_RERANKER_MODEL", reranker.as_path()),
        ("MIRA_CAPTION_MODEL", blip.as_path()),
    ];
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/archive.toml");
    let out = env.mira_with_env(&["create", schema], &vars);
    assert!(out.status.success(), "{}", stderr(&out));
    let scans = env.path().join("scans");
    std::fs::create_dir_all(&scans).unwrap();
    for (i, img) in pictures().iter().enumerate() {
        img.save(scans.join(format!("scan-{i}.png"))).unwrap();
    }
    std::fs::write(
        scans.join("metadata.jsonl"),
        "{\"file\": \"scan-0.png\", \"title\": \"Quay, winter\", \"place\": \"Whitby\", \"taken\": \"1953-01-12\"}\n",
    )
    .unwrap();
    let out = env.mira_with_env(&["index", "archive", scans.to_str().unwrap()], &vars);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    // Per photo: a vector, the tags' image embedding (cached after the first) and a caption.
    assert!(text.contains("5 indexed") || text.contains("indexed 5"), "{text}");

    let captions = load(&blip).caption_images(&pictures(), 30).unwrap();
    let (i, word) = captions
        .iter()
        .enumerate()
        .find_map(|(i, c)| c.split(' ').find(|w| !w.is_empty()).map(|w| (i, w)))
        .unwrap();
    let out = env.mira_with_env(&["search", "archive", word, "--json", "--explain"], &vars);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let id = format!("scan-{i}.png");
    let hit = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} found by `{word}`: {v}"));
    assert_eq!(hit["fields"]["caption"], captions[i].as_str(), "{hit}");
    assert_eq!(hit["fields"]["tags"].as_array().map(Vec::len), Some(3), "{hit}");
    let read = hit["explain"]["rerank"]["text"].as_str().unwrap();
    assert!(read.contains(&format!("caption: {}", captions[i])), "{read}");
}

/// A clip-text field that reads every text field reads the generated caption too, even when
/// it is declared before the caption field.
#[test]
fn a_text_embedding_reads_the_caption_whatever_the_field_order() {
    let env = Env::new();
    let (clip, _) = crate::common::tiny_models(&env);
    let blip = env.path().join("blip");
    write_tiny_blip(&blip).unwrap();
    let schema = format!(
        r#"name = "notes"
[fields.title]
type = "text"
[fields.text_emb]
type = "vector"
dim = 512
source = "clip-text"
[fields.photo]
type = "image"
[fields.caption]
type = "text"
source = "caption"
max_tokens = 12
[models]
clip = {clip:?}
captioner = {blip:?}
"#
    );
    let c = env.create(&schema);
    pictures()[0].save(env.path().join("p.png")).unwrap();
    let input = env.write(
        "rows.jsonl",
        "{\"id\": \"a\", \"title\": \"quay\", \"photo\": \"p.png\"}\n",
    );
    let report = mira_host::ingest::ingest(&c, &input, &Default::default(), &mira_host::ingest::NoProgress).unwrap();
    assert_eq!(report.indexed, 1, "{:?}", report.errors);
    let caption = load(&blip).caption_images(&pictures()[..1], 12).unwrap().remove(0);
    assert!(!caption.is_empty());
    let clip = mira_host::embed::ClipEmbedder::load(&clip, &parse_device("cpu").unwrap(), ModelDType::F32).unwrap();
    let expected = clip.embed_texts(&[&format!("quay. {caption}")]).unwrap().remove(0);
    let resp = c
        .search(&mira_host::SearchRequest {
            vector: Some(expected),
            explain: true,
            ..Default::default()
        })
        .unwrap();
    let sim = resp.hits[0].explain.as_ref().unwrap().vector.as_ref().unwrap().score;
    assert!(
        (sim - 1.0).abs() < 1e-4,
        "the stored vector embeds title and caption: {sim}"
    );
}
