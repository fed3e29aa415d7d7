//! Host-side bindings for the `remote-node` world in `wit/`.
#![allow(missing_docs)] // generated code; the contract is documented in wit/node.wit

wasmtime::component::bindgen!({
    path: "../wit",
    world: "remote-node",
    additional_derives: [PartialEq],
});
