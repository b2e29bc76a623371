//! Parsing of scalar values that arrive as text (CSV cells, query parameters, JSON strings).

use tantivy::DateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

/// Parses a date: RFC 3339 (`2024-05-01T12:00:00Z`), a plain day (`2024-05-01`, midnight UTC),
/// or a day and time without zone (`2024-05-01 12:00:00`, UTC).
pub fn parse_date(s: &str) -> Result<DateTime, String> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(DateTime::from_utc(t));
    }
    if let Ok(d) = Date::parse(s, format_description!("[year]-[month]-[day]")) {
        return Ok(DateTime::from_utc(d.midnight().assume_utc()));
    }
    if let Ok(t) = PrimitiveDateTime::parse(s, format_description!("[year]-[month]-[day] [hour]:[minute]:[second]")) {
        return Ok(DateTime::from_utc(t.assume_utc()));
    }
    Err(format!(
        "`{s}` is not a date (use RFC 3339 like 2024-05-01T12:00:00Z, or 2024-05-01, or seconds since 1970)"
    ))
}

/// Parses a vector written as text: a JSON array (`[0.1, 0.2]`) or numbers separated by commas
/// and/or whitespace.
pub fn parse_vector_text(s: &str) -> Result<Vec<f32>, String> {
    let body = s.trim();
    let body = body.strip_prefix('[').and_then(|b| b.strip_suffix(']')).unwrap_or(body);
    body.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .enumerate()
        .map(|(i, t)| {
            t.parse::<f32>()
                .map_err(|_| format!("element {i} (`{t}`) is not a number"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_three_forms() {
        let a = parse_date("2024-05-01T00:00:00Z").unwrap();
        let b = parse_date("2024-05-01").unwrap();
        let c = parse_date("2024-05-01 00:00:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.into_timestamp_secs(), 1_714_521_600);
        assert!(parse_date("May 1st").unwrap_err().contains("not a date"));
    }

    #[test]
    fn vectors_as_text() {
        assert_eq!(parse_vector_text("[1, 2.5,-3]").unwrap(), vec![1.0, 2.5, -3.0]);
        assert_eq!(parse_vector_text("1 2\t3").unwrap(), vec![1.0, 2.0, 3.0]);
        assert!(parse_vector_text("[1, x]").unwrap_err().contains("element 1"));
    }
}
