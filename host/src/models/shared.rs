//! Loaded models shared by the whole process: collections that name the same model (same spec,
//! device and dtype) use one copy, loaded once. A failed load is remembered for a while (the
//! caller's `retry`, [`DEFAULT_RETRY`] unless configured), so that a missing model costs one
//! lookup per interval, not one per query, and a model put in place later is picked up without
//! a restart. A remembered failure keeps its kind: a missing file stays "unavailable", a failed
//! computation stays an engine fault.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ModelError;

enum Slot {
    Loaded(Arc<dyn Any + Send + Sync>),
    Failed { error: ModelError, at: Instant },
}

/// One model's slot, locked while it loads: other models load and are used meanwhile.
type Cell = Arc<Mutex<Option<Slot>>>;

static LOADED: Mutex<Option<HashMap<String, Cell>>> = Mutex::new(None);
/// How long a failed load is remembered when nothing else is configured.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(30);

/// The model stored under `key`, loading it with `load` the first time (and again once a failed
/// load is older than `retry`). A model is loaded once: callers asking for it while it loads
/// wait for that load; other models are not held up.
pub fn shared<T: Any + Send + Sync>(
    key: &str,
    retry: Duration,
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
        Some(Slot::Failed { at, .. }) => at.elapsed() >= retry,
        None => true,
    };
    if fresh {
        *slot = Some(match load() {
            Ok(m) => Slot::Loaded(Arc::new(m)),
            Err(error) => Slot::Failed {
                error,
                at: Instant::now(),
            },
        });
    }
    match slot.as_ref().expect("filled above") {
        Slot::Loaded(m) => Ok(Arc::clone(m).downcast::<T>().expect("keyed by type name")),
        Slot::Failed { error, .. } => Err(error.duplicate()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_load_is_retried_after_the_interval() {
        let retry = Duration::from_millis(50);
        let key = "shared-test-retry";
        let fail = || Err::<u32, _>(ModelError::Files("no model here".into()));
        assert!(shared(key, retry, fail).is_err());
        // Within the interval the failure is answered without loading.
        let e = shared(key, retry, || -> Result<u32, ModelError> { panic!("not retried yet") }).unwrap_err();
        assert_eq!(e.to_string(), "no model here");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(*shared(key, retry, || Ok(7u32)).unwrap(), 7);
        // Loaded models stay.
        assert_eq!(*shared(key, retry, || Ok(8u32)).unwrap(), 7);
    }

    /// A remembered failure is the same kind of error as the first one: an engine fault does
    /// not turn into a missing model on the next request.
    #[test]
    fn a_remembered_failure_keeps_its_kind() {
        let key = "shared-test-kind";
        let fail = || Err::<u32, _>(ModelError::Candle(candle_core::Error::Msg("out of memory".into())));
        assert!(matches!(shared(key, DEFAULT_RETRY, fail), Err(ModelError::Candle(_))));
        let again = shared(key, DEFAULT_RETRY, || -> Result<u32, ModelError> {
            panic!("not retried yet")
        });
        assert!(matches!(again, Err(ModelError::Candle(_))), "{again:?}");
        let key = "shared-test-kind-config";
        let fail = || {
            Err::<u32, _>(ModelError::Config {
                file: "config.json".into(),
                message: "no hidden_size".into(),
            })
        };
        assert!(shared(key, DEFAULT_RETRY, fail).is_err());
        let again = shared(key, DEFAULT_RETRY, || -> Result<u32, ModelError> {
            panic!("not retried yet")
        });
        assert!(
            matches!(&again, Err(ModelError::Config { file, .. }) if file == "config.json"),
            "{again:?}"
        );
    }
}
