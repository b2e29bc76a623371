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

/// A candidate as a plugin sees it: its typed fields and every stage's score so far. With
/// `only`, the names a 0.2 plugin's `fuse` reads, the record holds just those fields (and its
/// id, tags and caption only when named): what [`crate::plugin::columns::of`] turns into the
/// same columns as from the whole record.
pub(crate) fn candidate(
    id: String,
    fields: &CandidateFields,
    c: &Candidate,
    only: Option<&[String]>,
) -> wit::Candidate {
    let bm25 = c.stage("bm25");
    let vector = c.stage("vector");
    let wanted = |name: &str| only.is_none_or(|names| names.iter().any(|n| n == name));
    wit::Candidate {
        id: if wanted("id") { id } else { String::new() },
        fields: fields
            .fields
            .iter()
            .filter(|(name, _)| wanted(name))
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
        tags: if wanted("tags") {
            fields.tags.clone()
        } else {
            Vec::new()
        },
        caption: (wanted("caption") && !fields.captions.is_empty()).then(|| fields.captions.join("\n")),
        has_image: fields.has_image,
    }
}

#[cfg(test)]
mod tests {
    use tantivy::DocAddress;

    use super::*;
    use crate::search::fusion::{Contribution, Fused};

    /// The slim records a 0.2 plugin's `fuse` is given make the same columns as whole records,
    /// for every kind of name it may ask for (a field, one absent, `id`, `tags`, `caption`).
    #[test]
    fn slim_records_make_the_same_columns_as_whole_ones() {
        // Candidate 3 also has stored fields named like the pseudo-fields (a number `tags` stays
        // among the fields; a text `id` too).
        let fields = |i: i64| CandidateFields {
            fields: [
                ("title".into(), StoredValue::Text(format!("dress {i}"))),
                ("price".into(), StoredValue::Number(9.5 * i as f64)),
                ("reviews".into(), StoredValue::Integer(i)),
                ("in_stock".into(), StoredValue::Boolean(i % 2 == 0)),
            ]
            .into_iter()
            .chain((i == 3).then(|| ("tags".into(), StoredValue::Integer(7))))
            .chain((i == 3).then(|| ("id".into(), StoredValue::Text("stored".into()))))
            .collect(),
            tags: vec!["red".into(), format!("tag{i}")],
            captions: if i == 1 { vec![] } else { vec!["a dress".into()] },
            has_image: i != 2,
        };
        let cand = |i: u32| {
            Candidate::new(
                Fused {
                    key: DocAddress::new(0, i),
                    score: 1.0 / (61.0 + i as f32),
                    contributions: vec![Contribution {
                        list: "bm25".into(),
                        weight: 1.0,
                        raw: 3.0 - i as f32,
                        rank: i as usize + 1,
                        value: 0.1,
                    }],
                },
                i as usize + 1,
            )
        };
        let (fs, cs): (Vec<_>, Vec<_>) = (0..4).map(|i| (fields(i as i64), cand(i))).unzip();
        let names: Vec<String> = [
            "price", "reviews", "in_stock", "title", "absent", "id", "tags", "caption",
        ]
        .map(String::from)
        .into();
        for asked in [&names[..], &names[..2], &names[5..6], &[]] {
            let whole: Vec<wit::Candidate> = (0..4)
                .map(|i| candidate(format!("p{i}"), &fs[i], &cs[i], None))
                .collect();
            let slim: Vec<wit::Candidate> = (0..4)
                .map(|i| candidate(format!("p{i}"), &fs[i], &cs[i], Some(asked)))
                .collect();
            let (a, b) = (
                crate::plugin::columns::of(&whole, asked),
                crate::plugin::columns::of(&slim, asked),
            );
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "asking for {asked:?}");
            assert!(slim.iter().all(|c| c.fields.len() <= asked.len()));
        }
    }
}
