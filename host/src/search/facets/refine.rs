//! Facet filters: the values a user ticked, as queries. Values of one field are ORed; fields are
//! ANDed with each other and with the request's filter. A value is written as the facet's
//! bucket names it: a keyword, a facet path (`/clothing/dresses`, matching everything under it),
//! `true`/`false`, a number, or a range `FROM..TO` (`from` inclusive, `to` exclusive; dates as
//! `2024-05-01` or RFC 3339), so a bucket of a response can be sent back as it is.

use std::collections::BTreeMap;
use std::ops::Bound;

use tantivy::Term;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{Facet, Field, IndexRecordOption};

use super::request::MAX_FACET_FILTER_VALUES;
use super::spec::{ValueType, bound, value_type};
use crate::collection::Collection;
use crate::error::QueryError;

/// One field's ticked values, as one query.
pub(crate) struct Refinement {
    pub field: String,
    pub values: Vec<String>,
    pub query: Box<dyn Query>,
}

/// The facet filters of a request, checked against the schema.
pub(crate) fn refinements(
    c: &Collection,
    filters: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<Refinement>, QueryError> {
    let total: usize = filters.values().map(Vec::len).sum();
    if total > MAX_FACET_FILTER_VALUES {
        return Err(QueryError::Facet(format!(
            "at most {MAX_FACET_FILTER_VALUES} facet filter values per request, got {total}"
        )));
    }
    let mut out = Vec::new();
    for (name, values) in filters {
        if values.is_empty() {
            continue;
        }
        let ty = value_type(c, name)?;
        let field = c.fields().get(name).map(|(_, f)| *f).expect("value_type found it");
        let queries = values
            .iter()
            .map(|v| {
                value_query(ty, field, v)
                    .map_err(|why| QueryError::Facet(format!("facet filter {name} = `{v}`: {why}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(Refinement {
            field: name.clone(),
            values: values.clone(),
            query: Box::new(BooleanQuery::new(
                queries.into_iter().map(|q| (Occur::Should, q)).collect(),
            )),
        });
    }
    Ok(out)
}

/// The request's filter ANDed with the facet filters, leaving out `except`'s (the disjunctive
/// rule); `None` when nothing filters.
pub(crate) fn combine(
    filter: Option<&dyn Query>,
    refinements: &[Refinement],
    except: Option<&str>,
) -> Option<Box<dyn Query>> {
    let mut parts: Vec<(Occur, Box<dyn Query>)> = filter.map(|f| (Occur::Must, f.box_clone())).into_iter().collect();
    for r in refinements.iter().filter(|r| Some(r.field.as_str()) != except) {
        parts.push((Occur::Must, r.query.box_clone()));
    }
    match parts.len() {
        0 => None,
        1 => parts.pop().map(|(_, q)| q),
        _ => Some(Box::new(BooleanQuery::new(parts))),
    }
}

fn value_query(ty: ValueType, field: Field, v: &str) -> Result<Box<dyn Query>, String> {
    let term = |t: Term| -> Box<dyn Query> { Box::new(TermQuery::new(t, IndexRecordOption::Basic)) };
    Ok(match ty {
        ValueType::Keyword => term(Term::from_field_text(field, v)),
        ValueType::Facet => {
            let path = super::spec::facet_path(v)?;
            let facet = Facet::from_text(&path).map_err(|e| e.to_string())?;
            term(Term::from_facet(field, &facet))
        }
        ValueType::Bool => match v.trim() {
            "true" => term(Term::from_field_bool(field, true)),
            "false" => term(Term::from_field_bool(field, false)),
            _ => return Err("a bool facet takes `true` or `false`".into()),
        },
        _ => match v.split_once("..") {
            Some((from, to)) => {
                let end = |x: &str| {
                    let x = x.trim();
                    (!x.is_empty()).then(|| bound(ty, x)).transpose()
                };
                range_query(ty, field, end(from)?, end(to)?)?
            }
            None if ty == ValueType::Date => return Err("a date facet filter is a range FROM..TO".into()),
            None => {
                let x = bound(ty, v)?;
                range_query(ty, field, Some(x), Some(next_up(ty, x)))?
            }
        },
    })
}

/// The smallest value above `x` that the column can hold (an exact value as a range).
fn next_up(ty: ValueType, x: f64) -> f64 {
    match ty {
        ValueType::F64 => x.next_up(),
        _ => x.floor() + 1.0,
    }
}

/// `from <= v < to` on a numeric or date field.
fn range_query(ty: ValueType, field: Field, from: Option<f64>, to: Option<f64>) -> Result<Box<dyn Query>, String> {
    if let (Some(a), Some(b)) = (from, to)
        && a >= b
    {
        return Err("the range is empty (from must be below to)".into());
    }
    if from.is_none() && to.is_none() {
        return Err("a range needs at least one end".into());
    }
    // Integer columns: v >= a  <=>  v >= ceil(a);  v < b  <=>  v < ceil(b).
    let lower = |x: f64| -> Term {
        match ty {
            ValueType::I64 => Term::from_field_i64(field, x.ceil() as i64),
            ValueType::U64 => Term::from_field_u64(field, x.ceil().max(0.0) as u64),
            ValueType::Date => Term::from_field_date(field, tantivy::DateTime::from_timestamp_secs(x.ceil() as i64)),
            _ => Term::from_field_f64(field, x),
        }
    };
    let lo = from.map_or(Bound::Unbounded, |x| Bound::Included(lower(x)));
    let hi = to.map_or(Bound::Unbounded, |x| Bound::Excluded(lower(x)));
    Ok(Box::new(RangeQuery::new(lo, hi)))
}
