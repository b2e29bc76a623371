//! One validated version of a plugin, and the per-query sessions opened on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use serde::Serialize;
use wasmtime::Store;
use wasmtime::component::Component;

use super::PluginFailure;
use super::bindings::{v1, v2};
use super::columns::{MAX_FIELD_NAME, MAX_FUSE_FIELDS};
use super::cost::Call;
use super::runtime::{PluginRuntime, TICK};
use super::state::{Moment, StoreState};
use super::wit::{Candidate, Candidates, Description, FieldValue, Request, StageScores};
use sha2::{Digest, Sha256};

/// Longest instruction accepted, in bytes.
const MAX_INSTRUCTION: usize = 4096;
/// Longest rendering accepted, in bytes.
const MAX_RENDER: usize = 64 * 1024;
/// The query of the load-time smoke call.
pub(crate) const SMOKE_QUERY: &str = "mira plugin load check";
/// The time of the load-time smoke call and of sessions outside a request.
const SMOKE_NOW: i64 = 1_700_000_000;
/// What the WASI context of a session outside any request reads.
const OUTSIDE_REQUEST: Moment = Moment {
    now: SMOKE_NOW,
    seed: 0,
};
/// Longest word of a plugin's tag vocabulary, in bytes.
const MAX_TAG_WORD: usize = 128;
/// The least time budget of a load-time check, in milliseconds.
const LOAD_BUDGET_MS: u64 = 1000;

/// What a plugin says about itself, checked at load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginDescription {
    pub name: String,
    pub version: String,
    pub scenarios: Vec<String>,
    pub rerank_window: u32,
    pub tag_vocabulary: Vec<String>,
    /// The `mira:ranking` line it was built against: `0.1` or `0.2`.
    pub wit: &'static str,
    /// The fields its `fuse` reads (0.2; a 0.1 plugin gets every field).
    pub fuse_fields: Vec<String>,
}

/// A component pre-instantiated against the line it was built for.
enum Pre {
    V1(v1::RankingPluginPre<StoreState>),
    V2(v2::RankingPluginPre<StoreState>),
}

/// An instance's exports, of either line.
enum Bindings {
    V1(v1::RankingPlugin),
    V2(v2::RankingPlugin),
}

/// A loaded, validated plugin version. Cheap to share; queries hold an `Arc` for their duration,
/// so a swap never disturbs a query in flight.
pub struct LoadedPlugin {
    runtime: Arc<PluginRuntime>,
    pre: Pre,
    name: Arc<str>,
    config: Arc<HashMap<String, String>>,
    pub description: PluginDescription,
    /// SHA-256 of the component's bytes.
    pub hash: String,
    /// Where it came from (a path, `built-in`, an upload).
    pub origin: String,
    consecutive_failures: AtomicU32,
    quarantined: AtomicBool,
    calls: AtomicU64,
    failures: AtomicU64,
    /// What each function's calls took lately.
    costs: super::cost::CallCosts,
    /// Its own limits from `[plugin_limits.NAME]` (set once, at load); else the runtime's.
    own_limits: std::sync::OnceLock<super::PluginLimits>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("version", &self.description.version)
            .field("hash", &self.hash)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Valid plugin names: they become file names in the plugin directory.
pub fn valid_plugin_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn link_failure(e: wasmtime::Error) -> PluginFailure {
    let message = format!("{e:#}");
    if message.contains("matching implementation was not found") || message.contains("import") {
        PluginFailure::ForbiddenImport { message }
    } else {
        PluginFailure::Invalid { message }
    }
}

impl LoadedPlugin {
    /// Compiles, links, describes and smoke-tests a plugin. `configs` maps plugin names to what
    /// `host.config` answers (the name is known once the plugin has described itself).
    pub fn load(
        runtime: &Arc<PluginRuntime>,
        bytes: &[u8],
        origin: &str,
        configs: &HashMap<String, HashMap<String, String>>,
    ) -> Result<Arc<LoadedPlugin>, PluginFailure> {
        let (component, hash) = runtime.compile(bytes)?;
        LoadedPlugin::new(runtime.clone(), &component, hash.clone(), origin, configs)
            .map(Arc::new)
            .inspect_err(|_| runtime.forget(&hash))
    }

