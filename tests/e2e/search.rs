//! Retrieval: BM25 against hand-computed scores, kNN against brute force (with filters, deletes and
//! several segments), fusion against hand-computed numbers, explanations, errors.

use mira_host::ingest::{self, IngestOptions, NoProgress};
use mira_host::search::Normalization;
use mira_host::{Collection, Error, SearchRequest};
use serde_json::json;

use crate::common::{Env, SMALL, ids};

const PLAIN: &str = r#"
name = "plain"
[fields.body]
type = "text"
[fields.group]
type = "keyword"
[fields.n]
type = "i64"
[fields.emb]
type = "vector"
dim = 2
metric = "dot"
"#;

fn load(env: &Env, c: &Collection, rows: &[serde_json::Value]) {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    let path = env.write(&format!("rows-{}.jsonl", fastrand::u64(..)), &text);
    ingest::ingest(c, &path, &IngestOptions::default(), &NoProgress).unwrap();
}

fn four_docs(env: &Env) -> Collection {
    let c = env.create(PLAIN);
    load(
        env,
        &c,
        &[
            json!({"id": "d1", "body": "apple banana", "group": "a", "n": 1, "emb": [0.5, 0.5]}),
            json!({"id": "d2", "body": "apple apple cherry", "group": "a", "n": 2, "emb": [0.1, 0.9]}),
            json!({"id": "d3", "body": "banana cherry date elderberry", "group": "b", "n": 3, "emb": [1.0, 0.0]}),
            json!({"id": "d4", "body": "fig", "group": "b", "n": 4, "emb": [-1.0, 0.0]}),
        ],
    );
    c
}

/// BM25 as tantivy defines it (k1 = 1.2, b = 0.75), computed here by hand.
fn bm25(tf: f32, dl: f32, avgdl: f32, n_docs: f32, df: f32) -> f32 {
    let idf = (1.0 + (n_docs - df + 0.5) / (df + 0.5)).ln();
    idf * tf * 2.2 / (tf + 1.2 * (1.0 - 0.75 + 0.75 * dl / avgdl))
}

#[test]
fn bm25_scores_match_the_formula() {
    let env = Env::new();
    let c = four_docs(&env);
    let r = c.search(&SearchRequest::text("apple")).unwrap();
    assert_eq!(ids(&r), vec!["d2", "d1"]);
    let avgdl = (2.0 + 3.0 + 4.0 + 1.0) / 4.0;
    let expect_d2 = bm25(2.0, 3.0, avgdl, 4.0, 2.0);
    let expect_d1 = bm25(1.0, 2.0, avgdl, 4.0, 2.0);
    assert!(
        (r.hits[0].score - expect_d2).abs() < 1e-4,
        "{} vs {expect_d2}",
        r.hits[0].score
    );
    assert!(
        (r.hits[1].score - expect_d1).abs() < 1e-4,
        "{} vs {expect_d1}",
        r.hits[1].score
    );
    // Filters restrict without changing scores.
    let f = c
        .search(&SearchRequest {
            filter: Some("n:[1 TO 1]".into()),
            ..SearchRequest::text("apple")
        })
        .unwrap();
    assert_eq!(ids(&f), vec!["d1"]);
    assert!((f.hits[0].score - expect_d1).abs() < 1e-4);
}

#[test]
fn rrf_fusion_matches_hand_computed_values() {
    let env = Env::new();
    let c = four_docs(&env);
    let req = SearchRequest {
        vector: Some(vec![1.0, 0.0]),
        explain: true,
        ..SearchRequest::text("apple")
    };
    let r = c.search(&req).unwrap();
    // bm25 ranks: d2 1, d1 2. vector (dot with [1,0]): d3 1.0, d1 0.5, d2 0.1, d4 -1.0.
    let expect = [
        ("d2", 1.0 / 61.0 + 1.0 / 63.0),
        ("d1", 1.0 / 62.0 + 1.0 / 62.0),
        ("d3", 1.0 / 61.0),
        ("d4", 1.0 / 64.0),
    ];
    assert_eq!(ids(&r), expect.iter().map(|e| e.0).collect::<Vec<_>>());
    for (hit, (_, score)) in r.hits.iter().zip(expect) {
        assert!((hit.score - score).abs() < 1e-7, "{}: {} vs {score}", hit.id, hit.score);
    }
    assert_eq!(r.fusion, "rrf(k=60)");
    let e = r.hits[0].explain.as_ref().unwrap();
    assert_eq!(e.bm25.as_ref().unwrap().rank, 1);
    assert_eq!(e.vector.as_ref().unwrap().rank, 3);
    assert!((e.vector.as_ref().unwrap().score - 0.1).abs() < 1e-6);
    assert!(e.fusion.formula.contains("1/(60+1) [bm25]"), "{}", e.fusion.formula);
    assert!(r.hits[2].explain.as_ref().unwrap().bm25.is_none());

    // Weights and k per request.
    let r = c
        .search(&SearchRequest {
            rrf_k: Some(0.0),
            bm25_weight: Some(2.0),
            ..req.clone()
        })
        .unwrap();
    assert!(
        (r.hits[0].score - (2.0 / 1.0 + 1.0 / 3.0)).abs() < 1e-6,
        "{:?}",
        ids(&r)
    );
}

