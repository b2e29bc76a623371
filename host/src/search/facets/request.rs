//! What a request asks to count, as the CLI and the HTTP API give it (validated against the
//! collection's schema in `spec`).

/// Most facets one request may ask for.
pub const MAX_FACETS: usize = 20;
/// Most values a facet may return (`size`).
pub const MAX_FACET_SIZE: usize = 1000;
/// Most buckets a histogram, calendar or ranges facet may produce.
pub const MAX_FACET_BUCKETS: usize = 1000;
/// Most facet filter values in one request, all fields together.
pub const MAX_FACET_FILTER_VALUES: usize = 256;

/// One facet to count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FacetRequest {
    /// A keyword, facet, numeric, date or bool field.
    pub field: String,
    /// Values to return, most frequent first (default 10): keyword, bool, facet and plain
    /// numeric facets.
    pub size: Option<usize>,
    /// Facet fields: count the children of this path (default `/`, the top level).
    pub path: Option<String>,
    /// Numeric and date fields: count these ranges, `from` inclusive, `to` exclusive.
    pub ranges: Vec<FacetRange>,
    /// Numeric fields: a histogram with buckets this wide (`10`, `0.5`); date fields: a
    /// calendar interval (`hour`, `day`, `week`, `month`, `year`).
    pub interval: Option<String>,
}

/// A range of a numeric or date facet: numbers, or dates (`2024-05-01`, RFC 3339); either end
/// may be open.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FacetRange {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl FacetRequest {
    /// Parses the CLI form: `FIELD` or `FIELD:OPTION=VALUE[;OPTION=VALUE]`, with options
    /// `size=N`, `path=/a/b`, `interval=10|day|week|month|year|hour`,
    /// `ranges=..20,20..50,50..`.
    pub fn parse_cli(s: &str) -> Result<Self, String> {
        let (field, options) = s.split_once(':').unwrap_or((s, ""));
        let field = field.trim();
        if field.is_empty() {
            return Err(format!(
                "`{s}`: a facet names its field first (`brand`, `price:interval=10`)"
            ));
        }
        let mut req = FacetRequest {
            field: field.to_owned(),
            ..Default::default()
        };
        for option in options.split(';').map(str::trim).filter(|o| !o.is_empty()) {
            let (key, value) = option
                .split_once('=')
                .ok_or_else(|| format!("`{option}` in facet `{s}` is not OPTION=VALUE"))?;
            match key.trim() {
                "size" => {
                    req.size = Some(
                        value
                            .trim()
                            .parse()
                            .map_err(|_| format!("facet `{s}`: size `{value}` is not a whole number"))?,
                    )
                }
                "path" => req.path = Some(value.trim().to_owned()),
                "interval" => req.interval = Some(value.trim().to_owned()),
                "ranges" => {
                    for r in value.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                        req.ranges
                            .push(FacetRange::parse(r).map_err(|e| format!("facet `{s}`: {e}"))?);
                    }
                }
                other => {
                    return Err(format!(
                        "facet `{s}`: unknown option `{other}` (size, path, interval, ranges)"
                    ));
                }
            }
        }
        Ok(req)
    }
}

impl FacetRange {
    /// Parses `FROM..TO` (either end may be empty): the form range buckets are named by.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (from, to) = s
            .split_once("..")
            .ok_or_else(|| format!("range `{s}` is not FROM..TO (`..20`, `20..50`, `50..`)"))?;
        let end = |x: &str| Some(x.trim().to_owned()).filter(|x| !x.is_empty());
        Ok(FacetRange {
            from: end(from),
            to: end(to),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_forms() {
        assert_eq!(FacetRequest::parse_cli("brand").unwrap().field, "brand");
        let r = FacetRequest::parse_cli("price:ranges=..20,20..50,50..").unwrap();
        assert_eq!(r.ranges.len(), 3);
        assert_eq!(
            r.ranges[0],
            FacetRange {
                from: None,
                to: Some("20".into())
            }
        );
        assert_eq!(
            r.ranges[2],
            FacetRange {
                from: Some("50".into()),
                to: None
            }
        );
        let r = FacetRequest::parse_cli("kind:path=/clothing;size=5").unwrap();
        assert_eq!((r.path.as_deref(), r.size), (Some("/clothing"), Some(5)));
        assert_eq!(
            FacetRequest::parse_cli("published:interval=month")
                .unwrap()
                .interval
                .as_deref(),
            Some("month")
        );
        for bad in [
            "",
            ":size=3",
            "brand:size",
            "brand:size=x",
            "brand:colour=red",
            "price:ranges=20",
        ] {
            assert!(FacetRequest::parse_cli(bad).is_err(), "{bad}");
        }
    }
}
