//! `mira eval`: judged queries through the pipeline, scored, and two runs compared.

use std::path::Path;

use anyhow::{Context, Result};
use mira_host::Catalog;
use mira_host::eval::{EvalReport, RunSpec};

use crate::cli::EvalArgs;
use crate::plugins;

pub fn run(catalog: &Catalog, data_dir: &Path, config: Option<&Path>, args: EvalArgs) -> Result<()> {
    let c = catalog.open(&args.collection)?;
    let origin = args.judgments.display().to_string();
    let text = std::fs::read_to_string(&args.judgments).with_context(|| format!("reading {origin}"))?;
    let qrels = match &args.qrels {
        Some(p) => Some((
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            p.display().to_string(),
        )),
        None => None,
    };
    let queries = mira_host::eval::load(&text, &origin, qrels.as_ref().map(|(t, o)| (t.as_str(), o.as_str())))
        .map_err(|e| mira_host::Error::from(mira_host::QueryError::Judgments(e.to_string())))?;
    let names_plugin = |settings: &[(String, String)]| settings.iter().any(|(k, _)| k == "plugin" || k == "scenario");
    let needs_plugins = args.against_plugin.is_some()
        || names_plugin(&args.set)
        || names_plugin(&args.against)
        || queries.iter().any(|q| q.plugin.is_some() || q.scenario.is_some());
    let registry = match needs_plugins {
        true => Some(plugins::registry(&plugins::engine_config(config, data_dir)?, data_dir)?),
        false => None,
    };
    let candidate = match &args.against_plugin {
        Some(path) => {
            let registry = registry.as_ref().expect("built above");
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Some(
                registry
                    .stage(&bytes, &path.display().to_string())
                    .map_err(mira_host::Error::Plugin)?,
            )
        }
        None => None,
    };
    let origin = args
        .against_plugin
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let runs = RunSpec::runs(registry.as_deref(), args.set, args.against, candidate, &origin);
    let image_dir = args.judgments.parent().map(Path::to_path_buf).unwrap_or_default();
    let report = mira_host::eval::run(&c, registry.as_deref(), &queries, Some(&image_dir), &runs, args.k)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report, args.per_query);
    }
    Ok(())
}

fn print(r: &EvalReport, per_query: bool) {
    let k = r.k;
    println!("{} judged queries, k = {k}", r.queries);
    let width = r.runs.iter().map(|run| run.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<width$}  {:>8}  {:>6}  {:>9}  {:>6}",
        "run",
        format!("nDCG@{k}"),
        "MRR",
        format!("recall@{k}"),
        format!("P@{k}")
    );
    for run in &r.runs {
        let s = &run.summary;
        println!(
            "{:<width$}  {:>8.4}  {:>6.4}  {:>9.4}  {:>6.4}",
            run.name, s.ndcg, s.mrr, s.recall, s.precision
        );
    }
    if let Some(c) = &r.comparison {
        println!("{} against {} (paired randomization test):", c.b, c.a);
        for (name, m) in [
            ("nDCG", &c.ndcg),
            ("MRR", &c.mrr),
            ("recall", &c.recall),
            ("P", &c.precision),
        ] {
            println!(
                "  {name:<6} {:+.4}  p = {:.4}  ({} better, {} worse, {} tied of {})",
                m.mean_delta, m.p_value, m.wins, m.losses, m.ties, m.queries
            );
        }
        if per_query {
            for q in &c.queries {
                let show = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.4}"));
                let delta = q.delta.map_or("-".to_string(), |d| format!("{d:+.4}"));
                println!("  {:<20} {} -> {}  {delta}", q.id, show(q.ndcg_a), show(q.ndcg_b));
            }
        }
    } else if per_query {
        for q in &r.runs[0].queries {
            let ndcg = q.metrics.ndcg.map_or("-".to_string(), |x| format!("{x:.4}"));
            println!("  {:<20} nDCG {ndcg}  hits {}", q.id, q.hits.join(" "));
        }
    }
}
