//! Host-side bindings for the `remote-node` world in `wit/`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "remote-node",
    additional_derives: [PartialEq],
});
