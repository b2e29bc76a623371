//! Access follows the matched route: every route of the OpenAPI document, with no key, the
//! search key, the admin key and a wrong key, on collections and ids named like route segments
//! (`search`, `illustrate`, `plugins`, `documents`), which once slipped past a check made on the
//! path's text.

use mira_host::plugin::PluginLimits;
use mira_server::ServerSettings;
use serde_json::{Value, json};

use crate::common::*;
use crate::server::{Server, answer, call};

const NAMES: [&str; 4] = ["search", "illustrate", "plugins", "documents"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Level {
    Open,
    Search,
    Admin,
}

/// Every documented route's level. A route the document gains must be added here, so no route
/// goes unchecked.
fn level(route: &str) -> Level {
    match route {
        "GET /health" | "GET /metrics" => Level::Open,
        "GET /v1/collections"
        | "GET /v1/collections/{name}"
        | "GET /v1/collections/{name}/documents/{id}/image"
        | "POST /v1/collections/{name}/search"
        | "POST /v1/collections/{name}/illustrate" => Level::Search,
        "POST /v1/collections"
        | "DELETE /v1/collections/{name}"
        | "POST /v1/collections/{name}/retag"
        | "POST /v1/collections/{name}/documents"
        | "DELETE /v1/collections/{name}/documents"
        | "GET /v1/plugins"
        | "POST /v1/plugins"
        | "DELETE /v1/plugins/{name}"
        | "POST /v1/plugins/{name}/activate"
        | "POST /v1/plugins/{name}/rollback"
        | "POST /v1/plugins/{name}/shadow"
        | "POST /v1/collections/{name}/eval" => Level::Admin,
        other => panic!("{other} is documented but has no expected access level in this test"),
    }
}

const SCHEMA: &str = "[fields.title]\ntype = \"text\"\n";

fn routes(s: &Server) -> Vec<(String, String)> {
    let (status, doc) = call("GET", &s.url("/openapi.json"), None, None);
    assert_eq!(status, 200);
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.push((method.to_uppercase(), path.clone()));
        }
    }
    assert!(out.len() >= 17, "{out:?}");
    out
}

/// A body the route would take (so a refusal is about the key, not the body).
fn body(method: &str, path: &str, name: &str) -> Option<Value> {
    match (method, path) {
        ("POST", "/v1/collections") => Some(json!({"schema": format!("name = \"x{name}\"\n{SCHEMA}")})),
        ("POST", p) if p.ends_with("/search") => Some(json!({"text": "hello"})),
        ("POST", p) if p.ends_with("/illustrate") => Some(json!({"article": "hello world"})),
        ("POST", p) if p.ends_with("/documents") => Some(json!([{"id": name, "title": "hello"}])),
        ("DELETE", p) if p.ends_with("/documents") => Some(json!({"ids": ["nobody"]})),
        ("POST", p) if p.ends_with("/shadow") => Some(json!({"collection": name, "request": {"text": "hello"}})),
        _ => None,
    }
}

fn collections(s: &Server, key: &str) -> Vec<String> {
    let (status, v) = call("GET", &s.url("/v1/collections"), Some(key), None);
    assert_eq!(status, 200, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

fn start(admin: Option<&str>, search: Option<&str>, env: &Env) -> Server {
    let s = Server::start(
        env,
        ServerSettings {
            admin_key: admin.map(str::to_owned),
            search_key: search.map(str::to_owned),
            ..Default::default()
        },
        PluginLimits::default(),
    );
    for name in NAMES {
        let schema = format!("name = {name:?}\n{SCHEMA}");
        let (status, v) = call(
            "POST",
            &s.url("/v1/collections"),
            admin,
            Some(json!({"schema": schema})),
        );
        assert_eq!(status, 201, "{v}");
        let docs = json!([{"id": "search", "title": "hello"}, {"id": "documents", "title": "world"}]);
        let url = s.url(&format!("/v1/collections/{name}/documents"));
        assert_eq!(call("POST", &url, admin, Some(docs)).0, 200);
    }
    s
}

#[test]
fn every_route_checks_the_key_its_level_needs() {
    let env = Env::new();
    let s = start(Some("admin-k"), Some("search-k"), &env);
    let routes = routes(&s);
    for key in [None, Some("wrong-k"), Some("search-k")] {
        for (method, path) in &routes {
            let need = level(&format!("{method} {path}"));
            for name in NAMES {
                let url = s.url(&path.replace("{name}", name).replace("{id}", "search"));
                let (status, v) = call(method, &url, key, body(method, path, name));
                let refused = matches!(status, 401 | 403);
                let expected_refusal = match (need, key) {
                    (Level::Open, _) => false,
                    (_, None) | (_, Some("wrong-k")) => true,
                    (Level::Search, Some(_)) => false,
                    (Level::Admin, Some(k)) => k != "admin-k",
                };
                assert_eq!(
                    refused, expected_refusal,
                    "{method} {url} with key {key:?}: {status} {v}"
                );
                if refused {
                    let code = if key.is_none() {
                        "missing_api_key"
                    } else {
                        "invalid_api_key"
                    };
                    assert_eq!(v["code"], code, "{method} {url}: {v}");
                    assert_eq!(v["type"], "authentication", "{v}");
                    assert_eq!(status, if key.is_none() { 401 } else { 403 });
                }
            }
        }
    }
    // Nothing a refused request asked for happened.
    let mut left = collections(&s, "admin-k");
    left.sort();
    let mut expected: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(left, expected, "a refused request changed the collections");
    for name in NAMES {
        let (_, v) = call(
            "GET",
            &s.url(&format!("/v1/collections/{name}")),
            Some("search-k"),
            None,
        );
        assert_eq!(v["documents"], 2, "{name}: {v}");
    }
    // With the admin key, the same requests are served (the drops last).
    let (status, v) = call("DELETE", &s.url("/v1/collections/search"), Some("admin-k"), None);
    assert_eq!(status, 204, "{v}");
}

#[test]
fn with_only_an_admin_key_writes_need_it_and_reads_are_open() {
    let env = Env::new();
    let s = start(Some("admin-k"), None, &env);
    for name in NAMES {
        let (status, v) = call("DELETE", &s.url(&format!("/v1/collections/{name}")), None, None);
        assert_eq!(status, 401, "{name}: {v}");
        let (status, v) = call(
            "POST",
            &s.url(&format!("/v1/collections/{name}/search")),
            None,
            body("POST", "/search", name),
        );
        assert_eq!(status, 200, "{name}: {v}");
    }
    assert_eq!(collections(&s, "admin-k").len(), 4);
    // The scheme is case-insensitive; the key is not.
    for header in ["bearer admin-k", "BEARER admin-k", "Bearer  admin-k "] {
        let (status, text, _) = answer(
            ureq::post(&s.url("/v1/collections/search/documents"))
                .set("Authorization", header)
                .send_json(json!([{"id": "z", "title": "z"}])),
        );
        assert_eq!(status, 200, "{header}: {text}");
    }
    let (status, _, _) = answer(
        ureq::delete(&s.url("/v1/collections/search"))
            .set("Authorization", "Bearer ADMIN-K")
            .call(),
    );
    assert_eq!(status, 403);
    let (status, _, _) = answer(
        ureq::delete(&s.url("/v1/collections/search"))
            .set("X-Api-Key", "admin-k")
            .call(),
    );
    assert_eq!(status, 204);
}
