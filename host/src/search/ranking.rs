//! The stages after retrieval fusion: a ranking plugin's instruction, rerank depth and rendering,
//! Qwen3-Reranker over the top of the fused list, and the final order (the plugin's fusion of
//! every stage, or by default the reranked window by P("yes") followed by the rest in fused
//! order). Any plugin failure falls back to the built-in choices and is reported; the reranker
//! still runs.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;
use tantivy::{DocAddress, Searcher, TantivyDocument};

use super::{Fused, SearchRequest};
use crate::collection::Collection;
use crate::error::{Error, Result};
use crate::plugin::wit::{Candidate, FieldValue, Request};
use crate::plugin::{LoadedPlugin, PluginFailure, PluginScore, PluginSession, RankingReport, RankingStatus, convert};
use crate::rerank::DEFAULT_INSTRUCTION;

/// Largest rerank window a request may ask for.
pub const MAX_RERANK_WINDOW: usize = 1000;

/// What the reranker did for a search.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RerankReport {
    /// The model directory.
    pub model: String,
    /// The instruction the reranker read.
    pub instruction: String,
    /// Where it came from: `request`, `plugin` or `default`.
    pub instruction_source: &'static str,
    /// Candidates asked for (request, plugin's rerank depth, or the collection's default).
    pub window: usize,
    /// Candidates scored.
    pub reranked: usize,
    /// Why nothing was reranked, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub took_ms: f64,
}

/// A hit's reranker verdict.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RerankScore {
    /// P("yes") from Qwen3-Reranker.
    pub p_yes: f32,
    /// 1-based rank by P("yes") among the reranked candidates.
    pub rank: usize,
    /// 1-based rank after retrieval fusion.
    pub retrieval_rank: usize,
    /// The fused retrieval score.
    pub retrieval_score: f32,
    /// The document text the reranker read (the plugin's rendering, or the built-in one).
    pub text: String,
}

/// The final list and what each stage did.
#[derive(Default)]
pub(crate) struct Ranked {
    pub fused: Vec<Fused<DocAddress>>,
    pub plugin: Option<RankingReport>,
    pub rerank: Option<RerankReport>,
    pub plugin_scores: HashMap<DocAddress, PluginScore>,
    pub rerank_scores: HashMap<DocAddress, RerankScore>,
}

/// A plugin in the middle of serving one query.
struct PluginRun<'a> {
    plugin: &'a LoadedPlugin,
    session: Option<PluginSession<'a>>,
    failure: Option<PluginFailure>,
    instruction: Option<String>,
    depth: Option<u32>,
}

impl<'a> PluginRun<'a> {
    fn start(plugin: &'a LoadedPlugin, req: &Request, cands: &[Candidate]) -> Self {
        let mut run = PluginRun {
            plugin,
            session: None,
            failure: None,
            instruction: None,
            depth: None,
        };
        let started = (|| {
            if let Some(q) = plugin.quarantine() {
                return Err(q);
            }
            let mut session = plugin.session()?;
            let instruction = session.instruction(req)?;
            let retrieval: Vec<f32> = cands.iter().map(|c| c.scores.retrieval).collect();
            let depth = session.rerank_depth(req, &retrieval)?;
            Ok((session, instruction, depth))
        })();
        match started {
            Ok((s, i, d)) => {
                run.session = Some(s);
                run.instruction = Some(i);
                run.depth = Some(d);
            }
            Err(e) => run.fail(e),
        }
        run
    }

    fn fail(&mut self, e: PluginFailure) {
        tracing::warn!(plugin = self.plugin.name(), error = %e, "plugin failed; built-in ranking used");
        self.session = None;
        self.failure = Some(e);
    }

