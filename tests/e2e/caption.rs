//! BLIP captions on tiny random-weight models in the Hugging Face layout, through the same
//! loading code as real checkpoints: batch = single, length limit, bad model directories, and
//! captions filled at ingest (BM25-searchable, cached, a row's own caption kept), the CLI.

use std::path::Path;

use image::DynamicImage;
use mira_host::caption::Captioner;
use mira_host::caption::fixtures::write_tiny_blip;
use mira_host::models::{ModelDType, parse_device};

use crate::common::Env;

fn load(dir: &Path) -> Captioner {
    Captioner::load(dir, &parse_device("cpu").unwrap(), ModelDType::F32).unwrap()
}

/// Pictures that differ in colour and layout.
fn pictures() -> Vec<DynamicImage> {
    (0..5u32)
        .map(|i| {
            DynamicImage::ImageRgb8(image::RgbImage::from_fn(40 + i * 13, 30 + i * 7, |x, y| {
                image::Rgb([
                    ((x * (i + 1) * 9) % 256) as u8,
                    ((y * 31 + i * 50) % 256) as u8,
                    ((x + y) * i % 256) as u8,
                ])
            }))
        })
        .collect()
}

#[test]
fn a_batch_captions_as_one_image_at_a_time() {
    let env = Env::new();
    let dir = env.path().join("blip");
    write_tiny_blip(&dir).unwrap();
    let blip = load(&dir);
    let images = pictures();
    let batch = blip.caption_ids(&images, 12).unwrap();
    for (img, ids) in images.iter().zip(&batch) {
        let single = blip.caption_ids(std::slice::from_ref(img), 12).unwrap();
        assert_eq!(&single[0], ids);
        assert!(ids.len() <= 12);
    }
}
