//! Per-call limits of a plugin, from configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a plugin may use in one query.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginLimits {
    /// Wall-clock budget per call, in milliseconds (enforced by epoch interruption).
    pub time_ms: u64,
    /// Linear memory a plugin instance may grow to, in MiB.
    pub memory_mib: u64,
    /// Consecutive failures after which a plugin is quarantined until it is replaced.
    pub quarantine_after: u32,
    /// Candidates passed to `fuse` at most.
    pub max_candidates: usize,
    /// Instance pool, shared by every plugin: component instances (one per query in flight),
    /// core instances and tables (a Python or JavaScript component holds dozens each), linear
    /// memories (each reserves address space, not memory). The defaults serve 16 concurrent
    /// queries of a componentize-py plugin (~38 core instances and ~10 memories each).
    pub pool_components: u32,
    pub pool_core_instances: u32,
    pub pool_memories: u32,
    pub pool_tables: u32,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            time_ms: 50,
            memory_mib: 64,
            quarantine_after: 5,
            max_candidates: 1000,
            pool_components: 256,
            pool_core_instances: 1024,
            pool_memories: 256,
            pool_tables: 1024,
        }
    }
}

impl PluginLimits {
    pub fn time_budget(&self) -> Duration {
        Duration::from_millis(self.time_ms)
    }

    pub fn memory_bytes(&self) -> usize {
        (self.memory_mib as usize) << 20
    }
}

/// `[plugin_limits.NAME]`: one plugin's own limits, each defaulting to `[plugins]`'.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverride {
    pub time_ms: Option<u64>,
    /// At most `[plugins] memory_mib`, which sizes the instance pool.
    pub memory_mib: Option<u64>,
    pub max_candidates: Option<usize>,
}

impl LimitOverride {
    /// The limits of a plugin: `base` with this override's values.
    pub fn apply(&self, base: PluginLimits) -> PluginLimits {
        PluginLimits {
            time_ms: self.time_ms.unwrap_or(base.time_ms),
            memory_mib: self.memory_mib.unwrap_or(base.memory_mib),
            max_candidates: self.max_candidates.unwrap_or(base.max_candidates),
            ..base
        }
    }

    /// Why this override cannot apply under `base`, if it cannot.
    pub fn check(&self, base: &PluginLimits) -> Result<(), String> {
        if self.time_ms == Some(0) || self.memory_mib == Some(0) || self.max_candidates == Some(0) {
            return Err("time_ms, memory_mib and max_candidates must be at least 1".into());
        }
        if let Some(m) = self.memory_mib
            && m > base.memory_mib
        {
            return Err(format!(
                "memory_mib = {m} is over [plugins] memory_mib = {}, which sizes every instance's memory: raise that",
                base.memory_mib
            ));
        }
        Ok(())
    }
}
