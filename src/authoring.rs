//! `mira plugin new`, `build` and `test`: writing a plugin in Rust, Python or JavaScript without
//! knowing each toolchain's flags.
//!
//! - `new NAME --lang L` writes a working project: the plugin (from `plugins/templates/L`), the
//!   WIT it is built against, and for Rust a copy of the SDK, so the project builds anywhere.
//! - `build DIR` finds the language from the project's files (`Cargo.toml`, `app.py`,
//!   `plugin.js`) and runs its toolchain with its defaults: cargo for wasm32-unknown-unknown
//!   linked by the toolchain's `wasm-component-ld`, `componentize-py`, `componentize-js`.
//! - `test FILE` loads a component as the server would (the same checks), runs every function on
//!   a sample request and candidates (or the caller's), and prints the answers and their cost.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use mira_host::plugin::{LoadedPlugin, PluginLimits, PluginRuntime, wit};

use crate::cli::Lang;

/// The WIT the plugins are built against.
const WIT: &str = include_str!("../wit/ranking.wit");

/// Template files: (path in the project, text with `{{name}}`).
fn template(lang: Lang) -> Vec<(&'static str, &'static str)> {
    match lang {
        Lang::Rust => vec![
            ("Cargo.toml", include_str!("../plugins/templates/rust/Cargo.toml")),
            ("src/lib.rs", include_str!("../plugins/templates/rust/src/lib.rs")),
            // The SDK, copied: its bindings read `../../wit` from its own directory.
            ("sdk/mira-plugin-sdk/Cargo.toml", SDK_MANIFEST),
            (
                "sdk/mira-plugin-sdk/src/lib.rs",
                include_str!("../plugins/sdk/src/lib.rs"),
            ),
            (
                "sdk/mira-plugin-sdk/src/plugin.rs",
                include_str!("../plugins/sdk/src/plugin.rs"),
            ),
            (
                "sdk/mira-plugin-sdk/src/host.rs",
                include_str!("../plugins/sdk/src/host.rs"),
            ),
            (
                "sdk/mira-plugin-sdk/src/helpers.rs",
                include_str!("../plugins/sdk/src/helpers.rs"),
            ),
            (
                "sdk/mira-plugin-sdk/src/columns.rs",
                include_str!("../plugins/sdk/src/columns.rs"),
            ),
            (
                "sdk/mira-plugin-sdk/src/math.rs",
                include_str!("../plugins/sdk/src/math.rs"),
            ),
        ],
        Lang::Python => vec![("app.py", include_str!("../plugins/templates/python/app.py"))],
        Lang::Js => vec![("plugin.js", include_str!("../plugins/templates/js/plugin.js"))],
    }
}

/// The SDK's manifest outside the plugins workspace.
const SDK_MANIFEST: &str = r#"[package]
name = "mira-plugin-sdk"
description = "Write Mira ranking plugins: the WIT bindings, a trait with sensible defaults, and ranking helpers"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
wit-bindgen = { version = "0.61", default-features = false, features = ["macros", "realloc"] }
"#;

/// `mira plugin new NAME --lang L [--dir D]`.
pub fn new_project(name: &str, lang: Lang, dir: Option<&Path>) -> Result<PathBuf> {
    if !mira_host::plugin::valid_plugin_name(name) {
        bail!(
            "plugin name `{name}` must be lowercase letters, digits, `-` or `_`, starting with a letter (at most 64)"
        );
    }
    let root = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if root.exists() && std::fs::read_dir(&root).is_ok_and(|mut d| d.next().is_some()) {
        bail!("{} exists and is not empty", root.display());
    }
    let mut files = template(lang);
    files.push(("wit/ranking.wit", WIT));
    let readme = readme(name, lang);
    files.push(("README.md", &readme));
    for (path, text) in files {
        let p = root.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&p, text.replace("{{name}}", name)).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(root)
}

