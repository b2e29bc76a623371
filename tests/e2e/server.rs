//! The HTTP API through real HTTP on loopback: every documented route answers and every route
//! is documented, each error has the JSON shape and status it should, auth on and off, body and
//! pixel limits, multipart images, plugin staging/shadow/activation, overload (503), metrics,
//! and a graceful shutdown of `mira serve`.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use mira_host::Catalog;
use mira_host::plugin::{PluginLimits, PluginRegistry};
use mira_server::AppState;
use mira_server::ServerSettings;
use serde_json::{Value, json};

use crate::common::*;

/// A server on a loopback port, in this process; stops when dropped.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) registry: Arc<PluginRegistry>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub(crate) fn start(env: &Env, settings: ServerSettings, limits: PluginLimits) -> Server {
        Server::start_gated(env, settings, limits, None)
    }

    /// A server whose plugin activations pass `[plugins.gate]`.
    pub(crate) fn start_gated(
        env: &Env,
        settings: ServerSettings,
        limits: PluginLimits,
        gate: Option<mira_host::config::GateConfig>,
    ) -> Server {
        let registry = registry(limits, Some(env.data().join("plugins")));
        let state = Arc::new(AppState::new(Catalog::new(&env.data()), settings, registry.clone()).with_gate(gate));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                mira_server::serve(listener, state, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        Server {
            addr,
            registry,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A query or filter nested thousands deep is refused before it is parsed (it once overflowed
/// the parser's stack and killed the server), through every route that parses one.
#[test]
fn deeply_nested_queries_are_refused_and_the_server_lives() {
    let env = Env::new();
    let s = Server::start(&env, ServerSettings::default(), PluginLimits::default());
    shop(&s, None);
    let deep = format!("{}dress{}", "(".repeat(2500), ")".repeat(2500));
    let search = s.url("/v1/collections/shop/search");
    for body in [
        json!({"text": deep}),
        json!({"text": "dress", "filter": format!("title:{deep}")}),
    ] {
        let (status, v) = call("POST", &search, None, Some(body));
        assert_eq!(status, 400, "{v}");
        assert_error(&v, "query_too_complex", "invalid_request");
        assert!(v["message"].as_str().unwrap().contains("nesting depth"), "{v}");
    }
    let (status, v) = call(
        "DELETE",
        &s.url("/v1/collections/shop/documents"),
        None,
        Some(json!({"query": format!("title:{deep}")})),
    );
    assert_eq!(status, 400, "{v}");
    assert_error(&v, "query_too_complex", "invalid_request");
    let long = "dress ".repeat(2000);
    let (status, v) = call("POST", &search, None, Some(json!({"text": long})));
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("limit"), "{v}");
    // Still serving, and nothing was deleted.
    let (status, v) = call("POST", &search, None, Some(json!({"text": "((dress))"})));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["hits"].as_array().unwrap().len(), 2);
}

/// Searches, stats and uploads while the collection is dropped and created again answer 200
/// or 404, never a 5xx: a collection appears whole and disappears whole.
#[test]
fn requests_during_drop_and_create_answer_200_or_404() {
    let env = Env::new();
    let s = Server::start(&env, ServerSettings::default(), PluginLimits::default());
    shop(&s, None);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|i| {
            let (stop, search, stats) = (
                stop.clone(),
                s.url("/v1/collections/shop/search"),
                s.url("/v1/collections/shop"),
            );
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for n in 0..400 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let (status, v) = if (n + i) % 2 == 0 {
                        call(
                            "POST",
                            &search,
                            None,
                            Some(json!({"text": "dress", "vector": [1.0, 0.0, 0.0]})),
                        )
                    } else {
                        call("GET", &stats, None, None)
                    };
                    seen.push((status, v));
                }
                seen
            })
        })
        .collect();
    let mut seen = Vec::new();
    for _ in 0..8 {
        let (status, v) = call("DELETE", &s.url("/v1/collections/shop"), None, None);
        assert_eq!(status, 204, "{v}");
        seen.push(call(
            "POST",
            &s.url("/v1/collections/shop/search"),
            None,
            Some(json!({"text": "dress"})),
        ));
        shop(&s, None);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        seen.extend(r.join().unwrap());
    }
    let odd: Vec<_> = seen.iter().filter(|(status, _)| !matches!(status, 200 | 404)).collect();
    assert!(
        odd.is_empty(),
        "{} of {} requests answered neither 200 nor 404: {:?}",
        odd.len(),
        seen.len(),
        &odd[..odd.len().min(3)]
    );
    for (status, v) in &seen {
        if *status == 404 {
            assert_error(v, "collection_not_found", "not_found");
        }
    }
}

/// Status and body of any answer, 4xx and 5xx included.
pub(crate) fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, String, Option<String>) {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let retry = resp.header("retry-after").map(str::to_owned);
    (status, resp.into_string().unwrap(), retry)
}

pub(crate) fn call(method: &str, url: &str, key: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut req = ureq::request(method, url);
    if let Some(k) = key {
        req = req.set("Authorization", &format!("Bearer {k}"));
    }
    let r = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    let (status, text, _) = answer(r);
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The error body has the documented shape.
pub(crate) fn assert_error(v: &Value, code: &str, kind: &str) {
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["type"], kind, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

const SHOP: &str = r#"
name = "shop"
[fields.title]
type = "text"
analyzer = "english"
[fields.price]
type = "f64"
[fields.emb]
type = "vector"
dim = 3
"#;

fn shop(s: &Server, key: Option<&str>) {
    let (status, v) = call("POST", &s.url("/v1/collections"), key, Some(json!({"schema": SHOP})));
    assert_eq!(status, 201, "{v}");
    let docs = json!([
        {"id": "a", "title": "red silk dress", "price": 40.0, "emb": [1.0, 0.0, 0.0]},
        {"id": "b", "title": "blue cotton dress", "price": 20.0, "emb": [0.0, 1.0, 0.0]},
        {"id": "c", "title": "leather boots", "price": 90.0, "emb": [0.0, 0.0, 1.0]},
    ]);
    let (status, v) = call("POST", &s.url("/v1/collections/shop/documents"), key, Some(docs));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["indexed"], 3);
}

#[test]
fn every_documented_route_answers_and_every_route_is_documented() {
    let env = Env::new();
    let s = Server::start(&env, ServerSettings::default(), PluginLimits::default());
    shop(&s, None);
    let (status, doc) = call("GET", &s.url("/openapi.json"), None, None);
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
            // Every documented route is served: whatever it answers, it is not "no such route".
            let url = s.url(&path.replace("{name}", "shop").replace("{id}", "a"));
            let (status, v) = call(&method.to_uppercase(), &url, None, None);
            assert!(
                status != 405 && v["code"] != "no_route",
                "{method} {path}: {status} {v}"
            );
        }
    }
    documented.sort();
    let mut expected = vec![
        "GET /health",
        "GET /metrics",
        "GET /v1/collections",
        "POST /v1/collections",
        "GET /v1/collections/{name}",
        "DELETE /v1/collections/{name}",
        "POST /v1/collections/{name}/retag",
        "POST /v1/collections/{name}/documents",
        "DELETE /v1/collections/{name}/documents",
        "GET /v1/collections/{name}/documents/{id}/image",
        "POST /v1/collections/{name}/search",
        "POST /v1/collections/{name}/illustrate",
        "POST /v1/collections/{name}/eval",
        "GET /v1/plugins",
        "POST /v1/plugins",
        "DELETE /v1/plugins/{name}",
        "POST /v1/plugins/{name}/activate",
        "POST /v1/plugins/{name}/rollback",
        "POST /v1/plugins/{name}/shadow",
    ];
    expected.sort();
    assert_eq!(documented, expected);
    // Routes that are not in the document do not exist.
    let (status, v) = call("GET", &s.url("/v1/everything"), None, None);
    assert_eq!(status, 404);
    assert_error(&v, "no_route", "not_found");
    // Every error is JSON, axum's own rejections included.
    let (status, v) = call("PUT", &s.url("/v1/collections"), None, None);
    assert_eq!(status, 405);
    assert_error(&v, "method_not_allowed", "invalid_request");
    let (status, v) = call("POST", &s.url("/v1/plugins?activate=maybe"), None, None);
    assert_eq!(status, 400, "{v}");
    assert_error(&v, "invalid_query_string", "invalid_request");
    let (status, v) = call(
        "GET",
        &s.url("/v1/collections/shop/documents/a/image?field=1&field=2"),
        None,
        None,
    );
    assert_eq!(status, 400, "{v}");
    assert_error(&v, "invalid_query_string", "invalid_request");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "SearchResponse",
        "SearchBody",
        "ErrorBody",
        "IngestReport",
        "PluginInfo",
        "Explanation",
        "FacetCounts",
        "FacetRequest",
        "EvalRequest",
        "EvalReport",
        "RetagReport",
    ] {
        assert!(schemas.contains_key(name), "{name} missing from components");
    }
}

