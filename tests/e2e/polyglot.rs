//! Plugins from other toolchains, and the WASI sandbox every plugin runs in: a Python plugin
//! (componentize-py) and a JavaScript one (componentize-js) built from `plugins/python/shop` and
//! `plugins/js/shop` with each toolchain's defaults by `mira plugin build`, loaded and run through
//! search, under concurrency; a Rust plugin built for wasm32-wasip2 (`sneaky`) probing what the
//! sandbox denies; `mira plugin new` projects in each language built and tested.
//!
//! The toolchains come from `.ci/run` (PATH). Without them these tests say so and pass, except
//! under CI (`MIRA_CI`), where a missing toolchain fails them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use mira_host::plugin::{LoadedPlugin, PluginFailure, PluginLimits, RankingStatus, wit};
use mira_host::{Collection, SearchRequest};
use serde_json::json;

use crate::common::*;

const SHOP: &str = r#"
name = "shop"
[fields.title]
type = "text"
analyzer = "english"
[fields.price]
type = "f64"
[fields.rating]
type = "f64"
[fields.in_stock]
type = "bool"
"#;

fn shop(env: &Env) -> Collection {
    let c = env.create(SHOP);
    let mut text = String::new();
    // `gone` and `here` are identical but for stock; the plugins weigh stock and rating.
    for r in [
        json!({"id": "gone", "title": "red silk dress", "price": 40.0, "rating": 4.5, "in_stock": false}),
        json!({"id": "here", "title": "red silk dress", "price": 40.0, "rating": 4.5, "in_stock": true}),
        json!({"id": "blue", "title": "blue dress", "price": 300.0, "rating": 2.0, "in_stock": true}),
    ] {
        text.push_str(&format!("{r}\n"));
    }
    for i in 0..40 {
        text.push_str(&format!(
            "{}\n",
            json!({"id": format!("d{i}"), "title": format!("summer dress number {i}"), "price": 10.0 + f64::from(i), "rating": f64::from(i % 5), "in_stock": i % 3 != 0})
        ));
    }
    let path = env.write("shop.jsonl", &text);
    mira_host::ingest::ingest(&c, &path, &Default::default(), &mira_host::ingest::NoProgress).unwrap();
    c
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `mira` with no data directory of interest.
fn mira(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mira"))
        .args(args)
        .env("MIRA_DATA_DIR", std::env::temp_dir().join("mira-polyglot-unused"))
        .output()
        .expect("run mira")
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Whether a toolchain is installed; under CI its absence fails the test.
fn toolchain(bin: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|d| d.join(bin).is_file());
    if !found {
        assert!(
            std::env::var_os("MIRA_CI").is_none(),
            "{bin} is not on PATH; .ci/run installs it"
        );
        eprintln!("skipped: {bin} is not on PATH (.ci/run installs it)");
    }
    found
}

/// Builds a plugin source directory once per test run with `mira plugin build`.
fn built(cell: &'static OnceLock<Option<PathBuf>>, bin: &str, dir: &str, file: &str) -> Option<Vec<u8>> {
    cell.get_or_init(|| {
        if !toolchain(bin) {
            return None;
        }
        let out = std::env::temp_dir().join(format!("mira-test-{}-{file}", std::process::id()));
        let o = mira(&[
            "plugin",
            "build",
            workspace().join(dir).to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "mira plugin build {dir}: {}", text(&o));
        Some(out)
    })
    .as_ref()
    .map(|p| std::fs::read(p).unwrap())
}

fn python_shop() -> Option<Vec<u8>> {
    static CELL: OnceLock<Option<PathBuf>> = OnceLock::new();
    built(&CELL, "componentize-py", "plugins/python/shop", "pyshop.wasm")
}

fn js_shop() -> Option<Vec<u8>> {
    static CELL: OnceLock<Option<PathBuf>> = OnceLock::new();
    built(&CELL, "componentize-js", "plugins/js/shop", "jsshop.wasm")
}

/// A registry with the built-in plugins whose compiled artifacts are cached for the whole run
/// (a Python or JavaScript component takes seconds to compile).
fn cached_registry() -> std::sync::Arc<mira_host::plugin::PluginRegistry> {
    use mira_host::plugin::{PluginRegistry, PluginRuntime};
    let cache = std::env::temp_dir().join(format!("mira-test-plugin-cache-{}", std::process::id()));
    let runtime = PluginRuntime::new(PluginLimits::default(), Some(&cache)).unwrap();
    let r = PluginRegistry::new(runtime, None, Default::default(), Default::default());
    for (_, bytes) in BUILTIN_PLUGINS {
        r.install(bytes, "built-in").unwrap();
    }
    std::sync::Arc::new(r)
}

fn request(query: &str, now: i64, params: &[(&str, &str)]) -> wit::Request {
    wit::Request {
        query: query.into(),
        has_image_query: false,
        scenario: None,
        params: params
            .iter()
            .map(|(k, v)| wit::Param {
                key: (*k).into(),
                value: (*v).into(),
            })
            .collect(),
        now,
    }
}

/// What the plugin's `instruction` answers to `probe=what` (the probing plugins report there).
fn probe(p: &LoadedPlugin, what: &str, now: i64) -> Result<String, PluginFailure> {
    let req = request("probe", now, &[("probe", what)]);
    p.session_for(&req)?.instruction(&req)
}

/// A search through the plugin: the ranking report must be `ok`, `here` above `gone`.
fn ranks_the_shop(c: &Collection, r: &mira_host::plugin::PluginRegistry, name: &str) {
    let req = SearchRequest {
        plugin: Some(name.into()),
        ..SearchRequest::text("red silk dress")
    };
    let resp = c.search_with(&req, Some(r)).unwrap();
    let ranking = resp.ranking.unwrap();
    assert_eq!(ranking.status, RankingStatus::Ok, "{name}: {:?}", ranking.error);
    let ids: Vec<&str> = resp.hits.iter().map(|h| h.id.as_str()).collect();
    let pos = |id: &str| ids.iter().position(|x| *x == id).unwrap();
    assert!(pos("here") < pos("gone"), "{name} weighs stock: {ids:?}");
}

#[test]
fn python_and_javascript_plugins_built_with_defaults_serve_search_under_load() {
    let plugins: Vec<(&str, Vec<u8>)> = [("pyshop", python_shop()), ("jsshop", js_shop())]
        .into_iter()
        .filter_map(|(n, b)| b.map(|b| (n, b)))
        .collect();
    if plugins.is_empty() {
        return;
    }
    let env = Env::new();
    let c = shop(&env);
    let r = cached_registry();
    for (name, bytes) in &plugins {
        let p = r.install(bytes, "test").unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.name(), *name);
        assert_eq!(p.description.tag_vocabulary, ["dress", "shoes", "bag", "shirt"]);
        ranks_the_shop(&c, &r, name);
        // 16 queries at once, with the default limits: the pool holds them and none falls back.
        let started = Instant::now();
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..16)
                .map(|i| {
                    let (c, r) = (&c, &r);
                    s.spawn(move || {
                        let req = SearchRequest {
                            plugin: Some((*name).into()),
                            ..SearchRequest::text(if i % 2 == 0 { "summer dress" } else { "red dress" })
                        };
                        let ranking = c.search_with(&req, Some(r)).unwrap().ranking.unwrap();
                        (ranking.status, ranking.error)
                    })
                })
                .collect();
            for w in workers {
                let (status, error) = w.join().unwrap();
                assert_eq!(
                    status,
                    RankingStatus::Ok,
                    "{name} under 16 concurrent queries: {error:?}"
                );
            }
        });
        let (calls, failures) = p.counts();
        assert_eq!((calls, failures), (17, 0), "{name}");
        eprintln!("{name}: 16 concurrent queries in {:?}", started.elapsed());
    }
}

