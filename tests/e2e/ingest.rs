//! Ingest: JSONL, CSV and image folders; bad rows reported by file and line; upserts and deletes.

use mira_host::ingest::{self, IngestOptions, NoProgress, OnError};
use mira_host::{Error, SearchRequest};

use crate::common::{Env, SMALL, ids, png};

fn skip() -> IngestOptions {
    IngestOptions {
        on_error: OnError::Skip,
        ..Default::default()
    }
}

#[test]
fn jsonl_bad_rows_are_reported_and_skipped() {
    let env = Env::new();
    let c = env.create(SMALL);
    png(&env.path().join("img/a.png"), 8, 8);
    std::fs::write(env.path().join("img/broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let input = env.write(
        "rows.jsonl",
        r#"{"id": "a", "title": "red dress", "price": 10.5, "photo": "img/a.png", "emb": [1, 0, 0, 0]}
{"id": "b", "title": "blue dress", "price": "cheap"}
{"id": "c", "title": "green
{"id": "d", "price": 3}
{"id": "e", "title": "shoe", "emb": [1, 2, 3]}

{"id": "f", "title": "hat", "photo": "img/broken.png"}
{"id": "g", "title": "hat", "colour": "red"}
{"id": "h", "title": "scarf", "released": "yesterday"}
[1, 2]
{"id": "i", "title": "silk scarf", "kind": "/accessories/scarves", "stock": 3, "on_sale": true, "released": "2024-05-01"}
{"id": "  ", "title": "blank id"}
"#,
    );
    let report = ingest::ingest(&c, &input, &skip(), &NoProgress).unwrap();
    assert_eq!(report.indexed, 2, "{:#?}", report.errors);
    assert_eq!(report.skipped, 9);
    let errs: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
    let path = input.display().to_string();
    let expect = [
        format!("{path}:2 (id `b`): field `price`: expected a number, got a string"),
        format!("{path}:3: malformed JSON at column"),
        format!("{path}:4 (id `d`): field `title`: required field is missing"),
        format!("{path}:5 (id `e`): field `emb`: expected 4 elements, got 3"),
        format!("{path}:7 (id `f`): field `photo`: corrupt image"),
        format!("{path}:8 (id `g`): field `colour`: unknown field"),
        format!("{path}:9 (id `h`): field `released`: `yesterday` is not a date"),
        format!("{path}:10: expected a JSON object"),
        format!("{path}:12: field `id`: id must not be empty or blank"),
    ];
    for (got, want) in errs.iter().zip(&expect) {
        assert!(got.starts_with(want.as_str()), "got `{got}`, want prefix `{want}`");
    }
    let hits = c.search(&SearchRequest::text("scarf")).unwrap();
    assert_eq!(ids(&hits), vec!["i"]);
    let f = &hits.hits[0].fields;
    assert_eq!(f["kind"], "/accessories/scarves");
    assert_eq!(f["stock"], 3);
    assert_eq!(f["on_sale"], true);
    assert_eq!(f["released"], "2024-05-01T00:00:00Z");
}

#[test]
fn fail_mode_rolls_back_the_batch_and_names_the_row() {
    let env = Env::new();
    let c = env.create(SMALL); // batch_size = 2
    let input = env.write(
        "rows.jsonl",
        "{\"id\": \"1\", \"title\": \"one\"}\n{\"id\": \"2\", \"title\": \"two\"}\n{\"id\": \"3\", \"title\": \"three\"}\n{\"id\": \"4\", \"title\": 4}\n",
    );
    let err = ingest::ingest(&c, &input, &IngestOptions::default(), &NoProgress).unwrap_err();
    match &err {
        Error::IngestAborted { error, committed } => {
            assert_eq!(*committed, 2);
            assert_eq!(error.line, Some(4));
            assert_eq!(error.field.as_deref(), Some("title"));
        }
        other => panic!("unexpected {other}"),
    }
    c.refresh().unwrap();
    // The first batch (rows 1-2) was committed; row 3 was in the rolled-back batch.
    assert_eq!(c.stats().unwrap().documents, 2);
    assert!(c.search(&SearchRequest::text("three")).unwrap().hits.is_empty());
}

#[test]
fn upsert_replaces_and_delete_removes() {
    let env = Env::new();
    let c = env.create(SMALL);
    let first = env.write("a.jsonl", "{\"id\": \"x\", \"title\": \"old title\", \"emb\": [1,0,0,0]}\n{\"id\": \"y\", \"title\": \"other\", \"category\": \"junk\"}\n{\"id\": \"z\", \"title\": \"third\", \"category\": \"junk\"}\n");
    ingest::ingest(&c, &first, &IngestOptions::default(), &NoProgress).unwrap();
    // The same id twice in one file: the later row wins.
    let second = env.write("b.jsonl", "{\"id\": \"x\", \"title\": \"newer title\"}\n{\"id\": \"x\", \"title\": \"newest title\", \"emb\": [0,1,0,0]}\n");
    ingest::ingest(&c, &second, &IngestOptions::default(), &NoProgress).unwrap();
    assert_eq!(c.stats().unwrap().documents, 3);
    let hits = c.search(&SearchRequest::text("title")).unwrap();
    assert_eq!(ids(&hits), vec!["x"]);
    assert_eq!(hits.hits[0].fields["title"], "newest title");
    let v = c.search(&SearchRequest::vector(vec![0.0, 1.0, 0.0, 0.0])).unwrap();
    assert_eq!(v.hits[0].id, "x");
    assert!((v.hits[0].score - 1.0).abs() < 1e-6);

    let mut w = c.writer().unwrap();
    assert_eq!(w.delete_ids(&["y".into(), "nope".into()]).unwrap(), 1);
    w.commit().unwrap();
    assert_eq!(w.delete_query("category:junk").unwrap(), 1);
    w.finish().unwrap();
    assert_eq!(c.stats().unwrap().documents, 1);
    assert_eq!(c.stats().unwrap().vector_fields[0].documents_with_vector, 1);

    // Reopen from disk: everything committed is there.
    drop(c);
    let c = env.catalog().open("small").unwrap();
    assert_eq!(ids(&c.search(&SearchRequest::text("newest")).unwrap()), vec!["x"]);
}

#[test]
fn csv_with_types_and_vectors() {
    let env = Env::new();
    let c = env.create(SMALL);
    let input = env.write(
        "rows.csv",
        "id,title,price,stock,on_sale,released,emb\n\
         a,red dress,10.5,3,true,2024-01-02,\"[1,0,0,0]\"\n\
         b,blue dress,abc,1,false,2024-01-02,\n\
         c,green dress,7,2,no,2024-01-03T10:00:00Z,0 1 0 0\n\
         d,too,many,columns,here,x,y,z\n\
         e,hat,1,1,maybe,,\n",
    );
    let report = ingest::ingest(&c, &input, &skip(), &NoProgress).unwrap();
    assert_eq!(report.indexed, 2);
    let errs: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
    let p = input.display();
    assert!(
        errs[0].starts_with(&format!("{p}:3: field `price`: `abc` is not a finite number")),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with(&format!("{p}:5: 8 columns where the header has 7")),
        "{errs:?}"
    );
    assert!(
        errs[2].starts_with(&format!("{p}:6: field `on_sale`: `maybe` is not true or false")),
        "{errs:?}"
    );
    let hits = c
        .search(&SearchRequest {
            filter: Some("price:[5 TO 8]".into()),
            ..SearchRequest::text("dress")
        })
        .unwrap();
    assert_eq!(ids(&hits), vec!["c"]);
    assert_eq!(hits.hits[0].fields["on_sale"], false);
    let v = c.search(&SearchRequest::vector(vec![0.0, 1.0, 0.0, 0.0])).unwrap();
    assert_eq!(ids(&v)[0], "c");
}

#[test]
fn image_folder_with_sidecar() {
    let env = Env::new();
    let c = env.create(SMALL);
    let dir = env.path().join("photos");
    png(&dir.join("a.png"), 10, 10);
    png(&dir.join("sub/b.png"), 12, 9);
    std::fs::write(dir.join("notes.txt"), "not an image").unwrap();
    std::fs::write(dir.join("c.jpg"), "not a jpeg either").unwrap();
    std::fs::write(
        dir.join("metadata.jsonl"),
        "{\"file\": \"a.png\", \"title\": \"harbour at night\"}\n{\"file\": \"sub/b.png\", \"id\": \"bee\", \"title\": \"market street\"}\n{\"file\": \"missing.png\", \"title\": \"ghost\"}\n",
    )
    .unwrap();
    let report = ingest::ingest(&c, &dir, &skip(), &NoProgress).unwrap();
    assert_eq!(report.indexed, 2, "{:?}", report.errors);
    let errs: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
    assert!(
        errs.iter().any(|e| e.contains("c.jpg") && e.contains("photo")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("metadata.jsonl:3") && e.contains("`missing.png` is not an image")),
        "{errs:?}"
    );
    let hits = c.search(&SearchRequest::text("harbour")).unwrap();
    assert_eq!(ids(&hits), vec!["a.png"]);
    let photo = hits.hits[0].fields["photo"].as_str().unwrap();
    assert!(
        photo.ends_with("photos/a.png") && std::path::Path::new(photo).is_absolute(),
        "{photo}"
    );
    assert_eq!(ids(&c.search(&SearchRequest::text("market")).unwrap()), vec!["bee"]);
}

#[test]
fn huge_images_are_refused_before_decoding() {
    let env = Env::new();
    let schema = SMALL.replace("batch_size = 2", "batch_size = 2\nmax_image_pixels = 100");
    let c = env.create(&schema);
    png(&env.path().join("big.png"), 20, 20);
    let input = env.write(
        "rows.jsonl",
        "{\"id\": \"a\", \"title\": \"big\", \"photo\": \"big.png\"}\n",
    );
    let err = ingest::ingest(&c, &input, &IngestOptions::default(), &NoProgress).unwrap_err();
    assert!(
        err.to_string().contains("20x20 = 400 pixels, over the limit of 100"),
        "{err}"
    );
}
