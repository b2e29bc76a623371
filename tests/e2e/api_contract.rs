//! The OpenAPI document as a contract. Every request body it documents (JSON and multipart) is
//! built from the document's own schemas and sent to a live server, which must accept it; bodies
//! the schemas forbid (an unknown property, a wrong type, a value outside an enum or a bound, a
//! missing required property) must be refused with a 400 and the error shape.
//!
//! Values come from the schemas: enums give every variant, bounds give the boundary, types give
//! a value of that type. Only what a schema cannot say (that `text_fields` must name a text
//! field of this collection, that a vector has the field's dimension) comes from [`hint`], keyed
//! by schema and property. A property the document gains without a hint is exercised with its
//! type's value: if the server refuses that, this test names the property.

use std::collections::BTreeSet;

use base64::Engine;
use mira_host::plugin::PluginLimits;
use mira_server::ServerSettings;
use serde_json::{Map, Value, json};

use crate::common::*;
use crate::server::{Server, answer, assert_error, call, multipart, png_bytes};

const DIM: usize = 16;

/// The collection every body is sent to: text, keyword, number, an image, its CLIP vector.
fn shop_schema(name: &str, clip: &std::path::Path) -> String {
    format!(
        "name = {name:?}\n[fields.title]\ntype = \"text\"\n[fields.category]\ntype = \"keyword\"\n\
         [fields.price]\ntype = \"f64\"\n[fields.photo]\ntype = \"image\"\n[fields.emb]\ntype = \"vector\"\n\
         dim = {DIM}\nsource = \"clip-image\"\n[models]\nclip = {:?}\n",
        clip.to_str().unwrap()
    )
}

/// Two servers on one data directory: `main`, under test, may fetch query images from `images`.
struct Fixture {
    env: Env,
    images: Server,
    main: Server,
    doc: Value,
    png: Vec<u8>,
    created: std::cell::Cell<usize>,
}

impl Fixture {
    fn new() -> Fixture {
        let env = Env::new();
        let clip = env.path().join("clip");
        mira_host::embed::fixtures::write_tiny_clip(&clip).unwrap();
        let images = Server::start(&env, ServerSettings::default(), PluginLimits::default());
        let main = Server::start(
            &env,
            ServerSettings {
                image_url_allowlist: vec![images.addr.to_string()],
                ..Default::default()
            },
            PluginLimits::default(),
        );
        let schema = shop_schema("shop", &clip);
        let (status, v) = call(
            "POST",
            &main.url("/v1/collections"),
            None,
            Some(json!({"schema": schema})),
        );
        assert_eq!(status, 201, "{v}");
        let png = png_bytes(24, 24);
        let docs = json!([
            {"id": "a", "title": "red silk dress", "category": "dress", "price": 40.0, "photo": "a.png"},
            {"id": "b", "title": "blue cotton dress", "category": "dress", "price": 20.0},
            {"id": "c", "title": "leather boots", "category": "shoes", "price": 90.0},
        ]);
        let (ct, body) = multipart(&[
            ("documents", None, "application/json", docs.to_string().into_bytes()),
            ("files", Some("a.png"), "image/png", png.clone()),
        ]);
        let (status, text, _) = answer(
            ureq::post(&main.url("/v1/collections/shop/documents"))
                .set("Content-Type", &ct)
                .send_bytes(&body),
        );
        assert_eq!(status, 200, "{text}");
        // A staged plugin version, for the shadow comparison.
        for (path, activate) in [(SWAP_A_PLUGIN, true), (SWAP_B_PLUGIN, false)] {
            let (status, text, _) = answer(
                ureq::post(&main.url(&format!("/v1/plugins?activate={activate}")))
                    .set("Content-Type", "application/wasm")
                    .send_bytes(&std::fs::read(path).unwrap()),
            );
            assert_eq!(status, 201, "{text}");
        }
        let (status, doc) = call("GET", &main.url("/openapi.json"), None, None);
        assert_eq!(status, 200);
        Fixture {
            env,
            images,
            main,
            doc,
            png,
            created: std::cell::Cell::new(0),
        }
    }

