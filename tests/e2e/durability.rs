//! Derived vector files are rebuilt when missing or corrupt; a killed ingest leaves a consistent
//! index holding every committed document with its vector.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mira_host::SearchRequest;
use mira_host::ingest::{self, IngestOptions, NoProgress};
use serde_json::json;

use crate::common::{Env, ids};

const SCHEMA: &str = "name = \"d\"\n[fields.title]\ntype = \"text\"\n[fields.emb]\ntype = \"vector\"\ndim = 16\n[ingest]\nbatch_size = 40\n";

fn vector(i: usize) -> Vec<f32> {
    (0..16)
        .map(|j| ((i * 31 + j * 7) % 17) as f32 - 8.0 + if j == i % 16 { 20.0 } else { 0.0 })
        .collect()
}

fn matrix_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("vectors"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

#[test]
fn deleted_or_corrupted_matrix_files_are_rebuilt() {
    let env = Env::new();
    let c = env.create(SCHEMA);
    let rows: String = (0..100)
        .map(|i| format!("{}\n", json!({"id": i.to_string(), "title": "t", "emb": vector(i)})))
        .collect();
    ingest::ingest(&c, &env.write("r.jsonl", &rows), &IngestOptions::default(), &NoProgress).unwrap();
    let query = SearchRequest {
        top_k: Some(20),
        ..SearchRequest::vector(vector(7))
    };
    let before = c.search(&query).unwrap();
    assert_eq!(before.hits[0].id, "7");
    let dir = c.dir().to_owned();
    drop(c);

    let files = matrix_files(&dir);
    assert!(!files.is_empty());
    // Corrupt one file's body, truncate another (if any), delete the rest.
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&files[0], bytes).unwrap();
    for f in &files[1..] {
        std::fs::remove_file(f).unwrap();
    }
    // And a stray file of a segment that no longer exists is collected.
    std::fs::write(dir.join("vectors/0123456789abcdef0123456789abcdef.emb.mvec"), b"junk").unwrap();

    let c = env.catalog().open("d").unwrap();
    // Headers are checked at open, checksums in the background.
    c.wait_for_vector_indexes(&mut |_| {}).unwrap();
    let stats = c.vectors().stats();
    assert_eq!(stats.built, files.len());
    assert_eq!(stats.rebuilt_stale, 1);
    assert_eq!(stats.removed, 1);
    let after = c.search(&query).unwrap();
    assert_eq!(ids(&after), ids(&before));
    assert_eq!(matrix_files(&dir).len(), files.len());
}

#[test]
fn sigkill_during_ingest_keeps_every_committed_document_and_vector() {
    let env = Env::new();
    let c = env.create(SCHEMA);
    drop(c);
    let total = 200_000;
    let mut rows = String::with_capacity(total * 150);
    for i in 0..total {
        rows.push_str(&json!({"id": i.to_string(), "title": format!("doc {i}"), "emb": vector(i)}).to_string());
        rows.push('\n');
    }
    let input = env.write("big.jsonl", &rows);
    let mut child = Command::new(env!("CARGO_BIN_EXE_mira"))
        .arg("--data-dir")
        .arg(env.data())
        .args(["index", "d", input.to_str().unwrap(), "--batch-size", "500"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until a few batches are committed, then kill without warning.
    let started = Instant::now();
    let index_dir = env.data().join("collections/d/index");
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let docs = tantivy_docs(&index_dir);
        if docs >= 1500 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "ingest made no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "ingest finished before it could be killed"
        );
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();

    let c = env.catalog().open("d").unwrap();
    let stats = c.stats().unwrap();
    assert!(
        stats.documents >= 1500 && (stats.documents as usize) < total,
        "{}",
        stats.documents
    );
    assert_eq!(stats.documents % 500, 0, "only whole batches are committed");
    assert_eq!(
        stats.vector_fields[0].documents_with_vector, stats.documents,
        "every committed document has its vector"
    );
    // Committed rows are the first N of the file; spot-check their text and vectors.
    let n = stats.documents as usize;
    for i in [0, n / 2, n - 1] {
        let hit = &c.search(&SearchRequest::text(format!("\"doc {i}\""))).unwrap().hits[0];
        assert_eq!(hit.id, i.to_string());
        let v = c
            .search(&SearchRequest {
                filter: Some(format!("id:{i}")),
                ..SearchRequest::vector(vector(i))
            })
            .unwrap();
        assert!((v.hits[0].score - 1.0).abs() < 1e-5, "doc {i} lost its vector");
    }
    // And the collection takes writes again (the killed writer's lock is gone).
    let more = env.write("more.jsonl", "{\"id\": \"new\", \"title\": \"after the crash\"}\n");
    ingest::ingest(&c, &more, &IngestOptions::default(), &NoProgress).unwrap();
    assert_eq!(ids(&c.search(&SearchRequest::text("crash")).unwrap()), vec!["new"]);
}

/// Committed documents according to the index's meta.json, read without opening a writer.
fn tantivy_docs(index_dir: &std::path::Path) -> u64 {
    let Ok(meta) = std::fs::read_to_string(index_dir.join("meta.json")) else {
        return 0;
    };
    let Ok(meta) = serde_json::from_str::<serde_json::Value>(&meta) else {
        return 0;
    };
    meta["segments"]
        .as_array()
        .map(|segs| segs.iter().map(|s| s["max_doc"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

/// A writer can be taken right after the last one was dropped, even while other threads fork
/// processes (a child shares the lock file until it execs); one still held answers `Locked`.
#[test]
fn a_dropped_writer_lets_the_next_one_in_while_processes_are_spawned() {
    let env = Env::new();
    let c = env.create(SCHEMA);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let outcome = std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = Command::new("true").stdout(Stdio::null()).status();
                }
            });
        }
        // Failures are carried out of the scope, not raised in it: the scope joins the spawners,
        // which stop only once the flag is set.
        let outcome = (0..100).try_for_each(|round| {
            let mut w = c.writer().map_err(|e| format!("round {round}: {e}"))?;
            w.commit().map_err(|e| format!("round {round}: commit: {e}"))
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        outcome
    });
    outcome.unwrap();

    let held = c.writer().unwrap();
    let err = c.writer().err().expect("a second writer while one is held");
    assert!(
        matches!(err, mira_host::Error::Locked(ref name) if name == "d"),
        "{err}"
    );
    drop(held);
    c.writer().unwrap();
}
