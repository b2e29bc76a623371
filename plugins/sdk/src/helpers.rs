//! Pure helpers for ranking logic: fusion formulas, time decay, language detection, field access
//! and rendering. All are plain Rust, testable natively.

use crate::{Candidate, FieldValue, Request};

/// Reciprocal-rank contribution `1 / (k + rank)` (rank starts at 1; Cormack et al., SIGIR 2009).
pub fn rrf(rank: u32, k: f32) -> f32 {
    1.0 / (k + rank as f32)
}

/// `(s - min) / (max - min)`; all ones when the scores are equal.
pub fn min_max(scores: &[f32]) -> Vec<f32> {
    let (min, max) = (crate::math::smallest(scores), crate::math::largest(scores));
    scores
        .iter()
        .map(|s| if max > min { (s - min) / (max - min) } else { 1.0 })
        .collect()
}

/// `(s - mean) / std`; all zeros when the scores are equal.
pub fn z_score(scores: &[f32]) -> Vec<f32> {
    let n = scores.len().max(1) as f32;
    let mean = scores.iter().sum::<f32>() / n;
    let std = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f32>() / n).sqrt();
    scores
        .iter()
        .map(|s| if std > 0.0 { (s - mean) / std } else { 0.0 })
        .collect()
}

/// Exponential decay with a half-life: 1 at age 0, 0.5 at `half_life`, and 1 for future dates.
pub fn exp_decay(age_secs: f64, half_life_secs: f64) -> f64 {
    if age_secs <= 0.0 || half_life_secs <= 0.0 {
        return 1.0;
    }
    crate::math::exp(-(age_secs / half_life_secs) * std::f64::consts::LN_2)
}

/// The script family of a text, enough to pick an instruction's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Chinese,
    Japanese,
    Korean,
    /// Anything else (Latin, Cyrillic...): instructions fall back to English.
    Other,
}

/// Detects CJK text: kana means Japanese, Hangul Korean, Han ideographs Chinese. A text counts as
/// CJK when at least a fifth of its letters are CJK.
pub fn detect_language(text: &str) -> Language {
    let (mut han, mut kana, mut hangul, mut letters) = (0usize, 0usize, 0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        match c as u32 {
            0x3040..=0x30FF | 0x31F0..=0x31FF => kana += 1,
            0xAC00..=0xD7AF | 0x1100..=0x11FF | 0x3130..=0x318F => hangul += 1,
            0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0xF900..=0xFAFF | 0x20000..=0x2A6DF => han += 1,
            _ => {}
        }
    }
    let cjk = han + kana + hangul;
    if letters == 0 || cjk * 5 < letters {
        Language::Other
    } else if kana > 0 {
        Language::Japanese
    } else if hangul > han {
        Language::Korean
    } else {
        Language::Chinese
    }
}

/// `zh` for a Chinese query, `en` otherwise: how the built-in plugins pick their instruction.
pub fn by_language(query: &str, en: &str, zh: &str) -> String {
    match detect_language(query) {
        Language::Chinese => zh.to_owned(),
        _ => en.to_owned(),
    }
}

/// The first value of a field as a number (numbers, integers, booleans as 0/1, dates as seconds).
pub fn number(c: &Candidate, name: &str) -> Option<f64> {
    c.fields.iter().find(|f| f.name == name).and_then(|f| match &f.value {
        FieldValue::Number(x) => Some(*x),
        FieldValue::Integer(x) => Some(*x as f64),
        FieldValue::Boolean(b) => Some(if *b { 1.0 } else { 0.0 }),
        FieldValue::Date(s) => Some(*s as f64),
        _ => None,
    })
}

/// The first value of a field as text (text, keywords and facets).
pub fn text<'a>(c: &'a Candidate, name: &str) -> Option<&'a str> {
    c.fields.iter().find(|f| f.name == name).and_then(|f| match &f.value {
        FieldValue::Text(s) | FieldValue::Keyword(s) | FieldValue::Facet(s) => Some(s.as_str()),
        _ => None,
    })
}

/// A request parameter.
pub fn param<'a>(req: &'a Request, key: &str) -> Option<&'a str> {
    req.params.iter().find(|p| p.key == key).map(|p| p.value.as_str())
}

fn show(v: &FieldValue) -> String {
    match v {
        FieldValue::Text(s) | FieldValue::Keyword(s) | FieldValue::Facet(s) => s.clone(),
        FieldValue::Number(x) => format!("{x}"),
        FieldValue::Integer(x) => format!("{x}"),
        FieldValue::Boolean(b) => format!("{b}"),
        FieldValue::Date(s) => civil_date(*s),
    }
}

/// `YYYY-MM-DD` of a Unix timestamp (UTC), without a date library.
pub fn civil_date(secs: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Renders a candidate as `name: value` lines (only `names`, in that order, when not empty),
/// then its tags and caption (the host passes those apart from the fields).
pub fn render_fields(c: &Candidate, names: &[&str]) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut push = |name: &str, v: &FieldValue| lines.push(format!("{name}: {}", show(v)));
    if names.is_empty() {
        c.fields.iter().for_each(|f| push(&f.name, &f.value));
    } else {
        for n in names {
            c.fields
                .iter()
                .filter(|f| f.name == *n)
                .for_each(|f| push(&f.name, &f.value));
        }
    }
    if !c.tags.is_empty() {
        lines.push(format!("tags: {}", c.tags.join(", ")));
    }
    if let Some(caption) = &c.caption {
        lines.push(format!("caption: {caption}"));
    }
    lines.join("\n")
}

