//! The stages after retrieval fusion: a ranking plugin's instruction, rerank depth and rendering,
//! Qwen3-Reranker over the top of the fused list, and the final order (the plugin's fusion of
//! every stage, or by default the reranked window by P("yes") followed by the rest in fused
//! order). Any plugin failure falls back to the built-in choices and is reported; the reranker
//! still runs.

use std::time::Instant;

use serde::Serialize;
use tantivy::Searcher;

use super::candidate::{Candidate, CandidateFields, RerankVerdict};
use super::plan::{PluginPlan, SearchPlan};
use super::to_plugin;
use crate::collection::Collection;
use crate::error::Result;
use crate::plugin::wit;
use crate::plugin::{LoadedPlugin, PluginFailure, PluginSession, RankingReport, RankingStatus};
use crate::rerank::{DEFAULT_INSTRUCTION, Reranker};

/// Largest rerank window a request may ask for.
pub const MAX_RERANK_WINDOW: usize = 1000;

/// What the reranker did for a search.
#[derive(Debug, Clone, Serialize)]
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
    /// The forward passes this query shared with concurrent ones (when the collection has a
    /// batch window, `[models] rerank_batch_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<SharedRunReport>,
}

/// The run a query's reranking shared with concurrent queries.
#[derive(Debug, Clone, Serialize)]
pub struct SharedRunReport {
    /// Queries in the run, this one included.
    pub queries: usize,
    /// Prompts in the run, this query's included.
    pub prompts: usize,
    /// Time this query waited for others before the run started.
    pub waited_ms: f64,
}

/// A hit's reranker verdict.
#[derive(Debug, Clone, Serialize)]
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

/// A plugin in the middle of serving one query.
struct PluginRun<'a> {
    plugin: &'a LoadedPlugin,
    session: Option<PluginSession<'a>>,
    failure: Option<PluginFailure>,
    instruction: Option<String>,
    depth: Option<u32>,
}

