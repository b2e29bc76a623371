//! `mira-bench model-peers --dir D`: the Mira half of the comparison with PyTorch +
//! transformers. Writes random-weight models in the real shapes (CLIP ViT-B/32, a Qwen3-Reranker)
//! in the Hugging Face layout and their inputs (PNG photos, texts, reranker prompts as token ids)
//! to `D` (and BLIP base with `--captions N`), runs Mira on them end to end from the files, and writes `D/mira.json`: the outputs
//! and the rates. `benches/peers/models.py D` then runs transformers on the same files and inputs
//! in the same run and compares (`benches/peers/models.sh` does both; `scripts/gpu-check.sh` on
//! a GPU).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use mira_host::caption::Captioner;
use mira_host::caption::fixtures::{TinyBlip, write_blip};
use mira_host::embed::ClipEmbedder;
use mira_host::embed::fixtures::{TINY_WORDS, TinyClip, write_clip};
use mira_host::models::{ModelDType, parse_device};
use mira_host::rerank::fixtures::{TinyQwen3, write_qwen3_as, write_qwen3_streamed};
use mira_host::rerank::{Reranker, ScoreOptions};
use serde_json::{Value, json};

/// Tokens every prompt of a query shares (system turn, instruction, query).
const PREFIX_TOKENS: usize = 64;

pub struct PeerArgs {
    pub dir: PathBuf,
    pub device: String,
    pub dtype: ModelDType,
    /// `0.6b`, `4b` or `8b`; `none` skips the reranker.
    pub reranker: String,
    /// Prompt lengths in tokens (each measured on its own).
    pub tokens: Vec<usize>,
    pub pairs: usize,
    pub batch: usize,
    pub images: usize,
    pub texts: usize,
    pub clip_batch: usize,
    pub skip_clip: bool,
    /// Captions (BLIP base) of this many of the images; 0 for none.
    pub captions: usize,
}

/// Tokens per caption (transformers' default length for BLIP).
const CAPTION_TOKENS: usize = 20;

fn blip(args: &PeerArgs, images: &[String]) -> Result<Value> {
    let dir = args.dir.join("blip");
    ensure_model(&dir, "a BLIP-base-shaped random captioner", || {
        Ok(write_blip(&dir, &TinyBlip::blip_base())?)
    })?;
    let model = Captioner::load(&dir, &parse_device(&args.device)?, unquantized(args.dtype))?;
    let paths: Vec<PathBuf> = images.iter().map(|i| args.dir.join(i)).collect();
    let paths: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let decode = |paths: &[&Path]| mira_host::image_file::decode_all(paths, u64::MAX).map_err(anyhow::Error::msg);
    model.caption_ids(&decode(&paths[..1])?, CAPTION_TOKENS)?; // warm-up
    eprintln!(
        "model-peers: Mira BLIP, {} captions of up to {CAPTION_TOKENS} tokens",
        paths.len()
    );
    let (ids, seconds) = timed(|| Ok(model.caption_ids(&decode(&paths)?, CAPTION_TOKENS)?))?;
    Ok(json!({
        "dir": "blip",
        "images": images,
        "max_tokens": CAPTION_TOKENS,
        "bos_id": model.config.bos_token_id,
        "sep_id": model.config.sep_token_id,
        "ids": ids,
        "captions_per_s": paths.len() as f64 / seconds,
    }))
}

/// q8 is the reranker's alone: CLIP and BLIP run in f32 then.
fn unquantized(dtype: ModelDType) -> ModelDType {
    if dtype == ModelDType::Q8 {
        ModelDType::F32
    } else {
        dtype
    }
}

/// Writes the model in `dir` with `write` unless an earlier run left it there.
fn ensure_model(dir: &Path, what: &str, write: impl FnOnce() -> Result<()>) -> Result<()> {
    if !dir.join("model.safetensors").exists() {
        eprintln!("model-peers: writing {what} to {}", dir.display());
        write()?;
    }
    Ok(())
}

fn shape(name: &str) -> Result<TinyQwen3> {
    Ok(match name {
        "0.6b" => TinyQwen3::qwen3_06b(),
        "4b" => TinyQwen3::qwen3_4b(),
        "8b" => TinyQwen3::qwen3_8b(),
        other => bail!("unknown reranker shape `{other}` (expected 0.6b, 4b, 8b or none)"),
    })
}

/// What `f` returns and the seconds it took.
fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let started = Instant::now();
    let out = f()?;
    Ok((out, started.elapsed().as_secs_f64()))
}

/// Photo-like test images: smooth colour fields with texture, of varied sizes.
fn write_images(dir: &Path, n: usize) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir.join("images"))?;
    let mut rng = fastrand::Rng::with_seed(7);
    (0..n)
        .map(|i| {
            let (w, h) = (400 + (i as u32 * 37) % 240, 300 + (i as u32 * 53) % 180);
            let phase = rng.f32() * 6.0;
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
                let wave = ((fx * 9.0 + phase).sin() * (fy * 7.0 - phase).cos() + 1.0) * 0.5;
                let noise = ((x * 7919 + y * 104729 + i as u32 * 13) % 31) as f32 / 31.0;
                image::Rgb([
                    (255.0 * (0.7 * wave + 0.3 * noise)) as u8,
                    (255.0 * fx * (1.0 - 0.4 * noise)) as u8,
                    (255.0 * (1.0 - fy) * wave) as u8,
                ])
            });
            let name = format!("images/{i:03}.png");
            img.save(dir.join(&name)).with_context(|| format!("writing {name}"))?;
            Ok(name)
        })
        .collect()
}