    /// A schema of `components`, following `$ref`s.
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(r) => {
                let name = r.trim_start_matches("#/components/schemas/");
                self.resolve(&self.doc["components"]["schemas"][name])
            }
            None => schema,
        }
    }

    /// The schema without its `null` alternative (`Option` fields are `[T, null]` or
    /// `oneOf: [null, T]`).
    fn non_null<'a>(&'a self, schema: &'a Value) -> &'a Value {
        if let Some(alts) = schema["oneOf"].as_array()
            && let Some(other) = alts.iter().find(|a| a["type"] != "null")
        {
            return self.resolve(other);
        }
        self.resolve(schema)
    }

    /// The schema's types, without `null`.
    fn types(&self, schema: &Value) -> Vec<String> {
        let s = self.non_null(schema);
        match &s["type"] {
            Value::String(t) => vec![t.clone()],
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .map(str::to_owned)
                .collect(),
            _ if s["enum"].is_array() => vec!["string".into()],
            _ => Vec::new(),
        }
    }

    /// Values the schema alone allows: every enum variant, the bounds of a number, else one
    /// value of its type.
    fn values(&self, schema: &Value) -> Vec<Value> {
        let s = self.non_null(schema);
        if let Some(variants) = s["enum"].as_array() {
            return variants.clone();
        }
        let types = self.types(schema);
        match types.first().map(String::as_str) {
            Some("integer") => {
                let lo = s["minimum"].as_i64().unwrap_or(0).max(1);
                let hi = s["maximum"].as_i64();
                let mut v = vec![json!(lo)];
                v.extend(hi.map(|h| json!(h)));
                v
            }
            Some("number") => vec![json!(0.5)],
            Some("boolean") => vec![json!(true), json!(false)],
            Some("array") => self
                .values(&s["items"])
                .into_iter()
                .take(1)
                .map(|v| json!([v]))
                .collect(),
            Some("object") => vec![self.object(s, "")],
            Some("string") => vec![json!("x")],
            _ => vec![Value::Null],
        }
    }

    /// The smallest object a schema allows: its required properties (hinted where the schema
    /// cannot say enough), plus what `base` needs.
    fn object(&self, schema: &Value, name: &str) -> Value {
        let s = self.resolve(schema);
        let mut obj = base(name);
        for p in s["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !obj.contains_key(p) {
                let value = self.hinted(name, p, &s["properties"][p]).into_iter().next().unwrap().0;
                obj.insert(p.to_owned(), value);
            }
        }
        Value::Object(obj)
    }

    /// Values for a property: the hint's, else the schema's; each with the other properties it
    /// needs beside it.
    fn hinted(&self, schema: &str, property: &str, prop: &Value) -> Vec<(Value, Map<String, Value>)> {
        if let Some(values) = hint(self, schema, property) {
            return values;
        }
        let nested = self.non_null(prop);
        if nested["type"] == "object" && nested["properties"].is_object() {
            let name = prop["$ref"]
                .as_str()
                .or_else(|| {
                    prop["oneOf"]
                        .as_array()
                        .and_then(|a| a.iter().find_map(|x| x["$ref"].as_str()))
                })
                .map_or("", |r| r.trim_start_matches("#/components/schemas/"));
            return vec![(self.object(nested, name), Map::new())];
        }
        self.values(prop).into_iter().map(|v| (v, Map::new())).collect()
    }

    fn next_name(&self) -> String {
        let n = self.created.get() + 1;
        self.created.set(n);
        format!("created{n}")
    }
}

/// What a body of this schema needs beyond its required properties (a search must search by
/// something; a delete must say what).
fn base(schema: &str) -> Map<String, Value> {
    let v = match schema {
        "SearchBody" => json!({"text": "dress"}),
        "DeleteDocuments" => json!({"ids": ["nobody"]}),
        _ => json!({}),
    };
    v.as_object().unwrap().clone()
}

