//! Counting a facet over a document set, from the fast-field columns.

use std::collections::HashMap;

use serde::Serialize;
use tantivy::columnar::{Column, StrColumn};
use tantivy::fastfield::FacetReader;
use tantivy::schema::Facet;
use tantivy::{DocId, Searcher, SegmentReader};

use super::matching::DocSets;
use super::request::MAX_FACET_BUCKETS;
use super::spec::{CalendarUnit, FacetSpec, Mode, ValueType, date_key, number_key};
use crate::error::{QueryError, Result};

/// The counts of one facet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FacetCounts {
    pub field: String,
    /// `values`, `children` (of a facet path), `ranges`, `histogram` or `calendar`.
    pub kind: &'static str,
    /// Most frequent first (values, children), in the given order (ranges), or by value
    /// (histogram, calendar; empty buckets left out).
    pub buckets: Vec<FacetBucket>,
    /// Counts of the values past `size` (values, children), summed.
    pub other: u64,
    /// Counted as if this field's own facet filters were off (the disjunctive rule).
    pub disjunctive: bool,
}

/// One value of a facet and how many matching documents have it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FacetBucket {
    /// What a facet filter takes back: the value, the facet path, or the range `FROM..TO`.
    pub value: String,
    /// A shorter name, where the value is long: a path's last part, a calendar period
    /// (`2024-03`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub count: u64,
    /// The request's facet filters tick this value.
    pub selected: bool,
}

/// Counts `spec` over `docs`; `selected` are the field's facet filter values.
pub(crate) fn count(
    searcher: &Searcher,
    spec: &FacetSpec,
    docs: &DocSets,
    selected: &[String],
    disjunctive: bool,
) -> Result<FacetCounts> {
    let mut tally = Tally::default();
    for (ord, ids) in docs.segments.iter().enumerate().filter(|(_, d)| !d.is_empty()) {
        let reader = searcher.segment_reader(ord as u32);
        count_segment(reader, spec, ids, &mut tally)?;
        if tally.buckets.len() > MAX_FACET_BUCKETS {
            return Err(QueryError::Facet(format!(
                "facet `{}` has more than {MAX_FACET_BUCKETS} buckets: use a wider interval",
                spec.field
            ))
            .into());
        }
    }
    Ok(tally.finish(spec, selected, disjunctive))
}

/// Buckets by name, with their order key and label.
#[derive(Default)]
struct Tally {
    buckets: HashMap<String, Bucket>,
}

struct Bucket {
    count: u64,
    /// Where the bucket sorts when buckets sort by value (ranges: their index).
    order: f64,
    label: Option<String>,
}

impl Tally {
    fn add(&mut self, key: String, order: f64, label: impl FnOnce() -> Option<String>) {
        self.buckets
            .entry(key)
            .or_insert_with(|| Bucket {
                count: 0,
                order,
                label: label(),
            })
            .count += 1;
    }

    fn finish(self, spec: &FacetSpec, selected: &[String], disjunctive: bool) -> FacetCounts {
        let mut buckets: Vec<(String, Bucket)> = self.buckets.into_iter().collect();
        let (kind, size) = match &spec.mode {
            Mode::Values { size } => ("values", Some(*size)),
            Mode::Children { size, .. } => ("children", Some(*size)),
            Mode::Ranges(_) => ("ranges", None),
            Mode::Histogram { .. } => ("histogram", None),
            Mode::Calendar(_) => ("calendar", None),
        };
        match size {
            Some(_) => buckets.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0))),
            None => buckets.sort_by(|a, b| a.1.order.total_cmp(&b.1.order)),
        }
        let mut other = 0;
        if let Some(size) = size
            && buckets.len() > size
        {
            let rest = buckets.split_off(size);
            // A ticked value is shown even when it is not among the most frequent.
            for (key, b) in rest {
                if selected.contains(&key) {
                    buckets.push((key, b));
                } else {
                    other += b.count;
                }
            }
        }
        let mut out: Vec<FacetBucket> = buckets
            .into_iter()
            .map(|(value, b)| FacetBucket {
                selected: selected.contains(&value),
                value,
                label: b.label,
                count: b.count,
            })
            .collect();
        if let Mode::Ranges(ranges) = &spec.mode {
            // Every range is listed, matched or not, in the order asked.
            out = ranges
                .iter()
                .map(|r| {
                    let count = out.iter().find(|b| b.value == r.key).map_or(0, |b| b.count);
                    FacetBucket {
                        selected: selected.contains(&r.key),
                        value: r.key.clone(),
                        label: None,
                        count,
                    }
                })
                .collect();
        }
        for s in selected {
            if size.is_some() && !out.iter().any(|b| &b.value == s) {
                out.push(FacetBucket {
                    value: s.clone(),
                    label: None,
                    count: 0,
                    selected: true,
                });
            }
        }
        FacetCounts {
            field: spec.field.clone(),
            kind,
            buckets: out,
            other,
            disjunctive,
        }
    }
}

