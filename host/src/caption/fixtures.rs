//! Random-weight BLIP captioners in the exact Hugging Face layout (config.json as transformers
//! writes it, a BERT-style WordPiece tokenizer.json, BLIP's preprocessor_config.json,
//! model.safetensors), read by the same loading code as real checkpoints. Their captions are
//! words of [`crate::embed::fixtures::TINY_WORDS`]. Behind the `testing` feature.

use std::path::Path;

use candle_core::{D, DType, Device, IndexOp, Module, Tensor};
use candle_transformers::models::blip::BlipForConditionalGeneration;
use image::DynamicImage;
use serde_json::json;

use super::BlipModelConfig;
use crate::embed::fixtures::TINY_WORDS;
use crate::embed::{ImagePreprocessor, ProcessorKind};
use crate::models::fixtures::SeededWeights;
use crate::models::{ModelError, ModelFiles, ModelKind};

/// The tokenizer's special tokens, in id order.
const SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[DEC]"];

/// Shapes of a random BLIP.
#[derive(Debug, Clone)]
pub struct TinyBlip {
    pub vision_hidden: usize,
    pub vision_layers: usize,
    pub text_hidden: usize,
    pub text_layers: usize,
    pub heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    /// At least the tokenizer's vocabulary; larger to match a real model's.
    pub vocab_size: usize,
    /// Added to the output bias of `[SEP]`: random weights otherwise end every caption at once
    /// or never; the default gives captions of a few words that end by themselves.
    pub sep_bias: f32,
    /// Seeds the weights: the same shapes and seed give the same model on every run.
    pub seed: u64,
}

impl Default for TinyBlip {
    fn default() -> Self {
        TinyBlip {
            vision_hidden: 32,
            vision_layers: 2,
            text_hidden: 32,
            text_layers: 2,
            heads: 4,
            image_size: 32,
            patch_size: 8,
            vocab_size: SPECIALS.len() + TINY_WORDS.len(),
            sep_bias: 1.0,
            seed: 1,
        }
    }
}

impl TinyBlip {
    /// The shapes of Salesforce/blip-image-captioning-base (for benchmarks): ViT-B/16 at 384 px,
    /// a 12-layer BERT-base decoder over a 30524-token vocabulary.
    pub fn blip_base() -> Self {
        TinyBlip {
            vision_hidden: 768,
            vision_layers: 12,
            text_hidden: 768,
            text_layers: 12,
            heads: 12,
            image_size: 384,
            patch_size: 16,
            vocab_size: 30524,
            sep_bias: 0.0,
            seed: 1,
        }
    }
}

fn tokenizer_json() -> serde_json::Value {
    let mut vocab = serde_json::Map::new();
    for (i, w) in SPECIALS.iter().chain(TINY_WORDS).enumerate() {
        vocab.insert((*w).to_owned(), json!(i));
    }
    let added: Vec<_> = SPECIALS
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"id": i, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": null,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}
    })
}

