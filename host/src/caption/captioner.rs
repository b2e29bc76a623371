//! The BLIP captioner: images in, short English captions out, by greedy decoding from the
//! `[DEC]` start token until `[SEP]` (what transformers' `generate` does for
//! `BlipForConditionalGeneration` without a prompt and without sampling), on Mira's own BLIP
//! forward ([`super::blip`]): images in batches, each image's cross-attention computed once.

use std::borrow::Borrow;
use std::path::Path;

use candle_core::{DType, Device};
use image::DynamicImage;
use tokenizers::Tokenizer;

use super::BlipModelConfig;
use super::blip::Blip;
use crate::embed::{ImagePreprocessor, ProcessorKind};
use crate::models::{ModelDType, ModelError, ModelFiles, ModelKind};

/// Images per forward pass (the vision tower's attention for 16 images of 577 patches is
/// ~250 MB in f32).
pub const CAPTION_BATCH: usize = 16;

/// A loaded BLIP captioning model.
pub struct Captioner {
    model: Blip,
    tokenizer: Tokenizer,
    preprocess: ImagePreprocessor,
    device: Device,
    dtype: DType,
    pub config: BlipModelConfig,
    pub files: ModelFiles,
}

impl Captioner {
    /// Loads a model directory in the Hugging Face layout.
    pub fn load(dir: &Path, device: &Device, dtype: ModelDType) -> Result<Self, ModelError> {
        let files = ModelFiles::find(dir, ModelKind::Captioner)?;
        let config = BlipModelConfig::from_file(&files.config)?;
        let preprocess = ImagePreprocessor::for_model(&files, config.image_size(), ProcessorKind::Blip)?;
        let tokenizer = files.tokenizer()?;
        let dtype = dtype.unquantized("BLIP")?.candle();
        let vb = files.var_builder(dtype, device)?;
        let model = Blip::new(&config.model, vb).map_err(|e| files.weights_mismatch(e))?;
        Ok(Captioner {
            model,
            tokenizer,
            preprocess,
            device: device.clone(),
            dtype,
            config,
            files,
        })
    }

    /// SHA-256 (hex) of the model's content (see [`ModelFiles::fingerprint`]).
    pub fn fingerprint(&self) -> Result<&str, ModelError> {
        self.files.fingerprint()
    }

    /// The token ids of each image's caption (without the start and end tokens), at most
    /// `max_tokens` each; images go through the model [`CAPTION_BATCH`] at a time.
    pub fn caption_ids(
        &self,
        images: &[impl Borrow<DynamicImage> + Sync],
        max_tokens: usize,
    ) -> Result<Vec<Vec<u32>>, ModelError> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(CAPTION_BATCH) {
            out.extend(self.caption_batch(chunk, max_tokens)?);
        }
        Ok(out)
    }

    fn caption_batch(
        &self,
        images: &[impl Borrow<DynamicImage> + Sync],
        max_tokens: usize,
    ) -> Result<Vec<Vec<u32>>, ModelError> {
        let max_tokens = max_tokens.min(self.config.max_caption_tokens());
        let pixels = self.preprocess.batch(images, &self.device, self.dtype)?;
        Ok(self
            .model
            .generate(&pixels, self.config.bos_token_id, self.config.sep_token_id, max_tokens)?)
    }

    /// The text of a caption's token ids (special tokens dropped).
    pub fn decode(&self, ids: &[u32]) -> Result<String, ModelError> {
        let text = self
            .tokenizer
            .decode(ids, true)
            .map_err(|e| ModelError::Input(format!("cannot decode a caption: {e}")))?;
        Ok(text.trim().to_owned())
    }

    /// Captions of images, in batches: at most `max_tokens` tokens each.
    pub fn caption_images(
        &self,
        images: &[impl Borrow<DynamicImage> + Sync],
        max_tokens: usize,
    ) -> Result<Vec<String>, ModelError> {
        self.caption_ids(images, max_tokens)?
            .iter()
            .map(|ids| self.decode(ids))
            .collect()
    }

    /// Decodes (with EXIF orientation, refusing more than `max_pixels`) and captions image files.
    pub fn caption_image_files(
        &self,
        paths: &[&Path],
        max_tokens: usize,
        max_pixels: u64,
    ) -> Result<Vec<String>, ModelError> {
        let images = crate::image_file::decode_all(paths, max_pixels).map_err(ModelError::Input)?;
        self.caption_images(&images, max_tokens)
    }
}
