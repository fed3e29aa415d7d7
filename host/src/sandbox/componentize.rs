//! Turning a core WebAssembly module into a node component.
//!
//! Toolchains that only know WASI preview 1 (C with clang and wasi-libc, for
//! one) produce a core module that exports the node's functions under their
//! canonical-ABI names (`node-host:node/node@0.1.0#execute` and so on). This
//! module wraps such a module into a component: it embeds the type of the
//! `remote-node` world from node-host's own `wit/`, and adapts its preview 1
//! imports to WASI 0.2 with the adapter that ships with wasmtime. The result is
//! an ordinary node, loaded and sandboxed like any other.

use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::Resolve;

use super::{LoadError, file_kind};

/// node-host's WIT contract, the same text as `wit/node.wit`.
pub const NODE_WIT: &str = include_str!("../../../wit/node.wit");

/// The world every node targets.
pub const NODE_WORLD: &str = "remote-node";

/// Why a file cannot be made into a node component.
#[derive(Debug, thiserror::Error)]
pub enum ComponentizeError {
    /// The input is already a component: nothing to do.
    #[error("the file is already a WebAssembly component; load it as it is")]
    AlreadyComponent,
    /// The input is not a core WebAssembly module.
    #[error("the file is not a core WebAssembly module: {0}")]
    NotModule(LoadError),
    /// wit-component refused the module (missing or mistyped exports, an
    /// import the adapter cannot satisfy, a malformed module…).
    #[error(
        "cannot make a node component from this module (does it export the functions of \
         node-host's `remote-node` world, built with bindings from `node-host new --lang c`?): \
         {0}"
    )]
    Encode(String),
}

/// Wraps a core module (built for `wasm32-wasi`, preview 1) into a component
/// of the `remote-node` world.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>, ComponentizeError> {
    match file_kind(module) {
        Err(LoadError::CoreModule) => {}
        Ok(_) => return Err(ComponentizeError::AlreadyComponent),
        Err(err) => return Err(ComponentizeError::NotModule(err)),
    }
    let encode = |err: anyhow::Error| ComponentizeError::Encode(format!("{err:#}"));
    let mut resolve = Resolve::default();
    let package = resolve
        .push_source("node.wit", NODE_WIT)
        .expect("node-host's own WIT parses");
    let world = resolve
        .select_world(&[package], Some(NODE_WORLD))
        .expect("node-host's WIT has the remote-node world");
    let mut module = module.to_vec();
    wit_component::embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)
        .map_err(encode)?;
    ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .map_err(encode)?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .map_err(encode)?
        .encode()
        .map_err(encode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_core_module() {
        assert!(matches!(
            componentize(b"hello"),
            Err(ComponentizeError::NotModule(LoadError::NotWasm))
        ));
        let component = wat::parse_str("(component)").unwrap();
        assert!(matches!(
            componentize(&component),
            Err(ComponentizeError::AlreadyComponent)
        ));
    }

    #[test]
    fn a_module_without_the_node_exports_is_refused_with_the_reason() {
        let module = wat::parse_str("(module (memory (export \"memory\") 1))").unwrap();
        let err = componentize(&module).unwrap_err().to_string();
        assert!(err.contains("remote-node"), "{err}");
        assert!(err.contains("execute") || err.contains("info"), "{err}");
    }
}
