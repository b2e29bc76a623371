//! `mira model`: what operators use to check a model before pointing a collection at it.

use anyhow::{Result, bail};
use mira_host::embed::{ClipEmbedder, ModelDType, parse_device};
use serde_json::json;

use crate::cli::ModelCommand;

pub fn run(cmd: ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::Info { dir, json } => {
            let clip = ClipEmbedder::load(&dir, &parse_device("cpu")?, ModelDType::F32)?;
            let c = &clip.config;
            let info = json!({
                "dir": dir,
                "kind": "clip",
                "embedding_dim": clip.dim(),
                "text": {"hidden": c.text.embed_dim, "layers": c.text.num_hidden_layers, "heads": c.text.num_attention_heads, "vocab": c.text.vocab_size, "max_tokens": c.text.max_position_embeddings},
                "vision": {"hidden": c.vision.embed_dim, "layers": c.vision.num_hidden_layers, "heads": c.vision.num_attention_heads, "image_size": c.vision.image_size, "patch_size": c.vision.patch_size},
                "weights": clip.files.weights,
            });
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("CLIP model in {}", dir.display());
                println!("  embedding dim  {}", clip.dim());
                println!(
                    "  text tower     {} wide, {} layers, {} heads, {} tokens max, vocabulary {}",
                    c.text.embed_dim,
                    c.text.num_hidden_layers,
                    c.text.num_attention_heads,
                    c.text.max_position_embeddings,
                    c.text.vocab_size
                );
                println!(
                    "  vision tower   {} wide, {} layers, {} heads, {}px images in {}px patches",
                    c.vision.embed_dim,
                    c.vision.num_hidden_layers,
                    c.vision.num_attention_heads,
                    c.vision.image_size,
                    c.vision.patch_size
                );
                for w in &clip.files.weights {
                    println!("  weights        {}", w.display());
                }
            }
        }
        ModelCommand::Embed {
            model,
            text,
            image,
            device,
            dtype,
            max_pixels,
            json,
        } => {
            if text.is_empty() && image.is_empty() {
                bail!("give at least one --text or --image");
            }
            let clip = ClipEmbedder::load(&model, &parse_device(&device)?, ModelDType::parse(&dtype)?)?;
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
            } else {
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
            }
        }
    }
    Ok(())
}