/// Values the schemas cannot give: names of this collection's fields, a vector of its
/// dimension, a filter in its fields, images, plugin names. `None`: the schema's values do.
fn hint(f: &Fixture, schema: &str, property: &str) -> Option<Vec<(Value, Map<String, Value>)>> {
    let plain = |v: Value| Some(vec![(v, Map::new())]);
    let png_b64 = base64::engine::general_purpose::STANDARD.encode(&f.png);
    match (schema, property) {
        ("SearchBody", "text") => plain(json!("silk dress")),
        ("SearchBody", "text_fields") => plain(json!(["title"])),
        ("SearchBody", "vector") => plain(json!((0..DIM).map(|i| i as f32 / DIM as f32).collect::<Vec<_>>())),
        ("SearchBody", "vector_field") => plain(json!("emb")),
        ("SearchBody" | "IllustrateRequest", "filter") => plain(json!("price:[0 TO 100] AND category:dress")),
        ("SearchBody", "scenario") => plain(json!("ecommerce")),
        ("SearchBody", "plugin") => plain(json!("general")),
        ("SearchBody", "params") => plain(json!({"max_price": "80"})),
        ("SearchBody", "image_base64") => plain(json!(png_b64)),
        ("SearchBody", "image_url") => plain(json!(f.images.url("/v1/collections/shop/documents/a/image"))),
        // Normalisation is linear fusion's parameter.
        ("SearchBody", "normalization") => Some(
            ["minmax", "zscore", "none"]
                .iter()
                .map(|n| (json!(n), json!({"fusion": "linear"}).as_object().unwrap().clone()))
                .collect(),
        ),
        ("IllustrateRequest", "article") => plain(json!(
            "A red silk dress for a summer evening by the harbour, light and easy to wear.\n\n\
             Leather boots for the walk home through the old town, in the rain."
        )),
        ("CreateCollection", "schema") => plain(json!(shop_schema(&f.next_name(), &f.env.path().join("clip")))),
        ("Documents", "documents") => plain(json!([{"id": "n1", "title": "new dress", "price": 10.0}])),
        ("DeleteDocuments", "ids") => plain(json!(["nobody"])),
        // By query, not by ids as well: one of the two.
        ("DeleteDocuments", "query") => Some(vec![(
            json!("price:>=1000"),
            json!({"ids": null}).as_object().unwrap().clone(),
        )]),
        ("ShadowRequest", "collection") => plain(json!("shop")),
        ("SearchBody", "facets") => plain(json!([
            {"field": "category", "size": 5},
            {"field": "price", "ranges": [{"to": 50}, {"from": 50}]},
            {"field": "price", "interval": 25}
        ])),
        ("SearchBody", "facet_filters") => plain(json!({"category": ["dress"], "price": ["0..100"]})),
        ("SearchBody", "group_by") => plain(json!("category")),
        ("SearchBody", "group_size") => Some(vec![(
            json!(2),
            json!({"group_by": "category"}).as_object().unwrap().clone(),
        )]),
        ("EvalRequest", "judgments") => plain(json!(
            "{\"id\": \"q1\", \"query\": \"dress\", \"relevance\": {\"a\": 2, \"b\": 0}}\n"
        )),
        ("EvalRequest", "qrels") => plain(json!("q1 0 a 1\n")),
        ("EvalRequest", "settings") => plain(json!({"bm25_weight": 2, "rerank_window": 0})),
        ("EvalAgainst", "settings") => plain(json!({"candidates": 50})),
        ("EvalAgainst", "staged_plugin") => plain(json!("swapper")),
        _ => None,
    }
}

/// A multipart part: (name, file name, content type, bytes).
type Part<'a> = (&'a str, Option<&'a str>, &'a str, Vec<u8>);

