//! Ranking plugins through the host: the built-in scenario plugins in real searches, hostile
//! plugins (loops, memory hogs, traps, bad answers, forbidden imports), quarantine, hot swap under
//! load, the plugin directory through the CLI, and the directory watcher.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mira_host::plugin::RankingStatus;
use mira_host::plugin::{PluginFailure, PluginLimits, PluginRegistry, PluginRuntime};
use mira_host::{Collection, Error, SearchRequest};
use serde_json::json;

use crate::common::*;

const SHOP: &str = r#"
name = "shop"
[fields.title]
type = "text"
analyzer = "english"
[fields.title_zh]
type = "text"
analyzer = "chinese"
[fields.price]
type = "f64"
[fields.rating]
type = "f64"
[fields.in_stock]
type = "bool"
[fields.published]
type = "date"
"#;

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn shop(env: &Env) -> Collection {
    let c = env.create(SHOP);
    let rows = [
        // Identical but for stock.
        json!({"id": "gone", "title": "red silk dress", "title_zh": "红色真丝连衣裙", "price": 40.0, "rating": 4.5, "in_stock": false}),
        json!({"id": "here", "title": "red silk dress", "title_zh": "红色真丝连衣裙", "price": 40.0, "rating": 4.5, "in_stock": true}),
        json!({"id": "blue", "title": "blue dress", "price": 300.0, "rating": 2.0, "in_stock": true}),
    ];
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    let path = env.write("shop.jsonl", &text);
    mira_host::ingest::ingest(&c, &path, &Default::default(), &mira_host::ingest::NoProgress).unwrap();
    c
}

fn ids(r: &mira_host::SearchResponse) -> Vec<&str> {
    r.hits.iter().map(|h| h.id.as_str()).collect()
}

#[test]
fn builtin_plugins_describe_themselves() {
    let r = registry(PluginLimits::default(), None);
    let list = r.list();
    let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["academic", "ecommerce", "general", "news"]);
    let ecommerce = r.get("ecommerce").unwrap();
    assert!(ecommerce.description.scenarios.contains(&"ecommerce".to_string()));
    assert!(ecommerce.description.tag_vocabulary.contains(&"silk".to_string()));
    assert_eq!(ecommerce.description.rerank_window, 40);
}

#[test]
fn ecommerce_scenario_ranks_and_speaks_the_query_language() {
    let env = Env::new();
    let c = shop(&env);
    let r = registry(PluginLimits::default(), None);
    let plain = c.search(&SearchRequest::text("red dress")).unwrap();
    // The two red dresses tie on retrieval (their order is then up to the index): only the
    // plugin can separate them.
    assert_eq!(plain.hits[0].score, plain.hits[1].score);

    let req = SearchRequest {
        scenario: Some("ecommerce".into()),
        explain: true,
        ..SearchRequest::text("red dress")
    };
    let resp = c.search_with(&req, Some(&r)).unwrap();
    let ranking = resp.ranking.as_ref().unwrap();
    assert_eq!(ranking.status, RankingStatus::Ok, "{:?}", ranking.error);
    assert_eq!(ranking.plugin, "ecommerce");
    assert!(ranking.instruction.contains("price, brand, function and user reviews"));
    assert_eq!(
        ids(&resp)[..2],
        ["here", "gone"],
        "the out-of-stock product drops below the in-stock one"
    );
    let p = resp.hits[0].explain.as_ref().unwrap().plugin.unwrap();
    assert_eq!(p.retrieval_score, plain.hits[0].score);
    assert_eq!(p.score, resp.hits[0].score);
    assert!(p.score > resp.hits[1].score);

    let zh = search_by(&c, &r, Pick::Scenario("ecommerce"), "红色 连衣裙").unwrap();
    assert_eq!(
        zh.ranking.unwrap().instruction,
        "判断商品是否与查询需求相关，考虑价格、品牌、功能、用户评价等因素"
    );

    // Request parameters reach the plugin: a price band halves what lies outside it.
    let banded = SearchRequest {
        plugin: Some("ecommerce".into()),
        params: [("min_price".to_string(), "100".to_string())].into(),
        ..SearchRequest::text("dress")
    };
    assert_eq!(ids(&c.search_with(&banded, Some(&r)).unwrap())[0], "blue");

    let err = search_by(&c, &r, Pick::Plugin("nope"), "dress").unwrap_err();
    assert!(matches!(err, Error::PluginNotFound(_)), "{err}");
    let err = search_by(&c, &r, Pick::Scenario("astrology"), "dress").unwrap_err();
    assert!(
        err.to_string().contains("no plugin serves the scenario `astrology`"),
        "{err}"
    );
}