/// Rerank depth from the retrieval scores (best first): at least `min`, at most `window`, and
/// cut where a score falls below `cliff` times the first after normalisation.
pub fn adaptive_depth(scores: &[f32], window: usize, min: usize, cliff: f32) -> usize {
    let window = window.min(scores.len());
    if window <= min {
        return window;
    }
    let norm = min_max(scores);
    let cut = norm.iter().take(window).position(|s| *s < cliff).unwrap_or(window);
    cut.clamp(min, window)
}

/// Scores scaled into (0, 1] by the largest (`s / max`) when all are positive, so that ratios
/// survive and multiplicative boosts can reorder; min-max otherwise.
pub fn relative(scores: &[f32]) -> Vec<f32> {
    // One pass for the largest and whether all are positive (no early exit: it vectorises).
    let (max, all_positive) = scores.iter().fold((f32::NEG_INFINITY, true), |(m, pos), &s| {
        (if s > m { s } else { m }, pos & (s > 0.0))
    });
    if max > 0.0 && all_positive {
        scores.iter().map(|s| s / max).collect()
    } else {
        min_max(scores)
    }
}

/// Relevance from the stages: `1 + w · rerank + (1 - w) · relative(retrieval)` for reranked
/// candidates (so they stay above the others), `relative(retrieval)` for the rest.
pub fn blend_stages(candidates: &[Candidate], w: f32) -> Vec<f32> {
    let retrieval: Vec<f32> = candidates.iter().map(|c| c.scores.retrieval).collect();
    let norm = relative(&retrieval);
    candidates
        .iter()
        .zip(norm)
        .map(|(c, r)| match c.scores.rerank {
            Some(p) => 1.0 + w * p + (1.0 - w) * r,
            None => r,
        })
        .collect()
}

/// [`blend_stages`] on columns: `1 + w · rerank + (1 - w) · relative(retrieval)` where the
/// candidate was reranked, `relative(retrieval)` elsewhere.
pub fn blend_columns(c: &crate::Candidates, w: f32) -> Vec<f32> {
    relative(&c.scores.retrieval)
        .into_iter()
        .zip(&c.scores.rerank)
        .map(|(r, p)| if p.is_nan() { r } else { 1.0 + w * p + (1.0 - w) * r })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Field;

    #[test]
    fn formulas() {
        assert!((rrf(1, 60.0) - 1.0 / 61.0).abs() < 1e-9);
        assert_eq!(min_max(&[2.0, 4.0, 3.0]), vec![0.0, 1.0, 0.5]);
        assert_eq!(min_max(&[3.0, 3.0]), vec![1.0, 1.0]);
        assert_eq!(relative(&[2.0, 4.0, 1.0]), vec![0.5, 1.0, 0.25]);
        assert_eq!(relative(&[-1.0, 1.0]), vec![0.0, 1.0]);
        let z = z_score(&[1.0, 3.0]);
        assert!((z[0] + 1.0).abs() < 1e-6 && (z[1] - 1.0).abs() < 1e-6);
        assert!((exp_decay(86_400.0, 86_400.0) - 0.5).abs() < 1e-12);
        assert_eq!(exp_decay(-5.0, 10.0), 1.0);
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(1_714_521_600), "2024-05-01");
    }

    #[test]
    fn languages() {
        assert_eq!(detect_language("红色连衣裙"), Language::Chinese);
        assert_eq!(detect_language("red dress 连衣裙"), Language::Chinese);
        assert_eq!(detect_language("赤いドレス"), Language::Japanese);
        assert_eq!(detect_language("빨간 드레스"), Language::Korean);
        assert_eq!(detect_language("red dress"), Language::Other);
        assert_eq!(detect_language("a long english sentence with one 字"), Language::Other);
        assert_eq!(detect_language("123"), Language::Other);
    }

    #[test]
    fn depth() {
        let scores = [1.0, 0.95, 0.9, 0.2, 0.1, 0.05];
        assert_eq!(adaptive_depth(&scores, 50, 2, 0.5), 3);
        assert_eq!(adaptive_depth(&scores, 50, 4, 0.5), 4);
        assert_eq!(adaptive_depth(&scores, 2, 1, 0.5), 2);
    }

    /// Fields first, then the tags and the caption.
    #[test]
    fn rendering_lists_fields_then_tags_and_caption() {
        let mut c = Candidate::new(
            "p1",
            vec![
                Field::new("title", FieldValue::Text("Quay".into())),
                Field::new("place", FieldValue::Keyword("boat".into())),
            ],
            1.0,
        );
        c.tags = vec!["night".into(), "boat".into()];
        c.caption = Some("boats in a harbour".into());
        assert_eq!(
            render_fields(&c, &[]),
            "title: Quay\nplace: boat\ntags: night, boat\ncaption: boats in a harbour"
        );
    }
}
