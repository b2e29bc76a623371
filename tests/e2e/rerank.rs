//! Qwen3-Reranker on tiny random-weight models in the Hugging Face layout: the model card's
//! prompt, P("yes") against candle-transformers' own Qwen3 on the same weights, batch = single,
//! prefix reuse = none, truncation, bad inputs, the CLI.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use mira_host::models::ModelDType;
use mira_host::rerank::fixtures::{TinyQwen3, write_qwen3, write_qwen3_streamed, write_tiny_qwen3};
use mira_host::rerank::{DEFAULT_INSTRUCTION, PREFIX, Reranker, SUFFIX, ScoreOptions};

use mira_host::SearchRequest;

use crate::common::{Env, HOSTILE_PLUGIN, ids, registry, stderr, stdout};

fn load(dir: &Path, max_length: usize) -> Reranker {
    Reranker::load(dir, &Device::Cpu, ModelDType::F32, max_length).unwrap()
}

const QUERY: &str = "red silk dress for a summer wedding";
const DOCS: &[&str] = &[
    "Red silk dress, knee length, for weddings and summer parties.",
    "Leather boots",
    "A blue cotton shirt with long sleeves; machine washable. Sizes S to XXL, in stock.",
    "红色真丝连衣裙",
    "the red the red the red",
];

