//! Several vectors per document: kNN scores a document by its closest vector (max-sim), for the
//! exact scan and the graph alike, against a brute-force reference; image lists embed every
//! image, say which one matched, caption and tag each, and serve each image.

use std::collections::HashMap;

use mira_host::ingest::{self, IngestOptions, NoProgress};
use mira_host::plugin::PluginLimits;
use mira_host::{Collection, SearchRequest};
use mira_server::ServerSettings;
use serde_json::{Value, json};

use crate::common::{Env, tiny_models};
use crate::server::{Server, answer, call};

const DIM: usize = 8;

fn schema(index: &str) -> String {
    format!(
        r#"
name = "multi"
[fields.body]
type = "text"
[fields.emb]
type = "vector"
dim = {DIM}
metric = "dot"
index = "{index}"
{}
"#,
        if index == "hnsw" {
            "exact_below = 16\nef_search = 96"
        } else {
            ""
        }
    )
}

/// Documents with 1 to 4 vectors each, in three segments, some deleted.
fn load(env: &Env, c: &Collection, n: usize) -> HashMap<String, Vec<Vec<f32>>> {
    let mut rng = fastrand::Rng::with_seed(11);
    let mut docs = HashMap::new();
    let rows: Vec<(String, Vec<Vec<f32>>)> = (0..n)
        .map(|i| {
            let count = 1 + rng.usize(..4);
            let vs: Vec<Vec<f32>> = (0..count)
                .map(|_| (0..DIM).map(|_| rng.f32() - 0.5).collect())
                .collect();
            (format!("d{i}"), vs)
        })
        .collect();
    for (part, chunk) in rows.chunks(n.div_ceil(3)).enumerate() {
        let text: String = chunk
            .iter()
            .map(|(id, vs)| {
                // A single vector is given plainly, several as a list: both forms are taken.
                let emb = if vs.len() == 1 { json!(vs[0]) } else { json!(vs) };
                format!("{}\n", json!({"id": id, "body": "x", "emb": emb}))
            })
            .collect();
        let path = env.write(&format!("part{part}.jsonl"), &text);
        ingest::ingest(c, &path, &IngestOptions::default(), &NoProgress).unwrap();
    }
    let mut w = c.writer().unwrap();
    let gone: Vec<String> = (0..n).step_by(13).map(|i| format!("d{i}")).collect();
    w.delete_ids(&gone).unwrap();
    w.commit().unwrap();
    drop(w);
    for (id, vs) in rows {
        if !gone.contains(&id) {
            docs.insert(id, vs);
        }
    }
    docs
}

/// The brute-force max-sim top k: (id, score, position of the closest vector).
fn reference(docs: &HashMap<String, Vec<Vec<f32>>>, q: &[f32], k: usize) -> Vec<(String, f32, usize)> {
    let dot = |v: &[f32]| v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>();
    let mut all: Vec<(String, f32, usize)> = docs
        .iter()
        .map(|(id, vs)| {
            let (pos, best) = vs
                .iter()
                .map(|v| dot(v))
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |acc, (i, s)| if s > acc.1 { (i, s) } else { acc },
                );
            (id.clone(), best, pos)
        })
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

fn query(rng: &mut fastrand::Rng) -> Vec<f32> {
    (0..DIM).map(|_| rng.f32() - 0.5).collect()
}

#[test]
fn the_exact_scan_scores_a_document_by_its_closest_vector() {
    let env = Env::new();
    let c = env.create(&schema("flat"));
    let docs = load(&env, &c, 300);
    let mut rng = fastrand::Rng::with_seed(3);
    for _ in 0..10 {
        let q = query(&mut rng);
        let mut req = SearchRequest::vector(q.clone());
        req.top_k = Some(10);
        let r = c.search(&req).unwrap();
        let want = reference(&docs, &q, 10);
        let got: Vec<(String, usize)> = r
            .hits
            .iter()
            .map(|h| (h.id.clone(), h.matched.as_ref().unwrap().position))
            .collect();
        let expect: Vec<(String, usize)> = want.iter().map(|(id, _, p)| (id.clone(), *p)).collect();
        assert_eq!(got, expect, "ids and which vector matched");
        for (h, (_, s, _)) in r.hits.iter().zip(&want) {
            assert!((h.score - s).abs() < 1e-5);
        }
    }
    let scanned: usize = c
        .search(&SearchRequest::vector(query(&mut rng)))
        .unwrap()
        .vector_search
        .unwrap()
        .segments
        .iter()
        .map(|s| s.scored)
        .sum();
    let vectors: usize = docs.values().map(Vec::len).sum();
    assert!(scanned >= vectors, "every vector is scored: {scanned} of {vectors}");
}