    pub(crate) fn new(
        runtime: Arc<PluginRuntime>,
        component: &Component,
        hash: String,
        origin: &str,
        configs: &HashMap<String, HashMap<String, String>>,
    ) -> Result<Self, PluginFailure> {
        let own_linker = super::wasi::linker_for(&runtime.engine, &runtime.linker, component)?;
        let instance_pre = own_linker
            .as_ref()
            .unwrap_or(&runtime.linker)
            .instantiate_pre(component)
            .map_err(link_failure)?;
        let pre = match v2::RankingPluginPre::new(instance_pre.clone()) {
            Ok(p) => Pre::V2(p),
            Err(e2) => Pre::V1(
                v1::RankingPluginPre::new(instance_pre).map_err(|e1| PluginFailure::Invalid {
                    message: format!(
                        "not built against mira:ranking@0.2.x ({e2:#}) or @0.1.x ({e1:#}); the host serves both"
                    ),
                })?,
            ),
        };
        let wit = match pre {
            Pre::V1(_) => "0.1",
            Pre::V2(_) => "0.2",
        };
        let mut plugin = LoadedPlugin {
            runtime,
            pre,
            name: Arc::from("(loading)"),
            config: Arc::new(HashMap::new()),
            description: PluginDescription {
                name: String::new(),
                version: String::new(),
                scenarios: Vec::new(),
                rerank_window: 0,
                tag_vocabulary: Vec::new(),
                wit,
                fuse_fields: Vec::new(),
            },
            hash,
            origin: origin.to_owned(),
            consecutive_failures: AtomicU32::new(0),
            quarantined: AtomicBool::new(false),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            costs: Default::default(),
            own_limits: std::sync::OnceLock::new(),
        };
        let validation = |m: String| PluginFailure::Validation { message: m };
        let mut first = plugin.load_session()?;
        let d = first.describe().map_err(|e| validation(format!("describe: {e}")))?;
        let fuse_fields = first
            .fuse_fields()
            .map_err(|e| validation(format!("fuse-fields: {e}")))?;
        drop(first);
        // Distinct names: each name is a column the host copies per query, so a repeated name
        // would multiply host memory for nothing.
        let distinct = fuse_fields.iter().collect::<std::collections::HashSet<_>>().len() == fuse_fields.len();
        if fuse_fields.len() > MAX_FUSE_FIELDS
            || !distinct
            || fuse_fields.iter().any(|f| f.is_empty() || f.len() > MAX_FIELD_NAME)
        {
            return Err(validation(format!(
                "fuse-fields must name at most {MAX_FUSE_FIELDS} distinct fields of 1 to {MAX_FIELD_NAME} bytes"
            )));
        }
        // The tag vocabulary is copied into ingests that use it: bounded like a schema's.
        if d.tag_vocabulary.len() > crate::schema::MAX_TAG_VOCABULARY
            || d.tag_vocabulary.iter().any(|w| w.len() > MAX_TAG_WORD)
        {
            return Err(validation(format!(
                "tag-vocabulary must have at most {} words of at most {MAX_TAG_WORD} bytes",
                crate::schema::MAX_TAG_VOCABULARY
            )));
        }
        if !valid_plugin_name(&d.name) {
            return Err(validation(format!(
                "name `{}` must be lowercase letters, digits, `-` or `_`, starting with a letter (at most 64)",
                d.name
            )));
        }
        if d.version.trim().is_empty() || d.version.len() > 64 {
            return Err(validation(format!(
                "version `{}` must be 1 to 64 characters",
                d.version
            )));
        }
        plugin.name = Arc::from(d.name.as_str());
        // The smoke call and every query see the operator's configuration for this name.
        plugin.config = Arc::new(configs.get(&d.name).cloned().unwrap_or_default());
        plugin.description = PluginDescription {
            name: d.name,
            version: d.version,
            scenarios: d.scenarios,
            rerank_window: d.rerank_window,
            tag_vocabulary: d.tag_vocabulary,
            wit,
            fuse_fields,
        };
        plugin.smoke_test()?;
        Ok(plugin)
    }