#[test]
fn linear_fusion_matches_hand_computed_values() {
    let env = Env::new();
    let c = four_docs(&env);
    let req = SearchRequest {
        vector: Some(vec![1.0, 0.0]),
        fusion: Some("linear".into()),
        ..SearchRequest::text("apple")
    };
    let r = c.search(&req).unwrap();
    // minmax: bm25 d2 1, d1 0; vector d3 1, d1 .75, d2 .55, d4 0.
    let expect = [("d2", 1.55), ("d3", 1.0), ("d1", 0.75), ("d4", 0.0)];
    assert_eq!(ids(&r), expect.iter().map(|e| e.0).collect::<Vec<_>>());
    for (hit, (_, score)) in r.hits.iter().zip(expect) {
        assert!((hit.score - score).abs() < 1e-6, "{}: {} vs {score}", hit.id, hit.score);
    }
    let r = c
        .search(&SearchRequest {
            normalization: Some(Normalization::None),
            vector_weight: Some(0.0),
            ..req
        })
        .unwrap();
    let d2 = bm25(2.0, 3.0, 2.5, 4.0, 2.0);
    assert_eq!(r.hits[0].id, "d2");
    assert!((r.hits[0].score - d2).abs() < 1e-4);
}

fn brute_force(
    vectors: &[(String, Vec<f32>, bool)],
    q: &[f32],
    k: usize,
    filter: impl Fn(usize) -> bool,
) -> Vec<(String, f32)> {
    let mut all: Vec<(String, f32)> = vectors
        .iter()
        .enumerate()
        .filter(|(i, (_, _, alive))| *alive && filter(*i))
        .map(|(_, (id, v, _))| (id.clone(), v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>()))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1));
    all.truncate(k);
    all
}

fn knn_matches_brute_force(dtype: &str, tolerance: f32) {
    let env = Env::new();
    let dim = 37; // not a multiple of the SIMD width
    let schema = format!(
        "name = \"v\"\n[fields.group]\ntype = \"i64\"\n[fields.emb]\ntype = \"vector\"\ndim = {dim}\ndtype = \"{dtype}\"\n[ingest]\nbatch_size = 200\n"
    );
    let c = env.create(&schema);
    let mut rng = fastrand::Rng::with_seed(3);
    let mut vectors = Vec::new();
    let mut rows = Vec::new();
    for i in 0..600 {
        let v: Vec<f32> = (0..dim).map(|_| rng.f32() - 0.5).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let v: Vec<f32> = v.iter().map(|x| x / norm).collect();
        // Every 7th document has no vector.
        let row = if i % 7 == 3 {
            json!({"id": i.to_string(), "group": i % 10})
        } else {
            json!({"id": i.to_string(), "group": i % 10, "emb": v})
        };
        rows.push(row);
        vectors.push((i.to_string(), v, i % 7 != 3));
    }
    load(&env, &c, &rows); // 3 commits of 200 (2 indexing threads): several segments, fewer than the 8 that trigger a merge
    let mut w = c.writer().unwrap();
    let deleted: Vec<String> = (0..600).step_by(11).map(|i: usize| i.to_string()).collect();
    w.delete_ids(&deleted).unwrap();
    w.commit().unwrap();
    for i in (0..600).step_by(11) {
        vectors[i].2 = false;
    }
    assert!(
        c.searcher().segment_readers().len() >= 2,
        "the test needs several segments"
    );
    for qi in 0..10 {
        let q: Vec<f32> = (0..dim).map(|_| rng.f32() - 0.5).collect();
        let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
        let qn: Vec<f32> = q.iter().map(|x| x / norm).collect();
        let k = 5 + qi * 3;
        let filter = (qi % 2 == 1).then(|| "group:[2 TO 4]".to_string());
        let r = c
            .search(&SearchRequest {
                vector: Some(q.clone()),
                top_k: Some(k),
                filter: filter.clone(),
                ..Default::default()
            })
            .unwrap();
        let expect = brute_force(&vectors, &qn, k, |i| filter.is_none() || (2..=4).contains(&(i % 10)));
        assert_eq!(r.hits.len(), expect.len());
        for (hit, (id, score)) in r.hits.iter().zip(&expect) {
            assert!(
                (hit.score - score).abs() < tolerance,
                "query {qi}: {} {} vs {id} {score}",
                hit.id,
                hit.score
            );
        }
        if tolerance < 1e-4 {
            assert_eq!(
                ids(&r),
                expect.iter().map(|e| e.0.clone()).collect::<Vec<_>>(),
                "query {qi}"
            );
        }
    }
}

