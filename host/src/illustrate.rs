//! Article illustration: pictures for each key paragraph of an article in one call, ranked
//! with an instruction about subject, emotion, theme and style, and no picture used twice.
//!
//! Each key paragraph is searched (BM25 over captions and tags, CLIP text-to-image kNN, fused,
//! then reranked with the instruction when a reranker is configured); the candidates of all
//! paragraphs are then assigned greedily by score, best pairs first, so a picture goes to the
//! paragraph it suits best and the article gets different pictures throughout.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::collection::Collection;
use crate::error::{QueryError, Result};
use crate::search::SearchRequest;

/// The instruction the reranker reads when the request gives none.
pub const DEFAULT_ILLUSTRATION_INSTRUCTION: &str = "Given a paragraph of an article, judge whether the picture would illustrate it well: the same subject, and an emotion, theme and style that fit the text";

/// What to illustrate.
#[derive(Debug, Clone, Default)]
pub struct IllustrateRequest {
    /// The article; paragraphs are separated by blank lines.
    pub article: String,
    /// Pictures per paragraph (default 1, at most 10).
    pub per_paragraph: Option<usize>,
    /// Paragraphs shorter than this many characters (headings, captions) get no picture
    /// (default 60).
    pub min_chars: Option<usize>,
    /// Candidates considered per paragraph (default 30).
    pub candidates: Option<usize>,
    /// The reranker instruction (default: subject, emotion, theme and style).
    pub instruction: Option<String>,
    /// A filter every picture must pass (tantivy syntax).
    pub filter: Option<String>,
}

/// A picture chosen for a paragraph.
#[derive(Debug, Clone, Serialize)]
pub struct Picture {
    pub id: String,
    /// The paragraph's final score for it (P(yes) when reranked).
    pub score: f32,
    /// Its rank among the paragraph's own candidates.
    pub rank: usize,
    pub fields: Map<String, Value>,
}

/// One key paragraph and its pictures.
#[derive(Debug, Clone, Serialize)]
pub struct ParagraphPictures {
    /// 0-based position among all paragraphs of the article.
    pub paragraph: usize,
    /// The paragraph's first 160 characters.
    pub excerpt: String,
    pub pictures: Vec<Picture>,
}

/// The illustrated article.
#[derive(Debug, Clone, Serialize)]
pub struct Illustration {
    pub paragraphs: Vec<ParagraphPictures>,
    /// The instruction the reranker read (when one is configured).
    pub instruction: String,
    /// Whether the candidates were reranked.
    pub reranked: bool,
    pub took_ms: f64,
}

/// Splits an article into paragraphs (blank-line separated, whitespace trimmed).
pub fn paragraphs(article: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in article.lines() {
        if line.trim().is_empty() {
            if !current.trim().is_empty() {
                out.push(current.trim().to_owned());
            }
            current.clear();
        } else {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(line.trim());
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

/// Illustrates an article from a collection of pictures.
pub fn illustrate(c: &Collection, req: &IllustrateRequest) -> Result<Illustration> {
    let started = std::time::Instant::now();
    let per = req.per_paragraph.unwrap_or(1);
    if per == 0 || per > 10 {
        return Err(QueryError::Article(format!("per_paragraph must be 1 to 10, got {per}")).into());
    }
    let candidates = req.candidates.unwrap_or(30).clamp(per, 200);
    let min_chars = req.min_chars.unwrap_or(60);
    let all = paragraphs(&req.article);
    if all.is_empty() {
        return Err(QueryError::Article("the article is empty".into()).into());
    }
    let mut key: Vec<(usize, &String)> = all
        .iter()
        .enumerate()
        .filter(|(_, p)| p.chars().count() >= min_chars)
        .collect();
    if key.is_empty() {
        key = all.iter().enumerate().collect();
    }
    if key.len() > 50 {
        return Err(QueryError::Article(format!(
            "the article has {} key paragraphs; at most 50 are illustrated per call",
            key.len()
        ))
        .into());
    }
    let instruction = req
        .instruction
        .clone()
        .filter(|i| !i.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ILLUSTRATION_INSTRUCTION.to_owned());
    // Every paragraph's candidates, best first.
    let mut lists = Vec::with_capacity(key.len());
    let mut reranked = false;
    for (_, text) in &key {
        let resp = c.search(&SearchRequest {
            text: Some(query_text(text)),
            filter: req.filter.clone(),
            top_k: Some(candidates),
            candidates: Some(candidates),
            rerank_window: Some(candidates),
            instruction: Some(instruction.clone()),
            ..Default::default()
        })?;
        reranked |= resp.rerank.as_ref().is_some_and(|r| r.reranked > 0);
        lists.push(resp.hits);
    }
    let chosen = assign(&lists, per);
    let paragraphs = key
        .iter()
        .zip(chosen)
        .map(|((i, text), pictures)| ParagraphPictures {
            paragraph: *i,
            excerpt: text.chars().take(160).collect(),
            pictures,
        })
        .collect();
    Ok(Illustration {
        paragraphs,
        instruction,
        reranked,
        took_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// Greedy assignment of pictures to paragraphs, best (score, paragraph order, rank) first, at
/// most `per` each; a picture is used once.
fn assign(lists: &[Vec<crate::search::Hit>], per: usize) -> Vec<Vec<Picture>> {
    let mut pairs: Vec<(f32, usize, usize)> = lists
        .iter()
        .enumerate()
        .flat_map(|(p, hits)| hits.iter().enumerate().map(move |(r, h)| (h.score, p, r)))
        .collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut used = std::collections::HashSet::new();
    let mut chosen: Vec<Vec<Picture>> = vec![Vec::new(); lists.len()];
    for (score, p, r) in pairs {
        let hit = &lists[p][r];
        if chosen[p].len() >= per || used.contains(&hit.id) {
            continue;
        }
        used.insert(hit.id.clone());
        chosen[p].push(Picture {
            id: hit.id.clone(),
            score,
            rank: r + 1,
            fields: hit.fields.clone(),
        });
    }
    chosen
}

/// A paragraph as a BM25 query: words only, so quotes, colons and brackets in prose are not
/// read as query syntax.
fn query_text(paragraph: &str) -> String {
    let text = paragraph
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c.is_whitespace() {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .filter(|w| !matches!(*w, "AND" | "OR" | "NOT" | "IN" | "TO"))
        .take(crate::search::MAX_QUERY_CLAUSES)
        .collect::<Vec<_>>()
        .join(" ");
    // A long paragraph is searched by its beginning, within the query limits.
    let mut end = text.len().min(crate::search::MAX_QUERY_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A paragraph of any length is searched by its beginning, within the query limits (a long
    /// one would otherwise fail the whole illustration as too complex).
    #[test]
    fn long_paragraphs_fit_the_query_limits() {
        for word in ["harbour", "港口夜景"] {
            let long = vec![word; 5000].join(" ");
            let q = query_text(&long);
            assert!(q.len() <= crate::search::MAX_QUERY_BYTES, "{}", q.len());
            assert!(q.split_whitespace().count() <= crate::search::MAX_QUERY_CLAUSES);
            assert!(q.starts_with(word));
        }
    }

    #[test]
    fn paragraphs_and_queries() {
        let a = "Title\n\nFirst line\ncontinues here.\n\n\n  Second: \"quoted\" [x] AND more  \n";
        assert_eq!(
            paragraphs(a),
            vec!["Title", "First line continues here.", "Second: \"quoted\" [x] AND more"]
        );
        assert_eq!(query_text("Second: \"quoted\" [x] AND more"), "Second quoted x more");
    }
}
