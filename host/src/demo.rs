//! A generated product catalogue for `mira demo` and for tests: titles and descriptions in
//! English and Chinese, brands, categories, facets, prices, ratings, dates, and a drawn photo of
//! each product (its silhouette in its colour). Deterministic for a given seed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use serde_json::json;

use crate::error::{Error, Result};

/// The schema of the demo collection (`configs/products.toml`).
pub const PRODUCTS_SCHEMA: &str = include_str!("../../configs/products.toml");

/// Side of the drawn product photos, in pixels.
const IMAGE_SIZE: u32 = 96;

#[derive(Clone, Copy)]
enum Shape {
    Dress,
    Shirt,
    Jacket,
    Trousers,
    Shoe,
    Boot,
    Bag,
    Backpack,
    Hat,
    Scarf,
    Watch,
    Glasses,
}

struct Category {
    en: &'static str,
    zh: &'static str,
    facet: &'static str,
    shape: Shape,
    base_price: f64,
}

const CATEGORIES: &[Category] = &[
    Category {
        en: "dress",
        zh: "连衣裙",
        facet: "/clothing/dresses",
        shape: Shape::Dress,
        base_price: 60.0,
    },
    Category {
        en: "t-shirt",
        zh: "T恤",
        facet: "/clothing/tops",
        shape: Shape::Shirt,
        base_price: 20.0,
    },
    Category {
        en: "jacket",
        zh: "夹克",
        facet: "/clothing/outerwear",
        shape: Shape::Jacket,
        base_price: 110.0,
    },
    Category {
        en: "jeans",
        zh: "牛仔裤",
        facet: "/clothing/trousers",
        shape: Shape::Trousers,
        base_price: 55.0,
    },
    Category {
        en: "sneakers",
        zh: "运动鞋",
        facet: "/shoes/sneakers",
        shape: Shape::Shoe,
        base_price: 75.0,
    },
    Category {
        en: "boots",
        zh: "靴子",
        facet: "/shoes/boots",
        shape: Shape::Boot,
        base_price: 120.0,
    },
    Category {
        en: "handbag",
        zh: "手提包",
        facet: "/accessories/bags",
        shape: Shape::Bag,
        base_price: 90.0,
    },
    Category {
        en: "backpack",
        zh: "背包",
        facet: "/accessories/bags",
        shape: Shape::Backpack,
        base_price: 65.0,
    },
    Category {
        en: "hat",
        zh: "帽子",
        facet: "/accessories/hats",
        shape: Shape::Hat,
        base_price: 25.0,
    },
    Category {
        en: "scarf",
        zh: "围巾",
        facet: "/accessories/scarves",
        shape: Shape::Scarf,
        base_price: 30.0,
    },
    Category {
        en: "watch",
        zh: "手表",
        facet: "/accessories/watches",
        shape: Shape::Watch,
        base_price: 150.0,
    },
    Category {
        en: "sunglasses",
        zh: "太阳镜",
        facet: "/accessories/eyewear",
        shape: Shape::Glasses,
        base_price: 45.0,
    },
];

const COLORS: &[(&str, &str, [u8; 3])] = &[
    ("red", "红色", [200, 30, 40]),
    ("blue", "蓝色", [40, 80, 200]),
    ("green", "绿色", [40, 150, 70]),
    ("black", "黑色", [25, 25, 25]),
    ("white", "白色", [235, 235, 230]),
    ("yellow", "黄色", [240, 200, 40]),
    ("pink", "粉色", [240, 140, 180]),
    ("grey", "灰色", [128, 128, 128]),
    ("brown", "棕色", [120, 75, 40]),
    ("purple", "紫色", [120, 50, 160]),
];

const MATERIALS: &[(&str, &str, f64)] = &[
    ("cotton", "棉质", 1.0),
    ("silk", "真丝", 1.8),
    ("leather", "真皮", 2.0),
    ("denim", "牛仔布", 1.1),
    ("wool", "羊毛", 1.5),
    ("linen", "亚麻", 1.2),
    ("polyester", "涤纶", 0.8),
    ("canvas", "帆布", 0.9),
];

