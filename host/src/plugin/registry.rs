//! Plugins by name: install (validate, then swap atomically), rollback, unload, lookup by name or
//! scenario, and the plugin directory on disk.
//!
//! The directory is the interface between the CLI and a running server: `<dir>/<name>.wasm` is
//! the active version of each plugin and `<dir>/.previous/<name>.wasm` the one before it. File
//! names come from the plugin's validated name, never from user input, so nothing escapes `dir`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::loaded::valid_plugin_name;
use super::{LoadedPlugin, PluginFailure, PluginRuntime};
use crate::error::{Error, QueryError, Result};

const NO_DIR: &str = "no plugin directory is configured, so plugins cannot be stored";
const NO_PREVIOUS: &str = "has no previous version to roll back to";

/// A plugin change the registry's state does not allow.
fn conflict(name: &str, what: &str) -> Error {
    Error::PluginConflict(format!("plugin `{name}` {what}"))
}

struct Slot {
    current: Arc<LoadedPlugin>,
    previous: Option<Arc<LoadedPlugin>>,
}

/// A plugin as `mira plugin list` and the server show it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub scenarios: Vec<String>,
    pub rerank_window: u32,
    /// The `mira:ranking` line it was built against (`0.1`, `0.2`).
    pub wit: &'static str,
    /// The fields its `fuse` reads column-wise (0.2; empty for 0.1, which reads every field).
    pub fuse_fields: Vec<String>,
    pub origin: String,
    pub hash: String,
    pub previous_version: Option<String>,
    pub quarantined: bool,
    pub calls: u64,
    pub failures: u64,
    /// p50 and p99 of each function's recent calls (the load's smoke test included).
    pub costs: Vec<super::CallCost>,
    /// The limits its calls run under (its own `[plugin_limits.NAME]`, else `[plugins]`').
    pub limits: super::PluginLimits,
}

/// A validated version waiting for activation, with its component bytes.
type Staged = (Arc<LoadedPlugin>, Vec<u8>);

/// Told the name of a plugin whose active tag vocabulary changed (a new version with other
/// words, a rollback, an unload).
pub type VocabularyListener = Arc<dyn Fn(&str) + Send + Sync>;

/// The live set of plugins.
pub struct PluginRegistry {
    runtime: Arc<PluginRuntime>,
    slots: RwLock<BTreeMap<String, Slot>>,
    /// scenario -> plugin name, from configuration.
    scenarios: HashMap<String, String>,
    /// plugin name -> its configuration values.
    configs: HashMap<String, HashMap<String, String>>,
    /// plugin name -> its own limits (`[plugin_limits.NAME]`).
    limits: HashMap<String, super::LimitOverride>,
    dir: Option<PathBuf>,
    /// Validated versions waiting to be activated (with their bytes, for the directory).
    staged: RwLock<BTreeMap<String, Staged>>,
    vocabulary_listeners: RwLock<Vec<VocabularyListener>>,
}

/// A slot's active tag vocabulary (empty when it has none, or there is no slot).
fn vocabulary_of(slot: Option<&Slot>) -> Vec<String> {
    slot.map(|s| s.current.description.tag_vocabulary.clone())
        .unwrap_or_default()
}

impl PluginRegistry {
    /// An empty registry. `dir` is the plugin directory (loaded by [`PluginRegistry::load_dir`],
    /// written by [`PluginRegistry::persist`]); `scenarios` maps scenario names to plugin names.
    pub fn new(
        runtime: Arc<PluginRuntime>,
        dir: Option<PathBuf>,
        scenarios: HashMap<String, String>,
        configs: HashMap<String, HashMap<String, String>>,
    ) -> Self {
        PluginRegistry {
            runtime,
            slots: RwLock::new(BTreeMap::new()),
            scenarios,
            configs,
            limits: HashMap::new(),
            dir,
            staged: RwLock::new(BTreeMap::new()),
            vocabulary_listeners: RwLock::new(Vec::new()),
        }
    }