    /// Calls every function once on synthetic data and checks the answers.
    fn smoke_test(&self) -> Result<(), PluginFailure> {
        let req = Request {
            query: SMOKE_QUERY.into(),
            has_image_query: false,
            scenario: self.description.scenarios.first().cloned(),
            params: Vec::new(),
            now: SMOKE_NOW,
        };
        let candidate = |id: &str, rank: u32, score: f32| Candidate {
            id: id.into(),
            fields: vec![super::wit::Field {
                name: "title".into(),
                value: FieldValue::Text(format!("smoke test document {id}")),
            }],
            scores: StageScores {
                bm25: Some(score * 10.0),
                bm25_rank: Some(rank),
                vector: Some(score),
                vector_rank: Some(rank),
                retrieval: score,
                retrieval_rank: rank,
                rerank: None,
            },
            tags: Vec::new(),
            caption: None,
            has_image: false,
        };
        let candidates = vec![candidate("a", 1, 0.9), candidate("b", 2, 0.5)];
        let mut s = self.load_session()?;
        s.instruction(&req).map_err(|e| with_call("instruction", e))?;
        s.render(&req, &candidates[0]).map_err(|e| with_call("render", e))?;
        s.rerank_depth(&req, &[0.9, 0.5])
            .map_err(|e| with_call("rerank-depth", e))?;
        s.fuse(&req, &candidates).map_err(|e| with_call("fuse", e))?;
        Ok(())
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limits this plugin's calls run under.
    pub fn limits(&self) -> super::PluginLimits {
        self.own_limits.get().copied().unwrap_or(self.runtime.limits)
    }

    /// Gives the plugin its own limits (`[plugin_limits.NAME]`), once, before it serves.
    pub(crate) fn set_limits(&self, limits: super::PluginLimits) {
        let _ = self.own_limits.set(limits);
    }

    /// Opens a session outside any request (load checks, tools): a fresh store and instance with
    /// the plugin's limits, its clock at the smoke test's time.
    pub fn session(&self) -> Result<PluginSession<'_>, PluginFailure> {
        self.open(OUTSIDE_REQUEST, self.limits())
    }

    /// Opens the session of one request: WASI's wall clock reads the request's `now`, and its
    /// randomness is seeded from the request, so the same request sees the same numbers.
    pub fn session_for(&self, req: &Request) -> Result<PluginSession<'_>, PluginFailure> {
        let mut h = Sha256::new();
        h.update(req.query.as_bytes());
        h.update(req.now.to_le_bytes());
        h.update(req.scenario.as_deref().unwrap_or("").as_bytes());
        h.update([u8::from(req.has_image_query)]);
        for p in &req.params {
            h.update([0]);
            h.update(p.key.as_bytes());
            h.update([1]);
            h.update(p.value.as_bytes());
        }
        let digest = h.finalize();
        let seed = u64::from_le_bytes(digest[..8].try_into().unwrap_or_default());
        self.open(Moment { now: req.now, seed }, self.limits())
    }