#[test]
fn collections_documents_and_search_round_trip() {
    let env = Env::new();
    let s = Server::start(&env, ServerSettings::default(), PluginLimits::default());
    shop(&s, None);
    let (_, list) = call("GET", &s.url("/v1/collections"), None, None);
    assert_eq!(list, json!([{"name": "shop", "documents": 3}]));
    let (status, v) = call("GET", &s.url("/v1/collections/shop"), None, None);
    assert_eq!(status, 200);
    assert_eq!(v["documents"], 3);
    assert!(v["schema"].as_str().unwrap().contains("[fields.title]"));

    // Text, vector and hybrid search with a filter, explain and paging.
    let search = |body: Value| call("POST", &s.url("/v1/collections/shop/search"), None, Some(body));
    let (status, v) = search(json!({"text": "dress", "filter": "price:[0 TO 30]", "explain": true}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["hits"].as_array().unwrap().len(), 1);
    assert_eq!(v["hits"][0]["id"], "b");
    assert!(v["hits"][0]["explain"]["bm25"]["score"].as_f64().unwrap() > 0.0);
    let (_, v) = search(json!({"vector": [0.0, 0.1, 1.0], "top_k": 1}));
    assert_eq!(v["hits"][0]["id"], "c");
    let (_, v) =
        search(json!({"text": "dress", "vector": [1.0, 0.0, 0.0], "vector_weight": 2.0, "top_k": 1, "offset": 0}));
    assert_eq!(v["retrievers"], json!(["bm25", "vector"]));
    assert_eq!(v["hits"][0]["id"], "a");

    // Upsert replaces; delete by id and by query.
    let (_, v) = call(
        "POST",
        &s.url("/v1/collections/shop/documents"),
        None,
        Some(json!({"documents": [{"id": "a", "title": "green silk dress", "price": 45.0}], "on_error": "fail"})),
    );
    assert_eq!(v["indexed"], 1);
    let (_, v) = search(json!({"text": "green"}));
    assert_eq!(v["hits"][0]["id"], "a");
    let (_, v) = call(
        "DELETE",
        &s.url("/v1/collections/shop/documents"),
        None,
        Some(json!({"ids": ["a"]})),
    );
    assert_eq!(v["deleted"], 1);
    let (_, v) = call(
        "DELETE",
        &s.url("/v1/collections/shop/documents"),
        None,
        Some(json!({"query": "price:>=50"})),
    );
    assert_eq!(v["deleted"], 1);
    let (_, v) = call("GET", &s.url("/v1/collections/shop"), None, None);
    assert_eq!(v["documents"], 1);

    // A skipped bad row is reported with its position.
    let (status, v) = call(
        "POST",
        &s.url("/v1/collections/shop/documents"),
        None,
        Some(json!({"documents": [{"id": "d", "title": "ok"}, {"id": "e", "price": "cheap"}], "on_error": "skip"})),
    );
    assert_eq!(status, 200);
    assert_eq!((v["indexed"].as_u64(), v["skipped"].as_u64()), (Some(1), Some(1)));
    assert_eq!(v["errors"][0]["line"], 2);
    assert_eq!(v["errors"][0]["field"], "price");

    // A TOML body creates too; dropping is 204 and then the collection is gone.
    let toml = SHOP.replace("name = \"shop\"", "name = \"other\"");
    let (status, _, _) = answer(
        ureq::post(&s.url("/v1/collections"))
            .set("Content-Type", "application/toml")
            .send_string(&toml),
    );
    assert_eq!(status, 201);
    let (status, _) = call("DELETE", &s.url("/v1/collections/other"), None, None);
    assert_eq!(status, 204);
    let (status, v) = call("GET", &s.url("/v1/collections/other"), None, None);
    assert_eq!(status, 404);
    assert_error(&v, "collection_not_found", "not_found");
}

#[test]
fn every_error_has_its_status_code_and_shape() {
    let env = Env::new();
    let settings = ServerSettings {
        max_body_mib: 1,
        max_image_pixels: 10_000,
        ..Default::default()
    };
    let s = Server::start(&env, settings, PluginLimits::default());
    shop(&s, None);
    let url = s.url("/v1/collections/shop/search");
    let raw = |ct: &str, body: &str| answer(ureq::post(&url).set("Content-Type", ct).send_string(body));
    let parse = |t: &str| serde_json::from_str::<Value>(t).unwrap();

    let (status, body, _) = raw("application/json", "{\"text\": ");
    assert_eq!(status, 400);
    assert_error(&parse(&body), "malformed_json", "invalid_request");
    let (status, body, _) = raw("text/plain", "{}");
    assert_eq!(status, 415);
    assert_error(&parse(&body), "unsupported_media_type", "invalid_request");
    let (status, body, _) = raw("application/json", "{\"text\": \"x\", \"colour\": 1}");
    assert_eq!(status, 400);
    assert!(
        parse(&body)["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`")
    );
    let (status, v) = call("POST", &url, None, Some(json!({"vector": [1.0, 2.0]})));
    assert_eq!(status, 400);
    assert_error(&v, "invalid_vector", "invalid_request");
    let (status, v) = call("POST", &url, None, Some(json!({"text": "x", "filter": "price:[oops"})));
    assert_eq!(status, 400, "{v}");
    let (status, v) = call("POST", &url, None, Some(json!({"text": "x", "image": "/etc/passwd"})));
    assert_eq!(status, 400);
    assert!(v["message"].as_str().unwrap().contains("not accepted over HTTP"), "{v}");
    let (status, v) = call(
        "POST",
        &url,
        None,
        Some(json!({"image_url": "http://127.0.0.1:1/x.png"})),
    );
    assert_eq!(status, 400);
    assert_error(&v, "image_url_refused", "invalid_request");
    let (status, v) = call("POST", &url, None, Some(json!({"image_base64": "%%%"})));
    assert_eq!(status, 400, "{v}");
    // An image over the pixel limit is refused from its header, before decoding.
    let big = png_bytes(200, 200);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&big);
    let (status, v) = call("POST", &url, None, Some(json!({"image_base64": b64})));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("over the limit of 10000"),
        "{v}"
    );
    // A decompression bomb: a tiny file whose header declares 100000 x 100000 pixels is refused
    // from the header; no pixel is decoded.
    let bomb = base64::engine::general_purpose::STANDARD.encode(png_header_only(100_000, 100_000));
    let (status, v) = call("POST", &url, None, Some(json!({"image_base64": bomb})));
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("100000x100000"), "{v}");
    // A body over max_body_mib is 413, as JSON.
    // (The server answers before reading the body and closes; a client still writing may see a
    // broken pipe instead of the answer, so the body is kept just over the limit and retried.)
    let huge = format!("{{\"text\": \"{}\"}}", "x".repeat((1 << 20) + 4096));
    let too_large = (0..10).find_map(|_| {
        match ureq::post(&url)
            .set("Content-Type", "application/json")
            .send_string(&huge)
        {
            Err(ureq::Error::Status(status, r)) => Some((status, r.into_string().unwrap())),
            Ok(r) => Some((r.status(), r.into_string().unwrap())),
            Err(ureq::Error::Transport(_)) => None,
        }
    });
    let (status, body) = too_large.expect("an answer to an oversized body");
    assert_eq!(status, 413);
    assert_error(&parse(&body), "payload_too_large", "payload_too_large");

    let (status, v) = call(
        "POST",
        &s.url("/v1/collections/nope/search"),
        None,
        Some(json!({"text": "x"})),
    );
    assert_eq!(status, 404);
    assert_error(&v, "collection_not_found", "not_found");
    let (status, v) = call("POST", &s.url("/v1/collections"), None, Some(json!({"schema": SHOP})));
    assert_eq!(status, 409);
    assert_error(&v, "collection_exists", "conflict");
    let (status, v) = call(
        "POST",
        &s.url("/v1/collections"),
        None,
        Some(json!({"schema": "name = \"x\"\n[fields.a]\ntype = \"blob\"\n"})),
    );
    assert_eq!(status, 400);
    assert_error(&v, "invalid_schema", "invalid_request");
    // An image field must name a file uploaded with the request: the server reads no paths.
    let img_schema = "name = \"pics\"\n[fields.photo]\ntype = \"image\"\n";
    call(
        "POST",
        &s.url("/v1/collections"),
        None,
        Some(json!({"schema": img_schema})),
    );
    let (status, v) = call(
        "POST",
        &s.url("/v1/collections/pics/documents"),
        None,
        Some(json!([{"id": "p", "photo": "/etc/hosts"}])),
    );
    assert_eq!(status, 400);
    assert!(v["message"].as_str().unwrap().contains("was not uploaded"), "{v}");
    let (status, v) = call("POST", &s.url("/v1/collections/shop/documents"), None, Some(json!([])));
    assert_eq!(status, 400, "{v}");
    let (status, v) = call("POST", &s.url("/v1/plugins"), None, None);
    assert_eq!(status, 400, "{v}");
    assert_error(&v, "invalid_plugin", "invalid_request");
    let (status, v) = call("POST", &s.url("/v1/plugins/nope/rollback"), None, None);
    assert_eq!(status, 404);
    assert_error(&v, "plugin_not_found", "not_found");
}

