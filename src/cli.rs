//! Command-line flags, validated by clap before anything runs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "mira",
    version,
    about = "Cross-modal search: BM25 + vector kNN over text and images, in one tantivy index"
)]
pub struct Cli {
    /// Where collections live.
    #[arg(long, global = true, env = "MIRA_DATA_DIR", default_value = "mira-data")]
    pub data_dir: PathBuf,
    /// Engine configuration (default: <data-dir>/mira.toml when present; see configs/mira.toml).
    #[arg(long, global = true, env = "MIRA_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Build a demo product collection from generated data and run example queries.
    Demo {
        /// Products to generate.
        #[arg(long, default_value_t = 3000)]
        products: usize,
        /// Regenerate and re-index even if the demo collection exists.
        #[arg(long)]
        rebuild: bool,
    },
    /// Create a collection from a schema file (see configs/).
    Create { schema: PathBuf },
    /// Delete a collection and all its data.
    Drop { collection: String },
    /// List collections.
    Collections {
        #[arg(long)]
        json: bool,
    },
    /// Show a collection's documents, segments and vector coverage.
    Stats {
        collection: String,
        #[arg(long)]
        json: bool,
    },
    /// Add or replace documents from JSONL, CSV or a folder of images.
    Index(IndexArgs),
    /// Choose again the tags of indexed documents whose clip-tags fields take their words from a
    /// plugin whose words changed (only documents whose tags change are rewritten).
    Retag {
        collection: String,
        /// Re-tag even fields recorded as tagged with their plugin's words now.
        #[arg(long)]
        force: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete documents by id or by filter.
    Delete(DeleteArgs),
    /// Search a collection with text, a vector, or both.
    Search(Box<SearchArgs>),
    /// Score judged queries (nDCG@k, MRR, recall@k, P@k), or compare two configurations.
    Eval(EvalArgs),
    /// Manage ranking plugins (WebAssembly components) in the plugin directory.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Serve the HTTP API and the search page.
    Serve(ServeArgs),
    /// Check a model: its shapes, and the embeddings it gives.
    #[command(subcommand)]
    Model(ModelCommand),
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (default: [server] listen, 127.0.0.1:7700; port 0 picks one).
    #[arg(long)]
    pub listen: Option<String>,
    /// Engine jobs at once (default: [server] workers, one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Jobs that may wait for a worker before requests get 503 (default: [server] queue, 64).
    #[arg(long)]
    pub queue: Option<usize>,
}

/// Device and dtype flags shared by the model commands.
#[derive(Args, Clone)]
pub struct DeviceArgs {
    /// cpu, or cuda:N with a `--features cuda` build.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// f32, f16 or bf16; q8 for the reranker (int8 linear layers, quantized at load).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
}

impl DeviceArgs {
    /// The device and dtype the flags name.
    pub fn parse(&self) -> Result<(candle_core::Device, mira_host::models::ModelDType), mira_host::models::ModelError> {
        Ok((
            mira_host::models::parse_device(&self.device)?,
            mira_host::models::ModelDType::parse(&self.dtype)?,
        ))
    }
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Show what a model holds (a directory in the Hugging Face layout, or a repo id in the cache).
    Info {
        model: String,
        #[arg(long)]
        json: bool,
    },
    /// Print the L2-normalised CLIP embeddings of texts and images.
    Embed {
        /// A CLIP model: a directory (config.json, tokenizer.json, *.safetensors,
        /// preprocessor_config.json) or a Hugging Face repo id[@revision].
        #[arg(long, default_value = "openai/clip-vit-base-patch32")]
        model: String,
        /// A text to embed (repeatable).
        #[arg(long)]
        text: Vec<String>,
        /// An image file to embed (repeatable).
        #[arg(long)]
        image: Vec<PathBuf>,
        #[command(flatten)]
        device: DeviceArgs,
        /// Images over this many pixels are refused before decoding.
        #[arg(long, default_value_t = 64_000_000)]
        max_pixels: u64,
        #[arg(long)]
        json: bool,
    },
    /// Print Qwen3-Reranker's P("yes") for each document against a query.
    Rerank {
        /// A Qwen3-Reranker: a directory (config.json, tokenizer.json, *.safetensors) or a
        /// Hugging Face repo id[@revision].
        #[arg(long, default_value = "Qwen/Qwen3-Reranker-0.6B")]
        model: String,
        /// What relevance means here (default: the model card's web search instruction).
        #[arg(long)]
        instruction: Option<String>,
        #[arg(long)]
        query: String,
        /// A document to score (repeatable, at least one).
        #[arg(long, required = true)]
        doc: Vec<String>,
        /// Longest prompt in tokens; longer documents are cut.
        #[arg(long, default_value_t = mira_host::rerank::DEFAULT_MAX_LENGTH)]
        max_length: usize,
        #[command(flatten)]
        device: DeviceArgs,
        #[arg(long)]
        json: bool,
    },
    /// Print a BLIP caption for each image.
    Caption {
        /// A BLIP captioning model: a directory (config.json, tokenizer.json, *.safetensors,
        /// preprocessor_config.json) or a Hugging Face repo id[@revision].
        #[arg(long, default_value = "Salesforce/blip-image-captioning-base")]
        model: String,
        /// An image file to caption (repeatable, at least one).
        #[arg(long, required = true)]
        image: Vec<PathBuf>,
        /// Longest caption in tokens.
        #[arg(long, default_value_t = mira_host::caption::DEFAULT_CAPTION_TOKENS)]
        max_tokens: usize,
        #[command(flatten)]
        device: DeviceArgs,
        /// Images over this many pixels are refused before decoding.
        #[arg(long, default_value_t = 64_000_000)]
        max_pixels: u64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum PluginCommand {
    /// List active plugins: built-in ones and those of the plugin directory.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Validate a component and make it the active version of its name (the old one is kept).
    Load { path: PathBuf },
    /// Remove a plugin from the directory (kept as the previous version).
    Unload { name: String },
    /// Make the previous version of a plugin active again.
    Rollback { name: String },
    /// Write a working plugin project: the plugin, the WIT, and for Rust a copy of the SDK.
    New {
        name: String,
        #[arg(long, value_enum, default_value = "rust")]
        lang: Lang,
        /// Where to write it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build a plugin project (Rust, Python or JavaScript, found from its files) into a component.
    Build {
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The component to write (default: DIR/<dir name>.wasm).
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Load a component as the server would and run every function on sample candidates:
    /// its answers and what each call cost.
    Test {
        path: PathBuf,
        #[arg(long, default_value = "red summer dress")]
        query: String,
        /// A request parameter passed to the plugin (repeatable).
        #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// JSONL of candidates ({"id", "fields": {..}, "retrieval", "bm25", "vector", "rerank", "tags", "caption"}).
        #[arg(long)]
        candidates: Option<PathBuf>,
    },
}

/// A plugin project's language.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
    Images,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OnError {
    /// Stop at the first bad row; the current batch is rolled back.
    Fail,
    /// Report bad rows and go on.
    Skip,
}

#[derive(Args)]
pub struct IndexArgs {
    pub collection: String,
    /// A .jsonl or .csv file, or a folder of images.
    pub path: PathBuf,
    /// Input format (default: from the path).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// JSONL of fields for an image folder, one line per image with "file" (default: metadata.jsonl inside it).
    #[arg(long)]
    pub sidecar: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "fail")]
    pub on_error: OnError,
    /// Documents per commit (default: the collection's [ingest] batch_size).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["id", "query"])))]
pub struct DeleteArgs {
    pub collection: String,
    /// Ids to delete (repeatable).
    #[arg(long)]
    pub id: Vec<String>,
    /// Delete every document this filter matches (tantivy syntax).
    #[arg(long)]
    pub query: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Fusion {
    Rrf,
    Linear,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Normalization {
    Minmax,
    Zscore,
    None,
}

#[derive(Args)]
pub struct SearchArgs {
    pub collection: String,
    /// Text query (tantivy syntax: words, "phrases", field:term, -exclusions).
    pub query: Option<String>,
    /// File holding the query vector: a JSON array or whitespace-separated numbers ("-" for stdin).
    #[arg(long)]
    pub vector: Option<PathBuf>,
    /// Query image, embedded with the collection's CLIP model.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Vector field to search (default: the collection's).
    #[arg(long)]
    pub vector_field: Option<String>,
    /// Filter applied to both retrievers: `category:dress AND price:[10 TO 80]`.
    #[arg(long)]
    pub filter: Option<String>,
    /// Text fields to search, comma-separated (default: the collection's).
    #[arg(long, value_delimiter = ',')]
    pub fields: Option<Vec<String>>,
    #[arg(long, value_enum)]
    pub fusion: Option<Fusion>,
    /// k of reciprocal rank fusion.
    #[arg(long)]
    pub rrf_k: Option<f32>,
    /// Score normalisation for linear fusion.
    #[arg(long, value_enum)]
    pub normalization: Option<Normalization>,
    #[arg(long)]
    pub bm25_weight: Option<f32>,
    #[arg(long)]
    pub vector_weight: Option<f32>,
    #[arg(long, short = 'k')]
    pub top_k: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Candidates per retriever before fusion.
    #[arg(long)]
    pub candidates: Option<usize>,
    /// Beam of graph walks on `hnsw` vector fields (default: the field's `ef_search`).
    #[arg(long)]
    pub ef_search: Option<usize>,
    /// Scan every vector exactly, graphs or not.
    #[arg(long)]
    pub exact: bool,
    /// Show how each hit was scored and which vector index answered each segment.
    #[arg(long)]
    pub explain: bool,
    /// Fused candidates the reranker reads (0: no reranking; default: the plugin's depth, else
    /// the collection's `[search] rerank_window`).
    #[arg(long)]
    pub rerank_window: Option<usize>,
    /// The reranker instruction (default: the plugin's, else the model card's).
    #[arg(long)]
    pub instruction: Option<String>,
    /// Scenario whose ranking plugin orders the results (ecommerce, academic, news, general...).
    #[arg(long)]
    pub scenario: Option<String>,
    /// Ranking plugin by name (wins over --scenario).
    #[arg(long)]
    pub plugin: Option<String>,
    /// Parameter for the plugin, KEY=VALUE (repeatable).
    #[arg(long = "param", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Least BM25 score: weaker text matches are cut before fusion.
    #[arg(long)]
    pub min_bm25: Option<f32>,
    /// Least vector similarity: farther neighbours are cut before fusion.
    #[arg(long)]
    pub min_similarity: Option<f32>,
    /// Least final score (P(yes) when reranked, the plugin's, else the fused score).
    #[arg(long)]
    pub min_score: Option<f32>,
    /// Count a facet over the matching documents (repeatable): `brand`, `brand:size=20`,
    /// `kind:path=/clothing`, `price:ranges=..20,20..50,50..`, `price:interval=10`,
    /// `published:interval=month`.
    #[arg(long = "facet", value_parser = mira_host::search::facets::FacetRequest::parse_cli)]
    pub facets: Vec<mira_host::search::facets::FacetRequest>,
    /// Tick a facet value, FIELD=VALUE (repeatable; values of one field are ORed): `brand=acme`,
    /// `price=20..50`, `kind=/clothing/dresses`.
    #[arg(long = "refine", value_parser = parse_param)]
    pub refine: Vec<(String, String)>,
    /// Keyword field to group hits by (at most --group-size per value; -k counts groups).
    #[arg(long)]
    pub group_by: Option<String>,
    /// Hits per group (default 1).
    #[arg(long)]
    pub group_size: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct EvalArgs {
    pub collection: String,
    /// Judged queries, JSONL: {"id": "q1", "query": "red dress", "relevance": {"doc-1": 3, "doc-7": 0}}
    /// (also "image", "vector", "scenario", "plugin", "filter", "params").
    pub judgments: PathBuf,
    /// TREC qrels (`qid 0 docid grade`) giving the grades of the judged queries by id.
    #[arg(long)]
    pub qrels: Option<PathBuf>,
    /// Cutoff of nDCG@k, recall@k and P@k (the hits each query asks for).
    #[arg(long, short = 'k', default_value_t = 10)]
    pub k: usize,
    /// A setting of every run, KEY=VALUE (repeatable): bm25_weight=2, rerank_window=20,
    /// instruction=..., param.max_price=80...
    #[arg(long = "set", value_parser = parse_param)]
    pub set: Vec<(String, String)>,
    /// Compare with a run that also has this setting, KEY=VALUE (repeatable).
    #[arg(long = "against", value_parser = parse_param)]
    pub against: Vec<(String, String)>,
    /// Compare with this plugin component (a .wasm file) ordering every query, against the
    /// version of the same name that serves now.
    #[arg(long)]
    pub against_plugin: Option<PathBuf>,
    /// Print each query's nDCG (and the difference, when comparing).
    #[arg(long)]
    pub per_query: bool,
    #[arg(long)]
    pub json: bool,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}
