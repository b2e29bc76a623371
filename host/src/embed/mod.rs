//! Native inference for embeddings: CLIP text and image encoders on candle, loaded from the
//! Hugging Face layout (`config.json`, `tokenizer.json`, `*.safetensors`,
//! `preprocessor_config.json`). CPU by default; `cuda:N` with the `cuda` cargo feature.
//!
//! Invariant: outputs are L2-normalised, and a batch gives the same vectors as one input at a
//! time (padding never leaks into a result).

mod clip;
mod clip_config;
mod device;
#[cfg(feature = "testing")]
pub mod fixtures;
mod model_files;
mod preprocess;

pub use clip::ClipEmbedder;
pub use clip_config::ClipModelConfig;
pub use device::{ModelDType, parse_device};
pub use model_files::ModelFiles;
pub use preprocess::ImagePreprocessor;

/// Errors of model loading and inference.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Files that are missing or unreadable; the message says what was looked for where.
    #[error("{0}")]
    Files(String),
    /// A config.json, tokenizer.json or preprocessor_config.json that cannot be used.
    #[error("{file}: {message}")]
    Config { file: String, message: String },
    /// An input that cannot be embedded (a corrupt image, too many pixels).
    #[error("{0}")]
    Input(String),
    /// The tensor library failed.
    #[error("inference: {0}")]
    Candle(#[from] candle_core::Error),
}
