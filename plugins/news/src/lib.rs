//! `news`: articles judged on timeliness, authority and stance.
//!
//! Fusion: the blended relevance times `0.3 + 0.7 · decay(now - published)` with a half-life of
//! `half_life_hours` (config, 72), times `0.8 + 0.2 · authority` where `authority` is a field in
//! [0, 1] (absent: 0.5).

use mira_plugin_sdk::helpers::{blend_stages, by_language, exp_decay, number, render_fields};
use mira_plugin_sdk::{Candidate, Description, FuseError, Plugin, Request, config_or, register};

pub struct News;

pub const INSTRUCTION_EN: &str = "Given a news query, judge whether the article reports on it, considering timeliness, the authority of the source and its stance";
pub const INSTRUCTION_ZH: &str = "判断新闻报道是否与查询相关，考虑时效性、来源权威性与报道立场";

impl Plugin for News {
    fn describe() -> Description {
        let mut d = Description::new("news", env!("CARGO_PKG_VERSION"), &["news"]);
        d.rerank_window = 30;
        d
    }

    fn instruction(req: &Request) -> String {
        by_language(&req.query, INSTRUCTION_EN, INSTRUCTION_ZH)
    }

    fn render(_req: &Request, c: &Candidate) -> String {
        render_fields(c, &["title", "source", "published", "summary", "body"])
    }

    const FUSE_FIELDS: &'static [&'static str] = &["published", "authority"];

    fn fuse_rows(req: &Request, candidates: &[Candidate]) -> Result<Vec<f32>, FuseError> {
        let half_life_hours: f64 = config_or("half_life_hours", 72.0);
        if !half_life_hours.is_finite() || half_life_hours <= 0.0 {
            return Err(FuseError::InvalidInput(
                "config half_life_hours must be positive".into(),
            ));
        }
        let base = blend_stages(candidates, 0.7);
        Ok(candidates
            .iter()
            .zip(base)
            .map(|(c, b)| {
                let freshness =
                    number(c, "published").map_or(0.5, |p| exp_decay(req.now as f64 - p, half_life_hours * 3600.0));
                let authority = number(c, "authority").unwrap_or(0.5).clamp(0.0, 1.0);
                (f64::from(b) * (0.3 + 0.7 * freshness) * (0.8 + 0.2 * authority)) as f32
            })
            .collect())
    }
}

register!(News);

#[cfg(test)]
mod tests {
    use mira_plugin_sdk::{Field, FieldValue};

    use super::*;

    fn article(published: i64, authority: f64) -> Candidate {
        let fields = vec![
            Field::new("published", FieldValue::Date(published)),
            Field::new("authority", FieldValue::Number(authority)),
        ];
        Candidate::new("a", fields, 1.0)
    }

    #[test]
    fn recency_decay_by_hand() {
        let now = 1_000_000;
        let req = Request {
            query: "storm".into(),
            has_image_query: false,
            scenario: None,
            params: vec![],
            now,
        };
        let s = News::fuse_rows(
            &req,
            &[article(now, 1.0), article(now - 72 * 3600, 1.0), article(now, 0.0)],
        )
        .unwrap();
        assert!((s[0] - 1.0).abs() < 1e-6, "{s:?}");
        assert!((s[1] - (0.3 + 0.7 * 0.5)).abs() < 1e-6, "{s:?}");
        assert!((s[2] - 0.8).abs() < 1e-6, "{s:?}");
        assert_eq!(
            News::instruction(&Request {
                query: "台风 最新消息".into(),
                ..req
            }),
            INSTRUCTION_ZH
        );
    }
}
