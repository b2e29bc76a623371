//! Image captions with BLIP (`BlipForConditionalGeneration`, e.g.
//! `Salesforce/blip-image-captioning-base`), loaded from the Hugging Face layout: a text field
//! declared with `source = "caption"` is filled at ingest with the caption of the document's
//! image, so image-only documents have words for BM25 and for the reranker to read.
//!
//! The model is BLIP (Li et al., "BLIP: Bootstrapping Language-Image Pre-training for Unified
//! Vision-Language Understanding and Generation", ICML 2022, arXiv:2201.12086); the default
//! checkpoint is `Salesforce/blip-image-captioning-base` (ViT-B/16 at 384 px), and
//! `Salesforce/blip-image-captioning-large` loads the same way.

mod blip;
mod captioner;
mod config;
#[cfg(feature = "testing")]
pub mod fixtures;

pub use captioner::{CAPTION_BATCH, Captioner};
pub use config::BlipModelConfig;

/// Caption tokens when a field does not say.
pub const DEFAULT_CAPTION_TOKENS: usize = 30;