fn count_segment(reader: &SegmentReader, spec: &FacetSpec, docs: &[DocId], tally: &mut Tally) -> Result<()> {
    match spec.ty {
        ValueType::Keyword => {
            if let Some(column) = reader.fast_fields().str(&spec.field)? {
                count_keywords(&column, docs, tally)?;
            }
        }
        ValueType::Facet => {
            let path = match &spec.mode {
                Mode::Children { path, .. } => path.as_str(),
                _ => "/",
            };
            count_children(&reader.facet_reader(&spec.field)?, path, docs, tally)?;
        }
        _ => {
            if let Some(column) = Numbers::open(reader, &spec.field, spec.ty)? {
                count_numbers(&column, spec, docs, tally);
            }
        }
    }
    Ok(())
}

fn count_keywords(column: &StrColumn, docs: &[DocId], tally: &mut Tally) -> Result<()> {
    let mut per_ord: HashMap<u64, u64> = HashMap::new();
    let mut ords = Vec::new();
    for &doc in docs {
        ords.clear();
        ords.extend(column.term_ords(doc));
        ords.sort_unstable();
        ords.dedup();
        for &o in &ords {
            *per_ord.entry(o).or_default() += 1;
        }
    }
    let mut text = String::new();
    for (ord, n) in per_ord {
        text.clear();
        column.ord_to_str(ord, &mut text).map_err(tantivy::TantivyError::from)?;
        add_n(tally, text.clone(), 0.0, None, n);
    }
    Ok(())
}

/// Counts the children of `path` among each document's facets (a document under
/// `/a/b/c` counts once for `/a/b` when `path` is `/a`).
fn count_children(reader: &FacetReader, path: &str, docs: &[DocId], tally: &mut Tally) -> Result<()> {
    let prefix = if path == "/" {
        String::from("/")
    } else {
        format!("{path}/")
    };
    let mut child_of: HashMap<u64, Option<String>> = HashMap::new();
    let mut per_child: HashMap<String, u64> = HashMap::new();
    let mut facet = Facet::root();
    let mut children: Vec<String> = Vec::new();
    for &doc in docs {
        children.clear();
        for ord in reader.facet_ords(doc) {
            let child = match child_of.get(&ord) {
                Some(c) => c.clone(),
                None => {
                    reader.facet_from_ord(ord, &mut facet)?;
                    let text = facet.to_path_string();
                    let c = text.strip_prefix(&prefix).filter(|rest| !rest.is_empty()).map(|rest| {
                        let first = rest.split('/').next().unwrap_or(rest);
                        format!("{prefix}{first}")
                    });
                    child_of.insert(ord, c.clone());
                    c
                }
            };
            children.extend(child);
        }
        children.sort_unstable();
        children.dedup();
        for c in &children {
            *per_child.entry(c.clone()).or_default() += 1;
        }
    }
    for (child, n) in per_child {
        let label = child.rsplit('/').next().map(str::to_owned);
        add_n(tally, child, 0.0, label, n);
    }
    Ok(())
}

fn add_n(tally: &mut Tally, key: String, order: f64, label: Option<String>, n: u64) {
    tally
        .buckets
        .entry(key)
        .or_insert_with(|| Bucket { count: 0, order, label })
        .count += n;
}

