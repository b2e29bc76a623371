//! Ranking plugins: WebAssembly components built against `wit/ranking.wit`, run sandboxed by
//! wasmtime, hot-swapped while queries run.
//!
//! - [`PluginRuntime`]: the engine, the linker (the `host` interface, and WASI 0.2 granting no
//!   files, network or environment, with the request's clock: `wasi.rs`), the
//!   precompiled-artifact cache and the per-call limits.
//! - [`LoadedPlugin`]: one validated version of a plugin, pre-instantiated; each query opens a
//!   [`PluginSession`] (a fresh store and instance, so a trap never leaks into the next query).
//! - [`PluginRegistry`]: plugins by name, with atomic swap, rollback, quarantine, directory
//!   loading and watching.
//!
//! This module knows wasmtime and the WIT types only: the search stage that calls a plugin, and
//! the conversion of candidates into WIT types at that call, live in [`crate::search`].
//!
//! Invariant: nothing a plugin does can fail a query or harm the host. Every failure becomes a
//! [`PluginFailure`], reported in the response, counted towards quarantine.

mod bindings;
pub mod columns;
mod cost;
mod failure;
mod limits;
mod loaded;
mod registry;
mod report;
mod runtime;
mod state;
mod wasi;
mod watch;

pub use cost::{CALLS, CallCost};
pub use failure::PluginFailure;
pub use limits::{LimitOverride, PluginLimits};
pub use loaded::{LoadedPlugin, PluginDescription, PluginSession, valid_plugin_name};
pub use registry::{PluginInfo, PluginRegistry};
pub use report::{PluginScore, RankingReport, RankingStatus};
pub use runtime::PluginRuntime;
pub use watch::DirectoryWatch;

/// Types of the WIT interface, for callers that build requests and candidates (one family for
/// plugins of either version: `types` did not change between 0.1 and 0.2).
pub mod wit {
    pub use super::bindings::v2::mira::ranking::columns::{Candidates, Column, FieldColumn, StageColumns};
    pub use super::bindings::v2::mira::ranking::types::{
        Candidate, Description, Field, FieldValue, FuseError, Param, Request, StageScores,
    };
}