#[test]
fn keys_guard_writes_plugins_and_searches() {
    let env = Env::new();
    let settings = ServerSettings {
        admin_key: Some("admin-secret".into()),
        search_key: Some("search-secret".into()),
        ..Default::default()
    };
    let s = Server::start(&env, settings, PluginLimits::default());
    let (status, v) = call("POST", &s.url("/v1/collections"), None, Some(json!({"schema": SHOP})));
    assert_eq!(status, 401);
    assert_error(&v, "missing_api_key", "authentication");
    let (status, v) = call(
        "POST",
        &s.url("/v1/collections"),
        Some("search-secret"),
        Some(json!({"schema": SHOP})),
    );
    assert_eq!(status, 403);
    assert_error(&v, "invalid_api_key", "authentication");
    shop(&s, Some("admin-secret"));
    let search = s.url("/v1/collections/shop/search");
    assert_eq!(call("POST", &search, None, Some(json!({"text": "dress"}))).0, 401);
    assert_eq!(
        call("POST", &search, Some("wrong"), Some(json!({"text": "dress"}))).0,
        403
    );
    assert_eq!(
        call("POST", &search, Some("search-secret"), Some(json!({"text": "dress"}))).0,
        200
    );
    assert_eq!(
        call("POST", &search, Some("admin-secret"), Some(json!({"text": "dress"}))).0,
        200
    );
    // X-Api-Key works too.
    let (status, _, _) = answer(
        ureq::get(&s.url("/v1/collections"))
            .set("X-Api-Key", "search-secret")
            .call(),
    );
    assert_eq!(status, 200);
    assert_eq!(call("GET", &s.url("/v1/plugins"), Some("search-secret"), None).0, 403);
    // Re-tagging rewrites documents: the search key may not.
    let retag = s.url("/v1/collections/shop/retag");
    assert_eq!(call("POST", &retag, Some("search-secret"), None).0, 403);
    let (status, v) = call("POST", &retag, Some("admin-secret"), None);
    assert_eq!(status, 400, "shop takes no words from a plugin: {v}");
    assert!(v["message"].as_str().unwrap().contains("nothing to re-tag"), "{v}");
    assert_eq!(call("GET", &s.url("/v1/plugins"), Some("admin-secret"), None).0, 200);
    // Health, metrics and the API document stay open.
    assert_eq!(call("GET", &s.url("/health"), None, None).0, 200);
    assert_eq!(call("GET", &s.url("/metrics"), None, None).0, 200);
    assert_eq!(call("GET", &s.url("/openapi.json"), None, None).0, 200);
}

/// A PNG that declares `w` x `h` RGB pixels in its header and holds no pixel data.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for b in bytes {
            crc ^= u32::from(*b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&w.to_be_bytes());
    chunk.extend_from_slice(&h.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(&b"IHDR"[..], &chunk[4..]), (b"IDAT", &[][..]), (b"IEND", &[][..])] {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    png
}

