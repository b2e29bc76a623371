//! Reranking shared across concurrent queries: the prompts of queries that arrive within a
//! short window go through the model in the same forward passes. On a GPU a forward over 64
//! prompts costs little more than over 8, so concurrent queries finish sooner together than one
//! after another; on a CPU the gain is the ~1.1x of batching, so the window defaults to 0 there.
//!
//! No thread of its own: the first query to arrive leads. It opens a gathering, waits up to the
//! window (or until the gathering holds `max_prompts`), then scores everything gathered and hands
//! each query its share. Queries arriving meanwhile join and wait for their share. A query with
//! more than `max_prompts` prompts, or with a zero window, is scored on its own at once.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::models::ModelError;

/// How long a query waits for others to share its forward passes, and how many prompts one
/// shared run holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedWindow {
    pub wait: Duration,
    pub max_prompts: usize,
}

impl SharedWindow {
    /// Scored on their own, at once.
    pub const ALONE: SharedWindow = SharedWindow {
        wait: Duration::ZERO,
        max_prompts: 0,
    };
}

/// What one query's share of a run looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SharedRun {
    /// Queries whose prompts went through the same forward passes (1: this one alone).
    pub queries: usize,
    /// Prompts in the run, this query's included.
    pub prompts: usize,
    /// Time this query waited for others before its run started.
    pub waited: Duration,
}

struct Gathering {
    prompts: Vec<Vec<u32>>,
    members: usize,
}

/// A finished run's scores, kept until every member has taken its share.
struct Finished {
    scores: Result<Vec<f32>, String>,
    readers: usize,
    queries: usize,
    prompts: usize,
    /// When the leader started the run.
    started: Instant,
}

#[derive(Default)]
struct State {
    next: u64,
    /// The gathering that new queries join, if one is open.
    open: Option<u64>,
    gathering: HashMap<u64, Gathering>,
    finished: HashMap<u64, Finished>,
}

/// Gathers concurrent queries' prompts into shared runs (one per loaded reranker).
#[derive(Default)]
pub struct SharedBatches {
    state: Mutex<State>,
    changed: Condvar,
}

/// Publishes the leader's run even if scoring unwinds, so members never wait forever.
struct Publish<'a> {
    batches: &'a SharedBatches,
    id: u64,
    members: usize,
    prompts: usize,
    started: Instant,
    scores: Option<Result<Vec<f32>, String>>,
}

impl Drop for Publish<'_> {
    fn drop(&mut self) {
        let scores = self
            .scores
            .take()
            .unwrap_or_else(|| Err("the shared reranking run failed".into()));
        if self.members > 1 {
            let mut state = self.batches.lock();
            state.finished.insert(
                self.id,
                Finished {
                    scores,
                    readers: self.members - 1,
                    queries: self.members,
                    prompts: self.prompts,
                    started: self.started,
                },
            );
            drop(state);
            self.batches.changed.notify_all();
        }
    }
}

