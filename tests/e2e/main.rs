//! End-to-end tests: real collections on disk in temp dirs, the library and the `mira` binary.
//! One test binary, one module per area (fewer links, shared helpers).

mod ann;
mod api_contract;
mod auth;
mod caption;
mod cli;
mod common;
mod durability;
mod eval;
mod facets;
mod fuzz;
mod ingest;
mod models;
mod multi_vector;
mod plugins;
mod polyglot;
mod rerank;
mod schema;
mod search;
mod server;