    /// Calls `listener` with a plugin's name, after the change, whenever the active tag
    /// vocabulary of that name changes (what re-tags the collections that use it).
    pub fn on_vocabulary_change(&self, listener: VocabularyListener) {
        self.vocabulary_listeners
            .write()
            .expect("plugin registry lock")
            .push(listener);
    }

    /// Tells the listeners when a change of `name` left it with other words than `before`.
    fn vocabulary_changed(&self, name: &str, before: Vec<String>) {
        let now = vocabulary_of(self.slots.read().expect("plugin registry lock").get(name));
        if now == before {
            return;
        }
        tracing::info!(plugin = %name, words = now.len(), was = before.len(), "tag vocabulary changed");
        let listeners = self.vocabulary_listeners.read().expect("plugin registry lock").clone();
        for l in listeners {
            l(name);
        }
    }

    pub fn runtime(&self) -> &Arc<PluginRuntime> {
        &self.runtime
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The registry with plugins' own limits (`[plugin_limits.NAME]`), applied to every version
    /// of those names loaded from then on.
    pub fn with_limits(mut self, limits: HashMap<String, super::LimitOverride>) -> Self {
        self.limits = limits;
        self
    }

    /// A freshly validated plugin, given its own limits when it has some.
    fn limited(&self, plugin: Arc<LoadedPlugin>) -> Arc<LoadedPlugin> {
        if let Some(o) = self.limits.get(plugin.name()) {
            plugin.set_limits(o.apply(self.runtime.limits));
        }
        plugin
    }

    /// Loads and validates a plugin, then makes it the active version of its name. The version
    /// it replaces is kept for rollback; queries already running keep the version they started on.
    pub fn install(&self, bytes: &[u8], origin: &str) -> std::result::Result<Arc<LoadedPlugin>, PluginFailure> {
        let plugin = self.limited(LoadedPlugin::load(&self.runtime, bytes, origin, &self.configs)?);
        self.activate(plugin.clone());
        Ok(plugin)
    }

    fn activate(&self, plugin: Arc<LoadedPlugin>) {
        let name = plugin.name().to_owned();
        let before = {
            let mut slots = self.slots.write().expect("plugin registry lock");
            let before = vocabulary_of(slots.get(&name));
            let previous = slots.remove(&name).map(|s| s.current);
            tracing::info!(plugin = %name, version = %plugin.description.version, origin = %plugin.origin, "plugin active");
            slots.insert(
                name.clone(),
                Slot {
                    current: plugin,
                    previous,
                },
            );
            before
        };
        self.vocabulary_changed(&name, before);
    }

    /// The active version of a plugin.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.slots
            .read()
            .expect("plugin registry lock")
            .get(name)
            .map(|s| s.current.clone())
    }

    /// The plugin a request asks for: by name, else by scenario (configuration first, then the
    /// scenarios plugins declare), else none (built-in ranking).
    pub fn resolve(&self, plugin: Option<&str>, scenario: Option<&str>) -> Result<Option<Arc<LoadedPlugin>>> {
        if let Some(name) = plugin {
            return self
                .get(name)
                .map(Some)
                .ok_or_else(|| Error::PluginNotFound(name.to_owned()));
        }
        let Some(scenario) = scenario else { return Ok(None) };
        if let Some(name) = self.scenarios.get(scenario) {
            return self
                .get(name)
                .map(Some)
                .ok_or_else(|| Error::PluginNotFound(name.clone()));
        }
        let slots = self.slots.read().expect("plugin registry lock");
        slots
            .values()
            .find(|s| s.current.description.scenarios.iter().any(|x| x == scenario))
            .map(|s| Some(s.current.clone()))
            .ok_or_else(|| QueryError::UnknownScenario(scenario.to_owned()).into())
    }

    /// Validates a plugin and keeps it staged: it serves no query until activated, but shadow
    /// comparisons can run it beside the live version. A newer upload replaces the staged one.
    pub fn stage(&self, bytes: &[u8], origin: &str) -> std::result::Result<Arc<LoadedPlugin>, PluginFailure> {
        let plugin = self.limited(LoadedPlugin::load(&self.runtime, bytes, origin, &self.configs)?);
        self.staged
            .write()
            .expect("plugin registry lock")
            .insert(plugin.name().to_owned(), (plugin.clone(), bytes.to_vec()));
        Ok(plugin)
    }

