//! Facets, facet filters (the disjunctive rule), grouping and relevance floors, each against
//! counts and orders computed here from the rows themselves.

use std::collections::{BTreeMap, HashMap, HashSet};

use mira_host::ingest::{self, IngestOptions, NoProgress};
use mira_host::search::facets::{FacetCounts, FacetRange, FacetRequest};
use mira_host::search::{MinScore, SearchResponse};
use mira_host::{Collection, Error, SearchRequest};
use serde_json::{Value, json};

use crate::common::{Env, ids, stdout};

const SHOP: &str = r#"
name = "shop"
[fields.body]
type = "text"
[fields.brand]
type = "keyword"
[fields.kind]
type = "facet"
[fields.price]
type = "f64"
[fields.stock]
type = "i64"
[fields.published]
type = "date"
[fields.on_sale]
type = "bool"
[fields.emb]
type = "vector"
dim = 4
metric = "dot"
"#;

const BRANDS: [&str; 5] = ["acme", "globex", "initech", "umbrella", "hooli"];
const KINDS: [&str; 5] = [
    "/clothing/dresses",
    "/clothing/shirts",
    "/clothing/dresses/maxi",
    "/shoes/boots",
    "/shoes",
];
const WORDS: [&str; 6] = ["red", "blue", "silk", "cotton", "summer", "dress"];

/// One generated row, kept to compute expectations from.
#[derive(Clone)]
struct Row {
    id: String,
    words: Vec<&'static str>,
    brand: &'static str,
    kind: &'static str,
    price: f64,
    stock: i64,
    /// Seconds since 1970.
    published: i64,
    on_sale: bool,
    emb: [f32; 4],
}

impl Row {
    fn json(&self) -> Value {
        let date = time::OffsetDateTime::from_unix_timestamp(self.published)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        json!({"id": self.id, "body": self.words.join(" "), "brand": self.brand, "kind": self.kind,
               "price": self.price, "stock": self.stock, "published": date, "on_sale": self.on_sale,
               "emb": self.emb})
    }

    fn dot(&self, q: &[f32; 4]) -> f32 {
        self.emb.iter().zip(q).map(|(a, b)| a * b).sum()
    }
}

fn rows(n: usize, seed: u64) -> Vec<Row> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|i| {
            let mut words: Vec<&str> = WORDS.iter().copied().filter(|_| rng.f32() < 0.35).collect();
            if words.is_empty() {
                words.push("plain");
            }
            Row {
                id: format!("p{i:03}"),
                words,
                brand: BRANDS[rng.usize(..BRANDS.len())],
                kind: KINDS[rng.usize(..KINDS.len())],
                price: (rng.f64() * 100.0 * 100.0).round() / 100.0,
                stock: rng.i64(0..50),
                // 2024-01-01 plus up to ~200 days.
                published: 1_704_067_200 + rng.i64(0..200 * 86_400),
                on_sale: rng.bool(),
                emb: [rng.f32() - 0.5, rng.f32() - 0.5, rng.f32() - 0.5, rng.f32() - 0.5],
            }
        })
        .collect()
}

/// A shop in three segments (three ingests), with a few documents deleted.
fn shop(env: &Env) -> (Collection, Vec<Row>) {
    let c = env.create(SHOP);
    let mut all = rows(240, 7);
    for chunk in all.chunks(80) {
        let text: String = chunk.iter().map(|r| format!("{}\n", r.json())).collect();
        let path = env.write(&format!("rows-{}.jsonl", chunk[0].id), &text);
        ingest::ingest(&c, &path, &IngestOptions::default(), &NoProgress).unwrap();
    }
    let gone = ["p005", "p100", "p201"];
    let mut w = c.writer().unwrap();
    w.delete_ids(&gone.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .unwrap();
    w.commit().unwrap();
    drop(w);
    all.retain(|r| !gone.contains(&r.id.as_str()));
    (c, all)
}

fn facet(field: &str) -> FacetRequest {
    FacetRequest {
        field: field.into(),
        size: Some(100),
        ..Default::default()
    }
}

fn counts_of(r: &SearchResponse, field: &str) -> BTreeMap<String, u64> {
    let f: &FacetCounts = r.facets.iter().find(|f| f.field == field).expect("facet answered");
    f.buckets
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| (b.value.clone(), b.count))
        .collect()
}