fn readme(name: &str, lang: Lang) -> String {
    let (toolchain, tests) = match lang {
        Lang::Rust => (
            "Rust with the wasm32-unknown-unknown target (`rustup target add wasm32-unknown-unknown`)",
            "`cargo test` runs the plugin's logic natively.",
        ),
        Lang::Python => (
            "componentize-py (`pip install componentize-py==0.25.1`)",
            "Edit `app.py`; `mira plugin test` runs every function through the host.",
        ),
        Lang::Js => (
            "componentize-js (`npm install @bytecodealliance/componentize-js@0.23.0`)",
            "Edit `plugin.js`; `mira plugin test` runs every function through the host.",
        ),
    };
    format!(
        "# {name}\n\nA Mira ranking plugin, built against `wit/ranking.wit` (`mira:ranking@0.2.0`).\n\n\
         Needs {toolchain}.\n\n```sh\nmira plugin build .              # writes {name}.wasm\n\
         mira plugin test {name}.wasm      # every function on sample candidates, with costs\n\
         mira plugin load {name}.wasm      # make it active (a running server: POST /v1/plugins)\n```\n\n\
         {tests} See docs/plugins.md in Mira's repository for the interface and the sandbox.\n"
    )
}

/// The language of a project directory, from its files.
fn detect(dir: &Path) -> Result<Lang> {
    if dir.join("Cargo.toml").is_file() {
        Ok(Lang::Rust)
    } else if dir.join("app.py").is_file() {
        Ok(Lang::Python)
    } else if dir.join("plugin.js").is_file() {
        Ok(Lang::Js)
    } else {
        bail!(
            "{}: not a plugin project (expected Cargo.toml, app.py or plugin.js; `mira plugin new` writes one)",
            dir.display()
        )
    }
}

/// `mira plugin build DIR [-o OUT]`: the component's path.
pub fn build(dir: &Path, out: Option<&Path>) -> Result<PathBuf> {
    let lang = detect(dir)?;
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "plugin".into());
    let out = match out {
        Some(o) => std::path::absolute(o)?,
        None => std::path::absolute(dir.join(format!("{name}.wasm")))?,
    };
    // The project's WIT, else the one this binary was built with.
    let scratch = tempfile::tempdir()?;
    let wit = if dir.join("wit").is_dir() {
        std::path::absolute(dir.join("wit"))?
    } else {
        std::fs::write(scratch.path().join("ranking.wit"), WIT)?;
        scratch.path().to_path_buf()
    };
    match lang {
        Lang::Rust => build_rust(dir, &out)?,
        Lang::Python => {
            let tool = toolchain(
                "MIRA_COMPONENTIZE_PY",
                "componentize-py",
                dir,
                "pip install componentize-py==0.25.1",
            )?;
            run(Command::new(tool)
                .current_dir(dir)
                .arg("-d")
                .arg(&wit)
                .args(["-w", "ranking-plugin", "componentize", "app", "-o"])
                .arg(&out))?;
        }
        Lang::Js => {
            let tool = toolchain(
                "MIRA_COMPONENTIZE_JS",
                "componentize-js",
                dir,
                "npm install @bytecodealliance/componentize-js@0.23.0",
            )?;
            run(Command::new(tool)
                .current_dir(dir)
                .arg("plugin.js")
                .arg("--wit")
                .arg(&wit)
                .args(["-n", "ranking-plugin", "-o"])
                .arg(&out))?;
        }
    }
    if !out.is_file() {
        bail!("the {lang:?} toolchain finished but wrote no {}", out.display());
    }
    Ok(out)
}

/// A toolchain binary: `$VAR`, else the project's `node_modules/.bin`, else `PATH`.
fn toolchain(var: &str, bin: &str, dir: &Path, install: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Ok(PathBuf::from(p));
    }
    let local = dir.join("node_modules/.bin").join(bin);
    if local.is_file() {
        return Ok(local);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
        .with_context(|| format!("{bin} not found on PATH: install it ({install}) or set {var} to its path"))
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("running {}", cmd.get_program().to_string_lossy()))?;
    if !status.success() {
        bail!(
            "{} failed ({status}); its output is above",
            cmd.get_program().to_string_lossy()
        );
    }
    Ok(())
}