/// Writes a random-weight BLIP captioner with the given shapes to `dir`, its weights drawn
/// from `shape.seed`.
pub fn write_blip(dir: &Path, shape: &TinyBlip) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::Files(format!("cannot create {}: {e}", dir.display())))?;
    let write = |name: &str, v: &serde_json::Value| {
        std::fs::write(dir.join(name), serde_json::to_string_pretty(v).expect("json"))
            .map_err(|e| ModelError::Files(format!("cannot write {name}: {e}")))
    };
    let config = json!({
        "architectures": ["BlipForConditionalGeneration"],
        "model_type": "blip",
        "projection_dim": 512,
        "text_config": {
            "vocab_size": shape.vocab_size, "hidden_size": shape.text_hidden,
            "encoder_hidden_size": shape.vision_hidden, "intermediate_size": shape.text_hidden * 4,
            "num_hidden_layers": shape.text_layers, "num_attention_heads": shape.heads,
            "max_position_embeddings": 64, "bos_token_id": 4, "sep_token_id": 3, "pad_token_id": 0
        },
        "vision_config": {
            "hidden_size": shape.vision_hidden, "intermediate_size": shape.vision_hidden * 4,
            "num_hidden_layers": shape.vision_layers, "num_attention_heads": shape.heads,
            "image_size": shape.image_size, "patch_size": shape.patch_size
        }
    });
    write("config.json", &config)?;
    write(
        "preprocessor_config.json",
        &json!({
            "do_normalize": true, "do_resize": true, "image_processor_type": "BlipImageProcessor",
            "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
            "processor_class": "BlipProcessor", "resample": 3, "rescale_factor": 1.0 / 255.0,
            "size": {"height": shape.image_size, "width": shape.image_size}
        }),
    )?;
    let tokenizer: tokenizers::Tokenizer =
        serde_json::from_value(tokenizer_json()).map_err(|e| ModelError::Files(format!("tiny tokenizer: {e}")))?;
    tokenizer
        .save(dir.join("tokenizer.json"), true)
        .map_err(|e| ModelError::Files(format!("cannot write tokenizer.json: {e}")))?;

    let cfg = BlipModelConfig::from_json(&config.to_string(), "config.json")?;
    let weights = SeededWeights::new(shape.seed);
    BlipForConditionalGeneration::new(&cfg.model, weights.var_builder())?;
    // Read without an initialiser, so candle drew zeros: a model whose every logit is equal.
    weights.redraw("text_decoder.cls.predictions.decoder.weight", 0.0, 0.5)?;
    weights.redraw("vision_model.embeddings.class_embedding", 0.0, 1.0)?;
    weights.redraw("vision_model.embeddings.position_embedding", 0.0, 0.5)?;
    let sep = cfg.sep_token_id as usize;
    weights.update("text_decoder.cls.predictions.bias", |bias| {
        let mut values = bias.to_vec1::<f32>()?;
        values[sep] += shape.sep_bias;
        candle_core::Tensor::new(values, bias.device())
    })?;
    weights.save(&dir.join("model.safetensors"))?;
    Ok(())
}

/// candle-transformers' own BLIP (`BlipForConditionalGeneration`) decoding greedily, one image
/// at a time as its example does: the reference Mira's BLIP forward is checked and measured
/// against.
pub struct ReferenceBlip {
    model: BlipForConditionalGeneration,
    config: BlipModelConfig,
    preprocess: ImagePreprocessor,
}

impl ReferenceBlip {
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let files = ModelFiles::find(dir, ModelKind::Captioner)?;
        let config = BlipModelConfig::from_file(&files.config)?;
        let preprocess = ImagePreprocessor::for_model(&files, config.image_size(), ProcessorKind::Blip)?;
        let vb = files.var_builder(DType::F32, &Device::Cpu)?;
        let model = BlipForConditionalGeneration::new(&config.model, vb)?;
        Ok(ReferenceBlip {
            model,
            config,
            preprocess,
        })
    }

    pub fn caption_ids(&self, images: &[DynamicImage], max_tokens: usize) -> Result<Vec<Vec<u32>>, ModelError> {
        let mut captions = Vec::with_capacity(images.len());
        for img in images {
            let pixels = self.preprocess.batch(&[img], &Device::Cpu, DType::F32)?;
            let embeds = self.model.vision_model().forward(&pixels)?;
            let mut m = self.model.clone();
            m.reset_kv_cache();
            let mut input = Tensor::new(&[[self.config.bos_token_id]], &Device::Cpu)?;
            let mut caption = Vec::new();
            for _ in 0..max_tokens {
                let logits = m.text_decoder().forward(&input, &embeds)?;
                let token = logits
                    .i((0, logits.dim(1)? - 1))?
                    .argmax(D::Minus1)?
                    .to_scalar::<u32>()?;
                if token == self.config.sep_token_id {
                    break;
                }
                caption.push(token);
                input = Tensor::new(&[[token]], &Device::Cpu)?;
            }
            captions.push(caption);
        }
        Ok(captions)
    }
}

/// Writes the default tiny captioner.
pub fn write_tiny_blip(dir: &Path) -> Result<(), ModelError> {
    write_blip(dir, &TinyBlip::default())
}
