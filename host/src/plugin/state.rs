//! The per-store state of a plugin instance: its configuration, its memory cap, its sandboxed
//! WASI context, and the host functions it may call.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::v1::mira::ranking::host as host_v1;
use super::bindings::v2::mira::ranking::{columns, host, types};
use super::wasi::{self, Sandbox};

/// Log lines a plugin may write per call; more are dropped (a plugin cannot flood the log).
const MAX_LOG_LINES: u32 = 64;
/// Longest log line kept, in bytes.
const MAX_LOG_BYTES: usize = 1024;
/// WASI resources (streams, pollables...) an instance may hold at once: they live in host memory,
/// outside the plugin's memory cap, so a plugin creating them in a loop is stopped here.
const MAX_RESOURCES: usize = 1024;

pub(crate) struct StoreState {
    pub plugin: Arc<str>,
    pub config: Arc<HashMap<String, String>>,
    pub memory_cap: usize,
    /// Set when a memory growth was refused, so the trap can be reported as out-of-memory.
    pub memory_denied: Option<usize>,
    log_lines: u32,
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) sandbox: Sandbox,
}

/// What a store's WASI context reads: the request's time and a seed drawn from the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moment {
    pub now: i64,
    pub seed: u64,
}

impl StoreState {
    pub fn new(plugin: Arc<str>, config: Arc<HashMap<String, String>>, memory_cap: usize, at: Moment) -> Self {
        let (wasi, sandbox) = wasi::context(&plugin, at.now, at.seed);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        StoreState {
            plugin,
            config,
            memory_cap,
            memory_denied: None,
            log_lines: 0,
            wasi,
            table,
            sandbox,
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for StoreState {}
impl columns::Host for StoreState {}

impl host::Host for StoreState {
    fn log(&mut self, level: host::Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        let mut end = message.len().min(MAX_LOG_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let message = super::wasi::printable(&message[..end]);
        let plugin = &*self.plugin;
        match level {
            host::Level::Debug => tracing::debug!(plugin, "{message}"),
            host::Level::Info => tracing::info!(plugin, "{message}"),
            host::Level::Warn => tracing::warn!(plugin, "{message}"),
            host::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn config(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }
}

/// The 0.1 host interface is the same as 0.2's.
impl host_v1::Host for StoreState {
    fn log(&mut self, level: host_v1::Level, message: String) {
        let level = match level {
            host_v1::Level::Debug => host::Level::Debug,
            host_v1::Level::Info => host::Level::Info,
            host_v1::Level::Warn => host::Level::Warn,
            host_v1::Level::Error => host::Level::Error,
        };
        host::Host::log(self, level, message);
    }

    fn config(&mut self, key: String) -> Option<String> {
        host::Host::config(self, key)
    }
}

impl wasmtime::ResourceLimiter for StoreState {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_denied = Some(desired);
            return Err(wasmtime::format_err!(
                "memory growth to {desired} bytes refused (cap {})",
                self.memory_cap
            ));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