/// cargo for wasm32-unknown-unknown, linked by the toolchain's `wasm-component-ld` so that the
/// component imports only what the WIT world says.
fn build_rust(dir: &Path, out: &Path) -> Result<()> {
    let text = |cmd: &mut Command| -> Result<String> {
        let o = cmd
            .output()
            .with_context(|| format!("running {}", cmd.get_program().to_string_lossy()))?;
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let sysroot = text(Command::new("rustc").args(["--print", "sysroot"]))?;
    let host = text(Command::new("rustc").arg("-vV"))?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("rustc -vV names no host")?;
    let linker = Path::new(&sysroot)
        .join("lib/rustlib")
        .join(host)
        .join("bin/wasm-component-ld");
    if !linker.is_file() {
        bail!("{} is missing (it ships with Rust 1.82 and later)", linker.display());
    }
    let output = Command::new("cargo")
        .current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--message-format=json-render-diagnostics",
        ])
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", &linker)
        // As Mira's own plugins are built: wasm SIMD lets the compiler vectorise loops over
        // columns (every wasmtime Mira runs supports it). A RUSTFLAGS of the user's wins over
        // it; flags in a cargo config's `build.rustflags` do not combine with it.
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
            "-Ctarget-feature=+simd128",
        )
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo")?;
    if !output.status.success() {
        bail!(
            "cargo build failed (is the target installed? `rustup target add wasm32-unknown-unknown`); its output is above"
        );
    }
    let wasm = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["kind"].to_string().contains("cdylib"))
        .filter_map(|m| {
            m["filenames"]
                .as_array()?
                .iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from)
        })
        .next_back()
        .context("cargo built no .wasm (is the crate a cdylib?)")?;
    std::fs::copy(&wasm, out).with_context(|| format!("copying {} to {}", wasm.display(), out.display()))?;
    Ok(())
}

/// A sample candidate as `mira plugin test` reads it (JSONL, one per line).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleCandidate {
    id: String,
    #[serde(default)]
    fields: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    bm25: Option<f32>,
    #[serde(default)]
    vector: Option<f32>,
    retrieval: f32,
    #[serde(default)]
    rerank: Option<f32>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    has_image: bool,
}

const SAMPLE: &str = include_str!("../plugins/templates/sample-candidates.jsonl");

fn candidates(path: Option<&Path>) -> Result<Vec<wit::Candidate>> {
    let (text, origin) = match path {
        Some(p) => (
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            p.display().to_string(),
        ),
        None => (SAMPLE.to_owned(), "the built-in sample".to_owned()),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let c: SampleCandidate =
            serde_json::from_str(line).with_context(|| format!("{origin}:{}: not a sample candidate", i + 1))?;
        let mut fields = Vec::new();
        for (name, v) in c.fields {
            let value = match v {
                serde_json::Value::String(s) => wit::FieldValue::Text(s),
                serde_json::Value::Bool(b) => wit::FieldValue::Boolean(b),
                serde_json::Value::Number(n) if n.is_i64() => wit::FieldValue::Integer(n.as_i64().unwrap_or(0)),
                serde_json::Value::Number(n) => wit::FieldValue::Number(n.as_f64().unwrap_or(0.0)),
                other => bail!(
                    "{origin}:{}: field `{name}` must be a string, number or bool, got {other}",
                    i + 1
                ),
            };
            fields.push(wit::Field { name, value });
        }
        out.push(wit::Candidate {
            id: c.id,
            fields,
            scores: wit::StageScores {
                bm25: c.bm25,
                bm25_rank: None,
                vector: c.vector,
                vector_rank: None,
                retrieval: c.retrieval,
                retrieval_rank: 1,
                rerank: c.rerank,
            },
            tags: c.tags,
            caption: c.caption,
            has_image: c.has_image,
        });
    }
    // Ranks follow each stage's scores, as the host computes them.
    let ranks = |key: fn(&wit::StageScores) -> Option<f32>| -> Vec<Option<u32>> {
        let mut order: Vec<usize> = (0..out.len()).filter(|&i| key(&out[i].scores).is_some()).collect();
        order.sort_by(|&a, &b| {
            key(&out[b].scores)
                .unwrap_or(0.0)
                .total_cmp(&key(&out[a].scores).unwrap_or(0.0))
        });
        let mut ranks = vec![None; out.len()];
        for (r, i) in order.into_iter().enumerate() {
            ranks[i] = Some(r as u32 + 1);
        }
        ranks
    };
    let (retrieval, bm25, vector) = (ranks(|s| Some(s.retrieval)), ranks(|s| s.bm25), ranks(|s| s.vector));
    for (i, c) in out.iter_mut().enumerate() {
        c.scores.retrieval_rank = retrieval[i].unwrap_or(1);
        c.scores.bm25_rank = bm25[i];
        c.scores.vector_rank = vector[i];
    }
    Ok(out)
}