#[test]
fn the_graph_walks_every_vector_and_returns_each_document_once() {
    let env = Env::new();
    let c = env.create(&schema("hnsw"));
    let docs = load(&env, &c, 900);
    c.wait_for_vector_indexes(&mut |_| {}).unwrap();
    let mut rng = fastrand::Rng::with_seed(5);
    let (mut found, mut total) = (0, 0);
    for _ in 0..30 {
        let q = query(&mut rng);
        let mut req = SearchRequest::vector(q.clone());
        req.top_k = Some(10);
        let r = c.search(&req).unwrap();
        let report = r.vector_search.as_ref().unwrap();
        // Segments too small (or too deleted) for a walk are scanned, as for single vectors, and
        // so is one where the walk would visit more nodes than a scan scores; how the writer
        // threads cut segments varies, so only those rules are checked.
        let by_rule = |s: &&mira_host::vector::SegmentKnn| {
            s.index == "hnsw"
                || matches!(
                    s.reason,
                    Some(
                        "below exact_below"
                            | "mostly deleted"
                            | "k covers the segment"
                            | "graph walk gave way to the scan"
                    )
                )
        };
        assert!(report.segments.iter().all(|s| by_rule(&s)), "{report:?}");
        assert!(report.segments.iter().any(|s| s.index == "hnsw"), "{report:?}");
        let want = reference(&docs, &q, 10);
        let ids: Vec<&str> = r.hits.iter().map(|h| h.id.as_str()).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            ids.len(),
            "a document once, however many of its vectors are near"
        );
        found += want.iter().filter(|(id, _, _)| ids.contains(&id.as_str())).count();
        total += want.len();
        for h in &r.hits {
            // The score is that of the vector the hit names, exactly.
            let v = &docs[&h.id][h.matched.as_ref().unwrap().position];
            let s: f32 = v.iter().zip(&q).map(|(a, b)| a * b).sum();
            assert!((h.score - s).abs() < 1e-4, "{} {} {s}", h.id, h.score);
        }
    }
    let recall = found as f64 / total as f64;
    assert!(recall >= 0.9, "max-sim recall@10 {recall}");
    // The exact scan of the same collection agrees with the reference.
    let q = query(&mut rng);
    let mut req = SearchRequest::vector(q.clone());
    req.exact = true;
    let r = c.search(&req).unwrap();
    let want: Vec<String> = reference(&docs, &q, 10).into_iter().map(|x| x.0).collect();
    assert_eq!(crate::common::ids(&r), want);
}

#[test]
fn bad_vector_lists_are_refused_naming_the_vector() {
    let env = Env::new();
    let c = env.create(&schema("flat"));
    let bad = env.write(
        "bad.jsonl",
        &format!(
            "{}\n",
            json!({"id": "x", "emb": [vec![0.1f32; DIM], vec![0.1f32, 0.2]]})
        ),
    );
    let opts = IngestOptions {
        on_error: mira_host::ingest::OnError::Skip,
        ..Default::default()
    };
    let report = ingest::ingest(&c, &bad, &opts, &NoProgress).unwrap();
    assert_eq!(report.indexed, 0);
    let e = report.errors[0].to_string();
    assert!(e.contains("vector 1") && e.contains("expected 8 elements"), "{e}");
    let many: Vec<Vec<f32>> = (0..257).map(|_| vec![0.1; DIM]).collect();
    let bad = env.write("many.jsonl", &format!("{}\n", json!({"id": "y", "emb": many})));
    let report = ingest::ingest(&c, &bad, &opts, &NoProgress).unwrap();
    assert!(
        report.errors[0].to_string().contains("at most 256"),
        "{:?}",
        report.errors
    );
}

/// A picture that differs from the others in colour and layout.
fn picture(path: &std::path::Path, i: u32) {
    image::RgbImage::from_fn(48, 40, |x, y| {
        image::Rgb([
            ((x * (i + 1) * 23) % 256) as u8,
            ((y * 37 + i * 71) % 256) as u8,
            ((x * y + i * 13) % 256) as u8,
        ])
    })
    .save(path)
    .unwrap();
}