const STYLES: &[(&str, &str)] = &[
    ("casual", "休闲"),
    ("elegant", "优雅"),
    ("vintage", "复古"),
    ("sporty", "运动风"),
    ("classic", "经典"),
    ("minimalist", "简约"),
];

const BRANDS: &[&str] = &[
    "Aurora",
    "Northwind",
    "Lumen",
    "Kestrel",
    "Maple & Co",
    "Saffron",
    "Tidewater",
    "Ember",
];

const OCCASIONS: &[(&str, &str)] = &[
    ("the office", "通勤"),
    ("weekend trips", "周末出游"),
    ("evening parties", "晚宴派对"),
    ("everyday wear", "日常穿搭"),
    ("hiking and the outdoors", "户外徒步"),
    ("summer holidays", "夏日度假"),
];

/// What [`generate`] wrote.
pub struct DemoData {
    /// The products, one JSON object per line.
    pub jsonl: PathBuf,
    /// The product photos.
    pub images: PathBuf,
    pub products: usize,
}

/// Writes `n` products and their photos under `dir`.
pub fn generate(dir: &Path, n: usize, seed: u64) -> Result<DemoData> {
    let images = dir.join("images");
    let io = |what: &str, e| Error::io(format!("{what} {}", dir.display()), e);
    std::fs::create_dir_all(&images).map_err(|e| io("creating", e))?;
    let jsonl = dir.join("products.jsonl");
    let mut out = BufWriter::new(File::create(&jsonl).map_err(|e| io("writing in", e))?);
    let mut rng = fastrand::Rng::with_seed(seed);
    for i in 0..n {
        let cat = &CATEGORIES[rng.usize(..CATEGORIES.len())];
        let (color, color_zh, rgb) = COLORS[rng.usize(..COLORS.len())];
        let (material, material_zh, price_factor) = MATERIALS[rng.usize(..MATERIALS.len())];
        let (style, style_zh) = STYLES[rng.usize(..STYLES.len())];
        let (occasion, occasion_zh) = OCCASIONS[rng.usize(..OCCASIONS.len())];
        let brand = BRANDS[rng.usize(..BRANDS.len())];
        let price = (cat.base_price * price_factor * (0.6 + rng.f64() * 0.9) * 100.0).round() / 100.0;
        let rating = (25.0 + rng.f64() * 25.0).round() / 10.0;
        let id = format!("p{i:05}");
        let file = format!("{id}.png");
        draw(cat.shape, rgb, &mut rng)
            .save(images.join(&file))
            .map_err(|e| Error::io(format!("writing demo image {file}"), std::io::Error::other(e)))?;
        // Every third product has a second photo (the same item, shifted and shaded): several
        // images per document, each embedded; kNN matches a product by its closest photo.
        let photos = if i % 3 == 0 {
            let second = format!("{id}-2.png");
            let mut own = fastrand::Rng::with_seed(seed ^ (i as u64).wrapping_mul(0x9e37_79b9));
            let dim = rgb.map(|c| (u16::from(c) * 3 / 4) as u8);
            draw(cat.shape, dim, &mut own)
                .save(images.join(&second))
                .map_err(|e| Error::io(format!("writing demo image {second}"), std::io::Error::other(e)))?;
            json!([format!("images/{file}"), format!("images/{second}")])
        } else {
            json!(format!("images/{file}"))
        };
        let row = json!({
            "id": id,
            "title": format!("{brand} {style} {color} {material} {}", cat.en),
            "title_zh": format!("{brand} {style_zh}{color_zh}{material_zh}{}", cat.zh),
            "description": format!(
                "A {style} {} in {color} {material} by {brand}, made for {occasion}. Rated {rating} by {} shoppers.",
                cat.en, 1 + rng.u32(..2000)
            ),
            "description_zh": format!("{brand}出品的{style_zh}{color_zh}{material_zh}{}，适合{occasion_zh}。", cat.zh),
            "brand": brand,
            "category": cat.en,
            "color": color,
            "kind": cat.facet,
            "price": price,
            "rating": rating,
            "reviews": rng.u64(..5000),
            "in_stock": rng.f32() < 0.8,
            "released": format!("{}-{:02}-{:02}", 2022 + rng.u32(..4), 1 + rng.u32(..12), 1 + rng.u32(..28)),
            "image": photos,
        });
        writeln!(out, "{row}").map_err(|e| io("writing in", e))?;
    }
    out.flush().map_err(|e| io("writing in", e))?;
    Ok(DemoData {
        jsonl,
        images,
        products: n,
    })
}

