//! [`Candidates`] (the columns `fuse` receives) to and from candidate records: for plugins that
//! prefer rows, and for native tests, which build candidates and pass them as the host would.

use crate::{Candidate, Candidates, Column, Field, FieldColumn, FieldValue, StageColumns, StageScores};

fn some(x: f32) -> Option<f32> {
    (!x.is_nan()).then_some(x)
}

fn rank(r: u32) -> Option<u32> {
    (r != 0).then_some(r)
}

impl Candidates {
    /// The columns the host would send for `rows` to a plugin that reads `fields`: every stage's
    /// scores, and each named field's first value (`id`, `tags` and `caption` too).
    pub fn from_rows(rows: &[Candidate], fields: &[&str]) -> Candidates {
        let nan = |v: Option<f32>| v.unwrap_or(f32::NAN);
        Candidates {
            count: rows.len() as u32,
            scores: StageColumns {
                bm25: rows.iter().map(|c| nan(c.scores.bm25)).collect(),
                bm25_rank: rows.iter().map(|c| c.scores.bm25_rank.unwrap_or(0)).collect(),
                vector: rows.iter().map(|c| nan(c.scores.vector)).collect(),
                vector_rank: rows.iter().map(|c| c.scores.vector_rank.unwrap_or(0)).collect(),
                retrieval: rows.iter().map(|c| c.scores.retrieval).collect(),
                retrieval_rank: rows.iter().map(|c| c.scores.retrieval_rank).collect(),
                rerank: rows.iter().map(|c| nan(c.scores.rerank)).collect(),
            },
            has_image: rows.iter().map(|c| u8::from(c.has_image)).collect(),
            fields: fields.iter().map(|name| column(rows, name)).collect(),
        }
    }

    /// The candidates as records, with the fields the columns carry.
    pub fn rows(&self) -> Vec<Candidate> {
        let s = &self.scores;
        let n = self.count as usize;
        // Which candidates lack each field, as flags (`missing` lists them by index).
        let absent: Vec<Vec<bool>> = self
            .fields
            .iter()
            .map(|f| {
                let mut a = vec![false; n];
                for &i in &f.missing {
                    if let Some(x) = a.get_mut(i as usize) {
                        *x = true;
                    }
                }
                a
            })
            .collect();
        (0..n)
            .map(|i| {
                let mut c = Candidate {
                    id: String::new(),
                    fields: Vec::new(),
                    scores: StageScores {
                        bm25: some(s.bm25[i]),
                        bm25_rank: rank(s.bm25_rank[i]),
                        vector: some(s.vector[i]),
                        vector_rank: rank(s.vector_rank[i]),
                        retrieval: s.retrieval[i],
                        retrieval_rank: s.retrieval_rank[i],
                        rerank: some(s.rerank[i]),
                    },
                    tags: Vec::new(),
                    caption: None,
                    has_image: self.has_image[i] != 0,
                };
                for (f, absent) in self.fields.iter().zip(&absent) {
                    if absent[i] {
                        continue;
                    }
                    let value = match &f.values {
                        Column::Numbers(v) => FieldValue::Number(v[i]),
                        Column::Integers(v) => FieldValue::Integer(v[i]),
                        Column::Booleans(v) => FieldValue::Boolean(v[i] != 0),
                        Column::Dates(v) => FieldValue::Date(v[i]),
                        Column::Strings(v) => match f.name.as_str() {
                            "id" => {
                                c.id = v[i].clone();
                                continue;
                            }
                            "tags" => {
                                c.tags = v[i].split(", ").map(str::to_owned).collect();
                                continue;
                            }
                            "caption" => {
                                c.caption = Some(v[i].clone());
                                continue;
                            }
                            _ => FieldValue::Text(v[i].clone()),
                        },
                    };
                    c.fields.push(Field {
                        name: f.name.clone(),
                        value,
                    });
                }
                c
            })
            .collect()
    }

    /// A field's column, if the plugin asked for it.
    pub fn field(&self, name: &str) -> Option<&FieldColumn> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// A field as numbers (integers, booleans as 0/1 and dates as seconds too); NaN where a
    /// candidate has no value, or the field is not a number.
    pub fn numbers(&self, name: &str) -> Vec<f64> {
        let n = self.count as usize;
        let Some(f) = self.field(name) else {
            return vec![f64::NAN; n];
        };
        let mut out: Vec<f64> = match &f.values {
            Column::Numbers(v) => v.clone(),
            Column::Integers(v) | Column::Dates(v) => v.iter().map(|x| *x as f64).collect(),
            Column::Booleans(v) => v.iter().map(|x| f64::from(*x)).collect(),
            Column::Strings(_) => vec![f64::NAN; n],
        };
        for &i in &f.missing {
            if let Some(x) = out.get_mut(i as usize) {
                *x = f64::NAN;
            }
        }
        out
    }
}

fn column(rows: &[Candidate], name: &str) -> FieldColumn {
    let mut missing = Vec::new();
    let mut strings = |f: &dyn Fn(&Candidate) -> Option<String>| {
        let v = rows
            .iter()
            .enumerate()
            .map(|(i, c)| {
                f(c).unwrap_or_else(|| {
                    missing.push(i as u32);
                    String::new()
                })
            })
            .collect();
        Column::Strings(v)
    };
    let first = |c: &Candidate| c.fields.iter().find(|f| f.name == name).map(|f| f.value.clone());
    let values = match name {
        "id" => strings(&|c| Some(c.id.clone())),
        "tags" if rows.iter().all(|c| first(c).is_none()) => {
            strings(&|c| (!c.tags.is_empty()).then(|| c.tags.join(", ")))
        }
        "caption" if rows.iter().all(|c| first(c).is_none()) => strings(&|c| c.caption.clone()),
        _ => {
            let values: Vec<Option<FieldValue>> = rows.iter().map(first).collect();
            missing.extend(
                values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_none())
                    .map(|(i, _)| i as u32),
            );
            match values.iter().flatten().next() {
                None | Some(FieldValue::Number(_)) => Column::Numbers(
                    values
                        .iter()
                        .map(|v| match v {
                            Some(FieldValue::Number(x)) => *x,
                            _ => f64::NAN,
                        })
                        .collect(),
                ),
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
                Some(_) => Column::Strings(
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
    };
    FieldColumn {
        name: name.to_owned(),
        values,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_the_trip_through_columns() {
        let mut a = Candidate::new(
            "a",
            vec![
                Field::new("price", FieldValue::Number(9.5)),
                Field::new("stock", FieldValue::Boolean(true)),
            ],
            0.5,
        );
        a.scores.rerank = Some(0.25);
        a.tags = vec!["red".into(), "silk".into()];
        let b = Candidate::new("b", vec![Field::new("stock", FieldValue::Boolean(false))], 0.25);
        let cols = Candidates::from_rows(&[a.clone(), b.clone()], &["id", "price", "stock", "tags"]);
        let back = cols.rows();
        assert_eq!(back[0].id, "a");
        assert_eq!(back[0].tags, a.tags);
        assert_eq!(back[0].fields, a.fields);
        assert_eq!(back[0].scores, a.scores);
        assert_eq!(back[1].fields, b.fields);
        assert_eq!(back[1].scores, b.scores);
        let price = cols.numbers("price");
        assert!(price[0] == 9.5 && price[1].is_nan());
        assert_eq!(cols.numbers("stock"), [1.0, 0.0]);
        assert!(cols.numbers("absent").iter().all(|x| x.is_nan()));
    }
}
