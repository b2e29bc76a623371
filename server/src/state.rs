//! What every request handler shares: the catalog with its open collections, the plugin
//! registry, the worker pool, metrics and settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use crate::settings::ServerSettings;
use mira_host::Result;
use mira_host::collection::{Catalog, Collection, Incarnation};
use mira_host::plugin::PluginRegistry;

use super::metrics::Metrics;
use super::workers::Workers;

/// An open collection and the incarnation it was opened as ([`Catalog::incarnation`]).
type OpenCollection = (Arc<Collection>, Option<Incarnation>);

/// The server's shared state.
pub struct AppState {
    pub catalog: Catalog,
    pub config: ServerSettings,
    pub registry: Arc<PluginRegistry>,
    pub workers: Workers,
    pub metrics: Metrics,
    /// `[plugins.gate]`: the judgment set a staged version must not lose on to be activated.
    pub gate: Option<mira_host::config::GateConfig>,
    /// Collections opened so far (opening reads the schema and maps the vector files), with
    /// the incarnation they were opened as.
    open: RwLock<HashMap<String, OpenCollection>>,
    /// One writer per collection at a time, in this process.
    writing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl AppState {
    /// The state over `catalog`, whose collections retry a failed model load after
    /// `[server] model_retry_secs`.
    pub fn new(catalog: Catalog, config: ServerSettings, registry: Arc<PluginRegistry>) -> Self {
        let metrics = Metrics::new();
        AppState {
            workers: Workers::new(config.worker_count(), config.queue, metrics.panics.clone()),
            catalog: catalog.with_model_retry(config.model_retry()),
            config,
            registry,
            metrics,
            gate: None,
            open: RwLock::new(HashMap::new()),
            writing: Mutex::new(HashMap::new()),
        }
    }

    /// The state with an activation gate.
    pub fn with_gate(mut self, gate: Option<mira_host::config::GateConfig>) -> Self {
        self.gate = gate;
        self
    }

    /// An open collection: the one on disk now. A cached one whose directory was dropped or
    /// replaced since it was opened (by this server or another process) is opened again, so
    /// no request works on a collection that is gone (one stat per request).
    pub fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        let now = self.catalog.incarnation(name);
        if let Some((c, seen)) = self.open.read().unwrap_or_else(|p| p.into_inner()).get(name)
            && *seen == now
        {
            return Ok(c.clone());
        }
        if now.is_none() {
            // Gone (or never there, or not a valid name): the catalog says which.
            self.forget(name);
            return self.catalog.open(name).map(Arc::new);
        }
        let c = Arc::new(self.catalog.open(name)?);
        let mut open = self.open.write().unwrap_or_else(|p| p.into_inner());
        match open.get(name) {
            Some((cached, seen)) if *seen == now => Ok(cached.clone()),
            _ => {
                open.insert(name.to_owned(), (c.clone(), now));
                Ok(c)
            }
        }
    }

    /// Forgets a collection (after it is dropped).
    pub fn forget(&self, name: &str) {
        self.open.write().unwrap_or_else(|p| p.into_inner()).remove(name);
    }

    /// The lock writers of `name` take in turn (requests through
    /// [`crate::workers::Workers::run_locked`], the background re-tagger by blocking on it).
    /// Locks nobody holds or waits for are dropped from the map as new ones are made, so names
    /// a client made up (or collections since dropped) do not accumulate.
    pub fn write_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = writing.get(name) {
            return lock.clone();
        }
        // Only the map holds these: no writer can be between taking one and locking it.
        writing.retain(|_, lock| Arc::strong_count(lock) > 1);
        writing.entry(name.to_owned()).or_default().clone()
    }

    /// Picks up commits other processes made to open collections.
    pub fn refresh_all(&self) {
        let open: Vec<(String, Arc<Collection>, Option<Incarnation>)> = self
            .open
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(name, (c, incarnation))| (name.clone(), c.clone(), *incarnation))
            .collect();
        for (name, c, incarnation) in open {
            // Dropped (and perhaps created again) by another process: the next request opens
            // whatever is there now.
            if self.catalog.incarnation(&name) != incarnation {
                tracing::info!(collection = %name, "dropped or replaced by another process");
                self.forget(&name);
                continue;
            }
            if let Err(e) = c.refresh() {
                tracing::warn!(collection = c.name(), error = %e, "refresh failed");
            }
        }
    }
}
