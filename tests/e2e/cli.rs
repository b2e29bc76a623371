//! The `mira` binary end to end: create, index, search (text, vector, hybrid), stats, delete, demo.

use crate::common::{Env, SMALL, png, stderr, stdout};

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "mira failed: {}\n{}", stderr(o), stdout(o));
    stdout(o)
}

#[test]
fn create_index_search_stats_delete() {
    let env = Env::new();
    let schema = env.write("small.toml", SMALL);
    ok(&env.mira(&["create", schema.to_str().unwrap()]));
    png(&env.path().join("a.png"), 4, 4);
    let rows = env.write(
        "rows.jsonl",
        "{\"id\": \"a\", \"title\": \"red dress\", \"price\": 30, \"photo\": \"a.png\", \"emb\": [1, 0, 0, 0]}\n\
         {\"id\": \"b\", \"title\": \"red shoes\", \"price\": 90, \"emb\": [0, 1, 0, 0]}\n\
         {\"id\": \"c\", \"title\": \"blue dress\", \"price\": \"x\"}\n",
    );
    // A bad row fails the ingest by default, naming file and line.
    let out = env.mira(&["index", "small", rows.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("rows.jsonl:3 (id `c`): field `price`: expected a number"),
        "{}",
        stderr(&out)
    );
    // --on-error skip goes on.
    let out = ok(&env.mira(&["index", "small", rows.to_str().unwrap(), "--on-error", "skip", "--json"]));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["indexed"], 2);
    assert_eq!(report["skipped"], 1);

    let out = ok(&env.mira(&["search", "small", "red", "--filter", "price:[0 TO 50]", "--json"]));
    let resp: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(resp["hits"].as_array().unwrap().len(), 1);
    assert_eq!(resp["hits"][0]["id"], "a");

    let q = env.write("q.json", "[0, 1, 0, 0]");
    let out = ok(&env.mira(&["search", "small", "dress", "--vector", q.to_str().unwrap(), "--explain"]));
    assert!(out.contains("rrf(k=60)"), "{out}");
    assert!(out.contains("bm25") && out.contains("vector"), "{out}");
    let bad_q = env.write("bad.json", "[0, 1]");
    let out = env.mira(&["search", "small", "--vector", bad_q.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("expected 4 elements, got 2"), "{}", stderr(&out));

    let out = ok(&env.mira(&["stats", "small", "--json"]));
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["documents"], 2);
    assert_eq!(stats["vector_fields"][0]["documents_with_vector"], 2);

    assert!(ok(&env.mira(&["delete", "small", "--id", "a"])).contains("deleted 1"));
    assert!(ok(&env.mira(&["collections"])).contains("small\t1 documents"));
    let out = env.mira(&["search", "nope", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("collection `nope` does not exist"));
}

#[test]
fn demo_runs_on_a_fresh_data_dir() {
    let env = Env::new();
    let out = ok(&env.mira(&["demo", "--products", "300"]));
    assert!(out.contains("indexed 300 of 300 rows"), "{out}");
    assert!(out.contains("No CLIP model: retrieval is BM25"), "{out}");
    assert!(out.contains("makes up no vectors"), "{out}");
    assert!(out.contains("No reranker: the fused order is final"), "{out}");
    assert!(out.contains("HF_HUB_OFFLINE is set, so the hub was not asked"), "{out}");
    assert!(out.contains("Chinese text"), "{out}");
    assert!(
        out.contains("plugin ecommerce") && out.contains("判断商品是否与查询需求相关"),
        "{out}"
    );
    // Every example query found something.
    assert!(!out.contains("0 hit(s)"), "{out}");
    // A second run reuses the collection.
    let again = ok(&env.mira(&["demo", "--products", "300"]));
    assert!(again.contains("using the demo collection"), "{again}");
}

/// With models available (here tiny random ones named by the environment), the demo computes
/// photo embeddings and tags, runs an image query, and reranks every query.
#[test]
fn demo_uses_clip_and_the_reranker_when_they_can_be_had() {
    let env = Env::new();
    let (clip, reranker) = crate::common::tiny_models(&env);
    let vars = [
        ("MIRA_CLIP_MODEL", clip.as_path()),
        ("MIRA_RERANKER_MODEL", reranker.as_path()),
    ];
    let out = env.mira_with_env(&["demo", "--products", "120"], &vars);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    // 120 photos, and a second one for every third product.
    assert!(text.contains("embeddings: 160 computed"), "{text}");
    assert!(
        text.contains("CLIP from") && text.contains("Qwen3-Reranker from"),
        "{text}"
    );
    assert!(text.contains("== image query: the photo"), "{text}");
    assert!(text.contains("reranked 10 of window 10"), "{text}");
    assert!(!text.contains("0 hit(s)"), "{text}");
}
