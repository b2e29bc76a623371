//! Loaded models shared by the whole process: collections that name the same model (same spec,
//! device and dtype) use one copy, loaded once. A failed load is remembered too, so that a
//! missing model costs one lookup per process, not one per query.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::ModelError;

type Slot = Result<Arc<dyn Any + Send + Sync>, String>;

static LOADED: Mutex<Option<HashMap<String, Slot>>> = Mutex::new(None);

/// The model stored under `key`, loading it with `load` the first time. Loads are serialised
/// (one model in memory at a time while loading, and no model loaded twice).
pub fn shared<T: Any + Send + Sync>(
    key: &str,
    load: impl FnOnce() -> Result<T, ModelError>,
) -> Result<Arc<T>, ModelError> {
    let mut guard = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    let key = format!("{}|{key}", std::any::type_name::<T>());
    let slot = map.entry(key).or_insert_with(|| {
        load()
            .map(|m| Arc::new(m) as Arc<dyn Any + Send + Sync>)
            .map_err(|e| e.to_string())
    });
    match slot {
        Ok(m) => Ok(Arc::clone(m).downcast::<T>().expect("keyed by type name")),
        Err(e) => Err(ModelError::Files(e.clone())),
    }
}
