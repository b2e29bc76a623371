//! Native inference for embeddings: CLIP text and image encoders on candle, loaded from the
//! Hugging Face layout (`config.json`, `tokenizer.json`, `*.safetensors`,
//! `preprocessor_config.json`). CPU by default; `cuda:N` with the `cuda` cargo feature.
//!
//! The model is CLIP (Radford et al., "Learning Transferable Visual Models From Natural Language
//! Supervision", ICML 2021, arXiv:2103.00020); the default checkpoint is
//! `openai/clip-vit-base-patch32` (ViT-B/32, 512-d embeddings), and any `CLIPModel` checkpoint
//! in the Hugging Face layout loads the same way.
//!
//! Invariant: outputs are L2-normalised, and a batch gives the same vectors as one input at a
//! time (padding never leaks into a result).

pub mod cache;
mod clip;
mod clip_config;
mod clip_tower;
#[cfg(feature = "testing")]
pub mod fixtures;
mod preprocess;

pub use cache::{CacheStats, EmbeddingCache};
pub use clip::ClipEmbedder;
pub use clip_config::ClipModelConfig;
pub use preprocess::{ImagePreprocessor, ProcessorKind};
