//! The plugin registry as the CLI uses it: built-in plugins (compiled from `plugins/` by
//! build.rs and embedded), then the data directory's plugins, under the engine configuration.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use mira_host::config::EngineConfig;
use mira_host::plugin::{PluginRegistry, PluginRuntime};

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// `--config FILE`, else `<data>/mira.toml` when present, else the defaults.
pub fn engine_config(config: Option<&Path>, data_dir: &Path) -> Result<EngineConfig> {
    match config {
        Some(path) => Ok(EngineConfig::from_file(path)?),
        None => {
            let default = data_dir.join("mira.toml");
            if default.is_file() {
                Ok(EngineConfig::from_file(&default)?)
            } else {
                Ok(EngineConfig::default())
            }
        }
    }
}

/// A registry with the built-in plugins and every plugin of the directory (which override
/// built-ins of the same name). Plugins of the directory that fail to load are reported, not fatal.
pub fn registry(config: &EngineConfig, data_dir: &Path) -> Result<Arc<PluginRegistry>> {
    let runtime = PluginRuntime::new(config.plugins.limits, Some(&data_dir.join("plugin-cache")))?;
    let registry = PluginRegistry::new(
        runtime,
        Some(config.plugin_dir(data_dir)),
        config.scenarios.clone(),
        config.plugin_config.clone(),
    )
    .with_limits(config.plugin_limits.clone());
    for (name, bytes) in BUILTIN_PLUGINS {
        registry
            .install(bytes, "built-in")
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("loading the built-in plugin {name}"))?;
    }
    for (path, outcome) in registry.load_dir() {
        if let Err(e) = outcome {
            eprintln!("warning: plugin {} not loaded: {e}", path.display());
        }
    }
    for path in &config.plugins.files {
        let outcome = std::fs::read(path).map_err(|e| e.to_string()).and_then(|bytes| {
            registry
                .install(&bytes, &path.display().to_string())
                .map_err(|e| e.to_string())
        });
        if let Err(e) = outcome {
            eprintln!(
                "warning: plugin {} (from the configuration) not loaded: {e}",
                path.display()
            );
        }
    }
    Ok(Arc::new(registry))
}
