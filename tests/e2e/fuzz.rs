//! Bounded, seeded fuzzing of what a client controls: text queries and filters, schema TOML,
//! image bytes, JSON bodies sent to a live server, and what a plugin answers. Each input must either work or get a
//! clear error; a panic fails the test, and an abort (a stack overflow) kills the test binary.
//!
//! `MIRA_FUZZ_ROUNDS` scales every loop (default 1; a longer run: `MIRA_FUZZ_ROUNDS=50 cargo
//! test --workspace --test e2e fuzz`), `MIRA_FUZZ_SEED` changes the seed; a failure prints the
//! input that caused it.

use mira_host::plugin::{PluginFailure, PluginLimits};
use mira_host::{CollectionSchema, SearchRequest};
use mira_server::ServerSettings;
use serde_json::{Value, json};

use crate::common::*;
use crate::server::{Server, call, png_bytes};

fn rounds(base: usize) -> usize {
    let scale = std::env::var("MIRA_FUZZ_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1usize);
    base * scale.max(1)
}

fn rng(salt: u64) -> fastrand::Rng {
    let seed = std::env::var("MIRA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261201u64);
    fastrand::Rng::with_seed(seed ^ salt)
}

/// Pieces of tantivy's query syntax and of the collection's field names and values.
const QUERY_PIECES: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "\"",
    ":",
    "^",
    "~",
    "*",
    "+",
    "-",
    "\\",
    " ",
    " AND ",
    " OR ",
    " NOT ",
    " TO ",
    "title",
    "body",
    "group",
    "n",
    "emb",
    "nope",
    "apple",
    "banana",
    "1",
    "2.5",
    "-3",
    ">=",
    "<",
    "2024-01-01T00:00:00Z",
    "/a/b",
    "红色",
    "é",
    "\u{0}",
    "IN",
    "''",
    "?",
    "!",
    "&&",
    "||",
];

fn query(rng: &mut fastrand::Rng) -> String {
    let n = rng.usize(0..40);
    let mut s: String = (0..n).map(|_| QUERY_PIECES[rng.usize(..QUERY_PIECES.len())]).collect();
    if rng.u8(..8) == 0 {
        // Deep nesting, under and over the limit.
        let depth = rng.usize(1..200);
        s = format!("{}{s}{}", "(".repeat(depth), ")".repeat(rng.usize(0..=depth)));
    }
    s
}

const PLAIN: &str = "name = \"plain\"\n[fields.body]\ntype = \"text\"\n[fields.title]\ntype = \"text\"\n\
    [fields.group]\ntype = \"keyword\"\n[fields.n]\ntype = \"i64\"\n[fields.emb]\ntype = \"vector\"\ndim = 2\n";

#[test]
fn text_queries_and_filters_never_panic() {
    let env = Env::new();
    let c = env.create(PLAIN);
    let rows = "{\"id\": \"1\", \"body\": \"apple banana\", \"title\": \"red\", \"group\": \"a\", \"n\": 1, \"emb\": [1, 0]}\n\
                {\"id\": \"2\", \"body\": \"banana\", \"title\": \"blue\", \"group\": \"b\", \"n\": 2, \"emb\": [0, 1]}\n";
    let path = env.write("rows.jsonl", rows);
    mira_host::ingest::ingest(&c, &path, &Default::default(), &mira_host::ingest::NoProgress).unwrap();
    let mut rng = rng(1);
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..rounds(1500) {
        let (text, filter) = (query(&mut rng), query(&mut rng));
        let req = match rng.u8(..3) {
            0 => SearchRequest::text(text.clone()),
            1 => SearchRequest {
                filter: Some(filter.clone()),
                ..SearchRequest::text(text.clone())
            },
            _ => SearchRequest {
                filter: Some(filter.clone()),
                ..SearchRequest::vector(vec![1.0, 0.0])
            },
        };
        match c.search(&req) {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(
                    e.fault(),
                    mira_host::Fault::User,
                    "text {text:?} filter {filter:?}: {e}"
                );
                assert!(!e.to_string().is_empty());
                refused += 1;
            }
        }
    }
    assert!(
        ok > 0 && refused > 0,
        "{ok} ran, {refused} refused: the generator is not covering both"
    );
}