#[test]
fn prompt_is_the_model_cards_and_answers_are_read_at_yes_and_no() {
    let env = Env::new();
    let dir = env.path().join("rr");
    write_tiny_qwen3(&dir).unwrap();
    let r = load(&dir, 8192);
    let tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    assert_eq!(Some(r.yes_id), tok.token_to_id("yes"));
    assert_eq!(Some(r.no_id), tok.token_to_id("no"));
    let ids = r.prompt_ids("Find clothes", QUERY, DOCS[0]).unwrap();
    let text = tok.decode(&ids, false).unwrap();
    assert_eq!(
        text,
        format!(
            "{PREFIX}<Instruct>: Find clothes\n<Query>: {QUERY}\n<Document>: {}{SUFFIX}",
            DOCS[0]
        )
    );
    assert!(PREFIX.contains("Note that the answer can only be \"yes\" or \"no\"."));
    assert!(SUFFIX.ends_with("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
    assert_eq!(
        DEFAULT_INSTRUCTION,
        "Given a web search query, retrieve relevant passages that answer the query"
    );
}

/// P("yes") from candle-transformers' Qwen3 (full vocabulary logits at the last position) on the
/// same weights: an independent implementation of the forward pass.
fn reference_p_yes(dir: &Path, ids: &[u32], yes: u32, no: u32) -> f32 {
    use candle_transformers::models::qwen3::{Config, ModelForCausalLM};
    let cfg: Config = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let files = mira_host::models::ModelFiles::find(dir, mira_host::models::ModelKind::Reranker).unwrap();
    let vb = files.var_builder(DType::F32, &Device::Cpu).unwrap();
    let mut model = ModelForCausalLM::new(&cfg, vb).unwrap();
    let input = Tensor::new(ids, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let logits: Vec<f32> = model
        .forward(&input, 0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let (y, n) = (logits[yes as usize], logits[no as usize]);
    1.0 / (1.0 + (n - y).exp())
}

#[test]
fn scores_equal_an_independent_qwen3_forward() {
    let env = Env::new();
    for tied in [false, true] {
        let dir = env.path().join(format!("rr-{tied}"));
        write_qwen3(
            &dir,
            &TinyQwen3 {
                tie_word_embeddings: tied,
                ..Default::default()
            },
        )
        .unwrap();
        let r = load(&dir, 8192);
        let ours = r.score(DEFAULT_INSTRUCTION, QUERY, DOCS).unwrap();
        for (doc, p) in DOCS.iter().zip(&ours) {
            let ids = r.prompt_ids(DEFAULT_INSTRUCTION, QUERY, doc).unwrap();
            let reference = reference_p_yes(&dir, &ids, r.yes_id, r.no_id);
            assert!(
                (p - reference).abs() < 1e-4,
                "tied={tied} {doc}: ours {p}, reference {reference}"
            );
            assert!(*p > 0.0 && *p < 1.0);
        }
        let spread = ours.iter().cloned().fold(f32::MIN, f32::max) - ours.iter().cloned().fold(f32::MAX, f32::min);
        assert!(spread > 1e-4, "different documents get different scores: {ours:?}");
    }
}

/// The weight-by-weight writer (how the 4B and 8B benchmark models are made) writes a model
/// the normal loader reads and an independent forward agrees with, in f32 and bf16.
#[test]
fn streamed_fixtures_load_and_score_like_the_reference() {
    let env = Env::new();
    let dir = env.path().join("streamed");
    write_qwen3_streamed(&dir, &TinyQwen3::default(), DType::F32).unwrap();
    let r = load(&dir, 8192);
    let prompts: Vec<Vec<u32>> = DOCS
        .iter()
        .map(|d| r.prompt_ids(DEFAULT_INSTRUCTION, QUERY, d).unwrap())
        .collect();
    let scores = r.score_ids(&prompts, ScoreOptions::default()).unwrap();
    for (p, s) in prompts.iter().zip(&scores) {
        let want = reference_p_yes(&dir, p, r.yes_id, r.no_id);
        assert!((want - s).abs() < 1e-5, "{want} vs {s}");
        assert!(*s > 1e-4 && *s < 1.0 - 1e-4, "P(yes) {s} is saturated");
    }
    assert!(
        scores.windows(2).any(|w| (w[0] - w[1]).abs() > 1e-4),
        "the documents score alike: {scores:?}"
    );
    let bf16_dir = env.path().join("streamed-bf16");
    write_qwen3_streamed(&bf16_dir, &TinyQwen3::default(), DType::BF16).unwrap();
    let b = Reranker::load(&bf16_dir, &Device::Cpu, ModelDType::BF16, 8192).unwrap();
    let bf16 = b.score_ids(&prompts, ScoreOptions::default()).unwrap();
    for (a, c) in scores.iter().zip(&bf16) {
        assert!((a - c).abs() < 0.05, "bf16 {c} vs f32 {a}");
    }
}

#[test]
fn batching_and_prefix_reuse_change_nothing() {
    let env = Env::new();
    let dir = env.path().join("rr");
    write_tiny_qwen3(&dir).unwrap();
    let r = load(&dir, 8192);
    let single: Vec<f32> = DOCS
        .iter()
        .map(|d| {
            r.score_with(
                DEFAULT_INSTRUCTION,
                QUERY,
                &[d],
                ScoreOptions {
                    reuse_prefix: false,
                    batch_size: 1,
                },
            )
            .unwrap()[0]
        })
        .collect();
    for reuse_prefix in [false, true] {
        for batch_size in [1, 2, 3, 8] {
            let got = r
                .score_with(
                    DEFAULT_INSTRUCTION,
                    QUERY,
                    DOCS,
                    ScoreOptions {
                        reuse_prefix,
                        batch_size,
                    },
                )
                .unwrap();
            for ((d, a), b) in DOCS.iter().zip(&got).zip(&single) {
                assert!(
                    (a - b).abs() < 1e-5,
                    "reuse={reuse_prefix} batch={batch_size} {d}: {a} vs single {b}"
                );
            }
        }
    }
    // Prompts of different queries in one call (what a shared run across queries scores): each
    // gets the score it gets in its own query's call.
    let other = "leather boots";
    let mut mixed: Vec<Vec<u32>> = DOCS
        .iter()
        .map(|d| r.prompt_ids(DEFAULT_INSTRUCTION, QUERY, d).unwrap())
        .collect();
    mixed.extend(
        DOCS.iter()
            .map(|d| r.prompt_ids(DEFAULT_INSTRUCTION, other, d).unwrap()),
    );
    let other_alone = r.score(DEFAULT_INSTRUCTION, other, DOCS).unwrap();
    for batch_size in [1, 3, 8, 64] {
        let got = r
            .score_ids(
                &mixed,
                ScoreOptions {
                    reuse_prefix: true,
                    batch_size,
                },
            )
            .unwrap();
        for (i, (a, b)) in got.iter().zip(single.iter().chain(&other_alone)).enumerate() {
            assert!(
                (a - b).abs() < 1e-5,
                "mixed queries, batch={batch_size}, prompt {i}: {a} vs {b}"
            );
        }
    }
    // Identical documents share all but their last token with each other.
    let same = r.score(DEFAULT_INSTRUCTION, QUERY, &[DOCS[0], DOCS[0]]).unwrap();
    assert!((same[0] - single[0]).abs() < 1e-5 && (same[1] - single[0]).abs() < 1e-5);
    assert!(r.score(DEFAULT_INSTRUCTION, QUERY, &[]).unwrap().is_empty());
}

#[test]
fn long_documents_are_cut_to_max_length_and_the_template_kept() {
    let env = Env::new();
    let dir = env.path().join("rr");
    write_tiny_qwen3(&dir).unwrap();
    let max = 400;
    let r = load(&dir, max);
    let long = "silk ".repeat(200);
    let longer = format!("{long} and a tail that is cut away");
    let ids = r.prompt_ids(DEFAULT_INSTRUCTION, QUERY, &long).unwrap();
    assert_eq!(ids.len(), max);
    let (prefix, suffix) = r.template_tokens();
    assert!(ids.starts_with(prefix) && ids.ends_with(suffix));
    assert_eq!(ids, r.prompt_ids(DEFAULT_INSTRUCTION, QUERY, &longer).unwrap());
    let scores = r.score(DEFAULT_INSTRUCTION, QUERY, &[&long, &longer, "short"]).unwrap();
    assert!((scores[0] - scores[1]).abs() < 1e-6);
    // A short document is not padded or cut.
    let short = r.prompt_ids(DEFAULT_INSTRUCTION, QUERY, "short").unwrap();
    assert!(short.len() < max);
    // A query that leaves no room for the document is a clear error.
    let err = r
        .prompt_ids(DEFAULT_INSTRUCTION, &"dress ".repeat(300), "doc")
        .unwrap_err()
        .to_string();
    assert!(err.contains("leaving nothing for the document"), "{err}");
}

#[test]
fn bad_model_directories_are_clear_errors() {
    let env = Env::new();
    let dir = env.path().join("rr");
    write_tiny_qwen3(&dir).unwrap();
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let err = Reranker::load(&dir, &Device::Cpu, ModelDType::F32, 8192)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("lacks tokenizer.json") && err.contains("Qwen/Qwen3-Reranker-0.6B"),
        "{err}"
    );

    write_tiny_qwen3(&dir).unwrap();
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(dir.join("config.json"), cfg.replace("\"qwen3\"", "\"llama\"")).unwrap();
    let err = Reranker::load(&dir, &Device::Cpu, ModelDType::F32, 8192)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model_type is `llama`"), "{err}");

    // Weights that do not match the config.
    std::fs::write(
        dir.join("config.json"),
        cfg.replace("\"hidden_size\": 64", "\"hidden_size\": 96"),
    )
    .unwrap();
    let err = Reranker::load(&dir, &Device::Cpu, ModelDType::F32, 8192)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("the weights do not match config.json"), "{err}");
}

#[test]
fn cli_rerank_prints_one_score_per_document() {
    let env = Env::new();
    let dir = env.path().join("rr");
    write_tiny_qwen3(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let out = env.mira(&[
        "model", "rerank", "--model", d, "--query", QUERY, "--doc", DOCS[0], "--doc", DOCS[1], "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let scores = v["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 2);
    let r = load(&dir, 8192);
    let expect = r.score(DEFAULT_INSTRUCTION, QUERY, &DOCS[..2]).unwrap();
    for (s, e) in scores.iter().zip(expect) {
        assert!((s["score"].as_f64().unwrap() as f32 - e).abs() < 1e-5);
    }
    assert_eq!(v["instruction"], DEFAULT_INSTRUCTION);

    let out = env.mira(&[
        "model",
        "rerank",
        "--model",
        d,
        "--query",
        QUERY,
        "--instruction",
        "Find shoes",
        "--doc",
        "boots",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("boots"), "{}", stdout(&out));

    let out = env.mira(&["model", "rerank", "--model", d, "--query", QUERY]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--doc"), "{}", stderr(&out));

    let out = env.mira(&["model", "info", d]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("qwen3"), "{}", stdout(&out));
}

const SHOP: &str = r#"
name = "shop"
[fields.title]
type = "text"
analyzer = "english"
[fields.colour]
type = "keyword"
[fields.price]
type = "f64"
[search]
rerank_window = 4
"#;

/// A shop whose schema names `model` as its reranker.
fn shop(env: &Env, model: &Path) -> mira_host::Collection {
    shop_with(
        env,
        &format!("{SHOP}\n[models]\nreranker = {:?}\n", model.to_str().unwrap()),
    )
}

/// A shop with this schema and eight products.
fn shop_with(env: &Env, schema: &str) -> mira_host::Collection {
    let c = env.create(schema);
    let titles = [
        "red silk dress",
        "red cotton dress",
        "blue dress with red belt",
        "red leather boots",
        "dress shoes, red",
        "red dress for a wedding",
        "green dress",
        "red hat",
    ];
    let rows: String = titles
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "{}\n",
                serde_json::json!({"id": format!("p{i}"), "title": t, "colour": "red", "price": 10.0 + i as f64})
            )
        })
        .collect();
    let path = env.write("shop.jsonl", &rows);
    mira_host::ingest::ingest(&c, &path, &Default::default(), &mira_host::ingest::NoProgress).unwrap();
    c
}

fn req(text: &str) -> SearchRequest {
    SearchRequest {
        explain: true,
        top_k: Some(8),
        ..SearchRequest::text(text)
    }
}

#[test]
fn search_reranks_the_window_by_p_yes_with_the_text_it_read() {
    let env = Env::new();
    let dir = env.path().join("rr");
    write_tiny_qwen3(&dir).unwrap();
    let c = shop(&env, &dir);
    let r = load(&dir, 8192);
    let resp = c.search(&req("red dress")).unwrap();
    let report = resp.rerank.clone().expect("a reranker is configured");
    assert_eq!((report.window, report.reranked), (4, 4));
    assert_eq!(report.instruction, DEFAULT_INSTRUCTION);
    assert_eq!(report.instruction_source, "default");
    assert!(report.skipped.is_none());
    // The first four hits are the reranked window, by P(yes); the rest keep the fused order.
    let reranked: Vec<_> = resp
        .hits
        .iter()
        .filter_map(|h| h.explain.as_ref().unwrap().rerank.clone())
        .collect();
    assert_eq!(reranked.len(), 4);
    for (i, h) in resp.hits.iter().take(4).enumerate() {
        let rr = h.explain.as_ref().unwrap().rerank.as_ref().expect("reranked");
        assert_eq!(rr.rank, i + 1);
        assert_eq!(h.score, rr.p_yes);
        assert!(
            rr.text
                .contains(&format!("title: {}", h.fields["title"].as_str().unwrap())),
            "{}",
            rr.text
        );
        let alone = r.score(DEFAULT_INSTRUCTION, "red dress", &[&rr.text]).unwrap()[0];
        assert!((alone - rr.p_yes).abs() < 1e-5, "{} vs {}", alone, rr.p_yes);
        if i > 0 {
            assert!(resp.hits[i - 1].score >= h.score);
        }
    }
    let plain = c
        .search(&SearchRequest {
            rerank_window: Some(0),
            ..req("red dress")
        })
        .unwrap();
    let mut window: Vec<String> = plain.hits[..4].iter().map(|h| h.id.clone()).collect();
    let mut got: Vec<String> = resp.hits[..4].iter().map(|h| h.id.clone()).collect();
    window.sort();
    got.sort();
    assert_eq!(window, got, "the reranker reorders the fused top 4, nothing else");
    assert_eq!(ids(&plain)[4..], ids(&resp)[4..]);
    assert_eq!(plain.rerank.unwrap().skipped.as_deref(), Some("rerank window is 0"));
    assert!(plain.hits.iter().all(|h| h.explain.as_ref().unwrap().rerank.is_none()));

    // The request's window and instruction win.
    let over = c
        .search(&SearchRequest {
            rerank_window: Some(8),
            instruction: Some("Find footwear".into()),
            ..req("red dress")
        })
        .unwrap();
    let rep = over.rerank.unwrap();
    assert_eq!(
        (rep.reranked, rep.instruction_source, rep.instruction.as_str()),
        (8, "request", "Find footwear")
    );
    let h = &over.hits[0];
    let rr = h.explain.as_ref().unwrap().rerank.as_ref().unwrap();
    let alone = r.score("Find footwear", "red dress", &[&rr.text]).unwrap()[0];
    assert!((alone - rr.p_yes).abs() < 1e-5);
    let err = c
        .search(&SearchRequest {
            rerank_window: Some(5000),
            ..req("red dress")
        })
        .unwrap_err();
    assert!(err.to_string().contains("rerank_window must be at most"), "{err}");

    // Without a text query there is nothing for the reranker to read.
    let filter_only = c
        .search(&SearchRequest {
            filter: Some("colour:red".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(filter_only.rerank.unwrap().skipped.unwrap().contains("no text query"));
}

/// Concurrent queries of a collection with a batch window share the reranker's forward passes
/// (the report says so), and each gets the scores it gets alone.
#[test]
fn concurrent_searches_share_reranking_runs_and_keep_their_scores() {
    let env = Env::new();
    let dir = env.path().join("rr");
    write_tiny_qwen3(&dir).unwrap();
    let schema = format!(
        "{}\n[models]\nreranker = {:?}\nrerank_batch_ms = 100\nrerank_batch_max = 12\n",
        SHOP.replace("name = \"shop\"", "name = \"shared\""),
        dir.to_str().unwrap()
    );
    let shared = std::sync::Arc::new(shop_with(&env, &schema));
    let alone = shop(&env, &dir);
    let r = load(&dir, 8192);
    let queries = ["red dress", "silk dress", "leather boots", "green hat"];
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .iter()
            .map(|q| {
                let c = shared.clone();
                s.spawn(move || c.search(&req(q)).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut runs = Vec::new();
    for (q, resp) in queries.iter().zip(&results) {
        let report = resp.rerank.clone().unwrap();
        let run = report.shared.expect("a batch window is configured");
        assert!(
            (1..=4).contains(&run.queries) && run.prompts >= report.reranked && run.prompts <= 12,
            "{q}: {run:?}"
        );
        runs.push(run.queries);
        let solo = alone.search(&req(q)).unwrap();
        assert!(solo.rerank.unwrap().shared.is_none(), "no window, no report");
        // Each reranked hit has the P(yes) its text gets scored alone (up to rounding: the
        // shared run pads and batches differently).
        for h in &resp.hits[..report.reranked] {
            let rr = h.explain.as_ref().unwrap().rerank.as_ref().expect("reranked");
            let by_itself = r.score(DEFAULT_INSTRUCTION, q, &[&rr.text]).unwrap()[0];
            assert!(
                (by_itself - rr.p_yes).abs() < 1e-5,
                "{q} {}: {} alone vs {} shared",
                h.id,
                by_itself,
                rr.p_yes
            );
        }
        for w in resp.hits[..report.reranked].windows(2) {
            assert!(
                w[0].score >= w[1].score - 1e-5,
                "{q}: the reranked hits are not in P(yes) order"
            );
        }
    }
    // Four queries of up to 4 prompts, at most 12 a run: some query shared one (the threads
    // start together; the window is 100 ms).
    assert!(runs.iter().any(|&n| n > 1), "{runs:?}");

    // Bad settings are refused naming the key.
    for (bad, says) in [
        ("rerank_batch_ms = 1000", "rerank_batch_ms = 1000: at most 100"),
        ("rerank_batch_max = 0", "rerank_batch_max = 0: between 1 and 1024"),
    ] {
        let schema = format!("{SHOP}\n[models]\n{bad}\n");
        let err = mira_host::schema::CollectionSchema::from_toml(&schema, "s.toml").unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
    }
}

#[test]
fn plugins_give_the_instruction_and_text_and_fuse_with_p_yes() {
    let env = Env::new();
    let dir = env.path().join("rr");
    write_tiny_qwen3(&dir).unwrap();
    let c = shop(&env, &dir);
    let registry = registry(Default::default(), None);
    let resp = c
        .search_with(
            &SearchRequest {
                plugin: Some("general".into()),
                ..req("red dress")
            },
            Some(&registry),
        )
        .unwrap();
    let ranking = resp.ranking.clone().unwrap();
    assert_eq!(ranking.status, mira_host::plugin::RankingStatus::Ok);
    let rep = resp.rerank.clone().unwrap();
    assert_eq!(rep.instruction_source, "plugin");
    assert_eq!(rep.instruction, ranking.instruction);
    // The general plugin fuses 0.3 * min-max(retrieval) + 0.7 * P(yes).
    let retrieval: Vec<f32> = resp
        .hits
        .iter()
        .map(|h| h.explain.as_ref().unwrap().fusion.score)
        .collect();
    let (lo, hi) = retrieval
        .iter()
        .fold((f32::MAX, f32::MIN), |(l, h), x| (l.min(*x), h.max(*x)));
    for (h, ret) in resp.hits.iter().zip(&retrieval) {
        let e = h.explain.as_ref().unwrap();
        let p = e.rerank.as_ref().map_or(0.0, |r| r.p_yes);
        let norm = if hi > lo { (ret - lo) / (hi - lo) } else { 1.0 };
        let expect = 0.3 * norm + 0.7 * p;
        assert!(
            (e.plugin.unwrap().score - expect).abs() < 1e-4,
            "{}: {} vs {expect}",
            h.id,
            e.plugin.unwrap().score
        );
    }

    // A plugin that fails in fuse: the built-in order (the window by P(yes)) is served.
    registry
        .install(&std::fs::read(HOSTILE_PLUGIN).unwrap(), "test")
        .unwrap();
    let failing = c
        .search_with(
            &SearchRequest {
                plugin: Some("hostile".into()),
                params: [("mode".to_string(), "trap".to_string())].into(),
                ..req("red dress")
            },
            Some(&registry),
        )
        .unwrap();
    assert_eq!(
        failing.ranking.as_ref().unwrap().status,
        mira_host::plugin::RankingStatus::Fallback
    );
    // The reranker read what the plugin rendered before it failed; the final order is the
    // built-in one: the window by P(yes), then the rest in fused order.
    let builtin = c
        .search(&SearchRequest {
            rerank_window: Some(0),
            ..req("red dress")
        })
        .unwrap();
    let w = failing.rerank.as_ref().unwrap().reranked;
    assert!(w > 0);
    let p: Vec<f32> = failing.hits[..w]
        .iter()
        .map(|h| h.explain.as_ref().unwrap().rerank.as_ref().unwrap().p_yes)
        .collect();
    assert!(p.windows(2).all(|x| x[0] >= x[1]), "{p:?}");
    let window: Vec<String> = ids(&failing)[..w].to_vec();
    let rest: Vec<String> = ids(&builtin).into_iter().filter(|id| !window.contains(id)).collect();
    assert_eq!(ids(&failing)[w..], rest[..]);
}

#[test]
fn cli_search_shows_the_reranker_stage() {
    let env = Env::new();
    let dir = env.path().join("rr");
    write_tiny_qwen3(&dir).unwrap();
    let c = shop(&env, &env.path().join("not-there"));
    drop(c);
    let out = env.mira_with_env(
        &["search", "shop", "red dress", "--explain"],
        &[("MIRA_RERANKER_MODEL", dir.as_path())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("reranked 4 of window 4") && text.contains("reranker P(yes)"),
        "{text}"
    );
    // The schema's model does not exist: the search says so.
    let out = env.mira(&["search", "shop", "red dress"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not-there"), "{}", stderr(&out));
}

/// `q8`: the linear layers as int8 blocks, quantized at load. On 50 candidates P("yes") stays
/// within 0.02 of f32, and no two candidates f32 separates are swapped.
#[test]
fn q8_keeps_p_yes_within_002_and_the_order_f32_can_tell() {
    let env = Env::new();
    let dir = env.path().join("rr");
    write_qwen3(
        &dir,
        &TinyQwen3 {
            hidden: 128,
            intermediate: 256,
            heads: 4,
            kv_heads: 2,
            head_dim: 32,
            ..Default::default()
        },
    )
    .unwrap();
    let f32 = load(&dir, 512);
    let q8 = Reranker::load(&dir, &Device::Cpu, ModelDType::Q8, 512).unwrap();
    let mut rng = fastrand::Rng::with_seed(9);
    let words = [
        "red", "silk", "dress", "boots", "leather", "summer", "wedding", "cotton", "shirt", "blue",
    ];
    let docs: Vec<String> = (0..50)
        .map(|_| {
            (0..1 + rng.usize(..12))
                .map(|_| words[rng.usize(..words.len())])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let a = f32.score(DEFAULT_INSTRUCTION, QUERY, &refs).unwrap();
    let b = q8.score(DEFAULT_INSTRUCTION, QUERY, &refs).unwrap();
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst <= 0.02, "largest P(yes) difference {worst}");
    assert!(worst > 0.0, "the q8 path ran (the scores differ at all)");
    // A random tiny model scores every candidate within a few thousandths of 0.52, closer than
    // any int8 error, so its exact top 10 cannot be the measure; what must hold is that q8 never
    // swaps two candidates the f32 model tells apart by more than twice that error.
    let margin = 2.0 * worst;
    let mut separated = 0;
    for i in 0..a.len() {
        for j in 0..a.len() {
            if a[i] - a[j] > margin {
                separated += 1;
                assert!(
                    b[i] > b[j],
                    "q8 swapped {i} ({} -> {}) and {j} ({} -> {})",
                    a[i],
                    b[i],
                    a[j],
                    b[j]
                );
            }
        }
    }
    assert!(separated > 100, "enough pairs checked: {separated}");
}

#[test]
fn dtype_mistakes_say_what_would_work() {
    let env = Env::new();
    let clip = env.path().join("clip");
    mira_host::embed::fixtures::write_tiny_clip(&clip).unwrap();
    let e = mira_host::embed::ClipEmbedder::load(&clip, &Device::Cpu, ModelDType::Q8)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("q8 needs the reranker") && e.contains("reranker_dtype"),
        "{e}"
    );
    let e = ModelDType::parse("q4").unwrap_err().to_string();
    assert!(e.contains("f32, f16, bf16, or q8"), "{e}");
    for (models, what) in [
        ("dtype = \"q8\"", "reranker_dtype = \"q8\""),
        ("reranker_dtype = \"int4\"", "unknown dtype `int4`"),
    ] {
        let toml = format!("name = \"x\"\n[fields.t]\ntype = \"text\"\n[models]\n{models}\n");
        let e = mira_host::CollectionSchema::from_toml(&toml, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(what), "{models}: {e}");
    }
    let ok = "name = \"x\"\n[fields.t]\ntype = \"text\"\n[models]\nreranker_dtype = \"q8\"\n";
    assert_eq!(
        mira_host::CollectionSchema::from_toml(ok, "x.toml")
            .unwrap()
            .models
            .reranker_dtype
            .as_deref(),
        Some("q8")
    );
}

/// A reranker larger than the memory there is is refused before loading, saying which dtypes
/// would fit (here with the memory capped by `MIRA_MODEL_MEMORY`); a dtype that fits then loads.
#[test]
fn a_model_larger_than_memory_is_refused_with_what_would_fit() {
    let env = Env::new();
    let dir = env.path().join("rr");
    write_tiny_qwen3(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let run = |memory: &str, dtype: &str| {
        env.mira_with_env(
            &[
                "model", "rerank", "--model", d, "--query", QUERY, "--doc", DOCS[0], "--dtype", dtype,
            ],
            &[("MIRA_MODEL_MEMORY", Path::new(memory))],
        )
    };
    let params = mira_host::models::memory::parameters(&[dir.join("model.safetensors")]).unwrap();
    // Room for the q8 footprint (embeddings in f32 count fully) but not for f32.
    let room = format!("{}", params * 4 - 1);
    let out = run(&room, "f32");
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let e = stderr(&out);
    assert!(
        e.contains("as f32") && e.contains("it would fit as") && e.contains("reranker_dtype"),
        "{e}"
    );
    let out = run("1KiB", "f32");
    assert!(stderr(&out).contains("no dtype makes it fit"), "{}", stderr(&out));
    let out = run(&room, "bf16");
    assert!(out.status.success(), "{}", stderr(&out));
}
