//! BLIP's `config.json` as transformers writes it (`BlipConfig` with `text_config` and
//! `vision_config`; keys equal to transformers' defaults may be left out, so every key has that
//! default here), turned into candle-transformers' BLIP configuration.

use std::path::Path;

use candle_nn::Activation;
use candle_transformers::models::blip::{Config, VisionConfig};
use candle_transformers::models::blip_text::Config as TextConfig;
use serde::Deserialize;

use crate::models::ModelError;

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    text_config: RawText,
    #[serde(default)]
    vision_config: RawVision,
    #[serde(default = "projection_dim")]
    projection_dim: usize,
    #[serde(default = "image_text_hidden_size")]
    image_text_hidden_size: usize,
}

fn projection_dim() -> usize {
    512
}
fn image_text_hidden_size() -> usize {
    256
}

/// transformers' `BlipTextConfig` defaults.
#[derive(Deserialize)]
#[serde(default)]
struct RawText {
    vocab_size: usize,
    hidden_size: usize,
    encoder_hidden_size: usize,
    intermediate_size: usize,
    projection_dim: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    max_position_embeddings: usize,
    hidden_act: Activation,
    layer_norm_eps: f64,
    bos_token_id: u32,
    sep_token_id: u32,
}

impl Default for RawText {
    fn default() -> Self {
        RawText {
            vocab_size: 30524,
            hidden_size: 768,
            encoder_hidden_size: 768,
            intermediate_size: 3072,
            projection_dim: 768,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 512,
            hidden_act: Activation::Gelu,
            layer_norm_eps: 1e-12,
            bos_token_id: 30522,
            sep_token_id: 102,
        }
    }
}

/// transformers' `BlipVisionConfig` defaults.
#[derive(Deserialize)]
#[serde(default)]
struct RawVision {
    hidden_size: usize,
    intermediate_size: usize,
    projection_dim: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    image_size: usize,
    patch_size: usize,
    hidden_act: Activation,
    layer_norm_eps: f64,
}

impl Default for RawVision {
    fn default() -> Self {
        RawVision {
            hidden_size: 768,
            intermediate_size: 3072,
            projection_dim: 512,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            image_size: 384,
            patch_size: 16,
            hidden_act: Activation::Gelu,
            layer_norm_eps: 1e-5,
        }
    }
}

/// A BLIP captioning model's configuration.
#[derive(Debug, Clone)]
pub struct BlipModelConfig {
    pub model: Config,
    /// The token a caption starts from (`[DEC]`).
    pub bos_token_id: u32,
    /// The token that ends a caption (`[SEP]`).
    pub sep_token_id: u32,
}

impl BlipModelConfig {
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Files(format!("cannot read {file}: {e}")))?;
        Self::from_json(&text, &file)
    }

    pub fn from_json(json: &str, file: &str) -> Result<Self, ModelError> {
        let bad = |message: String| ModelError::Config {
            file: file.to_owned(),
            message,
        };
        // The model type first: another model's config may not even parse as BLIP's.
        #[derive(Deserialize)]
        struct ModelType {
            model_type: Option<String>,
        }
        let kind: ModelType = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        if let Some(other) = kind.model_type.as_deref().filter(|t| *t != "blip") {
            return Err(bad(format!(
                "model_type is `{other}`, not `blip`: captions need a BLIP captioning model such as \
                 Salesforce/blip-image-captioning-base"
            )));
        }
        let raw: RawConfig = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let (mut t, v) = (raw.text_config, raw.vision_config);
        for (part, hidden, heads) in [
            ("text_config", t.hidden_size, t.num_attention_heads),
            ("vision_config", v.hidden_size, v.num_attention_heads),
        ] {
            if hidden == 0 || heads == 0 || hidden % heads != 0 {
                return Err(bad(format!(
                    "{part}: hidden_size {hidden} must be a positive multiple of num_attention_heads {heads}"
                )));
            }
        }
        if v.patch_size == 0 || v.image_size % v.patch_size != 0 {
            return Err(bad(format!(
                "image_size {} is not a multiple of patch_size {}",
                v.image_size, v.patch_size
            )));
        }
        // transformers' BlipConfig sets this from the vision side, whatever the file says.
        t.encoder_hidden_size = v.hidden_size;
        for (name, id) in [("bos_token_id", t.bos_token_id), ("sep_token_id", t.sep_token_id)] {
            if id as usize >= t.vocab_size {
                return Err(bad(format!(
                    "text_config.{name} {id} is outside the vocabulary of {}",
                    t.vocab_size
                )));
            }
        }
        Ok(BlipModelConfig {
            model: Config {
                text_config: TextConfig {
                    vocab_size: t.vocab_size,
                    hidden_size: t.hidden_size,
                    encoder_hidden_size: t.encoder_hidden_size,
                    intermediate_size: t.intermediate_size,
                    projection_dim: t.projection_dim,
                    num_hidden_layers: t.num_hidden_layers,
                    num_attention_heads: t.num_attention_heads,
                    max_position_embeddings: t.max_position_embeddings,
                    hidden_act: t.hidden_act,
                    layer_norm_eps: t.layer_norm_eps,
                    is_decoder: true,
                },
                vision_config: VisionConfig {
                    hidden_size: v.hidden_size,
                    intermediate_size: v.intermediate_size,
                    projection_dim: v.projection_dim,
                    num_hidden_layers: v.num_hidden_layers,
                    num_attention_heads: v.num_attention_heads,
                    image_size: v.image_size,
                    patch_size: v.patch_size,
                    hidden_act: v.hidden_act,
                    layer_norm_eps: v.layer_norm_eps,
                },
                projection_dim: raw.projection_dim,
                image_text_hidden_size: raw.image_text_hidden_size,
            },
            bos_token_id: t.bos_token_id,
            sep_token_id: t.sep_token_id,
        })
    }

    /// The longest caption the text decoder's positions allow (after the start token).
    pub fn max_caption_tokens(&self) -> usize {
        self.model.text_config.max_position_embeddings.saturating_sub(1)
    }

    pub fn image_size(&self) -> usize {
        self.model.vision_config.image_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoder_width_comes_from_the_vision_side() {
        // blip-image-captioning-large style: text_config leaves encoder_hidden_size out (768 by
        // default) while the vision tower is 1024 wide; transformers takes the vision width.
        let json = r#"{"model_type": "blip", "text_config": {"num_hidden_layers": 12},
            "vision_config": {"hidden_size": 1024, "num_attention_heads": 16}}"#;
        let c = BlipModelConfig::from_json(json, "config.json").unwrap();
        assert_eq!(c.model.text_config.encoder_hidden_size, 1024);
        assert_eq!((c.bos_token_id, c.sep_token_id), (30522, 102));
        let e = BlipModelConfig::from_json(r#"{"text_config": {"vocab_size": 100}}"#, "c.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bos_token_id 30522 is outside the vocabulary of 100"), "{e}");
    }

    #[test]
    fn zero_heads_are_refused() {
        let json = r#"{"vision_config": {"num_attention_heads": 0}}"#;
        let e = BlipModelConfig::from_json(json, "config.json").unwrap_err().to_string();
        assert!(
            e.contains("vision_config: hidden_size 768 must be a positive multiple of num_attention_heads 0"),
            "{e}"
        );
    }
}
