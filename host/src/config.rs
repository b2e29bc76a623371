//! Engine configuration (`mira.toml`): built-in defaults, overridden by a file: plugin settings,
//! scenarios and plugin configuration. The `[server]` section of the same file
//! belongs to the HTTP server crate (`mira-server`), which reads it itself.
//!
//! ```toml
//! [plugins]
//! dir = "plugins"            # relative to the data directory
//! files = ["/opt/ranking/fresh.wasm"]   # more plugins, by path
//! time_ms = 50               # per call
//! memory_mib = 64            # per instance
//! quarantine_after = 5       # consecutive failures
//! max_candidates = 1000      # passed to fuse
//!
//! [scenarios]                # scenario -> plugin
//! shopping = "ecommerce"
//!
//! [plugin_config.general]    # values a plugin reads with host.config
//! w_rerank = "0.6"
//!
//! [plugin_limits.ecommerce]  # one plugin's own limits (each defaults to [plugins]')
//! time_ms = 120
//! max_candidates = 300
//!
//! [server]                   # read by mira-server (`mira serve`), not by the engine
//! listen = "127.0.0.1:7700"
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::plugin::PluginLimits;

/// Plugin settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginSettings {
    /// The plugin directory, relative to the data directory unless absolute.
    pub dir: PathBuf,
    /// More plugin components to load by path (after the directory's).
    pub files: Vec<PathBuf>,
    #[serde(flatten)]
    pub limits: PluginLimits,
    /// A judgment set a new plugin version must not lose on before it is activated.
    pub gate: Option<GateConfig>,
}

impl Default for PluginSettings {
    fn default() -> Self {
        PluginSettings {
            dir: PathBuf::from("plugins"),
            files: Vec::new(),
            limits: PluginLimits::default(),
            gate: None,
        }
    }
}

/// `[plugins.gate]`: before a new version of a plugin is activated (`mira plugin load`,
/// `POST /v1/plugins/{name}/activate`), its judged queries run with the live version and with
/// the new one; the new one is refused if its mean `metric` is more than `max_loss` below.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// The collection the judged queries search.
    pub collection: String,
    /// Judged queries (JSONL, as `mira eval` reads), relative to the data directory unless
    /// absolute.
    pub judgments: PathBuf,
    /// TREC qrels with the grades, when the JSONL has none.
    pub qrels: Option<PathBuf>,
    #[serde(default = "default_gate_k")]
    pub k: usize,
    /// `ndcg`, `mrr`, `recall` or `precision`.
    #[serde(default = "default_gate_metric")]
    pub metric: String,
    /// How much lower the new version's mean may be (default 0: it must not lose).
    #[serde(default)]
    pub max_loss: f64,
}

fn default_gate_k() -> usize {
    10
}

fn default_gate_metric() -> String {
    "ndcg".into()
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    pub plugins: PluginSettings,
    /// scenario -> plugin name.
    pub scenarios: HashMap<String, String>,
    /// plugin name -> its configuration values.
    pub plugin_config: HashMap<String, HashMap<String, String>>,
    /// plugin name -> its own limits (`time_ms`, `memory_mib`, `max_candidates`).
    pub plugin_limits: HashMap<String, crate::plugin::LimitOverride>,
    /// The `[server]` section as written: the HTTP server crate (`mira-server`) reads and
    /// checks it; the engine only carries it, so that one `mira.toml` serves both.
    pub server: Option<toml::Table>,
}

impl EngineConfig {
    /// Reads a configuration file; errors name the file, line and key.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Input {
            path: path.to_owned(),
            source,
        })?;
        let config: EngineConfig =
            toml::from_str(&text).map_err(|e| Error::schema(path.display().to_string(), e.to_string().trim_end()))?;
        if let Some(g) = &config.plugins.gate
            && !["ndcg", "mrr", "recall", "precision"].contains(&g.metric.as_str())
        {
            return Err(Error::schema(
                path.display().to_string(),
                format!(
                    "[plugins.gate] metric `{}` is not ndcg, mrr, recall or precision",
                    g.metric
                ),
            ));
        }
        for (name, o) in &config.plugin_limits {
            o.check(&config.plugins.limits)
                .map_err(|m| Error::schema(path.display().to_string(), format!("[plugin_limits.{name}] {m}")))?;
        }
        let l = &config.plugins.limits;
        if l.time_ms == 0 || l.memory_mib == 0 || l.quarantine_after == 0 || l.max_candidates == 0 {
            return Err(Error::schema(
                path.display().to_string(),
                "[plugins] time_ms, memory_mib, quarantine_after and max_candidates must be at least 1",
            ));
        }
        Ok(config)
    }

    /// The plugin directory for a data directory.
    pub fn plugin_dir(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.plugins.dir)
    }
}