/// `mira plugin test FILE [--query Q] [--param K=V]... [--candidates FILE]`.
pub fn test(
    path: &Path,
    query: &str,
    params: &[(String, String)],
    candidates_file: Option<&Path>,
    limits: PluginLimits,
) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let cands = candidates(candidates_file)?;
    let runtime = PluginRuntime::new(limits, None)?;
    let started = std::time::Instant::now();
    let plugin: Arc<LoadedPlugin> = LoadedPlugin::load(&runtime, &bytes, &path.display().to_string(), &HashMap::new())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let d = &plugin.description;
    println!(
        "{} {} (scenarios {}; rerank window {}; tag vocabulary {} words)",
        d.name,
        d.version,
        d.scenarios.join(","),
        d.rerank_window,
        d.tag_vocabulary.len()
    );
    println!("loaded and checked in {:.0} ms", started.elapsed().as_secs_f64() * 1e3);
    let req = wit::Request {
        query: query.to_owned(),
        has_image_query: false,
        scenario: d.scenarios.first().cloned(),
        params: params
            .iter()
            .map(|(key, value)| wit::Param {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        now: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_secs() as i64),
    };
    let fail = |call: &str, e: mira_host::plugin::PluginFailure| anyhow::anyhow!("{call}: {e}");
    let mut s = plugin.session_for(&req).map_err(|e| fail("instantiate", e))?;
    println!(
        "\ninstruction: {}",
        s.instruction(&req).map_err(|e| fail("instruction", e))?
    );
    let retrieval: Vec<f32> = cands.iter().map(|c| c.scores.retrieval).collect();
    println!(
        "rerank depth: {} of {}",
        s.rerank_depth(&req, &retrieval).map_err(|e| fail("rerank-depth", e))?,
        cands.len()
    );
    if let Some(first) = cands.first() {
        let text = s.render(&req, first).map_err(|e| fail("render", e))?;
        println!("render of {}:\n  {}", first.id, text.replace('\n', "\n  "));
    }
    let scores = s.fuse(&req, &cands).map_err(|e| fail("fuse", e))?;
    let mut order: Vec<usize> = (0..cands.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    println!("fuse, best first:");
    for i in order {
        println!(
            "  {:<12} {:>9.4}  (retrieval {:.3}, rerank {})",
            cands[i].id,
            scores[i],
            cands[i].scores.retrieval,
            cands[i].scores.rerank.map_or("-".into(), |r| format!("{r:.3}"))
        );
    }
    println!("cost per call:");
    for c in plugin.costs() {
        println!(
            "  {:<13} {:>3} calls  p50 {:>6} us  p99 {:>6} us",
            c.call, c.calls, c.p50_us, c.p99_us
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Rust project gets the whole SDK: a module added to it must be added to the template.
    #[test]
    fn the_rust_template_copies_every_sdk_source() {
        let files = template(Lang::Rust);
        let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/sdk/src");
        for entry in std::fs::read_dir(&sdk).expect("plugins/sdk/src") {
            let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
            let path = format!("sdk/mira-plugin-sdk/src/{name}");
            assert!(files.iter().any(|(p, _)| *p == path), "the template lacks {path}");
        }
    }
}
