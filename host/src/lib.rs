//! node-host runs untrusted WebAssembly components as sandboxed remote nodes
//! for agent and workflow platforms.
//!
//! Layers, each a module, data flowing down: [`sandbox`] (load components,
//! run one event in a fresh limited instance), [`protocol`] (the wire
//! formats of platform backends, no I/O), [`worker`] (serves nodes to a
//! backend), [`hub`] (a Hurozo-compatible backend) and [`cli`] (the
//! `node-host` command). A lower layer never uses a higher one; [`metrics`]
//! is shared by the worker and the hub; [`componentize`] turns a
//! preview 1 core module (a C node) into a component.

pub mod cli;
pub mod componentize;
pub mod hub;
pub mod metrics;
pub mod protocol;
pub mod sandbox;
pub mod worker;