/// A numeric, date or bool column, read as numbers (dates as seconds, bools as 0 and 1).
enum Numbers {
    I64(Column<i64>),
    U64(Column<u64>),
    F64(Column<f64>),
    Date(Column<tantivy::DateTime>),
    Bool(Column<bool>),
}

impl Numbers {
    fn open(reader: &SegmentReader, field: &str, ty: ValueType) -> tantivy::Result<Option<Self>> {
        let ff = reader.fast_fields();
        Ok(match ty {
            ValueType::I64 => ff.column_opt::<i64>(field)?.map(Numbers::I64),
            ValueType::U64 => ff.column_opt::<u64>(field)?.map(Numbers::U64),
            ValueType::F64 => ff.column_opt::<f64>(field)?.map(Numbers::F64),
            ValueType::Date => ff.column_opt::<tantivy::DateTime>(field)?.map(Numbers::Date),
            ValueType::Bool => ff.column_opt::<bool>(field)?.map(Numbers::Bool),
            ValueType::Keyword | ValueType::Facet => None,
        })
    }

    /// The document's distinct values.
    fn values(&self, doc: DocId, out: &mut Vec<f64>) {
        out.clear();
        match self {
            Numbers::I64(c) => out.extend(c.values_for_doc(doc).map(|v| v as f64)),
            Numbers::U64(c) => out.extend(c.values_for_doc(doc).map(|v| v as f64)),
            Numbers::F64(c) => out.extend(c.values_for_doc(doc)),
            Numbers::Date(c) => out.extend(c.values_for_doc(doc).map(|d| d.into_timestamp_secs() as f64)),
            Numbers::Bool(c) => out.extend(c.values_for_doc(doc).map(|b| f64::from(u8::from(b)))),
        }
        out.sort_unstable_by(f64::total_cmp);
        out.dedup();
    }
}

fn count_numbers(column: &Numbers, spec: &FacetSpec, docs: &[DocId], tally: &mut Tally) {
    let mut values = Vec::new();
    let mut keys: Vec<i64> = Vec::new();
    for &doc in docs {
        column.values(doc, &mut values);
        match &spec.mode {
            Mode::Values { .. } => {
                for &v in &values {
                    let key = match spec.ty {
                        ValueType::Bool => (v != 0.0).to_string(),
                        _ => number_key(v),
                    };
                    tally.add(key, v, || None);
                }
            }
            Mode::Ranges(ranges) => {
                for (i, r) in ranges.iter().enumerate() {
                    let inside = |v: f64| r.from.is_none_or(|f| v >= f) && r.to.is_none_or(|t| v < t);
                    if values.iter().any(|&v| inside(v)) {
                        tally.add(r.key.clone(), i as f64, || None);
                    }
                }
            }
            Mode::Histogram { width } => {
                keys.clear();
                keys.extend(values.iter().map(|v| (v / width).floor() as i64));
                keys.dedup();
                for &k in &keys {
                    let lo = k as f64 * width;
                    let key = format!("{}..{}", bucket_key(lo, *width), bucket_key(lo + width, *width));
                    tally.add(key, lo, || None);
                }
            }
            Mode::Calendar(unit) => {
                keys.clear();
                let periods: Vec<(i64, i64, String)> =
                    values.iter().filter_map(|&v| unit_period(*unit, v as i64)).collect();
                for (start, end, label) in periods {
                    if keys.contains(&start) {
                        continue;
                    }
                    keys.push(start);
                    let key = format!("{}..{}", date_key(start), date_key(end));
                    tally.add(key, start as f64, || Some(label));
                }
            }
            Mode::Children { .. } => {}
        }
    }
}

/// A histogram bound written with the width's decimals (`3.4`, not `3.4000000000000004`).
fn bucket_key(x: f64, width: f64) -> String {
    let decimals = format!("{width}").split_once('.').map_or(0, |(_, d)| d.len());
    number_key(format!("{x:.decimals$}").parse().unwrap_or(x))
}

fn unit_period(unit: CalendarUnit, secs: i64) -> Option<(i64, i64, String)> {
    unit.period(secs)
}
