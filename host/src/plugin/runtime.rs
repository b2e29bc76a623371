//! The wasmtime side: one engine for all plugins, a linker that offers `mira:ranking/host` and a
//! WASI 0.2 that grants nothing ([`super::wasi`]), precompiled artifacts cached by content hash,
//! and an epoch ticker for time budgets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::{v1, v2};
use super::state::StoreState;
use super::{PluginFailure, PluginLimits};
use crate::error::Error;

/// Epoch ticks per second: a time budget is rounded up to whole milliseconds.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// Shared by every loaded plugin.
pub struct PluginRuntime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<StoreState>,
    pub(crate) limits: PluginLimits,
    cache_dir: Option<PathBuf>,
    stop: Arc<AtomicBool>,
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn engine(limits: &PluginLimits) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // For profiling plugins: a perf map names their compiled functions (docs/plugins.md).
    if std::env::var_os("MIRA_WASM_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    // Instances come from a pool of pre-reserved slots: a fresh instance per query costs tens
    // of microseconds instead of mmap/munmap calls (measured in `mira-bench plugins`).
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(limits.pool_components.max(1));
    pool.total_core_instances(limits.pool_core_instances.max(1));
    pool.total_memories(limits.pool_memories.max(1));
    pool.total_tables(limits.pool_tables.max(1));
    pool.max_memory_size(limits.memory_bytes().max(1 << 20));
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

impl PluginRuntime {
    /// A runtime with the given limits; compiled artifacts are cached in `cache_dir` if given.
    /// Failing to start is the engine's fault, never a plugin's ([`Error::PluginEngine`]).
    pub fn new(limits: PluginLimits, cache_dir: Option<&Path>) -> Result<Arc<Self>, Error> {
        let engine = engine(&limits).map_err(|e| Error::PluginEngine(format!("cannot start wasmtime: {e}")))?;
        let mut linker = Linker::new(&engine);
        // Both lines of `mira:ranking`: 0.2's world, 0.1's host (its types are 0.2's, and an
        // interface of types only needs an instance to exist).
        v2::RankingPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .and_then(|_| v1::mira::ranking::host::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s))
            .and_then(|_| linker.instance("mira:ranking/types@0.1.0").map(|_| ()))
            .map_err(|e| Error::PluginEngine(format!("cannot link the host interface: {e}")))?;
        super::wasi::link(&mut linker).map_err(|e| Error::PluginEngine(format!("cannot link WASI: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("mira-plugin-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| Error::PluginEngine(format!("cannot start the epoch thread: {e}")))?;
        }
        if let Some(dir) = cache_dir {
            let _ = std::fs::create_dir_all(dir);
        }
        Ok(Arc::new(PluginRuntime {
            engine,
            linker,
            limits,
            cache_dir: cache_dir.map(Path::to_path_buf),
            stop,
        }))
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    /// Compiles a component, or deserializes it from the cache when these exact bytes were
    /// compiled before by this engine.
    pub(crate) fn compile(&self, bytes: &[u8]) -> Result<(Component, String), PluginFailure> {
        let hash = hex(&Sha256::digest(bytes));
        let cached = self.artifact(&hash);
        if let Some(path) = &cached
            && path.is_file()
        {
            // SAFETY: the cache holds only artifacts this process family produced with
            // `Engine::precompile_component`, named by the hash of their source; wasmtime checks
            // that the artifact matches this engine's configuration and version and errors
            // otherwise, in which case we recompile.
            match unsafe { Component::deserialize_file(&self.engine, path) } {
                Ok(c) => return Ok((c, hash)),
                Err(e) => tracing::warn!(file = %path.display(), error = %e, "recompiling stale plugin artifact"),
            }
        }
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return Err(PluginFailure::Invalid {
                message: "not a WebAssembly binary".into(),
            });
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| PluginFailure::Invalid {
            message: format!("{e:#}"),
        })?;
        if let Some(path) = &cached
            && let Ok(artifact) = component.serialize()
        {
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, artifact)
                .and_then(|_| std::fs::rename(&tmp, path))
                .is_err()
            {
                let _ = std::fs::remove_file(&tmp);
            }
        }
        Ok((component, hash))
    }
}

impl PluginRuntime {
    /// Where the compiled artifact of the component with this hash is cached.
    fn artifact(&self, hash: &str) -> Option<PathBuf> {
        self.cache_dir.as_ref().map(|d| d.join(format!("{hash}.cwasm")))
    }

    /// Removes the cached artifact of a component that failed its load (tens of MB for a
    /// Python or JavaScript build), so refused uploads leave nothing behind.
    pub(crate) fn forget(&self, hash: &str) {
        if let Some(path) = self.artifact(hash) {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
