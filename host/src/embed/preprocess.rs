//! Image preprocessing exactly as `preprocessor_config.json` describes it, for transformers'
//! `CLIPImageProcessor` (RGB, resize the shortest edge, bicubic by default, center crop, rescale,
//! normalise with the given mean and std) and `BlipImageProcessor` (RGB, resize to exactly
//! height x width, rescale, normalise; no crop). Output: CHW f32.

use std::borrow::Borrow;
use std::path::Path;

use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::DynamicImage;
use rayon::prelude::*;
use serde::Deserialize;

use crate::models::{ModelError, ModelFiles};

#[derive(Deserialize)]
#[serde(untagged)]
enum Size {
    Square(u32),
    Shortest { shortest_edge: u32 },
    Hw { height: u32, width: u32 },
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default = "yes")]
    do_resize: bool,
    size: Option<Size>,
    #[serde(default = "bicubic")]
    resample: u8,
    #[serde(default = "yes")]
    do_center_crop: bool,
    crop_size: Option<Size>,
    #[serde(default = "yes")]
    do_rescale: bool,
    #[serde(default = "byte")]
    rescale_factor: f32,
    #[serde(default = "yes")]
    do_normalize: bool,
    #[serde(default = "clip_mean")]
    image_mean: Vec<f32>,
    #[serde(default = "clip_std")]
    image_std: Vec<f32>,
}

fn yes() -> bool {
    true
}
fn bicubic() -> u8 {
    3
}
fn byte() -> f32 {
    1.0 / 255.0
}
fn clip_mean() -> Vec<f32> {
    vec![0.481_454_66, 0.457_827_5, 0.408_210_73]
}
fn clip_std() -> Vec<f32> {
    vec![0.268_629_54, 0.261_302_6, 0.275_777_1]
}

/// Which transformers image processor a config is read as: they differ in what a bare `size`
/// means and whether images are center-cropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessorKind {
    /// `CLIPImageProcessor`: a bare `size` is the shortest edge; center crop unless disabled.
    Clip,
    /// `BlipImageProcessor`: a bare `size` is a square; never cropped.
    Blip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resize {
    ShortestEdge(u32),
    /// (height, width)
    Exact(u32, u32),
}

/// Turns images into the pixel tensor a vision tower expects.
#[derive(Debug, Clone)]
pub struct ImagePreprocessor {
    resize: Option<Resize>,
    crop: Option<(u32, u32)>,
    filter: ResizeAlg,
    rescale: Option<f32>,
    normalize: Option<([f32; 3], [f32; 3])>,
    /// The (height, width) of the output.
    pub output: (u32, u32),
}