    /// The plugin's rendering of each candidate, or `None` once it has failed.
    fn render(&mut self, req: &Request, cands: &[Candidate]) -> Option<Vec<String>> {
        let session = self.session.as_mut()?;
        match cands.iter().map(|c| session.render(req, c)).collect() {
            Ok(texts) => Some(texts),
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    fn fuse(&mut self, req: &Request, cands: &[Candidate]) -> Option<Vec<f32>> {
        let session = self.session.as_mut()?;
        match session.fuse(req, cands) {
            Ok(scores) => Some(scores),
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    fn report(self, candidates: usize, took_ms: f64) -> RankingReport {
        if !matches!(self.failure, Some(PluginFailure::Quarantined { .. })) {
            self.plugin.record(self.failure.is_none());
        }
        let ok = self.failure.is_none();
        RankingReport {
            plugin: self.plugin.name().to_owned(),
            version: self.plugin.description.version.clone(),
            status: if ok { RankingStatus::Ok } else { RankingStatus::Fallback },
            error: self.failure,
            instruction: self
                .instruction
                .filter(|_| ok)
                .unwrap_or_else(|| DEFAULT_INSTRUCTION.to_owned()),
            rerank_depth: self.depth.filter(|_| ok),
            candidates,
            took_ms,
        }
    }
}

/// Runs the plugin (at most `max_candidates` candidates) and the reranker over `fused`.
pub(crate) fn rank(
    c: &Collection,
    searcher: &Searcher,
    req: &SearchRequest,
    mut fused: Vec<Fused<DocAddress>>,
    plugin: Option<(&LoadedPlugin, usize)>,
) -> Result<Ranked> {
    let reranker = c.reranker()?;
    if plugin.is_none() && reranker.is_none() {
        return Ok(Ranked {
            fused,
            ..Default::default()
        });
    }
    let started = Instant::now();
    if let Some(w) = req.rerank_window
        && w > MAX_RERANK_WINDOW
    {
        return Err(Error::Query(format!(
            "rerank_window must be at most {MAX_RERANK_WINDOW}, got {w}"
        )));
    }
    if let Some((_, max)) = plugin {
        fused.truncate(max);
    }
    let now = req.now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    let wreq = convert::request(req, now);
    // The plugin sees every candidate; the reranker alone needs only its window.
    let default_window = req.rerank_window.unwrap_or(c.schema().search.rerank_window);
    let needed = if plugin.is_some() {
        fused.len()
    } else {
        default_window.min(fused.len())
    };
    let mut cands = Vec::with_capacity(needed);
    for (i, f) in fused.iter().take(needed).enumerate() {
        let doc: TantivyDocument = searcher.doc(f.key)?;
        cands.push(convert::candidate(c, &doc, c.fields().id_of(&doc), f, i as u32 + 1));
    }
    let mut run = plugin.map(|(p, _)| PluginRun::start(p, &wreq, &cands));
    let plugin_ms = started.elapsed().as_secs_f64() * 1e3;

    // The reranker over the window.
    let mut rerank_report = None;
    let mut p_yes: Vec<Option<f32>> = vec![None; cands.len()];
    let mut texts: Vec<String> = Vec::new();
    if let Some(reranker) = &reranker {
        let rerank_started = Instant::now();
        let plugin_depth = run.as_ref().filter(|r| r.failure.is_none()).and_then(|r| r.depth);
        let window = req
            .rerank_window
            .or(plugin_depth.map(|d| d as usize))
            .unwrap_or(c.schema().search.rerank_window)
            .min(cands.len());
        let (instruction, source) = match (&req.instruction, run.as_ref().and_then(|r| r.instruction.as_ref())) {
            (Some(i), _) if !i.trim().is_empty() => (i.clone(), "request"),
            (_, Some(i)) if run.as_ref().is_some_and(|r| r.failure.is_none()) => (i.clone(), "plugin"),
            _ => (DEFAULT_INSTRUCTION.to_owned(), "default"),
        };
        let query = req.text.as_deref().map(str::trim).unwrap_or("");
        let mut report = RerankReport {
            model: reranker.files.dir.display().to_string(),
            instruction,
            instruction_source: source,
            window,
            reranked: 0,
            skipped: None,
            took_ms: 0.0,
        };
        if query.is_empty() {
            report.skipped = Some("no text query for the reranker to read".into());
        } else if window == 0 {
            report.skipped = Some("rerank window is 0".into());
        } else {
            let window_cands = &cands[..window];
            texts = run
                .as_mut()
                .and_then(|r| r.render(&wreq, window_cands))
                .unwrap_or_else(|| window_cands.iter().map(render).collect());
            let docs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let scores = reranker.score(&report.instruction, query, &docs)?;
            for (i, s) in scores.into_iter().enumerate() {
                p_yes[i] = Some(s);
                cands[i].scores.rerank = Some(s);
            }
            report.reranked = window;
        }
        report.took_ms = rerank_started.elapsed().as_secs_f64() * 1e3;
        rerank_report = Some(report);
    }

    // The final order.
    let fuse_started = Instant::now();
    let plugin_final = run.as_mut().and_then(|r| r.fuse(&wreq, &cands));
    let mut rerank_scores = HashMap::new();
    let mut by_p: Vec<usize> = (0..p_yes.len()).filter(|&i| p_yes[i].is_some()).collect();
    by_p.sort_by(|&a, &b| p_yes[b].unwrap_or(0.0).total_cmp(&p_yes[a].unwrap_or(0.0)));
    for (rank, &i) in by_p.iter().enumerate() {
        rerank_scores.insert(
            fused[i].key,
            RerankScore {
                p_yes: p_yes[i].unwrap_or(0.0),
                rank: rank + 1,
                retrieval_rank: i + 1,
                retrieval_score: fused[i].score,
                text: std::mem::take(&mut texts[i]),
            },
        );
    }
    let mut plugin_scores = HashMap::new();
    let final_scores: Vec<Option<f32>> = match &plugin_final {
        Some(scores) => {
            for (i, (f, s)) in fused.iter().zip(scores).enumerate() {
                plugin_scores.insert(
                    f.key,
                    PluginScore {
                        score: *s,
                        retrieval_score: f.score,
                        retrieval_rank: i + 1,
                    },
                );
            }
            scores.iter().copied().map(Some).collect()
        }
        None => p_yes,
    };
    // Stable: candidates with a final score first, by it; the others keep the fused order.
    let mut ordered: Vec<(usize, Fused<DocAddress>)> = fused.into_iter().enumerate().collect();
    ordered.sort_by(|(a, _), (b, _)| {
        let (sa, sb) = (
            final_scores.get(*a).copied().flatten(),
            final_scores.get(*b).copied().flatten(),
        );
        match (sa, sb) {
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.cmp(b),
        }
    });
    let fused = ordered
        .into_iter()
        .map(|(i, mut f)| {
            if let Some(Some(s)) = final_scores.get(i) {
                f.score = *s;
            }
            f
        })
        .collect();
    let plugin = run.map(|r| r.report(cands.len(), plugin_ms + fuse_started.elapsed().as_secs_f64() * 1e3));
    Ok(Ranked {
        fused,
        plugin,
        rerank: rerank_report,
        plugin_scores,
        rerank_scores,
    })
}

/// The built-in text of a candidate for the reranker: `name: value` lines, then tags and
/// caption (as the SDK's `render_fields`, without repeating the tags and caption fields).
pub(crate) fn render(c: &Candidate) -> String {
    let mut lines: Vec<String> = c
        .fields
        .iter()
        .map(|f| {
            let v = match &f.value {
                FieldValue::Text(s) | FieldValue::Keyword(s) | FieldValue::Facet(s) => s.clone(),
                FieldValue::Number(x) => x.to_string(),
                FieldValue::Integer(x) => x.to_string(),
                FieldValue::Boolean(b) => b.to_string(),
                FieldValue::Date(secs) => time::OffsetDateTime::from_unix_timestamp(*secs)
                    .map(|d| d.date().to_string())
                    .unwrap_or_else(|_| secs.to_string()),
            };
            format!("{}: {v}", f.name)
        })
        .collect();
    if !c.tags.is_empty() {
        lines.push(format!("tags: {}", c.tags.join(", ")));
    }
    if let Some(caption) = &c.caption {
        lines.push(format!("caption: {caption}"));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::wit::{Field, StageScores};

    /// Fields as they are, then the tags and the caption (the host passes those apart from the
    /// fields, so a field whose value equals a tag is still a field).
    #[test]
    fn the_built_in_rendering() {
        let c = Candidate {
            id: "p1".into(),
            fields: vec![
                Field {
                    name: "title".into(),
                    value: FieldValue::Text("Quay".into()),
                },
                Field {
                    name: "place".into(),
                    value: FieldValue::Keyword("boat".into()),
                },
            ],
            scores: StageScores {
                bm25: None,
                bm25_rank: None,
                vector: None,
                vector_rank: None,
                retrieval: 1.0,
                retrieval_rank: 1,
                rerank: None,
            },
            tags: vec!["night".into(), "boat".into()],
            caption: Some("boats in a harbour".into()),
            has_image: true,
        };
        assert_eq!(
            render(&c),
            "title: Quay\nplace: boat\ntags: night, boat\ncaption: boats in a harbour"
        );
    }
}
