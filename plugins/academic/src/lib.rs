//! `academic`: papers judged on method, conclusions and data sources.
//!
//! Fusion: the blended relevance times `(1 + 0.1 · log10(1 + citations))` times a mild recency
//! factor `0.8 + 0.2 · decay(age)` with a half-life of `half_life_years` (config, 8), where the
//! age comes from `year` (an integer) or `published` (a date).

use mira_plugin_sdk::helpers::{blend_stages, by_language, exp_decay, number, render_fields};
use mira_plugin_sdk::math;
use mira_plugin_sdk::{Candidate, Description, FuseError, Plugin, Request, config_or, register};

pub struct Academic;

pub const INSTRUCTION_EN: &str = "Given a research question, judge whether the paper addresses it, considering its method, conclusions and data sources";
pub const INSTRUCTION_ZH: &str = "判断论文是否回答了研究问题，考虑其研究方法、结论与数据来源";

const YEAR_SECS: f64 = 365.25 * 86_400.0;

/// The paper's age in seconds at `now`, from `published` or `year`.
fn age_secs(c: &Candidate, now: i64) -> Option<f64> {
    if let Some(published) = number(c, "published") {
        return Some(now as f64 - published);
    }
    number(c, "year").map(|y| (now as f64 / YEAR_SECS + 1970.0 - y) * YEAR_SECS)
}

impl Plugin for Academic {
    fn describe() -> Description {
        let mut d = Description::new(
            "academic",
            env!("CARGO_PKG_VERSION"),
            &["academic", "papers", "research"],
        );
        d.rerank_window = 30;
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
                "authors",
                "venue",
                "year",
                "abstract",
                "method",
                "conclusions",
                "data",
            ],
        )
    }

    const FUSE_FIELDS: &'static [&'static str] = &["citations", "published", "year"];

    fn fuse_rows(req: &Request, candidates: &[Candidate]) -> Result<Vec<f32>, FuseError> {
        let half_life_years: f64 = config_or("half_life_years", 8.0);
        let base = blend_stages(candidates, 0.7);
        Ok(candidates
            .iter()
            .zip(base)
            .map(|(c, b)| {
                let citations = math::max(number(c, "citations").unwrap_or(0.0), 0.0);
                let recency =
                    age_secs(c, req.now).map_or(1.0, |a| 0.8 + 0.2 * exp_decay(a, half_life_years * YEAR_SECS));
                (f64::from(b) * (1.0 + 0.1 * math::log10(1.0 + citations)) * recency) as f32
            })
            .collect())
    }
}

register!(Academic);

#[cfg(test)]
mod tests {
    use mira_plugin_sdk::{Field, FieldValue};

    use super::*;

    fn paper(citations: i64, year: i64) -> Candidate {
        let fields = vec![
            Field::new("citations", FieldValue::Integer(citations)),
            Field::new("year", FieldValue::Integer(year)),
        ];
        Candidate::new("x", fields, 1.0)
    }

    #[test]
    fn citations_and_recency() {
        let now = 1_767_225_600; // 2026-01-01
        let req = Request {
            query: "graph neural networks".into(),
            has_image_query: false,
            scenario: None,
            params: vec![],
            now,
        };
        let s = Academic::fuse_rows(&req, &[paper(1000, 2025), paper(0, 2025), paper(1000, 1990)]).unwrap();
        assert!(s[0] > s[1], "{s:?}");
        assert!(s[0] > s[2], "{s:?}");
        // 1000 citations: 1 + 0.1 * log10(1001) ~ 1.3
        assert!((s[0] / s[1] - 1.3).abs() < 0.01, "{s:?}");
        assert_eq!(
            Academic::instruction(&Request {
                query: "图神经网络".into(),
                ..req
            }),
            INSTRUCTION_ZH
        );
    }
}