    /// The staged version of a plugin.
    pub fn staged(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.staged
            .read()
            .expect("plugin registry lock")
            .get(name)
            .map(|(p, _)| p.clone())
    }

    /// Makes the staged version of `name` active (and writes it to the plugin directory when
    /// there is one); the version it replaces is kept for rollback.
    /// A name that is neither loaded nor staged is not found; a loaded plugin with nothing
    /// staged is a conflict.
    pub fn activate_staged(&self, name: &str) -> Result<Arc<LoadedPlugin>> {
        let staged = self.staged.write().expect("plugin registry lock").remove(name);
        let Some((plugin, bytes)) = staged else {
            if self.get(name).is_none() {
                return Err(Error::PluginNotFound(name.to_owned()));
            }
            return Err(conflict(
                name,
                "has no staged version (upload one with ?activate=false first)",
            ));
        };
        if self.dir.is_some() {
            return self.persist(&bytes);
        }
        self.activate(plugin.clone());
        Ok(plugin)
    }

    /// Makes the previous version active again (and the current one the previous).
    pub fn rollback(&self, name: &str) -> Result<Arc<LoadedPlugin>> {
        let (current, before) = {
            let mut slots = self.slots.write().expect("plugin registry lock");
            let slot = slots
                .get_mut(name)
                .ok_or_else(|| Error::PluginNotFound(name.to_owned()))?;
            let before = vocabulary_of(Some(slot));
            let previous = slot.previous.take().ok_or_else(|| conflict(name, NO_PREVIOUS))?;
            slot.previous = Some(std::mem::replace(&mut slot.current, previous));
            tracing::info!(plugin = %name, version = %slot.current.description.version, "plugin rolled back");
            (slot.current.clone(), before)
        };
        self.vocabulary_changed(name, before);
        Ok(current)
    }

    /// Removes a plugin; requests naming it get a clear error from then on.
    pub fn unload(&self, name: &str) -> Result<()> {
        let removed = self
            .slots
            .write()
            .expect("plugin registry lock")
            .remove(name)
            .ok_or_else(|| Error::PluginNotFound(name.to_owned()))?;
        self.vocabulary_changed(name, vocabulary_of(Some(&removed)));
        Ok(())
    }

    /// Every active plugin, by name.
    pub fn list(&self) -> Vec<PluginInfo> {
        let slots = self.slots.read().expect("plugin registry lock");
        slots
            .values()
            .map(|s| {
                let p = &s.current;
                let (calls, failures) = p.counts();
                PluginInfo {
                    name: p.name().to_owned(),
                    version: p.description.version.clone(),
                    scenarios: p.description.scenarios.clone(),
                    rerank_window: p.description.rerank_window,
                    wit: p.description.wit,
                    fuse_fields: p.description.fuse_fields.clone(),
                    origin: p.origin.clone(),
                    hash: p.hash.clone(),
                    previous_version: s.previous.as_ref().map(|x| x.description.version.clone()),
                    quarantined: p.quarantine().is_some(),
                    calls,
                    failures,
                    costs: p.costs(),
                    limits: p.limits(),
                }
            })
            .collect()
    }

    /// The active plugins' tag vocabularies by name (those that describe one), for clip-tags
    /// fields whose vocabulary is `"plugin:NAME"`.
    pub fn tag_vocabularies(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let slots = self.slots.read().expect("plugin registry lock");
        slots
            .iter()
            .filter(|(_, s)| !s.current.description.tag_vocabulary.is_empty())
            .map(|(name, s)| (name.clone(), s.current.description.tag_vocabulary.clone()))
            .collect()
    }

