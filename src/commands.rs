//! One function per subcommand.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use mira_host::ingest::{self, IngestOptions, InputFormat, OnError};
use mira_host::search::Normalization;
use mira_host::{Catalog, CollectionSchema, SearchRequest};

use crate::cli::{self, Cli, Command};
use crate::{demo, output, plugins, progress};

pub fn run(cli: Cli) -> Result<()> {
    let catalog = Catalog::new(&cli.data_dir);
    match cli.command {
        Command::Demo { products, rebuild } => {
            demo::run(&catalog, &cli.data_dir, cli.config.as_deref(), products, rebuild)
        }
        Command::Create { schema } => {
            let schema = CollectionSchema::from_file(&schema)?;
            let c = catalog.create(schema)?;
            println!("created collection `{}` in {}", c.name(), c.dir().display());
            Ok(())
        }
        Command::Drop { collection } => {
            catalog.drop_collection(&collection)?;
            println!("dropped collection `{collection}`");
            Ok(())
        }
        Command::Collections { json } => {
            let names = catalog.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&names)?);
            } else if names.is_empty() {
                println!(
                    "no collections in {} (create one with `mira create SCHEMA.toml`)",
                    cli.data_dir.display()
                );
            } else {
                for n in names {
                    let docs = catalog.open(&n).and_then(|c| c.stats()).map(|s| s.documents);
                    match docs {
                        Ok(d) => println!("{n}\t{d} documents"),
                        Err(e) => println!("{n}\t(cannot open: {e})"),
                    }
                }
            }
            Ok(())
        }
        Command::Stats { collection, json } => {
            let stats = catalog.open(&collection)?.stats()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                output::print_stats(&stats);
            }
            Ok(())
        }
        Command::Index(args) => index(&catalog, &cli.data_dir, cli.config.as_deref(), args),
        Command::Retag {
            collection,
            force,
            json,
        } => retag(&catalog, &cli.data_dir, cli.config.as_deref(), &collection, force, json),
        Command::Eval(args) => crate::eval::run(&catalog, &cli.data_dir, cli.config.as_deref(), args),
        Command::Delete(args) => {
            let c = catalog.open(&args.collection)?;
            let mut w = c.writer()?;
            let found = match &args.query {
                Some(q) => w.delete_query(q)?,
                None => w.delete_ids(&args.id)?,
            };
            w.finish()?;
            println!("deleted {found} document(s) from `{}`", args.collection);
            Ok(())
        }
        Command::Search(args) => search(&catalog, &cli.data_dir, cli.config.as_deref(), *args),
        Command::Plugin(cmd) => plugin(&cli.data_dir, cli.config.as_deref(), cmd),
        Command::Model(cmd) => crate::model::run(cmd),
        Command::Serve(args) => crate::serve::run(&cli.data_dir, cli.config.as_deref(), args),
    }
}

fn plugin(data_dir: &Path, config: Option<&Path>, cmd: cli::PluginCommand) -> Result<()> {
    let config = plugins::engine_config(config, data_dir)?;
    // Authoring needs no registry.
    match cmd {
        cli::PluginCommand::New { name, lang, dir } => {
            let root = crate::authoring::new_project(&name, lang, dir.as_deref())?;
            println!(
                "wrote a {lang:?} plugin project in {0}; build it with `mira plugin build {0}`",
                root.display()
            );
            return Ok(());
        }
        cli::PluginCommand::Build { dir, out } => {
            let out = crate::authoring::build(&dir, out.as_deref())?;
            println!("built {}", out.display());
            return Ok(());
        }
        cli::PluginCommand::Test {
            path,
            query,
            params,
            candidates,
        } => return crate::authoring::test(&path, &query, &params, candidates.as_deref(), config.plugins.limits),
        _ => {}
    }
    let registry = plugins::registry(&config, data_dir)?;
    match cmd {
        cli::PluginCommand::List { json } => {
            let list = registry.list();
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for p in list {
                    let previous = p
                        .previous_version
                        .map(|v| format!(", previous {v}"))
                        .unwrap_or_default();
                    println!(
                        "{:<12} {:<8} scenarios {:<32} {}{previous}",
                        p.name,
                        p.version,
                        p.scenarios.join(","),
                        p.origin
                    );
                    let costs: Vec<String> = p
                        .costs
                        .iter()
                        .map(|c| format!("{} p50 {} us p99 {} us", c.call, c.p50_us, c.p99_us))
                        .collect();
                    println!("{:<12} cost per call: {}", "", costs.join(", "));
                }
            }
        }
        cli::PluginCommand::Load { path } => {
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            if let Some(gate) = &config.plugins.gate {
                let staged = registry
                    .stage(&bytes, &path.display().to_string())
                    .map_err(mira_host::Error::Plugin)?;
                let verdict = mira_host::eval::check_gate(&Catalog::new(data_dir), gate, &registry, staged)?;
                if !verdict.passed {
                    return Err(mira_host::Error::PluginConflict(format!("not loaded: {}", verdict.summary)).into());
                }
                println!("gate passed: {}", verdict.summary);
            }
            let p = registry
                .persist(&bytes)
                .with_context(|| format!("loading {}", path.display()))?;
            println!(
                "loaded {} {} (scenarios {}) into {}",
                p.name(),
                p.description.version,
                p.description.scenarios.join(","),
                config.plugin_dir(data_dir).display()
            );
        }
        cli::PluginCommand::Unload { name } => {
            registry.persist_unload(&name)?;
            println!("unloaded {name} (kept as its previous version; `mira plugin rollback {name}` restores it)");
        }
        cli::PluginCommand::Rollback { name } => {
            let p = registry.persist_rollback(&name)?;
            println!("{name} is back to version {}", p.description.version);
        }
        cli::PluginCommand::New { .. } | cli::PluginCommand::Build { .. } | cli::PluginCommand::Test { .. } => {
            unreachable!("handled above")
        }
    }
    Ok(())
}

