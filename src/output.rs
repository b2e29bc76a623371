//! Human-readable output of search results, reports and stats.

use mira_host::CollectionSchema;
use mira_host::ingest::IngestReport;
use mira_host::schema::FieldKind;
use mira_host::{CollectionStats, SearchResponse};
use serde_json::Value;

fn show(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// Prints hits: rank, id, score, the first text field, then a line of the scalar fields.
pub fn print_hits(resp: &SearchResponse, offset: usize, schema: &CollectionSchema, explain: bool) {
    println!(
        "{} hit(s) of {} candidate(s) in {:.1} ms [{}; fusion {}]",
        resp.hits.len(),
        resp.candidates,
        resp.took_ms,
        resp.retrievers.join(" + "),
        resp.fusion
    );
    if let Some(origin) = &resp.query_vector {
        println!("query vector: {origin}");
    }
    for w in &resp.warnings {
        println!("note: {w}");
    }
    if let Some(v) = resp.vector_search.as_ref().filter(|_| explain) {
        for s in &v.segments {
            let ef = s.ef_search.map(|ef| format!(" ef_search {ef}")).unwrap_or_default();
            let why = s.reason.map(|r| format!(" ({r})")).unwrap_or_default();
            println!(
                "knn {} segment {}: {}{ef}, {} of {} vectors scored{why}",
                v.field, s.segment, s.index, s.scored, s.vectors
            );
        }
    }
    if let Some(r) = &resp.ranking {
        match &r.error {
            None => println!(
                "plugin {} {}: {} candidates in {:.2} ms",
                r.plugin, r.version, r.candidates, r.took_ms
            ),
            Some(e) => println!("plugin {} {} FAILED, built-in order used: {e}", r.plugin, r.version),
        }
        println!("plugin instruction: {}", r.instruction);
    }
    if let Some(c) = resp.cuts.as_ref().filter(|_| explain) {
        println!(
            "min_score cut {} bm25 and {} vector candidate(s) before fusion, {} hit(s) after ranking",
            c.bm25, c.vector, c.final_score
        );
    }
    if let Some(i) = &resp.instruction {
        println!("instruction {} ({})", i.hash, i.source);
    }
    if let Some(n) = resp.groups {
        println!("{n} group(s)");
    }
    if let Some(r) = &resp.rerank {
        match &r.skipped {
            None => println!(
                "reranked {} of window {} in {:.0} ms with {} ({} instruction: {})",
                r.reranked, r.window, r.took_ms, r.model, r.instruction_source, r.instruction
            ),
            Some(why) => println!("not reranked: {why}"),
        }
    }
    let title_field = schema.fields.iter().find(|f| matches!(f.kind, FieldKind::Text { .. }));
    let fact_fields: Vec<&str> = schema
        .fields
        .iter()
        .filter(|f| !matches!(f.kind, FieldKind::Text { .. } | FieldKind::Vector(_) | FieldKind::Image))
        .map(|f| f.name.as_str())
        .collect();
    for (i, hit) in resp.hits.iter().enumerate() {
        let title = title_field
            .and_then(|f| hit.fields.get(&f.name))
            .map_or_else(String::new, show);
        let group = hit.group.as_ref().map(|g| format!("  [{g}]")).unwrap_or_default();
        println!(
            "{:>3}. {:<12} {:>9.4}  {}{group}",
            offset + i + 1,
            hit.id,
            hit.score,
            title
        );
        let facts: Vec<String> = fact_fields
            .iter()
            .filter_map(|name| hit.fields.get(*name).map(|v| format!("{name}={}", show(v))))
            .collect();
        if !facts.is_empty() {
            println!("{:>17}{}", "", facts.join("  "));
        }
        if let Some(e) = &hit.explain {
            let stage = |s: &Option<mira_host::search::StageScore>| {
                s.as_ref()
                    .map_or("-".to_string(), |s| format!("{:.4} (#{})", s.score, s.rank))
            };
            println!("{:>17}bm25 {}  vector {}", "", stage(&e.bm25), stage(&e.vector));
            println!("{:>17}{}: {}", "", e.fusion.method, e.fusion.formula);
            if let Some(r) = &e.rerank {
                println!(
                    "{:>17}reranker P(yes) {:.4} (#{} of the reranked; retrieval #{})",
                    "", r.p_yes, r.rank, r.retrieval_rank
                );
            }
            if let Some(p) = &e.plugin {
                println!(
                    "{:>17}plugin score {:.4} (retrieval #{} at {:.4})",
                    "", p.score, p.retrieval_rank, p.retrieval_score
                );
            }
        }
    }
}

/// Prints facet counts: one line per facet, its buckets as `value (count)`, ticked ones starred.
pub fn print_facets(resp: &SearchResponse) {
    if let Some(m) = resp.matching {
        println!("{m} matching document(s)");
    }
    for f in &resp.facets {
        let buckets: Vec<String> = f
            .buckets
            .iter()
            .map(|b| {
                let name = b.label.as_deref().unwrap_or(&b.value);
                format!("{}{name} ({})", if b.selected { "*" } else { "" }, b.count)
            })
            .collect();
        let other = if f.other > 0 {
            format!(", other ({})", f.other)
        } else {
            String::new()
        };
        println!("facet {}: {}{other}", f.field, buckets.join(", "));
    }
}

pub fn print_report(report: &IngestReport) {
    println!(
        "indexed {} of {} rows in {:.1}s ({:.0} docs/s), {} commit(s), {} skipped",
        report.indexed,
        report.rows,
        report.elapsed.as_secs_f64(),
        report.indexed as f64 / report.elapsed.as_secs_f64().max(1e-9),
        report.commits,
        report.skipped
    );
    if report.embedded + report.embeddings_cached > 0 {
        println!(
            "  embeddings: {} computed, {} from the embedding cache",
            report.embedded, report.embeddings_cached
        );
    }
    for w in &report.warnings {
        println!("  warning: {w}");
    }
    for e in &report.errors {
        println!("  skipped {e}");
    }
    if report.skipped as usize > report.errors.len() {
        println!("  ... and {} more", report.skipped as usize - report.errors.len());
    }
}

pub fn print_retag(r: &mira_host::ingest::RetagReport) {
    for f in &r.fields {
        println!(
            "field `{}`: {} words from plugin `{}` ({} new, {} gone)",
            f.field, f.words, f.plugin, f.added, f.removed
        );
    }
    for f in &r.up_to_date {
        println!("field `{f}`: up to date (already tagged with its plugin's words)");
    }
    if r.fields.is_empty() {
        return;
    }
    println!(
        "re-tagged {} document(s) in {:.1}s: {} changed and rewritten, {} failed, {} commit(s)",
        r.checked,
        r.elapsed.as_secs_f64(),
        r.changed,
        r.failed,
        r.commits
    );
    println!(
        "  embeddings: images {} computed, {} from the cache; tag words {} computed, {} from the cache",
        r.images_embedded, r.images_cached, r.words_embedded, r.words_cached
    );
    if r.texts_embedded + r.texts_cached > 0 {
        println!(
            "  text embeddings that read the tags: {} computed, {} from the cache",
            r.texts_embedded, r.texts_cached
        );
    }
    for e in &r.errors {
        println!("  kept the old tags of {e}");
    }
    if r.failed as usize > r.errors.len() {
        println!("  ... and {} more", r.failed as usize - r.errors.len());
    }
    if r.failed > 0 {
        println!("  fix those images and run `mira retag` again");
    }
}

pub fn print_stats(s: &CollectionStats) {
    println!("collection {}", s.name);
    println!("  documents  {}", s.documents);
    println!("  deleted    {} (not yet merged away)", s.deleted);
    println!("  segments   {}", s.segments);
    println!("  index      {:.1} MiB", s.index_bytes as f64 / 1048576.0);
    for v in &s.vector_fields {
        println!(
            "  vector     {} ({}-d {}, {}): {} documents, matrices {:.1} MiB, graphs {:.1} MiB in {} segment(s)",
            v.field,
            v.dim,
            v.dtype,
            v.index,
            v.documents_with_vector,
            v.matrix_bytes as f64 / 1048576.0,
            v.graph_bytes as f64 / 1048576.0,
            v.segments_with_graph
        );
    }
}
