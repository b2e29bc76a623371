//! `[plugins.gate]`: a new plugin version is activated only if it does not lose on a judgment
//! set against the version serving now.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::run::{EvalReport, RunSpec, run};
use super::significance::Comparison;
use crate::collection::Catalog;
use crate::config::GateConfig;
use crate::error::{Error, QueryError, Result};
use crate::plugin::{LoadedPlugin, PluginRegistry};

/// What the gate found.
#[derive(Debug, Clone, Serialize)]
pub struct GateVerdict {
    pub passed: bool,
    pub metric: String,
    /// The new version against the live one on `metric`.
    pub comparison: Comparison,
    /// One line for a log or an error: the means, the difference and the p-value.
    pub summary: String,
}

/// Runs the gate's judged queries with the live version of `candidate`'s name and with
/// `candidate`. A plugin with no live version passes (there is nothing it could lose to).
pub fn check_gate(
    catalog: &Catalog,
    gate: &GateConfig,
    registry: &PluginRegistry,
    candidate: Arc<LoadedPlugin>,
) -> Result<GateVerdict> {
    let read = |p: &Path| -> Result<(String, String)> {
        let path = if p.is_absolute() {
            p.to_path_buf()
        } else {
            catalog.data_dir().join(p)
        };
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Input {
            path: path.clone(),
            source,
        })?;
        Ok((text, path.display().to_string()))
    };
    if registry.get(candidate.name()).is_none() {
        return Ok(GateVerdict {
            passed: true,
            metric: gate.metric.clone(),
            comparison: super::significance::paired_randomization_test(&[]),
            summary: format!("{} has no live version to compare with", candidate.name()),
        });
    }
    let (text, origin) = read(&gate.judgments)?;
    let qrels = gate.qrels.as_deref().map(read).transpose()?;
    let queries = super::judgments::load(&text, &origin, qrels.as_ref().map(|(t, o)| (t.as_str(), o.as_str())))
        .map_err(|e| QueryError::Judgments(e.to_string()))?;
    let c = catalog.open(&gate.collection)?;
    let name = candidate.name().to_owned();
    let version = candidate.description.version.clone();
    let runs = RunSpec::runs(Some(registry), Vec::new(), Vec::new(), Some(candidate), "new");
    let image_dir = Path::new(&origin).parent().map(Path::to_path_buf);
    let report = run(&c, Some(registry), &queries, image_dir.as_deref(), &runs, gate.k)?;
    Ok(verdict(gate, &report, &name, &version))
}

fn verdict(gate: &GateConfig, report: &EvalReport, name: &str, version: &str) -> GateVerdict {
    let Some(cmp) = &report.comparison else {
        unreachable!("a gate always runs two versions");
    };
    let comparison = match gate.metric.as_str() {
        "mrr" => cmp.mrr,
        "recall" => cmp.recall,
        "precision" => cmp.precision,
        _ => cmp.ndcg,
    };
    let passed = comparison.mean_delta >= -gate.max_loss;
    let summary = format!(
        "{name}@{version} on {} judged queries of {}: {metric}@{k} {:.4} against {:.4} for {} ({:+.4}, p = {:.3}; \
         allowed loss {})",
        report.queries,
        gate.collection,
        comparison.mean_b,
        comparison.mean_a,
        report.runs[0].name,
        comparison.mean_delta,
        comparison.p_value,
        gate.max_loss,
        metric = gate.metric,
        k = gate.k,
    );
    GateVerdict {
        passed,
        metric: gate.metric.clone(),
        comparison,
        summary,
    }
}