#[test]
fn news_plugin_prefers_fresh_articles() {
    let env = Env::new();
    let c = shop(&env); // any collection with a `published` date works
    let rows = "{\"id\": \"old\", \"title\": \"storm news\", \"published\": \"2020-01-01\"}\n{\"id\": \"new\", \"title\": \"storm news\", \"published\": \"2026-11-28\"}\n";
    mira_host::ingest::ingest(
        &c,
        &env.write("news.jsonl", rows),
        &Default::default(),
        &mira_host::ingest::NoProgress,
    )
    .unwrap();
    let r = registry(PluginLimits::default(), None);
    let req = SearchRequest {
        scenario: Some("news".into()),
        now: Some(1_795_000_000),
        ..SearchRequest::text("storm")
    };
    assert_eq!(ids(&c.search_with(&req, Some(&r)).unwrap()), vec!["new", "old"]);
}

fn hostile_search(c: &Collection, r: &PluginRegistry, mode: &str) -> mira_host::plugin::RankingReport {
    let req = SearchRequest {
        plugin: Some("hostile".into()),
        params: [("mode".to_string(), mode.to_string())].into(),
        ..SearchRequest::text("dress")
    };
    let resp = c
        .search_with(&req, Some(r))
        .expect("a failing plugin never fails the query");
    // The built-in order is served.
    assert_eq!(ids(&resp), ids(&c.search(&SearchRequest::text("dress")).unwrap()));
    resp.ranking.unwrap()
}

#[test]
fn hostile_plugins_fall_back_and_the_engine_keeps_serving() {
    let env = Env::new();
    let c = shop(&env);
    let limits = PluginLimits {
        time_ms: 100,
        memory_mib: 32,
        quarantine_after: 100,
        ..Default::default()
    };
    let r = registry(limits, None);
    r.install(&read(HOSTILE_PLUGIN), "test").unwrap();
    type Expect = fn(&PluginFailure) -> bool;
    let cases: [(&str, Expect); 6] = [
        ("loop", |e| matches!(e, PluginFailure::Timeout { budget_ms: 100 })),
        (
            "hog",
            |e| matches!(e, PluginFailure::OutOfMemory { cap, requested } if *cap == 32 << 20 && *requested > *cap),
        ),
        ("trap", |e| matches!(e, PluginFailure::Trap { .. })),
        (
            "short",
            |e| matches!(e, PluginFailure::BadAnswer { message } if message.contains("2 scores for 3 candidates")),
        ),
        (
            "nan",
            |e| matches!(e, PluginFailure::BadAnswer { message } if message.contains("non-finite")),
        ),
        (
            "error",
            |e| matches!(e, PluginFailure::Refused { message } if message.contains("refusing on purpose")),
        ),
    ];
    for (mode, expected) in cases {
        let report = hostile_search(&c, &r, mode);
        assert_eq!(report.status, RankingStatus::Fallback, "{mode}");
        let error = report.error.as_ref().unwrap();
        assert!(expected(error), "{mode}: {error:?}");
        assert_eq!(report.instruction, mira_host::rerank::DEFAULT_INSTRUCTION);
        // The next query on the same plugin is served normally.
        let ok = hostile_search(&c, &r, "none");
        assert_eq!(ok.status, RankingStatus::Ok, "after {mode}: {:?}", ok.error);
    }
}