/// A documented JSON body: where it goes and its schema's name.
struct Operation {
    method: String,
    path: String,
    schema: String,
}

fn operations(f: &Fixture, media: &str) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, item) in f.doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(r) = op["requestBody"]["content"][media]["schema"]["$ref"].as_str() {
                out.push(Operation {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    schema: r.trim_start_matches("#/components/schemas/").to_owned(),
                });
            }
        }
    }
    out
}

/// The path with its parameters filled: the collection `shop`, the staged plugin `swapper`.
fn concrete(path: &str) -> String {
    let path = path.replace("/v1/plugins/{name}", "/v1/plugins/swapper");
    path.replace("{name}", "shop")
}

fn send(f: &Fixture, op: &Operation, body: &Value) -> (u16, Value) {
    call(&op.method, &f.main.url(&concrete(&op.path)), None, Some(body.clone()))
}

#[test]
fn every_documented_json_body_is_accepted_and_what_the_schema_forbids_is_refused() {
    let f = Fixture::new();
    let ops = operations(&f, "application/json");
    let names: BTreeSet<&str> = ops.iter().map(|o| o.schema.as_str()).collect();
    for expected in [
        "SearchBody",
        "IllustrateRequest",
        "CreateCollection",
        "Documents",
        "DeleteDocuments",
        "ShadowRequest",
    ] {
        assert!(
            names.contains(expected),
            "{expected} is not a documented request body: {names:?}"
        );
    }
    let mut sent = 0;
    for op in &ops {
        let schema = f.resolve(&f.doc["components"]["schemas"][&op.schema]).clone();
        let props = schema["properties"].as_object().unwrap();
        let what = format!("{} {} ({})", op.method, op.path, op.schema);
        assert_eq!(
            schema["additionalProperties"], false,
            "{what}: the schema must say unknown properties are refused, as the server does"
        );
        // Accepted: the smallest body, then each property beside it with every value the
        // schema (or the hint) gives.
        let minimal = f.object(&schema, &op.schema);
        let (status, v) = send(&f, op, &minimal);
        assert!((200..300).contains(&status), "{what}: {minimal} -> {status} {v}");
        sent += 1;
        for (name, prop) in props {
            for (value, companions) in f.hinted(&op.schema, name, prop) {
                let mut body = f.object(&schema, &op.schema);
                let obj = body.as_object_mut().unwrap();
                obj.insert(name.clone(), value);
                // A companion of `null` takes that property out (one of two that exclude each other).
                for (k, v) in companions {
                    match v {
                        Value::Null => obj.remove(&k),
                        v => obj.insert(k, v),
                    };
                }
                let (status, v) = send(&f, op, &body);
                assert!(
                    (200..300).contains(&status),
                    "{what}: property `{name}` as documented: {body} -> {status} {v}"
                );
                sent += 1;
            }
        }
        // Refused: what the schema forbids.
        let refused = |body: Value, why: &str| {
            let (status, v) = send(&f, op, &body);
            assert_eq!(status, 400, "{what}: {why}: {body} -> {v}");
            assert!(
                v["code"].is_string() && v["type"] == "invalid_request",
                "{what}: {why}: {v}"
            );
        };
        let mut unknown = minimal.clone();
        unknown
            .as_object_mut()
            .unwrap()
            .insert("not_a_property".into(), json!(1));
        refused(unknown, "an unknown property");
        for p in schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let mut body = minimal.clone();
            body.as_object_mut().unwrap().remove(p);
            refused(body, &format!("without the required `{p}`"));
        }
        for (name, prop) in props {
            let types = f.types(prop);
            let wrong = if types.iter().any(|t| t == "string") {
                json!({"an": "object"})
            } else {
                json!("not of this type")
            };
            let mut body = minimal.clone();
            body.as_object_mut().unwrap().insert(name.clone(), wrong);
            refused(body, &format!("`{name}` of the wrong type"));
            let s = f.non_null(prop);
            if s["enum"].is_array() {
                let mut body = minimal.clone();
                body.as_object_mut()
                    .unwrap()
                    .insert(name.clone(), json!("not_a_variant"));
                refused(body, &format!("`{name}` outside its enum"));
            }
            for (bound, outside) in [("minimum", -1), ("maximum", 1)] {
                if let Some(b) = s[bound].as_i64() {
                    let mut body = minimal.clone();
                    body.as_object_mut().unwrap().insert(name.clone(), json!(b + outside));
                    refused(body, &format!("`{name}` past its {bound} {b}"));
                }
            }
        }
    }
    assert!(sent > 40, "only {sent} documented bodies were sent");
}

