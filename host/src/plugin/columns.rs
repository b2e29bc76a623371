//! Candidates column-wise, as `mira:ranking@0.2` passes them to `fuse`: every stage's scores as
//! lists, and only the fields the plugin named in `fuse-fields`. Lists of numbers cross the
//! component boundary as one copy each, where a list of candidate records costs a call per
//! field and string.

use super::wit::{Candidate, Candidates, Column, FieldColumn, FieldValue, StageColumns};

/// Most names a plugin may list in `fuse-fields`.
pub(crate) const MAX_FUSE_FIELDS: usize = 64;
/// Longest name in `fuse-fields`, in bytes.
pub(crate) const MAX_FIELD_NAME: usize = 256;

/// The columns of `rows` for a plugin that reads `fields`.
pub fn of(rows: &[Candidate], fields: &[String]) -> Candidates {
    let n = rows.len();
    let opt = |v: Option<f32>| v.unwrap_or(f32::NAN);
    let scores = StageColumns {
        bm25: rows.iter().map(|c| opt(c.scores.bm25)).collect(),
        bm25_rank: rows.iter().map(|c| c.scores.bm25_rank.unwrap_or(0)).collect(),
        vector: rows.iter().map(|c| opt(c.scores.vector)).collect(),
        vector_rank: rows.iter().map(|c| c.scores.vector_rank.unwrap_or(0)).collect(),
        retrieval: rows.iter().map(|c| c.scores.retrieval).collect(),
        retrieval_rank: rows.iter().map(|c| c.scores.retrieval_rank).collect(),
        rerank: rows.iter().map(|c| opt(c.scores.rerank)).collect(),
    };
    Candidates {
        count: n as u32,
        scores,
        has_image: rows.iter().map(|c| u8::from(c.has_image)).collect(),
        fields: fields.iter().map(|name| column(rows, name)).collect(),
    }
}

fn column(rows: &[Candidate], name: &str) -> FieldColumn {
    let mut missing = Vec::new();
    let values: Vec<Option<&FieldValue>> = rows
        .iter()
        .map(|c| c.fields.iter().find(|f| f.name == name).map(|f| &f.value))
        .collect();
    let strings = |f: &dyn Fn(&Candidate) -> Option<String>, missing: &mut Vec<u32>| {
        Column::Strings(
            rows.iter()
                .enumerate()
                .map(|(i, c)| {
                    f(c).unwrap_or_else(|| {
                        missing.push(i as u32);
                        String::new()
                    })
                })
                .collect(),
        )
    };
    let values = match name {
        "id" => strings(&|c| Some(c.id.clone()), &mut missing),
        "tags" if values.iter().all(Option::is_none) => {
            strings(&|c| (!c.tags.is_empty()).then(|| c.tags.join(", ")), &mut missing)
        }
        "caption" if values.iter().all(Option::is_none) => strings(&|c| c.caption.clone(), &mut missing),
        _ => typed(&values, &mut missing),
    };
    FieldColumn {
        name: name.to_owned(),
        values,
        missing,
    }
}

/// A column of the kind of the first value present.
fn typed(values: &[Option<&FieldValue>], missing: &mut Vec<u32>) -> Column {
    missing.extend(
        values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_none())
            .map(|(i, _)| i as u32),
    );
    let each =
        |f: &dyn Fn(&FieldValue) -> Option<f64>| values.iter().map(|v| v.and_then(f).unwrap_or(f64::NAN)).collect();
    match values.iter().flatten().next() {
        None | Some(FieldValue::Number(_)) => Column::Numbers(each(&|v| match v {
            FieldValue::Number(x) => Some(*x),
            _ => None,
        })),
        Some(FieldValue::Integer(_)) => Column::Integers(
            values
                .iter()
                .map(|v| match v {
                    Some(FieldValue::Integer(x)) => *x,
                    _ => 0,
                })
                .collect(),
        ),
        Some(FieldValue::Date(_)) => Column::Dates(
            values
                .iter()
                .map(|v| match v {
                    Some(FieldValue::Date(x)) => *x,
                    _ => 0,
                })
                .collect(),
        ),
        Some(FieldValue::Boolean(_)) => Column::Booleans(
            values
                .iter()
                .map(|v| u8::from(matches!(v, Some(FieldValue::Boolean(true)))))
                .collect(),
        ),
        Some(FieldValue::Text(_) | FieldValue::Keyword(_) | FieldValue::Facet(_)) => Column::Strings(
            values
                .iter()
                .map(|v| match v {
                    Some(FieldValue::Text(s) | FieldValue::Keyword(s) | FieldValue::Facet(s)) => s.clone(),
                    _ => String::new(),
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::wit::{Field, StageScores};
    use super::*;

    fn row(id: &str, fields: Vec<(&str, FieldValue)>, rerank: Option<f32>) -> Candidate {
        Candidate {
            id: id.into(),
            fields: fields
                .into_iter()
                .map(|(n, value)| Field { name: n.into(), value })
                .collect(),
            scores: StageScores {
                bm25: Some(2.0),
                bm25_rank: Some(1),
                vector: None,
                vector_rank: None,
                retrieval: 0.5,
                retrieval_rank: 1,
                rerank,
            },
            tags: vec!["red".into(), "silk".into()],
            caption: None,
            has_image: true,
        }
    }

    #[test]
    fn columns_keep_order_kinds_and_missing_values() {
        let rows = [
            row(
                "a",
                vec![("price", FieldValue::Number(9.5)), ("stock", FieldValue::Boolean(true))],
                Some(0.9),
            ),
            row(
                "b",
                vec![("stock", FieldValue::Boolean(false)), ("n", FieldValue::Integer(7))],
                None,
            ),
        ];
        let names: Vec<String> = ["price", "stock", "n", "absent", "id", "tags"].map(String::from).into();
        let c = of(&rows, &names);
        assert_eq!(c.count, 2);
        assert!(c.scores.rerank[0] == 0.9 && c.scores.rerank[1].is_nan());
        assert!(c.scores.vector.iter().all(|v| v.is_nan()));
        assert_eq!(c.scores.vector_rank, [0, 0]);
        assert_eq!(c.has_image, [1, 1]);
        let f = |i: usize| (&c.fields[i].values, &c.fields[i].missing);
        assert!(matches!(f(0), (Column::Numbers(v), m) if v[0] == 9.5 && v[1].is_nan() && m == &[1]));
        assert!(matches!(f(1), (Column::Booleans(v), m) if v == &[1, 0] && m.is_empty()));
        assert!(matches!(f(2), (Column::Integers(v), m) if v == &[0, 7] && m == &[0]));
        assert!(matches!(f(3), (Column::Numbers(v), m) if v.iter().all(|x| x.is_nan()) && m == &[0, 1]));
        assert!(matches!(f(4), (Column::Strings(v), _) if v == &["a", "b"]));
        assert!(matches!(f(5), (Column::Strings(v), _) if v == &["red, silk", "red, silk"]));
    }
}