fn tally<'a>(values: impl Iterator<Item = String> + 'a) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for v in values {
        *m.entry(v).or_insert(0) += 1;
    }
    m
}

/// The children of `/` a facet path counts under.
fn top(kind: &str) -> String {
    format!("/{}", kind.trim_start_matches('/').split('/').next().unwrap())
}

/// Every kind of facet over a text query under a filter, against counts of the rows that
/// contain the word and pass the filter.
#[test]
fn facet_counts_are_of_the_matching_documents() {
    let env = Env::new();
    let (c, rows) = shop(&env);
    let mut req = SearchRequest::text("red");
    req.filter = Some("stock:[10 TO 49]".into());
    req.facets = vec![
        facet("brand"),
        facet("kind"),
        FacetRequest {
            path: Some("/clothing".into()),
            ..facet("kind")
        },
        FacetRequest {
            ranges: vec![
                FacetRange::parse("..20").unwrap(),
                FacetRange::parse("20..50").unwrap(),
                FacetRange::parse("50..").unwrap(),
            ],
            ..facet("price")
        },
        FacetRequest {
            interval: Some("25".into()),
            ..facet("stock")
        },
        FacetRequest {
            interval: Some("month".into()),
            ..facet("published")
        },
        facet("on_sale"),
    ];
    let r = c.search(&req).unwrap();
    let matching: Vec<&Row> = rows
        .iter()
        .filter(|r| r.words.contains(&"red") && (10..=49).contains(&r.stock))
        .collect();
    assert!(matching.len() > 20, "a meaningful set: {}", matching.len());
    assert_eq!(r.matching, Some(matching.len() as u64));
    assert_eq!(
        counts_of(&r, "brand"),
        tally(matching.iter().map(|r| r.brand.to_owned()))
    );
    let kinds = &r.facets[1];
    assert_eq!(kinds.kind, "children");
    let expect_top = tally(matching.iter().map(|r| top(r.kind)));
    assert_eq!(
        kinds
            .buckets
            .iter()
            .map(|b| (b.value.clone(), b.count))
            .collect::<BTreeMap<_, _>>(),
        expect_top
    );
    let clothing = &r.facets[2];
    let expect_clothing = tally(
        matching
            .iter()
            .filter(|r| r.kind.starts_with("/clothing/"))
            .map(|r| r.kind.split('/').take(3).collect::<Vec<_>>().join("/")),
    );
    assert_eq!(
        clothing
            .buckets
            .iter()
            .map(|b| (b.value.clone(), b.count))
            .collect::<BTreeMap<_, _>>(),
        expect_clothing
    );
    assert_eq!(
        clothing.buckets[0].label.as_deref(),
        clothing.buckets[0].value.rsplit('/').next()
    );
    let prices = &r.facets[3];
    let in_range = |lo: f64, hi: f64| matching.iter().filter(|r| r.price >= lo && r.price < hi).count() as u64;
    assert_eq!(
        prices
            .buckets
            .iter()
            .map(|b| (b.value.as_str(), b.count))
            .collect::<Vec<_>>(),
        vec![
            ("..20", in_range(f64::MIN, 20.0)),
            ("20..50", in_range(20.0, 50.0)),
            ("50..", in_range(50.0, f64::MAX))
        ],
        "every range listed, in the order asked"
    );
    let expect_stock = tally(matching.iter().map(|r| {
        let lo = r.stock / 25 * 25;
        format!("{lo}..{}", lo + 25)
    }));
    assert_eq!(counts_of(&r, "stock"), expect_stock);
    let months = &r.facets[5];
    assert_eq!(months.kind, "calendar");
    let expect_months = tally(matching.iter().map(|r| {
        let d = time::OffsetDateTime::from_unix_timestamp(r.published).unwrap();
        format!("{}-{:02}", d.year(), u8::from(d.month()))
    }));
    let got_months: BTreeMap<String, u64> = months
        .buckets
        .iter()
        .map(|b| (b.label.clone().unwrap(), b.count))
        .collect();
    assert_eq!(got_months, expect_months);
    assert!(months.buckets.windows(2).all(|w| w[0].value < w[1].value), "by date");
    assert_eq!(
        counts_of(&r, "on_sale"),
        tally(matching.iter().map(|r| r.on_sale.to_string()))
    );
}

