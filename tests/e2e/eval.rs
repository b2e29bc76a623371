//! Rank evaluation: nDCG, MRR, recall and P@k against values computed by hand on a small judged
//! set, the comparison of two runs, TREC qrels, the CLI and the HTTP route, and clear errors.

use mira_host::eval::{self, RunSpec};
use mira_host::ingest::{self, IngestOptions, NoProgress};
use mira_host::plugin::PluginLimits;
use mira_server::ServerSettings;
use serde_json::{Value, json};

use crate::common::{Env, SWAP_A_PLUGIN, SWAP_B_PLUGIN, stderr, stdout};
use crate::server::{Server, answer, assert_error, call};

const TEXTS: &str = r#"
name = "texts"
[fields.body]
type = "text"
"#;

/// BM25 orders: apple -> [a, b]; banana -> [c, b]; cherry -> [d, c].
const DOCS: &[(&str, &str)] = &[
    ("a", "apple apple apple"),
    ("b", "apple banana"),
    ("c", "banana banana cherry"),
    ("d", "cherry"),
];

const JUDGMENTS: &str = r#"{"id": "q1", "query": "apple", "relevance": {"b": 2, "a": 0, "d": 1}}
{"id": "q2", "query": "banana", "relevance": {"c": 1}}

{"id": "q3", "query": "cherry", "relevance": {"a": 3}}
"#;

fn texts(env: &Env) -> mira_host::Collection {
    let c = env.create(TEXTS);
    let rows: String = DOCS
        .iter()
        .map(|(id, body)| format!("{}\n", json!({"id": id, "body": body})))
        .collect();
    let path = env.write("texts.jsonl", &rows);
    ingest::ingest(&c, &path, &IngestOptions::default(), &NoProgress).unwrap();
    c
}

/// By hand, k = 3, gain 2^g - 1, discount 1/log2(rank + 1):
/// - q1 ranks [a, b]: DCG = 0 + 3/log2(3) = 1.892789; ideal [2, 1, 0] = 3 + 1/log2(3) =
///   3.630930; nDCG = 0.521297. First relevant at rank 2: RR = 0.5. Recall 1 of {b, d} = 0.5.
///   P@3 = 1/3.
/// - q2 ranks [c, b]: nDCG 1, RR 1, recall 1, P@3 = 1/3.
/// - q3 ranks [d, c]: nothing relevant found: 0, 0, 0, 0.
const NDCG_Q1: f64 = 0.521_297;
const MEAN_NDCG: f64 = (NDCG_Q1 + 1.0) / 3.0;

