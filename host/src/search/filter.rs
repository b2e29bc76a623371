//! Text queries and filters in tantivy's query syntax, parsed against a collection.

use tantivy::query::{EnableScoring, Query, QueryParser, QueryParserError};

use crate::collection::Collection;
use crate::error::{QueryError, Result};
use crate::schema::FieldKind;

/// Parses a filter: every term names its field (`category:dress`, `price:[10 TO 50]`,
/// `published:>=2024-01-01T00:00:00Z`, `kind:/clothing/dresses`); terms are ANDed by default.
pub(crate) fn parse_filter(c: &Collection, expr: &str) -> Result<Box<dyn Query>> {
    check_complexity("filter", expr)?;
    let mut parser = QueryParser::for_index(c.index(), Vec::new());
    parser.set_conjunction_by_default();
    let query = parser.parse_query(expr).map_err(|e| QueryError::Filter {
        expr: expr.to_owned(),
        reason: describe(e),
    })?;
    runnable(c, &*query).map_err(|reason| QueryError::Filter {
        expr: expr.to_owned(),
        reason,
    })?;
    Ok(query)
}

/// Some queries parse but cannot run on this schema (`field:*` on a field that is not a fast
/// field, or on no field at all); binding one to the schema finds that out before any work, as
/// the user's mistake.
fn runnable(c: &Collection, query: &dyn Query) -> std::result::Result<(), String> {
    query
        .weight(EnableScoring::disabled_from_schema(&c.fields().schema))
        .map(drop)
        .map_err(|e| match e {
            tantivy::TantivyError::FieldNotFound(f) => format!("unknown field `{f}`"),
            tantivy::TantivyError::SchemaError(m) => m,
            other => other.to_string(),
        })
}

/// Parses a BM25 query over the given text fields, with the schema's boosts. Syntax slips (an
/// unbalanced quote, a stray colon) are forgiven, as a search box should, and said in the
/// returned note (what was wrong, and that what could be read was searched); unknown fields are
/// not forgiven.
pub(crate) fn parse_text(c: &Collection, text: &str, fields: &[String]) -> Result<(Box<dyn Query>, Option<String>)> {
    check_complexity("text query", text)?;
    let mut handles = Vec::with_capacity(fields.len());
    let mut boosts = Vec::new();
    for name in fields {
        match c.fields().get(name) {
            Some((spec, field)) => match spec.kind {
                FieldKind::Text { boost, .. } => {
                    handles.push(*field);
                    boosts.push((*field, boost));
                }
                ref k => {
                    return Err(QueryError::FieldKind {
                        field: name.clone(),
                        kind: k.type_name(),
                        needed: "; text search needs text fields",
                    }
                    .into());
                }
            },
            None => {
                return Err(QueryError::UnknownField {
                    collection: c.name().to_owned(),
                    field: name.clone(),
                }
                .into());
            }
        }
    }
    if handles.is_empty() {
        return Err(QueryError::NoTextField(c.name().to_owned()).into());
    }
    let mut parser = QueryParser::for_index(c.index(), handles);
    for (field, boost) in boosts {
        if boost != 1.0 {
            parser.set_field_boost(field, boost);
        }
    }
    let (query, note) = match parser.parse_query(text) {
        Ok(q) => (q, None),
        Err(QueryParserError::SyntaxError(reason)) => {
            let (q, _) = parser.parse_query_lenient(text);
            let note =
                format!("the text query `{text}` has a syntax error ({reason}); what could be read of it was searched");
            (q, Some(note))
        }
        Err(e) => {
            return Err(QueryError::Text {
                text: text.to_owned(),
                reason: describe(e),
            }
            .into());
        }
    };
    runnable(c, &*query).map_err(|reason| QueryError::Text {
        text: text.to_owned(),
        reason,
    })?;
    Ok((query, note))
}

/// Longest text query or filter, in bytes.
pub const MAX_QUERY_BYTES: usize = 8192;
/// Deepest nesting of parentheses.
pub const MAX_QUERY_DEPTH: usize = 32;
/// Most terms and operators.
pub const MAX_QUERY_CLAUSES: usize = 1024;

/// Refuses a query that is too long, too deeply nested or has too many clauses, before the
/// parser (which recurses on nesting) sees it.
fn check_complexity(what: &'static str, expr: &str) -> Result<(), QueryError> {
    let too = |limit: &'static str, max: usize, got: usize| QueryError::TooComplex { what, limit, max, got };
    if expr.len() > MAX_QUERY_BYTES {
        return Err(too("bytes", MAX_QUERY_BYTES, expr.len()));
    }
    // Every bracket counts, quoted or not: the grammar has more than one kind of quote, and
    // over-counting a phrase's brackets is safe where under-counting real nesting is not.
    let (mut depth, mut deepest) = (0usize, 0usize);
    for ch in expr.chars() {
        match ch {
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_QUERY_DEPTH {
        return Err(too("nesting depth", MAX_QUERY_DEPTH, deepest));
    }
    let clauses = expr.split_whitespace().count();
    if clauses > MAX_QUERY_CLAUSES {
        return Err(too("clauses", MAX_QUERY_CLAUSES, clauses));
    }
    Ok(())
}

fn describe(e: QueryParserError) -> String {
    match e {
        QueryParserError::NoDefaultFieldDeclared => {
            "every filter term must name its field, like `category:shoes` or `price:[10 TO 50]`".into()
        }
        QueryParserError::FieldDoesNotExist(f) => format!("unknown field `{f}`"),
        QueryParserError::FieldNotIndexed(f) => format!("field `{f}` cannot be filtered on"),
        other => other.to_string(),
    }
}
