//! A facet request resolved against the collection's schema: which column to read and how its
//! values become buckets. Every mistake is found here, before any work.

use super::request::{FacetRange, FacetRequest, MAX_FACET_BUCKETS, MAX_FACET_SIZE, MAX_FACETS};
use crate::collection::Collection;
use crate::error::QueryError;
use crate::schema::FieldKind;

/// Values to return when a request does not say.
const DEFAULT_SIZE: usize = 10;

/// The column type of a facet field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ValueType {
    Keyword,
    Facet,
    I64,
    U64,
    F64,
    /// Seconds since 1970.
    Date,
    Bool,
}

/// How values become buckets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Mode {
    /// Each distinct value is a bucket; the `size` most frequent are returned.
    Values { size: usize },
    /// Facet paths: the children of `path` (`/` for the top level).
    Children { path: String, size: usize },
    /// Given ranges, `from` inclusive, `to` exclusive.
    Ranges(Vec<Range>),
    /// Numeric buckets `[k·w, (k+1)·w)`.
    Histogram { width: f64 },
    /// Date buckets by calendar period (UTC).
    Calendar(CalendarUnit),
}

/// One range bucket: its bounds as numbers (seconds for dates) and its name (`20..50`, the
/// form a facet filter takes back).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Range {
    pub from: Option<f64>,
    pub to: Option<f64>,
    pub key: String,
}

/// A calendar period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum CalendarUnit {
    Hour,
    Day,
    /// ISO weeks, Monday first.
    Week,
    Month,
    Year,
}

/// A facet ready to count.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FacetSpec {
    pub field: String,
    pub ty: ValueType,
    pub mode: Mode,
}

/// Resolves every facet of a request.
pub(crate) fn resolve(c: &Collection, reqs: &[FacetRequest]) -> Result<Vec<FacetSpec>, QueryError> {
    if reqs.len() > MAX_FACETS {
        return Err(QueryError::Facet(format!(
            "at most {MAX_FACETS} facets per request, got {}",
            reqs.len()
        )));
    }
    reqs.iter().map(|r| resolve_one(c, r)).collect()
}

/// The column type of a field a facet or facet filter names.
pub(crate) fn value_type(c: &Collection, field: &str) -> Result<ValueType, QueryError> {
    let (spec, _) = c.fields().get(field).ok_or_else(|| QueryError::UnknownField {
        collection: c.name().to_owned(),
        field: field.to_owned(),
    })?;
    Ok(match spec.kind {
        FieldKind::Keyword => ValueType::Keyword,
        FieldKind::Facet => ValueType::Facet,
        FieldKind::I64 => ValueType::I64,
        FieldKind::U64 => ValueType::U64,
        FieldKind::F64 => ValueType::F64,
        FieldKind::Date => ValueType::Date,
        FieldKind::Bool => ValueType::Bool,
        ref k => {
            return Err(QueryError::FieldKind {
                field: field.to_owned(),
                kind: k.type_name(),
                needed: "; facets count keyword, facet, numeric, date and bool fields",
            });
        }
    })
}

fn resolve_one(c: &Collection, r: &FacetRequest) -> Result<FacetSpec, QueryError> {
    let ty = value_type(c, &r.field)?;
    let bad = |what: String| QueryError::Facet(format!("facet `{}`: {what}", r.field));
    let size = r.size.unwrap_or(DEFAULT_SIZE);
    if size == 0 || size > MAX_FACET_SIZE {
        return Err(bad(format!("size must be between 1 and {MAX_FACET_SIZE}, got {size}")));
    }
    if r.path.is_some() && ty != ValueType::Facet {
        return Err(bad("`path` applies to facet fields".into()));
    }
    if !r.ranges.is_empty() && r.interval.is_some() {
        return Err(bad("give ranges or an interval, not both".into()));
    }
    let numeric = matches!(ty, ValueType::I64 | ValueType::U64 | ValueType::F64);
    let mode = if !r.ranges.is_empty() {
        if !(numeric || ty == ValueType::Date) {
            return Err(bad("ranges apply to numeric and date fields".into()));
        }
        if r.ranges.len() > MAX_FACET_BUCKETS {
            return Err(bad(format!("at most {MAX_FACET_BUCKETS} ranges")));
        }
        let ranges: Vec<Range> = r
            .ranges
            .iter()
            .map(|x| range(ty, x))
            .collect::<Result<_, _>>()
            .map_err(bad)?;
        // A range is named by its bounds: asked twice, it would be counted twice under one name.
        if let Some((_, dup)) = ranges
            .iter()
            .enumerate()
            .find(|(i, x)| ranges[..*i].iter().any(|y| y.key == x.key))
        {
            return Err(bad(format!("range `{}` is asked twice", dup.key)));
        }
        Mode::Ranges(ranges)
    } else if let Some(interval) = &r.interval {
        match ty {
            ValueType::Date => Mode::Calendar(CalendarUnit::parse(interval).map_err(bad)?),
            _ if numeric => {
                let width: f64 = interval
                    .parse()
                    .map_err(|_| bad(format!("interval `{interval}` is not a number")))?;
                if !(width.is_finite() && width > 0.0) {
                    return Err(bad(format!("interval must be a positive number, got {interval}")));
                }
                Mode::Histogram { width }
            }
            _ => return Err(bad("an interval applies to numeric and date fields".into())),
        }
    } else {
        match ty {
            ValueType::Date => return Err(bad("a date facet needs an interval (day, month...) or ranges".into())),
            ValueType::Facet => Mode::Children {
                path: facet_path(r.path.as_deref().unwrap_or("/")).map_err(bad)?,
                size,
            },
            _ => Mode::Values { size },
        }
    };
    Ok(FacetSpec {
        field: r.field.clone(),
        ty,
        mode,
    })
}