fn texts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            (0..4 + i % 12)
                .map(|j| TINY_WORDS[(i * 7 + j * 3 + j * j) % TINY_WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn clip(args: &PeerArgs, images: &[String]) -> Result<Value> {
    let dir = args.dir.join("clip");
    ensure_model(&dir, "a ViT-B/32-shaped random CLIP", || {
        Ok(write_clip(&dir, &TinyClip::vit_b32())?)
    })?;
    let texts = texts(args.texts);
    let model = ClipEmbedder::load(&dir, &parse_device(&args.device)?, unquantized(args.dtype))?;
    let paths: Vec<PathBuf> = images.iter().map(|i| args.dir.join(i)).collect();
    let paths: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let b = args.clip_batch.max(1);
    // Warm-up: one batch of each.
    model.embed_image_files(&paths[..b.min(paths.len())], u64::MAX)?;
    model.embed_texts(&refs[..b.min(refs.len())])?;
    eprintln!(
        "model-peers: Mira CLIP, {} image files and {} texts in batches of {b}",
        paths.len(),
        refs.len()
    );
    let (image_embeddings, image_s) = timed(|| {
        let mut out = Vec::new();
        for chunk in paths.chunks(b) {
            out.extend(model.embed_image_files(chunk, u64::MAX)?);
        }
        Ok(out)
    })?;
    let (text_embeddings, text_s) = timed(|| {
        let mut out = Vec::new();
        for chunk in refs.chunks(b) {
            out.extend(model.embed_texts(chunk)?);
        }
        Ok(out)
    })?;
    Ok(json!({
        "dir": "clip",
        "images": images,
        "texts": texts,
        "batch": b,
        "image_embeddings": image_embeddings,
        "text_embeddings": text_embeddings,
        "images_per_s": paths.len() as f64 / image_s,
        "texts_per_s": refs.len() as f64 / text_s,
    }))
}

fn reranker(args: &PeerArgs) -> Result<Value> {
    let name = format!("qwen3-{}", args.reranker);
    let dir = args.dir.join(&name);
    // The 0.6B is stored in the run's dtype; the 4B and 8B in bf16 as the published checkpoints
    // are, unless the run is f32 (they are drawn and written weight by weight: the 8B is 33 GB
    // in f32).
    let streamed = args.reranker != "0.6b";
    let stored = match args.dtype {
        ModelDType::F32 => candle_core::DType::F32,
        ModelDType::F16 if !streamed => candle_core::DType::F16,
        ModelDType::Q8 if !streamed => candle_core::DType::F32,
        _ => candle_core::DType::BF16,
    };
    ensure_model(
        &dir,
        &format!("a Qwen3-Reranker-{}-shaped random model ({stored:?})", args.reranker),
        || {
            let shape = shape(&args.reranker)?;
            if streamed {
                write_qwen3_streamed(&dir, &shape, stored)?;
            } else {
                write_qwen3_as(&dir, &shape, stored)?;
            }
            Ok(())
        },
    )?;
    let device = parse_device(&args.device)?;
    let longest = args.tokens.iter().copied().max().unwrap_or(200);
    let model = Reranker::load(&dir, &device, args.dtype, longest + 8)?;
    let opts = ScoreOptions {
        reuse_prefix: true,
        batch_size: args.batch.max(1),
    };
    let mut runs = Vec::new();
    for &tokens in &args.tokens {
        if tokens <= PREFIX_TOKENS {
            bail!("--tokens {tokens}: a prompt needs more than the {PREFIX_TOKENS}-token shared prefix");
        }
        let prefix: Vec<u32> = (0..PREFIX_TOKENS as u32).map(|i| 300 + i * 7).collect();
        let prompts: Vec<Vec<u32>> = (0..args.pairs as u32)
            .map(|d| {
                let mut p = prefix.clone();
                p.extend((0..(tokens - PREFIX_TOKENS) as u32).map(|i| 5000 + (d * 997 + i * 13) % 140_000));
                p
            })
            .collect();
        model.score_ids(&prompts[..opts.batch_size.min(prompts.len())], opts)?; // warm-up
        eprintln!(
            "model-peers: Mira reranker, {} prompts of {tokens} tokens, batches of {}",
            prompts.len(),
            opts.batch_size
        );
        let (p_yes, seconds) = timed(|| Ok(model.score_ids(&prompts, opts)?))?;
        runs.push(json!({
            "tokens": tokens,
            "prefix_tokens": PREFIX_TOKENS,
            "prompts": prompts,
            "batch": opts.batch_size,
            "p_yes": p_yes,
            "seconds": seconds,
            "pairs_per_s": prompts.len() as f64 / seconds,
        }));
    }
    Ok(json!({
        "dir": name,
        "shape": args.reranker,
        "yes_id": model.yes_id,
        "no_id": model.no_id,
        "runs": runs,
    }))
}

pub fn run(args: &PeerArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    // One set of photos serves CLIP and BLIP.
    let photos = write_images(
        &args.dir,
        if args.skip_clip {
            args.captions
        } else {
            args.images.max(args.captions)
        },
    )?;
    let clip = if args.skip_clip {
        Value::Null
    } else {
        clip(args, &photos[..args.images])?
    };
    let reranker = if args.reranker == "none" {
        Value::Null
    } else {
        reranker(args)?
    };
    let blip = if args.captions == 0 {
        Value::Null
    } else {
        blip(args, &photos[..args.captions])?
    };
    let out = json!({
        "device": args.device,
        "dtype": args.dtype.name(),
        "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "clip": clip,
        "reranker": reranker,
        "blip": blip,
    });
    let path = args.dir.join("mira.json");
    std::fs::write(&path, serde_json::to_vec(&out)?)?;
    eprintln!("model-peers: wrote {}", path.display());
    Ok(())
}