impl<'a> PluginRun<'a> {
    fn start(plugin: &'a LoadedPlugin, req: &wit::Request, retrieval: &[f32]) -> Self {
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
            let mut session = plugin.session_for(req)?;
            let instruction = session.instruction(req)?;
            let depth = session.rerank_depth(req, retrieval)?;
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
    fn render(&mut self, req: &wit::Request, cands: &[wit::Candidate]) -> Option<Vec<String>> {
        let session = self.session.as_mut()?;
        match cands.iter().map(|c| session.render(req, c)).collect() {
            Ok(texts) => Some(texts),
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    fn fuse(&mut self, req: &wit::Request, cands: &[wit::Candidate]) -> Option<Vec<f32>> {
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
        // Quarantine counts only the plugin's own failures: not a quarantine already in force,
        // not a host with no free instance.
        if !matches!(
            self.failure,
            Some(PluginFailure::Quarantined { .. } | PluginFailure::Busy { .. })
        ) {
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

/// What the stages after retrieval did.
#[derive(Default)]
pub(crate) struct StageReports {
    pub plugin: Option<RankingReport>,
    pub rerank: Option<RerankReport>,
}

/// Runs the plugin and the reranker over the fused `cands` and puts them in their final order,
/// updating each record in place. With a plugin, only its first `max_candidates` candidates
/// stay (those it ordered).
pub(crate) fn rank(
    c: &Collection,
    searcher: &Searcher,
    plan: &SearchPlan<'_>,
    cands: &mut Vec<Candidate>,
) -> Result<StageReports> {
    let reranker = c.reranker()?;
    if plan.plugin.is_none() && reranker.is_none() {
        return Ok(StageReports::default());
    }
    let started = Instant::now();
    if let Some(p) = &plan.plugin {
        cands.truncate(p.max_candidates);
    }
    // The documents the stages read: every candidate the plugin sees, else the rerank window.
    let read = match &plan.plugin {
        Some(_) => cands.len(),
        None => plan.rerank.window_without_plugin().min(cands.len()),
    };
    let mut fields = Vec::with_capacity(read);
    for cand in cands.iter_mut().take(read) {
        fields.push(CandidateFields::of(c, cand.doc(searcher)?));
    }
    let mut plugin = plan
        .plugin
        .as_ref()
        .map(|p| PluginStage::start(c, searcher, plan, p, cands));
    let plugin_ms = started.elapsed().as_secs_f64() * 1e3;
    // No free instance within the budget: the query is answered 503 (retry), not silently in
    // the built-in order, and before the reranker spends anything on it.
    if let Some(busy @ PluginFailure::Busy { .. }) = plugin.as_ref().and_then(|p| p.run.failure.as_ref()) {
        return Err(crate::error::Error::Plugin(busy.clone()));
    }

    let rerank = match &reranker {
        Some(reranker) => Some(rerank_window(reranker, plan, cands, &fields, plugin.as_mut())?),
        None => None,
    };

    // The final order: the plugin's scores, else P("yes") over the window; the rest keep the
    // fused order behind.
    let fuse_started = Instant::now();
    let plugin_scores = plugin.as_mut().and_then(|p| p.fuse(cands, &fields));
    for (i, cand) in cands.iter_mut().enumerate() {
        cand.plugin_score = plugin_scores.as_ref().and_then(|s| s.get(i).copied());
    }
    let mut by_p: Vec<usize> = (0..cands.len()).filter(|&i| cands[i].rerank.is_some()).collect();
    by_p.sort_by(|&a, &b| p_yes(&cands[b]).total_cmp(&p_yes(&cands[a])));
    for (rank, &i) in by_p.iter().enumerate() {
        if let Some(v) = cands[i].rerank.as_mut() {
            v.rank = rank + 1;
        }
    }
    let final_score = |cand: &Candidate| match &plugin_scores {
        Some(_) => cand.plugin_score,
        None => cand.rerank.as_ref().map(|r| r.p_yes),
    };
    // Stable: candidates with a final score first, by it; the others keep the fused order.
    cands.sort_by(|a, b| match (final_score(a), final_score(b)) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.retrieval_rank.cmp(&b.retrieval_rank),
    });
    for cand in cands.iter_mut() {
        if let Some(s) = final_score(cand) {
            cand.score = s;
        }
    }
    let plugin = plugin.map(|p| {
        p.run
            .report(p.ids.len(), plugin_ms + fuse_started.elapsed().as_secs_f64() * 1e3)
    });
    Ok(StageReports { plugin, rerank })
}

fn p_yes(c: &Candidate) -> f32 {
    c.rerank.as_ref().map_or(0.0, |r| r.p_yes)
}

/// A plugin serving one search: its session, and the candidates in WIT form as far as the
/// plugin reads them: whole records for the ones it renders (the rerank window) and, for `fuse`,
/// columns of only the fields it named (a 0.2 plugin) or whole records of all (a 0.1 plugin).
struct PluginStage<'a> {
    run: PluginRun<'a>,
    request: wit::Request,
    /// The candidates' external ids, in order.
    ids: Vec<String>,
    /// Whole records of the first candidates, built when first rendered (or, for a 0.1
    /// plugin, for `fuse`).
    records: Vec<wit::Candidate>,
}

impl<'a> PluginStage<'a> {
    fn start(
        c: &Collection,
        searcher: &Searcher,
        plan: &SearchPlan<'_>,
        p: &PluginPlan<'a>,
        cands: &mut [Candidate],
    ) -> Self {
        let request = to_plugin::request(plan);
        let ids: Vec<String> = cands
            .iter_mut()
            .map(|cand| cand.doc(searcher).map(|d| c.fields().id_of(d)).unwrap_or_default())
            .collect();
        let retrieval: Vec<f32> = cands.iter().map(|cand| cand.retrieval.score).collect();
        let run = PluginRun::start(p.plugin, &request, &retrieval);
        PluginStage {
            run,
            request,
            ids,
            records: Vec::new(),
        }
    }

    /// The plugin's depth and instruction, when it answered.
    fn answered(&self) -> Option<(Option<u32>, Option<&str>)> {
        self.run
            .failure
            .is_none()
            .then_some((self.run.depth, self.run.instruction.as_deref()))
    }

    /// Makes `records` hold whole records of (at least) the first `n` candidates, with the
    /// reranker's verdicts as they stand now.
    fn build_records(&mut self, cands: &[Candidate], fields: &[CandidateFields], n: usize) {
        debug_assert!(n <= self.ids.len() && fields.len() >= n && cands.len() >= n);
        for i in self.records.len()..n {
            self.records
                .push(to_plugin::candidate(self.ids[i].clone(), &fields[i], &cands[i], None));
        }
        for (w, cand) in self.records.iter_mut().zip(cands) {
            w.scores.rerank = cand.rerank.as_ref().map(|r| r.p_yes);
        }
    }

    /// The plugin's renderings of the first `n` candidates, or `None` once it has failed.
    fn render(&mut self, cands: &[Candidate], fields: &[CandidateFields], n: usize) -> Option<Vec<String>> {
        self.run.session.as_ref()?;
        self.build_records(cands, fields, n);
        self.run.render(&self.request, &self.records[..n])
    }

    /// The plugin's final scores, after the reranker's verdicts are in.
    fn fuse(&mut self, cands: &[Candidate], fields: &[CandidateFields]) -> Option<Vec<f32>> {
        self.run.session.as_ref()?;
        let n = self.ids.len();
        debug_assert!(fields.len() == n && cands.len() == n);
        let plugin = self.run.plugin;
        if plugin.description.wit == "0.1" {
            self.build_records(cands, fields, n);
            return self.run.fuse(&self.request, &self.records);
        }
        // 0.2: records holding only the fields `fuse` reads, turned into its columns.
        let only = &plugin.description.fuse_fields;
        let wants_id = only.iter().any(|name| name == "id");
        let slim: Vec<wit::Candidate> = (0..n)
            .map(|i| {
                let id = if wants_id { self.ids[i].clone() } else { String::new() };
                to_plugin::candidate(id, &fields[i], &cands[i], Some(only))
            })
            .collect();
        self.run.fuse(&self.request, &slim)
    }
}

/// Scores the rerank window with the reranker.
fn rerank_window(
    reranker: &Reranker,
    plan: &SearchPlan<'_>,
    cands: &mut [Candidate],
    fields: &[CandidateFields],
    mut plugin: Option<&mut PluginStage<'_>>,
) -> Result<RerankReport> {
    let started = Instant::now();
    let answered = plugin.as_ref().and_then(|p| p.answered());
    let window = plan
        .rerank
        .window(answered.and_then(|(d, _)| d))
        .min(cands.len())
        .min(fields.len());
    let (instruction, instruction_source) = plan.rerank.instruction(answered.and_then(|(_, i)| i));
    let mut report = RerankReport {
        model: reranker.files.dir.display().to_string(),
        instruction,
        instruction_source,
        window,
        reranked: 0,
        skipped: None,
        took_ms: 0.0,
        shared: None,
    };
    match &plan.text {
        None => report.skipped = Some("no text query for the reranker to read".into()),
        Some(_) if window == 0 => report.skipped = Some("rerank window is 0".into()),
        Some(text) => {
            let texts = plugin
                .as_mut()
                .and_then(|p| p.render(cands, fields, window))
                .unwrap_or_else(|| fields[..window].iter().map(CandidateFields::render).collect());
            let docs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let (scores, run) = reranker.score_shared(&report.instruction, text.query, &docs, plan.rerank.shared)?;
            if !plan.rerank.shared.wait.is_zero() {
                report.shared = Some(SharedRunReport {
                    queries: run.queries,
                    prompts: run.prompts,
                    waited_ms: run.waited.as_secs_f64() * 1e3,
                });
            }
            for ((cand, p_yes), text) in cands.iter_mut().zip(scores).zip(texts) {
                cand.rerank = Some(RerankVerdict { p_yes, rank: 0, text });
            }
            report.reranked = window;
        }
    }
    report.took_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(report)
}
