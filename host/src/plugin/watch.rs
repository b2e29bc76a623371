//! Hot reload: the plugin directory is watched, and a changed `*.wasm` is validated and swapped
//! in (a removed one is unloaded). Events are debounced so a file being written is read once,
//! complete.

use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};

use super::PluginRegistry;
use super::registry::is_wasm;
use crate::error::{Error, Result};

/// How long the directory must be quiet before a change is applied.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// A running watch; dropping it stops watching.
pub struct DirectoryWatch {
    _debouncer: Debouncer<RecommendedWatcher>,
}

impl PluginRegistry {
    /// Watches the plugin directory and applies changes until the returned guard is dropped.
    pub fn watch(self: &Arc<Self>) -> Result<DirectoryWatch> {
        let dir = self
            .dir()
            .ok_or_else(|| Error::PluginConflict("no plugin directory is configured, so none can be watched".into()))?
            .to_owned();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let registry = Arc::downgrade(self);
        let mut debouncer = new_debouncer(DEBOUNCE, move |events: DebounceEventResult| {
            let Some(registry) = registry.upgrade() else { return };
            let Ok(events) = events else { return };
            for event in events {
                let path = event.path;
                if !is_wasm(&path) || path.parent().is_some_and(|p| p.ends_with(".previous")) {
                    continue;
                }
                match std::fs::read(&path) {
                    Ok(bytes) => match registry.install(&bytes, &path.display().to_string()) {
                        Ok(p) => tracing::info!(plugin = p.name(), version = %p.description.version, "reloaded from {}", path.display()),
                        Err(e) => tracing::warn!(file = %path.display(), error = %e, "plugin not loaded; the active version stays"),
                    },
                    Err(_) => {
                        let origin = path.display().to_string();
                        let name = registry.list().into_iter().find(|p| p.origin == origin).map(|p| p.name);
                        if let Some(name) = name {
                            let _ = registry.unload(&name);
                            tracing::info!(plugin = %name, "unloaded: {} was removed", path.display());
                        }
                    }
                }
            }
        })
        .map_err(|e| Error::io("starting the plugin watcher", std::io::Error::other(e)))?;
        debouncer
            .watcher()
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| Error::io(format!("watching {}", dir.display()), std::io::Error::other(e)))?;
        Ok(DirectoryWatch { _debouncer: debouncer })
    }
}