pub(crate) fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3 % 256) as u8, (y * 5 % 256) as u8, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A multipart body with the given parts: (name, file name, content type, bytes).
pub(crate) fn multipart(parts: &[(&str, Option<&str>, &str, Vec<u8>)]) -> (String, Vec<u8>) {
    let boundary = "mira-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, file, ct, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n").as_bytes()),
        }
        body.extend_from_slice(format!("Content-Type: {ct}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[test]
fn images_upload_with_documents_and_query_by_upload_or_base64() {
    let env = Env::new();
    let model = env.path().join("clip");
    mira_host::embed::fixtures::write_tiny_clip(&model).unwrap();
    let s = Server::start(&env, ServerSettings::default(), PluginLimits::default());
    let schema = format!(
        "name = \"photos\"\n[fields.title]\ntype = \"text\"\n[fields.photo]\ntype = \"image\"\n\
         [fields.emb]\ntype = \"vector\"\ndim = 16\nsource = \"clip-image\"\n[models]\nclip = {:?}\n",
        model.to_str().unwrap()
    );
    assert_eq!(
        call("POST", &s.url("/v1/collections"), None, Some(json!({"schema": schema}))).0,
        201
    );
    let (red, blue) = (png_bytes(40, 30), {
        let img = image::RgbImage::from_fn(50, 50, |x, _| image::Rgb([10, 20, (200 + x % 50) as u8]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    });
    let docs = json!([
        {"id": "r", "title": "first photo", "photo": "red.png"},
        {"id": "b", "title": "second photo", "photo": "blue.png"},
    ]);
    let (ct, body) = multipart(&[
        ("documents", None, "application/json", docs.to_string().into_bytes()),
        ("files", Some("red.png"), "image/png", red.clone()),
        ("files", Some("blue.png"), "image/png", blue.clone()),
    ]);
    let (status, text, _) = answer(
        ureq::post(&s.url("/v1/collections/photos/documents"))
            .set("Content-Type", &ct)
            .send_bytes(&body),
    );
    assert_eq!(status, 200, "{text}");
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (report["indexed"].as_u64(), report["embedded"].as_u64()),
        (Some(2), Some(2)),
        "{report}"
    );
    // Stored under their content hash in the collection's media directory.
    let media: Vec<_> = std::fs::read_dir(env.data().join("collections/photos/media"))
        .unwrap()
        .collect();
    assert_eq!(media.len(), 2);
    // A truncated upload (its header is fine) is refused by its own name, without a server
    // path, and leaves no file behind.
    let cut = red[..red.len() / 2].to_vec();
    let (ct, body) = multipart(&[
        (
            "documents",
            None,
            "application/json",
            json!([{"id": "t", "title": "cut", "photo": "cut.png"}])
                .to_string()
                .into_bytes(),
        ),
        ("files", Some("cut.png"), "image/png", cut),
    ]);
    let (status, text, _) = answer(
        ureq::post(&s.url("/v1/collections/photos/documents"))
            .set("Content-Type", &ct)
            .send_bytes(&body),
    );
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("cut.png") && !text.contains(env.data().to_str().unwrap()),
        "{text}"
    );
    let media_files = || {
        std::fs::read_dir(env.data().join("collections/photos/media"))
            .unwrap()
            .count()
    };
    assert_eq!(media_files(), 2);
    // A good image on a row that fails for another reason (skipped), or in an upsert that
    // fails, leaves no file either.
    let green = png_bytes(33, 17);
    let upsert = |docs: Value| {
        let (ct, body) = multipart(&[
            ("documents", None, "application/json", docs.to_string().into_bytes()),
            ("files", Some("green.png"), "image/png", green.clone()),
        ]);
        answer(
            ureq::post(&s.url("/v1/collections/photos/documents"))
                .set("Content-Type", &ct)
                .send_bytes(&body),
        )
    };
    let (status, text, _) = upsert(json!({
        "documents": [{"id": "bad", "title": "bad", "photo": "green.png", "price_typo": 1}],
        "on_error": "skip",
    }));
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"skipped\":1"), "{text}");
    assert_eq!(media_files(), 2);
    let (status, text, _) = upsert(json!([
        {"id": "bad", "title": "bad", "photo": "green.png"},
        {"id": "worse", "title": "x", "photo": "missing.png"},
    ]));
    assert_eq!(status, 400, "{text}");
    assert_eq!(media_files(), 2);
    let (status, text, _) = upsert(json!([{"id": "bad", "title": "bad", "photo": "green.png", "typo": 1}]));
    assert_eq!(status, 400, "{text}");
    assert_eq!(media_files(), 2);
    // When an earlier batch was committed before a bad row stopped the upsert, its images stay.
    let schema = "name = \"batched\"\n[fields.title]\ntype = \"text\"\n[fields.photo]\ntype = \"image\"\n[ingest]\nbatch_size = 1\n";
    assert_eq!(
        call("POST", &s.url("/v1/collections"), None, Some(json!({"schema": schema}))).0,
        201
    );
    let docs = json!([{"id": "first", "title": "ok", "photo": "green.png"}, {"id": "second", "typo": 1}]);
    let (ct, body) = multipart(&[
        ("documents", None, "application/json", docs.to_string().into_bytes()),
        ("files", Some("green.png"), "image/png", png_bytes(33, 17)),
    ]);
    let (status, text, _) = answer(
        ureq::post(&s.url("/v1/collections/batched/documents"))
            .set("Content-Type", &ct)
            .send_bytes(&body),
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("1 documents committed"), "{text}");
    let (status, _, _) = answer(ureq::get(&s.url("/v1/collections/batched/documents/first/image")).call());
    assert_eq!(status, 200, "the committed document keeps its image");

    // Query by an uploaded image, and by base64: the same photo comes first at cosine 1.
    let (ct, body) = multipart(&[
        (
            "request",
            None,
            "application/json",
            json!({"top_k": 2}).to_string().into_bytes(),
        ),
        ("image", Some("q.png"), "image/png", blue.clone()),
    ]);
    let (status, text, _) = answer(
        ureq::post(&s.url("/v1/collections/photos/search"))
            .set("Content-Type", &ct)
            .send_bytes(&body),
    );
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["hits"][0]["id"], "b");
    assert!((v["hits"][0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-4, "{v}");
    assert_eq!(v["query_vector"], "clip image");
    // A hit's image is its route on this server, never a path on the server's disk; the route
    // serves the uploaded bytes.
    let route = v["hits"][0]["fields"]["photo"].as_str().unwrap().to_owned();
    assert_eq!(route, "/v1/collections/photos/documents/b/image?field=photo");
    assert!(!text.contains(env.data().to_str().unwrap()), "a server path in {text}");
    let (status, _, _) = answer(ureq::get(&s.url(&route)).call());
    assert_eq!(status, 200);
    let mut served = Vec::new();
    ureq::get(&s.url(&route))
        .call()
        .unwrap()
        .into_reader()
        .read_to_end(&mut served)
        .unwrap();
    assert_eq!(served, blue);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&red);
    let (status, v) = call(
        "POST",
        &s.url("/v1/collections/photos/search"),
        None,
        Some(json!({"image_base64": b64, "text": "photo"})),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["retrievers"], json!(["bm25", "vector"]));
    let top = v["hits"].as_array().unwrap().iter().find(|h| h["id"] == "r").unwrap();
    assert!(top["score"].as_f64().unwrap() > 0.0);
    // By URL from an allowlisted host: a second server on the same data, allowed to fetch from
    // the first, reads the photo through the first one's image route.
    let fetching = Server::start(
        &env,
        ServerSettings {
            image_url_allowlist: vec![s.addr.to_string()],
            ..Default::default()
        },
        PluginLimits::default(),
    );
    let photo_url = s.url("/v1/collections/photos/documents/b/image");
    let (status, v) = call(
        "POST",
        &fetching.url("/v1/collections/photos/search"),
        None,
        Some(json!({"image_url": photo_url, "top_k": 1})),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["hits"][0]["id"], "b");
    let (status, v) = call(
        "POST",
        &s.url("/v1/collections/photos/search"),
        None,
        Some(json!({"image_url": fetching.url("/v1/collections/photos/documents/b/image")})),
    );
    assert_eq!(status, 400, "the first server has no allowlist: {v}");
    // A corrupt upload is a clear error.
    let (ct, body) = multipart(&[("image", Some("q.png"), "image/png", b"\x89PNG not really".to_vec())]);
    let (status, text, _) = answer(
        ureq::post(&s.url("/v1/collections/photos/search"))
            .set("Content-Type", &ct)
            .send_bytes(&body),
    );
    assert_eq!(status, 400, "{text}");
}