/// Draws a product: its silhouette in its colour on a light background, lightly shaded.
fn draw(shape: Shape, rgb: [u8; 3], rng: &mut fastrand::Rng) -> RgbImage {
    let s = IMAGE_SIZE as f32;
    let shift = (rng.f32() - 0.5) * 0.1;
    let bg = 238 + rng.u8(..12);
    RgbImage::from_fn(IMAGE_SIZE, IMAGE_SIZE, |px, py| {
        let (x, y) = (px as f32 / s - shift, py as f32 / s);
        if inside(shape, x, y) {
            let shade = 0.85 + 0.15 * (1.0 - y);
            Rgb(rgb.map(|c| (f32::from(c) * shade).min(255.0) as u8))
        } else {
            Rgb([bg, bg, bg.saturating_sub(4)])
        }
    })
}

/// Whether the unit-square point (x right, y down) is inside the silhouette.
fn inside(shape: Shape, x: f32, y: f32) -> bool {
    let rect = |x0: f32, y0: f32, x1: f32, y1: f32| x >= x0 && x <= x1 && y >= y0 && y <= y1;
    let ellipse = |cx: f32, cy: f32, rx: f32, ry: f32| ((x - cx) / rx).powi(2) + ((y - cy) / ry).powi(2) <= 1.0;
    match shape {
        Shape::Dress => {
            let half = 0.12 + (y - 0.15) * 0.35;
            (0.15..=0.9).contains(&y) && (x - 0.5).abs() <= half
        }
        Shape::Shirt => rect(0.3, 0.25, 0.7, 0.85) || rect(0.12, 0.25, 0.88, 0.42),
        Shape::Jacket => (rect(0.28, 0.15, 0.72, 0.9) || rect(0.1, 0.15, 0.9, 0.8)) && !rect(0.49, 0.15, 0.51, 0.9),
        Shape::Trousers => rect(0.3, 0.1, 0.7, 0.3) || rect(0.3, 0.3, 0.47, 0.92) || rect(0.53, 0.3, 0.7, 0.92),
        Shape::Shoe => ellipse(0.5, 0.62, 0.35, 0.14) || rect(0.15, 0.62, 0.85, 0.72),
        Shape::Boot => rect(0.3, 0.15, 0.55, 0.7) || rect(0.3, 0.6, 0.8, 0.8),
        Shape::Bag => rect(0.2, 0.4, 0.8, 0.85) || (ellipse(0.5, 0.4, 0.2, 0.2) && !ellipse(0.5, 0.4, 0.14, 0.14)),
        Shape::Backpack => ellipse(0.5, 0.35, 0.28, 0.2) || rect(0.22, 0.35, 0.78, 0.88),
        Shape::Hat => ellipse(0.5, 0.68, 0.42, 0.08) || (ellipse(0.5, 0.68, 0.24, 0.36) && y <= 0.68),
        Shape::Scarf => ((x - y).abs() < 0.12 && (0.1..=0.9).contains(&y)) || rect(0.6, 0.6, 0.72, 0.95),
        Shape::Watch => ellipse(0.5, 0.5, 0.2, 0.2) || rect(0.42, 0.05, 0.58, 0.95),
        Shape::Glasses => ellipse(0.3, 0.5, 0.17, 0.12) || ellipse(0.7, 0.5, 0.17, 0.12) || rect(0.4, 0.46, 0.6, 0.5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_parses_and_data_is_deterministic() {
        crate::CollectionSchema::from_toml(PRODUCTS_SCHEMA, "products.toml").unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        generate(a.path(), 20, 7).unwrap();
        generate(b.path(), 20, 7).unwrap();
        let read = |d: &Path| std::fs::read_to_string(d.join("products.jsonl")).unwrap();
        assert_eq!(read(a.path()), read(b.path()));
        assert_eq!(read(a.path()).lines().count(), 20);
        let img = image::open(a.path().join("images/p00000.png")).unwrap();
        assert_eq!(img.width(), IMAGE_SIZE);
    }
}