fn index(catalog: &Catalog, data_dir: &Path, config: Option<&Path>, args: cli::IndexArgs) -> Result<()> {
    let c = catalog.open(&args.collection)?;
    // Tags whose vocabulary a plugin gives need the plugins (built-in and the directory's).
    let vocabularies = if c.schema().needs_plugin_vocabularies() {
        let config = plugins::engine_config(config, data_dir)?;
        plugins::registry(&config, data_dir)?.tag_vocabularies()
    } else {
        Default::default()
    };
    let opts = IngestOptions {
        format: args.format.map(|f| match f {
            cli::Format::Jsonl => InputFormat::Jsonl,
            cli::Format::Csv => InputFormat::Csv,
            cli::Format::Images => InputFormat::Images,
        }),
        on_error: match args.on_error {
            cli::OnError::Fail => OnError::Fail,
            cli::OnError::Skip => OnError::Skip,
        },
        batch_size: args.batch_size,
        sidecar: args.sidecar,
        vocabularies,
    };
    let bar = progress::IngestBar::new();
    let report = ingest::ingest(&c, &args.path, &opts, &bar)?;
    drop(bar);
    // Graphs are built in the background; a one-shot command waits for them so the next
    // process finds them on disk (searches never wait: they scan until a graph is ready).
    let graphs = progress::GraphBar::new();
    c.wait_for_vector_indexes(&mut |b| graphs.show(b))?;
    graphs.finish();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        output::print_report(&report);
    }
    Ok(())
}

fn retag(catalog: &Catalog, data_dir: &Path, config: Option<&Path>, name: &str, force: bool, json: bool) -> Result<()> {
    let c = catalog.open(name)?;
    let vocabularies = if c.schema().needs_plugin_vocabularies() {
        let config = plugins::engine_config(config, data_dir)?;
        plugins::registry(&config, data_dir)?.tag_vocabularies()
    } else {
        Default::default()
    };
    let opts = mira_host::ingest::RetagOptions { vocabularies, force };
    let bar = progress::IngestBar::new();
    let report = mira_host::ingest::retag(&c, &opts, &bar)?;
    drop(bar);
    c.wait_for_vector_indexes(&mut |_| {})?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        output::print_retag(&report);
    }
    Ok(())
}

fn read_vector(path: &Path) -> Result<Vec<f32>> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the query vector from stdin")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the query vector from {}", path.display()))?;
    }
    mira_host::document::parse_vector_text(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn search(catalog: &Catalog, data_dir: &Path, config: Option<&Path>, args: cli::SearchArgs) -> Result<()> {
    let c = catalog.open(&args.collection)?;
    let registry = if args.scenario.is_some() || args.plugin.is_some() {
        Some(plugins::registry(&plugins::engine_config(config, data_dir)?, data_dir)?)
    } else {
        None
    };
    let req = SearchRequest {
        text: args.query,
        text_fields: args.fields,
        vector: args.vector.as_deref().map(read_vector).transpose()?,
        image: args.image,
        image_bytes: None,
        vector_field: args.vector_field,
        filter: args.filter,
        fusion: args.fusion.map(|f| match f {
            cli::Fusion::Rrf => "rrf".to_string(),
            cli::Fusion::Linear => "linear".to_string(),
        }),
        rrf_k: args.rrf_k,
        normalization: args.normalization.map(|n| match n {
            cli::Normalization::Minmax => Normalization::MinMax,
            cli::Normalization::Zscore => Normalization::ZScore,
            cli::Normalization::None => Normalization::None,
        }),
        bm25_weight: args.bm25_weight,
        vector_weight: args.vector_weight,
        top_k: args.top_k,
        offset: args.offset,
        candidates: args.candidates,
        ef_search: args.ef_search,
        exact: args.exact,
        explain: args.explain,
        rerank_window: args.rerank_window,
        instruction: args.instruction,
        scenario: args.scenario,
        plugin: args.plugin,
        params: args.params.into_iter().collect(),
        now: None,
        min_score: mira_host::search::MinScore {
            bm25: args.min_bm25,
            vector: args.min_similarity,
            final_score: args.min_score,
        },
        facets: args.facets,
        facet_filters: {
            let mut m: std::collections::BTreeMap<String, Vec<String>> = Default::default();
            for (field, value) in args.refine {
                m.entry(field).or_default().push(value);
            }
            m
        },
        group_by: args.group_by,
        group_size: args.group_size,
    };
    let resp = c.search_with(&req, registry.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&resp)?);
    } else {
        output::print_hits(&resp, args.offset, c.schema(), args.explain);
        output::print_facets(&resp);
    }
    Ok(())
}
