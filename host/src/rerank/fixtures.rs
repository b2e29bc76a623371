//! Random-weight Qwen3 rerankers in the exact Hugging Face layout (config.json, tokenizer.json,
//! model.safetensors), read by the same loading code as real checkpoints. The tokenizer is a
//! byte-level BPE like Qwen's, with the chat template's special tokens and "yes"/"no" as tokens.
//! Behind the `testing` feature.

use std::path::Path;

use candle_nn::Init;
use serde_json::json;

use super::{Qwen3, Qwen3Config};
use crate::models::ModelError;
use crate::models::fixtures::SeededWeights;

/// Shapes of a random Qwen3.
pub struct TinyQwen3 {
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// At least the tokenizer's vocabulary; larger to match a real model's embedding size.
    pub vocab_size: usize,
    pub tie_word_embeddings: bool,
    pub max_positions: usize,
    /// Seeds the weights: the same shapes and seed give the same model on every run.
    pub seed: u64,
}

impl Default for TinyQwen3 {
    fn default() -> Self {
        TinyQwen3 {
            hidden: 64,
            intermediate: 128,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            head_dim: 16,
            vocab_size: TOKENIZER_VOCAB,
            tie_word_embeddings: false,
            max_positions: 4096,
            seed: 1,
        }
    }
}

impl TinyQwen3 {
    /// The shapes of Qwen3-Reranker-0.6B (for benchmarks): 28 layers, 1024 wide, 16/8 heads of
    /// 128, a 151669-token embedding tied to the output.
    pub fn qwen3_06b() -> Self {
        TinyQwen3 {
            hidden: 1024,
            intermediate: 3072,
            layers: 28,
            heads: 16,
            kv_heads: 8,
            head_dim: 128,
            vocab_size: 151_669,
            tie_word_embeddings: true,
            max_positions: 40960,
            seed: 1,
        }
    }

    /// The shapes of Qwen3-Reranker-4B: 36 layers, 2560 wide, 32/8 heads of 128, 9728-wide MLP,
    /// the embedding tied to the output.
    pub fn qwen3_4b() -> Self {
        TinyQwen3 {
            hidden: 2560,
            intermediate: 9728,
            layers: 36,
            heads: 32,
            ..Self::qwen3_06b()
        }
    }

    /// The shapes of Qwen3-Reranker-8B: 36 layers, 4096 wide, 32/8 heads of 128, 12288-wide MLP,
    /// a separate output matrix.
    pub fn qwen3_8b() -> Self {
        TinyQwen3 {
            hidden: 4096,
            intermediate: 12288,
            layers: 36,
            heads: 32,
            tie_word_embeddings: false,
            ..Self::qwen3_06b()
        }
    }
}

/// Special tokens of Qwen's chat template.
const SPECIALS: &[&str] = &["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"];
/// Merges that make whole tokens of the answer words and a few common ones.
const MERGES: &[(&str, &str)] = &[
    ("y", "e"),
    ("ye", "s"),
    ("n", "o"),
    ("Ġ", "t"),
    ("Ġt", "h"),
    ("Ġth", "e"),
    ("r", "e"),
    ("Ġ", "re"),
    ("Ġre", "d"),
];
/// Tokens in the tiny tokenizer: 256 bytes, the merges' results, the specials.
pub const TOKENIZER_VOCAB: usize = 256 + 9 + 5;

/// GPT-2's byte-to-character table that byte-level BPE vocabularies are written in.
fn byte_chars() -> Vec<char> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut extra = 0;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).expect("latin-1")
            } else {
                extra += 1;
                char::from_u32(255 + extra).expect("in range")
            }
        })
        .collect()
}

fn tokenizer_json() -> serde_json::Value {
    let mut vocab = serde_json::Map::new();
    for (i, c) in byte_chars().into_iter().enumerate() {
        vocab.insert(c.to_string(), json!(i));
    }
    for (a, b) in MERGES {
        let id = vocab.len();
        vocab.insert(format!("{a}{b}"), json!(id));
    }
    let added: Vec<_> = SPECIALS
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"id": 256 + MERGES.len() + i, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    let merges: Vec<String> = MERGES.iter().map(|(a, b)| format!("{a} {b}")).collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": merges}
    })
}

/// Writes a random-weight Qwen3 reranker with the given shapes to `dir`, its weights drawn from
/// `shape.seed`.
pub fn write_qwen3(dir: &Path, shape: &TinyQwen3) -> Result<(), ModelError> {
    write_qwen3_as(dir, shape, candle_core::DType::F32)
}

