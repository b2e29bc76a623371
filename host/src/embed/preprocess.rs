//! CLIP image preprocessing exactly as `preprocessor_config.json` describes it (transformers'
//! `CLIPImageProcessor`): RGB, resize the shortest edge (bicubic by default), center crop,
//! rescale, normalise with the given mean and std. Output: CHW f32.

use std::path::Path;

use image::DynamicImage;
use image::imageops::FilterType;
use serde::Deserialize;

use crate::models::ModelError;

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

/// Turns images into the pixel tensor a CLIP vision tower expects.
#[derive(Debug, Clone)]
pub struct ImagePreprocessor {
    shortest_edge: Option<u32>,
    crop: Option<(u32, u32)>,
    filter: FilterType,
    rescale: Option<f32>,
    normalize: Option<([f32; 3], [f32; 3])>,
    /// The (height, width) of the output.
    pub output: (u32, u32),
}

impl ImagePreprocessor {
    pub fn from_file(path: &Path, image_size: usize) -> Result<Self, ModelError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Files(format!("cannot read {file}: {e}")))?;
        Self::from_json(&text, &file, image_size)
    }

    /// `image_size` is the vision tower's input size, used when the config gives none.
    pub fn from_json(json: &str, file: &str, image_size: usize) -> Result<Self, ModelError> {
        let bad = |m: String| ModelError::Config {
            file: file.into(),
            message: m,
        };
        let raw: Raw = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let size = image_size as u32;
        let shortest_edge = raw.do_resize.then(|| match raw.size {
            Some(Size::Square(s) | Size::Shortest { shortest_edge: s }) => s,
            Some(Size::Hw { height, width }) => height.min(width),
            None => size,
        });
        let crop_size = match raw.crop_size {
            Some(Size::Square(s) | Size::Shortest { shortest_edge: s }) => (s, s),
            Some(Size::Hw { height, width }) => (height, width),
            None => (size, size),
        };
        let crop = raw.do_center_crop.then_some(crop_size);
        let filter = match raw.resample {
            0 => FilterType::Nearest,
            1 => FilterType::Lanczos3,
            2 => FilterType::Triangle,
            3 => FilterType::CatmullRom,
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
        let output = crop.unwrap_or((size, size));
        if output != (size, size) {
            return Err(bad(format!(
                "images come out {}x{} but the vision tower takes {size}x{size}",
                output.1, output.0
            )));
        }
        Ok(ImagePreprocessor {
            shortest_edge,
            crop,
            filter,
            rescale: raw.do_rescale.then_some(raw.rescale_factor),
            normalize,
            output,
        })
    }

    /// CHW pixels of one image.
    pub fn pixels(&self, img: &DynamicImage) -> Vec<f32> {
        let mut rgb = img.to_rgb8();
        if let Some(edge) = self.shortest_edge {
            let (w, h) = rgb.dimensions();
            let (nw, nh) = if w <= h {
                (edge, ((edge as u64 * h as u64) / w as u64).max(1) as u32)
            } else {
                (((edge as u64 * w as u64) / h as u64).max(1) as u32, edge)
            };
            if (nw, nh) != (w, h) {
                rgb = image::imageops::resize(&rgb, nw, nh, self.filter);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    const CLIP: &str = r#"{"crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 3, "size": 224}"#;

    #[test]
    fn odd_sizes_come_out_square() {
        let p = ImagePreprocessor::from_json(CLIP, "p.json", 224).unwrap();
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
        let p = ImagePreprocessor::from_json(CLIP, "p.json", 224).unwrap();
        let gray = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(10, 10, image::Luma([128])));
        let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(10, 10, image::Rgba([128, 128, 128, 0])));
        assert_eq!(p.pixels(&gray), p.pixels(&rgba));
    }

    #[test]
    fn a_wrong_crop_for_the_tower_is_refused() {
        let e = ImagePreprocessor::from_json(CLIP, "p.json", 336).unwrap_err();
        assert!(e.to_string().contains("vision tower takes 336x336"), "{e}");
        let e = ImagePreprocessor::from_json(r#"{"image_std": [1, 2]}"#, "p.json", 224).unwrap_err();
        assert!(e.to_string().contains("image_std needs 3 values"), "{e}");
    }
}