#[test]
fn plugins_upload_stage_shadow_activate_roll_back_and_unload() {
    let env = Env::new();
    let s = Server::start(&env, ServerSettings::default(), PluginLimits::default());
    shop(&s, None);
    let upload = |path: &str, activate: bool| {
        let bytes = std::fs::read(path).unwrap();
        let r = ureq::post(&s.url(&format!("/v1/plugins?activate={activate}")))
            .set("Content-Type", "application/wasm")
            .send_bytes(&bytes);
        let (status, text, _) = answer(r);
        (status, serde_json::from_str::<Value>(&text).unwrap())
    };
    let (status, v) = upload(SWAP_A_PLUGIN, true);
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["version"].as_str(), v["status"].as_str()),
        (Some("swapper"), Some("1.0.0"), Some("active"))
    );
    assert!(
        env.data().join("plugins/swapper.wasm").is_file(),
        "stored under its validated name"
    );
    let (status, v) = upload(SWAP_B_PLUGIN, false);
    assert_eq!(status, 201);
    assert_eq!(v["status"], "staged");
    // Staged: queries still get 1.0.0.
    let search = json!({"text": "dress", "plugin": "swapper"});
    let (_, v) = call(
        "POST",
        &s.url("/v1/collections/shop/search"),
        None,
        Some(search.clone()),
    );
    assert_eq!(v["ranking"]["version"], "1.0.0");
    // Shadow: both versions on the same request, and how they differ.
    let (status, v) = call(
        "POST",
        &s.url("/v1/plugins/swapper/shadow"),
        None,
        Some(json!({"collection": "shop", "request": search})),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["live"]["plugin"], "swapper@1.0.0");
    assert_eq!(v["candidate"]["plugin"], "swapper@2.0.0");
    assert_eq!(v["candidate"]["response"]["ranking"]["instruction"], "swapper 2.0.0");
    let n = v["live"]["response"]["hits"].as_array().unwrap().len();
    assert_eq!(v["diff"]["overlap"].as_u64(), Some(n as u64));
    assert!(v["diff"]["changes"].is_array());
    // Activate, roll back, unload.
    let (_, v) = call("POST", &s.url("/v1/plugins/swapper/activate"), None, None);
    assert_eq!(v["version"], "2.0.0");
    let (_, v) = call(
        "POST",
        &s.url("/v1/collections/shop/search"),
        None,
        Some(search.clone()),
    );
    assert_eq!(v["ranking"]["version"], "2.0.0");
    let (status, v) = call("POST", &s.url("/v1/plugins/swapper/activate"), None, None);
    assert_eq!(status, 409, "nothing staged any more: {v}");
    assert_error(&v, "plugin_conflict", "conflict");
    // A name that is neither loaded nor staged is not found, for activate as for rollback.
    let (status, v) = call("POST", &s.url("/v1/plugins/nobody/activate"), None, None);
    assert_eq!(status, 404, "{v}");
    assert_error(&v, "plugin_not_found", "not_found");
    let (status, v) = call("POST", &s.url("/v1/plugins/nobody/rollback"), None, None);
    assert_eq!(status, 404, "{v}");
    assert_error(&v, "plugin_not_found", "not_found");
    // A loaded plugin with no previous version: a conflict with its state, not a bad request.
    let (status, v) = call("POST", &s.url("/v1/plugins/general/rollback"), None, None);
    assert_eq!(status, 409, "{v}");
    assert_error(&v, "plugin_conflict", "conflict");
    let (_, v) = call("POST", &s.url("/v1/plugins/swapper/rollback"), None, None);
    assert_eq!(v["version"], "1.0.0");
    let (_, list) = call("GET", &s.url("/v1/plugins"), None, None);
    let swapper = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "swapper")
        .unwrap();
    assert_eq!(swapper["version"], "1.0.0");
    assert_eq!(call("DELETE", &s.url("/v1/plugins/swapper"), None, None).0, 204);
    let (status, v) = call("POST", &s.url("/v1/collections/shop/search"), None, Some(search));
    assert_eq!(status, 404);
    assert_error(&v, "plugin_not_found", "not_found");
    // A component that imports what the host does not offer is refused before it is stored.
    let before = call("GET", &s.url("/v1/plugins"), None, None).1;
    let (status, v) = upload(stowaway_plugin(), true);
    assert_eq!(status, 400);
    assert_error(&v, "invalid_plugin", "invalid_request");
    assert!(v["message"].as_str().unwrap().contains("acme:spy/exfil"), "{v}");
    assert_eq!(
        call("GET", &s.url("/v1/plugins"), None, None).1,
        before,
        "nothing was added"
    );
}

