//! The CLIP embedder: text and image towers with their projections, the model's tokenizer and
//! image preprocessing, batched and L2-normalised.

use std::borrow::Borrow;
use std::path::Path;

use candle_core::{D, DType, Device, Module, Tensor};
use image::DynamicImage;
use tokenizers::{Tokenizer, TruncationParams};

use super::clip_tower::{TextTower, VisionTower};
use super::{ClipModelConfig, ImagePreprocessor, ProcessorKind};
use crate::models::linear::Linear;
use crate::models::{ModelDType, ModelError, ModelFiles, ModelKind};

/// CLIP's end-of-text token: the text embedding is read at its first occurrence.
const EOS_TOKEN: &str = "<|endoftext|>";

/// Images per pass on a GPU (where the next pass's preprocessing overlaps the current one).
pub const GPU_IMAGE_PASS: usize = 64;

/// A loaded CLIP model.
pub struct ClipEmbedder {
    text: TextTower,
    text_projection: Linear,
    vision: VisionTower,
    visual_projection: Linear,
    tokenizer: Tokenizer,
    eos_id: Option<u32>,
    pad_id: u32,
    preprocess: ImagePreprocessor,
    device: Device,
    dtype: DType,
    pub config: ClipModelConfig,
    pub files: ModelFiles,
}

fn l2_normalize(t: &Tensor) -> candle_core::Result<Tensor> {
    let norm = t.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    t.broadcast_div(&norm.clamp(1e-12, f64::MAX)?)
}

impl ClipEmbedder {
    /// Loads a model directory in the Hugging Face layout.
    pub fn load(dir: &Path, device: &Device, dtype: ModelDType) -> Result<Self, ModelError> {
        let files = ModelFiles::find(dir, ModelKind::Clip)?;
        let config = ClipModelConfig::from_file(&files.config)?;
        let preprocess = ImagePreprocessor::for_model(&files, config.vision.image_size, ProcessorKind::Clip)?;
        let tok_file = files.tokenizer.display().to_string();
        let mut tokenizer = files.tokenizer()?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: config.text.max_position_embeddings,
                ..Default::default()
            }))
            .map_err(|e| ModelError::Config {
                file: tok_file.clone(),
                message: e.to_string(),
            })?;
        tokenizer.with_padding(None);
        let eos_id = tokenizer.token_to_id(EOS_TOKEN);
        let pad_id = eos_id.unwrap_or(0);
        let dtype = dtype.unquantized("CLIP")?.candle();
        let vb = files.var_builder(dtype, device)?;
        let missing = |e| files.weights_mismatch(e);
        let text = TextTower::new(vb.pp("text_model"), &config.text).map_err(missing)?;
        let vision = VisionTower::new(vb.pp("vision_model"), &config.vision).map_err(missing)?;
        let text_projection = Linear::load(
            config.text.embed_dim,
            config.projection_dim,
            false,
            vb.pp("text_projection"),
        )
        .map_err(missing)?;
        let visual_projection = Linear::load(
            config.vision.embed_dim,
            config.projection_dim,
            false,
            vb.pp("visual_projection"),
        )
        .map_err(missing)?;
        Ok(ClipEmbedder {
            text,
            text_projection,
            vision,
            visual_projection,
            tokenizer,
            eos_id,
            pad_id,
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

    /// Dimension of the output vectors.
    pub fn dim(&self) -> usize {
        self.config.projection_dim
    }

    /// Token ids of a text: the tokenizer's, truncated to the model's context (end token kept).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| ModelError::Input(format!("cannot tokenize: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Embeds texts in one batch (packed side by side, none padded to another's length; each
    /// read at its own end token).
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<Vec<u32>> = texts.iter().map(|t| self.tokenize(t)).collect::<Result<_, _>>()?;
        for row in &mut ids {
            if row.is_empty() {
                // A tokenizer without special tokens may give nothing; one pad token reads as
                // the padded batch did.
                row.push(self.pad_id);
            }
        }
        let eos: Vec<usize> = ids
            .iter()
            .map(|row| {
                self.eos_id
                    .and_then(|e| row.iter().position(|t| *t == e))
                    .unwrap_or(row.len() - 1)
            })
            .collect();
        let pooled = self.text.forward(&ids, &eos)?;
        let features = self.text_projection.forward(&pooled)?;
        Ok(l2_normalize(&features.to_dtype(DType::F32)?)?.to_vec2()?)
    }

    /// Embeds decoded images: in one batch on a CPU; on a GPU in passes of
    /// [`GPU_IMAGE_PASS`], the next pass's preprocessing (resize, crop, normalise, on the CPU's
    /// threads) overlapping the current pass on the GPU.
    pub fn embed_images(&self, images: &[impl Borrow<DynamicImage> + Sync]) -> Result<Vec<Vec<f32>>, ModelError> {
        if self.device.is_cpu() || images.len() <= GPU_IMAGE_PASS {
            return self.embed_pass(images);
        }
        self.embed_images_overlapped(images, GPU_IMAGE_PASS)
    }

    /// Embeds images in passes of `pass`, a thread preprocessing the next pass while the model
    /// runs the current one (what [`ClipEmbedder::embed_images`] does on a GPU). The vectors
    /// equal those of one batch.
    pub fn embed_images_overlapped(
        &self,
        images: &[impl Borrow<DynamicImage> + Sync],
        pass: usize,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let pass = pass.max(1);
        std::thread::scope(|scope| {
            // One pass ready ahead: preprocessing runs at most one pass in front of the model.
            let (send, receive) = std::sync::mpsc::sync_channel(1);
            let producer = scope.spawn(move || {
                for chunk in images.chunks(pass) {
                    let pixels = self.preprocess.batch(chunk, &Device::Cpu, DType::F32);
                    let failed = pixels.is_err();
                    if send.send(pixels).is_err() || failed {
                        break;
                    }
                }
            });
            let mut out = Vec::with_capacity(images.len());
            for pixels in receive {
                let pixels = pixels?.to_device(&self.device)?.to_dtype(self.dtype)?;
                out.extend(self.embed_pixels(&pixels)?);
            }
            producer
                .join()
                .map_err(|_| ModelError::Input("image preprocessing panicked".into()))?;
            Ok(out)
        })
    }

    fn embed_pass(&self, images: &[impl Borrow<DynamicImage> + Sync]) -> Result<Vec<Vec<f32>>, ModelError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let pixels = self.preprocess.batch(images, &self.device, self.dtype)?;
        self.embed_pixels(&pixels)
    }

    /// The normalised embeddings of a (batch, 3, h, w) pixel tensor on the model's device.
    fn embed_pixels(&self, pixels: &Tensor) -> Result<Vec<Vec<f32>>, ModelError> {
        let pooled = self.vision.forward(pixels)?;
        let features = self.visual_projection.forward(&pooled)?;
        Ok(l2_normalize(&features.to_dtype(DType::F32)?)?.to_vec2()?)
    }

    /// Decodes (with EXIF orientation, refusing more than `max_pixels`) and embeds image files.
    pub fn embed_image_files(&self, paths: &[&Path], max_pixels: u64) -> Result<Vec<Vec<f32>>, ModelError> {
        let images = crate::image_file::decode_all(paths, max_pixels).map_err(ModelError::Input)?;
        self.embed_images(&images)
    }
}
