//! A plugin for the host's tests, built against the frozen `mira:ranking@0.1.0`
//! (`wit/0.1.0/ranking.wit`) with wit-bindgen alone, as plugins were built before 0.2: `fuse`
//! takes every candidate as a record. It ranks by a `rating` field it finds among all the
//! fields (0.1 plugins get every field), and its instruction says how many fields it saw.

wit_bindgen::generate!({
    world: "ranking-plugin",
    path: "../../../wit/0.1.0",
});

use exports::mira::ranking::plugin::Guest;
use mira::ranking::types::{Candidate, Description, FieldValue, FuseError, Request};

struct Legacy;

fn rating(c: &Candidate) -> f32 {
    c.fields
        .iter()
        .find_map(|f| match (&*f.name, &f.value) {
            ("rating", FieldValue::Number(x)) => Some(*x as f32),
            _ => None,
        })
        .unwrap_or(0.0)
}

impl Guest for Legacy {
    fn describe() -> Description {
        Description {
            name: "legacy".into(),
            version: "0.1.0".into(),
            scenarios: vec!["legacy".into()],
            rerank_window: 10,
            tag_vocabulary: vec![],
        }
    }

    fn instruction(_req: Request) -> String {
        "Judge whether the document answers the query (a mira:ranking@0.1.0 plugin)".into()
    }

    fn render(_req: Request, candidate: Candidate) -> String {
        format!("{} ({} fields)", candidate.id, candidate.fields.len())
    }

    fn rerank_depth(_req: Request, retrieval_scores: Vec<f32>) -> u32 {
        retrieval_scores.len().min(10) as u32
    }

    /// The rating first, retrieval breaking ties.
    fn fuse(_req: Request, candidates: Vec<Candidate>) -> Result<Vec<f32>, FuseError> {
        Ok(candidates
            .iter()
            .map(|c| rating(c) + c.scores.retrieval.clamp(0.0, 1.0) * 1e-3)
            .collect())
    }
}

#[cfg(target_arch = "wasm32")]
export!(Legacy);