#[test]
fn every_documented_multipart_body_is_accepted() {
    let f = Fixture::new();
    let ops = operations(&f, "multipart/form-data");
    let names: BTreeSet<&str> = ops.iter().map(|o| o.schema.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["DocumentsUpload", "SearchUpload"]));
    for op in &ops {
        let schema = f.resolve(&f.doc["components"]["schemas"][&op.schema]).clone();
        let props: BTreeSet<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let url = f.main.url(&concrete(&op.path));
        // Every part the schema names, as the schema types it (binary parts are image files).
        let forms: Vec<Vec<Part>> = match op.schema.as_str() {
            "SearchUpload" => {
                assert_eq!(props, BTreeSet::from(["image", "request"]));
                vec![
                    vec![("image", Some("q.png"), "image/png", f.png.clone())],
                    vec![(
                        "request",
                        None,
                        "application/json",
                        br#"{"text": "dress", "top_k": 2}"#.to_vec(),
                    )],
                    vec![
                        ("request", None, "application/json", br#"{"text": "dress"}"#.to_vec()),
                        ("image", Some("q.png"), "image/png", f.png.clone()),
                    ],
                ]
            }
            "DocumentsUpload" => {
                assert_eq!(props, BTreeSet::from(["documents", "files"]));
                let docs = json!([{"id": "m1", "title": "uploaded", "photo": "m1.png"}]).to_string();
                vec![
                    vec![(
                        "documents",
                        None,
                        "application/json",
                        br#"[{"id": "m0", "title": "text only"}]"#.to_vec(),
                    )],
                    vec![
                        ("documents", None, "application/json", docs.into_bytes()),
                        ("files", Some("m1.png"), "image/png", f.png.clone()),
                    ],
                ]
            }
            other => panic!("no forms for {other}"),
        };
        for form in forms {
            let (ct, body) = multipart(&form);
            let (status, text, _) = answer(
                ureq::request(&op.method, &url)
                    .set("Content-Type", &ct)
                    .send_bytes(&body),
            );
            let parts: Vec<&str> = form.iter().map(|p| p.0).collect();
            assert_eq!(status, 200, "{} with parts {parts:?}: {text}", op.path);
        }
        // A part the schema does not name, and a repeated part, are refused.
        for form in [
            vec![("surprise", None, "text/plain", b"?".to_vec())],
            match op.schema.as_str() {
                "SearchUpload" => vec![
                    ("request", None, "application/json", br#"{"text": "a"}"#.to_vec()),
                    ("request", None, "application/json", br#"{"text": "b"}"#.to_vec()),
                ],
                _ => vec![
                    ("documents", None, "application/json", br#"[{"id": "x1"}]"#.to_vec()),
                    ("documents", None, "application/json", br#"[{"id": "x2"}]"#.to_vec()),
                ],
            },
        ] {
            let (ct, body) = multipart(&form);
            let (status, text, _) = answer(
                ureq::request(&op.method, &url)
                    .set("Content-Type", &ct)
                    .send_bytes(&body),
            );
            assert_eq!(status, 400, "{}: {text}", op.path);
            assert_error(
                &serde_json::from_str(&text).unwrap(),
                "invalid_request",
                "invalid_request",
            );
        }
    }
}