/// `size` keeps the most frequent values and sums the rest into `other`.
#[test]
fn size_keeps_the_most_frequent_values() {
    let env = Env::new();
    let (c, rows) = shop(&env);
    let mut req = SearchRequest::text("silk OR cotton");
    req.facets = vec![FacetRequest {
        size: Some(2),
        ..facet("brand")
    }];
    let r = c.search(&req).unwrap();
    let matching: Vec<&Row> = rows
        .iter()
        .filter(|r| r.words.contains(&"silk") || r.words.contains(&"cotton"))
        .collect();
    let mut expect: Vec<(String, u64)> = tally(matching.iter().map(|r| r.brand.to_owned())).into_iter().collect();
    expect.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let f = &r.facets[0];
    assert_eq!(
        f.buckets.iter().map(|b| (b.value.clone(), b.count)).collect::<Vec<_>>(),
        expect[..2].to_vec()
    );
    assert_eq!(f.other, expect[2..].iter().map(|x| x.1).sum::<u64>());
}

/// Ticked values narrow the hits; each ticked field's own counts are as if its ticks were off,
/// and every other field's counts respect every tick. A ticked value outside the top `size` is
/// still listed.
#[test]
fn facet_filters_follow_the_disjunctive_rule() {
    let env = Env::new();
    let (c, rows) = shop(&env);
    let mut req = SearchRequest::text("summer");
    req.top_k = Some(1000);
    req.facet_filters = BTreeMap::from([
        ("brand".to_owned(), vec!["acme".to_owned(), "globex".to_owned()]),
        ("kind".to_owned(), vec!["/clothing".to_owned()]),
        ("price".to_owned(), vec!["..60".to_owned()]),
    ]);
    req.facets = vec![
        facet("brand"),
        facet("kind"),
        facet("on_sale"),
        FacetRequest {
            ranges: vec![FacetRange::parse("..60").unwrap(), FacetRange::parse("60..").unwrap()],
            ..facet("price")
        },
    ];
    let r = c.search(&req).unwrap();
    let base: Vec<&Row> = rows.iter().filter(|r| r.words.contains(&"summer")).collect();
    let brand_ok = |r: &Row| ["acme", "globex"].contains(&r.brand);
    let kind_ok = |r: &Row| r.kind.starts_with("/clothing");
    let price_ok = |r: &Row| r.price < 60.0;
    let all: Vec<&Row> = base
        .iter()
        .copied()
        .filter(|r| brand_ok(r) && kind_ok(r) && price_ok(r))
        .collect();
    let mut hits = ids(&r);
    hits.sort();
    let mut expect_hits: Vec<String> = all.iter().map(|r| r.id.clone()).collect();
    expect_hits.sort();
    assert_eq!(hits, expect_hits, "the hits respect every facet filter");
    assert_eq!(r.matching, Some(all.len() as u64));

    let brand = &r.facets[0];
    assert!(brand.disjunctive);
    let expect_brand = tally(
        base.iter()
            .filter(|r| kind_ok(r) && price_ok(r))
            .map(|r| r.brand.to_owned()),
    );
    assert_eq!(
        counts_of(&r, "brand"),
        expect_brand,
        "brand counted without its own ticks"
    );
    let ticked: Vec<&str> = brand
        .buckets
        .iter()
        .filter(|b| b.selected)
        .map(|b| b.value.as_str())
        .collect();
    assert_eq!(ticked.len(), 2);
    let expect_kind = tally(base.iter().filter(|r| brand_ok(r) && price_ok(r)).map(|r| top(r.kind)));
    assert_eq!(counts_of(&r, "kind"), expect_kind);
    assert_eq!(
        counts_of(&r, "on_sale"),
        tally(all.iter().map(|r| r.on_sale.to_string())),
        "an unticked field respects every tick"
    );
    let prices = &r.facets[3];
    let looser: Vec<&Row> = base.iter().copied().filter(|r| brand_ok(r) && kind_ok(r)).collect();
    assert_eq!(
        prices.buckets[0].count,
        looser.iter().filter(|r| r.price < 60.0).count() as u64
    );
    assert_eq!(
        prices.buckets[1].count,
        looser.iter().filter(|r| r.price >= 60.0).count() as u64
    );
    assert!(prices.buckets[0].selected && !prices.buckets[1].selected);

    // Sending a bucket's value back as a facet filter gives that bucket's count as the hits.
    let mut again = SearchRequest::text("summer");
    again.top_k = Some(1000);
    again.facet_filters = BTreeMap::from([("kind".to_owned(), vec!["/shoes".to_owned()])]);
    let shoes = c.search(&again).unwrap();
    let expect = base.iter().filter(|r| r.kind.starts_with("/shoes")).count();
    assert_eq!(shoes.hits.len(), expect, "a path ticks everything under it");

    // A ticked value beyond `size` is still listed.
    let mut small = SearchRequest::text("summer");
    small.facet_filters = BTreeMap::from([("brand".to_owned(), vec!["nobody".to_owned()])]);
    small.facets = vec![FacetRequest {
        size: Some(1),
        ..facet("brand")
    }];
    let r = c.search(&small).unwrap();
    assert!(r.hits.is_empty());
    let b = r.facets[0]
        .buckets
        .iter()
        .find(|b| b.value == "nobody")
        .expect("ticked value listed");
    assert!(b.selected && b.count == 0);
}

