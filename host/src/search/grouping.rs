//! `group_by`: at most `group_size` hits per value of a keyword field (a product with several
//! photos, an article with several paragraphs), so one item cannot fill the page.
//!
//! Applied twice: after fusion, each group keeps its first `group_size` candidates (so the
//! reranker and the plugin read distinct items); after the final order, candidates are gathered
//! into groups, ordered by their best member, members in final order, and pages count groups
//! (`offset` and `top_k` are in groups). A document without a value is a group of its own.

use tantivy::Searcher;

use super::SearchRequest;
use super::candidate::Candidate;
use crate::collection::Collection;
use crate::error::{QueryError, Result};
use crate::schema::FieldKind;

/// Largest `group_size` a request may ask for.
pub const MAX_GROUP_SIZE: usize = 100;

/// A request's grouping, checked.
pub(crate) struct GroupPlan {
    pub field: String,
    pub size: usize,
}

/// The grouping of a request, if it asks for one.
pub(crate) fn resolve(c: &Collection, req: &SearchRequest) -> Result<Option<GroupPlan>, QueryError> {
    let Some(field) = req.group_by.as_deref() else {
        if req.group_size.is_some() {
            return Err(QueryError::GroupBy("group_size needs group_by".into()));
        }
        return Ok(None);
    };
    let (spec, _) = c.fields().get(field).ok_or_else(|| QueryError::UnknownField {
        collection: c.name().to_owned(),
        field: field.to_owned(),
    })?;
    if spec.kind != FieldKind::Keyword {
        return Err(QueryError::FieldKind {
            field: field.to_owned(),
            kind: spec.kind.type_name(),
            needed: "; group_by needs a keyword field",
        });
    }
    let size = req.group_size.unwrap_or(1);
    if size == 0 || size > MAX_GROUP_SIZE {
        return Err(QueryError::GroupBy(format!(
            "group_size must be between 1 and {MAX_GROUP_SIZE}, got {size}"
        )));
    }
    Ok(Some(GroupPlan {
        field: field.to_owned(),
        size,
    }))
}

/// Sets each candidate's group (the field's first value, from its column).
pub(crate) fn assign(searcher: &Searcher, field: &str, cands: &mut [Candidate]) -> Result<()> {
    let mut columns = Vec::with_capacity(searcher.segment_readers().len());
    for reader in searcher.segment_readers() {
        columns.push(reader.fast_fields().str(field)?);
    }
    let mut text = String::new();
    for cand in cands {
        let Some(column) = &columns[cand.address.segment_ord as usize] else {
            continue;
        };
        if let Some(ord) = column.term_ords(cand.address.doc_id).next() {
            text.clear();
            column.ord_to_str(ord, &mut text).map_err(tantivy::TantivyError::from)?;
            cand.group = Some(text.clone());
        }
    }
    Ok(())
}

/// Keeps the first `size` candidates of each group, in order.
pub(crate) fn limit(cands: &mut Vec<Candidate>, size: usize) {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    cands.retain(|c| match &c.group {
        None => true,
        Some(g) => {
            let n = seen.entry(g.clone()).or_default();
            *n += 1;
            *n <= size
        }
    });
}

/// Gathers candidates (in final order) into groups ordered by their best member; returns the
/// groups, each a list of candidates in final order.
pub(crate) fn gather(cands: Vec<Candidate>) -> Vec<Vec<Candidate>> {
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut groups: Vec<Vec<Candidate>> = Vec::new();
    for cand in cands {
        match cand.group.clone() {
            Some(g) => match index.get(&g) {
                Some(&i) => groups[i].push(cand),
                None => {
                    index.insert(g, groups.len());
                    groups.push(vec![cand]);
                }
            },
            None => groups.push(vec![cand]),
        }
    }
    groups
}