impl SharedBatches {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Scores `prompts` with `score`, in a run shared with the queries that arrive within
    /// `window`; returns this query's scores, in order, and what the run was.
    pub fn score(
        &self,
        prompts: Vec<Vec<u32>>,
        window: SharedWindow,
        score: impl FnOnce(&[Vec<u32>]) -> Result<Vec<f32>, ModelError>,
    ) -> Result<(Vec<f32>, SharedRun), ModelError> {
        let n = prompts.len();
        if n == 0 || window.wait.is_zero() || n >= window.max_prompts {
            let scores = score(&prompts)?;
            let run = SharedRun {
                queries: 1,
                prompts: n,
                waited: Duration::ZERO,
            };
            return Ok((scores, run));
        }
        let arrived = Instant::now();
        let mut state = self.lock();
        // Join the open gathering if this query fits in it.
        if let Some(id) = state.open {
            let g = state.gathering.get_mut(&id).expect("the open gathering is kept");
            if g.prompts.len() + n <= window.max_prompts {
                let offset = g.prompts.len();
                g.prompts.extend(prompts);
                g.members += 1;
                if g.prompts.len() >= window.max_prompts {
                    state.open = None;
                    self.changed.notify_all();
                }
                return self.wait_for(state, id, offset, n, arrived);
            }
            // Full for this query: the leader goes now, and this query leads the next one.
            state.open = None;
            self.changed.notify_all();
        }
        let id = state.next;
        state.next += 1;
        state.open = Some(id);
        state.gathering.insert(id, Gathering { prompts, members: 1 });
        let deadline = arrived + window.wait;
        loop {
            let now = Instant::now();
            if state.open != Some(id) || now >= deadline {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if state.open == Some(id) {
            state.open = None;
        }
        let g = state.gathering.remove(&id).expect("the leader's gathering is kept");
        drop(state);
        let started = Instant::now();
        let mut publish = Publish {
            batches: self,
            id,
            members: g.members,
            prompts: g.prompts.len(),
            started,
            scores: None,
        };
        let result = score(&g.prompts);
        let run = SharedRun {
            queries: g.members,
            prompts: g.prompts.len(),
            waited: started - arrived,
        };
        match result {
            Ok(scores) => {
                let mine = scores[..n].to_vec();
                publish.scores = Some(Ok(scores));
                Ok((mine, run))
            }
            Err(e) => {
                publish.scores = Some(Err(e.to_string()));
                Err(e)
            }
        }
    }

    /// A member's wait for the run of gathering `id`, then its share.
    fn wait_for(
        &self,
        mut state: MutexGuard<'_, State>,
        id: u64,
        offset: usize,
        n: usize,
        arrived: Instant,
    ) -> Result<(Vec<f32>, SharedRun), ModelError> {
        loop {
            if let Some(f) = state.finished.get_mut(&id) {
                let share = f
                    .scores
                    .as_ref()
                    .map(|s| s[offset..offset + n].to_vec())
                    .map_err(|e| ModelError::Input(format!("reranking (shared with other queries): {e}")));
                let run = SharedRun {
                    queries: f.queries,
                    prompts: f.prompts,
                    waited: f.started.saturating_duration_since(arrived),
                };
                f.readers -= 1;
                if f.readers == 0 {
                    state.finished.remove(&id);
                }
                return share.map(|s| (s, run));
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A stand-in model: each prompt's score is its first token / 1000; counts its runs.
    fn model(runs: &AtomicUsize) -> impl FnOnce(&[Vec<u32>]) -> Result<Vec<f32>, ModelError> + '_ {
        move |prompts| {
            runs.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            Ok(prompts.iter().map(|p| p[0] as f32 / 1000.0).collect())
        }
    }

    fn window(ms: u64, max: usize) -> SharedWindow {
        SharedWindow {
            wait: Duration::from_millis(ms),
            max_prompts: max,
        }
    }

    #[test]
    fn concurrent_queries_share_one_run_and_each_gets_its_own_scores() {
        let batches = Arc::new(SharedBatches::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..4u32)
            .map(|q| {
                let (batches, runs) = (batches.clone(), runs.clone());
                std::thread::spawn(move || {
                    let prompts: Vec<Vec<u32>> = (0..3).map(|d| vec![q * 100 + d]).collect();
                    batches.score(prompts, window(300, 64), model(&runs)).unwrap()
                })
            })
            .collect();
        for (q, h) in handles.into_iter().enumerate() {
            let (scores, run) = h.join().unwrap();
            let want: Vec<f32> = (0..3).map(|d| (q as u32 * 100 + d) as f32 / 1000.0).collect();
            assert_eq!(scores, want);
            assert_eq!((run.queries, run.prompts), (4, 12), "query {q}");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(batches.lock().finished.is_empty() && batches.lock().gathering.is_empty());
    }

    #[test]
    fn a_full_gathering_runs_before_its_window_ends_and_the_rest_start_another() {
        let batches = Arc::new(SharedBatches::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let handles: Vec<_> = (0..3u32)
            .map(|q| {
                let (batches, runs) = (batches.clone(), runs.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(q as u64 * 30));
                    let prompts: Vec<Vec<u32>> = (0..4).map(|d| vec![q * 10 + d]).collect();
                    batches.score(prompts, window(3_000, 8), model(&runs)).unwrap()
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        // The first two filled a run of 8 at once; the third waited its window out alone (no
        // one else came), so it is the only one to take about 3 s.
        assert_eq!((results[0].1.queries, results[0].1.prompts), (2, 8));
        assert_eq!((results[1].1.queries, results[1].1.prompts), (2, 8));
        assert_eq!((results[2].1.queries, results[2].1.prompts), (1, 4));
        assert!(
            results[0].1.waited < Duration::from_millis(1500),
            "{:?}",
            results[0].1.waited
        );
        assert!(started.elapsed() >= Duration::from_secs(3));
        for (q, (scores, _)) in results.iter().enumerate() {
            let want: Vec<f32> = (0..4).map(|d| (q as u32 * 10 + d) as f32 / 1000.0).collect();
            assert_eq!(scores, &want);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn no_window_or_too_many_prompts_run_alone_and_errors_reach_every_member() {
        let batches = SharedBatches::default();
        let runs = AtomicUsize::new(0);
        let (_, run) = batches
            .score(vec![vec![1]; 3], SharedWindow::ALONE, model(&runs))
            .unwrap();
        assert_eq!((run.queries, run.prompts), (1, 3));
        let (_, run) = batches.score(vec![vec![1]; 9], window(1000, 8), model(&runs)).unwrap();
        assert_eq!((run.queries, run.prompts), (1, 9));
        assert_eq!(runs.load(Ordering::SeqCst), 2);

        let batches = Arc::new(SharedBatches::default());
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let batches = batches.clone();
                std::thread::spawn(move || {
                    batches.score(vec![vec![1]; 2], window(300, 64), |_| {
                        Err(ModelError::Input("boom".into()))
                    })
                })
            })
            .collect();
        for h in handles {
            let err = h.join().unwrap().unwrap_err();
            assert!(err.to_string().contains("boom"), "{err}");
        }
        assert!(batches.lock().finished.is_empty());
    }
}
