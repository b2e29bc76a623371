//! `mira-bench caption`: BLIP captions/s on CPU with a blip-image-captioning-base-shaped
//! random-weight model in the Hugging Face layout, loaded through the normal path. The
//! baseline, measured in the same run on the same weights, is candle-transformers' own BLIP,
//! one image at a time as its example decodes. Random weights rarely end a caption, so every
//! caption runs to the token limit: the figures are per full-length caption.

use std::time::Instant;

use anyhow::{Result, bail};
use image::DynamicImage;
use mira_host::caption::Captioner;
use mira_host::caption::fixtures::{ReferenceBlip, TinyBlip, write_blip};
use mira_host::models::{ModelDType, parse_device};
use serde::Serialize;

const IMAGES: usize = 4;
const TOKENS: usize = 20;

#[derive(Serialize)]
pub struct CaptionFigures {
    pub shape: &'static str,
    pub tokens: usize,
    /// (configuration, captions/s, ratio to the baseline).
    pub rows: Vec<(String, f64, f64)>,
}

fn rate(items: usize, f: impl FnOnce() -> Result<Vec<Vec<u32>>>) -> Result<(f64, Vec<Vec<u32>>)> {
    let started = Instant::now();
    let out = f()?;
    Ok((items as f64 / started.elapsed().as_secs_f64(), out))
}

pub fn run() -> Result<CaptionFigures> {
    let dir = std::env::temp_dir().join(format!("mira-bench-blip-{}", std::process::id()));
    eprintln!(
        "bench: writing a BLIP-base-shaped random captioner to {}",
        dir.display()
    );
    write_blip(&dir, &TinyBlip::blip_base())?;
    let result = (|| -> Result<CaptionFigures> {
        let blip = Captioner::load(&dir, &parse_device("cpu")?, ModelDType::F32)?;
        let reference = ReferenceBlip::load(&dir)?;
        let images: Vec<DynamicImage> = (0..IMAGES as u32)
            .map(|i| {
                DynamicImage::ImageRgb8(image::RgbImage::from_fn(400 + i * 30, 300, |x, y| {
                    image::Rgb([(x % 256) as u8, (y % 256) as u8, (i * 60) as u8])
                }))
            })
            .collect();
        eprintln!("bench: {IMAGES} captions of {TOKENS} tokens, three ways");
        let (baseline, reference) = rate(IMAGES, || Ok(reference.caption_ids(&images, TOKENS)?))?;
        let (single, one_by_one) = rate(IMAGES, || {
            let mut out = Vec::new();
            for img in &images {
                out.extend(blip.caption_ids(std::slice::from_ref(img), TOKENS)?);
            }
            Ok(out)
        })?;
        let (batched, together) = rate(IMAGES, || Ok(blip.caption_ids(&images, TOKENS)?))?;
        if one_by_one != reference || together != reference {
            bail!("captions differ from candle-transformers' BLIP: {reference:?} vs {one_by_one:?} / {together:?}");
        }
        Ok(CaptionFigures {
            shape: "BLIP base (ViT-B/16 at 384 px, 12-layer BERT decoder, 30524 tokens), f32, cpu",
            tokens: TOKENS,
            rows: vec![
                ("candle-transformers blip, one image at a time".into(), baseline, 1.0),
                ("ours, one image at a time".into(), single, single / baseline),
                (format!("ours, batch of {IMAGES}"), batched, batched / baseline),
            ],
        })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

pub fn print(f: &CaptionFigures) {
    println!("BLIP captions, {}:", f.shape);
    println!(
        "  {IMAGES} images, captions of {} tokens (equal across all three)",
        f.tokens
    );
    for (name, rate, ratio) in &f.rows {
        println!("  {name:<46} {rate:>6.3} captions/s  {ratio:.2}x");
    }
}
