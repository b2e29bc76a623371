//! `mira-bench`: Mira's measurements, each against a baseline measured in the same run (the
//! memory-bandwidth floor for kNN scans, native Rust for the plugin stage, candle-transformers'
//! reference models for inference). Kept out of the shipped `mira` binary: this crate alone
//! links the random-weight model generators, the reference models and the test plugins.
//!
//! ```text
//! cargo run --release -p mira-bench -- search      # kNN, BM25, ingest
//! cargo run --release -p mira-bench -- ann         # HNSW recall/throughput (peers: benches/peers)
//! cargo run --release -p mira-bench -- plugins     # the plugin boundary
//! cargo run --release -p mira-bench -- models      # CLIP and Qwen3-Reranker throughput
//! cargo run --release -p mira-bench -- caption     # BLIP captions
//! cargo run --release -p mira-bench -- server      # HTTP load test with a hot swap
//! benches/peers/models.sh                           # CLIP and the reranker against PyTorch
//! ```

mod ann;
mod caption;
mod facets;
mod models;
mod peers;
mod plugins;
mod rerank;
mod search;
mod server;
mod timing;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum BenchSuite {
    /// kNN scans, BM25 and ingest.
    Search,
    /// Approximate kNN (HNSW, f32 and i8) on low-intrinsic-dimension data, with the files
    /// `benches/peers/ann.py` runs FAISS and hnswlib on.
    Ann,
    /// Ingest in batches with background graph builds (how graph cost grows under merges), then
    /// open time and first-query latency.
    AnnGrowth,
    /// The plugin stage against the same logic in native Rust, and per-call set-up.
    Plugins,
    /// CLIP embedding throughput (ViT-B/32-shaped) and Qwen3-Reranker pairs/s (0.6B-shaped),
    /// on random-weight models.
    Models,
    /// Only the CLIP part of `models`.
    Clip,
    /// Only the reranker part of `models`.
    Reranker,
    /// BLIP captions/s (blip-image-captioning-base-shaped) against candle-transformers' BLIP.
    Caption,
    /// A load test of the HTTP server on loopback, with a plugin hot swap in the middle.
    Server,
    /// Facet counts over a text query's matches against tantivy's aggregations.
    Facets,
    /// The Mira half of the comparison with PyTorch + transformers: writes models and inputs
    /// to `--dir`, runs them, writes `--dir`/mira.json (`benches/peers/models.sh` runs both).
    ModelPeers,
    All,
}

/// Measure kNN scans, BM25 queries, ingest, the plugin stage, models and the server.
#[derive(Parser)]
#[command(name = "mira-bench", version)]
pub struct BenchArgs {
    /// Which measurements to run.
    #[arg(value_enum, default_value = "all")]
    pub suite: BenchSuite,
    /// Documents in the kNN collection.
    #[arg(long, default_value_t = 100_000)]
    pub docs: usize,
    #[arg(long, default_value_t = 512)]
    pub dim: usize,
    /// Queries per measurement.
    #[arg(long, default_value_t = 50)]
    pub queries: usize,
    /// Documents in the ingest measurement (JSONL with vectors, through `mira index`'s path).
    #[arg(long, default_value_t = 20_000)]
    pub ingest_docs: usize,
    /// Documents per commit in `ann-growth`.
    #[arg(long, default_value_t = 50_000)]
    pub batch: usize,
    /// Searches in the server load test.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Concurrent clients in the server load test.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Working directory (default: a temporary one, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
    /// model-peers: `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// model-peers: f32, bf16, f16, or q8 (the reranker's linears; CLIP stays f32).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// model-peers: the reranker's shape, 0.6b, 4b, 8b, or none.
    #[arg(long, default_value = "0.6b")]
    pub reranker: String,
    /// model-peers: prompt lengths in tokens, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "200")]
    pub tokens: Vec<usize>,
    /// model-peers: prompts per length.
    #[arg(long, default_value_t = 8)]
    pub pairs: usize,
    /// model-peers: prompts per forward pass.
    #[arg(long, default_value_t = 8)]
    pub rerank_batch: usize,
    /// model-peers: image files and texts to embed, and how many per batch.
    #[arg(long, default_value_t = 32)]
    pub images: usize,
    #[arg(long, default_value_t = 64)]
    pub texts: usize,
    #[arg(long, default_value_t = 16)]
    pub clip_batch: usize,
    /// model-peers: the reranker only.
    #[arg(long)]
    pub skip_clip: bool,
    /// model-peers: BLIP-base captions of this many images (0: no captioner).
    #[arg(long, default_value_t = 0)]
    pub captions: usize,
}

