//! One function per subcommand.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use mira_host::ingest::{self, IngestOptions, InputFormat, OnError};
use mira_host::models::{ModelKind, resolve_model};
use mira_host::search::Normalization;
use mira_host::{Catalog, CollectionSchema, SearchRequest};

use crate::cli::{self, Cli, Command};
use crate::{output, plugins, progress};

pub fn run(cli: Cli) -> Result<()> {
    let catalog = Catalog::new(&cli.data_dir);
    match cli.command {
        Command::Demo { products, rebuild } => demo(&catalog, &cli.data_dir, cli.config.as_deref(), products, rebuild),
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
        Command::Index(args) => index(&catalog, args),
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
        Command::Search(args) => search(&catalog, &cli.data_dir, cli.config.as_deref(), args),
        Command::Plugin(cmd) => plugin(&cli.data_dir, cli.config.as_deref(), cmd),
        Command::Model(cmd) => crate::model::run(cmd),
        Command::Serve(args) => crate::serve::run(&cli.data_dir, cli.config.as_deref(), args),
    }
}

fn plugin(data_dir: &Path, config: Option<&Path>, cmd: cli::PluginCommand) -> Result<()> {
    let config = plugins::engine_config(config, data_dir)?;
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
                }
            }
        }
        cli::PluginCommand::Load { path } => {
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
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
    }
    Ok(())
}

fn index(catalog: &Catalog, args: cli::IndexArgs) -> Result<()> {
    let c = catalog.open(&args.collection)?;
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
    };
    let bar = progress::IngestBar::new();
    let report = ingest::ingest(&c, &args.path, &opts, &bar)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        output::print_report(&report);
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
        explain: args.explain,
        rerank_window: args.rerank_window,
        instruction: args.instruction,
        scenario: args.scenario,
        plugin: args.plugin,
        params: args.params.into_iter().collect(),
        now: None,
    };
    let resp = c.search_with(&req, registry.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&resp)?);
    } else {
        output::print_hits(&resp, args.offset, c.schema());
    }
    Ok(())
}

const DEMO_COLLECTION: &str = "demo-products";

/// The demo's example queries: (what it shows, text, filter).
const DEMO_QUERIES: &[(&str, &str, Option<&str>)] = &[
    (
        "English text, stemmed (\"dresses\" finds \"dress\")",
        "red dresses",
        None,
    ),
    ("Chinese text, segmented by jieba", "红色 连衣裙", None),
    ("text + numeric range filter", "leather boots", Some("price:[0 TO 250]")),
    (
        "text + rating and stock filters",
        "silk scarf",
        Some("rating:>=4.5 AND in_stock:true"),
    ),
    ("text + facet filter", "vintage", Some("kind:/accessories")),
    (
        "text + date range filter",
        "jacket",
        Some("released:[2025-01-01T00:00:00Z TO 2026-01-01T00:00:00Z]"),
    ),
];

/// Candidates the demo reranks per query (a 0.6B model on a laptop CPU reads about one a second).
const DEMO_RERANK_WINDOW: usize = 10;

/// The model the demo uses for `kind`: the environment's override, else the default repo, if
/// it can be found; otherwise says why, and the demo goes on without it.
fn demo_model(kind: ModelKind) -> Option<String> {
    let spec = kind.env_or_default();
    match resolve_model(&spec, kind) {
        Ok(dir) => {
            println!("using {spec} ({})", dir.display());
            Some(spec)
        }
        Err(e) => {
            println!(
                "no {} model: {e}",
                if kind == ModelKind::Clip { "CLIP" } else { "reranker" }
            );
            None
        }
    }
}