/// A facet path as tantivy writes it: `/` or `/a/b` (no trailing slash).
pub(crate) fn facet_path(p: &str) -> Result<String, String> {
    let p = p.trim();
    if !p.starts_with('/') {
        return Err(format!("facet path `{p}` must start with `/`"));
    }
    let trimmed = p.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

fn range(ty: ValueType, r: &FacetRange) -> Result<Range, String> {
    let from = r.from.as_deref().map(|x| bound(ty, x)).transpose()?;
    let to = r.to.as_deref().map(|x| bound(ty, x)).transpose()?;
    if let (Some(a), Some(b)) = (from, to)
        && a >= b
    {
        return Err(format!("range `{}` is empty (from must be below to)", key(r)));
    }
    Ok(Range { from, to, key: key(r) })
}

fn key(r: &FacetRange) -> String {
    format!("{}..{}", r.from.as_deref().unwrap_or(""), r.to.as_deref().unwrap_or(""))
}

/// A range bound: a number, or for dates a date (seconds since 1970).
pub(crate) fn bound(ty: ValueType, s: &str) -> Result<f64, String> {
    match ty {
        ValueType::Date => crate::document::parse_date(s).map(|d| d.into_timestamp_secs() as f64),
        _ => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("`{s}` is not a number")),
    }
}

impl CalendarUnit {
    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "hour" => CalendarUnit::Hour,
            "day" => CalendarUnit::Day,
            "week" => CalendarUnit::Week,
            "month" => CalendarUnit::Month,
            "year" => CalendarUnit::Year,
            other => return Err(format!("interval `{other}` is not hour, day, week, month or year")),
        })
    }

    /// The period holding `secs`: its start, its end (exclusive), and its label (`2024`,
    /// `2024-03`, `2024-W10`, `2024-03-05`, `2024-03-05T14`).
    pub fn period(self, secs: i64) -> Option<(i64, i64, String)> {
        use time::{Duration, OffsetDateTime, Time};
        let t = OffsetDateTime::from_unix_timestamp(secs).ok()?;
        let date = t.date();
        let (start, end, label) = match self {
            CalendarUnit::Hour => {
                let start = t.replace_time(Time::from_hms(t.hour(), 0, 0).ok()?);
                (start, start + Duration::HOUR, format!("{}T{:02}", date, t.hour()))
            }
            CalendarUnit::Day => {
                let start = date.midnight().assume_utc();
                (start, start + Duration::DAY, date.to_string())
            }
            CalendarUnit::Week => {
                let monday = date - Duration::days(i64::from(date.weekday().number_days_from_monday()));
                let start = monday.midnight().assume_utc();
                let (year, week, _) = date.to_iso_week_date();
                (start, start + Duration::WEEK, format!("{year}-W{week:02}"))
            }
            CalendarUnit::Month => {
                let first = date.replace_day(1).ok()?;
                let next = match first.month() {
                    time::Month::December => first
                        .replace_year(first.year() + 1)
                        .ok()?
                        .replace_month(time::Month::January)
                        .ok()?,
                    m => first.replace_month(m.next()).ok()?,
                };
                let label = format!("{}-{:02}", first.year(), u8::from(first.month()));
                (first.midnight().assume_utc(), next.midnight().assume_utc(), label)
            }
            CalendarUnit::Year => {
                let first = date.replace_month(time::Month::January).ok()?.replace_day(1).ok()?;
                let next = first.replace_year(first.year() + 1).ok()?;
                (
                    first.midnight().assume_utc(),
                    next.midnight().assume_utc(),
                    first.year().to_string(),
                )
            }
        };
        Some((start.unix_timestamp(), end.unix_timestamp(), label))
    }
}

/// A number as a bucket name: `20`, not `20.0`.
pub(crate) fn number_key(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// Seconds as the RFC 3339 form a date range bucket is named by.
pub(crate) fn date_key(secs: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        crate::document::parse_date(s).unwrap().into_timestamp_secs()
    }

    #[test]
    fn calendar_periods() {
        let t = at("2024-03-05T14:30:00Z");
        let (s, e, l) = CalendarUnit::Month.period(t).unwrap();
        assert_eq!((s, e, l.as_str()), (at("2024-03-01"), at("2024-04-01"), "2024-03"));
        let (s, e, l) = CalendarUnit::Month.period(at("2023-12-31T23:59:59Z")).unwrap();
        assert_eq!((s, e, l.as_str()), (at("2023-12-01"), at("2024-01-01"), "2023-12"));
        let (s, e, l) = CalendarUnit::Week.period(t).unwrap();
        assert_eq!((s, e, l.as_str()), (at("2024-03-04"), at("2024-03-11"), "2024-W10"));
        let (s, e, l) = CalendarUnit::Year.period(t).unwrap();
        assert_eq!((s, e, l.as_str()), (at("2024-01-01"), at("2025-01-01"), "2024"));
        let (s, e, l) = CalendarUnit::Hour.period(t).unwrap();
        assert_eq!(
            (s, e, l.as_str()),
            (at("2024-03-05T14:00:00Z"), at("2024-03-05T15:00:00Z"), "2024-03-05T14")
        );
        let (s, _, l) = CalendarUnit::Day.period(t).unwrap();
        assert_eq!((s, l.as_str()), (at("2024-03-05"), "2024-03-05"));
    }

    #[test]
    fn keys() {
        assert_eq!(number_key(20.0), "20");
        assert_eq!(number_key(-2.5), "-2.5");
        assert_eq!(facet_path("/a/b/").unwrap(), "/a/b");
        assert_eq!(facet_path("/").unwrap(), "/");
        assert!(facet_path("a").is_err());
    }
}
