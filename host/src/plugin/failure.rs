//! Everything that can go wrong with a plugin, worded for the response and the log.

use serde::Serialize;

/// Why a plugin could not be loaded or did not give a usable answer.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PluginFailure {
    /// Not a component, or not built against `mira:ranking`.
    #[error("not a valid ranking plugin: {message}")]
    Invalid { message: String },
    /// The component imports something the host does not offer.
    #[error("the plugin imports what Mira does not offer ({message})")]
    ForbiddenImport { message: String },
    /// The load-time check (describe and a smoke call) failed.
    #[error("the plugin failed its load check: {message}")]
    Validation { message: String },
    /// The call ran past its time budget and was interrupted.
    #[error("ran past its time budget of {budget_ms} ms and was stopped")]
    Timeout { budget_ms: u64 },
    /// The plugin tried to grow its memory past the cap.
    #[error("tried to grow its memory to {requested} bytes, over the cap of {cap} bytes")]
    OutOfMemory { requested: usize, cap: usize },
    /// The plugin trapped (a panic, an out-of-bounds access, `unreachable`).
    #[error("trapped: {message}")]
    Trap { message: String },
    /// The plugin answered, but the answer is unusable.
    #[error("gave a bad answer: {message}")]
    BadAnswer { message: String },
    /// The plugin returned its own error from `fuse`.
    #[error("refused: {message}")]
    Refused { message: String },
    /// The host had no free instance slot within the call's budget (every slot of the pool is
    /// serving other queries): host pressure, not the plugin's fault, never counted towards
    /// quarantine; the search answers 503 so the client retries.
    #[error("no free plugin instance within {budget_ms} ms ({message}); raise [plugins] pool_* or retry")]
    Busy { budget_ms: u64, message: String },
    /// The plugin failed too often in a row and is not called until it is replaced.
    #[error("quarantined after {failures} consecutive failures; load a new version to release it")]
    Quarantined { failures: u32 },
}

impl PluginFailure {
    /// The failure's kind, as serialised (`timeout`, `trap`...): a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginFailure::Invalid { .. } => "invalid",
            PluginFailure::ForbiddenImport { .. } => "forbidden_import",
            PluginFailure::Validation { .. } => "validation",
            PluginFailure::Timeout { .. } => "timeout",
            PluginFailure::OutOfMemory { .. } => "out_of_memory",
            PluginFailure::Trap { .. } => "trap",
            PluginFailure::BadAnswer { .. } => "bad_answer",
            PluginFailure::Refused { .. } => "refused",
            PluginFailure::Quarantined { .. } => "quarantined",
            PluginFailure::Busy { .. } => "busy",
        }
    }
}