/// A valid schema with one random mutation per round: lines dropped, doubled or cut, values
/// replaced by tokens of other types, junk appended.
#[test]
fn schema_toml_never_panics() {
    let base = "name = \"fuzz\"\n[fields.body]\ntype = \"text\"\nanalyzer = \"english\"\nboost = 2.0\n\
        [fields.group]\ntype = \"keyword\"\n[fields.n]\ntype = \"i64\"\n[fields.photo]\ntype = \"image\"\n\
        [fields.clip]\ntype = \"vector\"\ndim = 8\nsource = \"clip-image\"\nfrom = [\"photo\"]\n\
        [fields.tags]\ntype = \"keyword\"\nsource = \"clip-tags\"\nvocabulary = [\"a\", \"b\"]\ntop = 1\n\
        [search]\ntop_k = 5\nfusion = \"linear\"\nnormalization = \"zscore\"\n[ingest]\nbatch_size = 10\n\
        [models]\nclip = \"/nowhere\"\n";
    CollectionSchema::from_toml(base, "base.toml").expect("the base schema is valid");
    const TOKENS: &[&str] = &[
        "0",
        "-1",
        "1e400",
        "\"\"",
        "\"x\"",
        "[]",
        "[[]]",
        "{}",
        "true",
        "nan",
        "inf",
        "18446744073709551616",
        "\"vector\"",
        "\"text\"",
        "\"image\"",
        "[\"photo\", \"photo\"]",
        "=",
        "[fields]",
        "[[fields.x]]",
        "\"\u{0}\"",
    ];
    let mut rng = rng(2);
    for _ in 0..rounds(1500) {
        let mut lines: Vec<String> = base.lines().map(str::to_owned).collect();
        for _ in 0..rng.usize(1..4) {
            let i = rng.usize(..lines.len());
            match rng.u8(..5) {
                0 => {
                    lines.remove(i);
                }
                1 => lines.insert(i, lines[i].clone()),
                2 => {
                    let cut = rng.usize(..=lines[i].len());
                    let cut = (0..=cut).rev().find(|c| lines[i].is_char_boundary(*c)).unwrap_or(0);
                    lines[i].truncate(cut);
                }
                3 => {
                    if let Some((key, _)) = lines[i].split_once(" = ") {
                        lines[i] = format!("{key} = {}", TOKENS[rng.usize(..TOKENS.len())]);
                    }
                }
                _ => lines.insert(i, TOKENS[rng.usize(..TOKENS.len())].to_owned()),
            }
        }
        let text = lines.join("\n");
        if let Err(e) = CollectionSchema::from_toml(&text, "fuzz.toml") {
            assert!(e.to_string().contains("fuzz.toml"), "errors name the file: {e}\n{text}");
        }
    }
    // Deep nesting in TOML is refused, not a stack overflow.
    let deep = format!("name = \"x\"\nv = {}{}", "[".repeat(5000), "]".repeat(5000));
    assert!(CollectionSchema::from_toml(&deep, "deep.toml").is_err());
}

