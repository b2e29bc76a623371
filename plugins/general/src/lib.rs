//! `general`: a weighted fusion of every stage, with the weights set by the operator.
//!
//! `score = w_retrieval · minmax(retrieval) + w_bm25 · minmax(bm25) + w_vector · minmax(vector)
//!        + w_rerank · rerank`, where a stage missing for a candidate contributes 0 and, when no
//! candidate was reranked, the rerank weight moves to the retrieval score. Config keys:
//! `w_retrieval` (0.3), `w_bm25` (0), `w_vector` (0), `w_rerank` (0.7).

use mira_plugin_sdk::helpers::{by_language, min_max};
use mira_plugin_sdk::{Candidate, DEFAULT_INSTRUCTION, Description, FuseError, Plugin, Request, config_or, register};

pub struct General;

/// The default instruction, in Chinese for Chinese queries.
pub const INSTRUCTION_ZH: &str = "给定一个网络搜索查询，检索能够回答该查询的相关段落";

/// Min-max over the candidates that have the stage; 0 for those that do not.
fn stage(candidates: &[Candidate], get: impl Fn(&Candidate) -> Option<f32>) -> Vec<f32> {
    let present: Vec<f32> = candidates.iter().filter_map(&get).collect();
    let norm = min_max(&present);
    let mut it = norm.into_iter();
    candidates
        .iter()
        .map(|c| get(c).map_or(0.0, |_| it.next().unwrap_or(0.0)))
        .collect()
}

impl Plugin for General {
    fn describe() -> Description {
        Description::new("general", env!("CARGO_PKG_VERSION"), &["general", "default"])
    }

    fn instruction(req: &Request) -> String {
        by_language(&req.query, DEFAULT_INSTRUCTION, INSTRUCTION_ZH)
    }

    fn fuse_rows(_req: &Request, candidates: &[Candidate]) -> Result<Vec<f32>, FuseError> {
        let mut w_retrieval: f32 = config_or("w_retrieval", 0.3);
        let w_bm25: f32 = config_or("w_bm25", 0.0);
        let w_vector: f32 = config_or("w_vector", 0.0);
        let mut w_rerank: f32 = config_or("w_rerank", 0.7);
        for (name, w) in [
            ("w_retrieval", w_retrieval),
            ("w_bm25", w_bm25),
            ("w_vector", w_vector),
            ("w_rerank", w_rerank),
        ] {
            if !w.is_finite() || w < 0.0 {
                return Err(FuseError::InvalidInput(format!(
                    "config {name} must be a non-negative number"
                )));
            }
        }
        if candidates.iter().all(|c| c.scores.rerank.is_none()) {
            w_retrieval += w_rerank;
            w_rerank = 0.0;
        }
        let retrieval = stage(candidates, |c| Some(c.scores.retrieval));
        let bm25 = stage(candidates, |c| c.scores.bm25);
        let vector = stage(candidates, |c| c.scores.vector);
        Ok(candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                w_retrieval * retrieval[i]
                    + w_bm25 * bm25[i]
                    + w_vector * vector[i]
                    + w_rerank * c.scores.rerank.unwrap_or(0.0)
            })
            .collect())
    }
}

register!(General);

#[cfg(test)]
mod tests {
    use mira_plugin_sdk::set_test_config;

    use super::*;

    fn cand(id: &str, retrieval: f32, bm25: Option<f32>, rerank: Option<f32>) -> Candidate {
        let mut c = Candidate::new(id, vec![], retrieval);
        c.scores.bm25 = bm25;
        c.scores.rerank = rerank;
        c
    }

    fn req() -> Request {
        Request {
            query: "q".into(),
            has_image_query: false,
            scenario: None,
            params: vec![],
            now: 0,
        }
    }

    #[test]
    fn weights_by_hand() {
        let c = [
            cand("a", 0.03, Some(10.0), Some(0.2)),
            cand("b", 0.01, Some(5.0), Some(0.9)),
        ];
        let s = General::fuse_rows(&req(), &c).unwrap();
        // retrieval minmax: a 1, b 0 -> a = .3 + .7*.2 = .44, b = .7*.9 = .63
        assert!((s[0] - 0.44).abs() < 1e-6 && (s[1] - 0.63).abs() < 1e-6, "{s:?}");
        set_test_config("w_bm25", "1");
        let s = General::fuse_rows(&req(), &c).unwrap();
        assert!((s[0] - 1.44).abs() < 1e-6, "{s:?}");
    }

    #[test]
    fn instruction_in_the_query_language() {
        assert_eq!(General::instruction(&req()), DEFAULT_INSTRUCTION);
        let zh = Request {
            query: "上海的天气".into(),
            ..req()
        };
        assert_eq!(General::instruction(&zh), INSTRUCTION_ZH);
    }

    #[test]
    fn without_rerank_the_retrieval_order_stands() {
        let c = [cand("a", 0.01, None, None), cand("b", 0.03, None, None)];
        assert_eq!(General::fuse_rows(&req(), &c).unwrap(), vec![0.0, 1.0]);
        set_test_config("w_rerank", "-1");
        assert!(General::fuse_rows(&req(), &c).is_err());
    }
}
