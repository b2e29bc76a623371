//! Generated bindings of `mira:ranking`. Private: the rest of the host sees only chosen items.

wasmtime::component::bindgen!({
    world: "ranking-plugin",
    path: "../wit",
});
