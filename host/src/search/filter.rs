//! Text queries and filters in tantivy's query syntax, parsed against a collection.

use tantivy::query::{Query, QueryParser, QueryParserError};

use crate::collection::Collection;
use crate::error::{Error, Result};
use crate::schema::FieldKind;

/// Parses a filter: every term names its field (`category:dress`, `price:[10 TO 50]`,
/// `published:>=2024-01-01T00:00:00Z`, `kind:/clothing/dresses`); terms are ANDed by default.
pub(crate) fn parse_filter(c: &Collection, expr: &str) -> Result<Box<dyn Query>> {
    let mut parser = QueryParser::for_index(c.index(), Vec::new());
    parser.set_conjunction_by_default();
    parser
        .parse_query(expr)
        .map_err(|e| Error::Query(format!("filter `{expr}`: {}", describe(e))))
}

/// Parses a BM25 query over the given text fields, with the schema's boosts. Syntax slips (an
/// unbalanced quote, a stray colon) are forgiven, as a search box should; unknown fields are not.
pub(crate) fn parse_text(c: &Collection, text: &str, fields: &[String]) -> Result<Box<dyn Query>> {
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
                    return Err(Error::Query(format!(
                        "`{name}` is a {} field; text search needs text fields",
                        k.type_name()
                    )));
                }
            },
            None => return Err(Error::Query(format!("collection `{}` has no field `{name}`", c.name()))),
        }
    }
    if handles.is_empty() {
        return Err(Error::Query(format!(
            "collection `{}` has no text field to search",
            c.name()
        )));
    }
    let mut parser = QueryParser::for_index(c.index(), handles);
    for (field, boost) in boosts {
        if boost != 1.0 {
            parser.set_field_boost(field, boost);
        }
    }
    match parser.parse_query(text) {
        Ok(q) => Ok(q),
        Err(QueryParserError::SyntaxError(_)) => Ok(parser.parse_query_lenient(text).0),
        Err(e) => Err(Error::Query(format!("text query `{text}`: {}", describe(e)))),
    }
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