#[test]
fn failing_plugins_are_quarantined_until_replaced() {
    let env = Env::new();
    let c = shop(&env);
    let r = registry(
        PluginLimits {
            quarantine_after: 3,
            ..Default::default()
        },
        None,
    );
    r.install(&read(HOSTILE_PLUGIN), "test").unwrap();
    for _ in 0..3 {
        assert!(matches!(
            hostile_search(&c, &r, "trap").error,
            Some(PluginFailure::Trap { .. })
        ));
    }
    // Quarantined: not even called for a request it would have served.
    let report = hostile_search(&c, &r, "none");
    assert!(
        matches!(report.error, Some(PluginFailure::Quarantined { failures: 3 })),
        "{:?}",
        report.error
    );
    assert!(r.list().iter().any(|p| p.name == "hostile" && p.quarantined));
    // A new version (here: the same component, reloaded) starts with a clean record.
    r.install(&read(HOSTILE_PLUGIN), "test").unwrap();
    assert_eq!(hostile_search(&c, &r, "none").status, RankingStatus::Ok);
}

/// A component refused at load leaves no compiled artifact in the cache; one that loads is
/// cached (and the cache serves its next load).
#[test]
fn refused_components_leave_no_compiled_artifact() {
    let env = Env::new();
    let cache = env.path().join("plugin-cache");
    let artifacts = || {
        std::fs::read_dir(&cache)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                    .count()
            })
            .unwrap_or(0)
    };
    let runtime = PluginRuntime::new(PluginLimits::default(), Some(&cache)).unwrap();
    let r = PluginRegistry::new(
        runtime,
        Some(env.path().join("plugins")),
        Default::default(),
        Default::default(),
    );
    for refused in [BROKEN_PLUGIN, stowaway_plugin()] {
        assert!(r.install(&read(refused), "test").is_err());
        assert!(r.persist(&read(refused)).is_err());
        assert_eq!(artifacts(), 0, "{refused} left a compiled artifact");
    }
    r.install(&read(SWAP_A_PLUGIN), "test").unwrap();
    assert_eq!(artifacts(), 1);
    r.install(&read(SWAP_A_PLUGIN), "test").unwrap();
    assert_eq!(artifacts(), 1);
}

#[test]
fn bad_components_are_refused_at_load_with_reasons() {
    let r = registry(PluginLimits::default(), None);
    let err = r.install(&read(BROKEN_PLUGIN), "test").unwrap_err();
    assert!(
        matches!(&err, PluginFailure::Validation { message } if message.contains("fuse") && message.contains("non-finite")),
        "{err}"
    );
    let err = r.install(&read(stowaway_plugin()), "test").unwrap_err();
    // Every import nothing offers is named at once; the host's own and WASI are not.
    assert!(
        matches!(&err, PluginFailure::ForbiddenImport { message }
            if message.contains("imports 2 interface(s) Mira does not offer: acme:spy/exfil@1.0.0, wasi:keyvalue/store@0.2.0 (")),
        "{err}"
    );
    assert!(err.to_string().contains("imports what Mira does not offer"), "{err}");
    let err = r.install(b"definitely not wasm", "test").unwrap_err();
    assert!(matches!(err, PluginFailure::Invalid { .. }), "{err}");
    // A core module (not a component) is refused too.
    let err = r.install(b"\0asm\x01\0\0\0", "test").unwrap_err();
    assert!(matches!(err, PluginFailure::Invalid { .. }), "{err}");
    assert_eq!(r.list().len(), 4, "nothing was installed");
}