    /// The load checks' session: a first instance of a fresh artifact (tens of MB of memory
    /// image for Python or JavaScript) may take longer than a query's budget, so load checks
    /// get ten times that, at least a second. Queries never do.
    fn load_session(&self) -> Result<PluginSession<'_>, PluginFailure> {
        let mut limits = self.limits();
        limits.time_ms = (limits.time_ms.saturating_mul(10)).max(LOAD_BUDGET_MS);
        self.open(OUTSIDE_REQUEST, limits)
    }

    fn open(&self, at: Moment, limits: super::PluginLimits) -> Result<PluginSession<'_>, PluginFailure> {
        let mut store = Store::new(
            &self.runtime.engine,
            StoreState::new(self.name.clone(), self.config.clone(), limits.memory_bytes(), at),
        );
        store.limiter(|s| s);
        let ticks = limits.time_budget().as_millis().div_ceil(TICK.as_millis()) as u64 + 1;
        store.set_epoch_deadline(ticks);
        let started = std::time::Instant::now();
        let time_ms = limits.time_ms;
        // A pool with no free slot is the host's pressure, not the plugin's fault: wait for one
        // within the call's budget, then say so (never counted towards quarantine).
        let bindings = loop {
            let instance = match &self.pre {
                Pre::V1(p) => p.instantiate(&mut store).map(Bindings::V1),
                Pre::V2(p) => p.instantiate(&mut store).map(Bindings::V2),
            };
            match instance {
                Ok(b) => break b,
                Err(e) if pool_exhausted(&e) => {
                    if started.elapsed() >= limits.time_budget() {
                        return Err(PluginFailure::Busy {
                            budget_ms: limits.time_ms,
                            message: format!("{e}"),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => return Err(classify(e, &store, limits.time_ms)),
            }
        };
        self.costs.record(Call::Instantiate, started.elapsed());
        Ok(PluginSession {
            plugin: self,
            store,
            bindings,
            ticks,
            time_ms,
            poisoned: false,
        })
    }

    /// Counts a query's outcome; quarantines after too many failures in a row.
    pub fn record(&self, ok: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if ok {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
            let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= self.limits().quarantine_after && !self.quarantined.swap(true, Ordering::Relaxed) {
                tracing::warn!(plugin = %self.name, failures = n, "plugin quarantined");
            }
        }
    }

    /// `Some(failure)` when the plugin is quarantined.
    pub fn quarantine(&self) -> Option<PluginFailure> {
        self.quarantined
            .load(Ordering::Relaxed)
            .then(|| PluginFailure::Quarantined {
                failures: self.consecutive_failures.load(Ordering::Relaxed),
            })
    }

    /// p50 and p99 of each function's recent calls.
    pub fn costs(&self) -> Vec<super::CallCost> {
        self.costs.summary()
    }

    /// Queries served and failed since load.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

fn with_call(call: &str, e: PluginFailure) -> PluginFailure {
    PluginFailure::Validation {
        message: format!("{call}: {e}"),
    }
}

/// Whether instantiation failed for want of a free slot in the instance pool.
fn pool_exhausted(e: &wasmtime::Error) -> bool {
    let m = format!("{e:#}");
    m.contains("maximum concurrent") || m.contains("concurrent limit")
}

/// Maps a wasmtime error to what happened, using what the store saw.
fn classify(e: wasmtime::Error, store: &Store<StoreState>, budget_ms: u64) -> PluginFailure {
    if let Some(requested) = store.data().memory_denied {
        return PluginFailure::OutOfMemory {
            requested,
            cap: store.data().memory_cap,
        };
    }
    if matches!(e.downcast_ref::<wasmtime::Trap>(), Some(wasmtime::Trap::Interrupt)) {
        return PluginFailure::Timeout { budget_ms };
    }
    // Keep the causes, not the wasm backtrace wasmtime adds as context.
    let message = e
        .chain()
        .map(|c| c.to_string())
        .filter(|c| !c.contains("wasm backtrace:"))
        .collect::<Vec<_>>()
        .join(": ");
    let message = if message.is_empty() { format!("{e:#}") } else { message };
    let message = message
        .split("\nwasm backtrace:")
        .next()
        .unwrap_or(&message)
        .trim()
        .replace('\n', " ");
    PluginFailure::Trap { message }
}

/// One query's use of a plugin: a fresh instance, each call under the time budget. After a
/// failure the instance is dropped and further calls are refused.
pub struct PluginSession<'a> {
    plugin: &'a LoadedPlugin,
    store: Store<StoreState>,
    bindings: Bindings,
    ticks: u64,
    /// The budget `ticks` stands for, for reports.
    time_ms: u64,
    poisoned: bool,
}

impl PluginSession<'_> {
    /// Calls one function, timed.
    fn call<T>(
        &mut self,
        which: Call,
        f: impl FnOnce(&Bindings, &mut Store<StoreState>) -> wasmtime::Result<T>,
    ) -> Result<T, PluginFailure> {
        if self.poisoned {
            return Err(PluginFailure::Trap {
                message: "the instance is unusable after an earlier failure".into(),
            });
        }
        self.store.set_epoch_deadline(self.ticks);
        let started = std::time::Instant::now();
        let out = f(&self.bindings, &mut self.store).map_err(|e| {
            self.poisoned = true;
            classify(e, &self.store, self.time_ms)
        });
        self.plugin.costs.record(which, started.elapsed());
        out
    }

    pub fn describe(&mut self) -> Result<Description, PluginFailure> {
        self.call(Call::Describe, |b, s| match b {
            Bindings::V1(b) => b.mira_ranking_plugin().call_describe(s),
            Bindings::V2(b) => b.mira_ranking_plugin().call_describe(s),
        })
    }

    /// The fields a 0.2 plugin's `fuse` reads (none asked of a 0.1 plugin, which gets all).
    fn fuse_fields(&mut self) -> Result<Vec<String>, PluginFailure> {
        self.call(Call::Describe, |b, s| match b {
            Bindings::V1(_) => Ok(Vec::new()),
            Bindings::V2(b) => b.mira_ranking_plugin().call_fuse_fields(s),
        })
    }

    /// The reranker instruction (non-empty, at most 4 KiB).
    pub fn instruction(&mut self, req: &Request) -> Result<String, PluginFailure> {
        let s = self.call(Call::Instruction, |b, st| match b {
            Bindings::V1(b) => b.mira_ranking_plugin().call_instruction(st, req),
            Bindings::V2(b) => b.mira_ranking_plugin().call_instruction(st, req),
        })?;
        if s.trim().is_empty() || s.len() > MAX_INSTRUCTION {
            return Err(PluginFailure::BadAnswer {
                message: format!("instruction must be 1 to {MAX_INSTRUCTION} bytes, got {}", s.len()),
            });
        }
        Ok(s)
    }

    /// The reranker's text for a candidate (at most 64 KiB).
    pub fn render(&mut self, req: &Request, c: &Candidate) -> Result<String, PluginFailure> {
        let s = self.call(Call::Render, |b, st| match b {
            Bindings::V1(b) => b.mira_ranking_plugin().call_render(st, req, c),
            Bindings::V2(b) => b.mira_ranking_plugin().call_render(st, req, c),
        })?;
        if s.len() > MAX_RENDER {
            return Err(PluginFailure::BadAnswer {
                message: format!("render must be at most {MAX_RENDER} bytes, got {}", s.len()),
            });
        }
        Ok(s)
    }

    /// How many candidates to rerank (clamped to the number given).
    pub fn rerank_depth(&mut self, req: &Request, scores: &[f32]) -> Result<u32, PluginFailure> {
        let d = self.call(Call::RerankDepth, |b, st| match b {
            Bindings::V1(b) => b.mira_ranking_plugin().call_rerank_depth(st, req, scores),
            Bindings::V2(b) => b.mira_ranking_plugin().call_rerank_depth(st, req, scores),
        })?;
        Ok(d.min(scores.len() as u32))
    }

    /// Final scores, one finite score per candidate: a 0.1 plugin reads the candidates as
    /// records, a 0.2 plugin as columns of the fields it named.
    pub fn fuse(&mut self, req: &Request, candidates: &[Candidate]) -> Result<Vec<f32>, PluginFailure> {
        if matches!(self.bindings, Bindings::V2(_)) {
            let columns = super::columns::of(candidates, &self.plugin.description.fuse_fields);
            return self.fuse_columns(req, &columns);
        }
        let answer = self.call(Call::Fuse, |b, st| match b {
            Bindings::V1(b) => b.mira_ranking_plugin().call_fuse(st, req, candidates),
            Bindings::V2(_) => unreachable!("0.2 plugins take columns"),
        })?;
        self.check_scores(answer, candidates.len())
    }

    /// `fuse` of a 0.2 plugin on columns made by the caller ([`super::columns::of`]).
    pub fn fuse_columns(&mut self, req: &Request, columns: &Candidates) -> Result<Vec<f32>, PluginFailure> {
        let answer = self.call(Call::Fuse, |b, st| match b {
            Bindings::V2(b) => b.mira_ranking_plugin().call_fuse(st, req, columns),
            Bindings::V1(_) => Err(wasmtime::format_err!(
                "a mira:ranking@0.1 plugin takes candidates, not columns"
            )),
        })?;
        self.check_scores(answer, columns.count as usize)
    }

    fn check_scores(
        &self,
        answer: Result<Vec<f32>, super::wit::FuseError>,
        expected: usize,
    ) -> Result<Vec<f32>, PluginFailure> {
        let scores = answer.map_err(|e| PluginFailure::Refused {
            message: match e {
                super::wit::FuseError::InvalidInput(m) => format!("invalid input: {m}"),
                super::wit::FuseError::Internal(m) => m,
            },
        })?;
        if scores.len() != expected {
            return Err(PluginFailure::BadAnswer {
                message: format!("fuse returned {} scores for {expected} candidates", scores.len()),
            });
        }
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            return Err(PluginFailure::BadAnswer {
                message: format!("fuse returned a non-finite score ({}) for candidate {i}", scores[i]),
            });
        }
        Ok(scores)
    }
}