#[test]
fn python_print_and_javascript_console_log_reach_the_host_log() {
    for (name, bytes) in [("pyshop", python_shop()), ("jsshop", js_shop())] {
        let Some(bytes) = bytes else { continue };
        let path = std::env::temp_dir().join(format!("mira-test-log-{}-{name}.wasm", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let o = mira(&[
            "plugin",
            "test",
            path.to_str().unwrap(),
            "--param",
            "say=hello from the sandbox",
        ]);
        let out = text(&o);
        assert!(o.status.success(), "{out}");
        let line = out
            .lines()
            .find(|l| l.contains(&format!("{name} says hello from the sandbox")))
            .unwrap_or_else(|| panic!("{name}'s output is not in the host log:\n{out}"));
        assert!(
            line.contains(&format!("plugin=\"{name}\"")) && line.contains("stream=\"stdout\""),
            "{line}"
        );
        // `mira plugin test` shows every answer and what each call cost.
        assert!(
            out.contains("fuse, best first:") && out.contains("fuse ") && out.contains("p99"),
            "{out}"
        );
    }
}

#[test]
fn the_sandbox_grants_no_files_environment_or_network() {
    let r = cached_registry();
    let sneaky = r.install(&std::fs::read(SNEAKY_PLUGIN).unwrap(), "test").unwrap();
    let now = 1_750_000_000;
    for what in ["file", "list", "write", "env", "socket", "resolve"] {
        let answer = probe(&sneaky, what, now).unwrap();
        assert!(answer.starts_with(&format!("probe {what}: denied")), "{answer}");
    }
    assert_eq!(probe(&sneaky, "args", now).unwrap(), "probe args: allowed: 0 args");
    // Printing never fails (stdout and stderr go to the log).
    assert_eq!(probe(&sneaky, "print", now).unwrap(), "probe print: allowed: printed");
    assert!(!Path::new("/tmp/mira-sneaky").exists(), "nothing was written");
    // WASI resources live in host memory, outside the memory cap: a plugin that makes them in a
    // loop is stopped at the table's cap, cleanly, well inside its time budget.
    match probe(&sneaky, "resources", now) {
        // (Mira's cap on WASI's table, or wasmtime's on a store's handles: whichever comes first.)
        Err(PluginFailure::Trap { message }) => assert!(
            message.contains("resource table has no free keys") || message.contains("store handle limit exceeded"),
            "{message}"
        ),
        other => panic!("an endless resource loop must trap: {other:?}"),
    }

    if let Some(bytes) = python_shop() {
        let py = r.install(&bytes, "test").unwrap();
        for what in ["file", "env", "socket", "http"] {
            let answer = probe(&py, what, now).unwrap();
            assert!(answer.starts_with(&format!("probe {what}: denied")), "{answer}");
        }
    }
    if let Some(bytes) = js_shop() {
        let js = r.install(&bytes, "test").unwrap();
        // JavaScript's fetch reaches wasi:http, which is linked only to refuse: a clean trap.
        match probe(&js, "http", now) {
            Err(PluginFailure::Trap { message }) => {
                assert!(
                    message.contains("plugins have no network") && message.contains("wasi:http"),
                    "{message}"
                );
                assert!(!message.contains("wasm backtrace"), "{message}");
            }
            other => panic!("fetch must fail: {other:?}"),
        }
    }
    // The host is unharmed: every plugin still serves.
    let env = Env::new();
    let c = shop(&env);
    for name in ["sneaky", "pyshop", "jsshop"] {
        if r.get(name).is_some() {
            let req = SearchRequest {
                plugin: Some(name.into()),
                ..SearchRequest::text("dress")
            };
            let ranking = c.search_with(&req, Some(&r)).unwrap().ranking.unwrap();
            assert_eq!(ranking.status, RankingStatus::Ok, "{name}: {:?}", ranking.error);
        }
    }
}

#[test]
fn clocks_read_the_request_time_randomness_is_seeded_and_sleep_never_blocks() {
    let r = cached_registry();
    let sneaky = r.install(&std::fs::read(SNEAKY_PLUGIN).unwrap(), "test").unwrap();
    let now = 1_750_000_000;
    assert_eq!(
        probe(&sneaky, "clock", now).unwrap(),
        format!("probe clock: allowed: {now}")
    );
    assert_eq!(probe(&sneaky, "clock", 86_400).unwrap(), "probe clock: allowed: 86400");
    let random = |now| probe(&sneaky, "random", now).unwrap();
    assert_eq!(random(now), random(now), "the same request draws the same numbers");
    assert_ne!(random(now), random(now + 1), "another request draws others");
    // An hour's sleep passes in virtual time: the call returns at once, within its 50 ms budget.
    let started = Instant::now();
    assert_eq!(
        probe(&sneaky, "sleep", now).unwrap(),
        "probe sleep: allowed: slept 3600s"
    );
    assert!(started.elapsed().as_secs() < 10);

    for (name, bytes) in [("pyshop", python_shop()), ("jsshop", js_shop())] {
        let Some(bytes) = bytes else { continue };
        let p = r.install(&bytes, "test").unwrap();
        let answer = probe(&p, "clock", now).unwrap();
        assert!(
            answer.starts_with(&format!("probe clock: allowed: {now} ")),
            "{name}: {answer}"
        );
        assert_eq!(answer, probe(&p, "clock", now).unwrap(), "{name} is deterministic");
        assert_ne!(answer, probe(&p, "clock", now + 1).unwrap(), "{name}");
    }
}

#[test]
fn new_projects_build_and_test_in_every_language() {
    let env = Env::new();
    for (lang, bin) in [
        ("python", "componentize-py"),
        ("js", "componentize-js"),
        ("rust", "cargo"),
    ] {
        if !toolchain(bin) {
            continue;
        }
        let name = format!("my-{lang}-plugin");
        let dir = env.path().join(&name);
        let o = mira(&["plugin", "new", &name, "--lang", lang, "--dir", dir.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(dir.join("wit/ranking.wit").is_file() && dir.join("README.md").is_file());
        // Writing over a project is refused.
        let again = mira(&["plugin", "new", &name, "--lang", lang, "--dir", dir.to_str().unwrap()]);
        assert!(
            !again.status.success() && text(&again).contains("not empty"),
            "{}",
            text(&again)
        );
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mira"));
        cmd.args(["plugin", "build", dir.to_str().unwrap()]);
        if lang == "rust" {
            // One target directory for every run, so the SDK's dependencies build once.
            cmd.env("CARGO_TARGET_DIR", workspace().join("target/plugin-projects"));
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{lang}: {}", text(&o));
        let wasm = dir.join(format!("{name}.wasm"));
        assert!(wasm.is_file(), "{lang}: {}", text(&o));
        let o = mira(&["plugin", "test", wasm.to_str().unwrap()]);
        let out = text(&o);
        assert!(o.status.success(), "{lang}: {out}");
        assert!(
            out.contains(&format!("{name} 0.1.0")) && out.contains("fuse, best first:"),
            "{out}"
        );
        // The sample's best-rated, most relevant product comes first.
        let first = out.lines().skip_while(|l| !l.starts_with("fuse")).nth(1).unwrap_or("");
        assert!(first.trim_start().starts_with("p-red-silk"), "{lang}: {out}");
    }
    let o = mira(&[
        "plugin",
        "new",
        "Bad Name",
        "--lang",
        "python",
        "--dir",
        env.path().join("bad").to_str().unwrap(),
    ]);
    assert!(!o.status.success() && text(&o).contains("lowercase"), "{}", text(&o));
    let o = mira(&["plugin", "build", env.path().to_str().unwrap()]);
    assert!(
        !o.status.success() && text(&o).contains("not a plugin project"),
        "{}",
        text(&o)
    );
}
