//! Host-side bindings for the `remote-node` world in `wit/`.
#![allow(missing_docs)] // generated code; the contract is documented in wit/node.wit

wasmtime::component::bindgen!({
    path: "../wit",
    world: "remote-node",
    additional_derives: [PartialEq],
});

/// The same world with `execute` and `info` called asynchronously: nodes
/// with outbound HTTP run on an async engine (see `engine::HttpEngine`).
/// Its types and host imports are the ones above.
pub mod calls_async {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "remote-node",
        exports: { default: async },
        with: {
            "node-host:node/types": super::node_host::node::types,
            "node-host:node/host": super::node_host::node::host,
        },
    });
}
