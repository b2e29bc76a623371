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
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            time_ms: 50,
            memory_mib: 64,
            quarantine_after: 5,
            max_candidates: 1000,
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