fn main() -> ExitCode {
    match run(BenchArgs::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: BenchArgs) -> Result<()> {
    if args.suite == BenchSuite::ModelPeers {
        let Some(dir) = args.dir.clone() else {
            anyhow::bail!("model-peers needs --dir (benches/peers/models.py reads what it writes there)");
        };
        return peers::run(&peers::PeerArgs {
            dir,
            device: args.device.clone(),
            dtype: mira_host::models::ModelDType::parse(&args.dtype)?,
            reranker: args.reranker.clone(),
            tokens: args.tokens.clone(),
            pairs: args.pairs,
            batch: args.rerank_batch,
            images: args.images,
            texts: args.texts,
            clip_batch: args.clip_batch,
            skip_clip: args.skip_clip,
            captions: args.captions,
        });
    }
    if args.suite == BenchSuite::Caption {
        let figures = caption::run()?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&figures)?);
        } else {
            caption::print(&figures);
        }
        return Ok(());
    }
    let clip = matches!(args.suite, BenchSuite::Models | BenchSuite::Clip | BenchSuite::All);
    let reranker = matches!(args.suite, BenchSuite::Models | BenchSuite::Reranker | BenchSuite::All);
    if clip || reranker {
        let clip = clip.then(models::run).transpose()?;
        let reranker = reranker.then(rerank::run).transpose()?;
        if args.json && args.suite != BenchSuite::All {
            println!("{}", serde_json::json!({"clip": clip, "reranker": reranker}));
        } else {
            clip.iter().for_each(models::print);
            reranker.iter().for_each(rerank::print);
        }
        if args.suite != BenchSuite::All {
            return Ok(());
        }
    }
    if matches!(args.suite, BenchSuite::Plugins | BenchSuite::All) {
        let figures = plugins::run(1000, args.queries.max(10))?;
        if args.json && args.suite == BenchSuite::Plugins {
            println!("{}", serde_json::to_string_pretty(&figures)?);
        } else {
            plugins::print(&figures);
        }
        if args.suite == BenchSuite::Plugins {
            return Ok(());
        }
    }
    if matches!(args.suite, BenchSuite::Facets | BenchSuite::All) {
        let dir = args
            .dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("mira-bench-facets"));
        let figures = facets::run(args.docs, args.queries, &dir)?;
        if args.dir.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        if args.json && args.suite == BenchSuite::Facets {
            println!("{}", serde_json::to_string_pretty(&figures)?);
        } else {
            facets::print(&figures);
        }
        if args.suite == BenchSuite::Facets {
            return Ok(());
        }
    }
    if matches!(args.suite, BenchSuite::Server | BenchSuite::All) {
        let figures = server::run(args.requests, args.concurrency, 3000)?;
        if args.json && args.suite == BenchSuite::Server {
            println!("{}", serde_json::to_string_pretty(&figures)?);
        } else {
            server::print(&figures);
        }
        server::check(&figures)?;
        if args.suite == BenchSuite::Server {
            return Ok(());
        }
    }
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("mira-bench-{}", std::process::id())));
    let cleanup = args.dir.is_none();
    let result = if args.suite == BenchSuite::AnnGrowth {
        ann::growth(&args, &dir).and_then(|g| {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&g)?);
            } else {
                ann::print_growth(&g);
            }
            Ok(())
        })
    } else if args.suite == BenchSuite::Ann {
        ann::run_in(&args, &dir).and_then(|r| {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                ann::print(&r);
            }
            Ok(())
        })
    } else {
        search::run_in(&args, &dir)
    };
    if cleanup {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}