/// The vector part of the matching set: the kNN candidates above the floor, under the filter
/// (and again under the looser filter for a ticked field).
#[test]
fn vector_candidates_above_the_floor_are_counted() {
    let env = Env::new();
    let (c, rows) = shop(&env);
    let q = [0.4f32, -0.3, 0.2, 0.1];
    let mut req = SearchRequest::vector(q.to_vec());
    req.candidates = Some(1000);
    req.exact = true;
    req.min_score = MinScore {
        vector: Some(0.1),
        ..Default::default()
    };
    req.facet_filters = BTreeMap::from([("brand".to_owned(), vec!["acme".to_owned()])]);
    req.facets = vec![facet("brand"), facet("on_sale")];
    let r = c.search(&req).unwrap();
    let near: Vec<&Row> = rows.iter().filter(|r| r.dot(&q) >= 0.1).collect();
    let acme: Vec<&Row> = near.iter().copied().filter(|r| r.brand == "acme").collect();
    assert_eq!(r.matching, Some(acme.len() as u64));
    assert_eq!(counts_of(&r, "brand"), tally(near.iter().map(|r| r.brand.to_owned())));
    assert_eq!(
        counts_of(&r, "on_sale"),
        tally(acme.iter().map(|r| r.on_sale.to_string()))
    );
    let cuts = r.cuts.expect("floors report their cuts");
    assert_eq!(
        cuts.vector,
        rows.iter().filter(|r| r.brand == "acme").count() - acme.len()
    );
    assert!(r.hits.iter().all(|h| h.score >= 0.1));
}

