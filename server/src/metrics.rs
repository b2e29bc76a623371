//! Prometheus metrics at `/metrics`: HTTP requests and latency per route, per-stage search
//! latency, plugin faults and fallbacks, the embedding cache's hit rate, and the worker queue.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use mira_host::plugin::RankingStatus;
use mira_host::search::SearchResponse;

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Distinct instruction hashes counted apart; later ones are counted as `other` (a client
/// sending a new instruction with every request cannot grow the exposition without bound).
pub const MAX_INSTRUCTION_SERIES: usize = 1000;

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    stage_seconds: HistogramVec,
    plugin_faults: IntCounterVec,
    plugin_fallbacks: IntCounterVec,
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    queue_depth: IntGauge,
    in_flight: IntGauge,
    instruction_queries: IntCounterVec,
    /// The instruction hashes with a series of their own (at most [`MAX_INSTRUCTION_SERIES`]).
    instruction_hashes: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Requests that panicked (a handler, or engine work on a worker) and answered 500.
    pub panics: IntCounter,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    r.register(Box::new(m.clone())).expect("metric names are unique");
    m
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let hist = |name: &str, help: &str, labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
            register(&r, HistogramVec::new(opts, labels).expect("valid histogram"))
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &r,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter"),
            )
        };
        let counter = |name: &str, help: &str| register(&r, IntCounter::new(name, help).expect("valid counter"));
        let gauge = |name: &str, help: &str| register(&r, IntGauge::new(name, help).expect("valid gauge"));
        Metrics {
            http_requests: counter_vec(
                "mira_http_requests_total",
                "HTTP requests by route, method and status",
                &["route", "method", "status"],
            ),
            http_seconds: hist("mira_http_request_seconds", "HTTP request latency by route", &["route"]),
            stage_seconds: hist(
                "mira_search_stage_seconds",
                "Search latency by stage: retrieval (BM25, kNN, fusion), plugin, rerank, total",
                &["stage"],
            ),
            plugin_faults: counter_vec(
                "mira_plugin_faults_total",
                "Ranking plugin failures by plugin and kind",
                &["plugin", "kind"],
            ),
            plugin_fallbacks: counter_vec(
                "mira_plugin_fallbacks_total",
                "Searches served in the built-in order because the plugin failed",
                &["plugin"],
            ),
            cache_hits: counter(
                "mira_embedding_cache_hits_total",
                "Embeddings served by the embedding cache",
            ),
            cache_misses: counter("mira_embedding_cache_misses_total", "Embeddings the cache did not hold"),
            queue_depth: gauge("mira_worker_queue_depth", "Jobs waiting for a worker"),
            in_flight: gauge("mira_worker_in_flight", "Jobs running on workers"),
            instruction_queries: counter_vec(
                "mira_search_instruction_queries_total",
                "Searches by the short hash of the instruction the reranker or plugin used, and its source",
                &["instruction", "source"],
            ),
            instruction_hashes: Default::default(),
            panics: counter(
                "mira_panics_total",
                "Requests that panicked in a handler or on a worker and answered 500 (the server goes on)",
            ),
            registry: r,
        }
    }

    pub fn http(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.http_requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.http_seconds
            .with_label_values(&[route])
            .observe(took.as_secs_f64());
    }

    /// Records a search's stages and its plugin outcome.
    pub fn search(&self, resp: &SearchResponse) {
        let plugin_ms = resp.ranking.as_ref().map_or(0.0, |r| r.took_ms);
        let rerank_ms = resp.rerank.as_ref().map_or(0.0, |r| r.took_ms);
        let stage = |name: &str, ms: f64| self.stage_seconds.with_label_values(&[name]).observe(ms.max(0.0) / 1e3);
        stage("total", resp.took_ms);
        stage("retrieval", resp.took_ms - plugin_ms - rerank_ms);
        if resp.ranking.is_some() {
            stage("plugin", plugin_ms);
        }
        if resp.rerank.as_ref().is_some_and(|r| r.reranked > 0) {
            stage("rerank", rerank_ms);
        }
        if let Some(i) = &resp.instruction {
            let mut known = self.instruction_hashes.lock().unwrap_or_else(|e| e.into_inner());
            let label = if known.contains(&i.hash) || known.len() < MAX_INSTRUCTION_SERIES {
                known.insert(i.hash.clone());
                i.hash.as_str()
            } else {
                "other"
            };
            self.instruction_queries.with_label_values(&[label, i.source]).inc();
        }
        if let Some(r) = &resp.ranking
            && r.status == RankingStatus::Fallback
        {
            self.plugin_fallbacks.with_label_values(&[&r.plugin]).inc();
            if let Some(e) = &r.error {
                self.plugin_faults.with_label_values(&[&r.plugin, e.kind()]).inc();
            }
        }
    }

    /// The text exposition, with the gauges read now.
    pub fn render(&self, queue_depth: i64, in_flight: i64) -> String {
        self.queue_depth.set(queue_depth);
        self.in_flight.set(in_flight);
        let cache = mira_host::embed::cache::global_stats();
        self.cache_hits.inc_by(cache.hits.saturating_sub(self.cache_hits.get()));
        self.cache_misses
            .inc_by(cache.misses.saturating_sub(self.cache_misses.get()));
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
