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

/// Largest histogram bucket index (2^53: exact as an f64).
const MAX_BUCKET_INDEX: f64 = 9_007_199_254_740_992.0;

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
                if let Mode::Histogram { width } = spec.mode
                    && let Some((min, max)) = column.range()
                    && (min / width).abs().max((max / width).abs()) > MAX_BUCKET_INDEX
                {
                    // Bucket indexes past 2^53 are neither exact nor meaningful.
                    return Err(QueryError::Facet(format!(
                        "facet `{}`: interval {width} is too small for values from {min} to {max}",
                        spec.field
                    ))
                    .into());
                }
                count_numbers(&column, spec, docs, tally);
            }
        }
    }
    Ok(())
}

fn count_keywords(column: &StrColumn, docs: &[DocId], tally: &mut Tally) -> Result<()> {
    // Counts by term ordinal (the segment's dictionary), named once per distinct value.
    let mut per_ord = vec![0u64; column.num_terms()];
    each_doc(
        column.ords(),
        docs,
        |o| o,
        |ords| {
            for &o in ords {
                if let Some(n) = per_ord.get_mut(o as usize) {
                    *n += 1;
                }
            }
        },
    );
    let mut text = String::new();
    for (ord, n) in per_ord.into_iter().enumerate().filter(|(_, n)| *n > 0) {
        text.clear();
        column
            .ord_to_str(ord as u64, &mut text)
            .map_err(tantivy::TantivyError::from)?;
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

    /// The least and greatest value of the segment's column, as numbers.
    fn range(&self) -> Option<(f64, f64)> {
        Some(match self {
            Numbers::I64(c) => (c.min_value() as f64, c.max_value() as f64),
            Numbers::U64(c) => (c.min_value() as f64, c.max_value() as f64),
            Numbers::F64(c) => (c.min_value(), c.max_value()),
            _ => return None,
        })
        .filter(|(a, b)| a.is_finite() && b.is_finite())
    }

    /// Calls `f` with each document's distinct values (dates as seconds, bools as 0 and 1),
    /// read a block of documents at a time.
    fn each(&self, docs: &[DocId], f: impl FnMut(&[f64])) {
        match self {
            Numbers::I64(c) => each_doc(c, docs, |v| v as f64, f),
            Numbers::U64(c) => each_doc(c, docs, |v| v as f64, f),
            Numbers::F64(c) => each_doc(c, docs, |v| v, f),
            Numbers::Date(c) => each_doc(c, docs, |d| d.into_timestamp_secs() as f64, f),
            Numbers::Bool(c) => each_doc(c, docs, |b| f64::from(u8::from(b)), f),
        }
    }
}

/// Documents read per block from a column (the way tantivy's aggregations read them).
const BLOCK: usize = 64;

/// Calls `f` once per document of `docs` that has values in `column`, with its distinct values
/// converted by `conv`, reading rows a block at a time (one dynamic call per value, no
/// per-document iterator).
fn each_doc<T, V>(column: &Column<T>, docs: &[DocId], conv: impl Fn(T) -> V, mut f: impl FnMut(&[V]))
where
    T: PartialOrd + Copy + Default + std::fmt::Debug + Send + Sync + 'static,
    V: PartialOrd + Copy,
{
    let (mut doc_out, mut rows, mut raw, mut mine) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let multivalued = column.get_cardinality() == tantivy::columnar::Cardinality::Multivalued;
    for block in docs.chunks(BLOCK) {
        doc_out.clear();
        rows.clear();
        column.row_ids_for_docs(block, &mut doc_out, &mut rows);
        raw.clear();
        raw.resize(rows.len(), T::default());
        column.values.get_vals(&rows, &mut raw);
        if !multivalued {
            // One row per document: no grouping, no deduplication.
            for v in &raw {
                mine.clear();
                mine.push(conv(*v));
                f(&mine);
            }
            continue;
        }
        let mut i = 0;
        while i < doc_out.len() {
            let mut j = i + 1;
            while j < doc_out.len() && doc_out[j] == doc_out[i] {
                j += 1;
            }
            mine.clear();
            mine.extend(raw[i..j].iter().map(|v| conv(*v)));
            if mine.len() > 1 {
                mine.sort_unstable_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
                mine.dedup();
            }
            f(&mine);
            i = j;
        }
    }
}

fn count_numbers(column: &Numbers, spec: &FacetSpec, docs: &[DocId], tally: &mut Tally) {
    // Counted by number (bucket index, range index, period start) first; each bucket is named
    // once, after the segment.
    let mut by_key: HashMap<i64, u64> = HashMap::new();
    let mut by_range: Vec<u64> = match &spec.mode {
        Mode::Ranges(r) => vec![0; r.len()],
        _ => Vec::new(),
    };
    // Calendar periods by day (or hour): the period of a value is worked out once per day.
    let mut periods: HashMap<i64, (i64, i64, String)> = HashMap::new();
    let mut keys: Vec<i64> = Vec::new();
    let mut sparse: Vec<i64> = Vec::new();
    // A histogram over the column's range counts into an array (no hashing per document).
    let mut dense: Option<(i64, Vec<u64>)> = match &spec.mode {
        Mode::Histogram { width } => column.range().and_then(|(min, max)| {
            let (lo, hi) = (floor_div(min, *width), floor_div(max, *width));
            (hi >= lo && hi - lo < MAX_FACET_BUCKETS as i64).then(|| (lo, vec![0; (hi - lo + 1) as usize]))
        }),
        _ => None,
    };
    column.each(docs, |values| {
        keys.clear();
        match &spec.mode {
            Mode::Values { .. } => keys.extend(values.iter().map(|v| v.to_bits() as i64)),
            Mode::Ranges(ranges) => {
                for (i, r) in ranges.iter().enumerate() {
                    let inside = |v: f64| r.from.is_none_or(|f| v >= f) && r.to.is_none_or(|t| v < t);
                    if values.iter().any(|&v| inside(v)) {
                        by_range[i] += 1;
                    }
                }
            }
            Mode::Histogram { width } => {
                for v in values {
                    let k = floor_div(*v, *width);
                    match dense.as_mut() {
                        Some((lo, counts)) if k >= *lo && ((k - *lo) as usize) < counts.len() => {
                            // Counted here; a document's values in one bucket count once.
                            if !keys.contains(&k) {
                                counts[(k - *lo) as usize] += 1;
                                keys.push(k);
                            }
                        }
                        _ => sparse.push(k),
                    }
                }
                keys.clear();
                keys.append(&mut sparse);
            }
            Mode::Calendar(unit) => {
                let step = if *unit == CalendarUnit::Hour { 3600 } else { 86_400 };
                for &v in values {
                    let secs = v as i64;
                    let slot = secs.div_euclid(step);
                    let period = match periods.get(&slot) {
                        Some(p) => Some(p.0),
                        None => unit.period(secs).map(|p| {
                            let start = p.0;
                            periods.insert(slot, p);
                            start
                        }),
                    };
                    keys.extend(period);
                }
            }
            Mode::Children { .. } => {}
        }
        if keys.len() > 1 {
            keys.sort_unstable();
            keys.dedup();
        }
        for &k in &keys {
            *by_key.entry(k).or_default() += 1;
        }
    });
    match &spec.mode {
        Mode::Ranges(ranges) => {
            for (i, (r, n)) in ranges.iter().zip(by_range).enumerate() {
                if n > 0 {
                    add_n(tally, r.key.clone(), i as f64, None, n);
                }
            }
        }
        Mode::Values { .. } => {
            for (bits, n) in by_key {
                let v = f64::from_bits(bits as u64);
                let key = match spec.ty {
                    ValueType::Bool => (v != 0.0).to_string(),
                    _ => number_key(v),
                };
                add_n(tally, key, v, None, n);
            }
        }
        Mode::Histogram { width } => {
            let from_dense = dense
                .into_iter()
                .flat_map(|(lo, counts)| counts.into_iter().enumerate().map(move |(i, n)| (lo + i as i64, n)));
            for (k, n) in by_key.into_iter().chain(from_dense).filter(|(_, n)| *n > 0) {
                let lo = k as f64 * width;
                let key = format!("{}..{}", bucket_key(lo, *width), bucket_key(lo + width, *width));
                add_n(tally, key, lo, None, n);
            }
        }
        Mode::Calendar(_) => {
            let names: HashMap<i64, (i64, String)> = periods
                .into_values()
                .map(|(start, end, label)| (start, (end, label)))
                .collect();
            for (start, n) in by_key {
                if let Some((end, label)) = names.get(&start) {
                    let key = format!("{}..{}", date_key(start), date_key(*end));
                    add_n(tally, key, start as f64, Some(label.clone()), n);
                }
            }
        }
        Mode::Children { .. } => {}
    }
}

/// `floor(v / width)` as an integer, without a libm call per value (the baseline x86-64 target
/// has no rounding instruction).
#[inline]
fn floor_div(v: f64, width: f64) -> i64 {
    let q = v / width;
    let t = q as i64;
    if (t as f64) > q { t - 1 } else { t }
}

/// A histogram bound written with the width's decimals (`3.4`, not `3.4000000000000004`).
fn bucket_key(x: f64, width: f64) -> String {
    let decimals = format!("{width}").split_once('.').map_or(0, |(_, d)| d.len());
    number_key(format!("{x:.decimals$}").parse().unwrap_or(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_div_is_floor() {
        for (v, w) in [
            (0.5, 1.0),
            (-0.5, 1.0),
            (-1.0, 1.0),
            (25.0, 25.0),
            (24.99, 25.0),
            (-25.01, 25.0),
            (7.3, 0.5),
        ] {
            assert_eq!(floor_div(v, w), (v / w).floor() as i64, "{v} / {w}");
        }
    }
}