impl ImagePreprocessor {
    pub fn from_file(path: &Path, image_size: usize, kind: ProcessorKind) -> Result<Self, ModelError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Files(format!("cannot read {file}: {e}")))?;
        Self::from_json(&text, &file, image_size, kind)
    }

    /// The preprocessing of a model directory found by [`ModelFiles::find`] for a kind that
    /// needs one.
    pub fn for_model(files: &ModelFiles, image_size: usize, kind: ProcessorKind) -> Result<Self, ModelError> {
        let path = files
            .preprocessor
            .as_deref()
            .ok_or_else(|| ModelError::Files(format!("{} has no preprocessor_config.json", files.dir.display())))?;
        Self::from_file(path, image_size, kind)
    }

    /// `image_size` is the vision tower's input size, used when the config gives none.
    pub fn from_json(json: &str, file: &str, image_size: usize, kind: ProcessorKind) -> Result<Self, ModelError> {
        let bad = |m: String| ModelError::Config {
            file: file.into(),
            message: m,
        };
        let raw: Raw = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let size = image_size as u32;
        let resize = raw.do_resize.then_some(match (raw.size, kind) {
            (Some(Size::Square(s)), ProcessorKind::Clip) | (Some(Size::Shortest { shortest_edge: s }), _) => {
                Resize::ShortestEdge(s)
            }
            (Some(Size::Square(s)), ProcessorKind::Blip) => Resize::Exact(s, s),
            (Some(Size::Hw { height, width }), _) => Resize::Exact(height, width),
            (None, ProcessorKind::Clip) => Resize::ShortestEdge(size),
            (None, ProcessorKind::Blip) => Resize::Exact(size, size),
        });
        let crop_size = match raw.crop_size {
            Some(Size::Square(s) | Size::Shortest { shortest_edge: s }) => (s, s),
            Some(Size::Hw { height, width }) => (height, width),
            None => (size, size),
        };
        let crop = (raw.do_center_crop && kind == ProcessorKind::Clip).then_some(crop_size);
        let filter = match raw.resample {
            0 => ResizeAlg::Nearest,
            1 => ResizeAlg::Convolution(FilterType::Lanczos3),
            2 => ResizeAlg::Convolution(FilterType::Bilinear),
            3 => ResizeAlg::Convolution(FilterType::CatmullRom),
            other => return Err(bad(format!("resample {other} is not supported (0, 1, 2 or 3)"))),
        };
        let three = |v: &[f32], what: &str| -> Result<[f32; 3], ModelError> {
            v.try_into()
                .map_err(|_| bad(format!("{what} needs 3 values, got {}", v.len())))
        };
        let normalize = if raw.do_normalize {
            let std = three(&raw.image_std, "image_std")?;
            if std.iter().any(|s| *s <= 0.0) {
                return Err(bad("image_std values must be positive".into()));
            }
            Some((three(&raw.image_mean, "image_mean")?, std))
        } else {
            None
        };
        let output = match (crop, resize) {
            (Some(c), _) => c,
            (None, Some(Resize::Exact(h, w))) => (h, w),
            _ => {
                return Err(bad(
                    "without a center crop or a resize to height x width, images keep their own sizes; \
                     the vision tower needs a fixed size"
                        .into(),
                ));
            }
        };
        if output != (size, size) {
            return Err(bad(format!(
                "images come out {}x{} but the vision tower takes {size}x{size}",
                output.1, output.0
            )));
        }
        Ok(ImagePreprocessor {
            resize,
            crop,
            filter,
            rescale: raw.do_rescale.then_some(raw.rescale_factor),
            normalize,
            output,
        })
    }

    /// The (batch, 3, height, width) pixel tensor of `images`, as `dtype` on `device`.
    pub fn batch(
        &self,
        images: &[impl Borrow<DynamicImage> + Sync],
        device: &candle_core::Device,
        dtype: candle_core::DType,
    ) -> candle_core::Result<candle_core::Tensor> {
        let (h, w) = self.output;
        // Each image is resized and normalised on its own thread (on a GPU this is most of the
        // CPU's share of an embedding).
        let mut flat = vec![0f32; images.len() * 3 * (h * w) as usize];
        flat.par_chunks_mut(3 * (h * w) as usize)
            .zip(images.par_iter())
            .for_each(|(out, img)| out.copy_from_slice(&self.pixels(img.borrow())));
        candle_core::Tensor::from_vec(flat, (images.len(), 3, h as usize, w as usize), device)?.to_dtype(dtype)
    }

    /// CHW pixels of one image.
    pub fn pixels(&self, img: &DynamicImage) -> Vec<f32> {
        let mut rgb = img.to_rgb8();
        let (w, h) = rgb.dimensions();
        let (nw, nh) = match self.resize {
            None => (w, h),
            Some(Resize::Exact(height, width)) => (width, height),
            Some(Resize::ShortestEdge(edge)) if w <= h => (edge, ((edge as u64 * h as u64) / w as u64).max(1) as u32),
            Some(Resize::ShortestEdge(edge)) => (((edge as u64 * w as u64) / h as u64).max(1) as u32, edge),
        };
        if (nw, nh) != (w, h) {
            rgb = resize(rgb, nw, nh, self.filter);
        }
        let (ch, cw) = self.crop.unwrap_or((rgb.height(), rgb.width()));
        let (w, h) = rgb.dimensions();
        // transformers: top = (height - crop_height) // 2; a smaller image is padded with zeros.
        let top = (h as i64 - ch as i64).div_euclid(2);
        let left = (w as i64 - cw as i64).div_euclid(2);
        let (oh, ow) = (ch as usize, cw as usize);
        let mut out = vec![0f32; 3 * oh * ow];
        for y in 0..oh {
            for x in 0..ow {
                let (sy, sx) = (top + y as i64, left + x as i64);
                let px = if sy >= 0 && sx >= 0 && (sy as u32) < h && (sx as u32) < w {
                    rgb.get_pixel(sx as u32, sy as u32).0
                } else {
                    [0, 0, 0]
                };
                for c in 0..3 {
                    let mut v = f32::from(px[c]);
                    if let Some(f) = self.rescale {
                        v *= f;
                    }
                    if let Some((mean, std)) = &self.normalize {
                        v = (v - mean[c]) / std[c];
                    }
                    out[c * oh * ow + y * ow + x] = v;
                }
            }
        }
        out
    }
}

