//! Qwen3-Reranker on candle: the model card's prompt and P("yes") score, computed by Mira's own
//! Qwen3 forward (right-padded batches read at each row's last token, only the "yes"/"no" output
//! rows, and the shared prompt prefix's keys and values computed once per query).
//!
//! The model is Qwen3-Reranker (Zhang et al., "Qwen3 Embedding: Advancing Text Embedding and
//! Reranking Through Foundation Models", 2025, arXiv:2506.05176), a Qwen3 decoder (Qwen Team,
//! "Qwen3 Technical Report", arXiv:2505.09388) asked whether a document meets the query under an
//! instruction; the checkpoints are `Qwen/Qwen3-Reranker-0.6B` (the default), `-4B` and `-8B`,
//! loaded from the Hugging Face layout of `Qwen3ForCausalLM`.
//!
//! Invariant: scoring documents together, in any batch size, with or without prefix reuse,
//! gives each document the score it gets alone (up to float rounding).

mod batcher;
mod config;
#[cfg(feature = "testing")]
pub mod fixtures;
mod prompt;
mod qwen3;
mod reranker;

pub use batcher::{SharedRun, SharedWindow};
pub use config::Qwen3Config;
pub use prompt::{DEFAULT_INSTRUCTION, PREFIX, SUFFIX, user_turn};
pub use qwen3::{KvPrefix, Qwen3};
pub use reranker::{DEFAULT_MAX_LENGTH, Reranker, ScoreOptions, p_yes};
