//! Engine work (search, inference, indexing, plugin compilation) runs on blocking worker
//! threads, never on the async runtime. At most `workers` jobs run at once and at most `queue`
//! more wait; past that a request is refused at once with 503 and a retry hint, so an overload
//! costs the extra requests a fast answer instead of slowing everyone down.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::Semaphore;

use super::error::ApiError;

/// The bounded pool.
pub struct Workers {
    /// Permits for running and waiting jobs together.
    admitted: Arc<Semaphore>,
    /// Permits for running jobs.
    running: Arc<Semaphore>,
    waiting: Arc<AtomicI64>,
    in_flight: Arc<AtomicI64>,
    /// Seconds a refused client is told to wait.
    retry_after: u64,
    /// Counts jobs that panicked.
    panics: prometheus::IntCounter,
}

impl Workers {
    /// `panics` counts the jobs that panic (each answers 500; the worker thread lives on).
    pub fn new(workers: usize, queue: usize, panics: prometheus::IntCounter) -> Self {
        let workers = workers.max(1);
        Workers {
            admitted: Arc::new(Semaphore::new(workers + queue)),
            running: Arc::new(Semaphore::new(workers)),
            waiting: Arc::new(AtomicI64::new(0)),
            in_flight: Arc::new(AtomicI64::new(0)),
            retry_after: 1,
            panics,
        }
    }

    /// Jobs waiting for a worker.
    pub fn waiting(&self) -> i64 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Jobs running.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Runs `job` on a worker thread, or refuses with 503 when the queue is full. A client that
    /// goes away while its job waits gives its place up; a running job finishes (a write commits).
    pub async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        self.run_after(None, job).await
    }

    /// [`Workers::run`] for a job that needs `lock` (a collection's write lock): the job waits
    /// for it in the queue, not on a worker thread, so writes waiting their turn (behind an
    /// upload or a re-tag) never take the workers searches need.
    pub async fn run_locked<T: Send + 'static>(
        &self,
        lock: Arc<tokio::sync::Mutex<()>>,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        self.run_after(Some(lock), job).await
    }

    async fn run_after<T: Send + 'static>(
        &self,
        lock: Option<Arc<tokio::sync::Mutex<()>>>,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::overloaded(self.retry_after))?;
        let waiting = Count::up(&self.waiting);
        let locked = match lock {
            Some(lock) => Some(lock.lock_owned().await),
            None => None,
        };
        let running = self.running.clone().acquire_owned().await;
        drop(waiting);
        let running = running.map_err(|_| ApiError::internal("the worker pool is closed"))?;
        let in_flight = self.in_flight.clone();
        tokio::task::spawn_blocking(move || {
            let _counted = Count::up(&in_flight);
            let out = job();
            drop(locked);
            drop(running);
            drop(admitted);
            out
        })
        .await
        .map_err(|e| {
            if e.is_panic() {
                self.panics.inc();
                tracing::error!(error = %e, "engine work panicked");
                ApiError::panicked()
            } else {
                ApiError::internal(format!("a worker failed: {e}"))
            }
        })
    }
}

/// Counts one while alive.
struct Count(Arc<AtomicI64>);

impl Count {
    fn up(n: &Arc<AtomicI64>) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Count(n.clone())
    }
}

impl Drop for Count {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Engine work that panics answers 500 `internal_panic`, is counted, and the pool serves
    /// the next job.
    #[test]
    fn a_panicking_job_answers_500_and_the_pool_goes_on() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let panics = prometheus::IntCounter::new("test_panics", "test").unwrap();
        let workers = Workers::new(1, 1, panics.clone());
        rt.block_on(async {
            let e = workers.run(|| -> u32 { panic!("a bug") }).await.unwrap_err();
            assert_eq!((e.status.as_u16(), e.code), (500, "internal_panic"));
            assert_eq!(workers.run(|| 7).await.unwrap(), 7);
        });
        assert_eq!(panics.get(), 1);
        assert_eq!((workers.waiting(), workers.in_flight()), (0, 0));
    }

    /// A job waiting for a lock someone else holds waits in the queue: the pool's only worker
    /// still runs other jobs meanwhile, and the waiting job runs once the lock is free.
    #[test]
    fn a_job_waiting_for_its_lock_takes_no_worker() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let panics = prometheus::IntCounter::new("test_panics", "test").unwrap();
        let workers = Arc::new(Workers::new(1, 4, panics));
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        rt.block_on(async {
            let held = lock.clone().lock_owned().await;
            let waiting = {
                let (workers, lock) = (workers.clone(), lock.clone());
                tokio::spawn(async move { workers.run_locked(lock, || 1).await.unwrap() })
            };
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            assert_eq!(workers.waiting(), 1, "the locked job waits in the queue");
            let other = tokio::time::timeout(std::time::Duration::from_secs(5), workers.run(|| 2)).await;
            assert_eq!(other.expect("the only worker is free").unwrap(), 2);
            drop(held);
            assert_eq!(waiting.await.unwrap(), 1);
        });
        assert_eq!((workers.waiting(), workers.in_flight()), (0, 0));
    }
}