/// `rgb` resized to `w` x `h` with Pillow's convolution (what transformers' processors run).
fn resize(rgb: image::RgbImage, w: u32, h: u32, alg: ResizeAlg) -> image::RgbImage {
    let (sw, sh) = rgb.dimensions();
    if sw == 0 || sh == 0 {
        return image::RgbImage::new(w, h);
    }
    let src = fast_image_resize::images::Image::from_vec_u8(sw, sh, rgb.into_raw(), PixelType::U8x3)
        .expect("an RGB buffer has 3 bytes per pixel");
    let mut dst = fast_image_resize::images::Image::new(w, h, PixelType::U8x3);
    Resizer::new()
        .resize(&src, &mut dst, &ResizeOptions::new().resize_alg(alg))
        .expect("source and destination are both RGB8 and non-empty");
    image::RgbImage::from_raw(w, h, dst.into_vec()).expect("the destination holds w x h RGB pixels")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIP: &str = r#"{"crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 3, "size": 224}"#;

    #[test]
    fn odd_sizes_come_out_square() {
        let p = ImagePreprocessor::from_json(CLIP, "p.json", 224, ProcessorKind::Clip).unwrap();
        for (w, h) in [(1, 1), (640, 480), (33, 1000), (224, 224), (225, 223)] {
            let img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(w, h, image::Rgb([255, 0, 0])));
            let px = p.pixels(&img);
            assert_eq!(px.len(), 3 * 224 * 224, "{w}x{h}");
            // A red image normalises to the same value everywhere in each channel.
            let red = (1.0 - 0.481_454_66) / 0.268_629_54;
            assert!(
                (px[0] - red).abs() < 1e-3 && (px[224 * 224 - 1] - red).abs() < 1e-3,
                "{w}x{h}"
            );
        }
    }

    #[test]
    fn grayscale_and_rgba_become_rgb() {
        let p = ImagePreprocessor::from_json(CLIP, "p.json", 224, ProcessorKind::Clip).unwrap();
        let gray = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(10, 10, image::Luma([128])));
        let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(10, 10, image::Rgba([128, 128, 128, 0])));
        assert_eq!(p.pixels(&gray), p.pixels(&rgba));
    }

    #[test]
    fn a_wrong_crop_for_the_tower_is_refused() {
        let e = ImagePreprocessor::from_json(CLIP, "p.json", 336, ProcessorKind::Clip).unwrap_err();
        assert!(e.to_string().contains("vision tower takes 336x336"), "{e}");
        let e =
            ImagePreprocessor::from_json(r#"{"image_std": [1, 2]}"#, "p.json", 224, ProcessorKind::Clip).unwrap_err();
        assert!(e.to_string().contains("image_std needs 3 values"), "{e}");
    }

    /// BLIP's processor resizes to exactly height x width (aspect not kept) and never crops:
    /// a left half red, right half blue image keeps both halves.
    #[test]
    fn blip_resizes_to_the_square_without_cropping() {
        let blip = r#"{"do_normalize": true, "do_resize": true, "image_processor_type": "BlipImageProcessor",
            "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
            "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"height": 32, "width": 32}}"#;
        let p = ImagePreprocessor::from_json(blip, "p.json", 32, ProcessorKind::Blip).unwrap();
        let img = image::RgbImage::from_fn(300, 60, |x, _| {
            if x < 150 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let px = p.pixels(&DynamicImage::ImageRgb8(img));
        assert_eq!(px.len(), 3 * 32 * 32);
        let red = (1.0 - 0.481_454_66) / 0.268_629_54;
        let no_red = (0.0 - 0.481_454_66) / 0.268_629_54;
        assert!((px[0] - red).abs() < 1e-3, "left edge red: {}", px[0]);
        assert!(
            (px[31] - no_red).abs() < 1e-3,
            "right edge blue (a crop would have cut it): {}",
            px[31]
        );
        // A bare size is a square for BLIP and the shortest edge for CLIP.
        let p = ImagePreprocessor::from_json(r#"{"size": 32}"#, "p.json", 32, ProcessorKind::Blip).unwrap();
        assert_eq!(p.output, (32, 32));
        let e = ImagePreprocessor::from_json(
            r#"{"size": 32, "do_center_crop": false}"#,
            "p.json",
            32,
            ProcessorKind::Clip,
        )
        .unwrap_err();
        assert!(e.to_string().contains("fixed size"), "{e}");
    }
}
