//! {{name}}: a Mira ranking plugin. Build with `mira plugin build .`, try it with
//! `mira plugin test {{name}}.wasm`, run its tests with `cargo test`.

use mira_plugin_sdk::helpers::{blend_stages, number};
use mira_plugin_sdk::{Candidate, Description, FuseError, Plugin, Request, register};

pub struct Scenario;

impl Plugin for Scenario {
    fn describe() -> Description {
        Description::new("{{name}}", env!("CARGO_PKG_VERSION"), &["{{name}}"])
    }

    fn instruction(_req: &Request) -> String {
        "Given a search query, judge whether the document answers it".into()
    }

    /// The reranker's P("yes") blended with retrieval, nudged by a `rating` field when present.
    const FUSE_FIELDS: &'static [&'static str] = &["rating"];

    fn fuse_rows(_req: &Request, candidates: &[Candidate]) -> Result<Vec<f32>, FuseError> {
        let base = blend_stages(candidates, 0.7);
        Ok(candidates
            .iter()
            .zip(base)
            .map(|(c, b)| {
                let rating = number(c, "rating").unwrap_or(3.0).clamp(0.0, 5.0);
                b * (0.9 + 0.02 * rating as f32)
            })
            .collect())
    }
}

register!(Scenario);

#[cfg(test)]
mod tests {
    use mira_plugin_sdk::{Field, FieldValue};

    use super::*;

    #[test]
    fn a_better_rating_ranks_first_at_equal_retrieval() {
        let item = |rating: f64| Candidate::new("x", vec![Field::new("rating", FieldValue::Number(rating))], 0.5);
        let req = Request {
            query: "q".into(),
            has_image_query: false,
            scenario: None,
            params: vec![],
            now: 0,
        };
        let s = Scenario::fuse_rows(&req, &[item(1.0), item(5.0)]).unwrap();
        assert!(s[1] > s[0], "{s:?}");
    }
}