#[test]
fn image_lists_embed_caption_and_tag_every_image_and_say_which_matched() {
    let env = Env::new();
    let (clip, reranker) = tiny_models(&env);
    let blip = env.path().join("blip");
    mira_host::caption::fixtures::write_tiny_blip(&blip).unwrap();
    let schema = format!(
        r#"
name = "album"
[fields.title]
type = "text"
[fields.photos]
type = "image"
[fields.photo_emb]
type = "vector"
dim = 512
source = "clip-image"
from = ["photos"]
[fields.caption]
type = "text"
source = "caption"
from = ["photos"]
max_tokens = 8
[fields.tags]
type = "text"
source = "clip-tags"
from = ["photos"]
vocabulary = ["boat", "car", "tree", "house", "dog"]
top = 1
[search]
text_fields = ["title", "caption", "tags"]
vector_field = "photo_emb"
[models]
clip = {:?}
captioner = {:?}
reranker = {:?}
"#,
        clip.to_str().unwrap(),
        blip.to_str().unwrap(),
        reranker.to_str().unwrap()
    );
    let c = env.create(&schema);
    let dir = env.path().join("photos");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..6 {
        picture(&dir.join(format!("p{i}.png")), i);
    }
    let rows = [
        json!({"id": "a", "title": "first album", "photos": ["p0.png", "p1.png", "p2.png"]}),
        json!({"id": "b", "title": "second album", "photos": "p3.png"}),
        json!({"id": "c", "title": "third album", "photos": ["p4.png", "p5.png"]}),
    ];
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    let path = env.write("photos/rows.jsonl", &text);
    let report = ingest::ingest(&c, &path, &IngestOptions::default(), &NoProgress).unwrap();
    assert_eq!(report.indexed, 3, "{:?}", report.errors);

    for (photo, id, position) in [
        ("p1.png", "a", 1),
        ("p5.png", "c", 1),
        ("p0.png", "a", 0),
        ("p3.png", "b", 0),
    ] {
        let req = SearchRequest {
            image: Some(dir.join(photo)),
            rerank_window: Some(0),
            ..Default::default()
        };
        let r = c.search(&req).unwrap();
        let top = &r.hits[0];
        assert_eq!(top.id, id, "{photo}");
        let m = top.matched.as_ref().unwrap();
        assert_eq!(
            (m.position, m.image_field.as_deref()),
            (position, Some("photos")),
            "{photo}"
        );
        assert!(top.score > 0.999, "the same picture: {}", top.score);
    }
    // Every image captioned; the reranker reads every caption.
    let mut req = SearchRequest::text("album");
    req.explain = true;
    req.filter = Some("id:a".into());
    let r = c.search(&req).unwrap();
    let a = &r.hits[0];
    assert_eq!(a.fields["photos"].as_array().unwrap().len(), 3);
    assert_eq!(a.fields["caption"].as_array().map(Vec::len), Some(3), "{:?}", a.fields);
    assert!(a.fields.contains_key("tags"));
    let read = &a.explain.as_ref().unwrap().rerank.as_ref().unwrap().text;
    assert!(
        read.contains("caption 1: ") && read.contains("caption 3: ") && read.contains("tags: "),
        "{read}"
    );

    // Over HTTP: the hit names the matching image's route, which serves that image.
    drop(c);
    let s = Server::start(&env, ServerSettings::default(), PluginLimits::default());
    let b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.join("p2.png")).unwrap())
    };
    let (status, v) = call(
        "POST",
        &s.url("/v1/collections/album/search"),
        None,
        Some(json!({"image_base64": b64, "rerank_window": 0})),
    );
    assert_eq!(status, 200, "{v}");
    let hit = &v["hits"][0];
    assert_eq!(hit["id"], "a");
    let route = hit["matched"]["image"].as_str().unwrap();
    assert!(route.ends_with("field=photos&index=2"), "{route}");
    let photos: Vec<&str> = hit["fields"]["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(photos[2], route);
    let r = ureq::get(&s.url(route)).call();
    let (status, _, _) = answer(ureq::get(&s.url(route)).call());
    assert_eq!(status, 200);
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut r.unwrap().into_reader(), &mut bytes).unwrap();
    assert_eq!(bytes, std::fs::read(dir.join("p2.png")).unwrap());
    let (status, v) = call(
        "GET",
        &s.url("/v1/collections/album/documents/a/image?field=photos&index=3"),
        None,
        None,
    );
    assert_eq!(status, 404, "{v}");
    let _: Value = v;
}
