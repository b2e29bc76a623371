//! Server settings: the `[server]` section of `mira.toml`, then the API keys from the
//! environment.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:7700"
//! admin_key = "..."          # or MIRA_ADMIN_KEY; writes and plugin routes
//! search_key = "..."         # or MIRA_SEARCH_KEY; searches and reads
//! max_body_mib = 32
//! max_image_pixels = 40000000
//! workers = 0                # engine jobs at once (0: one per core)
//! queue = 64                 # jobs waiting; more get 503
//! image_url_allowlist = []   # hosts query images may be fetched from
//! model_retry_secs = 30      # a model that failed to load is tried again after this long
//! ```

use std::time::Duration;

use mira_host::config::EngineConfig;
use serde::Deserialize;

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
    /// The `[server]` section of an engine configuration (the defaults when there is none);
    /// `origin` names the file in errors.
    pub fn from_config(config: &EngineConfig, origin: &str) -> Result<Self, String> {
        match &config.server {
            None => Ok(ServerSettings::default()),
            Some(table) => table
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| format!("{origin}: [server]: {}", e.to_string().trim_end())),
        }
    }

    /// How long a model that failed to load is remembered before it is tried again.
    pub fn model_retry(&self) -> Duration {
        Duration::from_secs(self.model_retry_secs)
    }

    /// The settings with keys from the environment, when set.
    pub fn with_env(mut self) -> Self {
        // A blank key in the file is no key (it would match an empty header).
        self.admin_key = self.admin_key.filter(|k| !k.trim().is_empty());
        self.search_key = self.search_key.filter(|k| !k.trim().is_empty());
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
