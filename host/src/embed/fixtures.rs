//! Tiny random-weight models in the exact Hugging Face layout, for tests and benchmarks: the same
//! loading code reads them as it reads real checkpoints. Behind the `testing` feature.

use std::path::Path;

use candle_nn::Init;
use candle_transformers::models::clip::text_model::ClipTextTransformer;
use candle_transformers::models::clip::vision_model::ClipVisionTransformer;
use serde_json::json;

use super::ClipModelConfig;
use crate::models::ModelError;
use crate::models::fixtures::SeededWeights;

/// Words of the tiny tokenizer's vocabulary (after the three special tokens).
pub const TINY_WORDS: &[&str] = &[
    "a", "the", "red", "blue", "green", "black", "white", "dress", "shoe", "boots", "bag", "hat", "silk", "leather",
    "cotton", "harbour", "night", "photo", "of", "at", "in", "on", "with", "and", "cat", "dog", "city", "street",
];

/// Shapes of a tiny CLIP: what [`write_tiny_clip`] writes with `(hidden, layers, image_size)`.
pub struct TinyClip {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub projection_dim: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub max_positions: usize,
    /// Seeds the weights: the same shapes and seed give the same model on every run.
    pub seed: u64,
}

impl Default for TinyClip {
    fn default() -> Self {
        TinyClip {
            hidden: 32,
            layers: 2,
            heads: 4,
            projection_dim: 16,
            image_size: 32,
            patch_size: 8,
            max_positions: 16,
            seed: 1,
        }
    }
}

impl TinyClip {
    /// The shapes of ViT-B/32 (for benchmarks): 512/768 wide, 12 layers, 224 px, 77 tokens.
    pub fn vit_b32() -> Self {
        TinyClip {
            hidden: 512,
            layers: 12,
            heads: 8,
            projection_dim: 512,
            image_size: 224,
            patch_size: 32,
            max_positions: 77,
            seed: 1,
        }
    }
}

fn tokenizer_json(max_positions: usize) -> serde_json::Value {
    let specials = ["[UNK]", "<|startoftext|>", "<|endoftext|>"];
    let mut vocab = serde_json::Map::new();
    for (i, w) in specials.iter().chain(TINY_WORDS).enumerate() {
        vocab.insert((*w).to_owned(), json!(i));
    }
    let added: Vec<_> = specials
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"id": i, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    let _ = max_positions;
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|startoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<|startoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "<|endoftext|>", "type_id": 1}}],
            "special_tokens": {
                "<|startoftext|>": {"id": "<|startoftext|>", "ids": [1], "tokens": ["<|startoftext|>"]},
                "<|endoftext|>": {"id": "<|endoftext|>", "ids": [2], "tokens": ["<|endoftext|>"]}
            }
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    })
}

/// Writes a random-weight CLIP with the given shapes to `dir`: config.json, tokenizer.json,
/// preprocessor_config.json and model.safetensors. The weights are drawn from `shape.seed`.
pub fn write_clip(dir: &Path, shape: &TinyClip) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::Files(format!("cannot create {}: {e}", dir.display())))?;
    let write = |name: &str, v: &serde_json::Value| {
        std::fs::write(dir.join(name), serde_json::to_string_pretty(v).expect("json"))
            .map_err(|e| ModelError::Files(format!("cannot write {name}: {e}")))
    };
    let vocab_size = 3 + TINY_WORDS.len();
    let vision_hidden = if shape.hidden == 512 { 768 } else { shape.hidden };
    let config = json!({
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "projection_dim": shape.projection_dim,
        "logit_scale_init_value": 2.6592,
        "text_config": {
            "vocab_size": vocab_size, "hidden_size": shape.hidden, "intermediate_size": shape.hidden * 4,
            "num_hidden_layers": shape.layers, "num_attention_heads": shape.heads,
            "max_position_embeddings": shape.max_positions, "hidden_act": "quick_gelu"
        },
        "vision_config": {
            "hidden_size": vision_hidden, "intermediate_size": vision_hidden * 4, "num_hidden_layers": shape.layers,
            "num_attention_heads": if shape.hidden == 512 { 12 } else { shape.heads },
            "image_size": shape.image_size, "patch_size": shape.patch_size, "hidden_act": "quick_gelu"
        }
    });
    write("config.json", &config)?;
    write(
        "preprocessor_config.json",
        &json!({
            "crop_size": {"height": shape.image_size, "width": shape.image_size}, "do_center_crop": true,
            "do_normalize": true, "do_resize": true, "do_rescale": true, "rescale_factor": 1.0 / 255.0,
            "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
            "resample": 3, "size": {"shortest_edge": shape.image_size}
        }),
    )?;
    let tokenizer: tokenizers::Tokenizer = serde_json::from_value(tokenizer_json(shape.max_positions))
        .map_err(|e| ModelError::Files(format!("tiny tokenizer: {e}")))?;
    tokenizer
        .save(dir.join("tokenizer.json"), true)
        .map_err(|e| ModelError::Files(format!("cannot write tokenizer.json: {e}")))?;

    let cfg = ClipModelConfig::from_json(&config.to_string(), "config.json")?;
    let weights = SeededWeights::new(shape.seed);
    let vb = weights.var_builder();
    ClipTextTransformer::new(vb.pp("text_model"), &cfg.text)?;
    ClipVisionTransformer::new(vb.pp("vision_model"), &cfg.vision)?;
    vb.pp("vision_model").pp("embeddings").get_with_hints(
        cfg.vision.embed_dim,
        "class_embedding",
        Init::Randn { mean: 0.0, stdev: 1.0 },
    )?;
    candle_nn::linear_no_bias(cfg.text.embed_dim, cfg.projection_dim, vb.pp("text_projection"))?;
    candle_nn::linear_no_bias(cfg.vision.embed_dim, cfg.projection_dim, vb.pp("visual_projection"))?;
    weights.save(&dir.join("model.safetensors"))?;
    Ok(())
}

/// Writes the default tiny CLIP.
pub fn write_tiny_clip(dir: &Path) -> Result<(), ModelError> {
    write_clip(dir, &TinyClip::default())
}
