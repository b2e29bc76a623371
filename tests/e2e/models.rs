//! CLIP on tiny random-weight models in the Hugging Face layout, through the same loading code
//! as real checkpoints: shapes, normalisation, batch = single, truncation, bad inputs, the CLI.

use std::path::Path;

use mira_host::embed::ClipEmbedder;
use mira_host::embed::fixtures::write_tiny_clip;
use mira_host::models::{ModelDType, parse_device};

use crate::common::{Env, png, stderr, stdout};

fn load(dir: &Path) -> ClipEmbedder {
    ClipEmbedder::load(dir, &parse_device("cpu").unwrap(), ModelDType::F32).unwrap()
}

/// A test environment with a tiny random-weight CLIP written in `clip/`.
fn env_with_tiny_clip() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let dir = env.path().join("clip");
    write_tiny_clip(&dir).unwrap();
    (env, dir)
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

#[test]
fn texts_batch_equals_single_and_outputs_are_normalised() {
    let (_env, dir) = env_with_tiny_clip();
    let clip = load(&dir);
    assert_eq!(clip.dim(), 16);
    let texts = [
        "red dress",
        "a photo of a black cat in the city at night",
        "hat",
        "unknownword silk",
    ];
    let batch = clip.embed_texts(&texts).unwrap();
    for (t, v) in texts.iter().zip(&batch) {
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{t}: norm {norm}");
        let single = clip.embed_texts(&[t]).unwrap();
        assert!(close(v, &single[0], 1e-5), "{t}: batch {v:?} vs single {:?}", single[0]);
    }
    assert!(!close(&batch[0], &batch[2], 1e-3), "different texts, different vectors");
}