#[test]
fn knn_f32_equals_brute_force_with_filters_and_deletes() {
    knn_matches_brute_force("f32", 1e-5);
}

#[test]
fn knn_f16_is_within_half_precision_of_brute_force() {
    knn_matches_brute_force("f16", 2e-3);
}

#[test]
fn chinese_and_english_analyzers() {
    let env = Env::new();
    let c = env.create(SMALL);
    load(
        &env,
        &c,
        &[
            json!({"id": "1", "title": "Red silk dresses", "title_zh": "红色真丝连衣裙"}),
            json!({"id": "2", "title": "Blue denim jacket", "title_zh": "蓝色牛仔夹克"}),
        ],
    );
    assert_eq!(ids(&c.search(&SearchRequest::text("dress")).unwrap()), vec!["1"]);
    assert_eq!(ids(&c.search(&SearchRequest::text("连衣裙")).unwrap()), vec!["1"]);
    assert_eq!(ids(&c.search(&SearchRequest::text("牛仔")).unwrap()), vec!["2"]);
    assert_eq!(ids(&c.search(&SearchRequest::text("红色 连衣裙")).unwrap())[0], "1");
}

#[test]
fn filters_on_every_field_type_and_filter_only_listing() {
    let env = Env::new();
    let c = env.create(SMALL);
    load(
        &env,
        &c,
        &[
            json!({"id": "1", "title": "a", "category": "dress", "kind": "/clothing/dresses", "price": 20.0, "stock": 0, "on_sale": true, "released": "2024-03-01"}),
            json!({"id": "2", "title": "a", "category": "shoe", "kind": "/shoes/boots", "price": 80.0, "stock": 5, "on_sale": false, "released": "2025-03-01"}),
            json!({"id": "3", "title": "a", "category": "dress", "kind": "/clothing/dresses", "price": 120.0, "stock": 2, "on_sale": false, "released": "2025-06-01"}),
        ],
    );
    let only = |f: &str| {
        let mut got = ids(&c
            .search(&SearchRequest {
                filter: Some(f.into()),
                ..Default::default()
            })
            .unwrap());
        got.sort();
        got
    };
    assert_eq!(only("category:dress"), vec!["1", "3"]);
    assert_eq!(only("kind:/clothing"), vec!["1", "3"]);
    assert_eq!(only("price:[50 TO 200] AND category:dress"), vec!["3"]);
    assert_eq!(only("stock:>0"), vec!["2", "3"]);
    assert_eq!(only("on_sale:true"), vec!["1"]);
    assert_eq!(
        only("released:[2025-01-01T00:00:00Z TO 2026-01-01T00:00:00Z]"),
        vec!["2", "3"]
    );
    assert_eq!(only("category:dress -price:[100 TO 200]"), vec!["1"]);
}