/// Writes config.json and tokenizer.json for `shape`, weights stored as `dtype`.
fn write_config(dir: &Path, shape: &TinyQwen3, dtype: candle_core::DType) -> Result<Qwen3Config, ModelError> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::Files(format!("cannot create {}: {e}", dir.display())))?;
    let config = json!({
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "attention_bias": false,
        "attention_dropout": 0.0, "bos_token_id": 0, "eos_token_id": 258 + MERGES.len(),
        "head_dim": shape.head_dim, "hidden_act": "silu", "hidden_size": shape.hidden,
        "initializer_range": 0.02, "intermediate_size": shape.intermediate,
        "max_position_embeddings": shape.max_positions, "max_window_layers": shape.layers,
        "num_attention_heads": shape.heads, "num_hidden_layers": shape.layers,
        "num_key_value_heads": shape.kv_heads, "rms_norm_eps": 1e-6, "rope_scaling": null,
        "rope_theta": 1_000_000.0, "sliding_window": null, "tie_word_embeddings": shape.tie_word_embeddings,
        "torch_dtype": match dtype { candle_core::DType::BF16 => "bfloat16", candle_core::DType::F16 => "float16", _ => "float32" }, "use_cache": true, "use_sliding_window": false, "vocab_size": shape.vocab_size.max(TOKENIZER_VOCAB)
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).expect("json"),
    )
    .map_err(|e| ModelError::Files(format!("cannot write config.json: {e}")))?;
    let tokenizer: tokenizers::Tokenizer =
        serde_json::from_value(tokenizer_json()).map_err(|e| ModelError::Files(format!("tiny tokenizer: {e}")))?;
    tokenizer
        .save(dir.join("tokenizer.json"), true)
        .map_err(|e| ModelError::Files(format!("cannot write tokenizer.json: {e}")))?;

    Qwen3Config::from_json(&config.to_string(), "config.json")
}

/// [`write_qwen3`] with the weights stored as `dtype` (bf16 halves the 8B's 32 GB file); the
/// config's `torch_dtype` says which.
pub fn write_qwen3_as(dir: &Path, shape: &TinyQwen3, dtype: candle_core::DType) -> Result<(), ModelError> {
    let cfg = write_config(dir, shape, dtype)?;
    let weights = SeededWeights::new(shape.seed);
    let vb = weights.var_builder();
    if !cfg.tie_word_embeddings {
        vb.pp("lm_head").get_with_hints(
            (cfg.vocab_size, cfg.hidden_size),
            "weight",
            Init::Randn { mean: 0.0, stdev: 0.05 },
        )?;
    }
    Qwen3::new(&cfg, vb, false)?;
    // Norm weights start at one; perturb them so a mistake in which norm applies where shows.
    // The final norm is scaled down so that P("yes") stays away from 0 and 1 (random logits
    // are otherwise large enough to saturate it).
    weights.perturb(|name| match name {
        "model.norm.weight" => Some((0.1, 0.1)),
        n if n.ends_with("norm.weight") => Some((0.1, 1.0)),
        _ => None,
    })?;
    weights.save_as(&dir.join("model.safetensors"), dtype)?;
    Ok(())
}

/// Writes the default tiny reranker.
pub fn write_tiny_qwen3(dir: &Path) -> Result<(), ModelError> {
    write_qwen3(dir, &TinyQwen3::default())
}

