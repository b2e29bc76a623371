//! Helpers: temp data dirs, collections from inline schemas, input files, the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mira_host::{Catalog, Collection, CollectionSchema};
use tempfile::TempDir;

pub struct Env {
    pub dir: TempDir,
}

impl Env {
    pub fn new() -> Self {
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    pub fn catalog(&self) -> Catalog {
        Catalog::new(&self.data())
    }

    pub fn create(&self, schema: &str) -> Collection {
        let schema = CollectionSchema::from_toml(schema, "test").expect("valid schema");
        self.catalog().create(schema).expect("create")
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Runs the `mira` binary on this env's data dir.
    pub fn mira(&self, args: &[&str]) -> Output {
        self.mira_with_env(args, &[])
    }

    /// Runs the `mira` binary with extra environment variables (a hub cache, a model...). The
    /// Hugging Face cache is an empty one of this env's, and the hub is never asked.
    pub fn mira_with_env(&self, args: &[&str], vars: &[(&str, &Path)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mira"));
        cmd.env("HF_HOME", self.path().join("empty-hf-home"))
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("MIRA_CLIP_MODEL")
            .env_remove("MIRA_RERANKER_MODEL")
            .env_remove("MIRA_CAPTION_MODEL");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.arg("--data-dir")
            .arg(self.data())
            .args(args)
            .output()
            .expect("run mira")
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A small schema with every kind of field, 4-d f32 vectors with the dot metric.
pub const SMALL: &str = r#"
name = "small"
[fields.title]
type = "text"
analyzer = "english"
required = true
[fields.title_zh]
type = "text"
analyzer = "chinese"
[fields.category]
type = "keyword"
[fields.kind]
type = "facet"
[fields.price]
type = "f64"
[fields.stock]
type = "i64"
[fields.on_sale]
type = "bool"
[fields.released]
type = "date"
[fields.photo]
type = "image"
[fields.emb]
type = "vector"
dim = 4
metric = "dot"
[ingest]
batch_size = 2
"#;

/// Draws a small PNG.
pub fn png(path: &Path, w: u32, h: u32) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    image::RgbImage::from_pixel(w, h, image::Rgb([200, 10, 10]))
        .save(path)
        .unwrap();
}

/// Ids of hits, in order.
pub fn ids(resp: &mira_host::SearchResponse) -> Vec<String> {
    resp.hits.iter().map(|h| h.id.clone()).collect()
}

pub use mira_test_artifacts::*;

/// A plugin registry holding the built-in plugins.
pub fn registry(
    limits: mira_host::plugin::PluginLimits,
    dir: Option<PathBuf>,
) -> std::sync::Arc<mira_host::plugin::PluginRegistry> {
    use mira_host::plugin::{PluginRegistry, PluginRuntime};
    let runtime = PluginRuntime::new(limits, None).unwrap();
    let r = PluginRegistry::new(runtime, dir, Default::default(), Default::default());
    for (_, bytes) in BUILTIN_PLUGINS {
        r.install(bytes, "built-in").unwrap();
    }
    std::sync::Arc::new(r)
}

/// A tiny random CLIP with 512-d outputs (the products schema's dimension) and a tiny Qwen3
/// reranker, in the Hugging Face layout: (clip dir, reranker dir).
pub fn tiny_models(env: &Env) -> (PathBuf, PathBuf) {
    let clip = env.path().join("clip-512");
    mira_host::embed::fixtures::write_clip(
        &clip,
        &mira_host::embed::fixtures::TinyClip {
            projection_dim: 512,
            ..Default::default()
        },
    )
    .unwrap();
    let reranker = env.path().join("reranker");
    mira_host::rerank::fixtures::write_tiny_qwen3(&reranker).unwrap();
    (clip, reranker)
}

/// A component importing interfaces nothing offers (`acme:spy/exfil`, `wasi:keyvalue/store`)
/// beside the host's own: the host must refuse it at load, naming both. Built here with
/// wasm-encoder and written once per test run; its path.
pub fn stowaway_plugin() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        use wasm_encoder::{Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection, InstanceType};
        let mut types = ComponentTypeSection::new();
        types.instance(&InstanceType::new());
        let mut imports = ComponentImportSection::new();
        for name in [
            "mira:ranking/host@0.1.0",
            "acme:spy/exfil@1.0.0",
            "wasi:keyvalue/store@0.2.0",
        ] {
            imports.import(name, ComponentTypeRef::Instance(0));
        }
        let mut c = Component::new();
        c.section(&types).section(&imports);
        let path = std::env::temp_dir().join(format!("mira-test-stowaway-{}.wasm", std::process::id()));
        std::fs::write(&path, c.finish()).expect("write the stowaway component");
        path.to_string_lossy().into_owned()
    })
}