#[test]
fn bad_requests_get_precise_errors() {
    let env = Env::new();
    let c = four_docs(&env);
    let e = |req: SearchRequest| c.search(&req).unwrap_err();
    let err = e(SearchRequest::vector(vec![1.0, 2.0, 3.0]));
    assert!(
        matches!(err, Error::Vector { .. }) && err.to_string() == "vector field `emb`: expected 2 elements, got 3",
        "{err}"
    );
    let err = e(SearchRequest {
        filter: Some("colour:red".into()),
        ..SearchRequest::text("apple")
    });
    assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    let err = e(SearchRequest {
        filter: Some("red".into()),
        ..SearchRequest::text("apple")
    });
    assert!(err.to_string().contains("must name its field"), "{err}");
    let err = e(SearchRequest {
        vector_field: Some("body".into()),
        ..SearchRequest::vector(vec![1.0, 0.0])
    });
    assert!(
        err.to_string().contains("`body` is a text field, not a vector field"),
        "{err}"
    );
    let err = e(SearchRequest {
        top_k: Some(0),
        ..SearchRequest::text("apple")
    });
    assert!(err.to_string().contains("top_k must be between 1"), "{err}");
    let err = e(SearchRequest {
        fusion: Some("borda".into()),
        ..SearchRequest::text("apple")
    });
    assert!(err.to_string().contains("unknown fusion"), "{err}");
    let err = e(SearchRequest::default());
    assert!(err.to_string().contains("give a text query"), "{err}");
    // A syntax slip in a search box is forgiven, and said.
    let r = c.search(&SearchRequest::text("apple \"")).unwrap();
    assert_eq!(ids(&r)[0], "d2");
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("syntax error"), "{:?}", r.warnings);
    let r = c.search(&SearchRequest::text("body:(")).unwrap();
    assert!(r.warnings[0].contains("`body:(`"), "{:?}", r.warnings);
    assert!(c.search(&SearchRequest::text("apple")).unwrap().warnings.is_empty());
}

/// Each mistake has its own stable code, and the whole request is checked before any work:
/// a rerank window over the limit is refused on a collection without a reranker, and a
/// vector that does not fit the field is refused even when the text query is fine.
#[test]
fn every_query_mistake_has_its_own_code_and_is_caught_before_retrieval() {
    let env = Env::new();
    let c = four_docs(&env);
    let code = |req: SearchRequest| c.search(&req).unwrap_err().code();
    let text = || SearchRequest::text("apple");
    let cases: Vec<(SearchRequest, &str)> = vec![
        (
            SearchRequest {
                top_k: Some(0),
                ..text()
            },
            "invalid_top_k",
        ),
        (
            SearchRequest {
                top_k: Some(10_001),
                ..text()
            },
            "invalid_top_k",
        ),
        (
            SearchRequest {
                candidates: Some(100_001),
                ..text()
            },
            "invalid_candidates",
        ),
        (
            SearchRequest {
                offset: 99_995,
                top_k: Some(10),
                ..text()
            },
            "invalid_candidates",
        ),
        (
            SearchRequest {
                rerank_window: Some(1001),
                ..text()
            },
            "invalid_rerank_window",
        ),
        (
            SearchRequest {
                bm25_weight: Some(-1.0),
                ..text()
            },
            "invalid_weight",
        ),
        (
            SearchRequest {
                vector_weight: Some(f32::NAN),
                ..text()
            },
            "invalid_weight",
        ),
        (
            SearchRequest {
                fusion: Some("borda".into()),
                ..text()
            },
            "invalid_fusion",
        ),
        (
            SearchRequest {
                rrf_k: Some(-2.0),
                ..text()
            },
            "invalid_fusion",
        ),
        (
            SearchRequest {
                filter: Some("red".into()),
                ..text()
            },
            "invalid_filter",
        ),
        (
            SearchRequest {
                filter: Some("colour:red".into()),
                ..text()
            },
            "invalid_filter",
        ),
        // These parse, but cannot run on this schema (found by the fuzz test: they were 500s).
        (
            SearchRequest {
                filter: Some("body:*".into()),
                ..text()
            },
            "invalid_filter",
        ),
        (
            SearchRequest {
                filter: Some(">=>=''(1}-3".into()),
                ..text()
            },
            "invalid_filter",
        ),
        (SearchRequest::text("body:*"), "invalid_text_query"),
        // Brackets inside a quote still count: the grammar has single-quoted phrases too, in
        // which `"` is a plain character (found in review: this passed the check and recursed).
        (
            SearchRequest::text(format!("'\"' {}a{} '\"'", "(".repeat(4000), ")".repeat(4000))),
            "query_too_complex",
        ),
        (
            SearchRequest {
                text_fields: Some(vec!["nope".into()]),
                ..text()
            },
            "unknown_field",
        ),
        (
            SearchRequest {
                text_fields: Some(vec!["group".into()]),
                ..text()
            },
            "wrong_field_kind",
        ),
        (
            SearchRequest {
                vector_field: Some("body".into()),
                ..SearchRequest::vector(vec![1.0, 0.0])
            },
            "wrong_field_kind",
        ),
        (
            SearchRequest {
                vector: Some(vec![1.0; 3]),
                ..text()
            },
            "invalid_vector",
        ),
        (SearchRequest::default(), "empty_query"),
        (
            SearchRequest {
                image: Some("q.png".into()),
                ..SearchRequest::vector(vec![1.0, 0.0])
            },
            "conflicting_query",
        ),
        (
            SearchRequest {
                image: Some("q.png".into()),
                ..text()
            },
            "no_clip_model",
        ),
        (
            SearchRequest {
                scenario: Some("ecommerce".into()),
                ..text()
            },
            "plugins_unavailable",
        ),
    ];
    for (req, expected) in cases {
        let what = format!("{req:?}");
        assert_eq!(code(req), expected, "{what}");
    }
    // A user mistake is the user's fault, whatever its code.
    let err = c
        .search(&SearchRequest {
            top_k: Some(0),
            ..text()
        })
        .unwrap_err();
    assert_eq!(err.fault(), mira_host::Fault::User);
    assert!(
        matches!(err, Error::Query(mira_host::QueryError::TopK { got: 0, max: 10_000 })),
        "{err}"
    );
}

