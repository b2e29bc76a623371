//! CLIP's `config.json` (transformers' `CLIPConfig`) read into candle's configuration, with
//! transformers' defaults for absent keys.

use std::path::Path;

use candle_transformers::models::clip::text_model::{Activation, ClipTextConfig};
use candle_transformers::models::clip::vision_model::ClipVisionConfig;
use serde::Deserialize;

use crate::models::ModelError;

fn act(s: &str, file: &str) -> Result<Activation, ModelError> {
    match s {
        "quick_gelu" => Ok(Activation::QuickGelu),
        other => Err(ModelError::Config {
            file: file.into(),
            message: format!("hidden_act `{other}` is not supported (CLIP checkpoints use quick_gelu)"),
        }),
    }
}

#[derive(Deserialize)]
struct RawText {
    #[serde(default = "d_vocab")]
    vocab_size: usize,
    #[serde(default = "d512")]
    hidden_size: usize,
    #[serde(default = "d2048")]
    intermediate_size: usize,
    #[serde(default = "d77")]
    max_position_embeddings: usize,
    #[serde(default = "d12")]
    num_hidden_layers: usize,
    #[serde(default = "d8")]
    num_attention_heads: usize,
    #[serde(default = "d_act")]
    hidden_act: String,
}

#[derive(Deserialize)]
struct RawVision {
    #[serde(default = "d768")]
    hidden_size: usize,
    #[serde(default = "d3072")]
    intermediate_size: usize,
    #[serde(default = "d12")]
    num_hidden_layers: usize,
    #[serde(default = "d12")]
    num_attention_heads: usize,
    #[serde(default = "d3")]
    num_channels: usize,
    #[serde(default = "d224")]
    image_size: usize,
    #[serde(default = "d32")]
    patch_size: usize,
    #[serde(default = "d_act")]
    hidden_act: String,
}

#[derive(Deserialize)]
struct RawClip {
    #[serde(default = "d512")]
    projection_dim: usize,
    text_config: RawText,
    vision_config: RawVision,
}

fn d_vocab() -> usize {
    49408
}
fn d512() -> usize {
    512
}
fn d2048() -> usize {
    2048
}
fn d77() -> usize {
    77
}
fn d12() -> usize {
    12
}
fn d8() -> usize {
    8
}
fn d768() -> usize {
    768
}
fn d3072() -> usize {
    3072
}
fn d3() -> usize {
    3
}
fn d224() -> usize {
    224
}
fn d32() -> usize {
    32
}
fn d_act() -> String {
    "quick_gelu".into()
}

/// The shapes of a CLIP model.
#[derive(Debug, Clone)]
pub struct ClipModelConfig {
    pub text: ClipTextConfig,
    pub vision: ClipVisionConfig,
    /// Dimension of the joint embedding space (the output vectors).
    pub projection_dim: usize,
}

impl ClipModelConfig {
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Files(format!("cannot read {file}: {e}")))?;
        Self::from_json(&text, &file)
    }

    pub fn from_json(json: &str, file: &str) -> Result<Self, ModelError> {
        let raw: RawClip = serde_json::from_str(json).map_err(|e| ModelError::Config {
            file: file.into(),
            message: format!("not a CLIP config: {e}"),
        })?;
        let (t, v) = (&raw.text_config, &raw.vision_config);
        if t.hidden_size % t.num_attention_heads != 0
            || v.hidden_size % v.num_attention_heads != 0
            || v.image_size % v.patch_size != 0
        {
            return Err(ModelError::Config {
                file: file.into(),
                message: "hidden sizes must divide by the head counts, and image_size by patch_size".into(),
            });
        }
        Ok(ClipModelConfig {
            text: ClipTextConfig {
                vocab_size: t.vocab_size,
                embed_dim: t.hidden_size,
                activation: act(&t.hidden_act, file)?,
                intermediate_size: t.intermediate_size,
                max_position_embeddings: t.max_position_embeddings,
                pad_with: None,
                num_hidden_layers: t.num_hidden_layers,
                num_attention_heads: t.num_attention_heads,
                projection_dim: raw.projection_dim,
            },
            vision: ClipVisionConfig {
                embed_dim: v.hidden_size,
                activation: act(&v.hidden_act, file)?,
                intermediate_size: v.intermediate_size,
                num_hidden_layers: v.num_hidden_layers,
                num_attention_heads: v.num_attention_heads,
                projection_dim: raw.projection_dim,
                num_channels: v.num_channels,
                image_size: v.image_size,
                patch_size: v.patch_size,
            },
            projection_dim: raw.projection_dim,
        })
    }
}
