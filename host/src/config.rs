//! Engine configuration (`mira.toml`): built-in defaults, overridden by a file: plugin settings,
//! scenarios, plugin configuration, and the HTTP server.
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
//! [server]
//! listen = "127.0.0.1:7700"
//! admin_key = "..."          # or MIRA_ADMIN_KEY; writes and plugin routes
//! search_key = "..."         # or MIRA_SEARCH_KEY; searches and reads
//! max_body_mib = 32
//! max_image_pixels = 40000000
//! workers = 0                # engine jobs at once (0: one per core)
//! queue = 64                 # jobs waiting; more get 503
//! image_url_allowlist = []   # hosts query images may be fetched from
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
}

impl Default for PluginSettings {
    fn default() -> Self {
        PluginSettings {
            dir: PathBuf::from("plugins"),
            files: Vec::new(),
            limits: PluginLimits::default(),
        }
    }
}

/// HTTP server settings (`mira serve`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on.
    pub listen: String,
    /// Key for writes and plugin routes (`MIRA_ADMIN_KEY` overrides); none: open.
    pub admin_key: Option<String>,
    /// Key for searches and reads (`MIRA_SEARCH_KEY` overrides); none: open.
    pub search_key: Option<String>,
    /// Largest request body.
    pub max_body_mib: usize,
    /// Images over this many pixels are refused before decoding.
    pub max_image_pixels: u64,
    /// Engine jobs running at once (0: one per core).
    pub workers: usize,
    /// Jobs that may wait for a worker; more get 503.
    pub queue: usize,
    /// Hosts (`host` or `host:port`) query images may be fetched from by URL; empty: none.
    pub image_url_allowlist: Vec<String>,
    /// A model that failed to load is tried again after this many seconds (so one put in
    /// place later is picked up without a restart); until then requests needing it get 503.
    pub model_retry_secs: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: "127.0.0.1:7700".into(),
            admin_key: None,
            search_key: None,
            max_body_mib: 32,
            max_image_pixels: 40_000_000,
            workers: 0,
            queue: 64,
            image_url_allowlist: Vec::new(),
            model_retry_secs: 30,
        }
    }
}

/// Overrides `[server] admin_key`.
pub const ADMIN_KEY_ENV: &str = "MIRA_ADMIN_KEY";
/// Overrides `[server] search_key`.
pub const SEARCH_KEY_ENV: &str = "MIRA_SEARCH_KEY";

impl ServerSettings {
    /// The settings with keys from the environment, when set.
    pub fn with_env(mut self) -> Self {
        let key = |name: &str| std::env::var(name).ok().filter(|k| !k.trim().is_empty());
        if let Some(k) = key(ADMIN_KEY_ENV) {
            self.admin_key = Some(k);
        }
        if let Some(k) = key(SEARCH_KEY_ENV) {
            self.search_key = Some(k);
        }
        self
    }

    /// Worker threads for engine jobs.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    pub plugins: PluginSettings,
    pub server: ServerSettings,
    /// scenario -> plugin name.
    pub scenarios: HashMap<String, String>,
    /// plugin name -> its configuration values.
    pub plugin_config: HashMap<String, HashMap<String, String>>,
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
