//! `mira-bench server`: a bounded load test of the HTTP server on loopback. Client threads send
//! searches (the e-commerce plugin by scenario, and the `swapper` test plugin by name) to an
//! in-process server over a generated catalogue; halfway through, a new version of `swapper` is
//! uploaded through the API (a hot swap under load). Reports throughput, p50/p99 of the round
//! trip and of each stage the server reports, which plugin versions answered, and failures,
//! which must be zero.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mira_host::plugin::{PluginLimits, PluginRegistry, PluginRuntime};
use mira_host::{Catalog, CollectionSchema};
use mira_server::{AppState, ServerSettings};
use serde::Serialize;
use serde_json::{Value, json};

use mira_test_artifacts::{BUILTIN_PLUGINS, SWAP_A_PLUGIN, SWAP_B_PLUGIN};

const QUERIES: &[&str] = &[
    "red dress",
    "leather boots",
    "wool scarf",
    "blue jacket",
    "红色 连衣裙",
    "silk",
    "bag",
    "running shoes",
];

#[derive(Serialize)]
pub struct ServerFigures {
    pub requests: usize,
    pub concurrency: usize,
    pub failures: usize,
    pub seconds: f64,
    pub requests_per_sec: f64,
    /// stage -> (p50 ms, p99 ms): `round trip` (client), `server total`, `retrieval`, `plugin`.
    pub latency_ms: BTreeMap<String, (f64, f64)>,
    /// `swapper` version -> searches it answered.
    pub versions: BTreeMap<String, usize>,
    /// Searches sent before the swap was uploaded.
    pub swap_after: usize,
}