/// [`write_qwen3_as`] for models too large to draw in memory (the 4B and 8B shapes): each weight
/// is drawn in chunks on the CPU's threads and written to model.safetensors as it comes, so
/// memory stays at a few chunks. Same layout and initialisation scales as [`write_qwen3_as`]
/// (uniform draws of the same spread), not the same numbers. `dtype`: F32 or BF16.
pub fn write_qwen3_streamed(dir: &Path, shape: &TinyQwen3, dtype: candle_core::DType) -> Result<(), ModelError> {
    use std::io::Write;

    use rayon::prelude::*;

    let (code, width) = match dtype {
        candle_core::DType::F32 => ("F32", 4),
        candle_core::DType::BF16 => ("BF16", 2),
        other => {
            return Err(ModelError::Input(format!(
                "streamed fixtures store f32 or bf16, not {other:?}"
            )));
        }
    };
    let cfg = write_config(dir, shape, dtype)?;
    // (name, shape, how to draw it): uniform with the spread of the in-memory fixture's draws
    // (candle's Kaiming-normal linears, N(0, 1) embeddings, N(0, 0.05) output rows, norms 1 ±
    // 0.1 and the final norm scaled by 0.1).
    enum Draw {
        Spread(f32),
        Norm(f32),
    }
    let (h, hd, inter) = (cfg.hidden_size, cfg.head_dim(), cfg.intermediate_size);
    let kaiming = |fan_in: usize| Draw::Spread((2.0 / fan_in as f32).sqrt());
    let mut weights: Vec<(String, Vec<usize>, Draw)> = vec![(
        "model.embed_tokens.weight".into(),
        vec![cfg.vocab_size, h],
        Draw::Spread(1.0),
    )];
    for i in 0..cfg.num_hidden_layers {
        let l = format!("model.layers.{i}");
        let heads = cfg.num_attention_heads * hd;
        let kv = cfg.kv_heads() * hd;
        weights.extend([
            (format!("{l}.self_attn.q_proj.weight"), vec![heads, h], kaiming(h)),
            (format!("{l}.self_attn.k_proj.weight"), vec![kv, h], kaiming(h)),
            (format!("{l}.self_attn.v_proj.weight"), vec![kv, h], kaiming(h)),
            (format!("{l}.self_attn.o_proj.weight"), vec![h, heads], kaiming(heads)),
            (format!("{l}.self_attn.q_norm.weight"), vec![hd], Draw::Norm(1.0)),
            (format!("{l}.self_attn.k_norm.weight"), vec![hd], Draw::Norm(1.0)),
            (format!("{l}.mlp.gate_proj.weight"), vec![inter, h], kaiming(h)),
            (format!("{l}.mlp.up_proj.weight"), vec![inter, h], kaiming(h)),
            (format!("{l}.mlp.down_proj.weight"), vec![h, inter], kaiming(inter)),
            (format!("{l}.input_layernorm.weight"), vec![h], Draw::Norm(1.0)),
            (format!("{l}.post_attention_layernorm.weight"), vec![h], Draw::Norm(1.0)),
        ]);
    }
    weights.push(("model.norm.weight".into(), vec![h], Draw::Norm(0.1)));
    if !cfg.tie_word_embeddings {
        weights.push(("lm_head.weight".into(), vec![cfg.vocab_size, h], Draw::Spread(0.05)));
    }
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, dims, _) in &weights {
        let bytes = dims.iter().product::<usize>() * width;
        header.insert(
            name.clone(),
            json!({"dtype": code, "shape": dims, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut header = serde_json::to_vec(&header).expect("json");
    header.resize(header.len().next_multiple_of(8), b' ');
    let path = dir.join("model.safetensors");
    let failed = |e: std::io::Error| ModelError::Files(format!("cannot write {}: {e}", path.display()));
    let mut out = std::io::BufWriter::with_capacity(1 << 22, std::fs::File::create(&path).map_err(failed)?);
    out.write_all(&(header.len() as u64).to_le_bytes()).map_err(failed)?;
    out.write_all(&header).map_err(failed)?;
    const CHUNK: usize = 1 << 20;
    for (t, (_, dims, draw)) in weights.iter().enumerate() {
        let n: usize = dims.iter().product();
        let chunks: Vec<usize> = (0..n.div_ceil(CHUNK)).collect();
        for group in chunks.chunks(64) {
            let parts: Vec<Vec<u8>> = group
                .par_iter()
                .map(|&c| {
                    let mut rng = fastrand::Rng::with_seed(shape.seed ^ ((t as u64) << 32) ^ c as u64);
                    let len = CHUNK.min(n - c * CHUNK);
                    let mut bytes = Vec::with_capacity(len * width);
                    for _ in 0..len {
                        let u = 2.0 * rng.f32() - 1.0; // uniform on [-1, 1): standard deviation 1/sqrt(3)
                        let v = match draw {
                            Draw::Spread(std) => u * std * 3f32.sqrt(),
                            Draw::Norm(scale) => (1.0 + 0.1 * 3f32.sqrt() * u) * scale,
                        };
                        match width {
                            4 => bytes.extend_from_slice(&v.to_le_bytes()),
                            _ => bytes.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
                        }
                    }
                    bytes
                })
                .collect();
            for p in parts {
                out.write_all(&p).map_err(failed)?;
            }
        }
    }
    out.flush().map_err(failed)?;
    Ok(())
}