#[test]
fn hot_swap_under_load_fails_no_query() {
    let env = Env::new();
    let c = Arc::new(shop(&env));
    let r = registry(PluginLimits::default(), None);
    let (a, b) = (read(SWAP_A_PLUGIN), read(SWAP_B_PLUGIN));
    r.install(&a, "swap-a").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (c, r, stop, served) = (c.clone(), r.clone(), stop.clone(), served.clone());
            std::thread::spawn(move || {
                let req = SearchRequest {
                    plugin: Some("swapper".into()),
                    ..SearchRequest::text("dress")
                };
                while !stop.load(Ordering::Relaxed) {
                    let resp = c.search_with(&req, Some(&r)).expect("query failed during a swap");
                    let ranking = resp.ranking.unwrap();
                    assert_eq!(ranking.status, RankingStatus::Ok, "{:?}", ranking.error);
                    // Each answer comes wholly from one version.
                    let expected = if ranking.version == "1.0.0" { 1.0 } else { 2.0 };
                    assert_eq!(ranking.instruction, format!("swapper {}", ranking.version));
                    assert!(resp.hits.iter().all(|h| h.score == expected));
                    served.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let check = |version: &str| {
        let req = SearchRequest {
            plugin: Some("swapper".into()),
            ..SearchRequest::text("dress")
        };
        assert_eq!(c.search_with(&req, Some(&r)).unwrap().ranking.unwrap().version, version);
    };
    let started = Instant::now();
    for round in 0..4 {
        std::thread::sleep(Duration::from_millis(30));
        let (bytes, version) = if round % 2 == 0 { (&b, "2.0.0") } else { (&a, "1.0.0") };
        r.install(bytes, "swap").unwrap();
        check(version);
    }
    // Active 1.0.0 (round 3), previous 2.0.0: a rollback swaps them, a second swaps back.
    r.rollback("swapper").unwrap();
    check("2.0.0");
    r.rollback("swapper").unwrap();
    check("1.0.0");
    std::thread::sleep(Duration::from_millis(30));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("a worker saw a failed query");
    }
    assert!(
        served.load(Ordering::Relaxed) > 0,
        "no query ran in {:?}",
        started.elapsed()
    );
}

#[test]
fn plugin_directory_through_the_cli() {
    let env = Env::new();
    let out = env.mira(&["plugin", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("ecommerce") && stdout(&out).contains("built-in"));

    let load = |p: &str| env.mira(&["plugin", "load", p]);
    let o = load(SWAP_A_PLUGIN);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("loaded swapper 1.0.0"));
    assert!(load(SWAP_B_PLUGIN).status.success());
    let list: serde_json::Value = serde_json::from_str(&stdout(&env.mira(&["plugin", "list", "--json"]))).unwrap();
    let swapper = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "swapper")
        .unwrap();
    assert_eq!(swapper["version"], "2.0.0");

    let o = env.mira(&["plugin", "rollback", "swapper"]);
    assert!(stdout(&o).contains("back to version 1.0.0"), "{}", stderr(&o));
    let o = load(BROKEN_PLUGIN);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("failed its load check"), "{}", stderr(&o));
    let o = load(stowaway_plugin());
    assert!(
        stderr(&o).contains("imports what Mira does not offer"),
        "{}",
        stderr(&o)
    );

    // A search through the CLI uses the directory's version.
    let schema = env.write("shop.toml", SHOP);
    assert!(env.mira(&["create", schema.to_str().unwrap()]).status.success());
    let rows = env.write("rows.jsonl", "{\"id\": \"a\", \"title\": \"red dress\"}\n");
    assert!(env.mira(&["index", "shop", rows.to_str().unwrap()]).status.success());
    let o = env.mira(&["search", "shop", "dress", "--plugin", "swapper", "--json"]);
    let resp: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(resp["ranking"]["version"], "1.0.0");
    assert_eq!(resp["hits"][0]["score"], 1.0);

    // Plugins named by path in the configuration load too.
    let config = env.write("mira.toml", &format!("[plugins]\nfiles = [{SWAP_B_PLUGIN:?}]\n"));
    let o = env.mira(&["--config", config.to_str().unwrap(), "plugin", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let swapper = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "swapper")
        .unwrap();
    assert_eq!(
        (swapper["version"].as_str(), swapper["origin"].as_str()),
        (Some("2.0.0"), Some(SWAP_B_PLUGIN))
    );

    let o = env.mira(&["plugin", "unload", "swapper"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.mira(&["search", "shop", "dress", "--plugin", "swapper"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no plugin `swapper` is loaded"), "{}", stderr(&o));
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn watched_directory_hot_reloads() {
    let env = Env::new();
    let dir = env.path().join("plugins");
    let r = registry(PluginLimits::default(), Some(dir.clone()));
    let _watch = r.watch().unwrap();
    let version = || r.get("swapper").map(|p| p.description.version.clone());
    std::fs::copy(SWAP_A_PLUGIN, dir.join("swapper.wasm")).unwrap();
    wait_for("version 1", || version().as_deref() == Some("1.0.0"));
    std::fs::copy(SWAP_B_PLUGIN, dir.join("swapper.wasm")).unwrap();
    wait_for("version 2", || version().as_deref() == Some("2.0.0"));
    // A broken file leaves the active version in place.
    std::fs::copy(BROKEN_PLUGIN, dir.join("swapper.wasm")).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(version().as_deref(), Some("2.0.0"));
    std::fs::copy(SWAP_A_PLUGIN, dir.join("swapper.wasm")).unwrap();
    wait_for("version 1 again", || version().as_deref() == Some("1.0.0"));
    std::fs::remove_file(dir.join("swapper.wasm")).unwrap();
    wait_for("unload", || version().is_none());
}

#[test]
fn general_and_academic_plugins_through_the_host() {
    let env = Env::new();
    let schema = "name = \"papers\"\n[fields.title]\ntype = \"text\"\n[fields.citations]\ntype = \"i64\"\n[fields.year]\ntype = \"i64\"\n";
    let c = env.create(schema);
    // BM25 prefers the shorter title by ~1.18x; 5000 citations are worth ~1.37x to `academic`.
    let rows = "{\"id\": \"obscure\", \"title\": \"graph networks\", \"citations\": 0, \"year\": 2024}\n\
                {\"id\": \"cited\", \"title\": \"graph networks survey\", \"citations\": 5000, \"year\": 2024}\n";
    mira_host::ingest::ingest(
        &c,
        &env.write("p.jsonl", rows),
        &Default::default(),
        &mira_host::ingest::NoProgress,
    )
    .unwrap();
    // The configured scenario table and per-plugin configuration reach the plugins.
    let runtime = PluginRuntime::new(PluginLimits::default(), None).unwrap();
    let scenarios = HashMap::from([("research".to_string(), "academic".to_string())]);
    let configs = HashMap::from([(
        "general".to_string(),
        HashMap::from([("w_rerank".to_string(), "-1".to_string())]),
    )]);
    let r = PluginRegistry::new(runtime, None, scenarios, configs);
    for (name, bytes) in BUILTIN_PLUGINS {
        let outcome = r.install(bytes, "built-in");
        if *name == "general" {
            // A misconfigured plugin fails its load check, with the reason.
            let err = outcome.unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("the plugin failed its load check: fuse: refused"),
                "{err}"
            );
            assert!(err.to_string().contains("w_rerank"), "{err}");
        } else {
            outcome.unwrap();
        }
    }
    let plain = c.search(&SearchRequest::text("graph")).unwrap();
    assert_eq!(ids(&plain), vec!["obscure", "cited"]);
    let req = SearchRequest {
        scenario: Some("research".into()),
        now: Some(1_767_225_600),
        ..SearchRequest::text("graph")
    };
    let resp = c.search_with(&req, Some(&r)).unwrap();
    let ranking = resp.ranking.as_ref().unwrap();
    assert_eq!(
        (ranking.plugin.as_str(), ranking.status),
        ("academic", RankingStatus::Ok)
    );
    assert_eq!(ids(&resp), vec!["cited", "obscure"]);
    assert!(ranking.instruction.contains("method, conclusions and data sources"));
    // general, correctly configured, keeps the retrieval order without reranker scores and
    // speaks Chinese to Chinese queries.
    let r = registry(PluginLimits::default(), None);
    let resp = search_by(&c, &r, Pick::Plugin("general"), "graph").unwrap();
    assert_eq!(resp.ranking.as_ref().unwrap().status, RankingStatus::Ok);
    assert_eq!(ids(&resp), ids(&plain));
    let zh = search_by(&c, &r, Pick::Plugin("general"), "图 网络").unwrap();
    assert_eq!(
        zh.ranking.unwrap().instruction,
        "给定一个网络搜索查询，检索能够回答该查询的相关段落"
    );
}

/// How a search names its plugin.
enum Pick<'a> {
    Plugin(&'a str),
    Scenario(&'a str),
}

/// A text search ranked by a plugin named directly or through a scenario.
fn search_by(
    c: &Collection,
    r: &PluginRegistry,
    pick: Pick,
    text: &str,
) -> mira_host::Result<mira_host::SearchResponse> {
    let mut req = SearchRequest::text(text);
    match pick {
        Pick::Plugin(p) => req.plugin = Some(p.into()),
        Pick::Scenario(s) => req.scenario = Some(s.into()),
    }
    c.search_with(&req, Some(r))
}

/// Each plugin's list entry says what its calls cost: per function, calls since load (the
/// smoke test's included) and the p50/p99 of the recent ones.
#[test]
fn plugin_list_shows_the_measured_cost_of_each_call() {
    let env = Env::new();
    let c = shop(&env);
    let r = registry(PluginLimits::default(), None);
    let req = SearchRequest {
        scenario: Some("ecommerce".into()),
        ..SearchRequest::text("red dress")
    };
    for _ in 0..5 {
        c.search_with(&req, Some(&r)).unwrap();
    }
    let list = r.list();
    let eco = list.iter().find(|p| p.name == "ecommerce").unwrap();
    let cost = |call: &str| {
        eco.costs
            .iter()
            .find(|c| c.call == call)
            .unwrap_or_else(|| panic!("{call}: {eco:?}"))
    };
    assert_eq!(cost("fuse").calls, 1 + 5, "the smoke test's call and five queries'");
    assert_eq!(
        cost("instantiate").calls,
        2 + 5,
        "describe's and the smoke test's instances, then one a query"
    );
    for c in &eco.costs {
        assert!(c.p50_us <= c.p99_us, "{c:?}");
    }
    assert!(cost("fuse").p99_us > 0);
    let news = list.iter().find(|p| p.name == "news").unwrap();
    assert_eq!(
        news.costs.iter().find(|c| c.call == "fuse").unwrap().calls,
        1,
        "only its smoke test"
    );
    let out = env.mira(&["plugin", "list"]);
    assert!(
        stdout(&out).contains("cost per call: instantiate p50"),
        "{}",
        stdout(&out)
    );
}

/// `[plugin_limits.NAME]`: one plugin's own limits (here fewer candidates), shown in the list;
/// an override the instance pool cannot hold is refused naming its table.
#[test]
fn a_plugin_has_its_own_limits_from_configuration() {
    let env = Env::new();
    let c = shop(&env);
    let config = env.write(
        "mira.toml",
        "[plugins]\nmemory_mib = 64\n[plugin_limits.ecommerce]\nmax_candidates = 2\ntime_ms = 80\n",
    );
    let config = mira_host::config::EngineConfig::from_file(&config).unwrap();
    let runtime = PluginRuntime::new(config.plugins.limits, None).unwrap();
    let r = PluginRegistry::new(runtime, None, Default::default(), Default::default())
        .with_limits(config.plugin_limits.clone());
    for (_, bytes) in BUILTIN_PLUGINS {
        r.install(bytes, "built-in").unwrap();
    }
    let req = SearchRequest {
        scenario: Some("ecommerce".into()),
        top_k: Some(1),
        ..SearchRequest::text("dress")
    };
    let resp = c.search_with(&req, Some(&r)).unwrap();
    assert_eq!(resp.ranking.unwrap().candidates, 2, "its own max_candidates");
    let general = SearchRequest {
        scenario: Some("general".into()),
        top_k: Some(1),
        ..SearchRequest::text("dress")
    };
    assert!(
        c.search_with(&general, Some(&r)).unwrap().ranking.unwrap().candidates > 2,
        "others keep [plugins]'"
    );
    let list = r.list();
    let eco = list.iter().find(|p| p.name == "ecommerce").unwrap();
    assert_eq!(
        (eco.limits.max_candidates, eco.limits.time_ms, eco.limits.memory_mib),
        (2, 80, 64)
    );
    let bad = env.write(
        "bad.toml",
        "[plugins]\nmemory_mib = 64\n[plugin_limits.ecommerce]\nmemory_mib = 512\n",
    );
    let e = mira_host::config::EngineConfig::from_file(&bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[plugin_limits.ecommerce]") && e.contains("memory_mib"),
        "{e}"
    );
}

/// Host pressure is not the plugin's fault: with every instance slot taken, a query waits
/// within its budget, then is refused as busy (503 over HTTP), and however often that happens
/// the plugin is not quarantined; once a slot frees the plugin serves again.
#[test]
fn an_exhausted_instance_pool_never_quarantines() {
    let env = Env::new();
    let c = shop(&env);
    let limits = PluginLimits {
        time_ms: 20,
        pool_components: 1,
        ..PluginLimits::default()
    };
    let r = registry(limits, None);
    let eco = r.get("ecommerce").unwrap();
    let held = eco.session().unwrap();
    let req = SearchRequest {
        scenario: Some("ecommerce".into()),
        ..SearchRequest::text("dress")
    };
    for _ in 0..(limits.quarantine_after + 2) {
        let started = Instant::now();
        match c.search_with(&req, Some(&r)) {
            Err(e @ Error::Plugin(PluginFailure::Busy { .. })) => {
                assert_eq!(e.code(), "plugins_busy");
                assert_eq!(e.fault(), mira_host::Fault::Unavailable);
                assert!(started.elapsed() >= Duration::from_millis(20), "it waited its budget");
            }
            other => panic!("expected busy, got {other:?}"),
        }
    }
    assert!(
        eco.quarantine().is_none(),
        "host pressure is not counted against the plugin"
    );
    assert_eq!(eco.counts(), (0, 0));
    drop(held);
    let resp = c.search_with(&req, Some(&r)).unwrap();
    assert_eq!(resp.ranking.unwrap().status, RankingStatus::Ok);
}

/// A plugin built against the frozen `mira:ranking@0.1.0` (records to `fuse`, every field) loads
/// and serves beside the 0.2 built-ins (columns of the fields they name).
#[test]
fn plugins_of_both_wit_lines_load_and_serve() {
    let env = Env::new();
    let c = shop(&env);
    let r = registry(PluginLimits::default(), None);
    let legacy = r.install(&read(LEGACY_PLUGIN), "test").unwrap();
    assert_eq!(legacy.description.wit, "0.1");
    assert!(legacy.description.fuse_fields.is_empty());
    let eco = r.get("ecommerce").unwrap();
    assert_eq!(eco.description.wit, "0.2");
    assert_eq!(eco.description.fuse_fields, ["price", "rating", "reviews", "in_stock"]);
    let listed = r.list();
    let entry = |name: &str| listed.iter().find(|p| p.name == name).unwrap();
    assert_eq!((entry("legacy").wit, entry("ecommerce").wit), ("0.1", "0.2"));

    // The 0.1 plugin orders by rating, which it finds among all the fields it gets.
    let req = SearchRequest {
        plugin: Some("legacy".into()),
        ..SearchRequest::text("dress")
    };
    let resp = c.search_with(&req, Some(&r)).unwrap();
    let ranking = resp.ranking.as_ref().unwrap();
    assert_eq!(ranking.status, RankingStatus::Ok, "{:?}", ranking.error);
    assert!(ranking.instruction.contains("mira:ranking@0.1.0"));
    assert_eq!(
        ids(&resp).last(),
        Some(&"blue"),
        "rating 2.0 ranks last: {:?}",
        ids(&resp)
    );
    // The 0.2 plugin reads its four fields as columns: stock still decides between twins.
    let req = SearchRequest {
        scenario: Some("ecommerce".into()),
        ..SearchRequest::text("red silk dress")
    };
    let resp = c.search_with(&req, Some(&r)).unwrap();
    assert_eq!(resp.ranking.as_ref().unwrap().status, RankingStatus::Ok);
    let order = ids(&resp);
    let pos = |id| order.iter().position(|x| *x == id).unwrap();
    assert!(pos("here") < pos("gone"), "{order:?}");
}
