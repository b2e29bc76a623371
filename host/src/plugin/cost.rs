//! What each call of a plugin costs: the last calls' wall times per function, as p50 and p99,
//! so an operator can size `time_ms` and `max_candidates` from what the plugin really takes.

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// Calls remembered per function (older ones drop out).
const WINDOW: usize = 1024;

/// The functions a plugin is called through, and opening an instance.
pub const CALLS: [&str; 6] = [
    "instantiate",
    "describe",
    "instruction",
    "rerank-depth",
    "render",
    "fuse",
];

/// What is timed: an index into [`CALLS`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Call {
    Instantiate,
    Describe,
    Instruction,
    RerankDepth,
    Render,
    Fuse,
}

/// Recent call times per function.
#[derive(Default)]
pub struct CallCosts {
    rings: Mutex<[Ring; 6]>,
}

#[derive(Default, Clone)]
struct Ring {
    micros: Vec<u32>,
    next: usize,
    total: u64,
}

/// One function's measured cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallCost {
    pub call: &'static str,
    /// Calls since load.
    pub calls: u64,
    /// Over the last (up to 1024) calls, in microseconds.
    pub p50_us: u32,
    pub p99_us: u32,
}

impl CallCosts {
    /// Records one call.
    pub(crate) fn record(&self, call: Call, took: Duration) {
        let us = took.as_micros().min(u128::from(u32::MAX)) as u32;
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let r = &mut rings[call as usize];
        if r.micros.len() < WINDOW {
            r.micros.push(us);
        } else {
            r.micros[r.next] = us;
        }
        r.next = (r.next + 1) % WINDOW;
        r.total += 1;
    }

    /// Every function called at least once, with its p50 and p99.
    pub fn summary(&self) -> Vec<CallCost> {
        let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        CALLS
            .iter()
            .zip(rings.iter())
            .filter(|(_, r)| r.total > 0)
            .map(|(call, r)| {
                let mut sorted = r.micros.clone();
                sorted.sort_unstable();
                let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
                CallCost {
                    call,
                    calls: r.total,
                    p50_us: at(0.5),
                    p99_us: at(0.99),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_the_last_calls() {
        let c = CallCosts::default();
        for us in 1..=100u64 {
            c.record(Call::Fuse, Duration::from_micros(us));
        }
        let s = c.summary();
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].call, s[0].calls, s[0].p50_us, s[0].p99_us), ("fuse", 100, 51, 99));
        for _ in 0..WINDOW {
            c.record(Call::Fuse, Duration::from_micros(7));
        }
        let s = c.summary();
        assert_eq!(
            (s[0].calls, s[0].p50_us, s[0].p99_us),
            (100 + WINDOW as u64, 7, 7),
            "old calls drop out"
        );
    }
}