/// BM25 and final floors cut before fusion and after ranking; a retriever's floor also
/// shrinks the matching set.
#[test]
fn relevance_floors_cut_and_say_so() {
    let env = Env::new();
    let (c, _) = shop(&env);
    let all = c
        .search(&SearchRequest {
            top_k: Some(1000),
            ..SearchRequest::text("red silk")
        })
        .unwrap();
    let scores: Vec<f32> = all.hits.iter().map(|h| h.score).collect();
    let floor = scores[scores.len() / 2];
    let mut req = SearchRequest::text("red silk");
    req.top_k = Some(1000);
    req.min_score.bm25 = Some(floor);
    req.facets = vec![facet("brand")];
    let r = c.search(&req).unwrap();
    let kept = scores.iter().filter(|&&s| s >= floor).count();
    assert_eq!(r.hits.len(), kept);
    assert_eq!(r.matching, Some(kept as u64), "facets count what the floor kept");
    assert_eq!(r.cuts.unwrap().bm25, scores.len() - kept);
    assert_eq!(r.cuts.unwrap().final_score, 0);

    let mut req = SearchRequest::text("red silk");
    req.top_k = Some(1000);
    req.min_score.final_score = Some(floor);
    let r = c.search(&req).unwrap();
    assert_eq!(r.hits.len(), kept);
    assert_eq!(r.cuts.unwrap().final_score, scores.len() - kept);
    assert!(
        c.search(&SearchRequest::text("red")).unwrap().cuts.is_none(),
        "no floor, no report"
    );
}

/// `group_by`: at most `group_size` hits per brand, groups by their best member, pages of
/// groups; against the ungrouped order.
#[test]
fn grouping_keeps_a_few_hits_per_item_and_pages_by_group() {
    let env = Env::new();
    let (c, rows) = shop(&env);
    let brand_of: HashMap<&str, &str> = rows.iter().map(|r| (r.id.as_str(), r.brand)).collect();
    let flat = c
        .search(&SearchRequest {
            top_k: Some(1000),
            ..SearchRequest::text("dress")
        })
        .unwrap();
    // Expected: walk the flat order, keep the first 2 per brand, group by first appearance.
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for id in ids(&flat) {
        let brand = brand_of[id.as_str()].to_owned();
        match groups.iter_mut().find(|g| g.0 == brand) {
            Some(g) if g.1.len() < 2 => g.1.push(id),
            Some(_) => {}
            None => groups.push((brand, vec![id])),
        }
    }
    let mut req = SearchRequest::text("dress");
    req.group_by = Some("brand".into());
    req.group_size = Some(2);
    req.top_k = Some(2);
    req.offset = 1;
    let r = c.search(&req).unwrap();
    assert_eq!(r.groups, Some(groups.len()));
    let expect: Vec<String> = groups[1..3].iter().flat_map(|g| g.1.clone()).collect();
    assert_eq!(ids(&r), expect, "groups 2 and 3, two hits each, in order");
    let seen: HashSet<&str> = r.hits.iter().map(|h| h.group.as_deref().unwrap()).collect();
    assert_eq!(seen.len(), 2);
    assert_eq!(r.hits[0].group.as_deref(), Some(groups[1].0.as_str()));
}

