//! Generated bindings of `mira:ranking`, one module per incompatible line the host serves.
//! Private: the rest of the host sees only chosen items.
//!
//! The `types` interface is the same in both lines, so 0.1's is mapped onto 0.2's Rust types:
//! one family of candidates and requests serves plugins of either version.

/// `mira:ranking@0.2.x` (`wit/ranking.wit`): `fuse` takes the candidates column-wise.
pub(crate) mod v2 {
    wasmtime::component::bindgen!({
        world: "ranking-plugin",
        path: "../wit",
    });
}

/// `mira:ranking@0.1.x` (`wit/0.1.0/ranking.wit`, frozen): `fuse` takes a list of candidates.
pub(crate) mod v1 {
    wasmtime::component::bindgen!({
        world: "ranking-plugin",
        path: "../wit/0.1.0",
        with: {
            "mira:ranking/types": super::v2::mira::ranking::types,
        },
    });
}
