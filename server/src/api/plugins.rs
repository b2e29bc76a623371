//! Ranking plugins as the API shows them: loaded plugins, what a plugin did for a search, and
//! why it failed.

use mira_host::plugin::{PluginFailure, PluginInfo, PluginScore, RankingReport, RankingStatus};
use serde::Serialize;

/// A loaded plugin.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = PluginInfo)]
pub struct PluginInfoBody {
    pub name: String,
    pub version: String,
    /// Scenarios the plugin serves.
    pub scenarios: Vec<String>,
    /// Candidates the plugin asks the reranker to read by default.
    pub rerank_window: u32,
    /// The `mira:ranking` line it was built against: `0.1` (fuse reads candidate records) or
    /// `0.2` (fuse reads columns).
    pub wit: &'static str,
    /// The fields its `fuse` reads column-wise (0.2; empty for 0.1, which reads every field).
    pub fuse_fields: Vec<String>,
    /// Where it was loaded from (`built-in`, a file).
    pub origin: String,
    /// SHA-256 of the component.
    pub hash: String,
    /// The version a rollback returns to.
    pub previous_version: Option<String>,
    pub quarantined: bool,
    pub calls: u64,
    pub failures: u64,
    /// What each function's recent calls took (p50, p99), to size `time_ms` and
    /// `max_candidates` by.
    pub costs: Vec<CallCostBody>,
    /// The limits its calls run under (its own `[plugin_limits.NAME]`, else `[plugins]`').
    pub limits: PluginLimitsBody,
}

/// A plugin's limits.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = PluginLimits)]
pub struct PluginLimitsBody {
    /// Wall-clock budget per call, in milliseconds.
    pub time_ms: u64,
    /// Linear memory an instance may grow to, in MiB.
    pub memory_mib: u64,
    /// Candidates passed to `fuse` at most.
    pub max_candidates: usize,
    /// Consecutive failures before quarantine.
    pub quarantine_after: u32,
}

/// One function's measured cost.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CallCost)]
pub struct CallCostBody {
    /// `instantiate`, `describe`, `instruction`, `rerank-depth`, `render` or `fuse`.
    pub call: &'static str,
    /// Calls since load.
    pub calls: u64,
    /// Over the last (up to 1024) calls, in microseconds.
    pub p50_us: u32,
    pub p99_us: u32,
}

impl From<PluginInfo> for PluginInfoBody {
    fn from(p: PluginInfo) -> Self {
        PluginInfoBody {
            name: p.name,
            version: p.version,
            scenarios: p.scenarios,
            rerank_window: p.rerank_window,
            wit: p.wit,
            fuse_fields: p.fuse_fields,
            origin: p.origin,
            hash: p.hash,
            previous_version: p.previous_version,
            quarantined: p.quarantined,
            calls: p.calls,
            failures: p.failures,
            costs: p
                .costs
                .into_iter()
                .map(|c| CallCostBody {
                    call: c.call,
                    calls: c.calls,
                    p50_us: c.p50_us,
                    p99_us: c.p99_us,
                })
                .collect(),
            limits: PluginLimitsBody {
                time_ms: p.limits.time_ms,
                memory_mib: p.limits.memory_mib,
                max_candidates: p.limits.max_candidates,
                quarantine_after: p.limits.quarantine_after,
            },
        }
    }
}

/// Whether the plugin's answer was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = RankingStatus)]
#[serde(rename_all = "snake_case")]
pub enum RankingStatusBody {
    /// The plugin's order is the final order.
    Ok,
    /// The plugin failed; the built-in order and default instruction were used.
    Fallback,
}

/// What the plugin stage did for a search.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = RankingReport)]
pub struct RankingReportBody {
    pub plugin: String,
    pub version: String,
    pub status: RankingStatusBody,
    /// Why the plugin was not used (status `fallback`).
    pub error: Option<PluginFailureBody>,
    /// The reranker instruction the plugin gave (the default one on fallback).
    pub instruction: String,
    /// How many candidates the plugin asked to rerank.
    pub rerank_depth: Option<u32>,
    /// Candidates passed to the plugin.
    pub candidates: usize,
    pub took_ms: f64,
}

impl From<RankingReport> for RankingReportBody {
    fn from(r: RankingReport) -> Self {
        RankingReportBody {
            plugin: r.plugin,
            version: r.version,
            status: match r.status {
                RankingStatus::Ok => RankingStatusBody::Ok,
                RankingStatus::Fallback => RankingStatusBody::Fallback,
            },
            error: r.error.map(Into::into),
            instruction: r.instruction,
            rerank_depth: r.rerank_depth,
            candidates: r.candidates,
            took_ms: r.took_ms,
        }
    }
}

/// A hit's place before and after the plugin.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = PluginScore)]
pub struct PluginScoreBody {
    /// The plugin's final score.
    pub score: f32,
    /// The fused retrieval score the plugin started from.
    pub retrieval_score: f32,
    /// 1-based rank after retrieval fusion.
    pub retrieval_rank: usize,
}

impl From<PluginScore> for PluginScoreBody {
    fn from(p: PluginScore) -> Self {
        PluginScoreBody {
            score: p.score,
            retrieval_score: p.retrieval_score,
            retrieval_rank: p.retrieval_rank,
        }
    }
}

/// Why a plugin could not be loaded or did not give a usable answer; `kind` tells which.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = PluginFailure)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PluginFailureBody {
    /// Not a component, or not built against `mira:ranking`.
    Invalid { message: String },
    /// The component imports something the host does not offer.
    ForbiddenImport { message: String },
    /// The load-time check (describe and a smoke call) failed.
    Validation { message: String },
    /// The call ran past its time budget and was interrupted.
    Timeout { budget_ms: u64 },
    /// The plugin tried to grow its memory past the cap.
    OutOfMemory { requested: usize, cap: usize },
    /// The plugin trapped (a panic, an out-of-bounds access, `unreachable`).
    Trap { message: String },
    /// The plugin answered, but the answer is unusable.
    BadAnswer { message: String },
    /// The plugin returned its own error from `fuse`.
    Refused { message: String },
    /// The plugin failed too often in a row and is not called until it is replaced.
    Quarantined { failures: u32 },
    /// No free instance slot within the budget (host pressure, not counted against the plugin).
    Busy { budget_ms: u64, message: String },
}

impl From<PluginFailure> for PluginFailureBody {
    fn from(f: PluginFailure) -> Self {
        match f {
            PluginFailure::Invalid { message } => PluginFailureBody::Invalid { message },
            PluginFailure::ForbiddenImport { message } => PluginFailureBody::ForbiddenImport { message },
            PluginFailure::Validation { message } => PluginFailureBody::Validation { message },
            PluginFailure::Timeout { budget_ms } => PluginFailureBody::Timeout { budget_ms },
            PluginFailure::OutOfMemory { requested, cap } => PluginFailureBody::OutOfMemory { requested, cap },
            PluginFailure::Trap { message } => PluginFailureBody::Trap { message },
            PluginFailure::BadAnswer { message } => PluginFailureBody::BadAnswer { message },
            PluginFailure::Refused { message } => PluginFailureBody::Refused { message },
            PluginFailure::Quarantined { failures } => PluginFailureBody::Quarantined { failures },
            PluginFailure::Busy { budget_ms, message } => PluginFailureBody::Busy { budget_ms, message },
        }
    }
}
