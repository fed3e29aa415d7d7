//! The sandbox: loads untrusted node components and runs each event in a
//! fresh, limited instance.
//!
//! This layer narrows wasmtime to what node-host needs: one engine per
//! process (pooling allocator, fuel, epoch deadlines), components that
//! target the `remote-node` world and import nothing but WASI 0.2 and
//! `node-host:node/host`, and one call per instance. It deliberately refuses
//! to grant anything (no files, network, environment or arguments), to reuse
//! an instance across events, and to do any networking of its own: the
//! layers above decide where events come from.

#[doc(hidden)]
pub mod bench_support;
mod bindings;
pub(crate) mod cache;
mod capture;
pub mod componentize;
mod deadline_clock;
mod deadline_io;
mod engine;
pub mod http;
mod limits;
mod load;
mod node;
mod outcome;
mod preinit;
pub(crate) mod priority;
#[doc(hidden)]
pub mod test_origin;
pub mod value;

pub(crate) use capture::cut_to;
pub use capture::{Captured, CapturedLog, Level, LogLine};
pub(crate) use deadline_io::refusing_waits;
pub use engine::{
    EPOCH_TICK, POOL_INSTANCES, READY_INSTANCES_IN_ALL, Sandbox, SandboxConfig, SandboxError,
};
pub use limits::{
    DEFAULT_CAPTURE_BYTES, DEFAULT_FUEL, DEFAULT_MEMORY_BYTES, DEFAULT_OUTPUT_BYTES,
    DEFAULT_TIMEOUT, Limits,
};
pub(crate) use load::language_of;
pub use load::{
    FileKind, Inspection, LoadError, NODE_EXPORT, file_kind, sha256_hex, valid_node_name,
    validate_info,
};
pub use node::{NodeComponent, READY_INSTANCES};
pub use outcome::{ErrorCode, Failure, Outcome, Outputs};
pub use value::{NamedValue, NodeInfo, Port, Value};