fn demo(catalog: &Catalog, data_dir: &Path, config: Option<&Path>, products: usize, rebuild: bool) -> Result<()> {
    if products == 0 {
        bail!("--products must be at least 1");
    }
    if rebuild && catalog.exists(DEMO_COLLECTION) {
        catalog.drop_collection(DEMO_COLLECTION)?;
    }
    let c = if catalog.exists(DEMO_COLLECTION) {
        println!(
            "using the demo collection in {} (--rebuild to make it again)",
            data_dir.display()
        );
        catalog.open(DEMO_COLLECTION)?
    } else {
        let dir = data_dir.join("demo");
        println!("generating {products} products with photos in {} ...", dir.display());
        let data = mira_host::demo::generate(&dir, products, 42)?;
        let mut toml = mira_host::demo::PRODUCTS_SCHEMA.replacen(
            "name = \"products\"",
            &format!("name = \"{DEMO_COLLECTION}\""),
            1,
        );
        let (clip, reranker) = (demo_model(ModelKind::Clip), demo_model(ModelKind::Reranker));
        if clip.is_some() || reranker.is_some() {
            toml.push_str("\n[models]\n");
            for (key, spec) in [("clip", clip), ("reranker", reranker)] {
                if let Some(spec) = spec {
                    toml.push_str(&format!("{key} = {spec:?}\n"));
                }
            }
        }
        let c = catalog.create(CollectionSchema::from_toml(&toml, "configs/products.toml")?)?;
        let report = ingest::ingest(&c, &data.jsonl, &IngestOptions::default(), &progress::IngestBar::new())?;
        output::print_report(&report);
        c
    };
    println!();
    let clip = c.clip()?;
    let reranker = c.reranker()?;
    match &clip {
        Some(m) => println!(
            "CLIP from {}: text queries also search the product photos (BM25 + kNN, fused), and photos carry tags.",
            m.files.dir.display()
        ),
        None => println!("No CLIP model: retrieval is BM25 with filters, and the demo makes up no vectors."),
    }
    match &reranker {
        Some(m) => println!(
            "Qwen3-Reranker from {}: the top {DEMO_RERANK_WINDOW} candidates of each query are reranked by P(yes).",
            m.files.dir.display()
        ),
        None => println!("No reranker: the fused order is final."),
    }
    if clip.is_none() || reranker.is_none() {
        println!(
            "(Models come from MIRA_CLIP_MODEL / MIRA_RERANKER_MODEL, a directory or a repo id, else {} and {} \
             from the Hugging Face cache or hub; they are looked up when the demo collection is built: --rebuild.)",
            ModelKind::Clip.default_repo(),
            ModelKind::Reranker.default_repo()
        );
    }
    for (what, text, filter) in DEMO_QUERIES {
        println!();
        match filter {
            Some(f) => println!("== {what}: \"{text}\" where {f}"),
            None => println!("== {what}: \"{text}\""),
        }
        let req = SearchRequest {
            filter: filter.map(str::to_owned),
            top_k: Some(5),
            rerank_window: Some(DEMO_RERANK_WINDOW),
            ..SearchRequest::text(*text)
        };
        let resp = c.search(&req)?;
        output::print_hits(&resp, 0, c.schema());
        // A shopper's photo: the first hit's own picture as the query.
        if clip.is_some()
            && *text == "red dresses"
            && let Some(photo) = resp
                .hits
                .first()
                .and_then(|h| h.fields.get("image"))
                .and_then(|v| v.as_str())
        {
            println!();
            println!("== image query: the photo {photo}");
            let req = SearchRequest {
                image: Some(photo.into()),
                top_k: Some(5),
                ..Default::default()
            };
            output::print_hits(&c.search(&req)?, 0, c.schema());
        }
    }
    let registry = plugins::registry(&plugins::engine_config(config, data_dir)?, data_dir)?;
    for (text, params) in [("red dress", vec![("max_price", "80")]), ("红色 连衣裙", vec![])] {
        println!();
        println!("== the e-commerce ranking plugin (a WebAssembly component): \"{text}\" {params:?}");
        let req = SearchRequest {
            scenario: Some("ecommerce".into()),
            params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            top_k: Some(5),
            rerank_window: Some(DEMO_RERANK_WINDOW),
            ..SearchRequest::text(text)
        };
        output::print_hits(&c.search_with(&req, Some(&registry))?, 0, c.schema());
    }
    println!();
    println!("Try your own: mira search {DEMO_COLLECTION} \"blue wool\" --filter 'price:[0 TO 60]' --explain");
    println!(
        "         or: mira search {DEMO_COLLECTION} \"leather boots\" --scenario ecommerce --param max_price=150 --explain"
    );
    Ok(())
}
