//! The host's imports, usable from native tests too: outside WebAssembly, `log` prints to stderr
//! and `config` reads values set with [`set_test_config`].

/// Severity of a log line.
pub use crate::bindings::mira::ranking::host::Level;

/// Writes a line to the host's log.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::mira::ranking::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// The operator's configuration value for `key`.
pub fn config(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::mira::ranking::host::config(key);
    #[cfg(not(target_arch = "wasm32"))]
    return native::CONFIG.with(|c| c.borrow().get(key).cloned());
}

/// The operator's configuration value for `key`, parsed, or `default`.
pub fn config_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    config(key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::cell::RefCell;
    use std::collections::HashMap;

    thread_local! {
        pub static CONFIG: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
    }
}

/// Sets a configuration value for native tests of a plugin (this thread only).
#[cfg(not(target_arch = "wasm32"))]
pub fn set_test_config(key: &str, value: &str) {
    native::CONFIG.with(|c| c.borrow_mut().insert(key.to_owned(), value.to_owned()));
}