#[test]
fn a_full_queue_answers_503_with_a_retry_hint_and_metrics_count_it() {
    let env = Env::new();
    let settings = ServerSettings {
        workers: 1,
        queue: 0,
        ..Default::default()
    };
    let limits = PluginLimits {
        time_ms: 1500,
        quarantine_after: 100,
        ..Default::default()
    };
    let s = Server::start(&env, settings, limits);
    shop(&s, None);
    s.registry
        .install(&std::fs::read(HOSTILE_PLUGIN).unwrap(), "test")
        .unwrap();
    // A plugin that loops until its time budget holds the only worker for ~1.5 s.
    let slow_url = s.url("/v1/collections/shop/search");
    let slow = std::thread::spawn(move || {
        call(
            "POST",
            &slow_url,
            None,
            Some(json!({"text": "dress", "plugin": "hostile", "params": {"mode": "loop"}})),
        )
    });
    let started = Instant::now();
    let mut refused = None;
    while started.elapsed() < Duration::from_secs(5) && refused.is_none() {
        std::thread::sleep(Duration::from_millis(50));
        let (status, body, retry) =
            answer(ureq::post(&s.url("/v1/collections/shop/search")).send_json(json!({"text": "dress"})));
        if status == 503 {
            refused = Some((body, retry));
        }
    }
    let (body, retry) = refused.expect("a second search while the only worker is busy gets 503");
    assert_error(&serde_json::from_str(&body).unwrap(), "overloaded", "overloaded");
    assert_eq!(retry.as_deref(), Some("1"));
    let (status, v) = slow.join().unwrap();
    assert_eq!(status, 200, "the slow search itself is served (built-in order): {v}");
    assert_eq!(v["ranking"]["status"], "fallback");
    // The server is free again.
    assert_eq!(
        call(
            "POST",
            &s.url("/v1/collections/shop/search"),
            None,
            Some(json!({"text": "dress"}))
        )
        .0,
        200
    );
    let (_, text, _) = answer(ureq::get(&s.url("/metrics")).call());
    let value = |name: &str, labels: &[&str]| -> Option<f64> {
        text.lines()
            .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
            .find_map(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let search_route = "route=\"/v1/collections/{name}/search\"";
    assert!(
        value("mira_http_requests_total{", &[search_route, "status=\"503\""]).unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(
        value("mira_http_requests_total{", &[search_route, "status=\"200\""]).unwrap_or(0.0) >= 2.0,
        "{text}"
    );
    assert_eq!(
        value("mira_plugin_fallbacks_total{", &["plugin=\"hostile\""]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value("mira_plugin_faults_total{", &["plugin=\"hostile\"", "kind=\"timeout\""]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value("mira_search_stage_seconds_count{", &["stage=\"plugin\""]),
        Some(1.0),
        "{text}"
    );
    assert!(
        value("mira_search_stage_seconds_count{", &["stage=\"retrieval\""]).unwrap_or(0.0) >= 2.0,
        "{text}"
    );
    assert_eq!(value("mira_worker_queue_depth", &[]), Some(0.0), "{text}");
    assert!(value("mira_embedding_cache_hits_total", &[]).is_some(), "{text}");
}

/// `mira serve` on a free loopback port over `env`'s data directory: the child, its stdout
/// (past the line that says where it listens) and its base URL.
fn spawn_serve(env: &Env) -> (std::process::Child, BufReader<std::process::ChildStdout>, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mira"))
        .args([
            "--data-dir",
            env.data().to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("HF_HUB_OFFLINE", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let base = format!("http://{addr}");
    (child, out, base)
}

/// `mira serve` as users run it: it prints where it listens, serves, and on SIGTERM lets the
/// request in flight finish before it exits.
#[test]
fn serve_stops_gracefully_on_sigterm() {
    let env = Env::new();
    // The plugin's time budget makes a request that lasts 1.5 s.
    env.write("data/mira.toml", "[plugins]\ntime_ms = 1500\nquarantine_after = 100\n");
    let (mut child, mut out, base) = spawn_serve(&env);
    let (status, _) = call(
        "POST",
        &format!("{base}/v1/collections"),
        None,
        Some(json!({"schema": SHOP})),
    );
    assert_eq!(status, 201);
    let hostile = std::fs::read(HOSTILE_PLUGIN).unwrap();
    let (status, _, _) = answer(ureq::post(&format!("{base}/v1/plugins")).send_bytes(&hostile));
    assert_eq!(status, 201);
    call(
        "POST",
        &format!("{base}/v1/collections/shop/documents"),
        None,
        Some(json!([{"id": "a", "title": "red dress"}])),
    );
    // A request in flight (the plugin loops until its time budget), then SIGTERM.
    let url = format!("{base}/v1/collections/shop/search");
    let in_flight = std::thread::spawn(move || {
        call(
            "POST",
            &url,
            None,
            Some(json!({"text": "dress", "plugin": "hostile", "params": {"mode": "loop"}})),
        )
    });
    // Wait until the server is working on it.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let (_, health) = call("GET", &format!("{base}/health"), None, None);
        if health["in_flight"].as_i64().unwrap_or(0) >= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let (status, v) = in_flight.join().unwrap();
    assert_eq!(status, 200, "the request in flight finished: {v}");
    let code = child.wait().unwrap();
    assert!(code.success(), "{code:?}");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("mira: stopped"), "{rest}");
}

/// A collection dropped and created again by another process (the CLI) is seen as it is now,
/// not as the server first opened it.
#[test]
fn collections_dropped_or_replaced_elsewhere_are_picked_up() {
    let env = Env::new();
    let s = Server::start(&env, ServerSettings::default(), PluginLimits::default());
    shop(&s, None);
    let stats = || call("GET", &s.url("/v1/collections/shop"), None, None);
    assert_eq!(stats().0, 200);
    let wait_for = |what: &str, ok: &dyn Fn() -> bool| {
        let started = Instant::now();
        while !ok() {
            assert!(started.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    env.catalog().drop_collection("shop").unwrap();
    wait_for("the drop is seen", &|| stats().0 == 404);
    let c = env.create("name = \"shop\"\n[fields.name]\ntype = \"text\"\n");
    let rows = env.write("again.jsonl", "{\"id\": \"n1\", \"name\": \"linen shirt\"}\n");
    mira_host::ingest::ingest(&c, &rows, &Default::default(), &mira_host::ingest::NoProgress).unwrap();
    drop(c);
    wait_for("the new collection is served", &|| {
        let (status, v) = call(
            "POST",
            &s.url("/v1/collections/shop/search"),
            None,
            Some(json!({"text": "linen"})),
        );
        status == 200 && v["hits"][0]["id"] == "n1"
    });
    assert_eq!(stats().1["documents"], 1);
}

/// A collection whose model is missing answers 503 `model_unavailable` with `Retry-After`
/// (nothing is indexed, other requests are served); once the model is put in place it is picked
/// up after `model_retry_secs`, without a restart.
#[test]
fn a_missing_model_is_503_until_it_is_put_in_place() {
    let env = Env::new();
    env.write("data/mira.toml", "[server]\nmodel_retry_secs = 1\n");
    let model = env.path().join("clip-later");
    let (mut child, _out, base) = spawn_serve(&env);
    let schema = format!(
        "name = \"notes\"\n[fields.title]\ntype = \"text\"\n[fields.emb]\ntype = \"vector\"\ndim = 16\n\
         source = \"clip-text\"\nfrom = [\"title\"]\n[models]\nclip = {:?}\n",
        model.to_str().unwrap()
    );
    let url = |path: &str| format!("{base}{path}");
    assert_eq!(
        call("POST", &url("/v1/collections"), None, Some(json!({"schema": schema}))).0,
        201
    );
    let docs = json!([{"id": "a", "title": "red dress"}]);
    let (status, text, retry_after) =
        answer(ureq::post(&url("/v1/collections/notes/documents")).send_json(docs.clone()));
    assert_eq!(status, 503, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (v["code"].as_str(), v["type"].as_str()),
        (Some("model_unavailable"), Some("unavailable")),
        "{v}"
    );
    assert!(
        v["message"].as_str().unwrap().contains("clip-later"),
        "the error names where it looked: {v}"
    );
    assert_eq!(retry_after.as_deref(), Some("1"));
    let (status, v) = call("GET", &url("/v1/collections/notes"), None, None);
    assert_eq!(
        (status, v["documents"].as_u64()),
        (200, Some(0)),
        "nothing indexed, still serving: {v}"
    );

    mira_host::embed::fixtures::write_tiny_clip(&model).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let (status, v) = call("POST", &url("/v1/collections/notes/documents"), None, Some(docs));
    assert_eq!(status, 200, "the model is picked up without a restart: {v}");
    assert_eq!(v["embedded"].as_u64(), Some(1), "{v}");
    let (status, v) = call(
        "POST",
        &url("/v1/collections/notes/search"),
        None,
        Some(json!({"text": "dress"})),
    );
    assert_eq!((status, v["hits"][0]["id"].as_str()), (200, Some("a")), "{v}");
    let _ = child.kill();
    let _ = child.wait();
}

/// Headless Chromium (Debian's `chromium`): the page's DOM after its scripts ran, or `None`
/// when no browser is installed and `MIRA_CI` is unset (CI sets it).
fn browser_dom(url: &str, profile: &std::path::Path) -> Option<String> {
    let browser = ["chromium", "chromium-browser", "google-chrome"].into_iter().find(|b| {
        std::process::Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(browser) = browser else {
        assert!(
            std::env::var_os("MIRA_CI").is_none(),
            "MIRA_CI is set but no chromium is installed (apt-get install chromium)"
        );
        eprintln!("skipping the browser test: no chromium installed (apt-get install chromium)");
        return None;
    };
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The search page in a real browser, against a demo collection with photos: a text query and
/// an image query (the page's own upload path) render real results.
#[test]
fn the_search_page_renders_text_and_image_results_in_a_browser() {
    let env = Env::new();
    let (model, _) = tiny_models(&env);
    let data = mira_host::demo::generate(&env.path().join("demo"), 60, 7).unwrap();
    let schema = format!(
        "{}\n[models]\nclip = {:?}\n",
        mira_host::demo::PRODUCTS_SCHEMA,
        model.to_str().unwrap()
    );
    let c = env
        .catalog()
        .create(mira_host::CollectionSchema::from_toml(&schema, "test").unwrap())
        .unwrap();
    let report =
        mira_host::ingest::ingest(&c, &data.jsonl, &Default::default(), &mira_host::ingest::NoProgress).unwrap();
    assert_eq!(report.indexed, 60);
    let first = c.search(&mira_host::SearchRequest::text("dress")).unwrap().hits[0].clone();
    let image = &first.fields["image"];
    let photo = std::fs::read(image.as_str().or_else(|| image[0].as_str()).unwrap()).unwrap();
    drop(c);
    let s = Server::start(&env, ServerSettings::default(), PluginLimits::default());

    let text_url = s.url("/?collection=products&q=dress&scenario=ecommerce");
    let Some(dom) = browser_dom(&text_url, &env.path().join("profile-1")) else {
        return;
    };
    assert!(dom.contains("data-ready=\"1\""), "the page finished its scripts: {dom}");
    let hits = dom.matches("class=\"hit\"").count();
    assert!(hits > 0, "no hits rendered: {dom}");
    assert!(dom.contains("hits of"), "{dom}");
    assert!(dom.contains("plugin ecommerce"), "the plugin's part is shown: {dom}");
    assert!(dom.contains("How it ranked") && dom.contains("BM25"), "{dom}");
    let (status, api) = call(
        "POST",
        &s.url("/v1/collections/products/search"),
        None,
        Some(json!({"text": "dress", "scenario": "ecommerce", "top_k": 24, "explain": true})),
    );
    assert_eq!(status, 200, "{api}");
    let api_ids: Vec<&str> = api["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rendered_ids(&dom),
        api_ids,
        "the page shows the API's hits in the API's order"
    );

    // Facets: the counts render as checkboxes; a ticked brand (from a link) filters the hits as
    // the API's facet filters do, and stays ticked.
    assert!(dom.contains("data-facet=\"brand\""), "facet checkboxes: {dom}");
    let brand = api["hits"][0]["fields"]["brand"].as_str().unwrap().to_owned();
    let refined = s.url(&format!(
        "/?collection=products&q=dress&refine=brand:{}",
        urlencode(&brand)
    ));
    let dom = browser_dom(&refined, &env.path().join("profile-3")).unwrap();
    let (_, api) = call(
        "POST",
        &s.url("/v1/collections/products/search"),
        None,
        Some(json!({"text": "dress", "top_k": 24, "explain": true, "facet_filters": {"brand": [brand]}})),
    );
    let api_ids: Vec<&str> = api["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(rendered_ids(&dom), api_ids, "the ticked brand filters the page's hits");
    // The DOM writes attribute values escaped (`Maple &amp; Co`).
    let escaped = brand.replace('&', "&amp;");
    assert!(
        dom.contains(&format!("data-value=\"{escaped}\" checked"))
            || dom.contains(&format!("checked=\"\" data-facet=\"brand\" data-value=\"{escaped}\"")),
        "the brand stays ticked: {dom}"
    );

    let b64 = base64::engine::general_purpose::STANDARD.encode(&photo);
    let image_url = s.url(&format!(
        "/?collection=products&image=data:image/png;base64,{}",
        urlencode(&b64)
    ));
    let dom = browser_dom(&image_url, &env.path().join("profile-2")).unwrap();
    assert!(dom.contains("query vector: clip image"), "{dom}");
    assert_eq!(
        rendered_ids(&dom).first().copied(),
        Some(first.id.as_str()),
        "the photo finds its own product first"
    );

    // A product's second photo finds it, and its card shows that photo.
    let second = std::fs::read(env.path().join("demo/images/p00003-2.png")).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&second);
    let url = s.url(&format!(
        "/?collection=products&image=data:image/png;base64,{}",
        urlencode(&b64)
    ));
    let dom = browser_dom(&url, &env.path().join("profile-4")).unwrap();
    assert_eq!(rendered_ids(&dom).first().copied(), Some("p00003"), "{dom}");
    assert!(
        dom.contains("data-image=\"/v1/collections/products/documents/p00003/image?field=image&amp;index=1\""),
        "the card shows the photo that matched: {dom}"
    );
    assert!(dom.contains("matched photo 2"), "{dom}");
}

/// The ids of the rendered hits, in page order.
fn rendered_ids(dom: &str) -> Vec<&str> {
    dom.split("class=\"hit\" data-id=\"")
        .skip(1)
        .filter_map(|r| r.split('"').next())
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn one_request_illustrates_an_article_without_reusing_a_picture() {
    let env = Env::new();
    let s = Server::start(&env, ServerSettings::default(), PluginLimits::default());
    let schema = "name = \"pictures\"\n[fields.caption]\ntype = \"text\"\nanalyzer = \"english\"\n";
    assert_eq!(
        call("POST", &s.url("/v1/collections"), None, Some(json!({"schema": schema}))).0,
        201
    );
    let captions = [
        "fishing boats leaving the harbour at dawn",
        "the harbour wall and boats",
        "a storm breaking over the sea wall",
        "snow on the roofs of the village",
        "a busy market with fruit and fish",
        "the lighthouse on the cliffs at sunset",
    ];
    let docs: Vec<Value> = captions
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"id": format!("p{i}"), "caption": c}))
        .collect();
    assert_eq!(
        call(
            "POST",
            &s.url("/v1/collections/pictures/documents"),
            None,
            Some(Value::Array(docs))
        )
        .0,
        200
    );
    let article = "Harbour mornings\n\nThe fishing boats leave the harbour at dawn, one after another, past the old wall.\n\n\
                   In autumn a storm breaks over the sea wall and the boats stay in the harbour for days.\n\n\
                   Snow settles on the village roofs and everything is quiet for a while in winter.";
    let (status, v) = call(
        "POST",
        &s.url("/v1/collections/pictures/illustrate"),
        None,
        Some(json!({"article": article, "per_paragraph": 2, "min_chars": 40})),
    );
    assert_eq!(status, 200, "{v}");
    let paragraphs = v["paragraphs"].as_array().unwrap();
    assert_eq!(paragraphs.len(), 3, "the heading is skipped: {v}");
    assert_eq!(paragraphs[0]["paragraph"], 1);
    let mut seen = std::collections::HashSet::new();
    for p in paragraphs {
        for pic in p["pictures"].as_array().unwrap() {
            assert!(seen.insert(pic["id"].as_str().unwrap().to_owned()), "used twice: {v}");
        }
    }
    let first = |i: usize| {
        paragraphs[i]["pictures"][0]["fields"]["caption"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert!(first(0).contains("harbour"), "{v}");
    assert!(first(1).contains("storm"), "{v}");
    assert!(first(2).contains("snow"), "{v}");
    let (status, v) = call(
        "POST",
        &s.url("/v1/collections/pictures/illustrate"),
        None,
        Some(json!({"article": "  "})),
    );
    assert_eq!(status, 400, "{v}");
}

/// The three example applications run end to end, with (tiny random) CLIP and reranker models
/// named by the environment. Needs the examples built (`cargo test --workspace` builds them).
#[test]
fn the_example_applications_run() {
    let env = Env::new();
    let exe = std::env::current_exe().unwrap();
    let examples = exe.parent().unwrap().parent().unwrap().join("examples");
    let (clip, reranker) = tiny_models(&env);
    let blip = env.path().join("blip");
    mira_host::caption::fixtures::write_tiny_blip(&blip).unwrap();
    for (name, expect) in [
        (
            "product-search",
            vec![
                "a shopper's photo of a red dress",
                "query vector: clip image",
                "plugin ecommerce",
                "reranked",
                "p00003 1.0000  matched photo 2",
                "ticked brand",
                "*",
            ],
        ),
        ("article-illustration", vec!["none used twice", "instruction:"]),
        (
            "media-archive",
            vec![
                "== hybrid",
                "query vector: clip image",
                "/photo",
                "/document",
                "photo embeddings and captions computed",
            ],
        ),
    ] {
        let bin = examples.join(name);
        if !bin.is_file() {
            assert!(
                std::env::var_os("MIRA_CI").is_none(),
                "example {name} not built at {}",
                bin.display()
            );
            eprintln!("skipping example {name}: not built (cargo test --workspace builds the examples)");
            continue;
        }
        // Run as users do: the default `examples-data/`, relative to the working directory.
        let out = std::process::Command::new(&bin)
            .current_dir(env.path())
            .env_remove("MIRA_EXAMPLES_DIR")
            .env("MIRA_CLIP_MODEL", &clip)
            .env("MIRA_RERANKER_MODEL", &reranker)
            .env("MIRA_CAPTION_MODEL", &blip)
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap();
        let text = stdout(&out);
        assert!(out.status.success(), "{name}: {text}\n{}", stderr(&out));
        for e in expect {
            assert!(text.contains(e), "{name}: `{e}` not in\n{text}");
        }
    }
}

/// A clip-tags field whose vocabulary is `"plugin:ecommerce"` takes the live plugin's words when
/// documents arrive over HTTP.
#[test]
fn uploaded_photos_are_tagged_from_a_plugins_vocabulary() {
    let env = Env::new();
    let model = env.path().join("clip");
    mira_host::embed::fixtures::write_tiny_clip(&model).unwrap();
    let s = Server::start(&env, ServerSettings::default(), PluginLimits::default());
    let schema = format!(
        "name = \"tagged\"\n[fields.photo]\ntype = \"image\"\n[fields.tags]\ntype = \"text\"\n\
         source = \"clip-tags\"\nvocabulary = \"plugin:ecommerce\"\ntop = 2\n[models]\nclip = {:?}\n",
        model.to_str().unwrap()
    );
    let (status, v) = call("POST", &s.url("/v1/collections"), None, Some(json!({"schema": schema})));
    assert_eq!(status, 201, "{v}");
    let docs = json!([{"id": "r", "photo": "red.png"}]);
    let (ct, body) = multipart(&[
        ("documents", None, "application/json", docs.to_string().into_bytes()),
        ("files", Some("red.png"), "image/png", png_bytes(40, 30)),
    ]);
    let (status, text, _) = answer(
        ureq::post(&s.url("/v1/collections/tagged/documents"))
            .set("Content-Type", &ct)
            .send_bytes(&body),
    );
    assert_eq!(status, 200, "{text}");
    let (_, v) = call(
        "POST",
        &s.url("/v1/collections/tagged/search"),
        None,
        Some(json!({"filter": "id:r"})),
    );
    let tags = v["hits"][0]["fields"]["tags"].as_array().cloned().unwrap_or_default();
    let words = &s.registry.get("ecommerce").unwrap().description.tag_vocabulary;
    assert_eq!(tags.len(), 2, "{v}");
    assert!(
        tags.iter().all(|t| words.contains(&t.as_str().unwrap().to_owned())),
        "{tags:?} are ecommerce's words"
    );
}

/// Shipping a plugin version with other tag words re-tags what is already indexed, in the
/// background, with nothing but the upload: the collection's tags move to the new words (its
/// record says so), a forced re-tag afterwards finds nothing left to change and no image to
/// embed again, and `POST /v1/collections/{name}/retag` checks its body like every route.
#[test]
fn a_new_plugin_vocabulary_retags_indexed_photos_in_the_background() {
    use mira_host::ingest::TagRecord;
    let env = Env::new();
    let model = env.path().join("clip");
    mira_host::embed::fixtures::write_tiny_clip(&model).unwrap();
    let s = Server::start(&env, ServerSettings::default(), PluginLimits::default());
    let upload = |path: &str| {
        let r = ureq::post(&s.url("/v1/plugins?activate=true"))
            .set("Content-Type", "application/wasm")
            .send_bytes(&std::fs::read(path).unwrap());
        assert_eq!(answer(r).0, 201, "{path}");
    };
    upload(SWAP_A_PLUGIN);
    let schema = format!(
        "name = \"tagged\"\n[fields.photo]\ntype = \"image\"\n[fields.tags]\ntype = \"text\"\n\
         source = \"clip-tags\"\nvocabulary = \"plugin:swapper\"\ntop = 2\n[models]\nclip = {:?}\n",
        model.to_str().unwrap()
    );
    let (status, v) = call("POST", &s.url("/v1/collections"), None, Some(json!({"schema": schema})));
    assert_eq!(status, 201, "{v}");
    let sizes = [(40, 30), (30, 40), (64, 16)];
    let docs: Vec<Value> = (0..sizes.len())
        .map(|i| json!({"id": format!("p{i}"), "photo": format!("p{i}.png")}))
        .collect();
    let mut parts = vec![(
        "documents",
        None,
        "application/json",
        json!(docs).to_string().into_bytes(),
    )];
    let names: Vec<String> = (0..sizes.len()).map(|i| format!("p{i}.png")).collect();
    for (name, (w, h)) in names.iter().zip(sizes) {
        parts.push(("files", Some(name.as_str()), "image/png", png_bytes(w, h)));
    }
    let (ct, body) = multipart(&parts);
    let (status, text, _) = answer(
        ureq::post(&s.url("/v1/collections/tagged/documents"))
            .set("Content-Type", &ct)
            .send_bytes(&body),
    );
    assert_eq!(status, 200, "{text}");
    let dir = mira_host::Catalog::new(&env.data())
        .open("tagged")
        .unwrap()
        .dir()
        .to_owned();
    let words = |plugin: &str| -> Vec<String> {
        let bytes = std::fs::read(plugin).unwrap();
        let r = registry(PluginLimits::default(), None);
        r.install(&bytes, "test").unwrap();
        r.tag_vocabularies()["swapper"].clone()
    };
    let (a, b) = (words(SWAP_A_PLUGIN), words(SWAP_B_PLUGIN));
    assert!(TagRecord::read(&dir).is_current("tags", "swapper", &a));
    let retag = s.url("/v1/collections/tagged/retag");
    let (status, v) = call("POST", &retag, None, None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["fields"].as_array().unwrap().len(), &v["up_to_date"]),
        (0, &json!(["tags"])),
        "{v}"
    );

    upload(SWAP_B_PLUGIN);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !TagRecord::read(&dir).is_current("tags", "swapper", &b) {
        assert!(Instant::now() < deadline, "not re-tagged within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, v) = call(
        "POST",
        &s.url("/v1/collections/tagged/search"),
        None,
        Some(json!({"filter": "id:p0 OR id:p1 OR id:p2", "top_k": 10})),
    );
    let hits = v["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3, "{v}");
    for h in hits {
        let tags = h["fields"]["tags"].as_array().unwrap();
        assert_eq!(tags.len(), 2, "{h}");
        assert!(tags.iter().all(|t| b.contains(&t.as_str().unwrap().to_owned())), "{h}");
    }
    // (B's words include A's, so the check above holds either way.) The real check: a forced
    // re-tag chooses every document's tags again from B and finds nothing the background pass
    // left to change, every image embedding from the cache.
    let (status, v) = call("POST", &retag, None, Some(json!({"force": true})));
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["checked"].as_u64(), v["changed"].as_u64()),
        (Some(3), Some(0)),
        "{v}"
    );
    assert_eq!(
        (v["images_embedded"].as_u64(), v["images_cached"].as_u64()),
        (Some(0), Some(3)),
        "{v}"
    );

    let (status, v) = call("POST", &retag, None, Some(json!({"force": "yes"})));
    assert_eq!(status, 400, "{v}");
    assert_error(&v, "invalid_request", "invalid_request");
    let (status, text, _) = answer(
        ureq::post(&retag)
            .set("Content-Type", "application/json")
            .send_string("{"),
    );
    assert_eq!(status, 400, "{text}");
    assert_error(
        &serde_json::from_str(&text).unwrap(),
        "malformed_json",
        "invalid_request",
    );
    let (status, v) = call("POST", &s.url("/v1/collections/nope/retag"), None, None);
    assert_eq!(status, 404, "{v}");
}
