//! `ecommerce`: products judged on price, brand, function and reviews.
//!
//! Fusion: the blended relevance (reranker P(yes) when present, else retrieval) times a quality
//! factor: `(0.85 + 0.15 · rating/5) · (1 + 0.02 · log10(1 + reviews))`, times
//! `out_of_stock_penalty` (config, 0.6) when `in_stock` is false, times 0.5 when the price lies
//! outside the request's `min_price`/`max_price` parameters.

use mira_plugin_sdk::helpers::{blend_columns, by_language, param, render_fields};
use mira_plugin_sdk::math;
use mira_plugin_sdk::{Candidate, Candidates, Description, FuseError, Plugin, Request, config_or, register};

pub struct Ecommerce;

pub const INSTRUCTION_EN: &str = "Given a shopper's query, judge whether the product meets the need, considering price, brand, function and user reviews";
pub const INSTRUCTION_ZH: &str = "判断商品是否与查询需求相关，考虑价格、品牌、功能、用户评价等因素";

const TAGS: &[&str] = &[
    // colours
    "red",
    "blue",
    "green",
    "black",
    "white",
    "yellow",
    "pink",
    "grey",
    "brown",
    "purple",
    "orange",
    "beige",
    // materials
    "cotton",
    "silk",
    "leather",
    "denim",
    "wool",
    "linen",
    "polyester",
    "canvas",
    "suede",
    // garments and goods
    "dress",
    "t-shirt",
    "shirt",
    "jacket",
    "coat",
    "jeans",
    "trousers",
    "skirt",
    "sneakers",
    "boots",
    "sandals",
    "handbag",
    "backpack",
    "hat",
    "scarf",
    "watch",
    "sunglasses",
];

fn price_limit(req: &Request, key: &str) -> Result<Option<f64>, FuseError> {
    param(req, key)
        .map(|v| {
            v.parse::<f64>()
                .map_err(|_| FuseError::InvalidInput(format!("parameter {key} = `{v}` is not a number")))
        })
        .transpose()
}

impl Plugin for Ecommerce {
    fn describe() -> Description {
        let mut d = Description::new(
            "ecommerce",
            env!("CARGO_PKG_VERSION"),
            &["ecommerce", "shopping", "products"],
        );
        d.rerank_window = 40;
        d.tag_vocabulary = TAGS.iter().map(|t| (*t).to_owned()).collect();
        d
    }

    fn instruction(req: &Request) -> String {
        by_language(&req.query, INSTRUCTION_EN, INSTRUCTION_ZH)
    }

    fn render(_req: &Request, c: &Candidate) -> String {
        render_fields(
            c,
            &[
                "title",
                "title_zh",
                "brand",
                "category",
                "color",
                "price",
                "rating",
                "reviews",
                "in_stock",
                "description",
                "description_zh",
            ],
        )
    }

    const FUSE_FIELDS: &'static [&'static str] = &["price", "rating", "reviews", "in_stock"];

    /// Column-wise: the four fields above and the stage scores are all it reads.
    fn fuse(req: &Request, candidates: &Candidates) -> Result<Vec<f32>, FuseError> {
        let min_price = price_limit(req, "min_price")?;
        let max_price = price_limit(req, "max_price")?;
        let penalty: f64 = config_or("out_of_stock_penalty", 0.6);
        let base = blend_columns(candidates, 0.7);
        let (price, rating, reviews, in_stock) = (
            candidates.numbers("price"),
            candidates.numbers("rating"),
            candidates.numbers("reviews"),
            candidates.numbers("in_stock"),
        );
        let or = |x: f64, default: f64| if x.is_nan() { default } else { x };
        let out_of_range =
            |p: f64| !p.is_nan() && (min_price.is_some_and(|m| p < m) || max_price.is_some_and(|m| p > m));
        Ok(base
            .iter()
            .zip(price.iter().zip(rating.iter().zip(reviews.iter().zip(&in_stock))))
            .map(|(&base, (&price, (&rating, (&reviews, &in_stock))))| {
                let rating = or(rating, 3.0).clamp(0.0, 5.0);
                let reviews = math::max(or(reviews, 0.0), 0.0);
                let mut factor = (0.85 + 0.15 * rating / 5.0) * (1.0 + 0.02 * math::log10(1.0 + reviews));
                if in_stock == 0.0 {
                    factor *= penalty;
                }
                if out_of_range(price) {
                    factor *= 0.5;
                }
                (f64::from(base) * factor) as f32
            })
            .collect())
    }
}

register!(Ecommerce);

#[cfg(test)]
mod tests {
    use mira_plugin_sdk::{Field, FieldValue, Param};

    use super::*;

    fn product(retrieval: f32, price: f64, rating: f64, in_stock: bool) -> Candidate {
        let fields = vec![
            Field::new("title", FieldValue::Text("red silk dress".into())),
            Field::new("price", FieldValue::Number(price)),
            Field::new("rating", FieldValue::Number(rating)),
            Field::new("in_stock", FieldValue::Boolean(in_stock)),
        ];
        let mut c = Candidate::new("p", fields, retrieval);
        c.tags = vec!["red".into()];
        c.has_image = true;
        c
    }

    fn req(query: &str, params: &[(&str, &str)]) -> Request {
        Request {
            query: query.into(),
            has_image_query: false,
            scenario: Some("ecommerce".into()),
            params: params
                .iter()
                .map(|(k, v)| Param {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            now: 0,
        }
    }

    #[test]
    fn instruction_follows_the_query_language() {
        assert_eq!(Ecommerce::instruction(&req("红色连衣裙", &[])), INSTRUCTION_ZH);
        assert_eq!(Ecommerce::instruction(&req("red dress", &[])), INSTRUCTION_EN);
    }

    #[test]
    fn stock_rating_and_price_band() {
        let c = [
            product(1.0, 50.0, 5.0, true),
            product(1.0, 50.0, 5.0, false),
            product(1.0, 50.0, 1.0, true),
            product(1.0, 500.0, 5.0, true),
        ];
        let c = Candidates::from_rows(&c, Ecommerce::FUSE_FIELDS);
        let s = Ecommerce::fuse(&req("dress", &[("max_price", "100")]), &c).unwrap();
        assert!(s[0] > s[2] && s[2] > s[1], "{s:?}");
        assert!((s[3] - s[0] * 0.5).abs() < 1e-6, "{s:?}");
        assert!(Ecommerce::fuse(&req("dress", &[("max_price", "cheap")]), &c).is_err());
    }

    #[test]
    fn render_reads_like_a_product_card() {
        let text = Ecommerce::render(&req("x", &[]), &product(1.0, 50.0, 4.5, true));
        assert_eq!(
            text,
            "title: red silk dress\nprice: 50\nrating: 4.5\nin_stock: true\ntags: red"
        );
    }
}