#[test]
fn metrics_match_the_values_computed_by_hand() {
    let env = Env::new();
    let c = texts(&env);
    let queries = eval::load(JUDGMENTS, "judgments.jsonl", None).unwrap();
    let runs = RunSpec::runs(None, vec![], vec![], None, "");
    let r = eval::run(&c, None, &queries, None, &runs, 3).unwrap();
    let run = &r.runs[0];
    let hits: Vec<Vec<&str>> = run
        .queries
        .iter()
        .map(|q| q.hits.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(
        hits,
        vec![vec!["a", "b"], vec!["c", "b"], vec!["d", "c"]],
        "the orders the hand values assume"
    );
    let q1 = run.queries[0].metrics;
    assert!((q1.ndcg.unwrap() - NDCG_Q1).abs() < 1e-5, "{q1:?}");
    assert_eq!((q1.mrr, q1.recall), (Some(0.5), Some(0.5)));
    assert!((q1.precision - 1.0 / 3.0).abs() < 1e-12);
    let s = run.summary;
    assert_eq!(s.queries, 3);
    assert!((s.ndcg - MEAN_NDCG).abs() < 1e-5, "{s:?}");
    assert!((s.mrr - 0.5).abs() < 1e-12);
    assert!((s.recall - 0.5).abs() < 1e-12);
    assert!((s.precision - 2.0 / 9.0).abs() < 1e-12);
    assert!(r.comparison.is_none());
}

/// A second run whose BM25 floor cuts every hit loses on q1 and q2 and ties on q3; of the 8
/// sign patterns of the deltas (-0.5213, -1, 0), 4 have a mean as far from 0: p = 0.5.
#[test]
fn two_runs_are_compared_query_by_query() {
    let env = Env::new();
    let c = texts(&env);
    let queries = eval::load(JUDGMENTS, "j", None).unwrap();
    let runs = RunSpec::runs(None, vec![], vec![("min_bm25".into(), "100".into())], None, "");
    let r = eval::run(&c, None, &queries, None, &runs, 3).unwrap();
    let cmp = r.comparison.unwrap();
    assert_eq!(cmp.b, "min_bm25=100");
    assert_eq!((cmp.ndcg.wins, cmp.ndcg.losses, cmp.ndcg.ties), (0, 2, 1));
    assert!((cmp.ndcg.mean_delta + MEAN_NDCG).abs() < 1e-5);
    assert!((cmp.ndcg.p_value - 0.5).abs() < 1e-12, "{:?}", cmp.ndcg);
    assert!((cmp.queries[0].delta.unwrap() + NDCG_Q1).abs() < 1e-5);
    assert_eq!(r.runs[1].summary.ndcg, 0.0);
}

/// The same grades from TREC qrels give the same numbers.
#[test]
fn trec_qrels_give_the_grades() {
    let env = Env::new();
    let c = texts(&env);
    let jsonl = "{\"id\": \"q1\", \"query\": \"apple\"}\n{\"id\": \"q2\", \"query\": \"banana\"}\n{\"id\": \"q3\", \"query\": \"cherry\"}\n";
    let qrels = "q1 0 b 2\nq1 0 a 0\nq1 0 d 1\nq2 0 c 1\n# comment\nq3 0 a 3\n";
    let queries = eval::load(jsonl, "q.jsonl", Some((qrels, "q.qrels"))).unwrap();
    let runs = RunSpec::runs(None, vec![], vec![], None, "");
    let r = eval::run(&c, None, &queries, None, &runs, 3).unwrap();
    assert!((r.runs[0].summary.ndcg - MEAN_NDCG).abs() < 1e-5);
    let e = eval::load(jsonl, "q.jsonl", Some(("q9 0 a 1\n", "q.qrels")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("q9"), "{e}");
}

#[test]
fn the_cli_scores_compares_and_names_the_bad_line() {
    let env = Env::new();
    texts(&env);
    let j = env.write("judgments.jsonl", JUDGMENTS);
    let out = env.mira(&["eval", "texts", j.to_str().unwrap(), "-k", "3"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("3 judged queries, k = 3"), "{text}");
    assert!(text.contains(&format!("{MEAN_NDCG:.4}")), "{text}");
    let out = env.mira(&[
        "eval",
        "texts",
        j.to_str().unwrap(),
        "-k",
        "3",
        "--against",
        "min_bm25=100",
        "--per-query",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["comparison"]["ndcg"]["losses"], 2);
    assert_eq!(v["runs"][1]["name"], "min_bm25=100");

    let bad = env.write(
        "bad.jsonl",
        "{\"id\": \"q1\", \"query\": \"apple\", \"relevance\": {\"a\": 1}}\n{\"id\": \"q2\", \"quey\": \"x\"}\n",
    );
    let out = env.mira(&["eval", "texts", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("bad.jsonl:2") && err.contains("quey"), "{err}");
    let out = env.mira(&["eval", "texts", j.to_str().unwrap(), "--set", "colour=red"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown setting `colour`"), "{}", stderr(&out));
}

/// Over HTTP: scores, a staged plugin version against the live one, and the errors.
#[test]
fn the_api_evaluates_and_compares_a_staged_plugin() {
    let env = Env::new();
    texts(&env);
    let s = Server::start(&env, ServerSettings::default(), PluginLimits::default());
    let url = s.url("/v1/collections/texts/eval");
    let (status, v) = call("POST", &url, None, Some(json!({"judgments": JUDGMENTS, "k": 3})));
    assert_eq!(status, 200, "{v}");
    assert!((v["runs"][0]["summary"]["ndcg"].as_f64().unwrap() - MEAN_NDCG).abs() < 1e-5);

    let upload = |path: &str, activate: bool| {
        let r = ureq::post(&s.url(&format!("/v1/plugins?activate={activate}")))
            .set("Content-Type", "application/wasm")
            .send_bytes(&std::fs::read(path).unwrap());
        assert_eq!(answer(r).0, 201);
    };
    let body = json!({"judgments": JUDGMENTS, "k": 3, "against": {"staged_plugin": "swapper"}});
    let (status, v) = call("POST", &url, None, Some(body.clone()));
    assert_eq!(status, 409, "{v}");
    assert_error(&v, "no_staged_version", "conflict");
    upload(SWAP_A_PLUGIN, true);
    upload(SWAP_B_PLUGIN, false);
    let (status, v) = call("POST", &url, None, Some(body));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["runs"][0]["name"], "swapper@1.0.0");
    assert_eq!(v["runs"][1]["name"], "swapper@2.0.0 (staged)");
    // Constant plugin scores keep the retrieval order: every query ties.
    assert_eq!(v["comparison"]["ndcg"]["ties"], 3);
    assert_eq!(v["comparison"]["ndcg"]["p_value"], 1.0);

    for (body, code) in [
        (json!({"judgments": "{\"id\": 1}"}), "invalid_judgments"),
        (json!({"judgments": JUDGMENTS, "k": 0}), "invalid_setting"),
        (
            json!({"judgments": JUDGMENTS, "settings": {"colour": "red"}}),
            "invalid_setting",
        ),
        (
            json!({"judgments": "{\"id\": \"q\", \"image\": \"/etc/passwd\", \"relevance\": {\"a\": 1}}"}),
            "invalid_judgments",
        ),
        (
            json!({"judgments": "{\"id\": \"q\", \"query\": \"x\", \"filter\": \"nope:1\", \"relevance\": {\"a\": 1}}"}),
            "invalid_judgments",
        ),
        (json!({"judgments": JUDGMENTS, "extra": 1}), "invalid_request"),
    ] {
        let (status, v) = call("POST", &url, None, Some(body.clone()));
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["code"], code, "{body}: {v}");
    }
    let many: String = (0..1001)
        .map(|i| format!("{{\"id\": \"q{i}\", \"query\": \"apple\", \"relevance\": {{\"a\": 1}}}}\n"))
        .collect();
    let (status, v) = call("POST", &url, None, Some(json!({"judgments": many})));
    assert_eq!(status, 400, "{v}");
}

/// `[plugins.gate]`: `mira plugin load` refuses a version that loses on the judgment set (here
/// one that must win by 0.1 and only ties), and loads it when it does not lose.
#[test]
fn the_gate_refuses_a_version_that_loses() {
    let env = Env::new();
    texts(&env);
    env.write("data/gate.jsonl", JUDGMENTS);
    let config = |max_loss: &str| {
        env.write(
            "data/mira.toml",
            &format!(
                "[plugins.gate]\ncollection = \"texts\"\njudgments = \"gate.jsonl\"\nk = 3\nmax_loss = {max_loss}\n"
            ),
        );
    };
    config("-0.1");
    let out = env.mira(&["plugin", "load", SWAP_A_PLUGIN]);
    assert!(out.status.success(), "nothing live to lose to: {}", stderr(&out));
    let out = env.mira(&["plugin", "load", SWAP_B_PLUGIN]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not loaded") && err.contains("swapper@2.0.0") && err.contains("ndcg@3"),
        "{err}"
    );
    let out = env.mira(&["plugin", "list", "--json"]);
    assert!(stdout(&out).contains("1.0.0"), "{}", stdout(&out));
    config("0");
    let out = env.mira(&["plugin", "load", SWAP_B_PLUGIN]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("gate passed"), "{}", stdout(&out));
}

/// Over HTTP, activating a staged version runs the gate first: one that must win by 0.1 and
/// only ties is refused with 409 `gate_failed`, and the live version keeps serving.
#[test]
fn the_gate_guards_activation_over_http() {
    let env = Env::new();
    texts(&env);
    env.write("data/gate.jsonl", JUDGMENTS);
    let gate = mira_host::config::GateConfig {
        collection: "texts".into(),
        judgments: "gate.jsonl".into(),
        qrels: None,
        k: 3,
        metric: "ndcg".into(),
        max_loss: -0.1,
    };
    let s = Server::start_gated(&env, ServerSettings::default(), PluginLimits::default(), Some(gate));
    let upload = |path: &str, activate: bool| {
        let r = ureq::post(&s.url(&format!("/v1/plugins?activate={activate}")))
            .set("Content-Type", "application/wasm")
            .send_bytes(&std::fs::read(path).unwrap());
        assert_eq!(answer(r).0, 201);
    };
    upload(SWAP_A_PLUGIN, true);
    upload(SWAP_B_PLUGIN, false);
    let (status, v) = call("POST", &s.url("/v1/plugins/swapper/activate"), None, None);
    assert_eq!(status, 409, "{v}");
    assert_error(&v, "gate_failed", "conflict");
    assert!(v["message"].as_str().unwrap().contains("ndcg@3"), "{v}");
    let (_, list) = call("GET", &s.url("/v1/plugins"), None, None);
    let swapper = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "swapper")
        .unwrap()
        .clone();
    assert_eq!(swapper["version"], "1.0.0", "{swapper}");
}

/// Every response that used an instruction names it with a short hash (the first 12 hex digits
/// of its SHA-256), and /metrics counts searches per hash.
#[test]
fn responses_name_their_instruction_and_metrics_count_it() {
    use sha2::Digest;
    let env = Env::new();
    texts(&env);
    let s = Server::start(&env, ServerSettings::default(), PluginLimits::default());
    let url = s.url("/v1/collections/texts/search");
    let (status, v) = call(
        "POST",
        &url,
        None,
        Some(json!({"text": "apple", "scenario": "general"})),
    );
    assert_eq!(status, 200, "{v}");
    let text = v["instruction"]["text"].as_str().unwrap().to_owned();
    let hash = v["instruction"]["hash"].as_str().unwrap().to_owned();
    let expect: String = sha2::Sha256::digest(text.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hash, expect);
    assert_eq!(v["instruction"]["source"], "plugin");
    assert_eq!(text, v["ranking"]["instruction"].as_str().unwrap());
    call(
        "POST",
        &url,
        None,
        Some(json!({"text": "banana", "scenario": "general"})),
    );
    let (_, none) = call("POST", &url, None, Some(json!({"text": "apple"})));
    assert!(none.get("instruction").is_none(), "nothing used an instruction: {none}");
    let r = ureq::get(&s.url("/metrics")).call().unwrap().into_string().unwrap();
    let line = format!("mira_search_instruction_queries_total{{instruction=\"{hash}\",source=\"plugin\"}} 2");
    assert!(r.contains(&line), "{line} not in\n{r}");
}
