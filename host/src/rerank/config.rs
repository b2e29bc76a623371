//! Qwen3's `config.json` (transformers' `Qwen3Config`), with transformers' defaults for absent keys.

use std::path::Path;

use serde::Deserialize;

use crate::models::ModelError;

/// The architecture of a Qwen3 causal LM (Qwen3-Reranker 0.6B, 4B and 8B share it).
#[derive(Debug, Clone, Deserialize)]
pub struct Qwen3Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Width of one attention head (Qwen3 sets it explicitly: 128).
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "d_max_positions")]
    pub max_position_embeddings: usize,
    /// The rotary base: `rope_theta`, or `rope_parameters.rope_theta` as transformers 5 writes
    /// it, else 1e6 (`from_json` settles it from the two keys below).
    #[serde(skip)]
    pub rope_theta: f64,
    #[serde(default, rename = "rope_theta")]
    top_level_theta: Option<f64>,
    #[serde(default)]
    rope_parameters: Option<RopeParameters>,
    #[serde(default = "d_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default = "d_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub use_sliding_window: bool,
    #[serde(default)]
    pub model_type: Option<String>,
}

/// transformers 5's `rope_parameters` (older configs: top-level `rope_theta`, `rope_scaling`).
#[derive(Debug, Clone, Deserialize)]
struct RopeParameters {
    #[serde(default)]
    rope_type: Option<String>,
    #[serde(default)]
    rope_theta: Option<f64>,
}

fn d_max_positions() -> usize {
    40960
}
fn d_theta() -> f64 {
    1_000_000.0
}
fn d_eps() -> f64 {
    1e-6
}
fn d_act() -> String {
    "silu".into()
}

impl Qwen3Config {
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ModelError::Files(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json(&text, &path.display().to_string())
    }

    pub fn from_json(text: &str, file: &str) -> Result<Self, ModelError> {
        let bad = |message: String| ModelError::Config {
            file: file.into(),
            message,
        };
        let mut cfg: Qwen3Config = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let rope = cfg.rope_parameters.take();
        if let Some(kind) = rope.as_ref().and_then(|r| r.rope_type.as_deref())
            && kind != "default"
        {
            return Err(bad(format!(
                "rope_parameters.rope_type `{kind}` is not supported (Qwen3-Reranker uses the default rotary embedding)"
            )));
        }
        cfg.rope_theta = cfg
            .top_level_theta
            .or(rope.and_then(|r| r.rope_theta))
            .unwrap_or_else(d_theta);
        if !(cfg.rope_theta.is_finite() && cfg.rope_theta > 1.0) {
            return Err(bad(format!(
                "rope_theta ({}) must be a finite number above 1",
                cfg.rope_theta
            )));
        }
        if let Some(t) = cfg.model_type.as_deref()
            && t != "qwen3"
        {
            return Err(bad(format!(
                "model_type is `{t}`; the reranker needs a Qwen3 checkpoint (model_type `qwen3`)"
            )));
        }
        if cfg.hidden_act != "silu" {
            return Err(bad(format!(
                "hidden_act `{}` is not supported (Qwen3 uses silu)",
                cfg.hidden_act
            )));
        }
        if cfg.use_sliding_window {
            return Err(bad("use_sliding_window = true is not supported".into()));
        }
        let heads = cfg.num_attention_heads;
        if heads == 0 || cfg.kv_heads() == 0 || !heads.is_multiple_of(cfg.kv_heads()) {
            return Err(bad(format!(
                "num_attention_heads ({heads}) must be a positive multiple of num_key_value_heads ({})",
                cfg.kv_heads()
            )));
        }
        if !cfg.head_dim().is_multiple_of(2) {
            return Err(bad(format!(
                "head_dim ({}) must be even for rotary embeddings",
                cfg.head_dim()
            )));
        }
        Ok(cfg)
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#""vocab_size": 100, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "head_dim": 16"#;

    fn parse(extra: &str) -> Result<Qwen3Config, ModelError> {
        Qwen3Config::from_json(&format!("{{{BASE}{extra}}}"), "config.json")
    }

    #[test]
    fn the_rotary_base_is_read_from_either_place_transformers_writes_it() {
        assert_eq!(parse("").unwrap().rope_theta, 1_000_000.0);
        assert_eq!(parse(r#", "rope_theta": 10000.0"#).unwrap().rope_theta, 10_000.0);
        let v5 = r#", "rope_parameters": {"rope_type": "default", "rope_theta": 5000.0}"#;
        assert_eq!(parse(v5).unwrap().rope_theta, 5_000.0);
        let both = r#", "rope_theta": 10000.0, "rope_parameters": {"rope_theta": 5000.0}"#;
        assert_eq!(parse(both).unwrap().rope_theta, 10_000.0);
        let yarn = parse(r#", "rope_parameters": {"rope_type": "yarn", "rope_theta": 5000.0}"#).unwrap_err();
        assert!(yarn.to_string().contains("rope_type `yarn` is not supported"), "{yarn}");
        let bad = parse(r#", "rope_theta": 0.5"#).unwrap_err();
        assert!(bad.to_string().contains("must be a finite number above 1"), "{bad}");
    }
}