#[test]
fn bad_facets_groups_and_floors_are_refused_before_any_work() {
    let env = Env::new();
    let (c, _) = shop(&env);
    let code = |req: SearchRequest| match c.search(&req) {
        Err(Error::Query(q)) => (q.code(), q.to_string()),
        other => panic!("expected a query error, got {other:?}"),
    };
    let with = |f: FacetRequest| SearchRequest {
        facets: vec![f],
        ..SearchRequest::text("red")
    };
    assert_eq!(code(with(facet("nope"))).0, "unknown_field");
    assert_eq!(code(with(facet("body"))).0, "wrong_field_kind");
    assert_eq!(code(with(facet("emb"))).0, "wrong_field_kind");
    let (c1, m) = code(with(facet("published")));
    assert_eq!(c1, "invalid_facet");
    assert!(m.contains("interval"), "{m}");
    for interval in ["0", "-1", "fortnight", "NaN"] {
        let f = FacetRequest {
            interval: Some(interval.into()),
            ..facet(if interval == "fortnight" { "published" } else { "price" })
        };
        assert_eq!(code(with(f)).0, "invalid_facet", "{interval}");
    }
    let f = FacetRequest {
        ranges: vec![FacetRange::parse("50..20").unwrap()],
        ..facet("price")
    };
    assert_eq!(code(with(f)).0, "invalid_facet");
    let tiny = FacetRequest {
        interval: Some("1e-300".into()),
        ..facet("price")
    };
    let (c4, m) = code(with(tiny));
    assert_eq!(c4, "invalid_facet");
    assert!(m.contains("too small"), "{m}");
    let twice = FacetRequest {
        ranges: vec![FacetRange::parse("..20").unwrap(), FacetRange::parse("..20").unwrap()],
        ..facet("price")
    };
    let (c3, m) = code(with(twice));
    assert_eq!(c3, "invalid_facet");
    assert!(m.contains("asked twice"), "{m}");
    let f = FacetRequest {
        size: Some(0),
        ..facet("brand")
    };
    assert_eq!(code(with(f)).0, "invalid_facet");
    let many = SearchRequest {
        facets: vec![facet("brand"); 21],
        ..SearchRequest::text("red")
    };
    assert_eq!(code(many).0, "invalid_facet");
    let tick = |field: &str, v: &str| SearchRequest {
        facet_filters: BTreeMap::from([(field.to_owned(), vec![v.to_owned()])]),
        ..SearchRequest::text("red")
    };
    assert_eq!(code(tick("price", "cheap")).0, "invalid_facet");
    assert_eq!(code(tick("price", "..")).0, "invalid_facet");
    assert_eq!(code(tick("on_sale", "maybe")).0, "invalid_facet");
    assert_eq!(code(tick("kind", "clothing")).0, "invalid_facet");
    assert_eq!(code(tick("published", "2024-03-01")).0, "invalid_facet");
    assert_eq!(code(tick("body", "red")).0, "wrong_field_kind");
    let grouped = |field: &str, size: Option<usize>| SearchRequest {
        group_by: Some(field.into()),
        group_size: size,
        ..SearchRequest::text("red")
    };
    assert_eq!(code(grouped("price", None)).0, "wrong_field_kind");
    assert_eq!(code(grouped("brand", Some(0))).0, "invalid_group_by");
    assert_eq!(code(grouped("brand", Some(101))).0, "invalid_group_by");
    let only_size = SearchRequest {
        group_size: Some(2),
        ..SearchRequest::text("red")
    };
    assert_eq!(code(only_size).0, "invalid_group_by");
    let nan = SearchRequest {
        min_score: MinScore {
            vector: Some(f32::NAN),
            ..Default::default()
        },
        ..SearchRequest::text("red")
    };
    assert_eq!(code(nan).0, "invalid_min_score");
}

/// The CLI: facets, ticks, groups and the floor's report under --explain.
#[test]
fn the_cli_counts_facets_ticks_values_and_groups() {
    let env = Env::new();
    let (_c, rows) = shop(&env);
    let out = env.mira(&[
        "search",
        "shop",
        "red",
        "--facet",
        "brand:size=10",
        "--facet",
        "price:ranges=..50,50..",
        "--refine",
        "brand=acme",
        "--refine",
        "brand=hooli",
        "--group-by",
        "brand",
        "--min-bm25",
        "0.01",
        "--explain",
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", crate::common::stderr(&out));
    let red: Vec<&Row> = rows.iter().filter(|r| r.words.contains(&"red")).collect();
    let acme = red.iter().filter(|r| r.brand == "acme").count();
    assert!(text.contains(&format!("*acme ({acme})")), "{text}");
    assert!(text.contains("2 group(s)"), "{text}");
    assert!(text.contains("min_score cut 0 bm25"), "{text}");
    assert!(text.contains("facet price: ..50 ("), "{text}");
    let bad = env.mira(&["search", "shop", "red", "--facet", "price:colour=red"]);
    assert!(!bad.status.success());
}
