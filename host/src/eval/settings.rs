//! `KEY=VALUE` settings a run applies on top of every judged query: what two runs of an
//! evaluation differ by (fusion weights, the rerank window, the instruction...).

use crate::error::QueryError;
use crate::search::SearchRequest;

/// The settings a run may change, as `mira eval --set` and the API's `settings` name them.
pub const SETTINGS: &[&str] = &[
    "fusion",
    "rrf_k",
    "normalization",
    "bm25_weight",
    "vector_weight",
    "candidates",
    "rerank_window",
    "instruction",
    "ef_search",
    "exact",
    "plugin",
    "scenario",
    "text_fields",
    "vector_field",
    "filter",
    "min_bm25",
    "min_similarity",
    "min_score",
    "param.NAME",
];

/// Applies one setting to a request.
pub fn apply_setting(req: &mut SearchRequest, key: &str, value: &str) -> Result<(), QueryError> {
    let bad = |what: &str| QueryError::Setting(format!("setting {key} = `{value}`: {what}"));
    let float = || value.trim().parse::<f32>().map_err(|_| bad("not a number"));
    let whole = || value.trim().parse::<usize>().map_err(|_| bad("not a whole number"));
    match key {
        "fusion" => req.fusion = Some(value.to_owned()),
        "rrf_k" => req.rrf_k = Some(float()?),
        "normalization" => {
            req.normalization = Some(match value {
                "minmax" => crate::search::Normalization::MinMax,
                "zscore" => crate::search::Normalization::ZScore,
                "none" => crate::search::Normalization::None,
                _ => return Err(bad("use minmax, zscore or none")),
            })
        }
        "bm25_weight" => req.bm25_weight = Some(float()?),
        "vector_weight" => req.vector_weight = Some(float()?),
        "candidates" => req.candidates = Some(whole()?),
        "rerank_window" => req.rerank_window = Some(whole()?),
        "instruction" => req.instruction = Some(value.to_owned()),
        "ef_search" => req.ef_search = Some(whole()?),
        "exact" => req.exact = value.parse().map_err(|_| bad("use true or false"))?,
        "plugin" => req.plugin = Some(value.to_owned()),
        "scenario" => req.scenario = Some(value.to_owned()),
        "text_fields" => req.text_fields = Some(value.split(',').map(|f| f.trim().to_owned()).collect()),
        "vector_field" => req.vector_field = Some(value.to_owned()),
        "filter" => req.filter = Some(value.to_owned()),
        "min_bm25" => req.min_score.bm25 = Some(float()?),
        "min_similarity" => req.min_score.vector = Some(float()?),
        "min_score" => req.min_score.final_score = Some(float()?),
        _ => match key.strip_prefix("param.") {
            Some(name) if !name.is_empty() => {
                req.params.insert(name.to_owned(), value.to_owned());
            }
            _ => {
                return Err(QueryError::Setting(format!(
                    "unknown setting `{key}` (settings: {})",
                    SETTINGS.join(", ")
                )));
            }
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_apply_and_bad_ones_say_why() {
        let mut r = SearchRequest::default();
        apply_setting(&mut r, "bm25_weight", "2").unwrap();
        apply_setting(&mut r, "rerank_window", "0").unwrap();
        apply_setting(&mut r, "param.max_price", "80").unwrap();
        apply_setting(&mut r, "min_score", "0.5").unwrap();
        assert_eq!((r.bm25_weight, r.rerank_window), (Some(2.0), Some(0)));
        assert_eq!(r.params["max_price"], "80");
        assert_eq!(r.min_score.final_score, Some(0.5));
        let e = apply_setting(&mut r, "bm25_weight", "heavy").unwrap_err().to_string();
        assert!(e.contains("bm25_weight") && e.contains("not a number"), "{e}");
        let e = apply_setting(&mut r, "colour", "red").unwrap_err().to_string();
        assert!(
            e.contains("unknown setting `colour`") && e.contains("rerank_window"),
            "{e}"
        );
        assert!(apply_setting(&mut r, "param.", "x").is_err());
    }
}
