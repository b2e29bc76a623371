//! Loaded models shared by the whole process: collections that name the same model (same spec,
//! device and dtype) use one copy, loaded once. A failed load is remembered for a while
//! ([`load_retry`], 30 s by default), so that a missing model costs one lookup per interval, not
//! one per query, and a model put in place later is picked up without a restart.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ModelError;

enum Slot {
    Loaded(Arc<dyn Any + Send + Sync>),
    Failed { message: String, at: Instant },
}

/// One model's slot, locked while it loads: other models load and are used meanwhile.
type Cell = Arc<Mutex<Option<Slot>>>;

static LOADED: Mutex<Option<HashMap<String, Cell>>> = Mutex::new(None);
static RETRY_MS: AtomicU64 = AtomicU64::new(30_000);

/// How long a failed load is remembered before the next use tries again.
pub fn load_retry() -> Duration {
    Duration::from_millis(RETRY_MS.load(Ordering::Relaxed))
}

/// Sets [`load_retry`] for the process (`[server] model_retry_secs`).
pub fn set_load_retry(every: Duration) {
    RETRY_MS.store(every.as_millis().try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// The model stored under `key`, loading it with `load` the first time (and again once a failed
/// load is older than [`load_retry`]). A model is loaded once: callers asking for it while it
/// loads wait for that load; other models are not held up.
pub fn shared<T: Any + Send + Sync>(
    key: &str,
    load: impl FnOnce() -> Result<T, ModelError>,
) -> Result<Arc<T>, ModelError> {
    let key = format!("{}|{key}", std::any::type_name::<T>());
    let cell: Cell = {
        let mut guard = LOADED.lock().unwrap_or_else(|p| p.into_inner());
        guard.get_or_insert_with(HashMap::new).entry(key).or_default().clone()
    };
    let mut slot = cell.lock().unwrap_or_else(|p| p.into_inner());
    let fresh = match &*slot {
        Some(Slot::Loaded(_)) => false,
        Some(Slot::Failed { at, .. }) => at.elapsed() >= load_retry(),
        None => true,
    };
    if fresh {
        *slot = Some(match load() {
            Ok(m) => Slot::Loaded(Arc::new(m)),
            Err(e) => Slot::Failed {
                message: e.to_string(),
                at: Instant::now(),
            },
        });
    }
    match slot.as_ref().expect("filled above") {
        Slot::Loaded(m) => Ok(Arc::clone(m).downcast::<T>().expect("keyed by type name")),
        Slot::Failed { message, .. } => Err(ModelError::Files(message.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_load_is_retried_after_the_interval() {
        let before = load_retry();
        set_load_retry(Duration::from_millis(50));
        let key = "shared-test-retry";
        let fail = || Err::<u32, _>(ModelError::Files("no model here".into()));
        assert!(shared(key, fail).is_err());
        // Within the interval the failure is answered without loading.
        let e = shared(key, || -> Result<u32, ModelError> { panic!("not retried yet") }).unwrap_err();
        assert_eq!(e.to_string(), "no model here");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(*shared(key, || Ok(7u32)).unwrap(), 7);
        // Loaded models stay.
        assert_eq!(*shared(key, || Ok(8u32)).unwrap(), 7);
        set_load_retry(before);
    }
}