/// A schema's `[search]` defaults are held to the bounds a request is, when the schema is
/// read, so a default can never be refused at query time.
#[test]
fn schema_search_defaults_are_bounded_like_requests() {
    for (extra, expected) in [
        ("top_k = 10001", "top_k must be at most 10000"),
        ("candidates = 100001", "candidates at most 100000"),
        ("rerank_window = 1001", "rerank_window must be at most 1000"),
        ("bm25_weight = -1.0", "bm25_weight must be a non-negative number"),
    ] {
        let toml = format!("{PLAIN}\n[search]\n{extra}\n");
        let err = mira_host::CollectionSchema::from_toml(&toml, "test.toml").unwrap_err();
        assert!(err.to_string().contains(expected), "{extra}: {err}");
    }
}

/// A vector field nothing has filled costs no matrix rows: stats show no documents with a
/// vector and (almost) no bytes, and once vectors arrive kNN finds them.
#[test]
fn an_unfilled_vector_field_takes_no_matrix_rows() {
    let env = Env::new();
    let c = env.create(PLAIN);
    let rows: Vec<serde_json::Value> = (0..500)
        .map(|i| json!({"id": format!("t{i}"), "body": "text only", "group": "a", "n": i}))
        .collect();
    load(&env, &c, &rows);
    let stats = c.stats().unwrap();
    let emb = &stats.vector_fields[0];
    assert_eq!(emb.documents_with_vector, 0);
    // Header and presence bitmap per segment only: 500 rows of 2 f32 would be 4000 bytes more.
    assert!(emb.matrix_bytes < 64 * 4 * stats.segments as u64, "{emb:?}");
    assert!(
        c.search(&SearchRequest::vector(vec![1.0, 0.0]))
            .unwrap()
            .hits
            .is_empty()
    );
    load(
        &env,
        &c,
        &[json!({"id": "v", "body": "with a vector", "group": "b", "n": 1, "emb": [1.0, 0.0]})],
    );
    let stats = c.stats().unwrap();
    assert_eq!(stats.vector_fields[0].documents_with_vector, 1);
    assert_eq!(
        ids(&c.search(&SearchRequest::vector(vec![1.0, 0.0])).unwrap()),
        vec!["v"]
    );
    // Reopened, the compact matrices are accepted as they are.
    drop(c);
    let c = env.catalog().open("plain").unwrap();
    assert_eq!(
        ids(&c.search(&SearchRequest::vector(vec![1.0, 0.0])).unwrap()),
        vec!["v"]
    );
}

#[test]
fn paging_walks_the_fused_list() {
    let env = Env::new();
    let c = four_docs(&env);
    let all = ids(&c
        .search(&SearchRequest {
            vector: Some(vec![1.0, 0.0]),
            ..SearchRequest::text("apple")
        })
        .unwrap());
    let page2 = ids(&c
        .search(&SearchRequest {
            vector: Some(vec![1.0, 0.0]),
            top_k: Some(2),
            offset: 2,
            ..SearchRequest::text("apple")
        })
        .unwrap());
    assert_eq!(page2, all[2..4].to_vec());
}
