//! The conversion into the WIT types a plugin receives, made only at the plugin call: the
//! stages themselves work on [`Candidate`] records.

use super::candidate::{Candidate, CandidateFields, StoredValue};
use super::plan::SearchPlan;
use crate::plugin::wit;

/// The request as a plugin sees it.
pub(crate) fn request(plan: &SearchPlan<'_>) -> wit::Request {
    let req = plan.request;
    wit::Request {
        query: req.text.clone().unwrap_or_default(),
        has_image_query: req.image.is_some() || req.image_bytes.is_some(),
        scenario: req.scenario.clone(),
        params: req
            .params
            .iter()
            .map(|(k, v)| wit::Param {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        now: plan.now,
    }
}

/// A candidate as a plugin sees it: its typed fields and every stage's score so far.
pub(crate) fn candidate(id: String, fields: &CandidateFields, c: &Candidate) -> wit::Candidate {
    let bm25 = c.stage("bm25");
    let vector = c.stage("vector");
    wit::Candidate {
        id,
        fields: fields
            .fields
            .iter()
            .map(|(name, value)| wit::Field {
                name: name.clone(),
                value: match value {
                    StoredValue::Text(s) => wit::FieldValue::Text(s.clone()),
                    StoredValue::Keyword(s) => wit::FieldValue::Keyword(s.clone()),
                    StoredValue::Facet(s) => wit::FieldValue::Facet(s.clone()),
                    StoredValue::Number(x) => wit::FieldValue::Number(*x),
                    StoredValue::Integer(x) => wit::FieldValue::Integer(*x),
                    StoredValue::Boolean(b) => wit::FieldValue::Boolean(*b),
                    StoredValue::Date(secs) => wit::FieldValue::Date(*secs),
                },
            })
            .collect(),
        scores: wit::StageScores {
            bm25: bm25.map(|x| x.raw),
            bm25_rank: bm25.map(|x| x.rank as u32),
            vector: vector.map(|x| x.raw),
            vector_rank: vector.map(|x| x.rank as u32),
            retrieval: c.retrieval.score,
            retrieval_rank: c.retrieval_rank as u32,
            rerank: c.rerank.as_ref().map(|r| r.p_yes),
        },
        tags: fields.tags.clone(),
        caption: (!fields.captions.is_empty()).then(|| fields.captions.join("\n")),
        has_image: fields.has_image,
    }
}
