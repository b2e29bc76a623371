//! Image files at the edge of the engine: size limits are checked on the header, before any
//! pixel is decoded, so a decompression bomb costs nothing; a corrupt file is an error, not a panic.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

/// Opens, checks and decodes an image, refusing more than `max_pixels` before decoding.
pub fn decode(path: &Path, max_pixels: u64) -> Result<DynamicImage, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot open image {}: {e}", path.display()))?;
    decode_bytes(&bytes, &path.display().to_string(), max_pixels)
}

/// Decodes image files ([`decode`] each, on the CPU's threads), in order; the first in order
/// that fails is the error.
pub fn decode_all(paths: &[&Path], max_pixels: u64) -> Result<Vec<DynamicImage>, String> {
    use rayon::prelude::*;
    let decoded: Vec<Result<DynamicImage, String>> = paths.par_iter().map(|p| decode(p, max_pixels)).collect();
    decoded.into_iter().collect()
}

/// Checks and decodes an image held in memory (`name` is what errors call it), refusing more
/// than `max_pixels` before decoding.
pub fn decode_bytes(bytes: &[u8], name: &str, max_pixels: u64) -> Result<DynamicImage, String> {
    let header = check_header(bytes, name, max_pixels)?;
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read image {name}: {e}"))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(header.width);
    limits.max_image_height = Some(header.height);
    reader.limits(limits);
    let corrupt = |e: image::ImageError| format!("corrupt image {name}: {e}");
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    // Cameras store the orientation in EXIF; the pixels are as the sensor saw them.
    let orientation = decoder.orientation().map_err(corrupt)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// What an image's header says.
#[derive(Debug, Clone, Copy)]
pub struct ImageHeader {
    pub width: u32,
    pub height: u32,
    /// The usual file extension of its format (`png`, `jpg`).
    pub extension: &'static str,
}

/// Checks an image's format and size from its header alone (no pixel is decoded), refusing
/// more than `max_pixels`.
pub fn check_header(bytes: &[u8], name: &str, max_pixels: u64) -> Result<ImageHeader, String> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read image {name}: {e}"))?;
    let extension = match reader.format() {
        Some(image::ImageFormat::Png) => "png",
        Some(image::ImageFormat::Jpeg) => "jpg",
        _ => return Err(format!("{name} is not an image in a supported format (PNG, JPEG)")),
    };
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| format!("corrupt image {name}: {e}"))?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(format!(
            "image {name} is {width}x{height} = {pixels} pixels, over the limit of {max_pixels}"
        ));
    }
    Ok(ImageHeader {
        width,
        height,
        extension,
    })
}

/// Checks that an image can be decoded within the pixel limit; returns its size.
pub fn check(path: &Path, max_pixels: u64) -> Result<(u32, u32), String> {
    let img = decode(path, max_pixels)?;
    Ok((img.width(), img.height()))
}