/// Test models are seeded: the same shapes and seed write the same weights on every run and
/// machine (so no ranking a test reads depends on chance), another seed writes others.
#[test]
fn tiny_models_are_the_same_on_every_run() {
    use mira_host::embed::fixtures::{TinyClip, write_clip};
    use mira_host::rerank::fixtures::{TinyQwen3, write_qwen3};
    let env = Env::new();
    let weights = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    let (a, b, c) = (env.path().join("a"), env.path().join("b"), env.path().join("c"));
    write_tiny_clip(&a).unwrap();
    write_tiny_clip(&b).unwrap();
    write_clip(
        &c,
        &TinyClip {
            seed: 2,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(weights(&a) == weights(&b), "same seed, same CLIP");
    assert!(weights(&a) != weights(&c), "another seed, another CLIP");
    let (a, b, c) = (env.path().join("qa"), env.path().join("qb"), env.path().join("qc"));
    write_qwen3(&a, &TinyQwen3::default()).unwrap();
    write_qwen3(&b, &TinyQwen3::default()).unwrap();
    write_qwen3(
        &c,
        &TinyQwen3 {
            seed: 2,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(weights(&a) == weights(&b), "same seed, same reranker");
    assert!(weights(&a) != weights(&c), "another seed, another reranker");
}

/// Mira's CLIP towers (fused attention projections; on AVX-512 CPUs, weights packed for Mira's
/// own kernel) against candle-transformers' towers on the same weights: an independent forward.
/// The shape spans several of the kernel's panels and inner blocks (the patch embedding reads
/// 768 values per patch).
#[test]
fn clip_equals_an_independent_forward() {
    use candle_core::{DType, Device, IndexOp, Module, Tensor};
    use candle_transformers::models::clip::text_model::ClipTextTransformer;
    use candle_transformers::models::clip::vision_model::ClipVisionTransformer;
    use mira_host::embed::fixtures::{TinyClip, write_clip};
    use mira_host::embed::{ClipModelConfig, ImagePreprocessor, ProcessorKind};
    use mira_host::models::{ModelFiles, ModelKind};
    let env = Env::new();
    let dir = env.path().join("clip");
    let shape = TinyClip {
        hidden: 64,
        layers: 3,
        heads: 4,
        projection_dim: 24,
        image_size: 64,
        patch_size: 16,
        max_positions: 16,
        seed: 7,
    };
    write_clip(&dir, &shape).unwrap();
    let clip = load(&dir);
    let files = ModelFiles::find(&dir, ModelKind::Clip).unwrap();
    let cfg = ClipModelConfig::from_file(&files.config).unwrap();
    let vb = files.var_builder(DType::F32, &Device::Cpu).unwrap();
    let text = ClipTextTransformer::new(vb.pp("text_model"), &cfg.text).unwrap();
    let vision = ClipVisionTransformer::new(vb.pp("vision_model"), &cfg.vision).unwrap();
    let text_projection = candle_nn::linear_no_bias(64, 24, vb.pp("text_projection")).unwrap();
    let visual_projection = candle_nn::linear_no_bias(64, 24, vb.pp("visual_projection")).unwrap();
    let normalise = |v: Vec<f32>| {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
    };

    let texts = ["red silk dress", "a photo of the harbour at night", "dress"];
    let ours = clip.embed_texts(&texts).unwrap();
    for (t, mine) in texts.iter().zip(&ours) {
        let ids = clip.tokenize(t).unwrap();
        let input = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let hidden = text.forward_with_mask(&input, usize::MAX).unwrap();
        let pooled = hidden.i((0, ids.len() - 1)).unwrap().unsqueeze(0).unwrap();
        let theirs = normalise(
            text_projection
                .forward(&pooled)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap(),
        );
        assert!(close(mine, &theirs, 1e-5), "{t}: {mine:?} vs {theirs:?}");
    }

    let images: Vec<image::DynamicImage> = (0..3u32)
        .map(|i| {
            image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(70 + i * 9, 64 + i * 5, |x, y| {
                image::Rgb([(x * 3 + i * 40) as u8, (y * 5) as u8, ((x * y) % 251) as u8])
            }))
        })
        .collect();
    let ours = clip.embed_images(&images).unwrap();
    let pre = ImagePreprocessor::for_model(&files, 64, ProcessorKind::Clip).unwrap();
    let pixels = pre.batch(&images, &Device::Cpu, DType::F32).unwrap();
    let pooled = vision.forward(&pixels).unwrap();
    let theirs = visual_projection.forward(&pooled).unwrap().to_vec2::<f32>().unwrap();
    for (mine, theirs) in ours.iter().zip(theirs) {
        let theirs = normalise(theirs);
        assert!(close(mine, &theirs, 1e-5), "{mine:?} vs {theirs:?}");
    }
}

#[test]
fn long_texts_are_truncated_keeping_the_end_token() {
    let (_env, dir) = env_with_tiny_clip();
    let clip = load(&dir);
    // max_position_embeddings is 16: 14 words + start + end.
    let long = "red ".repeat(40);
    let ids = clip.tokenize(&long).unwrap();
    assert_eq!(ids.len(), 16);
    assert_eq!(*ids.last().unwrap(), 2, "the end token survives truncation");
    // Texts that differ only past the cut embed the same.
    let a = clip.embed_texts(&[&format!("{long} dress")]).unwrap();
    let b = clip.embed_texts(&[&format!("{long} shoe")]).unwrap();
    assert!(close(&a[0], &b[0], 1e-6));
}

#[test]
fn images_of_any_shape_and_mode_and_bad_files() {
    let (env, dir) = env_with_tiny_clip();
    let clip = load(&dir);
    let images = [
        image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(97, 31, |x, y| {
            image::Rgb([x as u8, y as u8, 7])
        })),
        image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(5, 300, image::Luma([200]))),
        image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(64, 64, image::Rgba([10, 200, 30, 128]))),
    ];
    let batch = clip.embed_images(&images).unwrap();
    // The GPU's overlapped passes (preprocessing one pass ahead on a thread) give the same
    // vectors, whatever the pass size.
    for pass in [1, 2, 3, 8] {
        let overlapped = clip.embed_images_overlapped(&images, pass).unwrap();
        assert_eq!(overlapped.len(), images.len());
        for (a, b) in overlapped.iter().zip(&batch) {
            assert!(close(a, b, 1e-5), "pass {pass}");
        }
    }
    for (i, img) in images.iter().enumerate() {
        let single = clip.embed_images(std::slice::from_ref(img)).unwrap();
        assert!(close(&batch[i], &single[0], 1e-5), "image {i}");
        let norm: f32 = batch[i].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
    let good = env.path().join("good.png");
    png(&good, 40, 20);
    let corrupt = env.path().join("corrupt.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR garbage").unwrap();
    let err = clip.embed_image_files(&[&good, &corrupt], 1_000_000).unwrap_err();
    assert!(err.to_string().contains("corrupt.png"), "{err}");
    let err = clip.embed_image_files(&[&good], 100).unwrap_err();
    assert!(
        err.to_string().contains("40x20 = 800 pixels, over the limit of 100"),
        "{err}"
    );
    assert_eq!(clip.embed_image_files(&[&good], 1_000_000).unwrap()[0].len(), 16);
}

#[test]
fn missing_files_are_named_with_the_way_to_get_them() {
    let (_env, dir) = env_with_tiny_clip();
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let err = ClipEmbedder::load(&dir, &parse_device("cpu").unwrap(), ModelDType::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("lacks tokenizer.json, model.safetensors"), "{err}");
    assert!(err.contains("--model"), "{err}");
    let err = parse_device("cuda:0").err().map(|e| e.to_string());
    if !cfg!(feature = "cuda") {
        assert!(err.unwrap().contains("--features cuda"));
    }
}

#[test]
fn cli_embeds_and_describes() {
    let (env, dir) = env_with_tiny_clip();
    let img = env.path().join("x.png");
    png(&img, 50, 50);
    let out = env.mira(&[
        "model",
        "embed",
        "--model",
        dir.to_str().unwrap(),
        "--text",
        "red dress",
        "--image",
        img.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["kind"], "text");
    assert_eq!(rows[1]["vector"].as_array().unwrap().len(), 16);
    let out = env.mira(&["model", "info", dir.to_str().unwrap()]);
    assert!(stdout(&out).contains("embedding_dim    16"), "{}", stdout(&out));
    let out = env.mira(&["model", "embed", "--model", env.path().to_str().unwrap(), "--text", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("lacks config.json"), "{}", stderr(&out));
}

/// A repo id is found in a Hugging Face cache (`$HF_HOME/hub`, refs/main -> snapshot); with
/// `HF_HUB_OFFLINE` a model missing from it is an error that says where it looked.
#[test]
fn models_by_repo_id_come_from_the_hub_cache() {
    let env = Env::new();
    let home = env.path().join("hf");
    let repo = home.join("hub").join("models--acme--tiny-clip");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    write_tiny_clip(&repo.join("snapshots").join(commit)).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), commit).unwrap();
    let vars = [("HF_HOME", home.as_path())];
    for spec in ["acme/tiny-clip", &format!("acme/tiny-clip@{commit}")] {
        let out = env.mira_with_env(
            &["model", "embed", "--model", spec, "--text", "red dress", "--json"],
            &vars,
        );
        assert!(out.status.success(), "{spec}: {}", stderr(&out));
        let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(rows[0]["vector"].as_array().unwrap().len(), 16);
    }
    let out = env.mira_with_env(&["model", "embed", "--model", "acme/other", "--text", "x"], &vars);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("models--acme--other") && err.contains("HF_HUB_OFFLINE"),
        "{err}"
    );
    // The default model is looked up the same way.
    let out = env.mira_with_env(&["model", "embed", "--text", "x"], &vars);
    assert!(
        stderr(&out).contains("openai/clip-vit-base-patch32"),
        "{}",
        stderr(&out)
    );
    let out = env.mira_with_env(&["model", "embed", "--model", "not a model", "--text", "x"], &vars);
    assert!(
        stderr(&out).contains("neither a directory nor a Hugging Face repo id"),
        "{}",
        stderr(&out)
    );
}