/// Truncated, corrupted and oversized images of every supported format, and formats Mira does
/// not take: decoded or refused with a message, never a panic.
#[test]
fn image_bytes_never_panic() {
    let png = png_bytes(37, 23);
    let jpeg = {
        let img = image::RgbImage::from_fn(37, 23, |x, y| image::Rgb([(x * 7) as u8, (y * 11) as u8, 3]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    };
    for (name, bytes) in [("png", &png), ("jpeg", &jpeg)] {
        mira_host::image_file::decode_bytes(bytes, name, 1 << 20).expect("the base image decodes");
        // Every truncation.
        for len in 0..bytes.len() {
            let _ = mira_host::image_file::decode_bytes(&bytes[..len], name, 1 << 20);
        }
    }
    let mut rng = rng(3);
    for _ in 0..rounds(600) {
        let mut bytes = if rng.bool() { png.clone() } else { jpeg.clone() };
        for _ in 0..rng.usize(1..8) {
            let i = rng.usize(..bytes.len());
            bytes[i] = rng.u8(..);
        }
        if let Err(m) = mira_host::image_file::decode_bytes(&bytes, "fuzzed", 1 << 20) {
            assert!(!m.is_empty());
        }
    }
    // Headers that claim huge images are refused before decoding; other formats are named.
    let mut huge = png.clone();
    huge[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
    huge[20..24].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(mira_host::image_file::decode_bytes(&huge, "huge", 1 << 20).is_err());
    for other in [
        &b"GIF89a\x01\x00\x01\x00"[..],
        b"BM\x00\x00\x00\x00",
        b"RIFF\x00\x00\x00\x00WEBPVP8 ",
        b"",
        b"\xff\xd8",
    ] {
        assert!(mira_host::image_file::decode_bytes(other, "other", 1 << 20).is_err());
    }
}

/// JSON bodies with random mutations (types flipped, keys dropped or invented, values nested
/// deep) sent to a live server: every answer is a 2xx or a 4xx with the error body.
#[test]
fn json_bodies_never_get_a_server_error() {
    let env = Env::new();
    let s = Server::start(&env, ServerSettings::default(), PluginLimits::default());
    let schema = "name = \"shop\"\n[fields.title]\ntype = \"text\"\n[fields.price]\ntype = \"f64\"\n[fields.emb]\ntype = \"vector\"\ndim = 3\n";
    assert_eq!(
        call("POST", &s.url("/v1/collections"), None, Some(json!({"schema": schema}))).0,
        201
    );
    let docs = json!([{"id": "a", "title": "red dress", "price": 4.0, "emb": [1.0, 0.0, 0.0]}]);
    assert_eq!(
        call("POST", &s.url("/v1/collections/shop/documents"), None, Some(docs)).0,
        200
    );
    let bases: Vec<(&str, &str, Value)> = vec![
        (
            "POST",
            "/v1/collections/shop/search",
            json!({"text": "dress", "filter": "price:[0 TO 9]", "vector": [1.0, 0.0, 0.0], "top_k": 3, "explain": true, "fusion": "linear", "params": {"a": "b"}}),
        ),
        (
            "POST",
            "/v1/collections/shop/illustrate",
            json!({"article": "A red dress.\n\nAnother paragraph.", "per_paragraph": 2}),
        ),
        (
            "POST",
            "/v1/collections/shop/documents",
            json!({"documents": [{"id": "b", "title": "x", "price": 1.0, "emb": [0.0, 1.0, 0.0]}], "on_error": "skip"}),
        ),
        (
            "DELETE",
            "/v1/collections/shop/documents",
            json!({"query": "price:>=100"}),
        ),
        (
            "POST",
            "/v1/collections",
            json!({"schema": schema.replace("shop", "other")}),
        ),
    ];
    let mut rng = rng(4);
    for _ in 0..rounds(150) {
        let (method, path, base) = &bases[rng.usize(..bases.len())];
        let mut body = base.clone();
        for _ in 0..rng.usize(1..4) {
            mutate(&mut body, &mut rng, 0);
        }
        let (status, v) = call(method, &s.url(path), None, Some(body.clone()));
        assert!(status < 500, "{method} {path} {body} -> {status} {v}");
        if status >= 400 {
            assert!(
                v["code"].is_string() && v["message"].is_string(),
                "{method} {path} {body} -> {v}"
            );
        }
        if *path == "/v1/collections" && status == 201 {
            call("DELETE", &s.url("/v1/collections/other"), None, None);
        }
    }
}

fn mutate(v: &mut Value, rng: &mut fastrand::Rng, depth: usize) {
    let junk = |rng: &mut fastrand::Rng| match rng.u8(..9) {
        0 => Value::Null,
        1 => json!(rng.i64(..)),
        2 => json!(-1),
        3 => json!(f64::MAX),
        4 => json!("x".repeat(rng.usize(0..300))),
        5 => json!([]),
        6 => json!({}),
        7 => {
            let mut deep = json!(1);
            for _ in 0..rng.usize(1..200) {
                deep = json!([deep]);
            }
            deep
        }
        _ => json!(true),
    };
    match v {
        Value::Object(map) if !map.is_empty() && depth < 3 => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = &keys[rng.usize(..keys.len())];
            match rng.u8(..4) {
                0 => {
                    map.remove(key);
                }
                1 => {
                    map.insert(format!("k{}", rng.u16(..)), junk(rng));
                }
                2 => {
                    map.insert(key.clone(), junk(rng));
                }
                _ => mutate(map.get_mut(key).unwrap(), rng, depth + 1),
            }
        }
        Value::Array(items) if !items.is_empty() && depth < 3 => {
            let i = rng.usize(..items.len());
            if rng.bool() {
                items[i] = junk(rng);
            } else {
                mutate(&mut items[i], rng, depth + 1);
            }
        }
        other => *other = junk(rng),
    }
}

/// A plugin's answers drawn at random (any length, any float, errors): the query is always
/// served; the plugin's order is used exactly when its answer is usable, and otherwise the
/// failure is named and the built-in order served.
#[test]
fn plugin_answers_never_fail_a_query() {
    let env = Env::new();
    let c = env.create(PLAIN);
    let rows: String = (0..12)
        .map(|i| {
            format!(
                "{{\"id\": \"{i}\", \"body\": \"apple {}\", \"n\": {i}, \"emb\": [1, {i}]}}\n",
                "pie ".repeat(i)
            )
        })
        .collect();
    let path = env.write("rows.jsonl", &rows);
    mira_host::ingest::ingest(&c, &path, &Default::default(), &mira_host::ingest::NoProgress).unwrap();
    let limits = PluginLimits {
        quarantine_after: u32::MAX,
        ..Default::default()
    };
    let r = registry(limits, None);
    r.install(&std::fs::read(HOSTILE_PLUGIN).unwrap(), "test").unwrap();
    let builtin = ids(&c.search(&SearchRequest::text("apple")).unwrap());
    let mut seeds = rng(5);
    let (mut used, mut refused) = (0, 0);
    for _ in 0..rounds(150) {
        let seed = seeds.u64(..);
        let req = SearchRequest {
            plugin: Some("hostile".into()),
            params: [
                ("mode".to_string(), "fuzz".to_string()),
                ("seed".to_string(), seed.to_string()),
            ]
            .into(),
            ..SearchRequest::text("apple")
        };
        let resp = c
            .search_with(&req, Some(&r))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let report = resp.ranking.as_ref().unwrap();
        match report.status {
            mira_host::plugin::RankingStatus::Ok => {
                used += 1;
                assert!(
                    resp.hits.iter().all(|h| h.score.is_finite()),
                    "seed {seed}: {:?}",
                    resp.hits
                );
                assert_eq!(resp.hits.len(), builtin.len());
            }
            mira_host::plugin::RankingStatus::Fallback => {
                refused += 1;
                let e = report.error.as_ref().unwrap();
                assert!(
                    matches!(e, PluginFailure::BadAnswer { .. } | PluginFailure::Refused { .. }),
                    "seed {seed}: {e:?}"
                );
                assert_eq!(ids(&resp), builtin, "seed {seed}: the built-in order is served");
            }
        }
    }
    assert!(
        used > 0 && refused > 0,
        "{used} used, {refused} refused: the generator is not covering both"
    );
}