struct Sample {
    round_trip: f64,
    total: f64,
    plugin: Option<f64>,
    retrieval: f64,
    version: Option<String>,
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

pub fn run(requests: usize, concurrency: usize, products: usize) -> Result<ServerFigures> {
    let dir = std::env::temp_dir().join(format!("mira-bench-server-{}", std::process::id()));
    let result = run_in(&dir, requests, concurrency, products);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(dir: &std::path::Path, requests: usize, concurrency: usize, products: usize) -> Result<ServerFigures> {
    let data = dir.join("data");
    eprintln!("bench: generating {products} products");
    let generated = mira_host::demo::generate(&dir.join("demo"), products, 11)?;
    let catalog = Catalog::new(&data);
    let c = catalog.create(CollectionSchema::from_toml(
        mira_host::demo::PRODUCTS_SCHEMA,
        "products.toml",
    )?)?;
    mira_host::ingest::ingest(
        &c,
        &generated.jsonl,
        &Default::default(),
        &mira_host::ingest::NoProgress,
    )?;
    drop(c);
    let runtime = PluginRuntime::new(PluginLimits::default(), Some(&data.join("plugin-cache")))?;
    let registry = PluginRegistry::new(runtime, None, Default::default(), Default::default());
    for (name, bytes) in BUILTIN_PLUGINS {
        registry
            .install(bytes, "built-in")
            .map_err(|e| anyhow::anyhow!("the built-in plugin {name}: {e}"))?;
    }
    let registry = Arc::new(registry);
    let swap_a = std::fs::read(SWAP_A_PLUGIN).context("the swapper test plugin (built by mira-test-artifacts)")?;
    let swap_b = std::fs::read(SWAP_B_PLUGIN).context("the swapper test plugin (built by mira-test-artifacts)")?;
    registry.install(&swap_a, "bench").map_err(|e| anyhow::anyhow!("{e}"))?;
    let settings = ServerSettings {
        queue: requests + concurrency,
        ..Default::default()
    };
    let state = Arc::new(AppState::new(Catalog::new(&data), settings, registry));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || -> Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            mira_server::serve(listener, state, async {
                let _ = stopped.await;
            })
            .await
        })?;
        Ok(())
    });
    eprintln!("bench: {requests} searches from {concurrency} clients against http://{addr}");
    let next = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(requests)));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let swap_b = Arc::new(swap_b);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(300);
    let clients: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, samples, failures, swap_b) = (next.clone(), samples.clone(), failures.clone(), swap_b.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests || Instant::now() > deadline {
                        break;
                    }
                    if i == requests / 2 {
                        let r = agent
                            .post(&format!("http://{addr}/v1/plugins"))
                            .set("Content-Type", "application/wasm")
                            .send_bytes(&swap_b);
                        if let Err(e) = r {
                            failures.lock().unwrap().push(format!("hot swap: {e}"));
                        }
                    }
                    let mut body = json!({"text": QUERIES[i % QUERIES.len()], "top_k": 10});
                    if i % 2 == 0 {
                        body["plugin"] = json!("swapper");
                    } else {
                        body["scenario"] = json!("ecommerce");
                    }
                    let t = Instant::now();
                    let r = agent
                        .post(&format!("http://{addr}/v1/collections/products/search"))
                        .send_json(body);
                    let round_trip = t.elapsed().as_secs_f64() * 1e3;
                    match r
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.into_json::<Value>().map_err(|e| e.to_string()))
                    {
                        Ok(v) => {
                            let total = v["took_ms"].as_f64().unwrap_or(f64::NAN);
                            let plugin = v["ranking"]["took_ms"].as_f64();
                            if v["ranking"]["status"] != "ok" {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("search {i}: plugin fallback {}", v["ranking"]));
                            }
                            let version = (v["ranking"]["plugin"] == "swapper")
                                .then(|| v["ranking"]["version"].as_str().unwrap_or("").to_owned());
                            samples.lock().unwrap().push(Sample {
                                round_trip,
                                total,
                                plugin,
                                retrieval: total - plugin.unwrap_or(0.0),
                                version,
                            });
                        }
                        Err(e) => failures.lock().unwrap().push(format!("search {i}: {e}")),
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().map_err(|_| anyhow::anyhow!("a client thread panicked"))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    server
        .join()
        .map_err(|_| anyhow::anyhow!("the server thread panicked"))??;
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let failures = std::mem::take(&mut *failures.lock().unwrap());
    for f in failures.iter().take(5) {
        eprintln!("failure: {f}");
    }
    let mut latency = BTreeMap::new();
    let mut stage = |name: &str, mut v: Vec<f64>| {
        let p50 = percentile(&mut v, 0.5);
        let p99 = percentile(&mut v, 0.99);
        latency.insert(name.to_owned(), (p50, p99));
    };
    stage("round trip", samples.iter().map(|s| s.round_trip).collect());
    stage("server total", samples.iter().map(|s| s.total).collect());
    stage("retrieval", samples.iter().map(|s| s.retrieval).collect());
    stage("plugin", samples.iter().filter_map(|s| s.plugin).collect());
    let mut versions = BTreeMap::new();
    for v in samples.iter().filter_map(|s| s.version.clone()) {
        *versions.entry(v).or_insert(0) += 1;
    }
    Ok(ServerFigures {
        requests: samples.len() + failures.len(),
        concurrency,
        failures: failures.len(),
        seconds,
        requests_per_sec: samples.len() as f64 / seconds,
        latency_ms: latency,
        versions,
        swap_after: requests / 2,
    })
}

pub fn print(f: &ServerFigures) {
    println!(
        "HTTP server, {} searches from {} clients on loopback: {:.0} searches/s, {} failed",
        f.requests, f.concurrency, f.requests_per_sec, f.failures
    );
    for (stage, (p50, p99)) in &f.latency_ms {
        println!("  {stage:<14} p50 {p50:>7.2} ms   p99 {p99:>7.2} ms");
    }
    let versions: Vec<String> = f.versions.iter().map(|(v, n)| format!("{v}: {n}")).collect();
    println!(
        "  swapper versions answering (swap uploaded after {} searches): {}",
        f.swap_after,
        versions.join(", ")
    );
}

/// Fails the command when any request failed.
pub fn check(f: &ServerFigures) -> Result<()> {
    if f.failures > 0 {
        bail!("{} of {} requests failed", f.failures, f.requests);
    }
    Ok(())
}