/// A collection whose vectors CLIP computes: image embeddings of the photo, text embeddings of
/// the title.
fn clip_collection(env: &Env, model: &Path) -> mira_host::Collection {
    let schema = format!(
        r#"name = "photos"
[fields.title]
type = "text"
[fields.photo]
type = "image"
[fields.image_emb]
type = "vector"
dim = 16
source = "clip-image"
[fields.text_emb]
type = "vector"
dim = 16
source = "clip-text"
from = ["title"]
[search]
vector_field = "image_emb"
[models]
clip = {model:?}
"#
    );
    env.create(&schema)
}

#[test]
fn ingest_computes_clip_vectors_and_search_is_cross_modal() {
    let (env, model) = env_with_tiny_clip();
    let c = clip_collection(&env, &model);
    let photos = env.path().join("photos");
    let colours = [
        ("red", [220, 20, 20]),
        ("green", [20, 200, 40]),
        ("blue", [30, 40, 220]),
        ("black", [5, 5, 5]),
    ];
    std::fs::create_dir_all(&photos).unwrap();
    let mut sidecar = String::new();
    for (name, rgb) in colours {
        image::RgbImage::from_fn(40, 30, |x, _| {
            image::Rgb(rgb.map(|c: u8| c.saturating_add((x % 7) as u8)))
        })
        .save(photos.join(format!("{name}.png")))
        .unwrap();
        sidecar.push_str(&format!(
            "{{\"file\": \"{name}.png\", \"title\": \"a {name} dress\"}}\n"
        ));
    }
    std::fs::write(photos.join("metadata.jsonl"), sidecar).unwrap();
    let report = mira_host::ingest::ingest(&c, &photos, &Default::default(), &mira_host::ingest::NoProgress).unwrap();
    assert_eq!(report.indexed, 4, "{:?}", report.errors);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(
        (report.embedded, report.embeddings_cached),
        (8, 0),
        "4 images and 4 titles"
    );
    // Re-indexing the same photos and titles costs no inference: the embedding cache (keyed by
    // the model's content and the input's) serves every vector, and they are the same vectors.
    // (Compared by kNN similarity: BM25 statistics change with the re-indexing's deletes.)
    let knn = || {
        let resp = c
            .search(&mira_host::SearchRequest {
                explain: true,
                ..mira_host::SearchRequest::text("red dress")
            })
            .unwrap();
        let mut v: Vec<(String, f32)> = resp
            .hits
            .iter()
            .map(|h| (h.id.clone(), h.explain.as_ref().unwrap().vector.as_ref().unwrap().score))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let before = knn();
    let again = mira_host::ingest::ingest(&c, &photos, &Default::default(), &mira_host::ingest::NoProgress).unwrap();
    assert_eq!((again.indexed, again.embedded, again.embeddings_cached), (4, 0, 8));
    assert_eq!(before, knn());
    let cache_files: Vec<_> = std::fs::read_dir(env.data().join("embedding-cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(cache_files.len(), 1, "{cache_files:?}");
    assert!(cache_files[0].ends_with(".vectors"));
    let stats = c.stats().unwrap();
    assert!(
        stats.vector_fields.iter().all(|v| v.documents_with_vector == 4),
        "{:?}",
        stats.vector_fields
    );

    // Query by image: the same photo comes back first, with cosine 1.
    let clip = load(&model);
    let req = mira_host::SearchRequest {
        image: Some(photos.join("green.png")),
        ..Default::default()
    };
    let resp = c.search(&req).unwrap();
    assert_eq!(resp.query_vector.as_deref(), Some("clip image"));
    assert_eq!(resp.hits[0].id, "green.png");
    assert!((resp.hits[0].score - 1.0).abs() < 1e-4, "{}", resp.hits[0].score);

    // A text query runs BM25 and, through CLIP's text tower, kNN over the image vectors.
    let resp = c
        .search(&mira_host::SearchRequest {
            explain: true,
            ..mira_host::SearchRequest::text("red dress")
        })
        .unwrap();
    assert_eq!(resp.retrievers, vec!["bm25", "vector"]);
    assert_eq!(resp.query_vector.as_deref(), Some("clip text"));
    let q = clip.embed_texts(&["red dress"]).unwrap().remove(0);
    let imgs = clip
        .embed_image_files(&[photos.join("blue.png").as_path()], 1 << 30)
        .unwrap()
        .remove(0);
    let blue = resp.hits.iter().find(|h| h.id == "blue.png").unwrap();
    let expected: f32 = q.iter().zip(&imgs).map(|(a, b)| a * b).sum();
    let got = blue.explain.as_ref().unwrap().vector.as_ref().unwrap().score;
    assert!(
        (got - expected).abs() < 1e-4,
        "similarity {got} vs {expected} computed with the same model"
    );
    // And the text vectors are searchable too.
    let resp = c
        .search(&mira_host::SearchRequest {
            vector_field: Some("text_emb".into()),
            image: None,
            ..mira_host::SearchRequest::text("a black dress")
        })
        .unwrap();
    assert_eq!(resp.query_vector.as_deref(), Some("clip text"));
}

/// Images are decoded together on the CPU's threads; one whose header reads well but whose
/// pixels do not fails its own row (named by file and line), and the others get the vectors
/// they get embedded one by one.
#[test]
fn a_photo_that_fails_to_decode_fails_its_row_alone() {
    let (env, model) = env_with_tiny_clip();
    let clip = load(&model);
    let c = clip_collection(&env, &model);
    let photos = env.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let mut sidecar = String::new();
    for i in 0..6u8 {
        let path = photos.join(format!("p{i}.png"));
        image::RgbImage::from_fn(40 + i as u32, 30, |x, y| image::Rgb([x as u8 * 5, y as u8 * 7, i * 40]))
            .save(&path)
            .unwrap();
        if i == 3 {
            // A valid header, then the image data cut short.
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        }
        sidecar.push_str(&format!("{{\"file\": \"p{i}.png\", \"title\": \"photo {i}\"}}\n"));
    }
    std::fs::write(photos.join("metadata.jsonl"), sidecar).unwrap();
    let opts = mira_host::ingest::IngestOptions {
        on_error: mira_host::ingest::OnError::Skip,
        ..Default::default()
    };
    let report = mira_host::ingest::ingest(&c, &photos, &opts, &mira_host::ingest::NoProgress).unwrap();
    assert_eq!(report.indexed, 5, "{:?}", report.errors);
    assert_eq!(report.errors.len(), 1);
    let err = report.errors[0].to_string();
    assert!(err.contains("p3.png") && err.contains("corrupt image"), "{err}");
    for i in [0u8, 1, 2, 4, 5] {
        let want = clip
            .embed_image_files(&[&photos.join(format!("p{i}.png"))], u64::MAX)
            .unwrap();
        let resp = c
            .search(&mira_host::SearchRequest {
                vector: Some(want[0].clone()),
                top_k: Some(1),
                explain: true,
                ..Default::default()
            })
            .unwrap();
        let hit = &resp.hits[0];
        assert_eq!(hit.fields["title"], format!("photo {i}"));
        let score = hit.explain.as_ref().unwrap().vector.as_ref().unwrap().score;
        assert!(score > 0.9999, "photo {i}: similarity {score} to its own embedding");
    }
}

#[test]
fn without_a_model_ingest_says_so_and_search_stays_bm25() {
    let env = Env::new();
    let c = clip_collection(&env, &env.path().join("no-such-model"));
    let rows = env.write("rows.jsonl", "{\"id\": \"a\", \"title\": \"red dress\"}\n");
    let err = mira_host::ingest::ingest(&c, &rows, &Default::default(), &mira_host::ingest::NoProgress).unwrap_err();
    assert!(
        err.to_string().contains("no-such-model") && err.to_string().contains("does not exist"),
        "{err}"
    );

    let schema_without_model = "name = \"bare\"\n[fields.title]\ntype = \"text\"\n[fields.photo]\ntype = \"image\"\n[fields.emb]\ntype = \"vector\"\ndim = 16\nsource = \"clip-image\"\n";
    let c = env.create(schema_without_model);
    let report = mira_host::ingest::ingest(&c, &rows, &Default::default(), &mira_host::ingest::NoProgress).unwrap();
    assert_eq!(report.indexed, 1);
    assert!(
        report.warnings[0].contains("no CLIP model is configured"),
        "{:?}",
        report.warnings
    );
    let resp = c.search(&mira_host::SearchRequest::text("red")).unwrap();
    assert_eq!(resp.retrievers, vec!["bm25"]);
    let err = c
        .search(&mira_host::SearchRequest {
            image: Some(env.path().join("x.png")),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("an image query needs a CLIP model"), "{err}");
}

/// Tags chosen by CLIP zero-shot from the collection's vocabulary are stored as text at ingest:
/// the closest "a photo of {word}" prompts to each image, BM25-searchable, and what the reranker
/// reads for an image.
/// A collection `tagged` whose `tags` field is clip-tags over `photo` (2 per image) with the
/// given source lines, and a folder of three photos: red, green and sea-blue.
fn tagged(env: &Env, model: &Path, source_lines: &str) -> (mira_host::Collection, std::path::PathBuf) {
    let schema = format!(
        r#"name = "tagged"
[fields.photo]
type = "image"
[fields.tags]
type = "text"
source = "clip-tags"
{source_lines}
top = 2
[models]
clip = {model:?}
"#
    );
    let c = env.create(&schema);
    let photos = env.path().join("photos");
    for (name, rgb) in [
        ("red", [220u8, 20, 20]),
        ("green", [20, 200, 40]),
        ("sea", [30, 40, 220]),
    ] {
        png_rgb(&photos.join(format!("{name}.png")), rgb);
    }
    (c, photos)
}

#[test]
fn clip_tags_are_chosen_zero_shot_and_searchable() {
    let (env, model) = env_with_tiny_clip();
    let vocabulary = ["red", "green", "blue", "black", "white", "dress", "cat", "harbour"];
    let (c, photos) = tagged(
        &env,
        &model,
        &format!("from = [\"photo\"]\nvocabulary = {vocabulary:?}"),
    );
    let report = mira_host::ingest::ingest(&c, &photos, &Default::default(), &mira_host::ingest::NoProgress).unwrap();
    assert_eq!(report.indexed, 3, "{:?}", report.errors);
    let clip = load(&model);
    for name in ["red", "green", "sea"] {
        let expected = expected_tags(&clip, &photos.join(format!("{name}.png")), &vocabulary, 2);
        let id = format!("{name}.png");
        let resp = c
            .search(&mira_host::SearchRequest {
                filter: Some(format!("id:\"{id}\"")),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(resp.hits[0].fields["tags"], serde_json::json!(expected), "{id}");
        // The tags are indexed text: a BM25 query on the best one finds the photo.
        let found = c
            .search(&mira_host::SearchRequest::text(format!("tags:{}", expected[0])))
            .unwrap();
        assert!(found.hits.iter().any(|h| h.id == id), "{id} by tags:{}", expected[0]);
    }
}

/// The tags CLIP would choose for a photo from `words` (the closest "a photo of {word}").
fn expected_tags(clip: &ClipEmbedder, photo: &Path, words: &[&str], top: usize) -> Vec<String> {
    let prompts: Vec<String> = words.iter().map(|w| format!("a photo of {w}")).collect();
    let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let embedded = clip.embed_texts(&refs).unwrap();
    let img = clip.embed_image_files(&[photo], 1 << 30).unwrap().remove(0);
    let mut scored: Vec<(f32, &str)> = embedded
        .iter()
        .zip(words)
        .map(|(w, word)| (w.iter().zip(&img).map(|(a, b)| a * b).sum(), *word))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored[..top].iter().map(|(_, w)| (*w).to_owned()).collect()
}

/// A clip-tags field may take its words from a plugin (`vocabulary = "plugin:swapper"`): each
/// ingest reads the live version's tag vocabulary, so shipping a new version changes the tags of
/// what is indexed next; re-indexing takes the images' embeddings from the cache.
#[test]
fn clip_tags_take_their_vocabulary_from_a_plugin() {
    use mira_host::ingest::{IngestOptions, NoProgress, ingest};
    let (env, model) = env_with_tiny_clip();
    let (c, photos) = tagged(&env, &model, "vocabulary = \"plugin:swapper\"");
    // The plugin is not loaded: refused before anything is indexed, saying why.
    let err = ingest(&c, &photos, &IngestOptions::default(), &NoProgress).unwrap_err();
    assert!(
        err.to_string().contains("plugin `swapper`, which is not loaded"),
        "{err}"
    );
    assert_eq!(c.searcher().num_docs(), 0);

    let r = crate::common::registry(Default::default(), None);
    let tags_of = |name: &str| {
        let resp = c
            .search(&mira_host::SearchRequest {
                filter: Some(format!("id:\"{name}.png\"")),
                ..Default::default()
            })
            .unwrap();
        resp.hits[0].fields["tags"].clone()
    };
    let clip = load(&model);
    let mut images_cached = Vec::new();
    for (plugin, words) in [
        (crate::common::SWAP_A_PLUGIN, &["red", "green", "cat"][..]),
        (
            crate::common::SWAP_B_PLUGIN,
            &["red", "green", "cat", "blue", "harbour"][..],
        ),
    ] {
        r.install(&std::fs::read(plugin).unwrap(), "test").unwrap();
        let opts = IngestOptions {
            vocabularies: r.tag_vocabularies(),
            ..Default::default()
        };
        assert_eq!(opts.vocabularies["swapper"], words);
        let report = ingest(&c, &photos, &opts, &NoProgress).unwrap();
        assert_eq!(report.indexed, 3, "{:?}", report.errors);
        images_cached.push(report.embeddings_cached);
        for name in ["red", "green", "sea"] {
            let want = expected_tags(&clip, &photos.join(format!("{name}.png")), words, 2);
            assert_eq!(tags_of(name), serde_json::json!(want), "{name} with {words:?}");
        }
    }
    // Re-indexing under the new vocabulary recomputed no image embedding.
    assert_eq!(images_cached, [0, 3]);

    // The CLI reads the plugins (built-in and the directory's) when a field needs one.
    let o = env.mira(&["index", "tagged", photos.to_str().unwrap()]);
    assert!(
        !o.status.success() && stderr(&o).contains("not loaded"),
        "{}",
        stderr(&o)
    );
    assert!(
        env.mira(&["plugin", "load", crate::common::SWAP_B_PLUGIN])
            .status
            .success()
    );
    let o = env.mira(&["index", "tagged", photos.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A vocabulary that is neither words nor a plugin is refused with the form it takes.
    let bad = c
        .schema()
        .source
        .replace("\"plugin:swapper\"", "\"swapper\"")
        .replace("tagged", "bad");
    let err = mira_host::CollectionSchema::from_toml(&bad, "bad.toml").unwrap_err();
    assert!(err.to_string().contains("\"plugin:NAME\""), "{err}");
}

/// A collection whose tags take their words from the `swapper` plugin, with a title, a price
/// and an image embedding beside them, and five photos with their rows in `data.jsonl`.
fn retaggable(env: &Env, model: &Path) -> (mira_host::Collection, std::path::PathBuf) {
    let schema = format!(
        r#"name = "retagged"
[fields.title]
type = "text"
[fields.price]
type = "f64"
[fields.photo]
type = "image"
[fields.emb]
type = "vector"
dim = 16
source = "clip-image"
[fields.text_emb]
type = "vector"
dim = 16
source = "clip-text"
from = ["title", "tags"]
[fields.tags]
type = "text"
source = "clip-tags"
from = ["photo"]
vocabulary = "plugin:swapper"
top = 2
[search]
vector_field = "emb"
[models]
clip = {model:?}
"#
    );
    let c = env.create(&schema);
    let dir = env.path().join("retag-input");
    let mut rows = String::new();
    for (i, (name, rgb)) in [
        ("red", [220u8, 20, 20]),
        ("green", [20, 200, 40]),
        ("sea", [30, 40, 220]),
        ("night", [10, 10, 30]),
        ("snow", [240, 240, 235]),
    ]
    .into_iter()
    .enumerate()
    {
        png_rgb(&dir.join(format!("{name}.png")), rgb);
        rows.push_str(
            &serde_json::json!({"id": name, "title": format!("photo of {name}"), "price": i as f64 + 0.5, "photo": format!("{name}.png")})
                .to_string(),
        );
        rows.push('\n');
    }
    std::fs::write(dir.join("data.jsonl"), rows).unwrap();
    (c, dir)
}

/// When a plugin's tag vocabulary changes, the documents already indexed get their tags chosen
/// again from the new words: image embeddings and known words from the embedding cache, only
/// the documents whose tags changed rewritten, everything else about them (stored fields,
/// vectors) as it was; a field already tagged with the plugin's words is left alone; a
/// document whose image cannot be read keeps its old tags and is tried again next time.
#[test]
fn indexed_documents_are_retagged_when_their_plugins_words_change() {
    use mira_host::ingest::{IngestOptions, NoProgress, RetagOptions, TagRecord, ingest, retag};
    let (env, model) = env_with_tiny_clip();
    let (c, dir) = retaggable(&env, &model);
    let clip = load(&model);
    let names = ["red", "green", "sea", "night", "snow"];
    let a: &[&str] = &["red", "green", "cat"];
    let b: &[&str] = &["red", "green", "cat", "blue", "harbour"];
    let expected = |name: &str, words: &[&str]| expected_tags(&clip, &dir.join(format!("{name}.png")), words, 2);
    let doc = |name: &str| c.document(name).unwrap().unwrap();
    let r = crate::common::registry(Default::default(), None);
    let opts = |r: &mira_host::plugin::PluginRegistry| RetagOptions {
        vocabularies: r.tag_vocabularies(),
        ..Default::default()
    };

    r.install(&std::fs::read(crate::common::SWAP_A_PLUGIN).unwrap(), "test")
        .unwrap();
    let ingest_opts = IngestOptions {
        vocabularies: r.tag_vocabularies(),
        ..Default::default()
    };
    let report = ingest(&c, &dir.join("data.jsonl"), &ingest_opts, &NoProgress).unwrap();
    assert_eq!(report.indexed, 5, "{:?}", report.errors);
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(TagRecord::read(c.dir()).is_current("tags", "swapper", &words(a)));
    // Tagged with the plugin's words already: nothing to do.
    let same = retag(&c, &opts(&r), &NoProgress).unwrap();
    assert!(same.fields.is_empty() && same.checked == 0, "{same:?}");
    assert_eq!(same.up_to_date, ["tags"]);

    let before: Vec<_> = names.iter().map(|n| doc(n)).collect();
    let query = clip
        .embed_image_files(&[&dir.join("red.png")], 1 << 30)
        .unwrap()
        .remove(0);
    let knn = || {
        let resp = c
            .search(&mira_host::SearchRequest {
                vector: Some(query.clone()),
                top_k: Some(5),
                ..Default::default()
            })
            .unwrap();
        resp.hits.iter().map(|h| (h.id.clone(), h.score)).collect::<Vec<_>>()
    };
    let knn_before = knn();
    assert_eq!(knn_before.len(), 5);

    // Version B adds two words: every document is checked, those whose tags change rewritten.
    r.install(&std::fs::read(crate::common::SWAP_B_PLUGIN).unwrap(), "test")
        .unwrap();
    let report = retag(&c, &opts(&r), &NoProgress).unwrap();
    let differ = |name: &str| expected(name, a) != expected(name, b);
    let changed = names.iter().filter(|n| differ(n)).count() as u64;
    // (Documents whose tags stay are not rewritten: the last re-tag below finds 5 such.)
    assert!(changed > 0, "some tags change");
    assert_eq!(report.fields.len(), 1, "{report:?}");
    let f = &report.fields[0];
    assert_eq!(
        (f.field.as_str(), f.plugin.as_str(), f.words, f.added, f.removed),
        ("tags", "swapper", 5, 2, 0)
    );
    assert_eq!(
        (report.checked, report.changed, report.failed),
        (5, changed, 0),
        "{report:?}"
    );
    // Through the cache: no image embedded again, only the two new words.
    assert_eq!((report.images_embedded, report.images_cached), (0, 5));
    assert_eq!((report.words_embedded, report.words_cached), (2, 3));
    for (name, was) in names.iter().zip(&before) {
        let now = doc(name);
        assert_eq!(now["tags"], serde_json::json!(expected(name, b)), "{name}");
        for field in ["title", "price", "photo"] {
            assert_eq!(now[field], was[field], "{name}: {field} kept");
        }
    }
    // The image vectors are the ones indexed (same neighbours, same scores); the text
    // embedding, which reads the tags, is the one of the new text.
    assert_eq!(knn(), knn_before);
    for name in names {
        let text = format!("photo of {name}. {}", expected(name, b).join(". "));
        let want = clip.embed_texts(&[text.as_str()]).unwrap().remove(0);
        let resp = c
            .search(&mira_host::SearchRequest {
                vector: Some(want),
                vector_field: Some("text_emb".into()),
                filter: Some(format!("id:{name}")),
                top_k: Some(1),
                explain: true,
                ..Default::default()
            })
            .unwrap();
        let hit = &resp.hits[0];
        let similarity = hit.explain.as_ref().and_then(|e| e.vector.as_ref()).unwrap().score;
        assert_eq!(hit.id, name, "{resp:?}");
        assert!(
            (similarity - 1.0).abs() < 1e-4,
            "{name}: text embedding similarity {similarity}"
        );
    }
    // The new tags are searchable text.
    let best = &expected("sea", b)[0];
    let found = c
        .search(&mira_host::SearchRequest::text(format!("tags:{best}")))
        .unwrap();
    assert!(found.hits.iter().any(|h| h.id == "sea"), "sea by tags:{best}");
    assert_eq!(c.searcher().num_docs(), 5);
    assert!(TagRecord::read(c.dir()).is_current("tags", "swapper", &words(b)));
    let again = retag(&c, &opts(&r), &NoProgress).unwrap();
    assert!(again.fields.is_empty(), "{again:?}");

    // Back to A, with one photo gone: that document keeps its tags, the others move on, and
    // the record stays behind so the next re-tag checks them all again.
    r.rollback("swapper").unwrap();
    let green = dir.join("green.png");
    let kept = std::fs::read(&green).unwrap();
    std::fs::remove_file(&green).unwrap();
    let report = retag(&c, &opts(&r), &NoProgress).unwrap();
    assert_eq!((report.checked, report.failed), (5, 1), "{report:?}");
    assert_eq!(report.errors[0].id.as_deref(), Some("green"));
    assert!(
        report.errors[0].message.contains("cannot open image"),
        "{:?}",
        report.errors
    );
    std::fs::write(&green, kept).unwrap();
    assert_eq!(doc("green")["tags"], serde_json::json!(expected("green", b)));
    for name in ["red", "sea", "night", "snow"] {
        assert_eq!(doc(name)["tags"], serde_json::json!(expected(name, a)), "{name}");
    }
    // The record vouches for neither vocabulary now: rolling forward to B again (the words it
    // last vouched for) is a full pass too, and so is coming back to A.
    let record = TagRecord::read(c.dir());
    assert!(!record.is_current("tags", "swapper", &words(a)) && !record.is_current("tags", "swapper", &words(b)));
    r.rollback("swapper").unwrap();
    let report = retag(&c, &opts(&r), &NoProgress).unwrap();
    let back = ["red", "sea", "night", "snow"].iter().filter(|n| differ(n)).count() as u64;
    assert_eq!(
        (report.checked, report.changed, report.failed),
        (5, back, 0),
        "{report:?}"
    );
    for name in names {
        assert_eq!(doc(name)["tags"], serde_json::json!(expected(name, b)), "{name}");
    }
    r.rollback("swapper").unwrap();
    let report = retag(&c, &opts(&r), &NoProgress).unwrap();
    assert_eq!(
        (report.checked, report.changed, report.failed),
        (5, changed, 0),
        "{report:?}"
    );
    assert_eq!(doc("green")["tags"], serde_json::json!(expected("green", a)));

    // An ingest under other words into a collection with documents does not vouch for them:
    // the record drops A before the ingest commits, and the re-tag finds the re-indexed
    // documents already right.
    r.install(&std::fs::read(crate::common::SWAP_B_PLUGIN).unwrap(), "test")
        .unwrap();
    let ingest_opts = IngestOptions {
        vocabularies: r.tag_vocabularies(),
        ..Default::default()
    };
    ingest(&c, &dir.join("data.jsonl"), &ingest_opts, &NoProgress).unwrap();
    let record = TagRecord::read(c.dir());
    assert!(record.fields.is_empty(), "{record:?}");
    let report = retag(&c, &opts(&r), &NoProgress).unwrap();
    assert_eq!((report.checked, report.changed), (5, 0), "{report:?}");
    assert!(TagRecord::read(c.dir()).is_current("tags", "swapper", &words(b)));

    // The plugin unloaded: refused, saying which.
    r.unload("swapper").unwrap();
    let err = retag(&c, &opts(&r), &NoProgress).unwrap_err();
    assert!(
        err.to_string().contains("plugin `swapper`, which is not loaded"),
        "{err}"
    );
}

/// A re-tag rewrites documents from what the index stores: a collection with a field it does
/// not store is refused before any work, naming the field; one with no plugin-vocabulary tag
/// field has nothing to re-tag. `mira retag` runs it from the CLI.
#[test]
fn retag_refuses_what_it_cannot_rewrite_and_runs_from_the_cli() {
    use mira_host::ingest::{NoProgress, RetagOptions, retag};
    let (env, model) = env_with_tiny_clip();
    let (c, dir) = retaggable(&env, &model);
    let r = crate::common::registry(Default::default(), None);
    r.install(&std::fs::read(crate::common::SWAP_A_PLUGIN).unwrap(), "test")
        .unwrap();
    let opts = RetagOptions {
        vocabularies: r.tag_vocabularies(),
        ..Default::default()
    };
    let unstored = c
        .schema()
        .source
        .replace("name = \"retagged\"", "name = \"unstored\"")
        .replace("type = \"f64\"", "type = \"f64\"\nstored = false");
    let u = env.create(&unstored);
    let err = retag(&u, &opts, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("`price` is not stored"), "{err}");
    let plain = clip_collection(&env, &model);
    let err = retag(&plain, &opts, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("nothing to re-tag"), "{err}");

    // The CLI reads the plugin directory's versions.
    assert!(
        env.mira(&["plugin", "load", crate::common::SWAP_A_PLUGIN])
            .status
            .success()
    );
    let o = env.mira(&["index", "retagged", dir.join("data.jsonl").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.mira(&["retag", "retagged"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("field `tags`: up to date"), "{}", stdout(&o));
    assert!(
        env.mira(&["plugin", "load", crate::common::SWAP_B_PLUGIN])
            .status
            .success()
    );
    let o = env.mira(&["retag", "retagged", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["checked"], 5, "{report}");
    assert_eq!(report["images_embedded"], 0, "{report}");
    assert_eq!(report["fields"][0]["added"], 2, "{report}");
    let o = env.mira(&["retag", "nope"]);
    assert!(
        !o.status.success() && stderr(&o).contains("does not exist"),
        "{}",
        stderr(&o)
    );
}

fn png_rgb(path: &Path, rgb: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(36, 28, |x, y| {
        image::Rgb(rgb.map(|c| c.saturating_add(((x + y) % 9) as u8)))
    })
    .save(path)
    .unwrap();
}
