//! What every model needs before inference: finding its files (a local directory in the Hugging
//! Face layout, or a repo id in the Hugging Face cache / hub), choosing the device and dtype, and
//! one error type for loading and inference.

pub mod attention;
mod device;
mod files;
#[cfg(feature = "testing")]
pub mod fixtures;
mod hub;
pub mod linear;
pub mod memory;
pub mod rms_norm;
pub mod rotary_attention;
mod shared;
#[cfg(test)]
mod test_values;

pub use device::{ModelDType, parse_device};
pub use files::{ModelFiles, ModelKind};
pub use hub::{HUB_OFFLINE_ENV, HubSettings, resolve_model, resolve_model_with};
pub use shared::{DEFAULT_RETRY, shared};

/// Errors of model loading and inference.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Files that are missing or unreadable; the message says what was looked for where.
    #[error("{0}")]
    Files(String),
    /// A config.json, tokenizer.json or preprocessor_config.json that cannot be used.
    #[error("{file}: {message}")]
    Config { file: String, message: String },
    /// An input that cannot be embedded or scored (a corrupt image, too many pixels, a query too
    /// long for the context).
    #[error("{0}")]
    Input(String),
    /// The tensor library failed.
    #[error("inference: {0}")]
    Candle(#[from] candle_core::Error),
}

impl ModelError {
    /// The same error, kind and message, for a second caller (a remembered load failure); the
    /// tensor library's errors are not `Clone`, so theirs is kept as its message.
    pub fn duplicate(&self) -> ModelError {
        match self {
            ModelError::Files(m) => ModelError::Files(m.clone()),
            ModelError::Config { file, message } => ModelError::Config {
                file: file.clone(),
                message: message.clone(),
            },
            ModelError::Input(m) => ModelError::Input(m.clone()),
            ModelError::Candle(e) => ModelError::Candle(candle_core::Error::Msg(e.to_string())),
        }
    }
}
