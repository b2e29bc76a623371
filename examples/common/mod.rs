//! What the three example applications share: a fresh data directory, the models (from
//! MIRA_CLIP_MODEL / MIRA_RERANKER_MODEL, else the Hugging Face cache or hub, else none, said
//! out loud), the built-in ranking plugins, drawn scenes, and printing hits.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{Rgb, RgbImage};
use mira_host::models::{ModelKind, resolve_model};
use mira_host::plugin::{PluginLimits, PluginRegistry, PluginRuntime};
use mira_host::{Catalog, Collection, CollectionSchema, SearchResponse};

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// `examples-data/<name>` (or `$MIRA_EXAMPLES_DIR/<name>`), emptied, as an absolute path.
pub fn data_dir(name: &str) -> PathBuf {
    let root = std::env::var_os("MIRA_EXAMPLES_DIR").map_or_else(|| PathBuf::from("examples-data"), PathBuf::from);
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the example's data directory");
    // Absolute, so the image paths written into rows resolve wherever they are read from.
    std::path::absolute(&dir).expect("an absolute data directory")
}

/// Indexes rows built in memory (their image paths are absolute).
pub fn index(c: &Collection, rows: Vec<serde_json::Value>) -> mira_host::ingest::IngestReport {
    let rows = rows
        .into_iter()
        .map(|r| match r {
            serde_json::Value::Object(m) => m,
            other => panic!("a row is an object, got {other}"),
        })
        .collect();
    let source = Box::new(mira_host::ingest::MemoryRows::new(
        "generated",
        c.dir().to_owned(),
        rows,
    ));
    mira_host::ingest::ingest_rows(c, source, &Default::default(), &mira_host::ingest::NoProgress)
        .unwrap_or_else(|e| panic!("indexing {}: {e}", c.name()))
}

/// The model of `kind` if it can be had, announcing which or why not.
pub fn model(kind: ModelKind) -> Option<String> {
    let spec = kind.env_or_default();
    match resolve_model(&spec, kind) {
        Ok(_) => {
            println!("model: {spec}");
            Some(spec)
        }
        Err(e) => {
            println!("no {kind:?} model ({e})");
            None
        }
    }
}

/// A `photo` image field and its CLIP embedding (512-d, ViT-B/32's; a stand-in size when no
/// CLIP model can be had, so the schema stays the same shape).
pub fn photo_fields(with_clip: bool) -> String {
    let dim = if with_clip { 512 } else { 4 };
    format!(
        "[fields.photo]\ntype = \"image\"\n[fields.embedding]\ntype = \"vector\"\ndim = {dim}\n\
         source = \"clip-image\"\nfrom = [\"photo\"]\n"
    )
}

/// `[models]` lines for the models that can be had.
pub fn models_toml(clip: Option<&str>, reranker: Option<&str>, captioner: Option<&str>) -> String {
    let mut out = String::from("\n[models]\n");
    if let Some(c) = captioner {
        out.push_str(&format!("captioner = {c:?}\n"));
    }
    if let Some(c) = clip {
        out.push_str(&format!("clip = {c:?}\n"));
    }
    if let Some(r) = reranker {
        out.push_str(&format!("reranker = {r:?}\n"));
    }
    out
}

/// Creates a collection from schema TOML.
pub fn create(data: &Path, toml: &str) -> Collection {
    let schema = CollectionSchema::from_toml(toml, "example schema").unwrap_or_else(|e| panic!("{e}"));
    Catalog::new(data).create(schema).unwrap_or_else(|e| panic!("{e}"))
}

/// The built-in ranking plugins.
pub fn plugins() -> Arc<PluginRegistry> {
    let runtime = PluginRuntime::new(PluginLimits::default(), None).expect("plugin runtime");
    let registry = PluginRegistry::new(runtime, None, Default::default(), Default::default());
    for (name, bytes) in BUILTIN_PLUGINS {
        registry
            .install(bytes, "built-in")
            .unwrap_or_else(|e| panic!("plugin {name}: {e}"));
    }
    Arc::new(registry)
}

/// Prints a page of hits with the fields asked for.
pub fn print_hits(resp: &SearchResponse, fields: &[&str]) {
    let mut notes = vec![format!("{} via {}", resp.retrievers.join(" + "), resp.fusion)];
    if let Some(q) = &resp.query_vector {
        notes.push(format!("query vector: {q}"));
    }
    if let Some(r) = &resp.ranking {
        notes.push(format!("plugin {} {} ({:?})", r.plugin, r.version, r.status));
    }
    if let Some(r) = &resp.rerank
        && r.reranked > 0
    {
        notes.push(format!("reranked {} by P(yes)", r.reranked));
    }
    println!("  [{}; {:.1} ms]", notes.join("; "), resp.took_ms);
    for (i, h) in resp.hits.iter().enumerate() {
        let shown: Vec<String> = fields
            .iter()
            .filter_map(|f| {
                h.fields
                    .get(*f)
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            })
            .collect();
        println!("  {:>2}. {:<10} {:>8.4}  {}", i + 1, h.id, h.score, shown.join(" | "));
    }
}

/// A drawn scene: a sky and ground in the mood's colours, a sun or moon, and shapes for the
/// subject. Deterministic for a seed.
pub struct Scene {
    pub sky: [u8; 3],
    pub ground: [u8; 3],
    pub light: Option<[u8; 3]>,
    pub shapes: [u8; 3],
}

pub fn draw(scene: &Scene, seed: u64, w: u32, h: u32) -> RgbImage {
    let mut rng = fastrand::Rng::with_seed(seed);
    let horizon = h * 3 / 5 + rng.u32(0..h / 8);
    let (lx, ly, lr) = (
        rng.u32(w / 8..w * 7 / 8) as i64,
        rng.u32(h / 10..h / 3) as i64,
        (h / 10) as i64,
    );
    let blocks: Vec<(u32, u32, u32)> = (0..4 + rng.u32(0..4))
        .map(|_| (rng.u32(0..w), rng.u32(w / 16..w / 5), rng.u32(h / 10..h / 3)))
        .collect();
    RgbImage::from_fn(w, h, |x, y| {
        let mix = |a: [u8; 3], t: f32| a.map(|c| (c as f32 * t).min(255.0) as u8);
        if let Some(light) = scene.light {
            let (dx, dy) = (x as i64 - lx, y as i64 - ly);
            if dx * dx + dy * dy <= lr * lr {
                return Rgb(light);
            }
        }
        for &(bx, bw, bh) in &blocks {
            if x >= bx && x < bx + bw && y < horizon && y + bh >= horizon {
                return Rgb(scene.shapes);
            }
        }
        if y < horizon {
            Rgb(mix(scene.sky, 0.75 + 0.25 * y as f32 / horizon as f32))
        } else {
            Rgb(mix(
                scene.ground,
                1.0 - 0.3 * (y - horizon) as f32 / (h - horizon).max(1) as f32,
            ))
        }
    })
}
