//! Test-only artifacts, built from source by this crate's build script (the way wasmtime's
//! `test-programs/artifacts` builds its guests): every ranking plugin of `plugins/` as a
//! WebAssembly component, by path, and the built-in ones as bytes. The tests and `mira-bench`
//! depend on it; the shipped `mira` binary does not, so no test plugin reaches it.

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
