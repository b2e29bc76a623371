//! `mira-bench models`: CLIP embedding throughput on CPU with a ViT-B/32-shaped random-weight
//! model written in the Hugging Face layout and loaded through the normal path; batched inputs
//! against one input at a time, measured in the same run.

use std::time::Instant;

use anyhow::Result;
use mira_host::embed::ClipEmbedder;
use mira_host::embed::fixtures::{TinyClip, write_clip};
use mira_host::models::{ModelDType, parse_device};
use serde::Serialize;

#[derive(Serialize)]
pub struct ModelFigures {
    pub shape: &'static str,
    pub texts_per_sec_batched: f64,
    pub texts_per_sec_single: f64,
    pub images_per_sec_batched: f64,
    pub images_per_sec_single: f64,
    /// Arithmetic of the batched vision tower, in GFLOP/s.
    pub vision_gflops: f64,
    /// A plain matmul of the tower's MLP shape (8 images x 50 tokens, 768 x 3072), in GFLOP/s:
    /// the ceiling the tower's arithmetic runs against on this machine.
    pub matmul_gflops: f64,
    /// The same product through Mira's linear layer (`mira_host::models::linear`, weights packed
    /// at load for its AVX-512 kernel where the CPU has one), in GFLOP/s.
    pub linear_gflops: f64,
    pub linear_packed: bool,
    pub matmul_rows: usize,
}

/// Floating-point operations of one image through CLIP's vision tower: the patch embedding,
/// then per layer and token the four attention projections, the two MLP matrices and the
/// attention scores and mix (multiply-adds count two).
fn vision_flops(c: &candle_transformers::models::clip::vision_model::ClipVisionConfig) -> f64 {
    let patches = (c.image_size / c.patch_size).pow(2) as f64;
    let tokens = patches + 1.0;
    let (d, ff) = (c.embed_dim as f64, c.intermediate_size as f64);
    let patch_embedding = 2.0 * patches * (c.num_channels * c.patch_size * c.patch_size) as f64 * d;
    let per_layer = 2.0 * tokens * (4.0 * d * d + 2.0 * d * ff) + 2.0 * 2.0 * tokens * tokens * d;
    patch_embedding + c.num_hidden_layers as f64 * per_layer
}

fn rate(items: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let started = Instant::now();
    f();
    items as f64 / started.elapsed().as_secs_f64()
}

pub fn run() -> Result<ModelFigures> {
    let dir = std::env::temp_dir().join(format!("mira-bench-clip-{}", std::process::id()));
    eprintln!("bench: writing a ViT-B/32-shaped random CLIP to {}", dir.display());
    write_clip(&dir, &TinyClip::vit_b32())?;
    let result = (|| -> Result<ModelFigures> {
        let clip = ClipEmbedder::load(&dir, &parse_device("cpu")?, ModelDType::F32)?;
        let words = [
            "red", "silk", "dress", "harbour", "at", "night", "a", "photo", "of", "the", "city", "street",
        ];
        let texts: Vec<String> = (0..32)
            .map(|i| {
                (0..6 + i % 8)
                    .map(|j| words[(i * 7 + j * 3) % words.len()])
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let images: Vec<image::DynamicImage> = (0..8)
            .map(|i| {
                image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(320 + i * 10, 240, |x, y| {
                    image::Rgb([(x % 256) as u8, (y % 256) as u8, (i * 30) as u8])
                }))
            })
            .collect();
        eprintln!("bench: timing CLIP text and image towers");
        let texts_batched = rate(refs.len(), || {
            clip.embed_texts(&refs).expect("embed");
        });
        let texts_single = rate(8, || {
            for t in &refs[..8] {
                clip.embed_texts(&[t]).expect("embed");
            }
        });
        let images_batched = rate(images.len(), || {
            clip.embed_images(&images).expect("embed");
        });
        let images_single = rate(4, || {
            for img in &images[..4] {
                clip.embed_images(std::slice::from_ref(img)).expect("embed");
            }
        });
        let tokens = 8 * ((clip.config.vision.image_size / clip.config.vision.patch_size).pow(2) + 1);
        let (d, ff) = (clip.config.vision.embed_dim, clip.config.vision.intermediate_size);
        let a = candle_core::Tensor::randn(0f32, 1.0, (tokens, d), &candle_core::Device::Cpu)?;
        let b = candle_core::Tensor::randn(0f32, 1.0, (d, ff), &candle_core::Device::Cpu)?;
        let matmuls = rate(20, || {
            for _ in 0..20 {
                a.matmul(&b).expect("matmul");
            }
        });
        let layer = mira_host::models::linear::Linear::new(candle_nn::Linear::new(b.t()?.contiguous()?, None))?;
        let linears = rate(20, || {
            for _ in 0..20 {
                candle_core::Module::forward(&layer, &a).expect("linear");
            }
        });
        Ok(ModelFigures {
            shape: "ViT-B/32 (text 512x12, vision 768x12, 224 px, 77 tokens), f32, cpu",
            texts_per_sec_batched: texts_batched,
            texts_per_sec_single: texts_single,
            images_per_sec_batched: images_batched,
            images_per_sec_single: images_single,
            vision_gflops: images_batched * vision_flops(&clip.config.vision) / 1e9,
            matmul_gflops: matmuls * 2.0 * (tokens * d * ff) as f64 / 1e9,
            linear_gflops: linears * 2.0 * (tokens * d * ff) as f64 / 1e9,
            linear_packed: layer.is_packed(),
            matmul_rows: tokens,
        })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

pub fn print(f: &ModelFigures) {
    println!("CLIP embedding, {}:", f.shape);
    println!(
        "  texts   {:>7.1}/s batched (32)   {:>7.1}/s one at a time   {:.2}x",
        f.texts_per_sec_batched,
        f.texts_per_sec_single,
        f.texts_per_sec_batched / f.texts_per_sec_single
    );
    println!(
        "  images  {:>7.1}/s batched (8)    {:>7.1}/s one at a time   {:.2}x",
        f.images_per_sec_batched,
        f.images_per_sec_single,
        f.images_per_sec_batched / f.images_per_sec_single
    );
    println!(
        "  vision tower {:.0} GFLOP/s batched; a {}-row matmul of its MLP shape: candle {:.0} GFLOP/s, Mira's linear{} {:.0} GFLOP/s ({:.2}x)",
        f.vision_gflops,
        f.matmul_rows,
        f.matmul_gflops,
        if f.linear_packed { " (packed, AVX-512)" } else { "" },
        f.linear_gflops,
        f.linear_gflops / f.matmul_gflops
    );
}
