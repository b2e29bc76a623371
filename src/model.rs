//! `mira model`: what operators use to check a model before pointing a collection at it.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use mira_host::caption::Captioner;
use mira_host::embed::ClipEmbedder;
use mira_host::models::{ModelDType, ModelKind, parse_device, resolve_model};
use mira_host::rerank::{DEFAULT_INSTRUCTION, Reranker, ScoreOptions};
use serde_json::{Value, json};

use crate::cli::{DeviceArgs, ModelCommand};

pub fn run(cmd: ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::Info { model, json } => info(&model, json),
        ModelCommand::Embed {
            model,
            text,
            image,
            device,
            max_pixels,
            json,
        } => embed(&model, &text, &image, &device, max_pixels, json),
        ModelCommand::Rerank {
            model,
            instruction,
            query,
            doc,
            max_length,
            device,
            json,
        } => rerank(&model, instruction, &query, &doc, max_length, &device, json),
        ModelCommand::Caption {
            model,
            image,
            max_tokens,
            device,
            max_pixels,
            json,
        } => caption(&model, &image, max_tokens, &device, max_pixels, json),
    }
}

/// `mira model embed`: CLIP vectors of texts and image files.
fn embed(
    model: &str,
    text: &[String],
    image: &[PathBuf],
    device: &DeviceArgs,
    max_pixels: u64,
    json: bool,
) -> Result<()> {
    if text.is_empty() && image.is_empty() {
        bail!("give at least one --text or --image");
    }
    let dir = resolve_model(model, ModelKind::Clip)?;
    let (device, dtype) = device.parse()?;
    let clip = ClipEmbedder::load(&dir, &device, dtype)?;
    let texts: Vec<&str> = text.iter().map(String::as_str).collect();
    let mut rows = Vec::new();
    for (t, v) in text.iter().zip(clip.embed_texts(&texts)?) {
        rows.push(json!({"kind": "text", "input": t, "vector": v}));
    }
    let paths: Vec<&std::path::Path> = image.iter().map(|p| p.as_path()).collect();
    for (p, v) in image.iter().zip(clip.embed_image_files(&paths, max_pixels)?) {
        rows.push(json!({"kind": "image", "input": p, "vector": v}));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    for r in rows {
        let v: Vec<f32> = serde_json::from_value(r["vector"].clone())?;
        let head: Vec<String> = v.iter().take(6).map(|x| format!("{x:+.4}")).collect();
        println!(
            "{:<5} {:<40} [{}, ...] ({} dims)",
            r["kind"].as_str().unwrap_or(""),
            r["input"].as_str().unwrap_or(""),
            head.join(", "),
            v.len()
        );
    }
    Ok(())
}

/// `mira model caption`: BLIP captions of image files.
fn caption(
    model: &str,
    image: &[PathBuf],
    max_tokens: usize,
    device: &DeviceArgs,
    max_pixels: u64,
    json: bool,
) -> Result<()> {
    let dir = resolve_model(model, ModelKind::Captioner)?;
    let (device, dtype) = device.parse()?;
    let blip = Captioner::load(&dir, &device, dtype)?;
    let started = Instant::now();
    let paths: Vec<&std::path::Path> = image.iter().map(|p| p.as_path()).collect();
    let captions = blip.caption_image_files(&paths, max_tokens, max_pixels)?;
    let took_ms = started.elapsed().as_secs_f64() * 1e3;
    if json {
        let rows: Vec<Value> = image
            .iter()
            .zip(&captions)
            .map(|(p, c)| json!({"image": p, "caption": c}))
            .collect();
        let out = json!({"model": dir, "captions": rows, "took_ms": took_ms});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (p, c) in image.iter().zip(&captions) {
            println!("{}: {c}", p.display());
        }
        println!("({} images in {took_ms:.0} ms)", image.len());
    }
    Ok(())
}

fn rerank(
    model: &str,
    instruction: Option<String>,
    query: &str,
    docs: &[String],
    max_length: usize,
    device: &DeviceArgs,
    json: bool,
) -> Result<()> {
    let dir = resolve_model(model, ModelKind::Reranker)?;
    let (device, dtype) = device.parse()?;
    let reranker = Reranker::load(&dir, &device, dtype, max_length)?;
    let instruction = instruction.unwrap_or_else(|| DEFAULT_INSTRUCTION.to_owned());
    let started = Instant::now();
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let scores = reranker.score_with(&instruction, query, &refs, ScoreOptions::default())?;
    let took_ms = started.elapsed().as_secs_f64() * 1e3;
    if json {
        let rows: Vec<Value> = docs
            .iter()
            .zip(&scores)
            .map(|(d, s)| json!({"doc": d, "score": s}))
            .collect();
        let out = json!({"model": dir, "instruction": instruction, "query": query, "scores": rows, "took_ms": took_ms});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("instruction: {instruction}");
        println!("query:       {query}");
        for (d, s) in docs.iter().zip(&scores) {
            println!("{s:.4}  {d}");
        }
        println!("({} documents in {took_ms:.0} ms)", docs.len());
    }
    Ok(())
}

/// Shapes of a CLIP, Qwen3-Reranker or BLIP model, told apart by config.json's `model_type`.
fn info(model: &str, json: bool) -> Result<()> {
    let probe = resolve_model(model, ModelKind::Reranker).or_else(|_| resolve_model(model, ModelKind::Clip))?;
    let config: Value = serde_json::from_str(
        &std::fs::read_to_string(probe.join("config.json")).with_context(|| format!("reading {}", probe.display()))?,
    )
    .with_context(|| format!("{}/config.json", probe.display()))?;
    let info = match config["model_type"].as_str() {
        Some("qwen3") => {
            let r = Reranker::load(
                &probe,
                &parse_device("cpu")?,
                ModelDType::F32,
                mira_host::rerank::DEFAULT_MAX_LENGTH,
            )?;
            let c = &r.config;
            json!({
                "dir": probe, "kind": "reranker", "model_type": "qwen3",
                "hidden": c.hidden_size, "layers": c.num_hidden_layers, "heads": c.num_attention_heads,
                "kv_heads": c.kv_heads(), "head_dim": c.head_dim(), "vocab": c.vocab_size,
                "max_positions": c.max_position_embeddings, "tied_embeddings": c.tie_word_embeddings,
                "yes_token": r.yes_id, "no_token": r.no_id, "weights": r.files.weights,
            })
        }
        Some("blip") => {
            let blip = Captioner::load(&probe, &parse_device("cpu")?, ModelDType::F32)?;
            let (t, v) = (&blip.config.model.text_config, &blip.config.model.vision_config);
            json!({
                "dir": probe, "kind": "captioner", "model_type": "blip",
                "vision": {"hidden": v.hidden_size, "layers": v.num_hidden_layers, "heads": v.num_attention_heads, "image_size": v.image_size, "patch_size": v.patch_size},
                "text": {"hidden": t.hidden_size, "layers": t.num_hidden_layers, "heads": t.num_attention_heads, "vocab": t.vocab_size, "max_tokens": blip.config.max_caption_tokens()},
                "start_token": blip.config.bos_token_id, "end_token": blip.config.sep_token_id,
                "weights": blip.files.weights,
            })
        }
        _ => {
            let clip = ClipEmbedder::load(&probe, &parse_device("cpu")?, ModelDType::F32)?;
            let c = &clip.config;
            json!({
                "dir": probe, "kind": "clip", "model_type": "clip",
                "embedding_dim": clip.dim(),
                "text": {"hidden": c.text.embed_dim, "layers": c.text.num_hidden_layers, "heads": c.text.num_attention_heads, "vocab": c.text.vocab_size, "max_tokens": c.text.max_position_embeddings},
                "vision": {"hidden": c.vision.embed_dim, "layers": c.vision.num_hidden_layers, "heads": c.vision.num_attention_heads, "image_size": c.vision.image_size, "patch_size": c.vision.patch_size},
                "weights": clip.files.weights,
            })
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    println!(
        "{} model ({}) in {}",
        info["kind"].as_str().unwrap_or(""),
        info["model_type"].as_str().unwrap_or(""),
        probe.display()
    );
    if let Value::Object(map) = &info {
        for (k, v) in map {
            if matches!(k.as_str(), "dir" | "kind" | "model_type") {
                continue;
            }
            println!("  {k:<16} {v}");
        }
    }
    Ok(())
}