    /// Installs every `*.wasm` of the plugin directory; returns each file's outcome.
    pub fn load_dir(&self) -> Vec<(PathBuf, std::result::Result<Arc<LoadedPlugin>, PluginFailure>)> {
        let Some(dir) = &self.dir else { return Vec::new() };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| is_wasm(p)).collect())
            .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .map(|path| {
                let outcome = std::fs::read(&path)
                    .map_err(|e| PluginFailure::Invalid {
                        message: format!("cannot read {}: {e}", path.display()),
                    })
                    .and_then(|bytes| self.install(&bytes, &path.display().to_string()));
                (path, outcome)
            })
            .collect()
    }

    /// Validates a plugin and writes it to the directory as the active version of its name,
    /// keeping the file it replaces as the previous version.
    pub fn persist(&self, bytes: &[u8]) -> Result<Arc<LoadedPlugin>> {
        let dir = self.dir.as_ref().ok_or_else(|| Error::PluginConflict(NO_DIR.into()))?;
        // Validated before anything is written; its origin is where it is about to be stored.
        let (component, hash) = self.runtime.compile(bytes).map_err(Error::Plugin)?;
        let mut plugin =
            LoadedPlugin::new(self.runtime.clone(), &component, hash.clone(), "", &self.configs).map_err(|e| {
                self.runtime.forget(&hash);
                Error::Plugin(e)
            })?;
        let name = plugin.name().to_owned();
        plugin.origin = dir.join(format!("{name}.wasm")).display().to_string();
        let plugin = self.limited(Arc::new(plugin));
        debug_assert!(valid_plugin_name(&name));
        let io = |what: &str, e| Error::io(format!("{what} in {}", dir.display()), e);
        std::fs::create_dir_all(dir.join(".previous")).map_err(|e| io("creating .previous", e))?;
        let target = dir.join(format!("{name}.wasm"));
        if target.exists() {
            std::fs::copy(&target, dir.join(".previous").join(format!("{name}.wasm")))
                .map_err(|e| io("keeping the previous version", e))?;
        }
        let tmp = dir.join(format!(".{name}.wasm.tmp"));
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, &target))
            .map_err(|e| io("writing the plugin", e))?;
        self.activate(plugin.clone());
        Ok(plugin)
    }

    /// Swaps the directory's active and previous files of a plugin, and the live versions.
    pub fn persist_rollback(&self, name: &str) -> Result<Arc<LoadedPlugin>> {
        let dir = self.dir.as_ref().ok_or_else(|| Error::PluginConflict(NO_DIR.into()))?;
        if !valid_plugin_name(name) {
            return Err(Error::PluginNotFound(name.to_owned()));
        }
        let (current, previous) = (
            dir.join(format!("{name}.wasm")),
            dir.join(".previous").join(format!("{name}.wasm")),
        );
        if !previous.is_file() {
            return Err(conflict(name, NO_PREVIOUS));
        }
        let io = |e| Error::io(format!("rolling back {name} in {}", dir.display()), e);
        let tmp = dir.join(format!(".{name}.swap.tmp"));
        if current.is_file() {
            std::fs::rename(&current, &tmp).map_err(io)?;
        }
        std::fs::rename(&previous, &current).map_err(io)?;
        if tmp.is_file() {
            std::fs::rename(&tmp, &previous).map_err(io)?;
        }
        let bytes = std::fs::read(&current).map_err(io)?;
        self.install(&bytes, &current.display().to_string())
            .map_err(Error::Plugin)
    }

    /// Removes a plugin's active file (kept as the previous version) and unloads it.
    pub fn persist_unload(&self, name: &str) -> Result<()> {
        let dir = self.dir.as_ref().ok_or_else(|| Error::PluginConflict(NO_DIR.into()))?;
        let current = dir.join(format!("{name}.wasm"));
        if !valid_plugin_name(name) || !current.is_file() {
            return Err(Error::PluginNotFound(name.to_owned()));
        }
        let io = |e| Error::io(format!("unloading {name} in {}", dir.display()), e);
        std::fs::create_dir_all(dir.join(".previous")).map_err(io)?;
        std::fs::rename(&current, dir.join(".previous").join(format!("{name}.wasm"))).map_err(io)?;
        let _ = self.unload(name);
        Ok(())
    }
}

pub(crate) fn is_wasm(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "wasm") && p.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.'))
}
