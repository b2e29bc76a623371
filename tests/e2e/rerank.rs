//! Qwen3-Reranker on tiny random-weight models in the Hugging Face layout: the model card's
//! prompt, P("yes") against candle-transformers' own Qwen3 on the same weights, batch = single,
//! prefix reuse = none, truncation, bad inputs, the CLI.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use mira_host::models::ModelDType;
use mira_host::rerank::fixtures::{TinyQwen3, write_qwen3, write_tiny_qwen3};
use mira_host::rerank::{DEFAULT_INSTRUCTION, PREFIX, Reranker, SUFFIX, ScoreOptions};

use crate::common::{Env, stderr, stdout};

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
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DType::F32, &Device::Cpu) }
        .unwrap();
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
